"""A one-line progress display (repeat r/R, step i/N, elapsed) on a terminal while a generation
runs."""

from __future__ import annotations

import time

import pytest


class ProgressLine:
    """One rewritten terminal line (repeat r/R, step i/N, elapsed) while a generation runs."""

    MIN_INTERVAL_S = 0.5

    def __init__(self, config: pytest.Config, nodeid: str):
        self._reporter = config.pluginmanager.get_plugin("terminalreporter")
        self._capture = config.pluginmanager.get_plugin("capturemanager")
        self._nodeid = nodeid
        self._started = time.perf_counter()
        self._last = 0.0
        self._shown = False
        self.enabled = bool(
            self._reporter
            and self._reporter.isatty
            and config.get_verbosity() >= 0
            and not hasattr(config, "workerinput")
        )

    def __call__(self, phase: str, repeat: int, repeats: int, step: int, steps: int) -> None:
        now = time.perf_counter()
        if now - self._last < self.MIN_INTERVAL_S and step != steps:
            return
        self._last = now
        elapsed = f"{now - self._started:.0f}s"
        line = f"i2v {self._nodeid}: {phase} {repeat}/{repeats}, step {step}/{steps}, {elapsed}"
        if self._capture is None or self._reporter is None:
            return
        with self._capture.global_and_fixture_disabled():
            self._reporter.rewrite(line, erase=True)
        self._shown = True

    def clear(self) -> None:
        if self._shown and self._capture is not None and self._reporter is not None:
            with self._capture.global_and_fixture_disabled():
                self._reporter.rewrite("", erase=True)
            self._shown = False
