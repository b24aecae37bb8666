"""From a results document to what the report shows: verdict counts, regressions first, rows,
study sections. Shared by the HTML, Markdown and terminal renderings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from pytest_i2v.generation.memory_options import no_effect_reasons
from pytest_i2v.metrics import TIME_S
from pytest_i2v.pipelines import DEFAULT_PIPELINE
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.figures import clock_text
from pytest_i2v.report.frontier import FrontierPoint, frontier, recommend_caches
from pytest_i2v.report.grouping import group_by_pipeline, pipeline_of, pipeline_order
from pytest_i2v.report.overview import Overview, overview
from pytest_i2v.report.results import (
    PublishedReference,
    Recommendation,
    ResultsView,
    Skipped,
)
from pytest_i2v.report.rows import (
    Chart,
    MemoryOptionRow,
    PipelineGroup,
    RegressionRow,
    UnreliableRow,
    WorkChange,
)
from pytest_i2v.verdict.explain import rebaseline_command
from pytest_i2v.verdict.gate import MetricVerdict
from pytest_i2v.verdict.outcome import SEVERITY

if TYPE_CHECKING:  # the pictures are the HTML's (html.render_html): Markdown loads no imaging
    from pytest_i2v.report.output_gallery import OutputGallery

OUTCOME_ORDER = (*SEVERITY, "skipped")
# A pill's words where the outcome's name would read as something else: the banner's "not enforced"
# is the run's mode, while the not-enforced outcome counts the tests that would have failed.
PILL_LABELS = {"not-enforced": "would have failed"}
# The pill of a run whose machine speed moved (not one test's outcome).
RUN_UNRELIABLE = "unreliable-run"


@dataclass(frozen=True)
class Pill:
    kind: str  # the CSS class: an outcome kind, or RUN_UNRELIABLE
    text: str
    title: str = ""


class ReportContext(TypedDict):
    """Everything the HTML and Markdown reports show of a results document (the template's
    variables)."""

    created: str
    records: list[GenerationRecord]
    counts: dict[str, int]
    pills: list[Pill]
    failed: bool
    banner: str
    headline: str
    mode: str | None
    profile: dict[str, str | None]
    profile_memory_gb: float | None
    environment: dict[str, str | None]
    environment_rows: list[tuple[str, str | None]]
    overview: Overview
    changed_keys: set[str]
    regressions: list[RegressionRow]
    unreliable: list[UnreliableRow]
    work_changes: list[WorkChange]
    show_clock: bool
    skipped: list[Skipped]
    memory_options: list[MemoryOptionRow]
    frontier: list[FrontierPoint]  # each variant against its native sibling
    cache_recommendations: dict[str, FrontierPoint | None]
    pipeline_groups: list[PipelineGroup]
    multi_pipeline: bool
    published: PublishedReference | None
    recommendations: dict[str, Recommendation]
    provenance: list[str]
    thresholds: list[float]
    margin_gb: float
    overview_svg: str | None  # the HTML's (``html.render_html``)
    frontier_svg: str | None  # the HTML's speed-against-fidelity chart
    charts: list[Chart]  # the HTML's, every pipeline's
    output_gallery: OutputGallery | None  # the HTML's pictures of the outputs


def pills(kinds: Mapping[str, int], run_unreliable: str | None) -> list[Pill]:
    """The counts under the banner, worded as the banner words them (``outcome.headline``)."""
    shown = [
        Pill(kind, f"{PILL_LABELS.get(kind, kind)}: {kinds.get(kind, 0)}") for kind in OUTCOME_ORDER
    ]
    if run_unreliable:
        shown.append(
            Pill(RUN_UNRELIABLE, "whole run unreliable: machine speed moved", run_unreliable)
        )
    return shown


def outcome_of(record: GenerationRecord) -> str:
    """The record's outcome kind, as decided when it was measured (``outcome.decide``)."""
    if record.decision is not None and record.decision.kind:
        return str(record.decision.kind)
    # A document from before decisions: only the measurement's own outcome.
    return "out-of-memory" if record.outcome == "oom" else "passed"


def clock_of(record: GenerationRecord) -> str:
    """``conditions.clock_label`` of a results record; "-" for a record without conditions (CPU)."""
    return clock_text(record) or "-"


def banner(failed: bool, mode: str | None, unreliable: int, run_unreliable: bool = False) -> str:
    """How the headline is shown (HTML class, Markdown emoji): "bad", "warn" or "good"."""
    if failed:
        return "bad"
    return "warn" if mode == "report" or unreliable or run_unreliable else "good"


def peak_figure(record: GenerationRecord) -> tuple[int | None, str]:
    peak = record.headline_peak()
    return peak.bytes, peak.label


def _generation_key(record: GenerationRecord) -> tuple[str, int, int, int, int, str]:
    """The generation a record ran, on its pipeline: what a memory option's plain run shares."""
    return (
        pipeline_of(record),
        record.count("width"),
        record.count("height"),
        record.count("frames"),
        record.count("steps"),
        str(record.setting("dtype")),
    )


def memory_option_rows(records: list[GenerationRecord]) -> list[MemoryOptionRow]:
    """Each memory option against the plain run of the same generation on the same pipeline:
    memory saved, time added (another model's plain run says nothing about this one's options).

    Options the record's notes declare without effect for the pipeline get ``no_effect`` (the
    reason) and no saving or cost: the difference from the plain run is noise."""
    plain = {_generation_key(r): r for r in records if r.outcome == "ok" and not r.memory_options}
    rows: list[MemoryOptionRow] = []
    for record in records:
        options = record.memory_options
        base = plain.get(_generation_key(record))
        if not options or base is None or record.outcome != "ok":
            continue
        peak, label = peak_figure(record)
        base_peak, _ = peak_figure(base)
        reasons = no_effect_reasons(record.notes)
        inert = [o for o in options if o in reasons]
        no_effect = reasons[inert[0]] if inert and len(inert) == len(options) else None
        time_s = record.time_s
        rows.append(
            {
                "option": "+".join(options),
                "nodeid": record.nodeid,
                "pipeline": pipeline_of(record),
                TIME_S: time_s,
                "time_added_pct": (time_s / base.time_s - 1) * 100
                if time_s is not None and base.time_s and not no_effect
                else None,
                "memory_saved_pct": (1 - peak / base_peak) * 100
                if peak and base_peak and not no_effect
                else None,
                "memory_figure": label,
                "no_effect": no_effect,
                "no_effect_options": inert,
            }
        )
    return rows


def recommendations_of(view: ResultsView) -> dict[str, Recommendation]:
    """The document's matrices by pipeline. A document from before per-pipeline matrices holds one
    ``recommendation``, fitted on I2VGen-XL's records (the only pipeline then)."""
    if view.recommendations is not None:
        matrices = view.recommendations
    else:
        old = view.recommendation
        matrices = {DEFAULT_PIPELINE: old} if old else {}  # the pipeline of a record naming none
    return {name: matrices[name] for name in pipeline_order(matrices)}


def pipeline_groups(
    records: list[GenerationRecord],
    memory_options: list[MemoryOptionRow],
    recommendations: Mapping[str, Recommendation],
) -> list[PipelineGroup]:
    """One entry per pipeline present (in its records or its matrices): what each section shows of
    it."""
    by_pipeline = group_by_pipeline(records)
    names = pipeline_order([*by_pipeline, *recommendations])
    return [
        {
            "name": name,
            "records": by_pipeline.get(name, []),
            "memory_options": [row for row in memory_options if row["pipeline"] == name],
            "recommendation": recommendations.get(name),
            "charts": [],
        }
        for name in names
    ]


# The outcomes the report lists under "Regressions": what failed, or what needs a look.
LISTED_AS_REGRESSIONS = (
    "regressed",
    "output-changed",
    "out-of-memory",
    "over-budget",
    "env-changed",
    "not-enforced",
)


def _regressed_metrics(record: GenerationRecord) -> list[MetricVerdict]:
    metrics = record.verdict.metrics if record.verdict else ()
    return [m for m in metrics if m.verdict == "regressed"]


def _reason(record: GenerationRecord) -> str:
    return record.decision.reason if record.decision else ""


def regression_rows(records: list[GenerationRecord], profile_name: str) -> list[RegressionRow]:
    """The Regressions section: each listed test, why, and the command that re-baselines it."""
    return [
        RegressionRow(
            record=record,
            kind=outcome_of(record),
            reason=_reason(record),
            metrics=_regressed_metrics(record),
            env_changes=record.verdict.env_changes if record.verdict else (),
            command=rebaseline_command(record.nodeid, profile_name),
        )
        for record in records
        if outcome_of(record) in LISTED_AS_REGRESSIONS
    ]


def unreliable_rows(records: list[GenerationRecord]) -> list[UnreliableRow]:
    """Listed apart: neither a failure nor a pass, and never a run to re-baseline from."""
    return [
        UnreliableRow(
            record=record,
            reason=_reason(record),
            clock=clock_of(record),
            metrics=_regressed_metrics(record),
        )
        for record in records
        if outcome_of(record) == "unreliable"
    ]


def changed_environment_keys(records: list[GenerationRecord]) -> set[str]:
    """The environment keys that changed since the baseline (the first record that says so)."""
    changes = next(
        (r.verdict.env_changes for r in records if r.verdict and r.verdict.env_changes), ()
    )
    return {change.split(" ", 1)[0] for change in changes}


def work_change_rows(records: list[GenerationRecord]) -> list[WorkChange]:
    """Tests whose work signature changed since the baseline: the estimate and the changed rows."""
    return [
        WorkChange(r.nodeid, r.work.diff) for r in records if r.work and not r.work.diff.identical
    ]


def build_context(
    document: Mapping[str, Any], skipped: list[Skipped] | None = None
) -> ReportContext:
    """Everything the HTML and Markdown reports show of a results document, computed once."""
    return context_of(ResultsView.from_dict(document), skipped)


def _environment_rows(view: ResultsView, changed_keys: set[str]) -> list[tuple[str, str | None]]:
    """The keys with a value, and every key that changed since the baseline."""
    return [
        (key, shown)
        for (key, value), shown in zip(
            view.environment.items(), view.shown_environment.values(), strict=True
        )
        if value not in (None, "", [], {}) or key in changed_keys
    ]


def context_of(view: ResultsView, skipped: list[Skipped] | None = None) -> ReportContext:
    """``build_context`` of a document already read."""
    records = view.records
    kinds = Counter(outcome_of(r) for r in records)
    skipped = skipped if skipped is not None else view.skipped
    if skipped:
        kinds["skipped"] = len(skipped)
    gate = view.gate
    changed_keys = changed_environment_keys(records)
    memory_options = memory_option_rows(records)
    points = frontier(records)
    recommendations = recommendations_of(view)
    groups = pipeline_groups(records, memory_options, recommendations)
    failed = (
        gate.fails
        if gate.fails is not None
        else any(r.decision.fails for r in records if r.decision)
    )
    return {
        "created": view.created,
        "records": records,
        "counts": {k: kinds.get(k, 0) for k in OUTCOME_ORDER},
        "pills": pills(kinds, gate.unreliable_run),
        "failed": failed,
        # The headline's colour: a report-only run or an unreliable measurement is never shown as a
        # pass.
        "banner": banner(failed, gate.mode, kinds.get("unreliable", 0), bool(gate.unreliable_run)),
        "headline": gate.headline,
        "mode": gate.mode,
        "profile": view.profile,
        "profile_memory_gb": view.profile_memory_gb,
        "environment": view.shown_environment,
        "environment_rows": _environment_rows(view, changed_keys),
        "overview": overview(records, outcome_of),
        "changed_keys": changed_keys,
        "regressions": regression_rows(records, view.profile_name("PROFILE")),
        "unreliable": unreliable_rows(records),
        "work_changes": work_change_rows(records),
        # The clock column only where some record has a GPU's conditions: a CPU-only report stays as
        # it was.
        "show_clock": any(r.conditions for r in records),
        "skipped": skipped,
        "memory_options": memory_options,
        "frontier": points,
        "cache_recommendations": recommend_caches(points),
        # Sections split by pipeline when there is more than one; a single pipeline is only named.
        "pipeline_groups": groups,
        "multi_pipeline": len(groups) > 1,
        "published": view.published,
        "recommendations": recommendations,
        "provenance": sorted({str(r.config.get("provenance", "?")) for r in records}),
        "thresholds": view.latency_thresholds,
        "margin_gb": view.safety_margin_gb,
        "overview_svg": None,
        "frontier_svg": None,
        "charts": [],
        "output_gallery": None,
    }
