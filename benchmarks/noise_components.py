r"""The noise components the A/B cost model simulates, measured: within a process (repeat to repeat)
and between fresh processes (each process's own offset), per test and time metric, on this machine.

Runs ``--processes`` fresh pytest processes one after another, each measuring the same tests of the
suite (``--repeats`` repeats each, after the warm-up), and reads every repeat from the results JSON:

- within: the pooled standard deviation of the log repeats around their process's mean;
- between: the standard deviation of the process means, less what the within spread explains
  (method of moments: var(means) - within^2 / repeats, floored at 0);
- the tail: the share of processes whose mean lies more than 20 % above the median process (the
  "slow process" the gate's fresh-process confirmation exists for).

Between days is not measured here (one session is one day); ``benchmarks/ab_power.py`` shows its
conclusions across assumed day drifts. The raw figures (every process's repeats) are written with
``--json`` so that the summary can be recomputed.

    python benchmarks/noise_components.py [--processes 20] [--repeats 5] [--threads N] \
        [--json FILE] [-- pytest selection]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SELECTION = ["suites/test_resolution_sweep.py", "-k", "256p or 768p"]
SLOW_PROCESS = 0.20


def run_process(
    selection: list[str], repeats: int, out: Path, threads: int | None
) -> dict[str, dict[str, list[float]]]:
    """One fresh process: per test, the repeats of each time metric."""
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *selection,
        "-q",
        "-p",
        "no:cacheprovider",
        "--i2v-gate-mode",
        "report",
        "--i2v-repeats",
        str(repeats),
        "--i2v-json",
        str(out),
        "--i2v-report",
        str(out.with_suffix(".html")),
        "--i2v-markdown",
        str(out.with_suffix(".md")),
        "--i2v-baseline-dir",
        str(out.parent / "no-baselines"),
    ]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    if done.returncode not in (0, 1):
        raise SystemExit(
            f"pytest exited with {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    figures: dict[str, dict[str, list[float]]] = {}
    for record in json.loads(out.read_text())["records"]:
        stages = record.get("stages") or {}
        steps = [statistics.median(s) for s in stages.get("step_samples_s") or []]
        figures[record["nodeid"]] = {
            "time_s": list(record.get("time_samples_s") or []),
            "step_s": steps,
        }
    return figures


def components(processes: list[dict[str, list[float]]]) -> dict[str, float]:
    """Within, between (log sd) and the slow-process share, for one test and metric over
    processes."""
    logs = [[math.log(v) for v in repeats if v > 0] for repeats in processes]
    logs = [values for values in logs if len(values) >= 2]
    means = [statistics.fmean(values) for values in logs]
    within_var = sum(
        sum((v - m) ** 2 for v in values) for values, m in zip(logs, means, strict=True)
    ) / sum(len(values) - 1 for values in logs)
    repeats = statistics.fmean(len(values) for values in logs)
    between_var = max(0.0, statistics.variance(means) - within_var / repeats)
    middle = statistics.median(means)
    slow = sum(m - middle > math.log1p(SLOW_PROCESS) for m in means) / len(means)
    return {
        "within": math.sqrt(within_var),
        "between": math.sqrt(between_var),
        "slow_share": slow,
        "processes": len(means),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        help="OMP_NUM_THREADS for each process (default: torch's own choice; the A/B tests use 1)",
    )
    parser.add_argument("--json", type=Path, help="write the raw figures and the summary here")
    parser.add_argument("selection", nargs="*", help="pytest selection (default: two sweep tests)")
    args = parser.parse_args(argv)
    selection = args.selection or DEFAULT_SELECTION
    started = time.perf_counter()
    raw: list[dict[str, dict[str, list[float]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.processes):
            raw.append(
                run_process(
                    selection, args.repeats, Path(tmp) / f"process-{index}.json", args.threads
                )
            )
            print(
                f"process {index + 1}/{args.processes}: {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    summary: dict[str, dict[str, dict[str, float]]] = {}
    print(
        f"\nnoise components, {date.today().isoformat()}, "
        f"{args.processes} fresh processes x {args.repeats} repeats, "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(
        "| test | metric | within a process (log sd) | between processes (log sd) "
        "| processes > +20 % |"
    )
    print("|---|---|---|---|---|")
    for nodeid in raw[0]:
        for metric in ("time_s", "step_s"):
            found = components([process[nodeid][metric] for process in raw if nodeid in process])
            summary.setdefault(nodeid, {})[metric] = found
            print(
                f"| {nodeid} | {metric} | {found['within']:.2%} | {found['between']:.2%} "
                f"| {found['slow_share']:.0%} |"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "date": date.today().isoformat(),
                    "selection": selection,
                    "repeats": args.repeats,
                    "threads": args.threads,
                    "summary": summary,
                    "processes": raw,
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
