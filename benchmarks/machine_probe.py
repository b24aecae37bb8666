"""The machine speed probe's own noise: measure.probe.run_probe in fresh processes on this machine.

Each process imports torch, runs the probe once (as a session does before its first test) and again
(as it does at the end), and prints its figures. Printed per figure: the between-process spread
(log-scale standard deviation of the first probes), the largest deviation of a first probe from the
median, and the largest start-to-end change inside a process, against
``machine_speed.PROBE_TOLERANCE`` (the bar at which two runs count as different machine speeds).
Raw figures with ``--json``.

    python benchmarks/machine_probe.py [--processes 20] [--device cpu] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_i2v.verdict.machine_speed import (
    FIGURE_TOLERANCE,
    PROBE_LABELS,
    PROBE_TOLERANCE,
    MachineSpeed,
)

CHILD = """
import json, sys, time
import torch
from pytest_i2v.measure.device import TorchRuntime
from pytest_i2v.measure.probe import run_probe
device = TorchRuntime().open(sys.argv[1])
started = time.perf_counter()
first = run_probe(device)
seconds = time.perf_counter() - started
print(json.dumps({"start": first, "end": run_probe(device), "seconds": seconds}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    runs = []
    for _ in range(args.processes):
        done = subprocess.run(
            [sys.executable, "-c", CHILD, args.device],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        f"machine speed probe, {date.today().isoformat()}, "
        f"{args.processes} fresh processes on {args.device}, "
        f"{time.perf_counter() - started:.0f} s; "
        f"probe {statistics.median(r['seconds'] for r in runs):.2f} s "
        f"(median, torch loaded); tolerance {PROBE_TOLERANCE:.0%}"
    )
    print(
        "| figure | median | between processes (log sd) | largest deviation from the median | "
        "largest start -> end change | beyond the tolerance |"
    )
    print("|---|---|---|---|---|---|")
    for name, label in PROBE_LABELS.items():
        first = [r["start"][name] for r in runs]
        middle = statistics.median(first)
        logs = [math.log(v) for v in first]
        deviation = max(abs(math.log(v / middle)) for v in first)
        drift = max(abs(math.log(r["end"][name] / r["start"][name])) for r in runs)
        beyond = sum(abs(math.log(v / middle)) > math.log1p(PROBE_TOLERANCE) for v in first)
        print(
            f"| {label} | {middle:.4g} | {statistics.stdev(logs):.1%} | "
            f"{math.expm1(deviation):+.1%} | "
            f"{math.expm1(drift):+.1%} | {beyond} of {len(first)} |"
        )
    medians = {name: statistics.median(r["start"][name] for r in runs) for name in PROBE_LABELS}
    against_median = [
        MachineSpeed({n: r["start"][n] / medians[n] for n in PROBE_LABELS}) for r in runs
    ]
    moved = [MachineSpeed({n: r["end"][n] / r["start"][n] for n in PROBE_LABELS}) for r in runs]
    spread = statistics.stdev(math.log(s.speed) for s in against_median)
    print(
        f"the machine speed (geometric mean of the three): "
        f"between processes {spread:.1%} (log sd); "
        f"processes the gate would call another machine speed against the median (mean beyond "
        f"{PROBE_TOLERANCE:.0%} or a figure beyond {FIGURE_TOLERANCE:.0%}): "
        f"{sum(not s.comparable for s in against_median)} of {len(runs)}; "
        f"start -> end moved by that rule: "
        f"{sum(not s.comparable for s in moved)} of {len(runs)}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"date": date.today().isoformat(), "device": args.device, "runs": runs}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
