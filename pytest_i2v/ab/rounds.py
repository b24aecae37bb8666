"""The rounds' results documents -> a verdict per test: the paired metrics (``ab.paired``), the
first round's work signatures, the sequential looks (``ab.sequential``) and the calibration."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_i2v.ab.output_check import output_of_rounds, output_verdict
from pytest_i2v.ab.paired import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_EFFECT,
    PRIOR_MAX_DF,
    SEVERITY,
    TIME_METRICS,
    WORK_VERDICTS,
    ABTestResult,
    Decision,
    PairedVerdict,
    overall_verdict,
    paired_verdict,
)
from pytest_i2v.ab.results_doc import RoundResults
from pytest_i2v.ab.sequential import Look, SequentialPlan, is_decided
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.parts import OutputComparison, WorkComparison
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.fidelity import FidelitySettings
from pytest_i2v.verdict.noise_prior import Noise
from pytest_i2v.verdict.work_diff import WorkDiff, diff, work_verdict

# --- results documents -> per-test verdicts ---------------------------------------------------


Indexed = list[dict[str, GenerationRecord]]  # per round, its records by node id


def _index(docs: Sequence[RoundResults], side: str) -> Indexed:
    rounds = []
    for number, doc in enumerate(docs, start=1):
        by_nodeid: dict[str, GenerationRecord] = {}
        for record in doc.records:
            if record.nodeid in by_nodeid:
                raise I2VUsageError(
                    f"test {record.nodeid} appears twice in {side}'s round {number}; "
                    f"select each test once"
                )
            by_nodeid[record.nodeid] = record
        rounds.append(by_nodeid)
    return rounds


def _pipeline(record: GenerationRecord) -> str:
    return str(record.setting("pipeline") or "unknown")


def _figures(record: GenerationRecord) -> dict[str, float | None]:
    peak = record.headline_peak()
    return {
        "time_s": record.time_s,
        "step_s": record.stages.step_s,
        "memory": float(peak.bytes) if peak.bytes else None,
    }


def _outcome_verdict(
    base: list[GenerationRecord], head: list[GenerationRecord]
) -> PairedVerdict | None:
    """None when every round is ok on both sides; else the verdict on the outcomes alone.

    Running out of memory is the worst regression (the generation no longer fits), and one round is
    enough: a head that runs out of memory in some rounds where the base never does would fail a CI
    runner some of the time, so it is regressed; the mirror is improved. When both sides run out of
    memory in some rounds, or a round ended otherwise (failed, skipped), the figures of the rounds
    that ran are not the same population: not comparable."""
    n = len(base)
    base_oom = sum(r.outcome == "oom" for r in base)
    head_oom = sum(r.outcome == "oom" for r in head)
    others = []  # rounds that ended neither ok nor out of memory
    for side, records in (("base", base), ("head", head)):
        bad = [str(r.outcome) for r in records if r.outcome not in ("ok", "oom")]
        if bad:
            others.append(f"{side} {'/'.join(sorted(set(bad)))} in {len(bad)} of {n} rounds")
    if not base_oom and not head_oom and not others:
        return None
    if head_oom and not base_oom:
        verdict, reason = (
            "regressed",
            f"out of memory in {head_oom} of {n} head rounds, never in base",
        )
    elif base_oom and not head_oom:
        verdict, reason = (
            "improved",
            f"out of memory in {base_oom} of {n} base rounds, never in head",
        )
    elif base_oom and head_oom:
        verdict = "not-comparable"
        reason = (
            f"both sides ran out of memory in some rounds (base {base_oom} of {n}, "
            f"head {head_oom} of {n}); "
            f"the rounds that ran are not the same population"
        )
    else:
        verdict, reason = "not-comparable", ""
    return PairedVerdict(
        "outcome", verdict, None, None, None, n, None, "; ".join(filter(None, [reason, *others]))
    )


def _metric_series(
    records: list[GenerationRecord],
) -> tuple[dict[str, list[float | None]], set[str | None]]:
    series: dict[str, list[float | None]] = {"time_s": [], "step_s": [], "memory": []}
    keys: set[str | None] = set()
    for record in records:
        figures = _figures(record)
        for name in series:
            series[name].append(figures[name])
        keys.add(record.headline_peak().key)
    return series, keys


def _pooled(diffs: Sequence[Sequence[float]]) -> Noise | None:
    total, df = 0.0, 0
    for series in diffs:
        if len(series) >= 2:
            total += statistics.variance(series) * (len(series) - 1)
            df += len(series) - 1
    return Noise(total / df, df) if df else None


@dataclass(frozen=True)
class FirstRoundWork:
    """Round 1's work signatures compared: the "work" metric's verdict and the diff behind it."""

    verdict: PairedVerdict
    diff: WorkDiff
    work_verdict: str  # work_diff.work_verdict's, "identical" where it has none

    def comparison(self) -> WorkComparison:
        """``ABTestResult.work``: the diff with its verdict."""
        return WorkComparison(self.diff, self.work_verdict)


Series = dict[str, tuple[list[float], list[float]]]  # metric -> (base's, head's) per-round figures


@dataclass(frozen=True)
class _Prepared:
    """One undecided test before its paired metrics are judged."""

    nodeid: str
    pipeline: str
    fixed: list[PairedVerdict]  # decided without the statistics (not comparable, out of memory)
    series: Series  # the metrics to judge
    keys: set[str | None]  # the peak memory's keys (one: comparable)
    work: FirstRoundWork | None
    output: OutputComparison | None  # round 1's head output against the base's
    output_verdict: PairedVerdict | None  # changed, or waiting for round 2 (ab.output_check)


def _not_comparable(metric: str, rounds: int, reason: str) -> PairedVerdict:
    return PairedVerdict(metric, "not-comparable", None, None, None, rounds, None, reason)


def _indexed_rounds(
    base_docs: Sequence[RoundResults], head_docs: Sequence[RoundResults]
) -> tuple[Indexed, Indexed]:
    if len(base_docs) != len(head_docs):
        raise I2VUsageError(
            f"{len(base_docs)} base rounds but {len(head_docs)} head rounds; pair every base "
            f"process with a head process"
        )
    if not base_docs:
        raise I2VUsageError("no rounds to compare; run at least 2 (--rounds 2)")
    return _index(base_docs, "base"), _index(head_docs, "head")


def _check_every_round(nodeid: str, sides: Mapping[str, Indexed]) -> None:
    for side, rounds in sides.items():
        missing = [number for number, r in enumerate(rounds, start=1) if nodeid not in r]
        if missing:
            where = "any round" if len(missing) == len(rounds) else f"round {missing[0]}"
            raise I2VUsageError(
                f"test {nodeid} did not run on {side} ({where}); deselect it or make it exist "
                f"on both revisions"
            )


def _series(
    base: list[GenerationRecord], head: list[GenerationRecord]
) -> tuple[list[PairedVerdict], Series, set[str | None]]:
    """The metrics measured in every round on both sides; a verdict for each one that is not."""
    base_series, base_keys = _metric_series(base)
    head_series, head_keys = _metric_series(head)
    keys = base_keys | head_keys
    fixed: list[PairedVerdict] = []
    series: Series = {}
    for name in base_series:
        b, h = base_series[name], head_series[name]
        if all(v is None for v in b + h):
            continue  # not measured on either side (step_s in an old record): nothing to say
        if any(v is None or v <= 0 for v in b + h):
            label = next(iter(keys)) if name == "memory" and len(keys) == 1 else name
            fixed.append(_not_comparable(str(label), len(b), "measured in some rounds only"))
        elif name == "memory" and len(keys) > 1:
            how = " vs ".join(sorted(map(str, keys)))
            fixed.append(
                _not_comparable("memory", len(b), f"peak memory measured differently: {how}")
            )
        else:
            series[name] = (
                [float(v) for v in b if v is not None],
                [float(v) for v in h if v is not None],
            )
    return fixed, series, keys


def _prepare(
    nodeid: str,
    base: list[GenerationRecord],
    head: list[GenerationRecord],
    min_effect: float,
    fidelity: FidelitySettings,
) -> _Prepared:
    pipelines = {_pipeline(r) for r in base + head}
    outcome = _outcome_verdict(base, head)
    fixed: list[PairedVerdict] = []
    series: Series = {}
    keys: set[str | None] = set()
    if len(pipelines) > 1:
        differs = f"pipeline differs: {', '.join(sorted(pipelines))}"
        fixed.append(_not_comparable("pipeline", len(base), differs))
    elif outcome is not None:
        fixed.append(outcome)
    else:
        fixed, series, keys = _series(base, head)
    work = None if fixed else work_of_first_round(base[0], head[0], min_effect)
    output = None if fixed else output_of_rounds(base, head, fidelity)
    judged = None if fixed else output_verdict(base, head, output)
    return _Prepared(nodeid, _pipeline(base[0]), fixed, series, keys, work, output, judged)


def _log_ratios(tests: Sequence[_Prepared]) -> dict[str, dict[str, list[float]]]:
    """Per time metric, each test's paired log-ratios: the job's pooled spread comes from them."""
    return {
        metric: {
            test.nodeid: [
                math.log(h) - math.log(b) for b, h in zip(*test.series[metric], strict=True)
            ]
            for test in tests
            if metric in test.series
        }
        for metric in TIME_METRICS
    }


def _judge(
    test: _Prepared,
    decision: Decision,
    look: Look | None,
    calibrated: Mapping[str, Noise],
    log_ratios: Mapping[str, Mapping[str, list[float]]],
) -> ABTestResult:
    """The test's verdicts: each metric's spread from its calibration, else the job's pooled spread
    with the judged test left out."""
    verdicts = list(test.fixed)
    if test.output_verdict is not None:
        verdicts.append(test.output_verdict)
    if test.work is not None:
        verdicts.append(test.work.verdict)
    for name, (base_figures, head_figures) in test.series.items():
        prior, cap = calibrated.get(name), None
        if prior is None and name in log_ratios:
            others = [d for other, d in log_ratios[name].items() if other != test.nodeid]
            prior, cap = _pooled(others), PRIOR_MAX_DF
        label = str(next(iter(test.keys)) if name == "memory" else name)
        verdicts.append(
            paired_verdict(label, base_figures, head_figures, decision, prior, look, cap)
        )
    work = test.work.comparison() if test.work is not None else None
    return ABTestResult(
        test.nodeid, test.pipeline, verdicts, overall_verdict(verdicts), work, test.output
    )


def compare_rounds(
    base_docs: Sequence[RoundResults],
    head_docs: Sequence[RoundResults],
    min_effect: float = DEFAULT_MIN_EFFECT,
    confidence: float = DEFAULT_CONFIDENCE,
    plan: SequentialPlan | None = None,
    calibration: Mapping[str, Mapping[str, Noise]] | None = None,
    decided: Mapping[str, ABTestResult] | None = None,
) -> list[ABTestResult]:
    """``base_docs[i]``/``head_docs[i]``: round i's results (``--i2v-json``). One result
    per test, in base's first-round order. A test missing from a side (or a round) is a usage
    error, but for the tests in ``decided``: a sequential job decided them at an earlier look
    (their result is kept as it was) and ran the later rounds without them. ``plan``: judge each
    test at the look of its own number of rounds (``ab.sequential``); ``calibration``: per test,
    its calibrated spread per time metric, used with its real df instead of the job's pooled
    spread."""
    decision = Decision(min_effect, confidence)
    base_rounds, head_rounds = _indexed_rounds(base_docs, head_docs)
    sides = {"base": base_rounds, "head": head_rounds}
    nodeids = list(
        dict.fromkeys(nodeid for rounds in sides.values() for r in rounds for nodeid in r)
    )
    decided = decided or {}
    undecided_ids = [nodeid for nodeid in nodeids if nodeid not in decided]
    for nodeid in undecided_ids:
        _check_every_round(nodeid, sides)
    tests = [
        _prepare(
            nodeid,
            [r[nodeid] for r in base_rounds],
            [r[nodeid] for r in head_rounds],
            min_effect,
            base_docs[0].fidelity,  # the profile's bars: both sides run the same profile
        )
        for nodeid in undecided_ids
    ]
    log_ratios = _log_ratios(tests)
    look = plan.look(len(base_rounds)) if plan is not None else None
    results = dict(decided)
    for test in tests:
        calibrated = (calibration or {}).get(test.nodeid) or {}
        results[test.nodeid] = _judge(test, decision, look, calibrated, log_ratios)
    return [results[nodeid] for nodeid in nodeids]


def undecided(results: Sequence[ABTestResult]) -> list[str]:
    """The tests a sequential job still runs: those whose verdict more rounds could change."""
    return [r.nodeid for r in results if not is_decided(r.overall)]


def work_of_first_round(
    base: GenerationRecord, head: GenerationRecord, min_effect: float
) -> FirstRoundWork | None:
    """Round 1's work signatures, head against base (``work_diff.diff``): exact, so one round
    decides a change of the work; its estimate's interval is the changed rows' spread over the
    profiled steps. None when either side has no signature (``--i2v-signature off``)."""
    if not base.signature or not head.signature or base.outcome != "ok" or head.outcome != "ok":
        return None
    work = diff(base.signature.work(), head.signature.work(), base.stages.step_s)
    verdict = work_verdict(work, min_effect * 100.0) or "identical"
    low, high = work.interval_pct or (None, None)
    paired = PairedVerdict(
        "work",
        WORK_VERDICTS[verdict],
        1.0 + work.effect_pct / 100.0 if work.effect_pct is not None else None,
        1.0 + low / 100.0 if low is not None else None,
        1.0 + high / 100.0 if high is not None else None,
        1,
        None,
        work.summary()
        + (
            ""
            if work.identical
            else f" (95 % interval from the profiled steps; minimum effect {min_effect:.0%})"
        ),
    )
    return FirstRoundWork(paired, work, verdict)


def summary_counts(results: Sequence[ABTestResult]) -> dict[str, int]:
    """Tests per overall verdict, in severity order (every verdict present, zeros included)."""
    return {name: sum(r.overall == name for r in results) for name in SEVERITY}
