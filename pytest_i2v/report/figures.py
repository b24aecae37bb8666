"""The figures of a typed record that the verdict's modules choose, read for the report: the GPU's
clock (the headline peak is ``GenerationRecord.headline_peak``)."""

from __future__ import annotations

from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.conditions import clock_label


def clock_text(record: GenerationRecord) -> str | None:
    """``conditions.clock_label`` of the record; None without conditions (the CPU)."""
    return clock_label(record.conditions.to_dict()) if record.conditions else None
