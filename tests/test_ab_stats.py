"""The A/B decision (pytest_i2v.ab.paired and ab.rounds), its outputs (pytest_i2v.ab.outputs) and a
quick power check."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_i2v.ab.outputs import ab_document, render_ab_html, render_ab_markdown
from pytest_i2v.ab.paired import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_EFFECT,
    DEFAULT_ROUNDS,
    ABTestResult,
    PairedVerdict,
    overall_verdict,
    paired_verdict,
)
from pytest_i2v.ab.results_doc import RoundResults
from pytest_i2v.ab.rounds import compare_rounds
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.compare import render_compare_html
from pytest_i2v.verdict.conditions import RepeatConditions, RunConditions, assess
from pytest_i2v.verdict.noise_prior import Noise

BASE = [1.00, 1.02, 0.99, 1.01, 1.00, 0.98, 1.01, 1.00]
JITTER = [1.0, 0.995, 1.004, 0.998, 1.003, 1.0, 0.997, 1.002]  # +-0.5 % per round


def test_clear_regression() -> None:
    head = [b * 1.20 * j for b, j in zip(BASE, JITTER, strict=True)]
    verdict = paired_verdict("time_s", BASE, head)
    assert verdict.verdict == "regressed"
    assert verdict.ratio is not None and verdict.low is not None and verdict.high is not None
    assert 1.15 < verdict.ratio < 1.25 and 1.0 < verdict.low < verdict.ratio < verdict.high
    assert verdict.rounds == len(BASE) and verdict.rounds_needed is None


def test_clear_improvement() -> None:
    head = [b * 0.80 * j for b, j in zip(BASE, JITTER, strict=True)]
    verdict = paired_verdict("step_s", BASE, head)
    assert verdict.verdict == "improved"
    assert verdict.high is not None and verdict.high < 1.0


def test_equal_is_unchanged() -> None:
    head = [b * j for b, j in zip(BASE, JITTER, strict=True)]
    verdict = paired_verdict("time_s", BASE, head)
    assert verdict.verdict == "unchanged"
    assert verdict.low is not None and verdict.high is not None
    assert 1 / (1 + DEFAULT_MIN_EFFECT) <= verdict.low and verdict.high <= 1 + DEFAULT_MIN_EFFECT


def test_small_significant_change_inside_the_band_is_unchanged() -> None:
    head = [b * 1.02 * j for b, j in zip(BASE, JITTER, strict=True)]
    assert paired_verdict("time_s", BASE, head).verdict == "unchanged"


def test_straddling_is_inconclusive_with_rounds_needed() -> None:
    base = [1.0, 1.0, 1.0, 1.0]
    head = [1.10, 0.92, 1.08, 0.95]  # spread ~8 %, mean ~+1 %
    verdict = paired_verdict("time_s", base, head)
    assert verdict.verdict == "inconclusive"
    assert verdict.rounds_needed is not None and verdict.rounds_needed > verdict.rounds
    assert "run more rounds" in verdict.reason


def test_zero_variance_memory() -> None:
    same = [4e9] * 4
    assert paired_verdict("reserved_bytes", same, same).verdict == "unchanged"
    assert paired_verdict("reserved_bytes", same, [4.4e9] * 4).verdict == "regressed"
    assert paired_verdict("reserved_bytes", same, [3.6e9] * 4).verdict == "improved"
    assert (
        paired_verdict("reserved_bytes", same, [4.04e9] * 4).verdict == "unchanged"
    )  # +1 %: within 5 %


def test_one_round_is_inconclusive() -> None:
    verdict = paired_verdict("time_s", [1.0], [2.0])
    assert verdict.verdict == "inconclusive"
    assert verdict.rounds == 1 and verdict.rounds_needed is not None and verdict.rounds_needed >= 2


def test_verdict_round_trips() -> None:
    verdict = paired_verdict("time_s", BASE, BASE)
    assert PairedVerdict.from_dict(json.loads(json.dumps(verdict.to_dict()))) == verdict


def _record(
    nodeid: str,
    time_s: float,
    step_s: float,
    memory: int = 2**30,
    outcome: str = "ok",
    pipeline: str = "i2vgen-xl",
) -> GenerationRecord:
    return GenerationRecord.from_partial(
        {
            "nodeid": nodeid,
            "config": {"pipeline": pipeline},
            "outcome": outcome,
            "time_s": time_s if outcome == "ok" else None,
            "stages": {"step_s": step_s if outcome == "ok" else None},
            "peak_memory": {"host_rss_bytes": memory},
        }
    )


def _docs(
    slow: float = 1.0, rounds: int = 6, drop: str | None = None, oom_head: str | None = None
) -> tuple[list[RoundResults], list[RoundResults]]:
    base_docs, head_docs = [], []
    for r in range(rounds):
        wobble = JITTER[r % len(JITTER)]
        base_docs.append(
            RoundResults(
                [
                    _record("tests/a.py::test_fast", 1.0 * wobble, 0.1 * wobble),
                    _record("tests/a.py::test_slow", 2.0 / wobble, 0.2 / wobble),
                ]
            )
        )
        head = [
            _record("tests/a.py::test_fast", 1.0 * wobble, 0.1 * wobble),
            _record(
                "tests/a.py::test_slow",
                2.0 * slow,
                0.2 * slow,
                outcome="oom" if oom_head == "tests/a.py::test_slow" else "ok",
            ),
        ]
        head_docs.append(RoundResults([rec for rec in head if rec.nodeid != drop]))
    return base_docs, head_docs


def test_compare_rounds_names_only_the_regressed_test() -> None:
    results = compare_rounds(*_docs(slow=1.4))
    by_id = {r.nodeid: r for r in results}
    assert by_id["tests/a.py::test_slow"].overall == "regressed"
    assert by_id["tests/a.py::test_fast"].overall == "unchanged"
    slow_metrics = {v.metric: v.verdict for v in by_id["tests/a.py::test_slow"].verdicts}
    assert slow_metrics == {
        "time_s": "regressed",
        "step_s": "regressed",
        "host_rss_bytes": "unchanged",
    }


def test_missing_test_is_a_usage_error_naming_test_and_side() -> None:
    with pytest.raises(I2VUsageError, match=r"tests/a.py::test_slow.*head"):
        compare_rounds(*_docs(drop="tests/a.py::test_slow"))


def _set_outcome(
    docs: list[RoundResults],
    rounds: list[int],
    outcome: str,
    nodeid: str = "tests/a.py::test_slow",
) -> None:
    """``nodeid``'s record in each of ``rounds`` (0-based) ends with ``outcome`` instead of ok."""
    for round_index in rounds:
        records = docs[round_index].records
        at = next(i for i, record in enumerate(records) if record.nodeid == nodeid)
        records[at] = _record(nodeid, 0, 0, outcome=outcome)


def _slow(base_docs: list[RoundResults], head_docs: list[RoundResults]) -> ABTestResult:
    return {r.nodeid: r for r in compare_rounds(base_docs, head_docs)}["tests/a.py::test_slow"]


def test_head_oom_in_every_round_is_a_regression() -> None:
    result = _slow(*_docs(oom_head="tests/a.py::test_slow"))
    assert result.overall == "regressed"
    assert [v.reason for v in result.verdicts] == [
        "out of memory in 6 of 6 head rounds, never in base"
    ]


def test_head_oom_in_one_round_of_six_is_a_regression_that_fails_the_job() -> None:
    """A runner would hit it one time in six: that is no "not comparable" a CI job may pass."""
    base_docs, head_docs = _docs()
    _set_outcome(head_docs, [3], "oom")
    results = compare_rounds(base_docs, head_docs)
    slow = {r.nodeid: r for r in results}["tests/a.py::test_slow"]
    assert slow.overall == "regressed"
    assert [(v.metric, v.verdict, v.reason) for v in slow.verdicts] == [
        ("outcome", "regressed", "out of memory in 1 of 6 head rounds, never in base")
    ]
    assert {r.nodeid: r.overall for r in results}["tests/a.py::test_fast"] == "unchanged"
    markdown = render_ab_markdown(results, META)
    assert markdown.startswith("### A/B: 1 regressed")
    row = next(line for line in markdown.splitlines() if "test\\_slow" in line)
    assert row.endswith("| regressed: out of memory in 1 of 6 head rounds, never in base |")
    page = render_ab_html(results, META)
    assert "regressed: out of memory in 1 of 6 head rounds, never in base" in page


def test_base_oom_in_some_rounds_head_never_is_an_improvement() -> None:
    base_docs, head_docs = _docs()
    _set_outcome(base_docs, [0, 4], "oom")
    result = _slow(base_docs, head_docs)
    assert result.overall == "improved"
    assert [v.reason for v in result.verdicts] == [
        "out of memory in 2 of 6 base rounds, never in head"
    ]


def test_oom_on_both_sides_or_another_failure_is_not_comparable() -> None:
    base_docs, head_docs = _docs()
    _set_outcome(base_docs, [1], "oom")
    _set_outcome(head_docs, [2, 5], "oom")
    result = _slow(base_docs, head_docs)
    assert result.overall == "not-comparable"
    assert result.verdicts[0].reason.startswith(
        "both sides ran out of memory in some rounds (base 1 of 6, head 2 of 6)"
    )
    assert "not comparable: both sides ran out of memory" in render_ab_markdown([result], META)
    # not out of memory: the rounds that ran are not the same population, whichever side
    base_docs, head_docs = _docs()
    _set_outcome(head_docs, [0], "failed")
    result = _slow(base_docs, head_docs)
    assert (result.overall, result.verdicts[0].reason) == (
        "not-comparable",
        "head failed in 1 of 6 rounds",
    )
    # head out of memory is a regression even when the base also failed a round otherwise; both are
    # named
    _set_outcome(head_docs, [1], "oom")
    _set_outcome(base_docs, [2], "failed")
    result = _slow(base_docs, head_docs)
    assert (result.overall, result.verdicts[0].reason) == (
        "regressed",
        "out of memory in 1 of 6 head rounds, never in base; base failed in 1 of 6 rounds; "
        "head failed in 1 of 6 rounds",
    )


def _v(verdict: str) -> PairedVerdict:
    return PairedVerdict("time_s", verdict, None, None, None, 4, None, "")


@pytest.mark.parametrize(
    ("verdicts", "overall"),
    [
        (["unchanged", "improved", "regressed"], "regressed"),
        (["improved", "inconclusive"], "inconclusive"),
        (["improved", "unchanged"], "improved"),
        (["unchanged", "unchanged"], "unchanged"),
        (["inconclusive", "not-comparable"], "not-comparable"),
    ],
)
def test_overall_rule(verdicts: list[str], overall: str) -> None:
    assert overall_verdict([_v(v) for v in verdicts]) == overall


META = {
    "base": "HEAD~1",
    "head": "HEAD",
    "rounds": 6,
    "order": "ABBA",
    "min_effect": DEFAULT_MIN_EFFECT,
    "confidence": DEFAULT_CONFIDENCE,
    "machine": "CPU test box",
}


def test_markdown_headline_and_regressions_first() -> None:
    text = render_ab_markdown(compare_rounds(*_docs(slow=1.4)), META)
    assert text.startswith("### A/B: 1 regressed")
    rows = [line for line in text.splitlines() if line.startswith("| tests")]
    assert "test\\_slow" in rows[0] and rows[0].endswith("| regressed |")
    inconclusive = ABTestResult(
        "t::x",
        "svd",
        [PairedVerdict("time_s", "inconclusive", 1.01, 0.9, 1.1, 4, 23, "r")],
        "inconclusive",
    )
    assert "run more rounds: ~23" in render_ab_markdown([inconclusive], META)


def test_json_document_schema() -> None:
    results = compare_rounds(*_docs(slow=1.4))
    document = json.loads(json.dumps(ab_document(results, META)))
    assert document["schema"] == "pytest-i2v/ab" and document["schema_version"] == 1
    assert {"base", "head", "rounds", "order", "min_effect", "confidence", "machine"} <= set(
        document["meta"]
    )
    assert document["summary"]["regressed"] == 1
    assert [ABTestResult.from_dict(r) for r in document["results"]] == results


def test_html_names_the_regression_and_escapes_a_hostile_nodeid() -> None:
    base_docs, head_docs = _docs(slow=1.4)
    hostile = "tests/a.py::test_x[<script>alert(1)</script>]"
    for doc in (*base_docs, *head_docs):
        doc.records.append(_record(hostile, 1.0, 0.1))
    page = render_ab_html(compare_rounds(base_docs, head_docs), {**META, "head": "<b>evil</b>"})
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<b>evil</b>" not in page
    assert 'class="regressed"' in page and "tests/a.py::test_slow" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    # the compare page extended: its layout and styles, the paired table as the body
    compare_page = render_compare_html(
        {
            "a": {"environment": {}, "profile": {}},
            "b": {"environment": {}, "profile": {}},
            "environment_changes": [],
            "rows": [],
        },
        "a.json",
        "b.json",
    )
    style = compare_page[compare_page.index("<style>") : compare_page.index("</style>")]
    assert (
        style in page and "<title>pytest-i2v A/B: HEAD~1 vs &lt;b&gt;evil&lt;/b&gt;</title>" in page
    )
    markdown = render_ab_markdown(compare_rounds(base_docs, head_docs), META)
    assert "<script>" not in markdown


def _power_module() -> Any:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ab_power.py"
    spec = importlib.util.spec_from_file_location("ab_power", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ab_power"] = module
    spec.loader.exec_module(module)
    return module


def test_quick_power_of_the_default_design() -> None:
    """The cost model's default sequential design on the PR suite at 2 % between-process noise,
    2,000 simulated tests: few false alarms, most +10 % caught, and every job re-decided by
    compare_rounds itself agrees (the numpy copy is the project's rule); a calibration makes the
    unchanged job cheaper."""
    power = _power_module()
    rng = np.random.default_rng(1)
    noise = power.NoiseModel(within=0.01, between=0.02, job_drift=0.02, day_drift=0.0, repeats=1)
    costs = power.Costs(
        load_s=30.0, warmup=1, repeats=1, fast_steps=5, fixed_share=0.1, profile_cost=2.0
    )
    own = power.ab_row(
        rng,
        2000,
        power.Design("seq", DEFAULT_ROUNDS, True, False),
        noise,
        costs,
        DEFAULT_MIN_EFFECT,
        DEFAULT_CONFIDENCE,
    )
    calibrated = power.ab_row(
        rng,
        2000,
        power.Design("cal", DEFAULT_ROUNDS, True, True),
        noise,
        costs,
        DEFAULT_MIN_EFFECT,
        DEFAULT_CONFIDENCE,
    )
    fixed = power.ab_row(
        rng,
        2000,
        power.Design("fixed", DEFAULT_ROUNDS, False, False),
        noise,
        costs,
        DEFAULT_MIN_EFFECT,
        DEFAULT_CONFIDENCE,
    )
    for row in (own, calibrated, fixed):
        assert (
            row["false_alarm"] <= 0.004 and row["power_10"] >= 0.95
        )  # 2,000 trials resolve a few per mille
    assert (
        calibrated["gpu_minutes_unchanged"]
        < own["gpu_minutes_unchanged"]
        < 0.6 * fixed["gpu_minutes_unchanged"]
    )
    assert calibrated["power_5"] >= 0.9


def _set_conditions(doc: RoundResults, index: int, conditions: RunConditions) -> None:
    doc.records[index] = replace(doc.records[index], conditions=conditions)


def test_runs_on_an_unstable_gpu_are_named_in_every_output() -> None:
    from pytest_i2v.ab.meta import unstable_conditions

    base_docs, head_docs = _docs(slow=1.0, rounds=8)
    steady = [RepeatConditions(1980.0)] * 4
    hot = [RepeatConditions(1980.0, reasons=("thermal",))] * 2
    _set_conditions(base_docs[1], 0, assess(hot + steady[:3]))  # throttled (thermal, 2 of 5)
    _set_conditions(head_docs[0], 1, assess([*steady, RepeatConditions(1980.0)]))  # stable
    _set_conditions(head_docs[2], 1, assess([RepeatConditions()] * 5))  # not read
    for round_index in range(3, 8):  # clock off the median (1 of 5 repeats)
        _set_conditions(head_docs[round_index], 1, assess([*steady, RepeatConditions(1800.0)]))
    lines = unstable_conditions({"base": base_docs, "head": head_docs})
    assert lines[0] == "base round 2: tests/a.py::test_fast: throttled (thermal, 2 of 5 repeats)"
    assert lines[1:] == [
        f"head round {r}: tests/a.py::test_slow: clock off the median (1 of 5 repeats)"
        for r in range(4, 9)
    ]
    results = compare_rounds(base_docs, head_docs)
    meta = {**META, "conditions": lines}
    markdown = render_ab_markdown(results, meta)
    assert (
        "Hardware not stable under 6 measured run(s): base round 2: "
        "tests/a.py::test\\_fast: throttled" in markdown
    )
    assert markdown.count("clock off the median") == 4 and "; and 1 more (ab.json)" in markdown
    page = render_ab_html(results, meta)
    assert page.count("<li>") == 6 and "head round 8: tests/a.py::test_slow" in page
    assert ab_document(results, meta)["meta"]["conditions"] == lines
    # a CPU job, or a stable GPU: nothing said
    assert unstable_conditions({"base": _docs()[0], "head": _docs()[1]}) == []
    assert "Hardware" not in render_ab_markdown(results, {**META, "conditions": []})


# --- the sequential plan ----------------------------------------------------------------------
def test_the_looks_spend_at_most_the_budget_and_next_to_nothing_early() -> None:
    from pytest_i2v.ab.sequential import SequentialPlan

    plan = SequentialPlan(max_rounds=12, alpha=0.001, gamma=0.05)
    looks = [plan.look(k) for k in range(2, 13)]
    assert sum(look.change_alpha for look in looks) == pytest.approx(0.001, rel=1e-9)
    assert sum(look.equivalence_alpha for look in looks) == pytest.approx(0.05, rel=1e-9)
    assert (
        looks[0].change_alpha < 1e-12 < looks[-1].change_alpha
    )  # O'Brien-Fleming: the last look gets most
    assert looks[0].equivalence_alpha > looks[-1].equivalence_alpha / 4  # Pocock: spread out
    assert looks[-1].final and not looks[-2].final
    assert looks[0].change_factor(20) > 7 > looks[-1].change_factor(20) > 3.3


def test_a_look_calls_unchanged_early_but_a_change_only_with_strong_evidence() -> None:
    """Round 3 of at most 16: a flat test is unchanged already; a +3 % shift with 1 % noise (clear
    at the fixed design's 99.9 %) is not called regressed this early, and stays undecided, not
    unchanged."""
    from pytest_i2v.ab.sequential import SequentialPlan

    look = SequentialPlan(16, 0.001).look(3)
    flat = paired_verdict("time_s", [1.0, 1.0, 1.0], [1.001, 0.999, 1.0], look=look)
    assert flat.verdict == "unchanged" and "equivalence interval" in flat.reason
    calibrated = Noise(0.01**2, 29)  # a known 1 % spread, as a calibration gives it
    shifted = paired_verdict(
        "time_s", [1.0, 1.0, 1.0], [1.03, 1.04, 1.035], prior=calibrated, look=look, prior_cap=None
    )
    fixed = paired_verdict(
        "time_s", [1.0, 1.0, 1.0], [1.03, 1.04, 1.035], prior=calibrated, prior_cap=None
    )
    assert fixed.verdict == "regressed" and "the calibration (29 df)" in fixed.reason
    assert shifted.verdict == "inconclusive" and "the next round looks again" in shifted.reason
    assert (
        paired_verdict(
            "time_s",
            [1.0] * 16,
            [1.08, 1.09, 1.085, 1.08] * 4,
            look=SequentialPlan(16, 0.001).look(16),
        ).verdict
        == "regressed"
    )


def test_a_calibration_applies_only_to_the_same_generation_measured_the_same_way() -> None:
    from pytest_i2v.ab.machine_calibration import calibration_records
    from pytest_i2v.verdict.ab_calibration import CalibrationRecord, calibrate

    def doc(scale: float, mode: str = "fast") -> list[CalibrationRecord]:
        record = {
            "nodeid": "t",
            "config_id": "c1",
            "mode": mode,
            "repeats": 1,
            "outcome": "ok",
            "time_s": scale,
            "stages": {"step_s": scale / 10},
            "fingerprint": {"torch": "2.13"},
        }
        return calibration_records([GenerationRecord.from_partial(record)])

    calibration = calibrate(
        [doc(1.0), doc(1.0), doc(1.0), doc(1.0)],
        [doc(1.02), doc(0.98), doc(1.01), doc(0.99)],
        "abc",
        "2026-12-02T00:00:00+00:00",
    )
    stored = calibration.tests["t"]
    assert stored["time_s"]["df"] == 3 and stored["measured"] == "fast, 1 repeat(s)"
    same = calibration.priors(doc(1.0))
    assert same["t"]["time_s"].df == 3 and same["t"]["time_s"].variance == pytest.approx(
        stored["time_s"]["sd"] ** 2
    )
    assert calibration.priors(doc(1.0, mode="full")) == {}  # full runs have another spread
    assert calibration.priors([replace(doc(1.0)[0], config_id="c2")]) == {}  # another generation


def test_the_pooled_spread_leaves_the_judged_test_out() -> None:
    """Each test's prior is the other tests' spread: with two tests of 4 rounds each, 3 df (its
    own rounds would make it 6, and a test would vouch for its own noise)."""
    results = compare_rounds(*_docs(slow=1.02, rounds=4))
    for result in results:
        time_verdict = next(v for v in result.verdicts if v.metric == "time_s")
        assert "spread moderated with the job's pooled spread (3 df)" in time_verdict.reason
