"""Whether a regression is only its throttled repeats being slow: the GPU's clocks per repeat
(``conditions``) against the gate's bars. Such a test is "unreliable", never "regressed".

Pure: no pytest, no I/O."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_i2v.verdict.conditions import RunConditions, stable_values, throttled_explain_slowness
from pytest_i2v.verdict.gate import TIME_METRICS, RegressionVerdict


@dataclass(frozen=True)
class ThrottlingExcuse:
    """A regression that is only its throttled repeats being slow (worded by
    ``explain.unreliable_line``)."""

    summary: str  # RunConditions.summary: "throttled (thermal, 2 of 5 repeats)"
    stable_repeats: int  # the unmarked repeats (0: every repeat was marked)
    # per regressed metric: (metric, stable repeats' median, bar)
    within: tuple[tuple[str, float, float], ...]


def per_repeat(
    time_samples_s: Sequence[float | None],
    step_samples_s: Sequence[Sequence[float]],
    decode_samples_s: Sequence[float | None],
) -> dict[str, list[float | None]]:
    """Each time metric per repeat of a results record (its ``time_samples_s`` and its stages'
    ``step_samples_s`` and ``decode_samples_s``), as the gate judges it over the run: the total,
    the median step (step_s is the median of the steps), the decode."""
    return {
        "time_s": list(time_samples_s),
        "step_s": [float(statistics.median(s)) if s else None for s in step_samples_s],
        "decode_s": list(decode_samples_s),
    }


def throttling_excuse(
    verdict: RegressionVerdict,
    per_repeat: Mapping[str, Sequence[float | None]],
    conditions: RunConditions | None,
) -> ThrottlingExcuse | None:
    """Whether a "regressed" verdict is only the throttled repeats being slow; None when it is not.

    ``per_repeat``: each time metric's value per repeat (aligned with ``conditions.repeats``). Every
    gating regression must be a time metric (throttling slows the clock, it never adds bytes) whose
    unmarked repeats, judged alone, are under that metric's upper bar."""
    regressions = verdict.regressions
    if conditions is None or verdict.verdict != "regressed" or not regressions:
        return None
    marked = conditions.marked
    within: list[tuple[str, float, float]] = []
    for m in regressions:
        values = per_repeat.get(m.metric)
        if m.metric not in TIME_METRICS or m.interval is None or values is None:
            return None
        if not throttled_explain_slowness(values, marked, m.interval[1]):
            return None
        within.append(
            (m.metric, float(statistics.median(stable_values(values, marked))), m.interval[1])
        )
    return ThrottlingExcuse(conditions.summary, len(marked) - sum(marked), tuple(within))
