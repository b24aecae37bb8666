"""The figures of a typed record that the verdict's modules choose, read for the report: the
headline peak (``verdict.peak``, the one place that chooses it) and the GPU's clock."""

from __future__ import annotations

from dataclasses import asdict

from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.conditions import clock_label
from pytest_i2v.verdict.peak import HeadlinePeak, headline_peak


def headline_of(record: GenerationRecord) -> HeadlinePeak:
    """The record's headline peak."""
    return headline_peak(asdict(record.peak_memory))


def clock_text(record: GenerationRecord) -> str | None:
    """``conditions.clock_label`` of the record; None without conditions (the CPU)."""
    return clock_label(record.conditions.to_dict()) if record.conditions else None
