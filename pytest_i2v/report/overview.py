"""The report's first picture: every test's change against its baseline, worst first.

One row per test the gate compared: the median time's change and its pass band, and the headline
peak's change (``pytest_i2v.verdict.peak``), each in per cent of the baseline median, with the
decision (``outcome.decide``) that colours it. Tests with nothing to compare (recorded as new, out
of memory) are counted beside the chart, not drawn."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_i2v.metrics import TIME_S
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.gate import MetricVerdict
from pytest_i2v.verdict.outcome import SEVERITY

TIME_METRIC = TIME_S  # the test's headline time: the median generation


@dataclass(frozen=True)
class Change:
    """One metric against its baseline, in per cent of the baseline median."""

    pct: float
    band: tuple[float, float] | None  # the pass band; None where the metric had no band
    gating: bool  # False: reported, not judged (timings not comparable, a report-only metric)

    @classmethod
    def of(cls, metric: MetricVerdict | None) -> Change | None:
        if metric is None or metric.delta_pct is None:
            return None
        baseline, interval = metric.baseline, metric.interval
        band = None
        if baseline and interval:
            band = ((interval[0] / baseline - 1.0) * 100.0, (interval[1] / baseline - 1.0) * 100.0)
        return cls(float(metric.delta_pct), band, bool(metric.gating))


@dataclass(frozen=True)
class OverviewRow:
    nodeid: str
    kind: str  # the decision's kind
    time: Change
    memory: Change | None  # the headline peak's metric; None where the gate did not compare it

    @property
    def worst_pct(self) -> float:
        return max(self.time.pct, self.memory.pct if self.memory else self.time.pct)


@dataclass(frozen=True)
class Overview:
    rows: tuple[OverviewRow, ...]  # worst first: by the decision's severity, then the larger change
    # (decision kind, tests) with nothing to compare, severest first
    not_drawn: tuple[tuple[str, int], ...]

    @property
    def caption(self) -> str:
        several = len(self.rows) != 1
        drawn = (
            f"{len(self.rows)} test{'s' if several else ''} against "
            f"{'their' if several else 'its'} baseline, worst first"
        )
        if not self.not_drawn:
            return drawn
        return f"{drawn}; not drawn (nothing to compare): " + ", ".join(
            f"{count} {kind}" for kind, count in self.not_drawn
        )


RANK: dict[str, int] = {kind: index for index, kind in enumerate(SEVERITY)}


def _severity(kind: str) -> int:
    return RANK.get(kind, len(RANK))


def overview(
    records: Sequence[GenerationRecord], kind_of: Callable[[GenerationRecord], str]
) -> Overview:
    """``kind_of(record)``: the record's decision kind (``report.context.outcome_of``)."""
    rows: list[OverviewRow] = []
    not_drawn: Counter[str] = Counter()
    for record in records:
        kind = kind_of(record)
        metrics = {m.metric: m for m in (record.verdict.metrics if record.verdict else ())}
        time = Change.of(metrics.get(TIME_METRIC))
        if time is None:
            not_drawn[kind] += 1
            continue
        peak_key = record.headline_peak().key
        rows.append(
            OverviewRow(
                record.nodeid,
                kind,
                time,
                Change.of(metrics.get(peak_key)) if peak_key else None,
            )
        )
    rows.sort(key=lambda r: (_severity(r.kind), -r.worst_pct))
    return Overview(
        tuple(rows), tuple(sorted(not_drawn.items(), key=lambda item: _severity(item[0])))
    )
