"""A compact Markdown summary for $GITHUB_STEP_SUMMARY or a PR comment."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_i2v.metrics import HOST_RSS_BYTES, STEP_S, TIME_S
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.context import ReportContext, build_context, clock_of, outcome_of
from pytest_i2v.report.results import Recommendation
from pytest_i2v.report.rows import RegressionRow, UnreliableRow, WorkChange
from pytest_i2v.verdict.explain import format_value
from pytest_i2v.verdict.gate import METRIC_LABELS

_BANNER_MARK = {"bad": "❌", "warn": "⚠️", "good": "✅"}  # context.banner
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def md(text: Any) -> str:
    """Escape a value for a Markdown table cell: no table breaks, no HTML, no formatting."""
    value = str(text)
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _SPECIAL.sub(r"\\\1", value)
    return value.replace("\r", " ").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain Markdown table: readable in a terminal, pastes into a pull request as is."""

    def escape(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


NO_CHANGE = "n/a"  # a results cell's change against a baseline there is none of
CHANGE_NOTE = (
    "Δ: the change of the median against the baseline's; n/a: no baseline to compare "
    "(new, another machine, not measured); not judged: reported, not gated."
)


def change_vs_baseline(record: GenerationRecord, metric: str | None) -> str:
    """The verdict's change of ``metric`` against its baseline (``+12.3 %``), "not judged" beside a
    change that cannot fail the test, ``n/a`` where there is no baseline figure to compare."""
    for item in record.verdict.metrics if record.verdict else ():
        if item.metric != metric:
            continue
        if item.delta_pct is None or item.baseline is None or item.current is None:
            return NO_CHANGE
        judged = "" if item.gating else " (not judged)"
        return f"{item.delta_pct:+.1f} %{judged}"
    return NO_CHANGE


def _result_row(record: GenerationRecord, show_clock: bool) -> str:
    """A results row; the changes are the plugin's own figures, written as they are."""
    peak = record.headline_peak()
    # The clock beside the time: a throttled GPU is slower.
    clock = f"{md(clock_of(record))} | " if show_clock else ""
    peak_metric = peak.key or HOST_RSS_BYTES
    return (
        f"| {md(record.nodeid)} | {md(format_value(TIME_S, record.time_s))} | "
        f"{change_vs_baseline(record, TIME_S)} | {clock}"
        f"{md(format_value(STEP_S, record.stages.step_s))} | "
        f"{change_vs_baseline(record, STEP_S)} | "
        f"{md(format_value(peak_metric, peak.bytes))} ({md(peak.label)}) | "
        f"{change_vs_baseline(record, peak.key)} | "
        f"{md(record.latency_class or '-')} | {md(outcome_of(record))} |"
    )


def work_change_lines(changes: Sequence[WorkChange], rows: int = 8) -> list[str]:
    """Per test whose work signature changed since the baseline: the estimate and the changed
    rows."""
    lines: list[str] = []
    for change in changes:
        parsed = change.work
        if parsed.identical:
            continue
        if not lines:
            lines += ["### What changed in the work", ""]
        lines += [
            f"**{md(change.nodeid)}**: {md(parsed.summary())}",
            "",
            "| stage | op (shapes, dtypes) | count | time | share of the step |",
            "|---|---|---|---|---|",
        ]
        lines += [
            "| " + " | ".join(md(cell) for cell in row.cells("→")) + " |"
            for row in parsed.rows[:rows]
        ]
        if parsed.count > rows:
            lines.append(
                f"| | … {parsed.count - rows} more (the results JSON keeps the largest) | | | |"
            )
        lines.append("")
    return lines


def _metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _headline_lines(context: ReportContext) -> list[str]:
    profile = str(context["profile"].get("name", "?"))
    device = context["environment"].get("gpu_name") or "CPU"
    # The headline was decided with the outcomes (outcome.headline): a report-only run never reads
    # as a pass.
    headline = md(context["headline"] or "no gate decision")
    status = f"{_BANNER_MARK[context['banner']]} {headline}"
    summary = ", ".join(f"{count} {name}" for name, count in context["counts"].items() if count)
    return [
        f"## pytest-i2v: {status} ({md(profile)} on {md(device)})",
        "",
        f"**{summary or 'no results'}**",
        "",
    ]


def _regression_lines(regressions: Sequence[RegressionRow]) -> list[str]:
    """Each regressed metric against its baseline, then the commands that re-baseline."""
    if not regressions:
        return []
    lines = [
        "### Regressions",
        "",
        "| test | metric | baseline | current | delta | bar |",
        "|---|---|---|---|---|---|",
    ]
    for item in regressions:
        nodeid = md(item.record.nodeid)
        output = _output_rows(item.record)
        lines += [f"| {nodeid} | {row} |" for row in output]
        if not item.metrics and not output:
            reason = "; ".join(item.env_changes) or item.reason or item.kind
            lines.append(f"| {nodeid} | {md(reason)} | - | - | - | - |")
        for m in item.metrics:
            delta = f"{m.delta_pct:+.1f} %" if m.delta_pct is not None else "-"
            baseline = md(format_value(m.metric, m.baseline))
            current = md(format_value(m.metric, m.current))
            lines.append(
                f"| {nodeid} | {md(_metric_label(m.metric))} | {baseline} ({m.runs} runs) | "
                f"{current} | {delta} | {md(m.threshold)} |"
            )
    lines += ["", "Re-baseline an intended change:", ""]
    lines += [f"    {item.command}" for item in regressions]
    lines.append("")
    return lines


def _output_rows(record: GenerationRecord) -> list[str]:
    """An output that changed, by metric: the worst frame's PSNR and the mean SSIM against its
    reference, each with its bar (the Markdown names the metric, the HTML draws the frames)."""
    comparison = record.fidelity
    if comparison is None or comparison.verdict != "changed":
        return []
    figures, bar = comparison.figures, comparison.bar
    against = md(comparison.against)
    lossy = " (lossy bar)" if comparison.lossy else ""
    if figures.shape_changed:
        return [f"output shape | {against} | changed | - | the same shape |"]
    rows = [
        f"output PSNR, worst of {figures.frames} frames | {against} | "
        f"{figures.min_psnr_db:.1f} dB | - | >= {bar.min_psnr_db:.1f} dB{lossy} |"
    ]
    if figures.mean_ssim is not None:
        rows.append(
            f"output SSIM, mean | {against} | {figures.mean_ssim:.3f} | - | "
            f">= {bar.min_ssim:.3f}{lossy} |"
        )
    return rows


def _unreliable_lines(unreliable: Sequence[UnreliableRow]) -> list[str]:
    if not unreliable:
        return []
    lines = [
        "### Unreliable (slow only under throttling)",
        "",
        "| test | SM clock, conditions | slow metrics | why |",
        "|---|---|---|---|",
    ]
    for item in unreliable:
        slow = (
            ", ".join(
                f"{_metric_label(m.metric)} {m.delta_pct:+.1f} %"
                if m.delta_pct is not None
                else _metric_label(m.metric)
                for m in item.metrics
            )
            or "-"
        )
        lines.append(
            f"| {md(item.record.nodeid)} | {md(item.clock)} | {md(slow)} | {md(item.reason)} |"
        )
    lines.append("")
    return lines


def _results_lines(context: ReportContext) -> list[str]:
    groups = context["pipeline_groups"]
    # One pipeline: today's single table, the pipeline named in its heading. Several: a table each.
    heading = f"### Results ({md(groups[0]['name'])})" if len(groups) == 1 else "### Results"
    lines = [heading]
    tables: list[tuple[str | None, list[GenerationRecord]]] = (
        [(g["name"], g["records"]) for g in groups if g["records"]]
        if context["multi_pipeline"]
        else [(None, context["records"])]
    )
    clock = ["SM clock"] if context["show_clock"] else []
    header = [
        "test",
        "time",
        "Δ time",
        *clock,
        "step",
        "Δ step",
        "peak memory",
        "Δ peak",
        "latency",
        "outcome",
    ]
    for name, records in tables:
        if name is not None:
            lines += ["", f"#### {md(name)}"]
        lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += [_result_row(record, context["show_clock"]) for record in records]
    return [*lines, "", CHANGE_NOTE]


def _recommendation_lines(context: ReportContext) -> list[str]:
    lines: list[str] = []
    for name, recommendation in context["recommendations"].items():
        heading = (
            f"### Recommendation matrix ({md(name)})"
            if context["multi_pipeline"]
            else "### Recommendation matrix"
        )
        lines += _matrix_lines(heading, recommendation)
    return lines


def _matrix_lines(heading: str, recommendation: Recommendation) -> list[str]:
    fits = recommendation["fits"]
    lines = [
        "",
        heading,
        "",
        f"Fitted on these measurements: peak max error "
        f"{fits['peak_gb']['max_error_pct']:.1f} %, "
        f"step max error {fits['step_s']['max_error_pct']:.1f} %.",
        "",
        "| GPU memory | resolution | frames | expected time | cell |",
        "|---|---|---|---|---|",
    ]
    for cell in recommendation["cells"]:
        resolution = md(cell["resolution"] or "nothing fits")
        kind = "measured" if cell["measured"] else "extrapolated"
        lines.append(
            f"| {cell['memory_gb']:g} GB | {resolution} | {cell['frames'] or '-'} | "
            f"{md(format_value(TIME_S, cell[TIME_S]))} | {kind} |"
        )
    return lines


def render_markdown(document: Mapping[str, Any]) -> str:
    """The whole summary: headline, regressions, work changes, unreliable tests, results tables,
    recommendation matrices and the versions it was measured with."""
    context = build_context(document)
    env = context["environment"]
    lines = [
        *_headline_lines(context),
        *_regression_lines(context["regressions"]),
        *work_change_lines(context["work_changes"]),
        *_unreliable_lines(context["unreliable"]),
        *_results_lines(context),
        *_recommendation_lines(context),
        "",
        f"<sub>pytest-i2v {md(env.get('plugin'))} · torch {md(env.get('torch'))} · diffusers "
        f"{md(env.get('diffusers'))} · {md(', '.join(context['provenance']))}</sub>",
        "",
    ]
    return "\n".join(lines)
