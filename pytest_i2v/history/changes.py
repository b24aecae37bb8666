"""Change points: where one test's metric moved its level over the runs, and the exact events.

Two kinds of finding:

- **exact events**: the work digest or the software changed between two consecutive runs. They
  need no statistics (the work signature is exact), so they are listed as such, dated to the
  commit range between the two runs.
- **change points** in the figures, found in two steps, after the shape of Otava's method
  (E-divisive candidates, then a significance test that merges the candidates it cannot tell
  apart; Fleming et al. 2023):

  1. candidates: ``ruptures``' Pelt on the log of the figures with the ``l1`` cost (a segment's
     sum of absolute deviations from its median: a median-based fit, so the CPU's heavy tail, one
     run in several 30-40 % slow, does not make a segment of its own), segments of at least
     ``MIN_SEGMENT`` runs, the penalty ``PENALTY_PER_LOG_N`` x the noise scale x log(n), the noise
     scale being the median absolute deviation of consecutive differences (robust to the steps
     themselves);
  2. significance: each candidate's two neighbouring segments are compared by the Mann-Whitney U
     test (Otava uses Student's t; a rank test keeps its error rate under heavy tails); the least
     significant candidate above ``MAX_P_VALUE`` is merged away and the rest re-tested, until
     every remaining candidate is significant.

  Each change point keeps the commit range it falls in, the medians before and after, the effect
  (after / before - 1) with a bootstrap interval of the ratio of medians, and the exact events
  within ``EVENT_WINDOW`` runs of it ("the work changed at abc123..def456").

Pure: numpy, scipy and ruptures; no database, no pytest, no torch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import ruptures
from scipy import stats

from pytest_i2v.history.series import Series, SeriesPoint

MIN_SEGMENT = 5  # runs: a level must hold this long to be one
PENALTY_PER_LOG_N = 1.0  # Pelt's penalty in noise scales per log(n): benchmarks/change_points.py
MAX_P_VALUE = 0.001  # Otava's default significance
EVENT_WINDOW = 2  # runs either side of a change point whose exact events it names
CONFIDENCE = 0.95  # the effect's interval
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # the same history always gives the same interval


@dataclass(frozen=True)
class ExactEvent:
    """The work or the software changed between two consecutive runs."""

    kind: str  # "work" or "software"
    index: int  # the first run with the new digest
    before: SeriesPoint
    after: SeriesPoint

    def text(self) -> str:
        return f"the {self.kind} changed between {commit_range(self.before, self.after)}"


@dataclass(frozen=True)
class ChangePoint:
    """Where the level moved: the first run of the new level and the figures either side."""

    nodeid: str
    metric: str
    index: int  # the first run of the new level
    before: SeriesPoint  # the last run of the old level
    after: SeriesPoint  # the first run of the new level
    before_median: float
    after_median: float
    effect: float  # after / before - 1
    low: float  # the effect's interval
    high: float
    p_value: float  # Mann-Whitney U, the two neighbouring segments
    events: tuple[ExactEvent, ...] = ()  # the exact events within EVENT_WINDOW runs

    def summary(self) -> str:
        """``time_s +12.1 % [+9.8, +14.0] between abc1234..def5678 (p 2e-06); the work changed
        between ...``"""
        head = (
            f"{self.metric} {self.effect:+.1%} [{self.low:+.1%}, {self.high:+.1%}] between "
            f"{commit_range(self.before, self.after)} (median {self.before_median:.4g} -> "
            f"{self.after_median:.4g}, p {self.p_value:.1g})"
        )
        return "; ".join([head, *(event.text() for event in self.events)])


@dataclass(frozen=True)
class SeriesChanges:
    """One series' findings."""

    series: Series
    changes: tuple[ChangePoint, ...]
    events: tuple[ExactEvent, ...]


def commit_range(before: SeriesPoint, after: SeriesPoint) -> str:
    """``abc1234..def5678`` (git's range: after the first, up to and including the second)."""

    def short(point: SeriesPoint) -> str:
        return point.commit[:12] if point.commit else f"run {point.run_id[:8]} ({point.created})"

    return f"{short(before)}..{short(after)}"


def exact_events(points: Sequence[SeriesPoint]) -> list[ExactEvent]:
    """Each change of the work digest or the software between consecutive runs that know it."""
    found: list[ExactEvent] = []
    for index in range(1, len(points)):
        before, after = points[index - 1], points[index]
        for kind in ("work", "software"):
            old = before.work_digest if kind == "work" else before.software
            new = after.work_digest if kind == "work" else after.software
            if old is not None and new is not None and old != new:
                found.append(ExactEvent(kind, index, before, after))
    return found


def _noise_scale(logs: np.ndarray) -> float:
    """The per-run noise of the log figures, from consecutive differences (a step moves one
    difference only): MAD / 0.6745, over sqrt(2) for the difference of two."""
    differences = np.diff(logs)
    mad = float(np.median(np.abs(differences - np.median(differences))))
    return max(mad / 0.6745 / math.sqrt(2.0), 1e-9)


def _candidates(logs: np.ndarray) -> list[int]:
    """Pelt's breakpoints: the first index of each new segment."""
    if len(logs) < 2 * MIN_SEGMENT:
        return []
    penalty = PENALTY_PER_LOG_N * _noise_scale(logs) * math.log(len(logs))
    search = ruptures.Pelt(model="l1", min_size=MIN_SEGMENT, jump=1).fit(logs.reshape(-1, 1))
    return [int(b) for b in search.predict(pen=penalty)[:-1]]  # the last is len(logs)


def _p_value(left: np.ndarray, right: np.ndarray) -> float:
    if np.ptp(np.concatenate([left, right])) == 0:
        return 1.0  # all equal: nothing moved
    return float(stats.mannwhitneyu(left, right, alternative="two-sided").pvalue)


def _significant(logs: np.ndarray, candidates: list[int]) -> list[tuple[int, float]]:
    """Otava's merge: drop the least significant candidate above MAX_P_VALUE until none is."""
    kept = list(candidates)
    while kept:
        edges = [0, *kept, len(logs)]
        p_values = [
            _p_value(logs[edges[i - 1] : edges[i]], logs[edges[i] : edges[i + 1]])
            for i in range(1, len(edges) - 1)
        ]
        worst = int(np.argmax(p_values))
        if p_values[worst] <= MAX_P_VALUE:
            return list(zip(kept, p_values, strict=True))
        del kept[worst]
    return []


def _effect(before: np.ndarray, after: np.ndarray) -> tuple[float, float, float]:
    """after / before - 1 of the medians, with a bootstrap percentile interval."""
    ratio = float(np.median(after) / np.median(before))
    result = stats.bootstrap(
        (before, after),
        lambda b, a, axis=-1: np.median(a, axis=axis) / np.median(b, axis=axis),
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    low, high = result.confidence_interval
    return ratio - 1.0, float(low) - 1.0, float(high) - 1.0


def find_changes(series: Series) -> SeriesChanges:
    """The change points and the exact events of one series (figures <= 0 are left out: a
    metric not measured in that run)."""
    points = [p for p in series.points if p.value > 0 and math.isfinite(p.value)]
    events = exact_events(points)
    values = np.array([p.value for p in points], dtype=float)
    logs = np.log(values) if len(values) else values
    changes: list[ChangePoint] = []
    kept = _significant(logs, _candidates(logs))
    edges = [0, *(index for index, _ in kept), len(points)]
    for number, (index, p_value) in enumerate(kept, start=1):
        before, after = values[edges[number - 1] : index], values[index : edges[number + 1]]
        effect, low, high = _effect(before, after)
        near = tuple(e for e in events if abs(e.index - index) <= EVENT_WINDOW)
        changes.append(
            ChangePoint(
                series.nodeid,
                series.metric,
                index,
                points[index - 1],
                points[index],
                float(np.median(before)),
                float(np.median(after)),
                effect,
                low,
                high,
                p_value,
                near,
            )
        )
    return SeriesChanges(series, tuple(changes), tuple(events))
