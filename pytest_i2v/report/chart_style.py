"""What every report chart shares: matplotlib (Agg backend) set up once, the palette, the smallest
text size, and the figure-to-inline-SVG step (no files, no network).

The charts themselves: ``per_test_charts`` (one row or line per test) and ``study_charts`` (the
study's sweeps across resolutions, frames, precisions and memory options)."""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pytest_i2v.record.record import GenerationRecord

plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "svg.hashsalt": "pytest-i2v",
    }
)  # text stays text; stable ids for golden comparisons
STAGE_COLOURS = {"encode": "#8da0cb", "denoise": "#fc8d62", "decode": "#66c2a5"}
# A decision's colour, as the report's pills show it: failures red, improvements green, what needs a
# look (not enforced, unreliable, environment changed) amber, the rest blue.
DECISION_COLOURS = {
    "out-of-memory": "#c62828",
    "over-budget": "#c62828",
    "output-changed": "#c62828",
    "regressed": "#c62828",
    "improved": "#2e7d32",
    "unreliable": "#b26a00",
    "env-changed": "#b26a00",
    "not-enforced": "#b26a00",
}
PASSED_COLOUR = "#1565c0"
# The smallest chart text: 10.7 px at 100 % zoom, where a chart is drawn at its own size.
MIN_TEXT_PT = 8


def new_chart(width_in: float, height_in: float) -> tuple[Any, Any]:
    """A figure and its axes, drawn by the Agg backend chosen above (the chart modules never import
    pyplot themselves, so no chart can load it before the backend is set)."""
    return plt.subplots(figsize=(width_in, height_in))


def to_svg(fig: Any, title: str) -> str:
    """The figure as an inline ``<svg>`` named by ``title`` for screen readers; closes the
    figure."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype: it is inlined in HTML
    return svg.replace("<svg ", f'<svg role="img" aria-label="{_attr(title)}" class="chart" ', 1)


def width_px(svg: str) -> float:
    """The chart's own width in CSS pixels (matplotlib writes points: 1 pt = 4/3 px)."""
    found = re.search(r'<svg [^>]*?width="([0-9.]+)pt"', svg)
    return float(found.group(1)) * 4 / 3 if found else 0.0


def _attr(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


def row_label(record: GenerationRecord) -> str:
    """A test's name on a chart axis: its node id past the file, cut to fit."""
    return record.nodeid.split("::", 1)[-1][:48]


def peak_gb(record: GenerationRecord) -> tuple[float | None, str]:
    peak = record.headline_peak()
    return peak.gb, peak.label
