"""What the history hands the change-point search: one test's metric over the runs, oldest first.

The store (``history.store``) reads these from its database; ``history.changes`` finds where their
level moved. Pure data: no database, no pytest, no torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeriesPoint:
    """One run's figure for one test and metric."""

    run_id: str  # the run's identity in the store (one results document added once)
    commit: str | None  # the code's commit, where the run knew it
    created: str  # ISO time the run was written
    value: float  # the metric's figure (seconds, bytes)
    work_digest: str | None = None  # the work signature's digest; None: not profiled
    software: str | None = None  # a digest of the software versions (torch, diffusers, driver, ...)


@dataclass(frozen=True)
class Series:
    """One test's metric over the runs, in the order they were run."""

    nodeid: str
    metric: str  # a pytest_i2v.metrics name: time_s, step_s, a peak's key
    points: tuple[SeriesPoint, ...]
