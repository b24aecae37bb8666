"""The article's RTX 4090 figures as a published reference: compared for information only."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

import yaml

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.storage import JsonValue

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:  # the same protocol, at its 3.10 address
        from importlib.abc import Traversable

REFERENCE_SCHEMA = "pytest-i2v/published-reference"
# Package data, read through importlib.resources, so a non-editable or zipped install finds it.
SHIPPED_REFERENCE: Traversable = files("pytest_i2v") / "data" / "rtx4090-published.yaml"

# A generation's shape as the study names it: width, height, frames, steps, guidance.
Shape = tuple[int | None, int | None, int | None, int | None, float | None]


class _PublishedGeneration(TypedDict):
    label: str
    width: int
    height: int
    frames: int
    steps: int
    guidance: float


class PublishedRow(_PublishedGeneration, total=False):
    """One published figure: the generation, and what the article measured of it."""

    dtype: str  # absent: the article did not say
    time_s: float
    gen_fps: float
    peak_vram_gb: float


class PublishedReference(TypedDict, total=False):
    """The reference file's shape (``data/rtx4090-published.yaml``)."""

    schema: str
    schema_version: int
    provenance: str
    source: str
    hardware: dict[str, str]
    method: str
    precision: str
    rows: list[PublishedRow]


class MeasuredFigures(TypedDict):
    nodeid: str | None
    time_s: float | None
    provenance: str | None
    peak_gb: float | None
    time_ratio: float | None  # measured / published time


class ComparisonRow(TypedDict):
    label: str
    published_time_s: float | None
    published_peak_vram_gb: float | None
    measured: MeasuredFigures | None


class PublishedComparison(TypedDict):
    """The results document's ``published_reference``."""

    provenance: str
    source: str | None
    hardware: dict[str, str] | None
    rows: list[ComparisonRow]
    note: str | None


def _whole(value: JsonValue) -> int | None:
    """A size or count as the config holds it; None where absent."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class _MeasuredRun:
    """What the comparison reads of a successful record."""

    shape: Shape
    dtype: str | None
    plain: bool  # no memory options
    nodeid: str | None
    time_s: float | None
    provenance: str | None
    peak_bytes: int | None

    @classmethod
    def from_record(cls, record: GenerationRecord) -> _MeasuredRun:
        config = record.config
        study = config.get("study")  # a scaled run: the study's shape it stands for
        scaled = study if isinstance(study, Mapping) else {}
        guidance = record.setting("guidance")
        dtype, provenance = record.setting("dtype"), record.setting("provenance")
        return cls(
            shape=(
                _whole(scaled.get("width", config.get("width"))),
                _whole(scaled.get("height", config.get("height"))),
                _whole(config.get("frames")),
                _whole(scaled.get("steps", config.get("steps"))),
                float(guidance) if isinstance(guidance, (int, float)) else None,
            ),
            dtype=None if dtype is None else str(dtype),
            plain=not record.memory_options,
            nodeid=record.nodeid,
            time_s=record.time_s,
            provenance=None if provenance is None else str(provenance),
            peak_bytes=record.headline_peak().bytes,
        )

    def figures(self, published_time_s: float | None) -> MeasuredFigures:
        return {
            "nodeid": self.nodeid,
            "time_s": self.time_s,
            "provenance": self.provenance,
            "peak_gb": self.peak_bytes / 1e9 if self.peak_bytes else None,
            "time_ratio": self.time_s / published_time_s
            if self.time_s and published_time_s
            else None,
        }


def shipped_reference() -> PublishedReference:
    """The published RTX 4090 figures that ship with the package."""
    return load_reference(SHIPPED_REFERENCE)


def load_reference(path: Path | Traversable) -> PublishedReference:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise I2VUsageError(
            f"published reference {path} cannot be read ({type(exc).__name__})"
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("schema") != REFERENCE_SCHEMA
        or data.get("provenance") != "published"
    ):
        raise I2VUsageError(
            f"{path} is not a published reference "
            f"(schema {REFERENCE_SCHEMA!r}, provenance: published)"
        )
    # Only ever read for information, next to the results: its rows are taken as the file says.
    return cast(PublishedReference, data)


def _comparison_row(row: PublishedRow, runs: list[_MeasuredRun]) -> ComparisonRow:
    """The published figure, with the first plain run of the same generation (and dtype, where the
    article names one)."""
    shape = (row["width"], row["height"], row["frames"], row["steps"], row["guidance"])
    match = next(
        (
            run
            for run in runs
            if run.shape == shape
            and (row.get("dtype") is None or run.dtype == row.get("dtype"))
            and run.plain
        ),
        None,
    )
    return {
        "label": row["label"],
        "published_time_s": row.get("time_s"),
        "published_peak_vram_gb": row.get("peak_vram_gb"),
        "measured": match.figures(row.get("time_s")) if match is not None else None,
    }


def compare_published(
    records: Iterable[GenerationRecord], reference: PublishedReference
) -> PublishedComparison:
    """Rows pairing each published figure with a measured record of the same generation.

    Never a verdict: the published numbers come from another machine, software stack and app.
    A plain dict: it goes into the results document as it is."""
    runs = [_MeasuredRun.from_record(r) for r in records if r.outcome == "ok"]
    rows = [_comparison_row(row, runs) for row in reference.get("rows", [])]
    comparable = [run for run in runs if run.provenance != "tiny-random-weights"]
    note = (
        None
        if comparable
        else "measured on the tiny model (scaled study): not comparable with the published figures"
    )
    return {
        "provenance": "published",
        "source": reference.get("source"),
        "hardware": reference.get("hardware"),
        "rows": rows if comparable else [],
        "note": note,
    }
