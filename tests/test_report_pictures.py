"""The report's pictures of the outputs (``report.frames``, ``report.output_gallery``): the frames
of a changed test beside its reference's with a heat map of where they differ, an animation, the
folds, the size budget and its notes, and the section of the HTML page."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from html.parser import HTMLParser

import numpy as np
from matplotlib import colormaps
from PIL import Image

from pytest_i2v.measure.output import reduce_output
from pytest_i2v.record.output import unpack_output
from pytest_i2v.report.frames import HEAT_COLORMAP, SHOWN_LONG_SIDE, Picture, shown_frames
from pytest_i2v.report.html import render_html
from pytest_i2v.report.output_gallery import (
    PAGE_BUDGET_BYTES,
    TEST_BUDGET_BYTES,
    Budget,
    output_gallery,
)
from tests.picture_fixtures import (
    COLUMNS,
    FRAMES,
    ROWS,
    SIZE,
    changed_record,
    document_with_outputs,
    held_record,
    identical_record,
    output_record,
    video,
)
from tests.report_fixtures import document

FACTOR = SHOWN_LONG_SIDE // SIZE
PREFIX = "data:image/png;base64,"


def decoded(picture: Picture) -> Image.Image:
    assert picture.uri.startswith(PREFIX)
    image = Image.open(io.BytesIO(base64.b64decode(picture.uri.removeprefix(PREFIX))))
    assert image.format == "PNG"
    return image


def pixels(picture: Picture) -> np.ndarray:
    image = decoded(picture)
    assert image.size == (picture.width, picture.height)  # what the page states is what it is
    return np.asarray(image.convert("RGB"))


def test_a_changed_output_shows_three_frames_a_heat_map_and_an_animation() -> None:
    entry = output_gallery([changed_record()]).entries[0]
    assert entry.verdict == "changed" and entry.open and entry.left_out is None
    kept = changed_record().output
    assert kept is not None
    assert [(t.label, t.frame) for t in entry.triplets] == [
        ("first", 0),
        ("middle", kept.kept_frames[len(kept.kept_frames) // 2]),
        ("last", FRAMES - 1),
    ]
    for triplet in entry.triplets:
        assert triplet.reference is not None and triplet.difference is not None
        for picture in triplet.pictures:
            assert pixels(picture).shape == (SHOWN_LONG_SIDE, SHOWN_LONG_SIDE, 3)
    # only the last frame was brightened: the others' heat maps are flat, the last one's brightest
    # pixels all lie in the brightened region (drawn FACTOR times larger)
    first, middle, last = (pixels(t.difference) for t in entry.triplets if t.difference)
    assert len(np.unique(first.reshape(-1, 3), axis=0)) == 1
    assert np.array_equal(first, middle)
    heat = last.astype(int).sum(axis=-1)
    rows, columns = np.nonzero(heat == heat.max())
    assert rows.min() >= ROWS.start * FACTOR and rows.max() < ROWS.stop * FACTOR
    assert columns.min() >= COLUMNS.start * FACTOR and columns.max() < COLUMNS.stop * FACTOR
    outside = np.ones(heat.shape, dtype=bool)
    outside[
        ROWS.start * FACTOR : ROWS.stop * FACTOR, COLUMNS.start * FACTOR : COLUMNS.stop * FACTOR
    ] = False
    assert (heat[outside] == heat.min()).all() and heat.max() > heat.min()
    # the run's last frame is the reference's, brighter where it changed
    last_triplet = entry.triplets[-1]
    assert last_triplet.reference is not None
    run, reference = pixels(last_triplet.run), pixels(last_triplet.reference)
    row, column = ROWS.start * FACTOR, COLUMNS.start * FACTOR
    assert (run[row, column] > reference[row, column]).all()
    assert np.array_equal(run[outside], reference[outside])


def test_the_heat_map_scale_is_the_tests_own_largest_difference() -> None:
    record = changed_record()
    assert record.output is not None and record.fidelity and record.fidelity.reference
    run = unpack_output(record.output).astype(int)
    base = unpack_output(record.fidelity.reference).astype(int)
    top = int(np.abs(run - base).max())
    assert 0 < top < 255
    entry = output_gallery([record]).entries[0]
    assert entry.scale == f"difference 0-{top} of 255, this test's scale"


def test_the_animation_is_an_apng_of_every_kept_frame_side_by_side() -> None:
    record = changed_record()
    animation = output_gallery([record]).entries[0].animation
    assert animation is not None and record.output is not None
    image = decoded(animation)
    assert getattr(image, "is_animated", False)
    assert image.n_frames == len(record.output.kept_frames) == 8
    assert image.size == (animation.width, animation.height)
    assert animation.height == SHOWN_LONG_SIDE and animation.width > 2 * SHOWN_LONG_SIDE
    image.seek(image.n_frames - 1)  # the last frame: the run's brighter than the reference's
    last = np.asarray(image.convert("RGB")).astype(int)
    row, column = ROWS.start * FACTOR, COLUMNS.start * FACTOR
    right = animation.width - SHOWN_LONG_SIDE
    assert (last[row, column] > last[row, right + column]).all()
    image.seek(0)
    first = np.asarray(image.convert("RGB"))
    assert np.array_equal(first[:, :SHOWN_LONG_SIDE], first[:, right:])  # unchanged frame


def test_changed_tests_come_first_and_open_the_rest_folded() -> None:
    records = [held_record(), identical_record(), changed_record()]
    entries = output_gallery(records).entries
    assert [e.verdict for e in entries] == ["changed", "held", "held"]
    assert [e.open for e in entries] == [True, False, False]
    held = entries[1]
    assert held.animation is None  # only a changed output is animated
    assert all(t.difference is not None for t in held.triplets)
    assert held.scale is not None and held.scale.startswith("difference 0-")


def test_an_output_without_a_reference_shows_its_own_frames_only() -> None:
    same = output_gallery([identical_record()]).entries[0]
    assert same.note == "identical to its reference: this run's frames only"
    alone = output_gallery([output_record("t::alone", reduce_output(video(5)))]).entries[0]
    assert alone.verdict == "no reference" and not alone.open
    for entry in (same, alone):
        assert len(entry.triplets) == 3 and entry.scale is None and entry.animation is None
        assert all(t.reference is None and t.difference is None for t in entry.triplets)


def test_the_legend_runs_from_no_difference_to_the_largest_once_per_page() -> None:
    gallery = output_gallery([changed_record(), held_record()])
    assert gallery.legend is not None
    bar = pixels(gallery.legend)
    assert bar.shape[1] == SHOWN_LONG_SIDE
    ends = colormaps[HEAT_COLORMAP]([0.0, 1.0], bytes=True)[:, :3]
    assert np.array_equal(bar[0, [0, -1]], ends)
    assert gallery.bytes_used == gallery.legend.bytes_used + sum(
        e.bytes_used for e in gallery.entries
    )
    assert output_gallery([identical_record()]).legend is None  # no heat map, no legend


def test_an_unreadable_output_is_a_note_and_the_report_still_renders() -> None:
    record = changed_record()
    assert record.output is not None
    broken = dataclasses.replace(record.output, packed="not base64 zlib!")
    gallery = output_gallery([dataclasses.replace(record, output=broken)])
    (entry,) = gallery.entries
    assert entry.left_out and entry.left_out.startswith("Left out: unreadable output")
    assert entry.verdict == "changed" and entry.triplets == ()


def test_a_test_without_an_output_is_counted_not_drawn() -> None:
    gallery = output_gallery([output_record("t::oom", None), changed_record()])
    assert [e.nodeid for e in gallery.entries] == ["suites/t.py::test_changed"]
    assert gallery.without_output == 1


def test_frames_shown_without_repeats_when_few_were_kept() -> None:
    assert shown_frames(8) == [("first", 0), ("middle", 4), ("last", 7)]
    assert shown_frames(2) == [("first", 0), ("middle", 1)]
    assert shown_frames(1) == [("first", 0)]
    two = reduce_output(np.random.default_rng(0).random((1, 2, 8, 8, 3)))
    entry = output_gallery([output_record("t::two", two)]).entries[0]
    assert [t.frame for t in entry.triplets] == [0, 1]
    assert all(pixels(t.run).shape == (SHOWN_LONG_SIDE, SHOWN_LONG_SIDE, 3) for t in entry.triplets)


def test_the_budget_is_stated_once() -> None:
    assert TEST_BUDGET_BYTES == 512 * 1024 and PAGE_BUDGET_BYTES == 4 * 1024 * 1024
    assert Budget().text() == "at most 512 KiB of images per test and 4 MiB per page"
    assert Budget().page_note() == "page image budget of 4 MiB reached"


def test_past_the_page_budget_every_remaining_test_is_left_out_with_a_note() -> None:
    records = [changed_record(f"t::changed{i}", seed=i) for i in range(4)]
    full = output_gallery(records)
    sizes = [e.bytes_used for e in full.entries]
    assert all(e.animation for e in full.entries) and full.legend
    # the page's budget counts the legend and every test's pictures
    assert full.bytes_used == full.legend.bytes_used + sum(sizes)
    budget = Budget(page_bytes=full.legend.bytes_used + sizes[0] + sizes[1] // 2)  # 1.5 tests
    gallery = output_gallery(records, budget)
    assert [e.nodeid for e in gallery.entries] == [r.nodeid for r in records]  # none dropped
    first, second, *rest = gallery.entries
    assert first == full.entries[0]
    # the second fits without its animation (its frames are well under half its bytes)
    assert second.left_out is None and second.animation is None and len(second.triplets) == 3
    assert second.note == f"animation left out: {budget.page_note()}"
    for entry in [e for e in gallery.entries if e.left_out]:
        assert entry.left_out == f"Left out: {budget.page_note()}"
        assert entry.triplets == () and entry.animation is None and entry.bytes_used == 0
        assert entry.verdict == "changed" and entry.summary  # still says what happened
    assert rest and all(e.left_out for e in rest)
    assert gallery.bytes_used <= budget.page_bytes


def test_over_its_own_budget_a_test_loses_its_animation_first_then_frames() -> None:
    full = output_gallery([changed_record()]).entries[0]
    assert full.animation is not None
    frames_only = full.bytes_used - full.animation.bytes_used
    no_animation = output_gallery([changed_record()], Budget(test_bytes=frames_only)).entries[0]
    assert no_animation.animation is None and len(no_animation.triplets) == 3
    assert no_animation.note == "animation left out: over this test's image budget of " + (
        f"{frames_only / 1024:g} KiB"
    )
    one_frame = sum(p.bytes_used for p in full.triplets[0].pictures)
    fewer = output_gallery([changed_record()], Budget(test_bytes=one_frame)).entries[0]
    assert [t.label for t in fewer.triplets] == ["first"]
    assert "middle, last frame left out" in (fewer.note or "")
    none = output_gallery([changed_record()], Budget(test_bytes=100)).entries[0]
    assert none.left_out == "Left out: over this test's image budget of 100 B"


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))


def test_the_html_section_draws_the_outputs_inline() -> None:
    html = render_html(document_with_outputs())
    section = html[html.index('<section id="outputs">') : html.index('<section id="charts">')]
    assert "<h2>Outputs against their references</h2>" in section
    assert "at most 512 KiB of images per test and 4 MiB per page" in section
    changed = re.search(r'<details class="output output-changed"[^>]*>', section)
    assert changed and changed.group(0).endswith(" open>")
    assert 'data-nodeid="suites/t.py::test_changed"' in changed.group(0)
    held = re.findall(r'<details class="output output-held"[^>]*>', section)
    assert len(held) == 2 and not any(h.endswith(" open>") for h in held)
    parser = Images()
    parser.feed(section)
    # the legend; changed: 9 frames + the animation; held: 9; identical: 3 of its own
    assert len(parser.images) == 1 + 10 + 9 + 3
    for image in parser.images:
        src = image["src"] or ""
        assert src.startswith(PREFIX) and image["alt"]
        picture = Picture(src, int(image["width"] or 0), int(image["height"] or 0), "")
        pixels(picture)  # decodes at the size the page states
    assert not re.search(r"""src=["']?https?://""", html)
    # the page's order: verdict sections first, then the pictures, then the charts
    assert html.index('<section id="regressions">') < html.index('<section id="outputs">')


def test_a_report_without_outputs_has_no_pictures_section() -> None:
    html = render_html(document())
    assert 'id="outputs"' not in html and "data:image/png" not in html
