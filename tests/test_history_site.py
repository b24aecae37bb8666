"""``history site`` (``history.site``): one self-contained page per suite file, each run a point
with its commit in the tooltip, change points and exact events marked, and an index that lists
the open change points first."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from pytest_i2v.history.changes import find_changes
from pytest_i2v.history.series import Series, SeriesPoint
from pytest_i2v.history.site import INDEX, build_site
from tests.test_history_changes import noisy

XSS = "<script>alert(1)</script>"


def series(nodeid: str, values: np.ndarray, metric: str = "time_s") -> Series:
    return Series(
        nodeid,
        metric,
        tuple(
            SeriesPoint(f"run{i}", f"c{i:03d}", f"2026-11-{1 + i % 28:02d}", float(v))
            for i, v in enumerate(values)
        ),
    )


def findings() -> list:
    slower = noisy(60, seed=1)
    slower[30:] *= 1.25
    stepped = series("suites/test_sweep.py::test_sweep[256p]", slower)
    stepped = replace(
        stepped,
        points=tuple(
            replace(p, work_digest="w1" if i < 30 else "w2") for i, p in enumerate(stepped.points)
        ),
    )
    faster = noisy(60, seed=2)
    faster[20:] *= 0.8
    return [
        find_changes(stepped),
        find_changes(series("suites/test_sweep.py::test_sweep[512p]", faster)),
        find_changes(series(f"suites/test_other.py::test_{XSS}", noisy(20, seed=3))),
    ]


def test_the_index_lists_the_open_change_point_first_and_links_its_page() -> None:
    site = build_site(findings())
    assert set(site) == {INDEX, "suites-test_sweep.html", "suites-test_other.html"}
    rows = re.findall(r'<tr class="(open|closed)">(.*?)</tr>', site[INDEX], re.S)
    assert [kind for kind, _ in rows] == ["open", "closed"]
    first = rows[0][1]
    assert "test_sweep[256p]" in first and 'href="suites-test_sweep.html"' in first
    assert "the work changed between c029..c030" in first
    assert "test_sweep[512p]" in rows[1][1] and "-2" in rows[1][1]  # about -20 %


def test_each_run_is_a_point_with_its_commit_and_the_marks_are_drawn() -> None:
    page = build_site(findings())["suites-test_sweep.html"]
    section = page.split('data-test="suites/test_sweep.py::test_sweep[256p]"', 1)[1]
    section = section.split("</section>", 1)[0]
    tooltips = re.findall(r'<circle class="run"[^>]*><title>(.*?)</title>', section)
    assert len(tooltips) == 60 and tooltips[0].startswith("c000 · 2026-11-01 · ")
    assert tooltips[0].endswith(" s")
    assert section.count('<line class="change"') == 1 and section.count('<line class="event"') == 1
    assert re.search(r'class="change-label"[^>]*>\+2\d\.\d%<', section)


def test_the_pages_are_self_contained_and_escape_test_names() -> None:
    site = build_site(findings())
    for html in site.values():
        assert not re.search(r'(src|href)="(https?:)?//', html)
        assert "<script" not in html
    assert "&lt;script&gt;" in site["suites-test_other.html"]


def test_an_empty_history_is_an_index_that_says_so() -> None:
    site = build_site([])
    assert set(site) == {INDEX} and 'id="no-changes"' in site[INDEX]
