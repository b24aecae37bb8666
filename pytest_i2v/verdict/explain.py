"""Readable text for verdicts: the failure section of a regressed test and one-line summaries."""

from __future__ import annotations

import shlex
from dataclasses import replace

from pytest_i2v.metrics import TIME_S
from pytest_i2v.verdict.conditions import RunConditions
from pytest_i2v.verdict.gate import (
    METRIC_LABELS,
    MetricVerdict,
    RegressionVerdict,
)
from pytest_i2v.verdict.outcome import STABLE_GPU_ADVICE, UNRELIABLE_MEANING
from pytest_i2v.verdict.throttling import ThrottlingExcuse, throttling_excuse
from pytest_i2v.verdict.work_diff import GAP, ChangedRow, WorkDiff


def format_value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric.endswith("_bytes"):
        return f"{value / 2**20:,.0f} MiB"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def rebaseline_command(nodeid: str, profile: str, mode: str = "") -> str:
    flag = "--i2v-update-baselines" + (f"={mode}" if mode else "")
    return f"python -m pytest {shlex.quote(nodeid)} --gpu-profile {profile} {flag}"


def metric_line(m: MetricVerdict) -> str:
    interval = ""
    if m.interval:
        interval = (
            f", pass band {format_value(m.metric, m.interval[0])} .. "
            f"{format_value(m.metric, m.interval[1])}"
        )
    delta = f"{m.delta_pct:+.1f} %" if m.delta_pct is not None else "n/a"
    return (
        f"{METRIC_LABELS.get(m.metric, m.metric)}: {m.verdict.upper()} {delta}: current "
        f"{format_value(m.metric, m.current)} "
        f"vs baseline median {format_value(m.metric, m.baseline)} ({m.runs} "
        f"run{'s' if m.runs != 1 else ''}{interval}); "
        f"bar: {m.threshold}"
    )


def excuse_throttling(
    verdict: RegressionVerdict,
    conditions: RunConditions | None,
    repeats: dict[str, list[float | None]],
) -> RegressionVerdict:
    """``verdict`` with ``unreliable`` set where ``throttling.throttling_excuse`` excuses it, for a
    record's GPU ``conditions`` (None on the CPU) and its time metrics per repeat
    (``throttling.per_repeat``): the gate and ``baseline diff`` both ask here."""
    excuse = throttling_excuse(verdict, repeats, conditions)
    return replace(verdict, unreliable=unreliable_line(excuse)) if excuse is not None else verdict


def unreliable_line(excuse: ThrottlingExcuse) -> str:
    """One line: which repeats were slow and under what conditions, and the stable ones against the
    bar."""
    ran = excuse.summary if excuse.summary.startswith("throttled") else f"with the {excuse.summary}"
    figures = ", ".join(
        f"{METRIC_LABELS.get(metric, metric)} median {format_value(metric, median)} "
        f"under the bar {format_value(metric, bar)}"
        for metric, median, bar in excuse.within
    )
    n = excuse.stable_repeats
    stable = f"the {n} stable repeat{'s are' if n != 1 else ' is'}"
    return f"the slow repeats ran {ran}; {stable} within the bar ({figures})"


def verdict_section(
    verdict: RegressionVerdict,
    nodeid: str,
    profile: str,
    baseline_file: str,
    notes: list[str] | tuple[str, ...] = (),
) -> str:
    # A regression excused by throttling is named for what it is, not "regressed".
    shown_verdict = f"unreliable ({UNRELIABLE_MEANING})" if verdict.unreliable else verdict.verdict
    lines = [f"i2v gate: {shown_verdict} (profile {profile}, baseline {baseline_file})"]
    shown = [m for m in verdict.metrics if m.verdict in ("regressed", "improved")] or list(
        verdict.metrics
    )
    for metric in shown:
        lines.append("  " + metric_line(metric) + ("" if metric.gating else " [reported only]"))
    if verdict.env_changes:
        lines.append("  environment changed since the baseline: " + "; ".join(verdict.env_changes))
    for note in list(verdict.notes) + list(notes):
        lines.append(f"  note: {note}")
    if verdict.unreliable:
        lines.append(f"  unreliable: {verdict.unreliable}")
        # A throttled run is no baseline either: re-baselining from it would hide the next real
        # regression.
        lines.append(f"  {STABLE_GPU_ADVICE}; do not re-baseline from this run")
    elif verdict.verdict in ("regressed", "env-changed", "new"):
        lines.append(
            f"  if this change is intended, re-baseline: {rebaseline_command(nodeid, profile)}"
        )
    return "\n".join(lines)


def short_deltas(verdict: RegressionVerdict | None, peak_key: str | None) -> tuple[str, str]:
    """(time delta, headline-peak delta) against the baseline, for the terminal table;
    ``peak_key``: the headline peak's metric (``peak.headline_peak``)."""
    metrics = {m.metric: m for m in verdict.metrics} if verdict else {}

    def delta(name: str) -> str:
        m = metrics.get(name)
        if m and m.delta_pct is not None and m.current is not None:
            return f"{m.delta_pct:+.1f}%"
        return "-"

    return delta(TIME_S), delta(peak_key) if peak_key else "-"


def work_note(
    parsed: WorkDiff | None, verdict: str | None, min_effect_pct: float, names: int = 3
) -> str:
    """The terminal line's word on changed work, whatever the outcome (a pass within the minimum
    effect still changed the work): "work changed +8.1 % est. (within 10 %): aten::mm +100, ...".
    "" for identical work or none compared. ``verdict``: ``work_diff.work_verdict``'s."""
    if parsed is None or parsed.identical:
        return ""
    beyond = verdict in ("regressed", "improved")
    estimate = f" {parsed.effect_pct:+.1f} % est." if parsed.effect_pct is not None else ""
    shown = [r for r in parsed.rows if r.row.kind != GAP][:names]
    repeated = {r.row.name for r in shown if sum(o.row.name == r.row.name for o in shown) > 1}

    def name(
        changed: ChangedRow,
    ) -> str:  # a re-typed op is two rows of one name: the dtype tells them apart
        row = changed.row
        label = f"{row.name} ({row.dtypes or row.shapes})" if row.name in repeated else row.name
        moved = changed.count_head - changed.count_base
        return f"{label} {moved:+d}" if moved else f"{label} (bytes {row.bytes})"

    more = f", {parsed.count - len(shown)} more" if parsed.count > len(shown) else ""
    within = "beyond" if beyond else "within"
    return (
        f"work changed{estimate} ({within} {min_effect_pct:.0f} %): "
        f"{', '.join(name(r) for r in shown)}{more}"
    )


def work_section(parsed: WorkDiff, min_effect_pct: float, rows: int = 10) -> str:
    """What changed in the work since the baseline: one line, then the changed rows, the largest
    time effect first (op, shapes and dtypes; count and time base -> head; share of the step)."""
    if parsed.identical:
        return ""
    lines = [
        f"i2v work: {parsed.summary()} (minimum effect {min_effect_pct:.0f} %; the rows below "
        "changed, the rest "
        f"of the work is identical)"
    ]
    for row in parsed.rows[:rows]:
        stage, label, count, time, share = row.cells()
        lines.append(
            f"  {stage}: {label}: count {count}, time {time}"
            + (f", {share}" if share != "-" else "")
        )
    if parsed.count > rows:
        lines.append(
            f"  ... and {parsed.count - rows} more row(s) (the results JSON keeps the largest, "
            "records[].work)"
        )
    return "\n".join(lines)
