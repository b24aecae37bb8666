"""From a results document to what the report shows: verdict counts, regressions first, rows,
study sections. Shared by the HTML, Markdown and terminal renderings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_i2v.generation.memory_options import no_effect_reasons
from pytest_i2v.report.grouping import group_by_pipeline, pipeline_of, pipeline_order
from pytest_i2v.report.overview import overview
from pytest_i2v.verdict.conditions import clock_label
from pytest_i2v.verdict.explain import rebaseline_command
from pytest_i2v.verdict.outcome import SEVERITY
from pytest_i2v.verdict.peak import record_peak
from pytest_i2v.verdict.work_diff import WorkDiff

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


def outcome_of(record: Mapping[str, Any]) -> str:
    """The record's outcome kind, as decided when it was measured (``outcome.decide``)."""
    decision = record.get("decision") or {}
    if decision.get("kind"):
        return str(decision["kind"])
    # A document from before decisions: only the measurement's own outcome.
    return "out-of-memory" if record.get("outcome") == "oom" else "passed"


def clock_of(record: Mapping[str, Any]) -> str:
    """``conditions.clock_label`` of a results record; "-" for a record without conditions (CPU)."""
    return clock_label(record.get("conditions")) or "-"


def banner(failed: bool, mode: str | None, unreliable: int, run_unreliable: bool = False) -> str:
    """How the headline is shown (HTML class, Markdown emoji): "bad", "warn" or "good"."""
    if failed:
        return "bad"
    return "warn" if mode == "report" or unreliable or run_unreliable else "good"


def peak_figure(record: Mapping[str, Any]) -> tuple[int | None, str]:
    peak = record_peak(record)
    return peak.bytes, peak.label


def memory_option_rows(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each memory option against the plain run of the same generation on the same pipeline:
    memory saved, time added (another model's plain run says nothing about this one's options).

    Options the record's notes declare without effect for the pipeline get ``no_effect`` (the
    reason) and no saving or cost: the difference from the plain run is noise."""

    def key(record: Mapping[str, Any]) -> tuple[Any, ...]:
        config = record["config"]
        return (
            pipeline_of(record),
            config["width"],
            config["height"],
            config["frames"],
            config["steps"],
            config["dtype"],
        )

    plain = {
        key(r): r for r in records if r.get("outcome") == "ok" and not r["config"].get("memory")
    }
    rows = []
    for record in records:
        options = record["config"].get("memory") or []
        base = plain.get(key(record))
        if not options or base is None or record.get("outcome") != "ok":
            continue
        peak, label = peak_figure(record)
        base_peak, _ = peak_figure(base)
        reasons = no_effect_reasons(record.get("notes") or [])
        inert = [o for o in options if o in reasons]
        no_effect = reasons[inert[0]] if inert and len(inert) == len(options) else None
        rows.append(
            {
                "option": "+".join(options),
                "nodeid": record["nodeid"],
                "pipeline": pipeline_of(record),
                "time_s": record["time_s"],
                "time_added_pct": (record["time_s"] / base["time_s"] - 1) * 100
                if base.get("time_s") and not no_effect
                else None,
                "memory_saved_pct": (1 - peak / base_peak) * 100
                if peak and base_peak and not no_effect
                else None,
                "memory_figure": label,
                "no_effect": no_effect,  # every option of the row does nothing here
                "no_effect_options": inert,  # some do (the saving is the others')
            }
        )
    return rows


def recommendations_of(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The document's matrices by pipeline. A document from before per-pipeline matrices holds one
    ``recommendation``, fitted on I2VGen-XL's records (the only pipeline then)."""
    if "recommendations" in document:
        matrices = dict(document.get("recommendations") or {})
    else:
        old = document.get("recommendation")
        matrices = {pipeline_of({}): old} if old else {}  # pipeline_of({}): a record naming none
    return {name: matrices[name] for name in pipeline_order(matrices)}


def pipeline_groups(
    records: list[Mapping[str, Any]],
    memory_options: list[dict[str, Any]],
    recommendations: Mapping[str, dict[str, Any]],
) -> list[dict[str, Any]]:
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
        }
        for name in names
    ]


# The outcomes the report lists under "Regressions": what failed, or what needs a look.
LISTED_AS_REGRESSIONS = ("regressed", "out-of-memory", "over-budget", "env-changed", "not-enforced")


def _regressed_metrics(record: Mapping[str, Any]) -> list[Any]:
    return [
        m for m in (record.get("verdict") or {}).get("metrics", []) if m["verdict"] == "regressed"
    ]


def regression_rows(records: list[Mapping[str, Any]], profile_name: str) -> list[dict[str, Any]]:
    """The Regressions section: each listed test, why, and the command that re-baselines it."""
    return [
        {
            "record": record,
            "kind": outcome_of(record),
            "reason": (record.get("decision") or {}).get("reason", ""),
            "metrics": _regressed_metrics(record),
            "env_changes": (record.get("verdict") or {}).get("env_changes", []),
            "command": rebaseline_command(record["nodeid"], profile_name),
        }
        for record in records
        if outcome_of(record) in LISTED_AS_REGRESSIONS
    ]


def unreliable_rows(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Listed apart: neither a failure nor a pass, and never a run to re-baseline from."""
    return [
        {
            "record": record,
            "reason": (record.get("decision") or {}).get("reason", ""),
            "clock": clock_of(record),
            "metrics": _regressed_metrics(record),
        }
        for record in records
        if outcome_of(record) == "unreliable"
    ]


def changed_environment_keys(records: list[Mapping[str, Any]]) -> set[str]:
    """The environment keys that changed since the baseline (the first record that says so)."""
    changes: list[str] = next(
        (
            r["verdict"]["env_changes"]
            for r in records
            if (r.get("verdict") or {}).get("env_changes")
        ),
        [],
    )
    return {change.split(" ", 1)[0] for change in changes}


def work_change_rows(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tests whose work signature changed since the baseline: the estimate and the changed rows."""
    return [
        {"nodeid": r["nodeid"], "work": WorkDiff.from_dict(r["work"])}
        for r in records
        if r.get("work") and not r["work"].get("identical")
    ]


def build_context(
    document: Mapping[str, Any], skipped: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Everything the HTML and Markdown reports show of a results document, computed once."""
    records = list(document.get("records", []))
    kinds = Counter(outcome_of(r) for r in records)
    skipped = skipped if skipped is not None else list(document.get("skipped", []))
    if skipped:
        kinds["skipped"] = len(skipped)
    profile = document.get("profile") or {}
    gate = document.get("gate") or {}
    env = document.get("environment") or {}
    changed_keys = changed_environment_keys(records)
    provenance = sorted({r["config"].get("provenance", "?") for r in records})
    memory_options = memory_option_rows(records)
    recommendations = recommendations_of(document)
    groups = pipeline_groups(records, memory_options, recommendations)
    failed = bool(gate.get("fails", any((r.get("decision") or {}).get("fails") for r in records)))
    return {
        "document": document,
        "records": records,
        "counts": {k: kinds.get(k, 0) for k in OUTCOME_ORDER},
        "pills": pills(kinds, gate.get("unreliable_run")),
        "failed": failed,
        # The headline's colour: a report-only run or an unreliable measurement is never shown as a
        # pass.
        "banner": banner(
            failed, gate.get("mode"), kinds.get("unreliable", 0), bool(gate.get("unreliable_run"))
        ),
        "headline": gate.get("headline") or "",
        "mode": gate.get("mode"),
        "profile": profile,
        "environment": env,
        # The environment table shows the keys with a value, and every key that changed since the
        # baseline.
        "environment_rows": [
            (key, value)
            for key, value in env.items()
            if value not in (None, "", [], {}) or key in changed_keys
        ],
        "overview": overview(records, outcome_of),
        "changed_keys": changed_keys,
        "regressions": regression_rows(records, profile.get("name", "PROFILE")),
        "unreliable": unreliable_rows(records),
        "work_changes": work_change_rows(records),
        # The clock column only where some record has a GPU's conditions: a CPU-only report stays as
        # it was.
        "show_clock": any(r.get("conditions") for r in records),
        "skipped": skipped,
        "memory_options": memory_options,
        # Sections split by pipeline when there is more than one; a single pipeline is only named.
        "pipeline_groups": groups,
        "multi_pipeline": len(groups) > 1,
        "published": document.get("published_reference"),
        "recommendations": recommendations,
        "provenance": provenance,
        "thresholds": (document.get("settings") or {}).get("latency_thresholds") or [30, 60],
        "margin_gb": (document.get("settings") or {}).get("safety_margin_gb") or 2.0,
    }
