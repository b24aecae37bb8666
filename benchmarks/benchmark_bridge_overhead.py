r"""What pytest-benchmark active costs the main job: ``python -m pytest suites/`` with
pytest-benchmark off (``-p no:benchmark``) and on (``--benchmark-json``, its table, its machine
info), in fresh processes, interleaved in pairs (off/on, then on/off, ...) after one unmeasured
warm-up pair, so that the machine's drift hits both alike. Each process writes its results to a
temporary folder.

Prints, per pair, the wall time of each and their ratio (on / off), then the median ratio, with the
same for the time the i2v measurements themselves took (the sum of the records' ``wall_s``), which
the bridge could slow down, and for the rest (import, load, writing, pytest-benchmark's own output).

    python benchmarks/benchmark_bridge_overhead.py [--pairs 4] \
        [-- <extra pytest args, e.g. -m sweep>]

Target: median wall-time ratio <= 1.05. Between processes the CPU machines vary by about 7 % (and
one process in several runs 30-40 % slow throughout), so read the median over pairs, not one
pair."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.05
MODES = {"off": ["-p", "no:benchmark"], "on": ["--benchmark-json", "{out}/benchmark.json"]}


def run_once(mode: str, extra: list[str]) -> tuple[float, float]:
    """One fresh main job: its wall time and the sum of its records' measurement times (s)."""
    with tempfile.TemporaryDirectory(prefix="bridge-overhead-") as out:
        switch = [arg.format(out=out) for arg in MODES[mode]]
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "suites/",
            "-q",
            "-p",
            "no:cacheprovider",
            "--i2v-json",
            f"{out}/r.json",
            "--i2v-report",
            f"{out}/r.html",
            "--i2v-markdown",
            f"{out}/s.md",
            *switch,
            *extra,
        ]
        start = time.perf_counter()
        completed = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if completed.returncode not in (0, 1):
            sys.exit(
                f"{mode} run failed ({completed.returncode}):\n"
                f"{completed.stdout[-2000:]}{completed.stderr[-2000:]}"
            )
        records = json.loads(Path(out, "r.json").read_text())["records"]
        if (
            mode == "on"
            and len(json.loads(Path(out, "benchmark.json").read_text())["benchmarks"]) == 0
        ):
            sys.exit(
                "pytest-benchmark was active but wrote no benchmark: the bridge is not working"
            )
        return wall, sum(r.get("wall_s") or 0.0 for r in records)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=4)
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    run_once("off", extra), run_once("on", extra)  # warm-up pair: disk caches, compiled bytecode
    rows = []
    for pair in range(args.pairs):
        order = ("off", "on") if pair % 2 == 0 else ("on", "off")
        measured = {mode: run_once(mode, extra) for mode in order}
        (off_wall, off_gen), (on_wall, on_gen) = measured["off"], measured["on"]
        rows.append(
            (
                off_wall,
                on_wall,
                on_wall / off_wall,
                on_gen / off_gen,
                (on_wall - on_gen) / (off_wall - off_gen),
            )
        )
        print(
            f"pair {pair + 1} ({'/'.join(order)}): off {off_wall:.1f} s, on {on_wall:.1f} s, "
            f"ratio {rows[-1][2]:.3f}; "
            f"measurements {rows[-1][3]:.3f}; the rest {rows[-1][4]:.3f}",
            flush=True,
        )
    wall = statistics.median(r[2] for r in rows)
    print(
        f"median ratio on/off over {len(rows)} pairs: wall {wall:.3f}, measurements "
        f"{statistics.median(r[3] for r in rows):.3f}, "
        f"the rest {statistics.median(r[4] for r in rows):.3f} "
        f"(target wall <= {TARGET:.2f}: {'met' if wall <= TARGET else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
