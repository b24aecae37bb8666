"""SIGKILL a baseline writer at random moments; every file afterwards must parse and be either the
old or the new version, never partial.

    python benchmarks/kill_during_write.py [--trials 200] [--entries 300]"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_i2v.record.baseline_run import run_from_record
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.baseline_store import AcceptedRun, read_baseline, update_baseline

CONFIG = {
    "width": 64,
    "height": 64,
    "frames": 16,
    "steps": 10,
    "guidance": 9.0,
    "fps": 8,
    "dtype": "fp32",
    "memory": [],
    "source": "tiny",
    "prompt": "p",
    "seed": 0,
}


def accepted(nodeid: str, time_s: float) -> AcceptedRun:
    record = GenerationRecord.from_partial(
        {
            "nodeid": nodeid,
            "repeats": 5,
            "time_s": time_s,
            "stages": {"step_s": time_s / 10},
            "peak_memory": {"host_rss_bytes": 1},
        }
    )
    return AcceptedRun(
        nodeid,
        CONFIG,
        {"torch": "x"},
        run_from_record(record, "abc", date="2026-11-25T00:00:00+00:00"),
    )


def writer(path: str, entries: int, version: int) -> None:
    update_baseline(
        Path(path), "cpu", [accepted(f"t::{n}", float(version)) for n in range(entries)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--entries", type=int, default=300)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.dir or tempfile.mkdtemp())
    path = work / "cpu.yaml"
    writer(str(path), args.entries, 0)
    context = multiprocessing.get_context("fork")
    version = 0.0  # each write stamps its trial number on every entry's newest run
    corrupt = killed_mid_write = completed = 0
    durations = []
    started = time.perf_counter()
    writer(str(path), args.entries, 0)
    durations.append(time.perf_counter() - started)
    for trial in range(1, args.trials + 1):
        process = context.Process(target=writer, args=(str(path), args.entries, trial))
        process.start()
        # from before the write starts to well past its end: both outcomes must be seen
        time.sleep(rng.uniform(0, durations[0] * 2.5))
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        try:
            baseline = read_baseline(path, "cpu")
            newest = {e.current.runs[-1]["time_s"] for e in baseline.entries.values()}
            if (
                len(baseline.entries) != args.entries
                or len(newest) != 1
                or newest.pop() not in (version, float(trial))
            ):
                corrupt += 1  # missing entries, or a mix of old and new
                print(
                    f"trial {trial}: inconsistent: {len(baseline.entries)} entries, "
                    f"newest runs {sorted(newest)[:5]}"
                )
            elif baseline.entries["t::0"].current.runs[-1]["time_s"] == version:
                killed_mid_write += 1
            else:
                completed += 1
                version = float(trial)
        except Exception as exc:  # any failure to read is what we count
            corrupt += 1
            print(f"trial {trial}: unreadable: {type(exc).__name__}: {exc}")
    leftovers = len([p for p in work.iterdir() if p.name.endswith(".tmp")])
    print(
        f"{args.trials} trials: {corrupt} corrupt, {killed_mid_write} left the old version, "
        f"{completed} the new one; "
        f"{leftovers} temporary files left behind by killed writers (never read); one write takes "
        f"{durations[0] * 1000:.0f} ms for {args.entries} entries"
    )
    sys.exit(1 if corrupt else 0)


if __name__ == "__main__":
    main()
