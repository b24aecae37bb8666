"""From a results document to what the report shows: verdict counts, regressions first, rows,
study sections. Shared by the HTML, Markdown and terminal renderings."""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping

from pytest_i2v.explain import rebaseline_command
from pytest_i2v.memory_options import no_effect_reasons

VERDICT_ORDER = ("regressed", "oom", "env-changed", "improved", "new", "pass", "skipped")


def verdict_of(record: Mapping[str, Any]) -> str:
    if record.get("outcome") == "oom":
        return "oom"
    return (record.get("verdict") or {}).get("verdict") or "new"


def peak_figure(record: Mapping[str, Any]) -> tuple[int | None, str]:
    peak = record.get("peak_memory") or {}
    for key, label in (("allocated_bytes", "allocated"), ("host_rss_bytes", "host RSS")):
        if peak.get(key) is not None:
            return peak[key], label
    return None, "-"


def memory_option_rows(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each memory option against the plain run of the same generation: memory saved, time added.

    Options the record's notes declare without effect for the pipeline get ``no_effect`` (the
    reason) and no saving or cost: the difference from the plain run is noise."""
    def key(config: Mapping[str, Any]) -> tuple[Any, ...]:
        return (config["width"], config["height"], config["frames"], config["steps"], config["dtype"])

    plain = {key(r["config"]): r for r in records if r.get("outcome") == "ok" and not r["config"].get("memory")}
    rows = []
    for record in records:
        options = record["config"].get("memory") or []
        base = plain.get(key(record["config"]))
        if not options or base is None or record.get("outcome") != "ok":
            continue
        peak, label = peak_figure(record)
        base_peak, _ = peak_figure(base)
        reasons = no_effect_reasons(record.get("notes") or [])
        inert = [o for o in options if o in reasons]
        no_effect = reasons[inert[0]] if inert and len(inert) == len(options) else None
        rows.append({
            "option": "+".join(options), "nodeid": record["nodeid"], "time_s": record["time_s"],
            "time_added_pct": (record["time_s"] / base["time_s"] - 1) * 100 if base.get("time_s") and not no_effect else None,
            "memory_saved_pct": (1 - peak / base_peak) * 100 if peak and base_peak and not no_effect else None,
            "memory_figure": label,
            "no_effect": no_effect,  # every option of the row does nothing here
            "no_effect_options": inert,  # some do (the saving is the others')
        })
    return rows


def build_context(document: Mapping[str, Any], skipped: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    records = list(document.get("records", []))
    verdicts = Counter(verdict_of(r) for r in records)
    skipped = skipped if skipped is not None else list(document.get("skipped", []))
    if skipped:
        verdicts["skipped"] = len(skipped)
    profile = document.get("profile") or {}
    enforce = ((document.get("baseline") or {}).get("gate") or {}).get("enforce", True)
    regressions = []
    for record in records:
        verdict = record.get("verdict") or {}
        if verdict.get("verdict") in ("regressed", "env-changed") or record.get("outcome") == "oom":
            regressions.append({
                "record": record,
                "metrics": [m for m in verdict.get("metrics", []) if m["verdict"] == "regressed"],
                "env_changes": verdict.get("env_changes", []),
                "command": rebaseline_command(record["nodeid"], profile.get("name", "PROFILE")),
            })
    env = document.get("environment") or {}
    baseline_fp = next((r.get("verdict", {}).get("env_changes") for r in records if (r.get("verdict") or {}).get("env_changes")), [])
    changed_keys = {c.split(" ", 1)[0] for c in baseline_fp}
    provenance = sorted({r["config"].get("provenance", "?") for r in records})
    return {
        "document": document,
        "records": records,
        "counts": {v: verdicts.get(v, 0) for v in VERDICT_ORDER},
        "failed": verdicts.get("oom", 0) + (verdicts.get("regressed", 0) if enforce else 0),
        "report_only": not enforce,
        "profile": profile,
        "environment": env,
        "changed_keys": changed_keys,
        "regressions": regressions,
        "skipped": skipped,
        "memory_options": memory_option_rows(records),
        "published": document.get("published_reference"),
        "recommendation": document.get("recommendation"),
        "provenance": provenance,
        "thresholds": (document.get("settings") or {}).get("latency_thresholds") or [30, 60],
        "margin_gb": (document.get("settings") or {}).get("safety_margin_gb") or 2.0,
    }
