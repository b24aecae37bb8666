from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

from pytest_i2v.session.progress import ProgressLine


class FakeReporter:
    isatty = True

    def __init__(self) -> None:
        self.lines: list[str] = []

    def rewrite(self, line: str, erase: bool = False) -> None:
        self.lines.append(line)


class FakeCapture:
    @contextlib.contextmanager
    def global_and_fixture_disabled(self) -> Any:
        yield


def fake_config(reporter: FakeReporter) -> Any:
    plugins = {"terminalreporter": reporter, "capturemanager": FakeCapture()}
    return SimpleNamespace(
        pluginmanager=SimpleNamespace(get_plugin=plugins.get), get_verbosity=lambda: 0
    )


def test_progress_is_one_rewritten_line_throttled_and_cleared() -> None:
    reporter = FakeReporter()
    progress = ProgressLine(fake_config(reporter), "suites/t.py::test_768p")
    assert progress.enabled
    for step in range(1, 51):
        progress("repeat", 2, 5, step, 50)
    # the first call and the last step of the repeat; the 48 between are throttled
    assert reporter.lines[0].startswith("i2v suites/t.py::test_768p: repeat 2/5, step 1/50, ")
    assert reporter.lines[-1].startswith("i2v suites/t.py::test_768p: repeat 2/5, step 50/50, ")
    assert len(reporter.lines) == 2
    progress.clear()
    assert reporter.lines[-1] == ""


def test_progress_is_off_without_a_terminal() -> None:
    reporter = FakeReporter()
    reporter.isatty = False
    assert not ProgressLine(fake_config(reporter), "t").enabled
