"""Which pipeline a result belongs to, and results grouped by pipeline.

The one place that reads a record's pipeline: every view (report, recommendation, comparison) goes
through ``pipeline_of``, so a document written before records named their pipeline reads the same
everywhere. Pure: no torch, no pytest (the review CLI imports it)."""

from __future__ import annotations

from collections.abc import Iterable

from pytest_i2v.pipelines import DEFAULT_PIPELINE, PIPELINES
from pytest_i2v.record.record import GenerationRecord


def pipeline_of(record: GenerationRecord) -> str:
    """The record's pipeline; records from before pipelines were recorded are I2VGen-XL's (the only
    one then)."""
    return str(record.setting("pipeline") or DEFAULT_PIPELINE)


def pipeline_order(names: Iterable[str]) -> list[str]:
    """The registry's order first, then names it does not know, in the order they came."""
    seen = list(dict.fromkeys(names))
    return [name for name in PIPELINES if name in seen] + [
        name for name in seen if name not in PIPELINES
    ]


def group_by_pipeline(records: Iterable[GenerationRecord]) -> dict[str, list[GenerationRecord]]:
    """The records of each pipeline, in run order within a pipeline; pipelines in
    ``pipeline_order``."""
    groups: dict[str, list[GenerationRecord]] = {}
    for record in records:
        groups.setdefault(pipeline_of(record), []).append(record)
    return {name: groups[name] for name in pipeline_order(groups)}
