"""Does ``history changes`` find the steps a nightly history holds, and only those?

Simulated histories of ``--points`` runs (default 200) with known steps of +3 %, +5 % and +10 %
(at 1/4, 1/2 and 3/4 of the series), under this CPU's noise: ``--noise`` between processes
(log-normal, default 2 %: benchmarks/noise_components.py's between-process figure) and its heavy
tail, one run in ``1 / --tail`` 30-40 % slow (default 0.15, the brief's "one process in several").
Each is searched with ``pytest_i2v.history.changes.find_changes`` exactly as the CLI does. Printed
side by side, per step size: how often it was found (within ``--window`` runs), the dating error in
commits, and the false change points per 100 points; plus the same noise without any step (the
false alarms alone).

    python benchmarks/change_points.py [--histories 50] [--points 200] [--json out.json]"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_i2v.history.changes import find_changes
from pytest_i2v.history.series import Series, SeriesPoint

STEPS = (0.03, 0.05, 0.10)


def history(
    points: int, steps: tuple[tuple[int, float], ...], noise: float, tail: float, seed: int
) -> Series:
    rng = np.random.default_rng(seed)
    level = np.ones(points)
    for at, effect in steps:
        level[at:] *= 1.0 + effect
    slow = np.where(rng.random(points) < tail, rng.uniform(1.3, 1.4, points), 1.0)
    values = level * np.exp(rng.normal(0.0, noise, points)) * slow
    return Series(
        "bench::test",
        "time_s",
        tuple(
            SeriesPoint(f"r{i}", f"c{i:04d}", f"{i:06d}", float(v)) for i, v in enumerate(values)
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--histories", type=int, default=50, help="simulated histories per case")
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.02, help="between runs (log sd)")
    parser.add_argument("--tail", type=float, default=0.15, help="share of runs 30-40 %% slow")
    parser.add_argument("--window", type=int, default=5, help="runs a detection may be off")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    n = args.points
    placed = tuple((n * (i + 1) // 4, effect) for i, effect in enumerate(STEPS))
    found = {effect: 0 for effect in STEPS}
    errors: dict[float, list[int]] = {effect: [] for effect in STEPS}
    false_with, false_without = 0, 0
    started = time.perf_counter()
    for seed in range(args.histories):
        detected = [
            c.index for c in find_changes(history(n, placed, args.noise, args.tail, seed)).changes
        ]
        for at, effect in placed:
            near = [i for i in detected if abs(i - at) <= args.window]
            if near:
                found[effect] += 1
                errors[effect].append(abs(near[0] - at))
        false_with += sum(all(abs(i - at) > args.window for at, _ in placed) for i in detected)
        quiet = history(n, (), args.noise, args.tail, 10_000 + seed)
        false_without += len(find_changes(quiet).changes)
    seconds = time.perf_counter() - started
    per_100 = 100.0 / (args.histories * n)
    rows = [
        {
            "step": f"+{effect:.0%}",
            "found": found[effect] / args.histories,
            "median_dating_error_commits": statistics.median(errors[effect])
            if errors[effect]
            else None,
            "max_dating_error_commits": max(errors[effect]) if errors[effect] else None,
        }
        for effect in STEPS
    ]
    figures = {
        "histories": args.histories,
        "points": n,
        "noise": args.noise,
        "tail": args.tail,
        "window": args.window,
        "steps": rows,
        "false_per_100_points_with_steps": false_with * per_100,
        "false_per_100_points_without_steps": false_without * per_100,
        "seconds_per_history": seconds / (2 * args.histories),
    }
    print(
        f"{args.histories} histories of {n} runs, noise {args.noise:.0%} between runs, "
        f"{args.tail:.0%} of runs 30-40 % slow; a detection counts within {args.window} runs"
    )
    print(f"{'step':>6} {'found':>7} {'dating error (median, max)':>28}")
    for row in rows:
        error = (
            f"{row['median_dating_error_commits']}, {row['max_dating_error_commits']}"
            if row["max_dating_error_commits"] is not None
            else "-"
        )
        print(f"{row['step']:>6} {row['found']:>7.0%} {error:>28}")
    print(
        f"false change points per 100 points: {figures['false_per_100_points_with_steps']:.2f} "
        f"beside the steps, {figures['false_per_100_points_without_steps']:.2f} without any; "
        f"{figures['seconds_per_history'] * 1000:.0f} ms per {n}-run history"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
