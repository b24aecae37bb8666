"""A slower machine or slower code: the probe against the baseline runs', and the
gate's use of it."""

from __future__ import annotations

import pytest

from pytest_i2v.verdict.gate import GateSettings, judge_metrics
from pytest_i2v.verdict.machine_speed import compare_speed, probe_moved
from pytest_i2v.verdict.outcome import DecisionInputs, Outcome, decide, headline

PROBE = {"gemm_gflops": 100.0, "copy_gbs": 20.0, "tiny_ops_per_ms": 200.0}
RUNS = [
    {
        "time_s": 10.0,
        "step_s": 0.2,
        "host_rss_bytes": 2e9,
        **{f"probe_{k}": v * f for k, v in PROBE.items()},
    }
    for f in (0.98, 1.0, 1.03)
]


def test_the_probe_names_the_speed_and_the_figure_that_moved() -> None:
    same = compare_speed(RUNS, {**PROBE, "copy_gbs": 21.0})
    assert same is not None and same.comparable and same.ratios["copy_gbs"] == pytest.approx(1.05)
    slow = compare_speed(RUNS, {"gemm_gflops": 48.0, "copy_gbs": 10.0, "tiny_ops_per_ms": 110.0})
    assert (
        slow is not None
        and not slow.comparable
        and slow.speed == pytest.approx((0.48 * 0.5 * 0.55) ** (1 / 3))
    )
    assert slow.line() == (
        "this machine ran the probe at 0.51x the baseline machine's speed (matrix products 0.48x, "
        "memory bandwidth 0.50x, tiny ops (launch and host overhead) 0.55x): "
        "timings not comparable; memory still judged"
    )
    noisy = compare_speed(
        RUNS, {"gemm_gflops": 60.0, "copy_gbs": 20.0, "tiny_ops_per_ms": 200.0}
    )  # one figure 0.6x
    assert (
        noisy is not None and noisy.comparable
    )  # within the probe's own noise on the mean and on one figure
    assert not compare_speed(
        RUNS, {**PROBE, "gemm_gflops": 45.0}
    ).comparable  # one figure beyond a factor 2
    assert not compare_speed(
        RUNS, {k: v * 1.6 for k, v in PROBE.items()}
    ).comparable  # faster is another machine too
    assert compare_speed([{"time_s": 1.0}], PROBE) is None  # a baseline from before the probe
    assert (
        compare_speed(RUNS, None) is None
    )  # the virtual clock of a device without a simulated probe


def test_a_probe_that_moved_during_the_run_marks_it_unreliable() -> None:
    assert probe_moved(PROBE, {**PROBE, "copy_gbs": 14.0}) is None
    moved = probe_moved(PROBE, {k: v * 0.6 for k, v in PROBE.items()})
    assert moved is not None and moved.startswith(
        "the machine's speed moved during the run (end against start: matrix products 0.60x"
    )
    assert probe_moved(PROBE, None) is None


def test_times_that_are_not_comparable_never_gate_but_memory_does() -> None:
    history = [{"time_s": 10.0, "step_s": 0.2, "host_rss_bytes": 2e9} for _ in range(3)]
    why = (
        "this machine ran the probe at 0.48x the baseline machine's speed (...): "
        "timings not comparable; memory still judged"
    )
    slower = judge_metrics(
        history,
        {"time_s": 21.0, "step_s": 0.42, "host_rss_bytes": 2e9},
        GateSettings(),
        times_not_comparable=why,
    )
    assert slower.verdict == "pass" and slower.times_not_comparable == why and why in slower.notes
    assert [m.verdict for m in slower.metrics if m.metric == "time_s"] == [
        "regressed"
    ]  # reported, not gating
    hungrier = judge_metrics(
        history,
        {"time_s": 21.0, "step_s": 0.42, "host_rss_bytes": 4e9},
        GateSettings(),
        times_not_comparable=why,
    )
    assert hungrier.verdict == "regressed" and [m.metric for m in hungrier.regressions] == [
        "host_rss_bytes"
    ]
    outcome = decide(
        DecisionInputs("ok", [], slower.verdict, "warn", "enforce", "cpu", times_not_comparable=why)
    )
    assert outcome == Outcome("passed", False, why, times_not_comparable=why)
    failing = decide(
        DecisionInputs(
            "ok", [], hungrier.verdict, "warn", "enforce", "cpu", times_not_comparable=why
        )
    )
    assert failing.kind == "regressed" and failing.fails
    # changed work is the code, whatever the machine: the work decides
    work = decide(
        DecisionInputs(
            "ok",
            [],
            slower.verdict,
            "warn",
            "enforce",
            "cpu",
            work="regressed",
            work_summary="work changed: +12 %",
            times_not_comparable=why,
        )
    )
    assert work.kind == "regressed" and work.fails
    fails, line = headline([outcome, outcome], "cpu", "report")
    assert not fails and line.startswith(
        "not enforced on the cpu profile: this machine ran the probe at 0.48x"
    )
    assert (
        "on 2 test(s): timings not comparable with the baseline, memory judged" in line
        and "would have" not in line
    )


def test_a_leaner_peak_on_a_machine_of_another_speed_is_still_improved() -> None:
    """Memory is judged whatever the probe says, so its improvement stands (before, the wrapper
    that says why the times were not judged turned it into "passed")."""
    history = [{"time_s": 10.0, "step_s": 0.2, "host_rss_bytes": 2e9} for _ in range(3)]
    why = "timings not comparable; memory still judged"
    leaner = judge_metrics(
        history,
        {"time_s": 21.0, "step_s": 0.42, "host_rss_bytes": 1e9},
        GateSettings(),
        times_not_comparable=why,
    )
    assert leaner.verdict == "improved"
    outcome = decide(
        DecisionInputs("ok", [], leaner.verdict, "warn", "enforce", "cpu", times_not_comparable=why)
    )
    assert outcome.kind == "improved" and not outcome.fails and outcome.times_not_comparable == why
