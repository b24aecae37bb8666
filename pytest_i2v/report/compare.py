"""The difference between two results documents (two branches, two drivers, two GPUs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from pytest_i2v.report.grouping import pipeline_of
from pytest_i2v.report.markdown import md, work_changes
from pytest_i2v.verdict.explain import format_value
from pytest_i2v.verdict.gate import fingerprint_changes
from pytest_i2v.verdict.peak import record_peak
from pytest_i2v.verdict.signature import WorkSignature
from pytest_i2v.verdict.work_diff import diff


def _memory(record: Mapping[str, Any]) -> tuple[float | None, str]:
    peak = record_peak(record)
    return peak.bytes, peak.key or "host_rss_bytes"


def _pct(a: float | None, b: float | None) -> float | None:
    return (b / a - 1) * 100 if a and b else None


def _pair(
    records_a: list[Mapping[str, Any]], records_b: list[Mapping[str, Any]]
) -> list[tuple[str, Any, Any]]:
    """(nodeid, record in A or None, record in B or None), A's order first, then B's leftovers.

    Records pair by nodeid and pipeline. A nodeid still unpaired on both sides ran on another
    pipeline in each document (e.g. ``--i2v-pipeline`` changed): it comes as one pair whose
    pipelines differ, so the comparison can say so instead of calling the test added and removed."""
    by_key_b = {(r["nodeid"], pipeline_of(r)): r for r in records_b}
    pairs: list[tuple[str, Any, Any]] = []
    for record in records_a:
        pairs.append(
            (record["nodeid"], record, by_key_b.pop((record["nodeid"], pipeline_of(record)), None))
        )
    unpaired_b: dict[str, list[Mapping[str, Any]]] = {}
    for (nodeid, _), record in by_key_b.items():
        unpaired_b.setdefault(nodeid, []).append(record)
    for index, (nodeid, ra, rb) in enumerate(pairs):
        if rb is None and unpaired_b.get(nodeid):
            pairs[index] = (nodeid, ra, unpaired_b[nodeid].pop(0))
    pairs += [
        (nodeid, None, record) for nodeid, records in unpaired_b.items() for record in records
    ]
    return pairs


def compare_documents(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    rows = []
    for nodeid, ra, rb in _pair(list(a.get("records", [])), list(b.get("records", []))):
        row: dict[str, Any] = {
            "nodeid": nodeid,
            "only": "a" if rb is None else "b" if ra is None else None,
            "pipeline": pipeline_of(ra if ra is not None else rb),
            "not_comparable": None,
        }
        if ra is not None and rb is not None and pipeline_of(ra) != pipeline_of(rb):
            # Two models' times differ by design: a delta would read as a regression or a win.
            row["pipelines"] = (pipeline_of(ra), pipeline_of(rb))
            row["not_comparable"] = "not comparable (pipeline {} vs {})".format(*row["pipelines"])
        elif ra is not None and rb is not None:
            ma, key = _memory(ra)
            mb, _ = _memory(rb)
            row.update(
                {
                    "time_a": ra.get("time_s"),
                    "time_b": rb.get("time_s"),
                    "time_pct": _pct(ra.get("time_s"), rb.get("time_s")),
                    "step_a": (ra.get("stages") or {}).get("step_s"),
                    "step_b": (rb.get("stages") or {}).get("step_s"),
                    "step_pct": _pct(
                        (ra.get("stages") or {}).get("step_s"),
                        (rb.get("stages") or {}).get("step_s"),
                    ),
                    "memory_a": ma,
                    "memory_b": mb,
                    "memory_pct": _pct(ma, mb),
                    "memory_key": key,
                    "outcome": f"{ra.get('outcome')} -> {rb.get('outcome')}"
                    if ra.get("outcome") != rb.get("outcome")
                    else ra.get("outcome"),
                    "config_changed": ra.get("config_id") != rb.get("config_id"),
                }
            )
            if ra.get("signature") and rb.get("signature"):  # the work, where both runs profiled it
                work = diff(
                    WorkSignature.from_dict(ra["signature"]),
                    WorkSignature.from_dict(rb["signature"]),
                    (ra.get("stages") or {}).get("step_s"),
                )
                row["work"] = work.to_dict()
        rows.append(row)
    return {
        "a": a,
        "b": b,
        "rows": rows,
        "environment_changes": fingerprint_changes(
            a.get("environment") or {}, b.get("environment") or {}
        ),
    }


def compare_markdown(comparison: Mapping[str, Any]) -> str:
    lines = [
        "| test | time A | time B | delta | step delta | peak memory A | peak memory B | delta |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in comparison["rows"]:
        if row["only"]:
            lines.append(f"| {md(row['nodeid'])} | only in {row['only'].upper()} | | | | | | |")
            continue
        if row["not_comparable"]:
            # The names escaped, the words kept readable.
            pipeline_a, pipeline_b = (md(name) for name in row["pipelines"])
            lines.append(
                f"| {md(row['nodeid'])} | not comparable (pipeline {pipeline_a} vs {pipeline_b}) "
                "| | | | | | |"
            )
            continue

        def pct(value: float | None) -> str:
            return f"{value:+.1f} %" if value is not None else "-"

        time_a, time_b = (format_value("time_s", row[key]) for key in ("time_a", "time_b"))
        memory_a, memory_b = (
            format_value(row["memory_key"], row[k]) for k in ("memory_a", "memory_b")
        )
        lines.append(
            f"| {md(row['nodeid'])} | {time_a} | {time_b} | "
            f"{pct(row['time_pct'])} | {pct(row['step_pct'])} | {memory_a} | "
            f"{memory_b} | {pct(row['memory_pct'])} |"
        )
    changes = comparison["environment_changes"]
    lines += ["", "Environment: " + ("; ".join(md(c) for c in changes) if changes else "identical")]
    work = work_changes(
        [
            {"nodeid": row["nodeid"], "work": row["work"]}
            for row in comparison["rows"]
            if row.get("work")
        ]
    )
    if work:
        lines += ["", *work]
    return "\n".join(lines)


def render_compare_html(comparison: Mapping[str, Any], label_a: str, label_b: str) -> str:
    env = Environment(
        loader=PackageLoader("pytest_i2v.report", "templates"),
        autoescape=select_autoescape(default=True),
    )
    env.filters["value"] = lambda v, metric: format_value(metric, v)
    return env.get_template("compare.html.j2").render(
        comparison=comparison, label_a=label_a, label_b=label_b
    )
