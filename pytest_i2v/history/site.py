"""``history site``: the history as a static site, one self-contained page per suite file and an
index that lists the open change points first.

Each test's metric is one inline SVG chart over its runs in order: the figures as a line, each
run a point whose tooltip (SVG ``<title>``: no script, no network) gives the commit, the date and
the figure; a change point is a red dashed line at its first run, labelled with its effect; an
exact event (the work or the software changed) a grey dotted line. A change point is **open**
when it is its series' last and made the figure larger (slower, hungrier): the level the suite
runs at now.

Pure: the findings in, file name -> HTML out (Jinja2, autoescaped); the CLI writes the files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, select_autoescape

from pytest_i2v.history.changes import ChangePoint, SeriesChanges, commit_range
from pytest_i2v.metrics import TIME_S

WIDTH, HEIGHT, MARGIN = 640.0, 180.0, 36.0  # the chart's drawing box, in CSS pixels
INDEX = "index.html"


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    tooltip: str


@dataclass(frozen=True)
class ChartMark:
    x: float
    label: str
    kind: str  # "change" or "event"


@dataclass(frozen=True)
class Chart:
    """One series drawn: its points in the box, its marks, and the axis labels."""

    nodeid: str
    metric: str
    points: tuple[ChartPoint, ...]
    marks: tuple[ChartMark, ...]
    low: str  # the y axis' ends, as figures
    high: str

    @property
    def line(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def _figure(metric: str, value: float) -> str:
    if metric.endswith("_bytes"):
        return f"{value / 2**30:.2f} GiB"
    return f"{value:.4g} s" if metric.endswith("_s") else f"{value:.4g}"


def chart(found: SeriesChanges) -> Chart:
    points = found.series.points
    values = [p.value for p in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (WIDTH - 2 * MARGIN) / max(len(points) - 1, 1)

    def x(index: int) -> float:
        return MARGIN + index * step

    drawn = tuple(
        ChartPoint(
            x(i),
            HEIGHT - MARGIN - (p.value - low) / span * (HEIGHT - 2 * MARGIN),
            f"{p.commit or p.run_id} · {p.created} · {_figure(found.series.metric, p.value)}",
        )
        for i, p in enumerate(points)
    )
    marks = [ChartMark(x(c.index), f"{c.effect:+.1%}", "change") for c in found.changes]
    marks += [ChartMark(x(e.index), e.text(), "event") for e in found.events]
    metric = found.series.metric
    return Chart(
        found.series.nodeid,
        metric,
        drawn,
        tuple(marks),
        _figure(metric, low),
        _figure(metric, high),
    )


def is_open(change: ChangePoint, found: SeriesChanges) -> bool:
    """The series' last change point, and it made the figure larger."""
    return change is found.changes[-1] and change.effect > 0


def page_name(nodeid: str) -> str:
    """The suite file's page: ``suites/test_sweep.py::test_x`` -> ``suites-test_sweep.html``."""
    module = nodeid.split("::", 1)[0].removesuffix(".py")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", module).strip("-") + ".html"


def build_site(findings: Sequence[SeriesChanges]) -> dict[str, str]:
    """The index and one page per suite file."""
    env = Environment(
        loader=PackageLoader("pytest_i2v.report", "templates"),
        autoescape=select_autoescape(default=True),
    )
    pages: dict[str, list[Chart]] = {}
    for found in findings:
        if found.series.points:
            pages.setdefault(page_name(found.series.nodeid), []).append(chart(found))
    changes = [(c, f) for f in findings for c in f.changes]
    opened = [c for c, f in changes if is_open(c, f)]
    others = [c for c, f in changes if not is_open(c, f)]
    rows = [
        {
            "change": c,
            "open": c in opened,
            "page": page_name(c.nodeid),
            "range": commit_range(c.before, c.after),
        }
        for c in [*sorted(opened, key=lambda c: -c.effect), *others]
    ]
    site = {
        INDEX: env.get_template("history_index.html.j2").render(
            rows=rows,
            pages=sorted(pages),
            runs=max((len(f.series.points) for f in findings), default=0),
        )
    }
    for name, charts in pages.items():
        site[name] = env.get_template("history_page.html.j2").render(
            name=name.removesuffix(".html"),
            charts=sorted(charts, key=lambda c: (c.nodeid, c.metric != TIME_S, c.metric)),
            width=WIDTH,
            height=HEIGHT,
            margin=MARGIN,
        )
    return site
