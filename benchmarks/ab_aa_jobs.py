"""A/B end to end on the CPU, in real time: A/A jobs never say regressed, and a head that adds about
+10 % of work to one test is decided after round 1.

A throwaway git repository holds one i2v test on the tiny I2VGen-XL (the cpu profile). Then:

- ``--jobs`` A/A jobs (``python -m pytest_i2v ab --base HEAD --head HEAD --rounds --max-rounds``):
  the same code on both sides, real time, real between-process noise. The count of jobs with a test
  called regressed is the false-alarm count (target 0); the rounds each job ran show the early stop.
- one job whose head adds matrix products to every UNet call (about +10 % of the step): decided
  regressed by its work signature after round 1, with the changed op in ab.md; the job ends there.

    python benchmarks/ab_aa_jobs.py [--jobs 20] [--max-rounds 4] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTEST_INI = """\
[pytest]
i2v_gpu_profile = cpu
i2v_repeats = 3
i2v_warmup = 1
filterwarnings = ignore::FutureWarning
"""
SUITE = """\
import pytest


@pytest.mark.i2v(width=64, height=64, frames=4, steps=20)
def test_generation(more_work, i2v_run):
    assert i2v_run().outcome == "ok"
"""
CONFTEST_BASE = """\
import pytest


@pytest.fixture
def more_work():
    yield
"""
CONFTEST_MORE_WORK = """\
import pytest
import torch

WEIGHT = torch.ones(256, 256)


@pytest.fixture
def more_work(i2v_pipeline):
    def extra(module, args, output):
        for _ in range(int(__import__("os").environ.get("EXTRA_MM", "7"))):
            torch.mm(WEIGHT, WEIGHT)

    handle = i2v_pipeline.unet.register_forward_hook(extra)
    yield
    handle.remove()
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def make_repo(root: Path) -> Path:
    repo = root / "suite"
    repo.mkdir()
    (repo / "pytest.ini").write_text(PYTEST_INI)
    (repo / "test_suite.py").write_text(SUITE)
    (repo / "conftest.py").write_text(CONFTEST_BASE)
    git(repo, "init", "-q")
    git(repo, "-c", "user.email=b@example.com", "-c", "user.name=bench", "add", "-A")
    git(repo, "-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-qm", "suite")
    return repo


def run_job(repo: Path, out: Path, base: str, head: str, rounds: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_i2v",
            "ab",
            "--base",
            base,
            "--head",
            head,
            "--rounds",
            str(rounds),
            "--out",
            str(out),
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"ab exited with {done.returncode}:\n{done.stderr[-3000:]}")
    document = json.loads((out / "ab.json").read_text())
    return {
        "exit": done.returncode,
        "rounds": document["meta"]["rounds"],
        "wall_s": time.perf_counter() - started,
        "overall": {r["nodeid"]: r["overall"] for r in document["results"]},
        "markdown": (out / "ab.md").read_text(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--max-rounds", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp))
        jobs = []
        for index in range(args.jobs):
            jobs.append(run_job(repo, Path(tmp) / f"aa-{index}", "HEAD", "HEAD", args.max_rounds))
            print(
                f"A/A job {index + 1}/{args.jobs}: {jobs[-1]['overall']} "
                f"after {jobs[-1]['rounds']} rounds "
                f"({jobs[-1]['wall_s']:.0f} s)",
                file=sys.stderr,
            )
        (repo / "conftest.py").write_text(CONFTEST_MORE_WORK)
        git(
            repo,
            "-c",
            "user.email=b@example.com",
            "-c",
            "user.name=bench",
            "commit",
            "-qam",
            "more work per UNet call",
        )
        changed = run_job(repo, Path(tmp) / "changed", "HEAD~1", "HEAD", args.max_rounds)
    regressed = sum(any(v == "regressed" for v in job["overall"].values()) for job in jobs)
    verdicts: dict[str, int] = {}
    for job in jobs:
        for verdict in job["overall"].values():
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
    work_line = next((line for line in changed["markdown"].splitlines() if "| step |" in line), "")
    print(
        f"\nA/B end to end on the CPU, {date.today().isoformat()}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(f"| job | jobs | regressed | verdicts | rounds run (of at most {args.max_rounds}) |")
    print("|---|---|---|---|---|")
    print(
        f"| A/A (unchanged code) | {len(jobs)} | {regressed} | {verdicts} | "
        f"{sorted(job['rounds'] for job in jobs)} |"
    )
    print(
        f"| head +work in one test | 1 | {int(changed['exit'] == 1)} | {changed['overall']} "
        f"| [{changed['rounds']}] |"
    )
    print(f"the changed job's table, first row: {work_line}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": date.today().isoformat(),
                    "max_rounds": args.max_rounds,
                    "aa_jobs": [{k: v for k, v in j.items() if k != "markdown"} for j in jobs],
                    "changed": {k: v for k, v in changed.items() if k != "markdown"},
                    "changed_table_row": work_line,
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
