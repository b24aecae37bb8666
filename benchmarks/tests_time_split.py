"""Where the tests' time goes: ``python -m pytest tests/`` with this file as a plugin in every
worker, split per test into the CPU its worker spent in process and the CPU of the processes it
started (pytester subprocesses, A/B jobs, the workflow steps, gpu-check, fresh-process
re-measurements), and what one fresh process spends importing torch, diffusers and transformers
before it measures anything.

    python benchmarks/tests_time_split.py [--json FILE] [--top N] [-- extra pytest args]

The test step's wall time on a machine with C cores is at least (in-process CPU + child CPU) / C:
that floor, not the scheduling, is what a faster test step has to cut. A child's CPU is counted when
its parent waits for it (``os.times()``' children fields), so every process a test starts is charged
to that test, grandchildren included."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV_OUT = "TESTS_TIME_SPLIT_OUT"
IMPORTS = (
    "import time; t = time.perf_counter(); "
    "import pytest_i2v.plugin, torch, diffusers, transformers; "
    "diffusers.I2VGenXLPipeline; transformers.CLIPTextModel; print(time.perf_counter() - t)"
)


# -- the plugin, in each pytest-xdist worker -------------------------------------------------------
def _cpu() -> tuple[float, float]:
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: Any) -> Iterator[None]:
    own, children = _cpu()
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        _write(item.nodeid, started, own, children)


def _write(nodeid: str, started: float, own: float, children: float) -> None:
    own_after, children_after = _cpu()
    line = {
        "nodeid": nodeid,
        "wall_s": time.perf_counter() - started,
        "in_process_cpu_s": own_after - own,
        "child_cpu_s": children_after - children,
    }
    with open(os.environ[ENV_OUT], "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


# -- the driver ------------------------------------------------------------------------------------
def import_seconds(runs: int = 3) -> list[float]:
    """What a fresh process spends importing the plugin's heavy dependencies, ``runs`` times."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True, env=env
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for _ in range(runs)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the split to this file")
    parser.add_argument("--top", type=int, default=15, help="the most expensive tests to list")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest args")
    options = parser.parse_args()
    imports = import_seconds()
    with tempfile.TemporaryDirectory() as temp:
        lines = Path(temp) / "split.jsonl"
        env = {
            **os.environ,
            ENV_OUT: str(lines),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
            ),
        }
        started = time.perf_counter()
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/",
                "-q",
                "-p",
                "tests_time_split",
                "-p",
                "no:cacheprovider",
                *options.pytest_args,
            ],
            cwd=ROOT,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - started
        tests = [json.loads(line) for line in lines.read_text(encoding="utf-8").splitlines()]
    in_process = sum(t["in_process_cpu_s"] for t in tests)
    child = sum(t["child_cpu_s"] for t in tests)
    cores = os.cpu_count() or 1
    with_children = [t for t in tests if t["child_cpu_s"] > 1.0]
    split = {
        "date": time.strftime("%Y-%m-%d"),
        "exit_code": completed.returncode,
        "tests": len(tests),
        "cores": cores,
        "wall_s": round(wall, 1),
        "in_process_cpu_s": round(in_process, 1),
        "child_cpu_s": round(child, 1),
        "floor_s": round((in_process + child) / cores, 1),
        "tests_with_child_processes": len(with_children),
        "fresh_process_import_s": [round(s, 2) for s in imports],
        "top": [
            {k: (round(v, 1) if isinstance(v, float) else v) for k, v in t.items()}
            for t in sorted(tests, key=lambda t: -(t["in_process_cpu_s"] + t["child_cpu_s"]))[
                : options.top
            ]
        ],
    }
    print(
        f"\n{len(tests)} tests in {wall:.1f} s wall on {cores} cores "
        f"(pytest exit {completed.returncode})"
    )
    print(
        f"CPU: {in_process:.1f} s in the workers' own processes + "
        f"{child:.1f} s in the processes the tests started"
        f" = {in_process + child:.1f} s; "
        f"the floor on {cores} cores is {(in_process + child) / cores:.1f} s"
    )
    print(
        f"{len(with_children)} tests start processes (more than 1 s of child CPU); "
        f"a fresh process spends "
        f"{statistics.median(imports):.1f} s "
        f"(median of {', '.join(f'{s:.1f}' for s in imports)}) on its imports"
    )
    print(f"\nthe {options.top} most expensive tests (CPU s: in process + children):")
    for t in split["top"]:
        print(
            f"  {t['in_process_cpu_s'] + t['child_cpu_s']:6.1f} = "
            f"{t['in_process_cpu_s']:5.1f} + {t['child_cpu_s']:5.1f}"
            f"  {t['nodeid']}"
        )
    if options.json:
        options.json.write_text(json.dumps(split, indent=2) + "\n", encoding="utf-8")
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
