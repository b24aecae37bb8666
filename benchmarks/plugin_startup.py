"""What the installed plugin costs a project not using it: pytest's start-up with and without it.

Runs a one-test project (``test_one.py`` with ``assert 1 + 1 == 2`` and an empty ``pytest.ini``) as
``python -m pytest -q -p no:cacheprovider``, with the plugin active (autoloaded through its
``pytest11`` entry point) and with ``-p no:i2v``, interleaved (ABAB..., after one unmeasured warm-up
pair) so that load drift hits both alike. Prints the median wall time and the median peak RSS
(``ru_maxrss`` from ``os.wait4``) of each, their difference, and whether the active run imported
torch (one more run under ``-X importtime``), with the heaviest packages it imported that the
``-p no:i2v`` run did not.

    python benchmarks/plugin_startup.py [--runs 10]

Target: difference <= +50 ms and <= +5 MB, torch not imported."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_MS, TARGET_MB = 50.0, 5.0
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
DISABLED = ["-p", "no:i2v"]
# "import time: self [us] | cumulative | <indent>module", one line per module, in import order. Only
# import statements are timed: a module loaded by importlib.import_module (as pytest loads
# entry-point plugins) has no line of its own, but whatever it imports does.
IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


def make_project(root: Path) -> Path:
    (root / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n", encoding="utf-8")
    (root / "pytest.ini").write_text("", encoding="utf-8")
    return root


def child_env() -> dict[str, str]:
    # The user's pytest environment would change what loads (or block the entry point's autoload).
    dropped = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    return {k: v for k, v in os.environ.items() if k not in dropped}


def run_once(argv: list[str], cwd: Path) -> tuple[float, float]:
    """One child: its wall time (s) and peak RSS (MB), read from the child's own rusage."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(
        status
    )  # reaped here: tell Popen, so it does not wait again
    if proc.returncode != 0:
        shown = subprocess.run(
            argv, cwd=cwd, env=child_env(), capture_output=True, text=True, check=False
        )
        raise SystemExit(
            f"{' '.join(argv)} exited {proc.returncode}:\n{shown.stdout}{shown.stderr}"
        )
    # ru_maxrss: kilobytes on Linux, bytes on macOS.
    rss_bytes = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return wall, rss_bytes / 1e6


def imported(argv: list[str], cwd: Path) -> tuple[set[str], dict[str, int]]:
    """The modules the child imported, and per top-level package its cumulative import time (us)."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:]],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    modules: set[str] = set()
    packages: dict[str, int] = {}
    for line in completed.stderr.splitlines():
        match = IMPORTTIME.match(line)
        if match:
            modules.add(match.group(4))
            top = match.group(4).split(".")[0]
            packages[top] = max(packages.get(top, 0), int(match.group(2)))
    return modules, packages


def registered(argv: list[str], cwd: Path) -> bool:
    """Whether pytest registered the plugin (``-VV`` lists third-party plugins by distribution)."""
    completed = subprocess.run(
        [*argv, "-VV"], cwd=cwd, env=child_env(), capture_output=True, text=True, check=False
    )
    return "pytest-i2v" in completed.stdout + completed.stderr


def measure(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="i2v-startup-") as tmp:
        project = make_project(Path(tmp))
        active_argv, disabled_argv = PYTEST, PYTEST + DISABLED
        run_once(active_argv, project)  # warm-up pair: bytecode caches, the page cache
        run_once(disabled_argv, project)
        active: list[tuple[float, float]] = []
        disabled: list[tuple[float, float]] = []
        for _ in range(runs):
            active.append(run_once(active_argv, project))
            disabled.append(run_once(disabled_argv, project))
        (on_modules, on), (_, off) = (
            imported(active_argv, project),
            imported(disabled_argv, project),
        )
        loaded = registered(active_argv, project)
    return {
        "runs": runs,
        "active_ms": statistics.median(w for w, _ in active) * 1000,
        "active_mb": statistics.median(m for _, m in active),
        "disabled_ms": statistics.median(w for w, _ in disabled) * 1000,
        "disabled_mb": statistics.median(m for _, m in disabled),
        "plugin_loaded": loaded,
        "torch_imported": any(m == "torch" or m.startswith("torch.") for m in on_modules),
        "extra_imports": sorted(
            ((k, v) for k, v in on.items() if k not in off), key=lambda kv: -kv[1]
        ),
    }


def format_result(r: dict[str, Any]) -> str:
    d_ms, d_mb = r["active_ms"] - r["disabled_ms"], r["active_mb"] - r["disabled_mb"]
    ok = d_ms <= TARGET_MS and d_mb <= TARGET_MB and not r["torch_imported"]
    lines = [
        f"plugin active: {r['active_ms']:.0f} ms, {r['active_mb']:.1f} MB; "
        f"-p no:i2v: {r['disabled_ms']:.0f} ms, "
        f"{r['disabled_mb']:.1f} MB; difference: {d_ms:+.0f} ms, {d_mb:+.1f} MB "
        f"(target <= +{TARGET_MS:.0f} ms, +{TARGET_MB:.0f} MB); "
        f"torch imported: {'yes' if r['torch_imported'] else 'no'}",
        f"medians of {r['runs']} interleaved runs each; {'within' if ok else 'OVER'} target",
    ]
    if not r["plugin_loaded"]:
        lines.append(
            "warning: pytest did not register pytest-i2v in the active run "
            "(is the package installed?)"
        )
    if r["extra_imports"]:
        heaviest = ", ".join(f"{name} {us / 1000:.0f} ms" for name, us in r["extra_imports"][:8])
        lines.append(f"imported only with the plugin (cumulative import time): {heaviest}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=10, help="measured runs of each variant (default 10)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    result = measure(args.runs)
    print(format_result(result))
    return result


if __name__ == "__main__":
    main()
