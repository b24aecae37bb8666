"""Does ``bisect`` find the commit, and what does it cost? A synthetic repository of ``--commits``
commits (default 32) on the tiny I2VGen-XL suite: a +20 % host-side delay per UNet call from
commit ``--delay-at`` (default 9; 2 ms on the virtual clock, where a UNet call costs 10 ms, plus
the suite's own encode and decode) and one more matrix product after each UNet call from commit
``--op-at`` (default 21). Two bisections, as a user runs them:

- the whole range (good: commit 0, bad: the last): the work changed, so the profiled probes find
  the added op, about log2(n) + 2 probes;
- good: commit 0, bad: the commit before the op: only the time changed, so each probe is a
  sequential A/B job.

Printed side by side: the commit found, the probes, the processes and the wall time. The virtual
clock (``PYTEST_I2V_VIRTUAL_TIME=1``) makes the delay exact; the wall time is this machine's.

    python benchmarks/bisect_synthetic.py [--commits 32] [--json out.json]"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PYTEST_INI = """\
[pytest]
i2v_gpu_profile = cpu
i2v_allow_profile_mismatch = true
i2v_repeats = 3
i2v_warmup = 0
filterwarnings = ignore::FutureWarning
"""
SUITE = """\
import pytest


@pytest.mark.i2v(width=256, height=256, frames=2, steps=50)
def test_one(changed, i2v_run):
    assert i2v_run().outcome == "ok"
"""
CONFTEST = """\
import pytest
import torch

from pytest_i2v.simulated_plugin import add_work

DELAY, EXTRA_OP = {delay}, {op}


@pytest.fixture
def changed(i2v_pipeline):
    weight = torch.ones(768, 768)

    def before(module, args):
        if DELAY:
            add_work(0.002)  # a UNet call costs 10 ms on the virtual clock: +20 %

    def after(module, args, output):
        if EXTRA_OP:
            torch.mm(weight, weight)

    handles = [
        i2v_pipeline.unet.register_forward_pre_hook(before),
        i2v_pipeline.unet.register_forward_hook(after),
    ]
    yield
    for handle in handles:
        handle.remove()
"""
VIRTUAL = ("-p", "pytest_i2v.simulated_plugin")


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@x", "-c", "commit.gpgsign=false"]
    return subprocess.run(
        ["git", *identity, *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def build(repo: Path, commits: int, delay_at: int, op_at: int) -> list[str]:
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "pytest.ini").write_text(PYTEST_INI)
    (repo / "test_suite.py").write_text(SUITE)
    shas = []
    for number in range(commits):
        conftest = CONFTEST.format(delay=number >= delay_at, op=number >= op_at)
        (repo / "conftest.py").write_text(conftest)
        (repo / "NOTES").write_text(f"commit {number}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"commit {number}")
        shas.append(git(repo, "rev-parse", "HEAD").strip())
    return shas


def bisect(repo: Path, good: str, bad: str) -> dict[str, object]:
    argv = [sys.executable, "-m", "pytest_i2v", "bisect", "--good", good, "--bad", bad]
    started = time.perf_counter()
    done = subprocess.run(
        [*argv, "--", *VIRTUAL], cwd=repo, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bisect failed ({done.returncode}):\n{done.stderr[-3000:]}")
    first = done.stdout.splitlines()[0]
    return {"line": first, "wall_s": wall, "found": first.split(" is ", 1)[1].split()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commits", type=int, default=32)
    parser.add_argument("--delay-at", type=int, default=9)
    parser.add_argument("--op-at", type=int, default=21)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    os.environ["PYTEST_I2V_VIRTUAL_TIME"] = "1"
    os.environ["PYTEST_I2V_SIMULATED_GPUS"] = "[]"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="i2v-bisect-bench-") as tmp:
        repo = Path(tmp) / "repo"
        shas = build(repo, args.commits, args.delay_at, args.op_at)
        runs = {
            "work": (bisect(repo, shas[0], shas[-1]), shas[args.op_at]),
            "time": (bisect(repo, shas[0], shas[args.op_at - 1]), shas[args.delay_at]),
        }
    print(
        f"{args.commits} commits: +20 % delay from commit {args.delay_at}, an op from {args.op_at}"
    )
    figures = {}
    for kind, (run, expected) in runs.items():
        right = "right" if run["found"] == expected[:12] else f"WRONG (expected {expected[:12]})"
        print(f"{kind:>5}: {run['line']} [{right}]; wall {run['wall_s']:.0f} s")
        figures[kind] = {**run, "expected": expected[:12], "right": run["found"] == expected[:12]}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
