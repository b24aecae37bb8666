"""The study's latency classes: how long users wait before a generation stops being acceptable."""

from __future__ import annotations

from collections.abc import Sequence

# The study's user-patience thresholds (20 testers): < 30 s 85 % satisfied, 30-60 s 60 %,
# > 60 s 25 %.
DEFAULT_LATENCY_THRESHOLDS_S = (30.0, 60.0)
LATENCY_CLASSES = ("good", "acceptable", "too-slow")


def latency_class(
    time_s: float | None, thresholds: Sequence[float] = DEFAULT_LATENCY_THRESHOLDS_S
) -> str | None:
    if time_s is None:
        return None
    good, acceptable = thresholds
    return "good" if time_s < good else "acceptable" if time_s <= acceptable else "too-slow"


def parse_thresholds(text: str) -> tuple[float, float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError("use two numbers of seconds, e.g. 30,60") from None
    if len(values) != 2 or not 0 < values[0] < values[1]:
        raise ValueError("use two increasing positive numbers of seconds, e.g. 30,60")
    return values[0], values[1]
