"""The A/B outputs: a Markdown PR comment, the JSON document and the HTML comparison page.

``meta`` is a plain dict (``ABMeta`` gives its shape); every key is optional except where noted:

- ``base``, ``head`` (str, required): the refs as the user named them (``HEAD~1``,
  ``working tree``);
- ``base_commit``, ``head_commit`` (str): the resolved commits;
- ``rounds`` (int): rounds run; ``order`` (str): the process order, e.g. ``"ABBA"``;
- ``rounds_planned`` (int): the rounds the job was asked for; more than ``rounds`` while it runs
  (or after it stopped early): the outputs then say "partial: 3 of 16 rounds done";
- ``min_effect`` (float, relative), ``confidence`` (float): the decision settings used;
- ``machine`` (str or dict): what ran it (GPU/CPU name, fingerprint);
- ``created`` (str, ISO time), ``pytest_args`` (list of str): for the record;
- ``conditions`` (list of str): the process records whose GPU was not stable
  (``ab.meta.unstable_conditions``);
- ``design`` (str): "sequential" (each test leaves once decided, ``ab.sequential``) or "fixed";
- ``all_decided`` (bool): a sequential job that ended because every test was decided (not partial);
- ``decided_after`` (dict): per test, the rounds after which it was decided (absent: undecided);
- ``calibration`` (str): whether the job used an A/B calibration, or why not.

Pure: no pytest, no torch, no I/O (the orchestrator writes the files atomically).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TypedDict

from jinja2 import Environment, PackageLoader, select_autoescape

from pytest_i2v.ab.output_check import output_text
from pytest_i2v.ab.paired import OUTPUT_METRIC, SEVERITY, ABTestResult, PairedVerdict
from pytest_i2v.ab.rounds import summary_counts
from pytest_i2v.ab.sequential import SPENDING_RULE
from pytest_i2v.report.markdown import md, work_change_lines
from pytest_i2v.report.rows import WorkChange
from pytest_i2v.storage import JsonValue, as_json
from pytest_i2v.verdict.explain import format_value
from pytest_i2v.verdict.gate import METRIC_LABELS

AB_SCHEMA = "pytest-i2v/ab"
AB_SCHEMA_VERSION = 1
META_KEYS = (
    "base",
    "head",
    "base_commit",
    "head_commit",
    "rounds",
    "rounds_planned",
    "order",
    "min_effect",
    "confidence",
    "machine",
    "created",
    "pytest_args",
    "conditions",
    "design",
    "all_decided",
    "decided_after",
    "calibration",
)


class MachineMeta(TypedDict):
    name: str  # ab.meta.machine_name
    host: str
    environment: Mapping[str, JsonValue]  # the first base round's, as its results document has it


class _Sides(TypedDict):
    base: str
    head: str


class ABMeta(_Sides, total=False):
    """``meta`` (the module docstring says what each key holds); ``base`` and ``head`` required."""

    base_commit: str
    head_commit: str
    rounds: int
    rounds_planned: int
    order: str
    min_effect: float
    confidence: float
    machine: str | MachineMeta
    created: str
    pytest_args: list[str]
    conditions: list[str]
    design: str
    all_decided: bool
    decided_after: dict[str, int]
    calibration: str | None


CONDITIONS_SHOWN = (
    5  # the Markdown lists this many unstable runs, then counts the rest (the JSON has all)
)


def _sorted(results: Sequence[ABTestResult]) -> list[ABTestResult]:
    """Regressions first, then not-comparable, inconclusive, improved, unchanged; stable within
    each."""
    return sorted(
        results, key=lambda r: SEVERITY.index(r.overall) if r.overall in SEVERITY else len(SEVERITY)
    )


def headline(results: Sequence[ABTestResult]) -> str:
    counts = summary_counts(results)
    return "A/B: " + ", ".join(
        f"{count} {name}" for name, count in counts.items() if count or name == "regressed"
    )


def metric_label(metric: str) -> str:
    labels = {"work": "work (signature, round 1)", OUTPUT_METRIC: "output (round 1 vs base's)"}
    return labels.get(metric) or METRIC_LABELS.get(metric, metric)


def ratio_text(verdict: PairedVerdict) -> str:
    if verdict.ratio is None:
        return "-"
    if verdict.low is None or verdict.high is None:
        return f"{verdict.ratio:.3f}"
    return f"{verdict.ratio:.3f} [{verdict.low:.3f}, {verdict.high:.3f}]"


def partial_text(meta: ABMeta) -> str:
    """ "partial: 3 of 16 rounds done" while the job runs or after it stopped early; "" when
    complete."""
    done, planned = meta.get("rounds"), meta.get("rounds_planned")
    if done is None or planned is None or done >= planned or meta.get("all_decided"):
        return ""
    return f"partial: {done} of {planned} rounds done"


def verdict_text(verdict: PairedVerdict) -> str:
    if verdict.verdict == "inconclusive" and verdict.rounds_needed:
        return f"inconclusive: run more rounds: ~{verdict.rounds_needed}"
    if verdict.verdict == "not-comparable":
        return f"not comparable: {verdict.reason}"
    if verdict.metric in ("outcome", OUTPUT_METRIC):  # no figures: the reason is the finding
        return f"{verdict.verdict}: {verdict.reason}"
    return verdict.verdict


def _settings_line(meta: ABMeta) -> str:
    parts = [f"base {md(meta['base'])}", f"head {md(meta['head'])}"]
    if meta.get("rounds") is not None:
        parts.append(
            f"{meta['rounds']} rounds" + (f" ({md(meta['order'])})" if meta.get("order") else "")
        )
    if meta.get("min_effect") is not None:
        parts.append(f"min effect {float(meta['min_effect']):.0%}")
    if meta.get("confidence") is not None:
        parts.append(f"confidence {float(meta['confidence']):.1%}")
    machine = _machine_text(meta)
    if machine:
        parts.append(f"on {md(machine)}")
    return ", ".join(parts)


def _machine_text(meta: ABMeta) -> str:
    machine = meta.get("machine")
    if isinstance(machine, Mapping):
        return str(machine.get("name") or machine)
    return str(machine) if machine else ""


def _markdown_verdict(verdict: PairedVerdict) -> str:
    if verdict.verdict == "not-comparable" or verdict.metric in ("outcome", OUTPUT_METRIC):
        return md(verdict_text(verdict))  # the reason may carry pipeline or test names
    return verdict_text(verdict)  # our own words only ("run more rounds: ~K" keeps its tilde)


def _about_the_job(meta: ABMeta) -> list[str]:
    """The paragraphs above the table: partial or not, the settings, the design, the calibration
    and the unstable runs."""
    lines: list[str] = []
    if partial_text(meta):
        lines += [
            f"**{partial_text(meta)}**: the verdicts use these rounds only; the job is still "
            f"running or stopped early",
            "",
        ]
    lines += [_settings_line(meta), ""]
    if meta.get("design") == "sequential":
        ended = (
            f"every test decided after {meta.get('rounds')} of at most "
            f"{meta.get('rounds_planned')} rounds"
            if meta.get("all_decided")
            else f"at most {meta.get('rounds_planned')} rounds"
        )
        lines += [
            f"Sequential: each test leaves the job once decided ({ended}); {md(SPENDING_RULE)}.",
            "",
        ]
    if meta.get("calibration"):
        lines += [md(str(meta["calibration"])), ""]
    unstable = list(meta.get("conditions") or ())
    if unstable:
        more = (
            f"; and {len(unstable) - CONDITIONS_SHOWN} more (ab.json)"
            if len(unstable) > CONDITIONS_SHOWN
            else ""
        )
        lines += [
            f"Hardware not stable under {len(unstable)} measured run(s): "
            f"{'; '.join(md(u) for u in unstable[:CONDITIONS_SHOWN])}{more}",
            "",
        ]
    return lines


def _table_row(result: ABTestResult, verdict: PairedVerdict, after: int | None) -> str:
    test = md(result.nodeid) + (f" (decided after {after})" if after else "")
    base, head = (format_value(verdict.metric, figure) for figure in (verdict.base, verdict.head))
    return (
        f"| {test} | {md(metric_label(verdict.metric))} | {base} | {head} | "
        f"{ratio_text(verdict)} | {_markdown_verdict(verdict)} |"
    )


def render_ab_markdown(results: Sequence[ABTestResult], meta: ABMeta) -> str:
    """A PR comment: the headline, the settings, then one row per test and metric, regressions
    first."""
    lines = [f"### {headline(results)}", "", *_about_the_job(meta)]
    lines += [
        "| test | metric | base | head | ratio [low, high] | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for result in _sorted(results):
        after = (meta.get("decided_after") or {}).get(result.nodeid)
        for verdict in result.verdicts:
            lines.append(_table_row(result, verdict, after))
        if not result.verdicts:
            lines.append(f"| {md(result.nodeid)} | - | - | - | - | {md(result.overall)} |")
    changed = work_change_lines(
        [WorkChange(r.nodeid, r.work.diff) for r in _sorted(results) if r.work]
    )
    if changed:
        lines += ["", *changed]
    lines += ["", *_output_lines(results)]
    return "\n".join(lines).rstrip("\n") + "\n"


def _output_lines(results: Sequence[ABTestResult]) -> list[str]:
    """Every test's output, head against base (round 1; the base's round 2 gives the noise)."""
    lines = ["#### Output: round 1's head against round 1's base", ""]
    return lines + [f"- {md(r.nodeid)}: {md(output_text(r))}" for r in _sorted(results)]


def ab_document(results: Sequence[ABTestResult], meta: ABMeta) -> dict[str, JsonValue]:
    """The JSON document (schema ``pytest-i2v/ab`` version 1)."""
    known = {key: meta.get(key) for key in META_KEYS}
    known["created"] = known["created"] or datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {
        "schema": AB_SCHEMA,
        "schema_version": AB_SCHEMA_VERSION,
        "meta": as_json(known),
        "summary": summary_counts(results),
        "results": [r.to_dict() for r in results],
    }


def render_ab_html(results: Sequence[ABTestResult], meta: ABMeta) -> str:
    """The compare page's A/B variant (``templates/ab.html.j2``: same look, autoescaped, no
    network)."""
    env = Environment(
        loader=PackageLoader("pytest_i2v.report", "templates"),
        autoescape=select_autoescape(default=True),
    )
    env.filters["value"] = lambda v, metric: format_value(metric, v)
    env.filters["label"] = metric_label
    env.filters["ratio"] = ratio_text
    env.filters["verdict_text"] = verdict_text
    env.filters["output_text"] = output_text
    works = [
        {"nodeid": r.nodeid, "work": r.work.diff}
        for r in _sorted(results)
        if r.work and not r.work.diff.identical
    ]
    return env.get_template("ab.html.j2").render(
        results=_sorted(results),
        meta=meta,
        headline=headline(results),
        machine=_machine_text(meta),
        partial=partial_text(meta),
        work_changes=works,
    )
