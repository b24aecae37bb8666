"""Two works compared: ``diff`` names the rows whose work changed between a base and a head
signature (``signature.WorkSignature``) and estimates the step-time effect from those rows alone
(the unchanged rows cancel, so the estimate carries the noise of the changed part only), with an
interval from the repeated profiled steps; ``work_verdict`` reads that estimate, and
``locate_excess`` says where a step that does the same work spends its extra time.
Pure: no torch, no pytest."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from pytest_i2v.verdict.signature import (
    OP,
    STAGES,
    TIMED_KINDS,
    StageWork,
    WorkRow,
    WorkSignature,
    same_work,
)

KEPT_ROWS = 50  # changed rows a results record keeps, the largest time effect first
HOST_GAP = "(host gap)"  # the step's time in no op: Python, the scheduler's host code, waits
GAP = "gap"  # the kind of the host gap's row in a diff (last in the table, never in the estimate)

# 95 % two-sided t quantiles by degrees of freedom (scipy would do, but this module stays
# import-light).
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    30: 2.042,
}


def _t95(df: int) -> float:
    """The table's quantile at the largest df it holds not above ``df`` (conservative between
    rows)."""
    return _T95[max(k for k in _T95 if k <= df)] if df < 60 else 1.96


class ChangedRowDoc(TypedDict):
    """A ``ChangedRow`` in a results record (``records[].work.rows[]``)."""

    stage: str
    kind: str
    op: str
    shapes: str
    dtypes: str
    count_base: int
    count_head: int
    time_base_s: float
    time_head_s: float
    effect_s: float
    share_of_step_pct: float | None


class WorkDiffDoc(TypedDict):
    """``WorkDiff.to_dict()``: a results record's ``work``, before the judgement adds its
    ``verdict`` (and, for identical work, where the ``excess`` time sits)."""

    identical: bool
    effect_s: float
    effect_pct: float | None
    interval_pct: list[float] | None
    noise: list[str]
    rows: list[ChangedRowDoc]
    rows_total: int


@dataclass(frozen=True)
class ChangedRow:
    stage: str
    row: WorkRow  # the head's row, or the base's when the head has none
    count_base: int
    count_head: int
    time_base_s: float
    time_head_s: float
    share_of_step: float | None  # the head's time in % of the base step (the step stage), else None

    @property
    def effect_s(self) -> float:
        return self.time_head_s - self.time_base_s

    def cells(self, arrow: str = "->") -> tuple[str, str, str, str, str]:
        """Stage, op (shapes, dtypes), count base -> head, time base -> head, share of the step:
        what every
        "what changed" table shows."""
        share = f"{self.share_of_step:.1f} % of the step" if self.share_of_step is not None else "-"
        return (
            self.stage,
            self.row.label,
            f"{self.count_base} {arrow} {self.count_head}",
            f"{self.time_base_s * 1e3:.3f} {arrow} {self.time_head_s * 1e3:.3f} ms",
            share,
        )

    def to_dict(self) -> ChangedRowDoc:
        row = self.row
        return {
            "stage": self.stage,
            "kind": row.kind,
            "op": row.name,
            "shapes": row.shapes,
            "dtypes": row.dtypes,
            "count_base": self.count_base,
            "count_head": self.count_head,
            "time_base_s": self.time_base_s,
            "time_head_s": self.time_head_s,
            "effect_s": self.effect_s,
            "share_of_step_pct": self.share_of_step,
        }


@dataclass(frozen=True)
class WorkDiff:
    """Base vs head: ``identical`` when the digests agree; else the changed rows, largest time
    effect first, and the step-time effect the changed step rows explain (with its 95 %
    interval)."""

    identical: bool
    rows: tuple[ChangedRow, ...] = ()
    effect_s: float = 0.0
    effect_pct: float | None = None  # of the base step
    interval_pct: tuple[float, float] | None = None
    noise: tuple[str, ...] = ()  # the sources of noise either side named
    rows_total: int | None = (
        None  # every changed row, where ``rows`` keeps only the largest (None: all kept)
    )

    def to_dict(self, keep: int = KEPT_ROWS) -> WorkDiffDoc:
        """The largest ``keep`` rows (a dtype change touches every row: the first ones explain
        it)."""
        return {
            "identical": self.identical,
            "effect_s": self.effect_s,
            "effect_pct": self.effect_pct,
            "interval_pct": list(self.interval_pct) if self.interval_pct else None,
            "noise": list(self.noise),
            "rows": [r.to_dict() for r in self.rows[:keep]],
            "rows_total": self.count,
        }

    @property
    def count(self) -> int:
        """The changed rows, the host gap's row left out (it is shown beside them, not work)."""
        if self.rows_total is not None:
            return self.rows_total
        return sum(1 for r in self.rows if r.row.kind != GAP)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkDiff:
        rows = tuple(
            ChangedRow(
                stage=r["stage"],
                row=WorkRow(r["kind"], r["op"], r.get("shapes", ""), r.get("dtypes", "")),
                count_base=int(r["count_base"]),
                count_head=int(r["count_head"]),
                time_base_s=float(r["time_base_s"]),
                time_head_s=float(r["time_head_s"]),
                share_of_step=r.get("share_of_step_pct"),
            )
            for r in data.get("rows") or ()
        )
        interval = data.get("interval_pct")
        total = data.get("rows_total")
        return cls(
            bool(data.get("identical")),
            rows,
            float(data.get("effect_s") or 0.0),
            data.get("effect_pct"),
            (float(interval[0]), float(interval[1])) if interval else None,
            tuple(data.get("noise") or ()),
            int(total) if total is not None else None,
        )

    def summary(self) -> str:
        """One line: "work identical", or "work changed: +4.8 % of the step est. (+3.9..+5.7), 2
        ops"."""
        if self.identical:
            return "work identical"
        if self.effect_pct is None:
            return f"work changed: {self.count} row(s)"
        interval = (
            f" ({self.interval_pct[0]:+.1f}..{self.interval_pct[1]:+.1f})"
            if self.interval_pct
            else ""
        )
        return (
            f"work changed: {self.effect_pct:+.1f} % of the step est.{interval}, {self.count} "
            "row(s)"
        )


def _samples(rows: Sequence[WorkRow], steps: int) -> list[float]:
    """Per profiled step, the rows' summed time (a row without samples counts its median every
    step)."""
    if steps <= 0:
        return []
    return [
        sum((r.samples_s[i] if i < len(r.samples_s) else r.time_s) for r in rows)
        for i in range(steps)
    ]


def _mean_or(samples: list[float], rows: Sequence[WorkRow]) -> float:
    """The rows' mean time per profiled step; their summed medians where no step was sampled."""
    return statistics.fmean(samples) if samples else sum(r.time_s for r in rows)


def _interval(head: list[float], base: list[float]) -> tuple[float, float] | None:
    """95 % interval of mean(head) - mean(base) (Welch)."""
    if len(head) < 2 or len(base) < 2:
        return None
    variance = statistics.variance(head) / len(head) + statistics.variance(base) / len(base)
    df = max(1, min(len(head), len(base)) - 1)
    half = _t95(df) * math.sqrt(variance)
    centre = statistics.fmean(head) - statistics.fmean(base)
    return centre - half, centre + half


def diff(base: WorkSignature, head: WorkSignature, base_step_s: float | None = None) -> WorkDiff:
    """What changed from ``base`` to ``head``: rows present on one side only or with another count.
    Rows with the same key and count cancel: their time differences are noise, not work.
    ``base_step_s``: the base's timed (unprofiled) step, the effect's denominator; the profiled step
    is longer by the profiler's per-op cost, so a share of it understates the effect (its span is
    the fallback)."""
    noise = tuple(dict.fromkeys((*base.noise, *head.noise)))
    if same_work(base, head):
        return WorkDiff(True, noise=noise)
    step_base = base_step_s if base_step_s else base.step_s
    changed, step_rows = _changed_rows(base, head, step_base)
    changed.sort(key=lambda c: (-abs(c.effect_s), c.stage, c.row.key))
    gap_row = _host_gap_row(base, head, step_base)
    if gap_row is not None:
        changed.append(gap_row)
    head_samples = _samples(step_rows[1], head.profiled_steps)
    base_samples = _samples(step_rows[0], base.profiled_steps)
    # The estimate is what its interval is centred on: the difference of the per-step means.
    effect = _mean_or(head_samples, step_rows[1]) - _mean_or(base_samples, step_rows[0])
    interval = _interval(head_samples, base_samples)
    effect_pct = effect / step_base * 100.0 if step_base > 0 else None
    interval_pct = (
        (interval[0] / step_base * 100.0, interval[1] / step_base * 100.0)
        if interval and step_base > 0
        else None
    )
    return WorkDiff(False, tuple(changed), effect, effect_pct, interval_pct, noise)


def _changed_rows(
    base: WorkSignature, head: WorkSignature, step_base: float
) -> tuple[list[ChangedRow], tuple[list[WorkRow], list[WorkRow]]]:
    """The rows whose count or bytes changed, per stage; and the changed timed step rows (base's,
    head's): the only ones the estimate sums."""
    changed: list[ChangedRow] = []
    step_rows: tuple[list[WorkRow], list[WorkRow]] = ([], [])
    timed = set(TIMED_KINDS.get(head.device_kind, (OP,)))
    for stage in STAGES:
        old = {r.key: r for r in base.stages.get(stage, StageWork((), 0.0)).rows}
        new = {r.key: r for r in head.stages.get(stage, StageWork((), 0.0)).rows}
        for key in sorted(set(old) | set(new)):
            before, after = old.get(key), new.get(key)
            if (
                before is not None
                and after is not None
                and (before.count, before.bytes) == (after.count, after.bytes)
            ):
                continue
            row = after or before
            assert row is not None
            time_head = after.time_s if after else 0.0
            changed.append(
                ChangedRow(
                    stage=stage,
                    row=row,
                    count_base=before.count if before else 0,
                    count_head=after.count if after else 0,
                    time_base_s=before.time_s if before else 0.0,
                    time_head_s=time_head,
                    share_of_step=time_head / step_base * 100.0
                    if stage == "step" and step_base > 0
                    else None,
                )
            )
            if stage == "step" and row.kind in timed:
                if before is not None:
                    step_rows[0].append(before)
                if after is not None:
                    step_rows[1].append(after)
    return changed, step_rows


def _host_gap_row(base: WorkSignature, head: WorkSignature, step_base: float) -> ChangedRow | None:
    """The step's time outside every timed row, base against head; None without both steps.
    Shown, not added to the estimate: under the profiler each added op call also adds the
    profiler's own cost to the gap (benchmarks/work_signature_gate.py prints both sums)."""
    old_step, new_step = base.stages.get("step"), head.stages.get("step")
    if old_step is None or new_step is None:
        return None
    gap_base = old_step.host_gap_s(base.device_kind)
    gap_head = new_step.host_gap_s(head.device_kind)
    share = gap_head / step_base * 100.0 if step_base > 0 else None
    return ChangedRow("step", WorkRow(GAP, HOST_GAP), 1, 1, gap_base, gap_head, share)


def work_verdict(work: WorkDiff | None, min_effect_pct: float) -> str | None:
    """What the work says on its own: None (no comparison), "identical", "changed" (within the
    minimum effect), "regressed" or "improved" (beyond it, the interval excluding no change)."""
    if work is None:
        return None
    if work.identical:
        return "identical"
    if work.effect_pct is None:
        return "changed"
    low, high = work.interval_pct or (work.effect_pct, work.effect_pct)
    if work.effect_pct > min_effect_pct and low > 0:
        return "regressed"
    if work.effect_pct < -min_effect_pct and high < 0:
        return "improved"
    return "changed"


FEW_OPS = 3  # "a few ops": at most this many rows carry most (CARRIED) of the excess ...
CARRIED = 0.8
# ... while they are at most this share of the base's op time (a slower machine slows every op in
# proportion, so there the rows that carry 80 % of the excess are ~80 % of the time)
FEW_OPS_SHARE = 0.5


def locate_excess(base: WorkSignature, head: WorkSignature) -> str | None:
    """Where a profiled step that does the same work spends its extra time: in the host gap (Python,
    the scheduler, waits), in a few ops (a library or driver change), or spread over every op (the
    machine: a slow process, a neighbour, a clock). None when the head's step is not slower."""
    old_step, new_step = base.stages.get("step"), head.stages.get("step")
    if old_step is None or new_step is None or old_step.span_s <= 0:
        return None
    excess = new_step.span_s - old_step.span_s
    if excess <= 0:
        return None
    kinds = TIMED_KINDS.get(head.device_kind, (OP,))
    old = {r.key: r for r in old_step.rows if r.kind in kinds}
    new = {r.key: r for r in new_step.rows if r.kind in kinds}
    common = [key for key in new if key in old]
    gap = new_step.host_gap_s(head.device_kind) - old_step.host_gap_s(base.device_kind)
    per_step = f"+{excess / old_step.span_s * 100.0:.1f} % per step"
    if gap > 0.5 * excess:
        return (
            f"({per_step}) is in the host gap: +{gap * 1e3:.3f} ms per step outside every op "
            "(Python, the scheduler, waits)"
        )
    deltas = sorted(((new[key].time_s - old[key].time_s, key) for key in common), reverse=True)
    ratios = [new[key].time_s / old[key].time_s for key in common if old[key].time_s > 0]
    median_ratio = statistics.median(ratios) if ratios else 1.0
    op_excess = sum(delta for delta, _ in deltas if delta > 0)
    carrying: list[tuple[float, tuple[str, str, str, str]]] = []
    carried = 0.0
    for delta, key in deltas:
        if delta <= 0 or carried >= CARRIED * op_excess:
            break
        carrying.append((delta, key))
        carried += delta
    base_time = sum(old[key].time_s for key in common)
    carried_share = (
        sum(old[key].time_s for _, key in carrying) / base_time if base_time > 0 else 1.0
    )
    if carrying and len(carrying) <= FEW_OPS and carried_share <= FEW_OPS_SHARE:
        named = ", ".join(f"{new[key].label} +{delta * 1e3:.3f} ms" for delta, key in carrying)
        return (
            f"({per_step}) sits in a few ops: {named} (the median op "
            f"{(median_ratio - 1) * 100.0:+.0f} %)"
        )
    return (
        f"({per_step}) is spread over every op (the median op {(median_ratio - 1) * 100.0:+.0f} "
        "%): "
        f"the machine, not the code"
    )
