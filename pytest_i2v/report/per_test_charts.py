"""Per-test charts as inline SVG: one figure per chart kind, whatever the number of tests (a
200-test report stays fast), every test on one axis; past a limit, the changed and slowest tests.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from pytest_i2v.metrics import DECODE_S, DENOISE_S, ENCODE_S
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.chart_style import (
    DECISION_COLOURS,
    MIN_TEXT_PT,
    PASSED_COLOUR,
    STAGE_COLOURS,
    new_chart,
    row_label,
    to_svg,
)
from pytest_i2v.report.overview import Overview, OverviewRow

PASS_BAND_GREY = "#d9d9d9"


def _draw_overview_row(ax: Any, index: int, row: OverviewRow) -> None:
    """One test's pass band (grey bar), headline peak (square) and median time (dot)."""
    colour = DECISION_COLOURS.get(row.kind, PASSED_COLOUR)
    if row.time.band:
        ax.plot(
            row.time.band,
            (index, index),
            color=PASS_BAND_GREY,
            linewidth=5,
            solid_capstyle="butt",
            zorder=1,
        )
    if row.memory is not None:
        ax.scatter(
            row.memory.pct,
            index,
            s=26,
            marker="s",
            facecolors="none",
            edgecolors=colour,
            linewidths=1.2,
            zorder=2,
        )
    ax.scatter(
        row.time.pct,
        index,
        s=30,
        marker="o",
        color=colour,
        zorder=3,
        facecolors=colour if row.time.gating else "white",
        edgecolors=colour,
        linewidths=1.2,
    )


def _overview_legend(rows: Sequence[OverviewRow]) -> list[Line2D]:
    """A marker per decision shown, then the hollow dot, the square and the band where drawn."""
    kinds = list(dict.fromkeys(row.kind for row in rows))
    handles = [
        Line2D(
            [], [], marker="o", linestyle="", color=DECISION_COLOURS.get(k, PASSED_COLOUR), label=k
        )
        for k in kinds
    ]
    if any(not row.time.gating for row in rows):
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color="#666",
                markerfacecolor="white",
                label="time not judged",
            )
        )
    if any(row.memory is not None for row in rows):
        handles.append(
            Line2D(
                [],
                [],
                marker="s",
                linestyle="",
                color="#666",
                markerfacecolor="none",
                label="peak memory",
            )
        )
    handles.append(
        Line2D([], [], color=PASS_BAND_GREY, linewidth=5, label="median time's pass band")
    )
    return handles


def overview_chart(picture: Overview) -> str | None:
    """Every test's change against its baseline (``report.overview``): the median time as a dot in
    its pass band (the grey bar), the headline peak as a square, coloured by the decision; worst at
    the top. A hollow dot is a time reported and not judged (timings not comparable, a report-only
    metric)."""
    rows = picture.rows
    if not rows:
        return None
    fig, ax = new_chart(8.6, 1.1 + 0.19 * len(rows))
    for index, row in enumerate(rows):
        _draw_overview_row(ax, index, row)
    ax.axvline(0.0, color="#666", linewidth=0.8)
    ax.set_yticks(
        range(len(rows)), [row.nodeid.split("::", 1)[-1][:56] for row in rows], fontsize=MIN_TEXT_PT
    )
    ax.set_ylim(len(rows) - 0.5, -0.5)
    # The scale at the top as well: the first screen shows the worst rows and what they are
    # measured in.
    ax.tick_params(axis="x", labelsize=MIN_TEXT_PT + 1, top=True, labeltop=True)
    ax.set_xlabel("change against the baseline median (%)", fontsize=MIN_TEXT_PT + 1)
    handles = _overview_legend(rows)
    ax.legend(
        handles=handles,
        fontsize=MIN_TEXT_PT + 1,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0 + 0.45 / fig.get_figheight()),
        ncol=min(len(handles), 4),
        frameon=False,
        borderaxespad=0.2,
    )
    return to_svg(fig, "Every test against its baseline")


# Rows in a per-test chart: beyond that a chart is unreadable (and slow to draw).
PER_TEST_LIMIT = 60


def _verdict_of(record: GenerationRecord) -> str:
    """The gate's verdict; "" for a record without one."""
    return record.verdict.verdict if record.verdict else ""


def _most_interesting(records: Sequence[GenerationRecord], limit: int) -> list[GenerationRecord]:
    """Regressions and improvements first, then the slowest: the tests a reviewer looks at."""
    rank = {"regressed": 0, "env-changed": 1, "improved": 2}
    order = sorted(
        range(len(records)),
        key=lambda i: (rank.get(_verdict_of(records[i]), 3), -(records[i].time_s or 0)),
    )
    return [records[i] for i in sorted(order[:limit])]


def _shown(title: str, shown: int, total: int) -> str:
    return title if shown == total else f"{title} ({shown} of {total}: changed and slowest first)"


def stage_breakdown(records: Sequence[GenerationRecord], limit: int = PER_TEST_LIMIT) -> str | None:
    all_ok = [r for r in records if r.outcome == "ok" and r.stages.denoise_s]
    if not all_ok:
        return None
    ok = _most_interesting(all_ok, limit)
    fig, ax = new_chart(6.5, 0.6 + 0.22 * len(ok))
    names = [row_label(r) for r in ok]
    left = [0.0] * len(ok)
    for stage, key in (("encode", ENCODE_S), ("denoise", DENOISE_S), ("decode", DECODE_S)):
        values: list[float] = [getattr(r.stages, key) or 0.0 for r in ok]
        ax.barh(names, values, left=left, color=STAGE_COLOURS[stage], label=stage)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("seconds (medians)")
    ax.set_title(_shown("Stage breakdown per test", len(ok), len(all_ok)))
    ax.legend(fontsize=MIN_TEXT_PT, ncol=3, loc="lower right")
    return to_svg(fig, "Stage breakdown per test")


TRACE_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)  # matplotlib's tab10
TRACE_DASHES = ("-", "--", ":", "-.")  # with the colours: 40 lines, no two drawn alike


def trace_style(index: int) -> tuple[str, str]:
    """The colour and the line style of the index-th trace: every colour, then the next dash."""
    colours, dashes = len(TRACE_COLOURS), len(TRACE_DASHES)
    return TRACE_COLOURS[index % colours], TRACE_DASHES[index // colours % dashes]


def step_traces(
    records: Sequence[GenerationRecord],
    limit: int = len(TRACE_COLOURS) * len(TRACE_DASHES),
) -> str | None:
    """Per-step time through the schedule, per test (median over repeats at each step index):
    a rising trace is throttling, a high first step is warm-up leaking into the measurement.
    Every line is in the legend, named by its test with its median step, slowest first, and drawn
    unlike the others (a colour and a dash each); beyond ``limit`` the changed and slowest tests are
    drawn, and the title says so."""
    all_ok = [r for r in records if r.outcome == "ok" and r.stages.step_samples_s]
    if not all_ok:
        return None
    ok = _most_interesting(all_ok, limit) if len(all_ok) > limit else all_ok
    columns = 1 if len(ok) <= 20 else 2
    traces = []
    for record in ok:
        runs = [run for run in record.stages.step_samples_s if run]
        length = min(len(run) for run in runs)
        trace = [statistics.median(run[i] for run in runs) * 1000 for i in range(length)]
        traces.append((record, trace))
    traces.sort(key=lambda pair: -statistics.median(pair[1]))  # the legend in the lines' order
    rows = -(-len(ok) // columns)
    fig, ax = new_chart(6.5, max(3.2, 0.6 + 0.16 * rows))  # as tall as the legend
    for index, (record, trace) in enumerate(traces):
        colour, dash = trace_style(index)
        ax.plot(
            range(1, len(trace) + 1),
            trace,
            linewidth=1.2,
            color=colour,
            linestyle=dash,
            label=f"{row_label(record)} ({statistics.median(trace):.3g} ms)",
        )
    ax.set_xlabel("denoising step")
    ax.set_ylabel("ms per step (median over repeats)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_title(_shown("Per-step time trace", len(ok), len(all_ok)))
    ax.legend(
        fontsize=MIN_TEXT_PT,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        ncol=columns,
        title="test (median step)",
        title_fontsize=MIN_TEXT_PT,
        frameon=False,
    )
    return to_svg(fig, "Per-step time trace")


def baseline_history(
    records: Sequence[GenerationRecord], limit: int = PER_TEST_LIMIT
) -> str | None:
    """Each test's accepted runs and the current run, relative to the baseline median."""
    all_with_history = [r for r in records if r.baseline_history and r.time_s]
    if not all_with_history:
        return None
    with_history = _most_interesting(all_with_history, limit)
    fig, ax = new_chart(6.5, 0.8 + 0.22 * len(with_history))
    past_x: list[float] = []
    past_y: list[int] = []
    now_x: list[float] = []
    colours: list[str] = []
    for index, record in enumerate(with_history):
        history = record.baseline_history or []
        median = statistics.median(history)
        past_x += [h / median for h in history]
        past_y += [index] * len(history)
        now_x.append((record.time_s or 0.0) / median)
        # the report's one palette
        colours.append(DECISION_COLOURS.get(_verdict_of(record), PASSED_COLOUR))
    ax.scatter(past_x, past_y, s=10, color="#999", label="accepted runs")
    ax.scatter(now_x, range(len(with_history)), s=30, marker="D", c=colours, label="this run")
    ax.axvline(1.0, color="#666", linewidth=0.8)
    ax.set_yticks(range(len(with_history)), [row_label(r) for r in with_history])
    ax.invert_yaxis()
    ax.set_xlabel("time / baseline median")
    ax.set_title(
        _shown(
            "Baseline history (last runs) and this run", len(with_history), len(all_with_history)
        )
    )
    ax.legend(fontsize=MIN_TEXT_PT, loc="lower right")
    return to_svg(fig, "Baseline history")
