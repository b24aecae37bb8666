"""``history changes``' text (``history.findings``): the open change points first, then the
earlier ones, then the exact events once per test; a --test or --metric that matches nothing is
one usage line."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.history.findings import collect, format_findings, search
from pytest_i2v.history.series import Series
from tests.test_history_changes import noisy, series


class Source:
    """A history of two tests held in memory (the real store is tests/test_history_store.py's)."""

    def __init__(self) -> None:
        slower = noisy(60, seed=1)
        slower[30:] *= 1.25
        stepped = series(slower)
        points = tuple(
            replace(p, work_digest="w1" if i < 30 else "w2") for i, p in enumerate(stepped.points)
        )
        self.data = {
            ("test_a.py::test_x", "time_s"): replace(stepped, points=points),
            ("test_a.py::test_x", "step_s"): replace(stepped, metric="step_s", points=points),
            ("test_b.py::test_y", "time_s"): replace(
                series(noisy(60, seed=2)), nodeid="test_b.py::test_y"
            ),
        }

    def tests(self) -> list[tuple[str, tuple[str, ...]]]:
        return [("test_a.py::test_x", ("time_s", "step_s")), ("test_b.py::test_y", ("time_s",))]

    def series(self, nodeid: str, metric: str) -> Series:
        return self.data[(nodeid, metric)]


def test_the_text_lists_open_change_points_then_each_event_once() -> None:
    text = format_findings(search(collect(Source())))
    assert text.startswith("### History: 2 open change point(s), 0 earlier, 3 series, up to 60")
    opened = text.split("Open:", 1)[1].split("Exact events", 1)[0]
    assert opened.count("- test_a.py::test_x: ") == 2 and "test_y" not in opened
    assert "time_s +2" in opened and "step_s +2" in opened
    events = text.split("Exact events (the work or the software changed):", 1)[1]
    assert events.strip() == "- test_a.py::test_x: the work changed between c029..c030"


def test_a_test_and_a_metric_narrow_the_search() -> None:
    chosen = collect(Source(), test="test_x", metric="step_s")
    assert [[s.metric for s in metrics] for metrics in chosen] == [["step_s"]]


@pytest.mark.parametrize(
    ("test", "metric", "line"),
    [
        ("nope", None, "--test 'nope' matches no test in the history"),
        (
            None,
            "load_s",
            "--metric 'load_s' has no figures in the history; use one of step_s, time_s",
        ),
    ],
)
def test_a_filter_that_matches_nothing_is_one_line(
    test: str | None, metric: str | None, line: str
) -> None:
    with pytest.raises(I2VUsageError, match="^" + line.replace("(", r"\(").replace(")", r"\)")):
        collect(Source(), test=test, metric=metric)


def test_an_empty_history_says_so() -> None:
    assert format_findings([]).startswith("### History: 0 open change point(s), 0 earlier, 0")
