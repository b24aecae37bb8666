"""The rule that combines work, time and memory into one outcome, and the defects found in it
(issue 35, D1-D6; their reproductions are in ../shared/repro/verdict/). Each test here failed
before its fix: a regression in any gating metric fails whatever the work says; changed work
explains a timing change, never a memory one; changed work within the minimum effect leaves the
time to the timing rule and its re-measurement."""

from __future__ import annotations

import math
import random
import re
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_i2v.measure.profiling import CUDNN_AUTOTUNER, MARK, build_signature
from pytest_i2v.measure.trace import TraceEvent
from pytest_i2v.record.baseline_run import run_from_record
from pytest_i2v.record.parts import WorkComparison
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.session.gate_loop import GateLoop
from pytest_i2v.verdict.baseline_store import (
    AcceptedRun,
    baseline_path,
    update_baseline,
)
from pytest_i2v.verdict.gate import GateSettings, MetricVerdict, judge_metrics, judge_time
from pytest_i2v.verdict.noise_prior import prior_from
from pytest_i2v.verdict.outcome import DecisionInputs, decide
from pytest_i2v.verdict.signature import (
    KERNEL,
    OP,
    StageWork,
    WorkRow,
    WorkSignature,
)
from pytest_i2v.verdict.work_diff import diff, work_verdict
from tests.test_unreliable import (  # noqa: F401  (baseline_dir: a fixture)
    CONFIG,
    FINGERPRINT,
    NODEID,
    PROFILE,
    baseline_dir,
    gate_loop,
    record,
)

CHANGED = "work changed: +0.3 % of the step est., 2 row(s)"
GIB = 2**30


# -- D1: changed or improved work never overrides a gating regression -----------------------------
@pytest.mark.parametrize("work", ["changed", "improved", "identical", None])
def test_a_regressed_verdict_fails_whatever_the_work_says(work: str | None) -> None:
    outcome = decide(
        DecisionInputs(
            "ok", [], "regressed", "warn", "enforce", "h100", work=work, work_summary=CHANGED
        )
    )
    assert (outcome.kind, outcome.fails) == ("regressed", True)
    if work in ("changed", "improved"):
        assert CHANGED in outcome.reason  # the work's change is said beside the regression


def test_a_work_regression_alone_fails() -> None:
    outcome = decide(
        DecisionInputs(
            "ok",
            [],
            "pass",
            "warn",
            "enforce",
            "h100",
            work="regressed",
            work_summary="work changed: +8.0 % of the step est. (+7.1..+8.9), 2 row(s)",
        )
    )
    assert (outcome.kind, outcome.fails) == ("regressed", True)
    assert outcome.reason.startswith("the work regressed: work changed: +8.0 %")


def test_changed_work_without_a_regression_passes_and_says_the_work_changed() -> None:
    outcome = decide(
        DecisionInputs(
            "ok", [], "pass", "warn", "enforce", "h100", work="changed", work_summary=CHANGED
        )
    )
    assert (outcome.kind, outcome.fails) == ("passed", False)
    assert outcome.reason == f"{CHANGED}, within the minimum effect"


def test_improved_work_with_an_improved_time_is_improved() -> None:
    outcome = decide(
        DecisionInputs(
            "ok", [], "improved", "warn", "enforce", "h100", work="improved", work_summary=CHANGED
        )
    )
    assert (outcome.kind, outcome.fails) == ("improved", False)


def test_changed_work_with_more_memory_fails_end_to_end() -> None:
    """repro2's numbers: +17 % time and +2 GB peak against five quiet runs, the work within the
    minimum effect: the memory regression fails the test."""
    history = [
        {
            "time_s": 1.0 * (1 + 0.005 * (i - 2)),
            "step_s": 0.012 * (1 + 0.005 * (i - 2)),
            "decode_s": 0.1,
            "allocated_bytes": 8e9,
        }
        for i in range(5)
    ]
    current = {"time_s": 1.17, "step_s": 0.014, "decode_s": 0.1, "allocated_bytes": 10e9}
    verdict = judge_metrics(history, current, GateSettings())
    outcome = decide(
        DecisionInputs(
            "ok",
            [],
            verdict.verdict,
            "warn",
            "enforce",
            "h100",
            work="changed",
            work_summary=CHANGED,
        )
    )
    assert verdict.verdict == "regressed" and outcome.fails


def test_changed_work_and_a_slow_time_is_re_measured(baseline_dir: Path) -> None:  # noqa: F811
    """Changed work within the minimum effect: the time decides, with its re-measurement (a
    stall that is not confirmed passes; before, changed work skipped the re-measurement)."""
    loop = gate_loop(baseline_dir)
    slow, quiet = record([1.5] * 5), record([1.0] * 5)
    measured: list[GenerationRecord] = []

    def measure() -> GenerationRecord:
        measured.append(quiet)
        return quiet

    judged = loop.judged(slow, {})
    changed = WorkComparison.from_dict(
        {
            "identical": False,
            "effect_s": 0.0,
            "effect_pct": 0.3,
            "interval_pct": [0.1, 0.5],
            "noise": [],
            "rows": [],
            "rows_total": 2,
            "verdict": "changed",
        }
    )
    first = replace(judged, work=changed)
    assert loop.flagged(first)
    again = loop.decided(replace(loop.judged(measure(), {}), work=changed), confirmed=False)
    assert again.decision is not None and again.decision.kind == "passed"


# -- D2: on CUDA a re-shaped op's kernels reach the estimate ---------------------------------------
def _cuda_step(shape: str, kernel_s: float) -> WorkSignature:
    """One profiled step on CUDA: an ``aten::mm`` of ``shape`` launching one GEMM kernel of
    ``kernel_s``, and ten small kernels of another op that does not change."""
    events = [
        TraceEvent(f"{MARK}1", 0.0, 0.0, 0.0, annotation=True),
        TraceEvent(
            "aten::mm",
            0.001,
            0.00101,
            1e-5,
            shape,
            "c10::Half,c10::Half",
            kernels=(("ampere_fp16_s16816gemm_fp16_128x128", kernel_s),),
        ),
        TraceEvent(
            "aten::add",
            0.002,
            0.00201,
            1e-5,
            "[[64],[64]]",
            "float",
            kernels=(("elementwise_kernel", 0.001),) * 10,
        ),
        TraceEvent(f"{MARK}2", 0.02, 0.02, 0.0, annotation=True),
    ]
    return build_signature(events, [("step", f"{MARK}1", f"{MARK}2")], "cuda")


def test_a_re_shaped_op_on_cuda_moves_the_estimate_by_its_kernels_time() -> None:
    base = _cuda_step("[[1024,1024],[1024,1024]]", 0.002)
    head = _cuda_step("[[2048,1024],[1024,1024]]", 0.004)  # twice the rows: 2 ms more per step
    work = diff(base, head, base_step_s=0.012)
    assert not work.identical
    assert work.effect_pct == pytest.approx(2.0 / 12.0 * 100.0)
    kernels = {
        (r.row.name, r.row.shapes, r.count_base, r.count_head)
        for r in work.rows
        if r.row.kind == KERNEL
    }
    assert kernels == {
        ("ampere_fp16_s16816gemm_fp16_128x128", "[[1024,1024],[1024,1024]]", 1, 0),
        ("ampere_fp16_s16816gemm_fp16_128x128", "[[2048,1024],[1024,1024]]", 0, 1),
    }
    assert work_verdict(work, 5.0) == "regressed"


def test_the_same_kernels_under_the_same_shapes_are_identical_work() -> None:
    assert diff(_cuda_step("[[8,8]]", 0.002), _cuda_step("[[8,8]]", 0.0025)).identical


# -- D3: cuDNN's autotuner on one side only does not make identical work "changed" ----------------
def test_identical_work_with_the_autotuner_on_one_side_is_identical() -> None:
    rows = (
        WorkRow(OP, "aten::conv2d", "[[1,4,64,64]]", "float", 1, 1e-5, (1e-5,) * 5),
        WorkRow(KERNEL, "cudnn_conv_kernel_a", "[[1,4,64,64]]", "float", 1, 0.002, (0.002,) * 5),
    )
    stages = {"step": StageWork(rows, 0.01, (0.01,) * 5)}
    plain = WorkSignature(stages, "cuda", 5)
    events = [
        TraceEvent(f"{MARK}1", 0.0, 0.0, 0.0, annotation=True),
        TraceEvent(
            "aten::conv2d",
            0.001,
            0.00101,
            1e-5,
            "[[1,4,64,64]]",
            "float",
            kernels=(("cudnn_conv_kernel_b", 0.0021),),
        ),  # the autotuner's pick
        TraceEvent(f"{MARK}2", 0.01, 0.01, 0.0, annotation=True),
    ]
    tuned = build_signature(
        events, [("step", f"{MARK}1", f"{MARK}2")], "cuda", noise=(CUDNN_AUTOTUNER,)
    )
    assert plain.digest != tuned.digest  # each side's own digest stays as it was
    for base, head in ((plain, tuned), (tuned, plain)):
        work = diff(base, head, 0.01)
        assert work.identical and work_verdict(work, 5.0) == "identical"
    other_op = WorkSignature(
        {"step": StageWork((replace(rows[0], shapes="[[2,4,64,64]]"),), 0.01)}, "cuda", 5
    )
    assert not diff(other_op, tuned, 0.01).identical  # the ops still count


# -- D4 and D5: the prior a test borrows is the other tests' ---------------------------------------
def _baseline_file(directory: Path, histories: dict[str, list[float]]) -> None:
    runs = [
        AcceptedRun(
            nodeid,
            dict(CONFIG),
            dict(FINGERPRINT),
            run_from_record(replace(record([t] * 5), nodeid=nodeid), None),
        )
        for nodeid, totals in histories.items()
        for t in totals
    ]
    update_baseline(baseline_path(directory, PROFILE), PROFILE, runs)


def _time_bar(loop: GateLoop, nodeid: str, total: float = 1.0) -> MetricVerdict:
    verdict = loop.judge(replace(record([total] * 5), nodeid=nodeid))
    return next(m for m in verdict.metrics if m.metric == "time_s")


def test_a_one_entry_file_borrows_no_prior_from_its_own_runs(tmp_path: Path) -> None:
    """D4: the judged entry's own runs were pooled into its prior and counted twice."""
    history = [1.0, 1.02, 0.99, 1.01, 0.98]
    _baseline_file(tmp_path, {NODEID: history})
    loop = gate_loop(tmp_path)
    own_only = judge_time("time_s", history, 1.0, loop.gate, None)
    assert _time_bar(loop, NODEID).interval == pytest.approx(own_only.interval)


def test_the_prior_leaves_the_judged_entry_out(tmp_path: Path) -> None:
    quiet = [
        [1.0, 1.01, 0.99, 1.005, 0.995],
        [1.0, 0.99, 1.01, 1.0, 0.998],
        [1.0, 1.012, 0.992, 1.003, 0.997],
    ]
    histories = {f"suite/t.py::test_{i}": h for i, h in enumerate(quiet)}
    histories[NODEID] = [1.0, 1.3, 0.8, 1.1, 0.9]
    _baseline_file(tmp_path, histories)
    loop = gate_loop(tmp_path)
    without = gate_loop(tmp_path)
    without.baseline.entries = {k: v for k, v in without.baseline.entries.items() if k != NODEID}
    first = "suite/t.py::test_0"
    assert loop.baseline.pooled(FINGERPRINT, leave_out=first) != loop.baseline.pooled(FINGERPRINT)
    # test_0's prior is the same whether or not the noisy entry's own runs are in the file, less
    # test_0's own: what the other entries say, never itself
    others = {k: v for k, v in histories.items() if k != first}
    assert loop.baseline.pooled(FINGERPRINT, leave_out=first)["time_s"] == prior_from(
        others.values()
    )


def test_a_noisy_test_among_quiet_ones_keeps_a_bar_its_own_noise_needs(tmp_path: Path) -> None:
    """D5: a 4 % test among 40 at 1 % got the quiet ones' spread at df 168 (a +3.6 % bar: false
    alarms on 13 % of its runs); the spread of the quiet ones' variances says they are alike, and
    the noisy one's own variance lies far outside it: it is not moderated towards them."""
    rng = random.Random(2)
    histories = {
        f"suite/t.py::test_{i}": [math.exp(rng.gauss(0, 0.01)) for _ in range(5)] for i in range(40)
    }
    noisy = [math.exp(x) for x in (0.0, 0.045, -0.04, 0.03, -0.035)]  # sd 4 %
    histories[NODEID] = noisy
    _baseline_file(tmp_path, histories)
    loop = gate_loop(tmp_path)
    bar = _time_bar(loop, NODEID)
    own_sd = statistics.stdev(math.log(t) for t in noisy)
    centre = statistics.fmean(math.log(t) for t in noisy)
    assert bar.interval is not None and math.log(bar.interval[1]) - centre > 2.5 * own_sd
    quiet = _time_bar(loop, "suite/t.py::test_0")  # a quiet test keeps the tight, well-founded bar
    assert quiet.interval is not None and quiet.interval[1] / quiet.baseline < 1.06
    # more weight than its own runs and the declared prior give it (4 + 4): the others' spread
    assert int(re.search(r"df (\d+)", quiet.threshold).group(1)) > 8  # type: ignore[union-attr]
