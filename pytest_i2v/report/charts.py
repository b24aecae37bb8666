"""Charts as inline SVG strings (matplotlib, Agg backend): no files, no network.

One figure per chart kind, whatever the number of tests (a 200-test report stays fast): per-test
views put every test on one axis."""

from __future__ import annotations

import io
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from pytest_i2v.generation.marks import RESOLUTION_PRESETS
from pytest_i2v.report.overview import Overview
from pytest_i2v.verdict.peak import record_peak

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
    "regressed": "#c62828",
    "improved": "#2e7d32",
    "unreliable": "#b26a00",
    "env-changed": "#b26a00",
    "not-enforced": "#b26a00",
}
PASSED_COLOUR = "#1565c0"
MIN_TEXT_PT = (
    8  # the smallest chart text: 10.7 px at 100 % zoom, where a chart is drawn at its own size
)


def _svg(fig: Any, title: str) -> str:
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


def _label(record: Mapping[str, Any]) -> str:
    nodeid = str(record["nodeid"])
    return nodeid.split("::", 1)[-1][:48]


def _peak_gb(record: Mapping[str, Any]) -> tuple[float | None, str]:
    peak = record_peak(record)
    return peak.gb, peak.label


def overview_chart(picture: Overview) -> str | None:
    """Every test's change against its baseline (``report.overview``): the median time as a dot in its
    pass band (the grey bar), the headline peak as a square, coloured by the decision; worst at the top.
    A hollow dot is a time reported and not judged (timings not comparable, a report-only metric)."""
    rows = picture.rows
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8.6, 1.1 + 0.19 * len(rows)))
    for index, row in enumerate(rows):
        colour = DECISION_COLOURS.get(row.kind, PASSED_COLOUR)
        if row.time.band:
            ax.plot(
                row.time.band,
                (index, index),
                color="#d9d9d9",
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
    ax.axvline(0.0, color="#666", linewidth=0.8)
    ax.set_yticks(
        range(len(rows)), [row.nodeid.split("::", 1)[-1][:56] for row in rows], fontsize=MIN_TEXT_PT
    )
    ax.set_ylim(len(rows) - 0.5, -0.5)
    # The scale at the top as well: the first screen shows the worst rows and what they are measured in.
    ax.tick_params(axis="x", labelsize=MIN_TEXT_PT + 1, top=True, labeltop=True)
    ax.set_xlabel("change against the baseline median (%)", fontsize=MIN_TEXT_PT + 1)
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
    handles.append(Line2D([], [], color="#d9d9d9", linewidth=5, label="median time's pass band"))
    ax.legend(
        handles=handles,
        fontsize=MIN_TEXT_PT + 1,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0 + 0.45 / fig.get_figheight()),
        ncol=min(len(handles), 4),
        frameon=False,
        borderaxespad=0.2,
    )
    return _svg(fig, "Every test against its baseline")


def sweep_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Plain runs at the preset resolutions with the study's clip (one per resolution, first wins)."""
    seen: dict[str, Mapping[str, Any]] = {}
    for record in records:
        config = record["config"]
        if (
            record.get("outcome") == "ok"
            and config.get("resolution") in RESOLUTION_PRESETS
            and not config.get("memory")
            and config.get("frames") == 16
            and (config.get("study") or config).get("steps", config["steps"]) == 50
        ):
            seen.setdefault(config["resolution"], record)
    return [seen[r] for r in RESOLUTION_PRESETS if r in seen]


def time_vs_resolution(
    records: Sequence[Mapping[str, Any]], thresholds: Sequence[float]
) -> str | None:
    sweep = sweep_records(records)
    if len(sweep) < 2:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    labels = [r["config"]["resolution"] for r in sweep]
    times = [r["time_s"] for r in sweep]
    ax.plot(labels, times, marker="o", color="#fc8d62", label="median time")
    if (
        max(times) >= thresholds[0] / 3
    ):  # the patience lines only where they are on the data's scale
        for value, name in zip(thresholds, ("good", "acceptable"), strict=False):
            ax.axhline(value, color="#999", linestyle=":", linewidth=1)
            ax.annotate(
                f"{name} < {value:g} s",
                (0, value),
                textcoords="offset points",
                xytext=(2, 2),
                fontsize=MIN_TEXT_PT,
                color="#666",
            )
    else:
        ax.set_ylim(bottom=0)
        ax.annotate(
            f"latency classes at {thresholds[0]:g} s / {thresholds[1]:g} s are off this scale",
            (0.01, 0.95),
            xycoords="axes fraction",
            fontsize=MIN_TEXT_PT,
            color="#666",
        )
    ax.set_xlabel("resolution (16 frames, study steps)")
    ax.set_ylabel("seconds")
    ax.set_title("Generation time vs resolution")
    return _svg(fig, "Generation time vs resolution")


def memory_vs_resolution(
    records: Sequence[Mapping[str, Any]], profile_memory_gb: float | None, margin_gb: float
) -> str | None:
    sweep = [r for r in sweep_records(records) if _peak_gb(r)[0] is not None]
    if len(sweep) < 2:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    labels = [r["config"]["resolution"] for r in sweep]
    peaks = [_peak_gb(r)[0] or 0.0 for r in sweep]
    ax.plot(labels, peaks, marker="s", color="#8da0cb", label=f"peak ({_peak_gb(sweep[0])[1]})")
    if profile_memory_gb and max(peaks) >= (profile_memory_gb - margin_gb) / 4:
        ax.axhline(
            profile_memory_gb,
            color="#d62728",
            linewidth=1,
            label=f"profile memory {profile_memory_gb:g} GB",
        )
        ax.axhline(
            profile_memory_gb - margin_gb,
            color="#d62728",
            linestyle="--",
            linewidth=1,
            label=f"minus {margin_gb:g} GB safety margin",
        )
    elif profile_memory_gb:
        ax.set_ylim(bottom=0, top=max(peaks) * 1.3)
        ax.annotate(
            f"profile memory {profile_memory_gb:g} GB (- {margin_gb:g} GB margin) is off this scale",
            (0.01, 0.95),
            xycoords="axes fraction",
            fontsize=MIN_TEXT_PT,
            color="#d62728",
        )
    ax.set_xlabel("resolution (16 frames)")
    ax.set_ylabel("GB")
    ax.set_title("Peak memory vs resolution")
    ax.legend(fontsize=MIN_TEXT_PT, loc="best")
    return _svg(fig, "Peak memory vs resolution")


PER_TEST_LIMIT = (
    60  # rows in a per-test chart: beyond that a chart is unreadable (and slow to draw)
)


def _most_interesting(records: Sequence[Mapping[str, Any]], limit: int) -> list[Mapping[str, Any]]:
    """Regressions and improvements first, then the slowest: the tests a reviewer looks at."""
    rank = {"regressed": 0, "env-changed": 1, "improved": 2}
    order = sorted(
        range(len(records)),
        key=lambda i: (
            rank.get(str((records[i].get("verdict") or {}).get("verdict")), 3),
            -(records[i].get("time_s") or 0),
        ),
    )
    return [records[i] for i in sorted(order[:limit])]


def _shown(title: str, shown: int, total: int) -> str:
    return title if shown == total else f"{title} ({shown} of {total}: changed and slowest first)"


def stage_breakdown(
    records: Sequence[Mapping[str, Any]], limit: int = PER_TEST_LIMIT
) -> str | None:
    all_ok = [
        r for r in records if r.get("outcome") == "ok" and r.get("stages", {}).get("denoise_s")
    ]
    if not all_ok:
        return None
    ok = _most_interesting(all_ok, limit)
    fig, ax = plt.subplots(figsize=(6.5, 0.6 + 0.22 * len(ok)))
    names = [_label(r) for r in ok]
    left = [0.0] * len(ok)
    for stage, key in (("encode", "encode_s"), ("denoise", "denoise_s"), ("decode", "decode_s")):
        values = [r["stages"].get(key) or 0.0 for r in ok]
        ax.barh(names, values, left=left, color=STAGE_COLOURS[stage], label=stage)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("seconds (medians)")
    ax.set_title(_shown("Stage breakdown per test", len(ok), len(all_ok)))
    ax.legend(fontsize=MIN_TEXT_PT, ncol=3, loc="lower right")
    return _svg(fig, "Stage breakdown per test")


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
    records: Sequence[Mapping[str, Any]], limit: int = len(TRACE_COLOURS) * len(TRACE_DASHES)
) -> str | None:
    """Per-step time through the schedule, per test (median over repeats at each step index):
    a rising trace is throttling, a high first step is warm-up leaking into the measurement.
    Every line is in the legend, named by its test with its median step, slowest first, and drawn
    unlike the others (a colour and a dash each); beyond ``limit`` the changed and slowest tests are
    drawn, and the title says so."""
    all_ok = [
        r for r in records if r.get("outcome") == "ok" and r.get("stages", {}).get("step_samples_s")
    ]
    if not all_ok:
        return None
    ok = _most_interesting(all_ok, limit) if len(all_ok) > limit else all_ok
    columns = 1 if len(ok) <= 20 else 2
    traces = []
    for record in ok:
        runs = [run for run in record["stages"]["step_samples_s"] if run]
        length = min(len(run) for run in runs)
        trace = [statistics.median(run[i] for run in runs) * 1000 for i in range(length)]
        traces.append((record, trace))
    traces.sort(key=lambda pair: -statistics.median(pair[1]))  # the legend in the lines' order
    rows = -(-len(ok) // columns)
    fig, ax = plt.subplots(figsize=(6.5, max(3.2, 0.6 + 0.16 * rows)))  # as tall as the legend
    for index, (record, trace) in enumerate(traces):
        colour, dash = trace_style(index)
        ax.plot(
            range(1, len(trace) + 1),
            trace,
            linewidth=1.2,
            color=colour,
            linestyle=dash,
            label=f"{_label(record)} ({statistics.median(trace):.3g} ms)",
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
    return _svg(fig, "Per-step time trace")


def baseline_history(
    records: Sequence[Mapping[str, Any]], limit: int = PER_TEST_LIMIT
) -> str | None:
    """Each test's accepted runs and the current run, relative to the baseline median."""
    all_with_history = [r for r in records if r.get("baseline_history") and r.get("time_s")]
    if not all_with_history:
        return None
    with_history = _most_interesting(all_with_history, limit)
    fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.22 * len(with_history)))
    past_x: list[float] = []
    past_y: list[int] = []
    now_x, colours = [], []
    for index, record in enumerate(with_history):
        history = record["baseline_history"]
        median = statistics.median(history)
        past_x += [h / median for h in history]
        past_y += [index] * len(history)
        now_x.append(record["time_s"] / median)
        verdict = str((record.get("verdict") or {}).get("verdict"))
        colours.append(DECISION_COLOURS.get(verdict, PASSED_COLOUR))  # the report's one palette
    ax.scatter(past_x, past_y, s=10, color="#999", label="accepted runs")
    ax.scatter(now_x, range(len(with_history)), s=30, marker="D", c=colours, label="this run")
    ax.axvline(1.0, color="#666", linewidth=0.8)
    ax.set_yticks(range(len(with_history)), [_label(r) for r in with_history])
    ax.invert_yaxis()
    ax.set_xlabel("time / baseline median")
    ax.set_title(
        _shown(
            "Baseline history (last runs) and this run", len(with_history), len(all_with_history)
        )
    )
    ax.legend(fontsize=MIN_TEXT_PT, loc="lower right")
    return _svg(fig, "Baseline history")


def frames_tradeoff(records: Sequence[Mapping[str, Any]]) -> str | None:
    """Time and peak memory against the number of frames at one resolution (the frames sweep)."""
    groups: dict[tuple[Any, Any], list[Mapping[str, Any]]] = {}
    for record in records:
        config = record["config"]
        if record.get("outcome") == "ok" and not config.get("memory"):
            groups.setdefault((config["width"], config["steps"]), []).append(record)
    best = max(groups.values(), key=lambda g: len({r["config"]["frames"] for r in g}), default=[])
    by_frames = {r["config"]["frames"]: r for r in best}
    if len(by_frames) < 3:
        return None
    frames = sorted(by_frames)
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    ax.plot(
        frames,
        [by_frames[f]["time_s"] for f in frames],
        marker="o",
        color="#fc8d62",
        label="median time (s)",
    )
    ax.set_xlabel("frames")
    ax.set_ylabel("seconds")
    peaks = [_peak_gb(by_frames[f])[0] or 0.0 for f in frames]
    if all(_peak_gb(by_frames[f])[0] is not None for f in frames):
        twin = ax.twinx()
        twin.plot(frames, peaks, marker="s", color="#8da0cb", label="peak (GB)")
        twin.set_ylabel("GB")
    label = (
        by_frames[frames[0]]["config"].get("resolution")
        or f"{by_frames[frames[0]]['config']['width']}px"
    )
    ax.set_title(f"Frames trade-off at {label}")
    return _svg(fig, "Frames trade-off")


def precision_chart(records: Sequence[Mapping[str, Any]]) -> str | None:
    by_dtype: dict[str, Mapping[str, Any]] = {}
    for record in records:
        config = record["config"]
        if (
            record.get("outcome") == "ok"
            and config.get("resolution") == "512p"
            and not config.get("memory")
        ):
            by_dtype.setdefault(config["dtype"], record)
    if len(by_dtype) < 2:
        return None
    dtypes = [d for d in ("fp32", "bf16", "fp16") if d in by_dtype]
    fig, ax = plt.subplots(figsize=(4.5, 2.6))
    ax.bar(
        dtypes,
        [by_dtype[d]["time_s"] for d in dtypes],
        color=["#8da0cb", "#66c2a5", "#fc8d62"][: len(dtypes)],
    )
    ax.set_ylabel("median seconds")
    ax.set_title("Precision at 512p")
    return _svg(fig, "Precision at 512p")


def memory_options_chart(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Memory saved vs time added, each option against the plain run."""
    points = [
        r
        for r in rows
        if r.get("memory_saved_pct") is not None and r.get("time_added_pct") is not None
    ]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for row in points:
        ax.scatter(row["time_added_pct"], row["memory_saved_pct"], color="#1f77b4")
        ax.annotate(
            row["option"],
            (row["time_added_pct"], row["memory_saved_pct"]),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=MIN_TEXT_PT,
        )
    ax.axhline(0, color="#999", linewidth=0.8)
    ax.axvline(0, color="#999", linewidth=0.8)
    ax.set_xlabel("time added vs plain run (%)")
    ax.set_ylabel("memory saved vs plain run (%)")
    ax.set_title("Memory options: memory saved vs time added")
    return _svg(fig, "Memory options")
