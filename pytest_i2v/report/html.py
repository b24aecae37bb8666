"""The self-contained HTML report: Jinja2 (autoescaped), inline CSS, inline SVG charts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from pytest_i2v.generation.memory_options import no_effect_options
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report import per_test_charts, study_charts
from pytest_i2v.report.chart_style import width_px
from pytest_i2v.report.context import ReportContext, build_context, clock_of, outcome_of
from pytest_i2v.report.output_gallery import output_gallery
from pytest_i2v.report.rows import Chart, MemoryOptionRow
from pytest_i2v.storage import write_text_atomic
from pytest_i2v.verdict.explain import format_value
from pytest_i2v.verdict.gate import METRIC_LABELS


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("pytest_i2v.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        keep_trailing_newline=True,
    )
    env.filters["value"] = lambda v, metric: format_value(metric, v)
    env.filters["metric_label"] = lambda m: METRIC_LABELS.get(m, m)
    env.filters["verdict"] = outcome_of
    env.filters["clock"] = clock_of
    env.filters["no_effect"] = lambda notes: no_effect_options(notes or [])
    return env


# A chart wider than a grid column at 1,280 px spans the grid: never scaled below its own size.
WIDE_PX = 540


def build_charts(
    context: ReportContext,
    records: list[GenerationRecord] | None = None,
    memory_options: list[MemoryOptionRow] | None = None,
) -> list[Chart]:
    """The charts of ``records`` (all the context's by default): one pipeline's, when a report
    holds several."""
    records = context["records"] if records is None else records
    memory_options = context["memory_options"] if memory_options is None else memory_options
    candidates = [
        ("Time vs resolution", study_charts.time_vs_resolution(records, context["thresholds"])),
        (
            "Peak memory vs resolution",
            study_charts.memory_vs_resolution(
                records, context["profile_memory_gb"], context["margin_gb"]
            ),
        ),
        ("Stage breakdown", per_test_charts.stage_breakdown(records)),
        ("Per-step time trace", per_test_charts.step_traces(records)),
        ("Baseline history", per_test_charts.baseline_history(records)),
        ("Frames trade-off", study_charts.frames_tradeoff(records)),
        ("Precision", study_charts.precision_chart(records)),
        ("Memory options", study_charts.memory_options_chart(memory_options)),
    ]
    return [Chart(title, svg, width_px(svg) > WIDE_PX) for title, svg in candidates if svg]


def render_html(document: Mapping[str, Any]) -> str:
    context = build_context(document)
    context["overview_svg"] = per_test_charts.overview_chart(context["overview"])
    # Two models' times on one axis compare nothing: with several pipelines, each gets its own
    # charts.
    if context["multi_pipeline"]:
        for group in context["pipeline_groups"]:
            group["charts"] = build_charts(context, group["records"], group["memory_options"])
        context["charts"] = [
            chart for group in context["pipeline_groups"] for chart in group["charts"]
        ]
    else:
        context["charts"] = build_charts(context)
    context["frontier_svg"] = study_charts.frontier_chart(context["frontier"])
    # Drawn here, not in build_context: the Markdown and the terminal show no pictures.
    context["output_gallery"] = output_gallery(context["records"])
    return _environment().get_template("report.html.j2").render(**context)


def write_html(path: Path, document: Mapping[str, Any]) -> None:
    write_text_atomic(path, render_html(document))
