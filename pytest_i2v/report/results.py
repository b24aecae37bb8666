"""A results document as the report reads it: its records typed (``GenerationRecord``), the rest
of it (the gate, the profile, the environment, the study's matrices, the published reference,
the skipped tests) in the types below, parsed once where the document enters the report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from pytest_i2v.record.document import read_records
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.storage import JsonValue

WHERE = "the results document"  # how a record that cannot be read is named


def shown(value: JsonValue) -> str | None:
    """A value as a template prints it: its text, None kept (a template tells None apart)."""
    return None if value is None else str(value)


class Skipped(TypedDict):
    """A skipped test in the document: the node id and pytest's reason."""

    nodeid: str
    reason: str


class CostFit(TypedDict):
    """``CostModel.to_dict``: a fitted cost model."""

    model: str
    terms: list[str]
    coefficients: list[float]
    max_error_pct: float
    points: int


class Fits(TypedDict):
    peak_gb: CostFit
    step_s: CostFit
    encode_decode_s: CostFit
    total_s_max_error_pct: float | None


class MatrixCell(TypedDict):
    """``study.recommendation.MatrixCell.to_dict``: one memory class's recommendation."""

    memory_gb: float
    resolution: str | None
    frames: int | None
    peak_gb: float | None
    time_s: float | None
    latency: str | None
    measured: bool


class Recommendation(TypedDict):
    """``study.recommend``: one pipeline's recommendation matrix."""

    memory_figure: str
    dtype: str
    steps: int
    run_steps: int
    margin_gb: float
    fits: Fits
    cells: list[MatrixCell]
    note: str | None


class PublishedMeasured(TypedDict):
    nodeid: str
    time_s: float | None
    provenance: str | None
    peak_gb: float | None
    time_ratio: float | None


class PublishedRow(TypedDict):
    label: str
    published_time_s: float | None
    published_peak_vram_gb: float | None
    measured: PublishedMeasured | None


class PublishedReference(TypedDict):
    """``study.reference.compare_published``: the published figures beside this run's."""

    provenance: str
    source: str | None
    hardware: str | None
    rows: list[PublishedRow]
    note: str | None


@dataclass(frozen=True)
class GateSummary:
    """The document's ``gate``: the run's mode and its headline, decided when it ran."""

    mode: str | None = None
    fails: bool | None = None  # None: the document does not say (then the records decide)
    headline: str = ""
    unreliable_run: str | None = None  # why the whole run is unreliable (the machine speed moved)


@dataclass(frozen=True)
class ResultsView:
    """Everything the report reads of a results document."""

    records: list[GenerationRecord]
    created: str  # as the page prints it ("" when the document has none)
    gate: GateSummary
    profile: dict[str, str | None]  # the profile's keys, their values as the page prints them
    profile_memory_gb: float | None
    environment: dict[str, JsonValue]
    skipped: list[Skipped]
    # by pipeline; a document from before per-pipeline matrices has only ``recommendation``
    recommendations: dict[str, Recommendation] | None
    recommendation: Recommendation | None
    published: PublishedReference | None
    latency_thresholds: list[float]
    safety_margin_gb: float

    def profile_name(self, default: str) -> str:
        """The profile's name as a line prints it, ``default`` when the document has none."""
        return str(self.profile.get("name", default))

    @property
    def shown_environment(self) -> dict[str, str | None]:
        """The environment's values as the page prints them."""
        return {key: shown(value) for key, value in self.environment.items()}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ResultsView:
        """The view of a results document (a version 1 one's records upgraded)."""
        gate = document.get("gate") or {}
        profile = document.get("profile") or {}
        settings = document.get("settings") or {}
        return cls(
            records=read_records({"records": [], **document}, WHERE),
            created=str(document["created"]) if "created" in document else "",
            gate=GateSummary(
                mode=gate.get("mode"),
                fails=bool(gate["fails"]) if "fails" in gate else None,
                headline=gate.get("headline") or "",
                unreliable_run=gate.get("unreliable_run") or None,
            ),
            profile={key: shown(value) for key, value in profile.items()},
            profile_memory_gb=profile.get("memory_gb"),
            environment=dict(document.get("environment") or {}),
            skipped=list(document.get("skipped", [])),
            recommendations=dict(document.get("recommendations") or {})
            if "recommendations" in document
            else None,
            recommendation=document.get("recommendation") or None,
            published=document.get("published_reference"),
            latency_thresholds=settings.get("latency_thresholds") or [30, 60],
            safety_margin_gb=settings.get("safety_margin_gb") or 2.0,
        )
