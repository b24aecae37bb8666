"""Outputs for the report's pictures: synthetic videos reduced as the plugin reduces them, and
records whose output changed, held or has no reference."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from pytest_i2v.measure.output import reduce_output
from pytest_i2v.record.output import compare_outputs
from pytest_i2v.record.parts import OutputComparison, OutputReference
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.fidelity import FidelityBar, FidelityVerdict
from tests.report_fixtures import document, record

FRAMES, SIZE = 16, 64
# The changed region of the brightened frame: rows, columns of the 64 px frame.
ROWS, COLUMNS = slice(10, 20), slice(30, 44)


def video(seed: int = 0) -> np.ndarray:
    """(1, F, H, W, 3) floats in [0, 1], away from 1 so a brightened pixel changes."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 0.6, (1, FRAMES, SIZE, SIZE, 3)).astype(np.float32)


def brightened(frames: np.ndarray, frame: int = FRAMES - 1) -> np.ndarray:
    """The same video with one region of one frame brighter."""
    changed = frames.copy()
    changed[0, frame, ROWS, COLUMNS] += 0.3
    return changed


LOSSLESS, LOSSY = FidelityBar(80.0, 0.999), FidelityBar(30.0, 0.9, latents_rule=False)


def compared(
    reference: OutputReference, current: OutputReference, verdict: FidelityVerdict
) -> OutputComparison:
    """As the plugin records it: the reference's output kept only where the two differ; a held
    one on the lossy bar (which the fixtures' small change keeps)."""
    figures = compare_outputs(reference, current)
    kept = None if figures.identical else reference
    lossy = verdict == "held"
    bar = LOSSY if lossy else LOSSLESS
    return OutputComparison(figures, bar, lossy, "the baseline's output", verdict, kept)


def output_record(
    nodeid: str,
    current: OutputReference | None,
    fidelity: OutputComparison | None = None,
) -> GenerationRecord:
    base = GenerationRecord.from_dict(record(nodeid, None, SIZE, FRAMES, 45.0, 2**30))
    return dataclasses.replace(base, output=current, fidelity=fidelity)


def changed_record(nodeid: str = "suites/t.py::test_changed", seed: int = 0) -> GenerationRecord:
    base = video(seed)
    reference, current = reduce_output(base), reduce_output(brightened(base))
    return output_record(nodeid, current, compared(reference, current, "changed"))


def held_record(nodeid: str = "suites/t.py::test_held", seed: int = 1) -> GenerationRecord:
    base = video(seed)
    nudged = base.copy()
    nudged[0, 0, 0, 0] += 0.01  # one pixel, one 8-bit step or so: held on a loose bar
    reference, current = reduce_output(base), reduce_output(nudged)
    return output_record(nodeid, current, compared(reference, current, "held"))


def identical_record(nodeid: str = "suites/t.py::test_same", seed: int = 2) -> GenerationRecord:
    current = reduce_output(video(seed))
    return output_record(nodeid, current, compared(current, current, "held"))


def document_with_outputs() -> dict[str, Any]:
    """The report fixture's document with a changed, a held and an identical output added."""
    doc = document()
    extra = [changed_record(), held_record(), identical_record()]
    doc["records"] = [*doc["records"], *(r.to_dict() for r in extra)]
    return doc
