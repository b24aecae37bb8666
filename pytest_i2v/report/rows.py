"""What the report's sections list, row by row: typed for the code that builds them, read by the
templates as plain values (a template reads a dataclass's fields and a TypedDict's keys alike)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.results import Recommendation
from pytest_i2v.verdict.gate import MetricVerdict
from pytest_i2v.verdict.work_diff import WorkDiff


@dataclass(frozen=True)
class Chart:
    title: str
    svg: str
    wide: bool  # spans the grid: wider than a column


class MemoryOptionRow(TypedDict):
    """A memory option against the plain run of its generation (``memory_option_rows``)."""

    option: str
    nodeid: str
    pipeline: str
    time_s: float | None
    time_added_pct: float | None
    memory_saved_pct: float | None
    memory_figure: str
    no_effect: str | None  # every option of the row does nothing here
    no_effect_options: list[str]  # some do (the saving is the others')


class PipelineGroup(TypedDict):
    """What each section shows of one pipeline."""

    name: str
    records: list[GenerationRecord]
    memory_options: list[MemoryOptionRow]
    recommendation: Recommendation | None
    charts: list[Chart]  # the HTML's (``html.render_html``), for a report of several pipelines


@dataclass(frozen=True)
class RegressionRow:
    """A test listed under "Regressions": why, and the command that re-baselines it."""

    record: GenerationRecord
    kind: str
    reason: str
    metrics: list[MetricVerdict]
    env_changes: tuple[str, ...]
    command: str


@dataclass(frozen=True)
class UnreliableRow:
    record: GenerationRecord
    reason: str
    clock: str
    metrics: list[MetricVerdict]


@dataclass(frozen=True)
class WorkChange:
    """A test whose work signature changed: its node id and the diff."""

    nodeid: str
    work: WorkDiff
