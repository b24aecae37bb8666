"""The difference between two results documents (two branches, two drivers, two GPUs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from jinja2 import Environment, PackageLoader, select_autoescape

from pytest_i2v.metrics import HOST_RSS_BYTES, TIME_S
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.grouping import pipeline_of
from pytest_i2v.report.markdown import md, work_change_lines
from pytest_i2v.report.results import ResultsView
from pytest_i2v.report.rows import WorkChange
from pytest_i2v.verdict.explain import format_value
from pytest_i2v.verdict.gate import fingerprint_changes
from pytest_i2v.verdict.work_diff import WorkDiff, diff


@dataclass(frozen=True)
class DocumentHeading:
    """What the comparison page says of each document, as it prints it."""

    gpu_name: str | None
    profile_name: str  # "" where the profile has no name
    created: str


class _RowKeys(TypedDict):
    nodeid: str
    only: str | None  # "a" or "b": the test ran in one document only
    pipeline: str
    not_comparable: str | None  # why there is no delta (the pipelines differ)


class ComparisonRow(_RowKeys, total=False):
    """One test in both documents (or in one): its figures in each and the change. The figures
    only where both ran it on the same pipeline; ``work`` only where both profiled it."""

    pipelines: tuple[str, str]
    time_a: float | None
    time_b: float | None
    time_pct: float | None
    step_a: float | None
    step_b: float | None
    step_pct: float | None
    memory_a: float | None
    memory_b: float | None
    memory_pct: float | None
    memory_key: str
    outcome: str
    config_changed: bool
    work: WorkDiff  # as the results JSON keeps it: the largest rows


class Comparison(TypedDict):
    """The comparison page's variables (``compare.html.j2``)."""

    a: DocumentHeading
    b: DocumentHeading
    rows: list[ComparisonRow]
    environment_changes: tuple[str, ...]


def _heading(view: ResultsView) -> DocumentHeading:
    gpu_name = view.shown_environment.get("gpu_name")
    return DocumentHeading(gpu_name, view.profile_name(""), view.created)


def _memory(record: GenerationRecord) -> tuple[float | None, str]:
    peak = record.headline_peak()
    return peak.bytes, peak.key or HOST_RSS_BYTES


def _pct(a: float | None, b: float | None) -> float | None:
    return (b / a - 1) * 100 if a and b else None


Pair = tuple[str, GenerationRecord | None, GenerationRecord | None]


def _pair(records_a: list[GenerationRecord], records_b: list[GenerationRecord]) -> list[Pair]:
    """(nodeid, record in A or None, record in B or None), A's order first, then B's leftovers.

    Records pair by nodeid and pipeline. A nodeid still unpaired on both sides ran on another
    pipeline in each document (e.g. ``--i2v-pipeline`` changed): it comes as one pair whose
    pipelines differ, so the comparison can say so instead of calling the test added and removed."""
    by_key_b = {(r.nodeid, pipeline_of(r)): r for r in records_b}
    pairs: list[Pair] = []
    for record in records_a:
        pairs.append(
            (record.nodeid, record, by_key_b.pop((record.nodeid, pipeline_of(record)), None))
        )
    unpaired_b: dict[str, list[GenerationRecord]] = {}
    for (nodeid, _), record in by_key_b.items():
        unpaired_b.setdefault(nodeid, []).append(record)
    for index, (nodeid, ra, rb) in enumerate(pairs):
        if rb is None and unpaired_b.get(nodeid):
            pairs[index] = (nodeid, ra, unpaired_b[nodeid].pop(0))
    pairs += [
        (nodeid, None, record) for nodeid, records in unpaired_b.items() for record in records
    ]
    return pairs


def _compared(row: ComparisonRow, ra: GenerationRecord, rb: GenerationRecord) -> None:
    """``row``'s figures of a test both documents ran on the same pipeline."""
    ma, key = _memory(ra)
    mb, _ = _memory(rb)
    step_a, step_b = ra.stages.step_s, rb.stages.step_s
    row["time_a"], row["time_b"] = ra.time_s, rb.time_s
    row["time_pct"] = _pct(ra.time_s, rb.time_s)
    row["step_a"], row["step_b"] = step_a, step_b
    row["step_pct"] = _pct(step_a, step_b)
    row["memory_a"], row["memory_b"] = ma, mb
    row["memory_pct"] = _pct(ma, mb)
    row["memory_key"] = key
    row["outcome"] = f"{ra.outcome} -> {rb.outcome}" if ra.outcome != rb.outcome else ra.outcome
    row["config_changed"] = ra.config_id != rb.config_id
    if ra.signature and rb.signature:  # the work, where both runs profiled it
        work = diff(ra.signature.work(), rb.signature.work(), step_a)
        row["work"] = WorkDiff.from_dict(work.to_dict())


def _row(nodeid: str, ra: GenerationRecord | None, rb: GenerationRecord | None) -> ComparisonRow:
    either = ra if ra is not None else rb
    assert either is not None  # a pair has a record on one side at least
    row: ComparisonRow = {
        "nodeid": nodeid,
        "only": "a" if rb is None else "b" if ra is None else None,
        "pipeline": pipeline_of(either),
        "not_comparable": None,
    }
    if ra is not None and rb is not None and pipeline_of(ra) != pipeline_of(rb):
        # Two models' times differ by design: a delta would read as a regression or a win.
        row["pipelines"] = (pipeline_of(ra), pipeline_of(rb))
        row["not_comparable"] = "not comparable (pipeline {} vs {})".format(*row["pipelines"])
    elif ra is not None and rb is not None:
        _compared(row, ra, rb)
    return row


def compare_documents(a: Mapping[str, Any], b: Mapping[str, Any]) -> Comparison:
    view_a, view_b = ResultsView.from_dict(a), ResultsView.from_dict(b)
    rows = [_row(*pair) for pair in _pair(view_a.records, view_b.records)]
    return {
        "a": _heading(view_a),
        "b": _heading(view_b),
        "rows": rows,
        "environment_changes": fingerprint_changes(view_a.environment, view_b.environment),
    }


def compare_markdown(comparison: Comparison) -> str:
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

        time_a, time_b = (format_value(TIME_S, row[key]) for key in ("time_a", "time_b"))
        memory_a, memory_b = (
            format_value(row["memory_key"], row[key]) for key in ("memory_a", "memory_b")
        )
        lines.append(
            f"| {md(row['nodeid'])} | {time_a} | {time_b} | "
            f"{pct(row['time_pct'])} | {pct(row['step_pct'])} | {memory_a} | "
            f"{memory_b} | {pct(row['memory_pct'])} |"
        )
    changes = comparison["environment_changes"]
    lines += ["", "Environment: " + ("; ".join(md(c) for c in changes) if changes else "identical")]
    work = work_change_lines(
        [WorkChange(row["nodeid"], row["work"]) for row in comparison["rows"] if "work" in row]
    )
    if work:
        lines += ["", *work]
    return "\n".join(lines)


def render_compare_html(comparison: Comparison, label_a: str, label_b: str) -> str:
    env = Environment(
        loader=PackageLoader("pytest_i2v.report", "templates"),
        autoescape=select_autoescape(default=True),
    )
    env.filters["value"] = lambda v, metric: format_value(metric, v)
    return env.get_template("compare.html.j2").render(
        comparison=comparison, label_a=label_a, label_b=label_b
    )
