"""The hardware's conditions under each repeat: clocks, temperature, power and NVML's throttle
reasons, and what they come to for a run ("stable" or "throttled (thermal, 3 of 5 repeats)").

Pure: no torch, no NVML, no pytest. ``measure.device`` reads a ``RepeatConditions`` per repeat;
``assess`` marks the repeats to distrust; ``gate_loop`` asks ``throttled_explain_slowness`` whether
a regression is only the throttled repeats being slow (then the gate says "unreliable")."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

# NVML's clocks-event (formerly "throttle") reason bits that mean the card was held back. Idle
# (0x1), application clocks (0x2), sync boost (0x10) and display clocks (0x100) are settings or
# idling, not a slowdown of the work being measured, and are ignored.
THROTTLE_BITS: Mapping[int, str] = {
    0x4: "power",  # SW power cap: the board is at its power limit
    0x8: "hw-slowdown",  # HW slowdown (thermal or power brake, asserted by the board)
    0x20: "thermal",  # SW thermal slowdown
    0x40: "thermal",  # HW thermal slowdown
    0x80: "power-brake",  # HW power brake (external power supply signal)
    0x200: "board-limit",  # board limit (the older throttle-reasons query only)
    0x400: "reliability",  # reliability (likewise)
}
# Without a known base clock: a repeat whose SM clock is further than this from the run's median ran
# on another clock. With one: a repeat more than this below the base (or locked) clock was held
# back.
CLOCK_TOLERANCE = 0.03
# Datacenter boards sit at their software power cap under sustained load and boost above their base
# clock as power allows: a power cap with the clock at or above the base (or locked) clock is the
# board working as designed, not a slowdown of the work.
NORMAL_AT_BASE_CLOCK = frozenset({"power"})
# A slowdown is excused as throttling only with at least this many stable repeats to judge by.
MIN_STABLE_REPEATS = 2


def throttle_reasons(mask: int | None) -> tuple[str, ...]:
    """The throttling reasons in an NVML reasons bitmask, each named once, in a fixed order."""
    if not mask:
        return ()
    names: list[str] = []
    for bit, name in THROTTLE_BITS.items():
        if mask & bit and name not in names:
            names.append(name)
    return tuple(names)


class RepeatConditionsDoc(TypedDict, total=False):
    """A ``RepeatConditions`` in a results record (``records[].conditions.repeats[]``)."""

    sm_clock_mhz: float | None
    mem_clock_mhz: float | None
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None
    reasons: list[str]


# What a results record's conditions hold: the summary, the clocks, the repeats and their marks.
RunConditionsField = str | float | None | list[RepeatConditionsDoc] | list[list[str]]


@dataclass(frozen=True)
class RepeatConditions:
    """What NVML said during one repeat: the SM and memory clocks (median of the samples), the
    hottest temperature and highest power draw seen, the power limit, and every throttle reason
    seen at any sample."""

    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> RepeatConditionsDoc:
        return {
            "sm_clock_mhz": self.sm_clock_mhz,
            "mem_clock_mhz": self.mem_clock_mhz,
            "temperature_c": self.temperature_c,
            "power_w": self.power_w,
            "power_limit_w": self.power_limit_w,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: RepeatConditionsDoc) -> RepeatConditions:
        return cls(
            sm_clock_mhz=data.get("sm_clock_mhz"),
            mem_clock_mhz=data.get("mem_clock_mhz"),
            temperature_c=data.get("temperature_c"),
            power_w=data.get("power_w"),
            power_limit_w=data.get("power_limit_w"),
            reasons=tuple(data.get("reasons") or ()),
        )

    @property
    def read(self) -> bool:
        """Whether NVML said anything at all (on the CPU or without NVML, nothing is read)."""
        return self.sm_clock_mhz is not None or bool(self.reasons)


@dataclass(frozen=True)
class RunConditions:
    """A run's repeats with the marks they got: ``marks[i]`` says why repeat i is not to be trusted
    (empty: it ran under stable conditions)."""

    repeats: tuple[RepeatConditions, ...]
    marks: tuple[tuple[str, ...], ...]
    median_sm_clock_mhz: float | None  # over every repeat: the clock under the run's median time
    locked_sm_clock_mhz: float | None = None  # --i2v-lock-clocks: the clock the GPU was held at
    reference_sm_clock_mhz: float | None = (
        None  # what "off the median" is measured from (see assess)
    )
    base_sm_clock_mhz: float | None = (
        None  # NVML's default applications clock: the board's base clock
    )

    @property
    def marked(self) -> tuple[bool, ...]:
        return tuple(bool(m) for m in self.marks)

    @property
    def stable(self) -> bool:
        return not any(self.marked)

    @property
    def summary(self) -> str:
        """``stable``, or ``throttled (thermal, power, 3 of 5 repeats)``, or ``clock off the median
        (2 of 5 repeats)``; ``not read`` when NVML gave nothing."""
        if not any(r.read for r in self.repeats):
            return "not read"
        count = sum(self.marked)
        if not count:
            return "stable"
        reasons: list[str] = []
        for mark in self.marks:
            for reason in mark:
                if reason != "clock" and reason not in reasons:
                    reasons.append(reason)
        of = f"{count} of {len(self.repeats)} repeats"
        if reasons:
            return f"throttled ({', '.join(reasons)}, {of})"
        return f"clock off the median ({of})"

    def to_dict(self) -> dict[str, RunConditionsField]:
        return {
            "summary": self.summary,
            "median_sm_clock_mhz": self.median_sm_clock_mhz,
            "locked_sm_clock_mhz": self.locked_sm_clock_mhz,
            "reference_sm_clock_mhz": self.reference_sm_clock_mhz,
            "base_sm_clock_mhz": self.base_sm_clock_mhz,
            "repeats": [r.to_dict() for r in self.repeats],
            "marks": [list(m) for m in self.marks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConditions:
        return cls(
            repeats=tuple(RepeatConditions.from_dict(r) for r in data.get("repeats") or ()),
            marks=tuple(tuple(m) for m in data.get("marks") or ()),
            median_sm_clock_mhz=data.get("median_sm_clock_mhz"),
            locked_sm_clock_mhz=data.get("locked_sm_clock_mhz"),
            reference_sm_clock_mhz=data.get("reference_sm_clock_mhz"),
            base_sm_clock_mhz=data.get("base_sm_clock_mhz"),
        )


def clock_label(conditions: Mapping[str, RunConditionsField] | None) -> str | None:
    """What the report and the terminal print beside the time: the median SM clock over the run, the
    lock, and the conditions when they were not stable ("1410 MHz, throttled (thermal, 2 of 5
    repeats)"); None for a record without conditions (the CPU)."""
    if not conditions:
        return None
    run = RunConditions.from_dict(conditions)
    parts = []
    if run.median_sm_clock_mhz:
        parts.append(f"{run.median_sm_clock_mhz:.0f} MHz")
    if run.locked_sm_clock_mhz:
        parts.append(f"locked at {run.locked_sm_clock_mhz:.0f} MHz")
    if run.summary != "stable":
        parts.append(run.summary)
    return ", ".join(parts) or None


def assess(
    repeats: Sequence[RepeatConditions],
    locked_sm_clock_mhz: float | None = None,
    tolerance: float = CLOCK_TOLERANCE,
    base_sm_clock_mhz: float | None = None,
) -> RunConditions:
    """Mark each repeat the hardware held back.

    With a floor (the locked clock, else the board's base clock): a repeat is marked for a throttle
    reason, except a power cap while its clock is at or above the floor (``NORMAL_AT_BASE_CLOCK``),
    and for a clock more than ``tolerance`` below the floor ("clock"); boost clocks above it move
    freely. Without one (NVML gave no base clock): for every throttle reason, and for a clock more
    than ``tolerance`` off the reference: the median SM clock of the repeats without a throttle
    reason where there are any, so that when most repeats ran throttled the card's own clock is the
    reference and the stable minority is not marked for being off the throttled majority."""
    clocks = [r.sm_clock_mhz for r in repeats if r.sm_clock_mhz]
    floor = locked_sm_clock_mhz or base_sm_clock_mhz
    unthrottled = [r.sm_clock_mhz for r in repeats if r.sm_clock_mhz and not r.reasons]
    reference = float(statistics.median(unthrottled or clocks)) if clocks else None
    marks: list[tuple[str, ...]] = []
    for repeat in repeats:
        clock = repeat.sm_clock_mhz
        if floor:
            at_floor = clock is not None and clock >= floor
            mark = [r for r in repeat.reasons if not (at_floor and r in NORMAL_AT_BASE_CLOCK)]
            if clock and clock < floor * (1.0 - tolerance):
                mark.append("clock")
        else:
            mark = list(repeat.reasons)
            if reference and clock and abs(clock / reference - 1.0) > tolerance:
                mark.append("clock")
        marks.append(tuple(mark))
    median = float(statistics.median(clocks)) if clocks else None
    return RunConditions(
        tuple(repeats), tuple(marks), median, locked_sm_clock_mhz, reference, base_sm_clock_mhz
    )


def stable_values(values: Sequence[float | None], marked: Sequence[bool]) -> list[float]:
    """The values of the repeats that were not marked (``values`` and ``marked`` align by
    repeat)."""
    return [v for v, m in zip(values, marked, strict=True) if not m and v is not None]


def throttled_explain_slowness(
    values: Sequence[float | None], marked: Sequence[bool], bar: float
) -> bool:
    """Whether a run over the gate's ``bar`` is slow only because of its marked repeats: at least
    ``MIN_STABLE_REPEATS`` repeats are unmarked, and judged alone they are under the bar. With
    fewer, nothing stable shows what the change costs: a change that throttles every repeat (more
    power drawn, a power cap reached) is still the change's, and one stable repeat is not a
    measurement."""
    if len(values) != len(marked) or not any(marked):
        return False
    stable = stable_values(values, marked)
    return len(stable) >= MIN_STABLE_REPEATS and statistics.median(stable) < bar
