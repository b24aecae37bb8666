"""``history changes``' findings: every series a store holds (or the ones asked for), searched by
``history.changes``, and the text that lists them (exact events and change points, open first).

The store is read through ``SeriesSource`` (``history.store.HistoryStore`` is one), so this stays
free of the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.history.changes import SeriesChanges, find_changes
from pytest_i2v.history.series import Series
from pytest_i2v.history.site import is_open


class SeriesSource(Protocol):
    def tests(self) -> list[tuple[str, tuple[str, ...]]]: ...

    def series(self, nodeid: str, metric: str) -> Series: ...


def collect(
    source: SeriesSource, test: str | None = None, metric: str | None = None
) -> list[list[Series]]:
    """Per test (those whose node id contains ``test``), its series (``metric`` only, if given)."""
    known = source.tests()
    chosen = [(nodeid, metrics) for nodeid, metrics in known if test is None or test in nodeid]
    if test is not None and not chosen:
        raise I2VUsageError(
            f"--test {test!r} matches no test in the history; `history list` shows the runs"
        )
    if metric is not None and not any(metric in metrics for _, metrics in chosen):
        kept = sorted({m for _, metrics in known for m in metrics})
        raise I2VUsageError(
            f"--metric {metric!r} has no figures in the history; use one of {', '.join(kept)}"
        )
    return [
        [source.series(nodeid, m) for m in metrics if metric is None or m == metric]
        for nodeid, metrics in chosen
    ]


def search(tests: Sequence[Sequence[Series]]) -> list[SeriesChanges]:
    return [find_changes(series) for metrics in tests for series in metrics]


def format_findings(findings: Sequence[SeriesChanges]) -> str:
    """Open change points first, then the others, then the exact events; one line each."""
    changes = [(c, f) for f in findings for c in f.changes]
    opened = [c for c, f in changes if is_open(c, f)]
    closed = [c for c, f in changes if not is_open(c, f)]
    runs = max((len(f.series.points) for f in findings), default=0)
    lines = [
        f"### History: {len(opened)} open change point(s), {len(closed)} earlier, "
        f"{len(findings)} series, up to {runs} runs each",
        "",
    ]
    for title, group in (("Open", opened), ("Earlier", closed)):
        if group:
            lines += [f"{title}:", ""]
            lines += [f"- {c.nodeid}: {c.summary()}" for c in group]
            lines.append("")
    # one line per event and test: each series of a test sees the same work and software
    events = {
        (f.series.nodeid, e.kind, e.index, e.before.run_id): e for f in findings for e in f.events
    }
    if events:
        lines += ["Exact events (the work or the software changed):", ""]
        lines += [f"- {key[0]}: {event.text()}" for key, event in events.items()]
    return "\n".join(lines).rstrip() + "\n"
