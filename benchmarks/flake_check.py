"""Flake check: the timing-sensitive tests, run again and again beside a CPU-bound neighbour.

Each run is one fresh pytest process over every covered test (a fresh process is what a slow
process state needs to show), while a neighbour process spins on one core for the whole check;
pytest's JUnit XML says which tests failed. The target is 0 failures in every row.

    python benchmarks/flake_check.py                  # 10 runs, one neighbour
    python benchmarks/flake_check.py --runs 3 --neighbours 0 -k gate_loop

Covered: every test whose assertion is a verdict or a relation between measured times (the gate
loop, the six outputs, A/B end to end, throttling, fast mode, the stage recorder) and the tests
that wait for a sampler thread.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COVERED = (
    "tests/test_outcomes.py::test_six_outputs_agree_with_the_exit_code_in_every_kind",
    "tests/test_unreliable.py::test_six_outputs_agree_on_unreliable",
    "tests/test_gate_loop.py::test_recorded_baseline_then_unchanged_rerun_passes",
    "tests/test_gate_loop.py::test_slowdown_fails_exactly_that_test_with_the_section",
    "tests/test_gate_loop.py::test_extra_memory_is_a_memory_regression",
    "tests/test_gate_loop.py::test_driver_change_follows_the_policy",
    "tests/test_gate_loop.py::test_the_shipped_cpu_profile_reports_and_enforces_on_request",
    "tests/test_ab.py::test_ab_end_to_end_on_the_tiny_suite",
    "tests/test_workflows.py::test_the_ab_step_runs_on_the_cpu",
    "tests/test_signature.py::test_an_added_op_fails_its_test_in_one_run_and_names_the_op",
    "tests/test_conditions.py::test_throttled_repeats_are_marked_and_are_the_slow_ones",
    "tests/test_conditions.py::test_the_conditions_are_read_every_tenth_memory_sample_and_at_both_ends",
    "tests/test_faults.py::test_nvml_failing_mid_run_keeps_what_was_sampled",
    "tests/test_fast_and_roofline.py::test_fast_mode_on_the_tiny_model_runs_k_steps_and_keeps_the_peak",
    "tests/test_fast_and_roofline.py::test_adaptive_repeats_stop_early_on_a_quiet_measurement",
    "tests/test_end_to_end.py::test_resolution_sweep_suite_end_to_end",
    "tests/test_measure.py::test_stage_recorder_splits_encode_steps_decode",
    "tests/test_measure.py::test_the_host_clock_reads_real_seconds",
)


def spin(stop_after_s: float) -> None:
    """The neighbour: pure-Python arithmetic on one core until told to stop (or the deadline)."""
    deadline = time.monotonic() + stop_after_s
    x = 0
    while time.monotonic() < deadline:
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def case_name(case: ET.Element) -> str:
    path = (case.get("classname") or "").replace(".", "/")
    return f"{path}.py::{case.get('name')}"


def one_run(tests: list[str], junit: Path) -> dict[str, bool]:
    """One fresh pytest process over ``tests``: test id (parametrised ids folded) -> passed."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *tests,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            f"--junitxml={junit}",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    outcomes: dict[str, bool] = {}
    if not junit.is_file():
        return {
            test: False for test in tests
        }  # the process died before writing: every test counts as failed
    for case in ET.parse(junit).iter("testcase"):
        name = case_name(case).split("[")[0]
        failed = any(child.tag in ("failure", "error") for child in case)
        outcomes[name] = outcomes.get(name, True) and not failed
    return {test: outcomes.get(test, False) for test in tests}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--neighbours", type=int, default=1, help="CPU-bound processes beside the tests"
    )
    parser.add_argument("-k", default="", help="only the covered tests whose id contains this")
    args = parser.parse_args()
    tests = [t for t in COVERED if args.k in t]
    failures: Counter[str] = Counter()
    context = multiprocessing.get_context("spawn")
    neighbours = [
        context.Process(target=spin, args=(6 * 3600.0,), daemon=True)
        for _ in range(args.neighbours)
    ]
    for neighbour in neighbours:
        neighbour.start()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for run in range(args.runs):
                run_started = time.monotonic()
                outcomes = one_run(tests, Path(scratch) / f"run-{run}.xml")
                failures.update(test for test, passed in outcomes.items() if not passed)
                print(
                    f"run {run + 1}/{args.runs}: {sum(not p for p in outcomes.values())} failed "
                    f"({time.monotonic() - run_started:.0f} s)",
                    flush=True,
                )
    finally:
        for neighbour in neighbours:
            neighbour.terminate()
    print(
        f"\n{args.runs} runs beside {args.neighbours} CPU-bound neighbour(s), "
        f"{time.monotonic() - started:.0f} s"
    )
    print(f"{'failures':>8}  test")
    for test in tests:
        print(f"{failures[test]:>8}  {test}")
    total = sum(failures.values())
    print(
        f"target: 0 failures in every row; {'met' if total == 0 else f'NOT met ({total} failures)'}"
    )
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
