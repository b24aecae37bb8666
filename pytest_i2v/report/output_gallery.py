"""Which tests' outputs the HTML report draws, in what order, and within what size: the tests whose
output changed first and unfolded, the rest folded; at most ``TEST_BUDGET_BYTES`` of images per
test and ``PAGE_BUDGET_BYTES`` per page. What does not fit is named with a note, never dropped
silently."""

from __future__ import annotations

import binascii
import dataclasses
import zlib
from dataclasses import dataclass

from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.frames import OutputPictures, Picture, draw_animation, draw_frames, legend

# The page stays one file a CI artifact viewer opens quickly. Measured on noise-like 64 px frames
# drawn at 128 px (PNG's worst case, 2026-12-07): a changed test's nine pictures and its animation
# take about 300 KB, so a test's budget holds them; the page's, about 13 such tests.
TEST_BUDGET_BYTES = 512 * 1024
PAGE_BUDGET_BYTES = 4 * 1024 * 1024
# The order tests are shown in: what failed, what could not be judged, what held, the rest.
VERDICT_ORDER = ("changed", "nondeterministic", "held", "no reference")
NO_REFERENCE = "no reference"


def size_text(size: int) -> str:
    """``4 MiB``, ``512 KiB``, ``100 B``."""
    if size < 2**10:
        return f"{size} B"
    if size % 2**20 == 0:
        return f"{size // 2**20} MiB"
    return f"{size / 2**10:g} KiB"


@dataclass(frozen=True)
class Budget:
    """The image bytes (data URI characters) a test and the whole page may use."""

    test_bytes: int = TEST_BUDGET_BYTES
    page_bytes: int = PAGE_BUDGET_BYTES

    def text(self) -> str:
        return (
            f"at most {size_text(self.test_bytes)} of images per test and "
            f"{size_text(self.page_bytes)} per page"
        )

    def page_note(self) -> str:
        return f"page image budget of {size_text(self.page_bytes)} reached"

    def test_note(self) -> str:
        return f"over this test's image budget of {size_text(self.test_bytes)}"


@dataclass(frozen=True)
class OutputGallery:
    """The report's "Outputs against their references" section."""

    entries: tuple[OutputPictures, ...]
    budget: Budget
    without_output: int  # tests that kept no output (out of memory, a pipeline without one)
    legend: Picture | None = None  # the heat maps' colours, where some test has heat maps

    @property
    def bytes_used(self) -> int:
        shown = self.legend.bytes_used if self.legend else 0
        return shown + sum(entry.bytes_used for entry in self.entries)


def _words(record: GenerationRecord) -> OutputPictures:
    """A record's verdict and figures without pictures (all a test left out of the page shows)."""
    fidelity = record.fidelity
    if fidelity is None:
        return OutputPictures(record.nodeid, NO_REFERENCE, None, "no reference output")
    return OutputPictures(
        record.nodeid,
        fidelity.verdict,
        fidelity.against,
        fidelity.line(),
        open=fidelity.verdict == "changed",
    )


def _own_frames_note(record: GenerationRecord) -> str:
    fidelity = record.fidelity
    if fidelity is None:
        return "nothing to compare with: this run's frames only"
    if fidelity.figures.identical:  # the record keeps the reference's output only where they differ
        return "identical to its reference: this run's frames only"
    return "the reference's output is not in the record: this run's frames only"


def _drawn(record: GenerationRecord) -> OutputPictures:
    """Every picture the record's output could have, before any budget; a note instead where the
    output cannot be read (a damaged or hand-edited document): the report is still written."""
    try:
        return _pictures(record)
    except (zlib.error, ValueError, binascii.Error) as error:
        return dataclasses.replace(
            _words(record), left_out=f"Left out: unreadable output ({error})"
        )


def _pictures(record: GenerationRecord) -> OutputPictures:
    words, current = _words(record), record.output
    assert current is not None  # output_gallery only draws records with an output
    reference = record.fidelity.reference if record.fidelity else None
    if reference is None:
        own = draw_frames(current, None)
        return dataclasses.replace(words, triplets=own.triplets, note=_own_frames_note(record))
    drawn = draw_frames(current, reference)
    return dataclasses.replace(
        words,
        triplets=drawn.triplets,
        scale=drawn.scale,
        # the animation shows where a changed output parts from its reference
        animation=draw_animation(current, reference) if words.verdict == "changed" else None,
        note=None if drawn.scale else "the outputs' shapes differ: no difference heat map",
    )


def _noted(pictures: OutputPictures, note: str) -> str:
    return f"{pictures.note}; {note}" if pictures.note else note


def _without_animation(pictures: OutputPictures, why: str) -> OutputPictures:
    if pictures.animation is None:
        return pictures
    return dataclasses.replace(
        pictures, animation=None, note=_noted(pictures, f"animation left out: {why}")
    )


def _left_out(pictures: OutputPictures, why: str) -> OutputPictures:
    return dataclasses.replace(
        pictures, triplets=(), scale=None, animation=None, left_out=f"Left out: {why}"
    )


def within_test_budget(pictures: OutputPictures, budget: Budget) -> OutputPictures:
    """The animation goes first, then frames from the last, until the test's pictures fit."""
    if pictures.bytes_used <= budget.test_bytes:
        return pictures
    pictures = _without_animation(pictures, budget.test_note())
    kept = pictures.triplets
    while kept and dataclasses.replace(pictures, triplets=kept).bytes_used > budget.test_bytes:
        kept = kept[:-1]
    if not kept:
        return _left_out(pictures, budget.test_note())
    if kept == pictures.triplets:
        return pictures
    dropped = ", ".join(t.label for t in pictures.triplets[len(kept) :])
    note = _noted(pictures, f"{dropped} frame left out: {budget.test_note()}")
    return dataclasses.replace(pictures, triplets=kept, note=note)


def _order(record: GenerationRecord) -> int:
    verdict = record.fidelity.verdict if record.fidelity else NO_REFERENCE
    return VERDICT_ORDER.index(verdict) if verdict in VERDICT_ORDER else len(VERDICT_ORDER)


def output_gallery(records: list[GenerationRecord], budget: Budget | None = None) -> OutputGallery:
    """The pictures of every record with an output, changed first, within the budget: once the
    page's is spent, each remaining test gets a note instead of pictures (and none is drawn)."""
    budget = budget or Budget()
    shown = sorted((r for r in records if r.output is not None), key=_order)
    heat_legend = legend() if any(r.fidelity and r.fidelity.reference for r in shown) else None
    entries: list[OutputPictures] = []
    used = heat_legend.bytes_used if heat_legend else 0
    full = False
    for record in shown:
        if full:
            entries.append(_left_out(_words(record), budget.page_note()))
            continue
        pictures = within_test_budget(_drawn(record), budget)
        room = budget.page_bytes - used
        if pictures.bytes_used > room:
            pictures = _without_animation(pictures, budget.page_note())
        if pictures.bytes_used > room:
            full = True
            pictures = _left_out(_words(record), budget.page_note())
        used += pictures.bytes_used
        entries.append(pictures)
    return OutputGallery(tuple(entries), budget, len(records) - len(shown), heat_legend)
