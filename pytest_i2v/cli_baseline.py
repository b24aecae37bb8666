"""``python -m pytest_i2v baseline show|diff|match``: review baselines outside a test run.

``diff`` against a results JSON judges each record as the plugin's gate does
(``record.judgement.judge`` and ``outcome.decide``), so the two never disagree.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.metrics import HOST_RSS_BYTES, STEP_S, TIME_S
from pytest_i2v.profiles import load_profiles
from pytest_i2v.record.document import read_results
from pytest_i2v.record.judgement import GateContext, judge
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.markdown import markdown_table
from pytest_i2v.storage import Scalar
from pytest_i2v.verdict.baseline_records import BaselineFile
from pytest_i2v.verdict.baseline_store import baseline_path, read_baseline
from pytest_i2v.verdict.explain import format_value
from pytest_i2v.verdict.fidelity import FidelitySettings
from pytest_i2v.verdict.fingerprint import machine_changes
from pytest_i2v.verdict.gate import GateSettings, MetricVerdict, fingerprint_changes
from pytest_i2v.verdict.outcome import GATE_MODES, NO_MACHINE_BASELINE, GateMode, decide
from pytest_i2v.verdict.peak import headline_peak
from pytest_i2v.verdict.signature import WorkSignature
from pytest_i2v.verdict.work_diff import WorkDiff, diff
from pytest_i2v.verdict.yaml_shapes import figure

# measure (torch) is imported inside _this_machine: only `baseline match` reads this machine, the
# other baseline commands run without torch.

# The machine is read (torch, NVML) inside _this_machine only: `show` and `diff` stay cheap.

# baseline match: no baseline for this machine. Not 1, which is also what a crash exits with: CI
# must not read a crash as "use the A/B mode".
NO_MATCH = 10


def _median(runs: Sequence[Mapping[str, Scalar]], metric: str) -> float | None:
    values = [value for r in runs if (value := figure(r.get(metric))) is not None]
    return float(statistics.median(values)) if values else None


def _memory_metric(runs: Sequence[Mapping[str, Scalar]]) -> str:
    return headline_peak(runs[-1] if runs else {}).key or HOST_RSS_BYTES


def _baseline_from_arg(arg: str, directory: Path) -> BaselineFile:
    path = Path(arg)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise I2VUsageError(f"baseline file {path} does not exist")
        return read_baseline(path)
    path = baseline_path(directory, arg)
    if not path.is_file():
        raise I2VUsageError(
            f"no baseline for profile {arg!r} in {directory} ({path.name} missing); "
            f"record one with pytest --gpu-profile {arg} --i2v-update-baselines"
        )
    return read_baseline(path, arg)


def show(baseline: BaselineFile) -> str:
    rows = []
    for nodeid, entry in sorted(baseline.entries.items()):
        runs = entry.current.runs if entry.current else []
        memory = _memory_metric(runs)
        fp = entry.current.fingerprint if entry.current else {}
        rows.append(
            [
                nodeid,
                f"{entry.config.get('width')}x{entry.config.get('height')}"
                f"x{entry.config.get('frames')}f "
                f"{entry.config.get('steps')} steps",
                str(len(entry.segments)),
                str(len(runs)),
                format_value(TIME_S, _median(runs, TIME_S)),
                format_value(STEP_S, _median(runs, STEP_S)),
                format_value(memory, _median(runs, memory)),
                ", ".join(f"{k} {fp[k]}" for k in ("gpu_name", "driver", "torch") if fp.get(k))
                or "-",
            ]
        )
    header = [
        "test",
        "config",
        "segments",
        "runs",
        "median time",
        "median step",
        "peak memory",
        "environment",
    ]
    return f"profile {baseline.profile}: {len(rows)} entries\n\n" + markdown_table(header, rows)


def diff_baselines(old: BaselineFile, new: BaselineFile) -> str:
    rows = []
    for nodeid in sorted(set(old.entries) | set(new.entries)):
        a, b = old.entries.get(nodeid), new.entries.get(nodeid)
        if a is None or b is None:
            rows.append([nodeid, "added" if a is None else "removed", "-", "-", "-", "-"])
            continue
        ra = a.current.runs if a.current else []
        rb = b.current.runs if b.current else []
        ta, tb = _median(ra, TIME_S), _median(rb, TIME_S)
        metric = _memory_metric(rb)
        ma, mb = _median(ra, metric), _median(rb, metric)
        fa, fb = (
            a.current.fingerprint if a.current else {},
            b.current.fingerprint if b.current else {},
        )
        other_machine = machine_changes(fa, fb)
        changes = fingerprint_changes(fa, fb)
        # Another machine's figures are shown, never subtracted: the difference would be the
        # machine's.
        delta = f"{(tb / ta - 1) * 100:+.1f} %" if ta and tb and not other_machine else "-"
        mdelta = f"{(mb / ma - 1) * 100:+.1f} %" if ma and mb and not other_machine else "-"
        status = (
            "config changed"
            if a.config_id != b.config_id
            else "another machine"
            if other_machine
            else f"{len(ra)} -> {len(rb)} runs"
        )
        rows.append(
            [
                nodeid,
                status,
                f"{format_value('time_s', ta)} -> {format_value('time_s', tb)} ({delta})",
                f"{format_value(metric, ma)} -> {format_value(metric, mb)} ({mdelta})",
                "; ".join(changes) or "-",
                _work_change(
                    old.work_of(a.current),
                    new.work_of(b.current),
                    a.current.step_s if a.current else None,
                ),
            ]
        )
    return markdown_table(
        ["test", "entry", "median time", "peak memory", "environment change", "work"], rows
    )


def _work_change(
    base: WorkSignature | None, head: WorkSignature | None, base_step_s: float | None
) -> str:
    """One cell: the work's change between two signatures, with its largest row; "-" without
    both."""
    if base is None or head is None:
        return "-"
    return _work_cell(diff(base, head, base_step_s))


def _work_cell(work: WorkDiff) -> str:
    top = work.rows[0] if work.rows else None
    largest = f"; {top.row.label} {top.count_base} -> {top.count_head}" if top else ""
    return work.summary() + largest


def _gate_of(baseline: BaselineFile, document: dict[str, Any]) -> GateContext:
    """The gate the results were measured under (their document says), else the profile's."""
    profiles = load_profiles()
    gate = profiles[baseline.profile].gate if baseline.profile in profiles else GateSettings()
    stored = (document.get("baseline") or {}).get("gate")
    if isinstance(stored, dict):
        gate = GateSettings.from_mapping(stored, gate)
    stored_mode = (document.get("gate") or {}).get("mode")
    mode: GateMode = "enforce" if gate.enforce else "report"
    for known in GATE_MODES:
        if stored_mode == known:
            mode = known
    fidelity = profiles[baseline.profile].fidelity if baseline.profile in profiles else None
    return GateContext(baseline, gate, mode, baseline.profile, fidelity or FidelitySettings())


def diff_results(baseline: BaselineFile, document: dict[str, Any]) -> str:
    """What the gate would say about a results file against a baseline: the same judgement and
    the same decision as the plugin's (``record.judgement``, ``outcome.decide``)."""
    context = _gate_of(baseline, document)
    earlier: dict[str, GenerationRecord] = {}  # a sibling's output is a reference, as in a session
    rows = []
    for data in document.get("records", []):
        record = GenerationRecord.from_partial(data)
        rows.append(_result_row(record, context, earlier))
        earlier[record.nodeid] = record
    header = [
        "test",
        "verdict",
        "time (vs baseline)",
        "peak memory (vs baseline)",
        "environment change",
        "work",
        "output",
        "outcome",
    ]
    return markdown_table(header, rows)


def _result_row(
    record: GenerationRecord, context: GateContext, earlier: Mapping[str, GenerationRecord]
) -> list[str]:
    judgement = judge(record, context, earlier)
    outcome = decide(judgement.inputs(record.outcome, context))
    decided = f"{outcome.kind}{' (fails)' if outcome.fails else ''}"
    if record.outcome != "ok":
        return [record.nodeid, record.outcome, "-", "-", "-", "-", "-", decided]
    verdict = judgement.verdict
    shown = (
        f"new ({NO_MACHINE_BASELINE})"
        if verdict.machine_changes
        else f"unreliable ({verdict.unreliable})"
        if verdict.unreliable
        else verdict.verdict
    )
    time_m = next((m for m in verdict.metrics if m.metric == TIME_S), None)
    memory_m = next((m for m in verdict.metrics if m.gating and m.metric.endswith("_bytes")), None)
    changes = verdict.env_changes or verdict.machine_changes
    work = _work_cell(judgement.work.diff) if judgement.work else "-"
    output = judgement.fidelity
    return [
        record.nodeid,
        shown,
        _against(time_m),
        _against(memory_m),
        "; ".join(changes) or "-",
        work,
        f"{output.verdict}: {output.figures.summary()}" if output else "-",
        decided,
    ]


def _against(metric: MetricVerdict | None) -> str:
    """A metric's figure and its change against the baseline ("-" when not compared)."""
    if metric is None or metric.delta_pct is None:
        return "-"
    return f"{format_value(metric.metric, metric.current)} ({metric.delta_pct:+.1f} %)"


def match(
    baseline: BaselineFile, where: str, environment: Mapping[str, Scalar]
) -> tuple[bool, str]:
    """(whether every test of ``baseline`` has runs from this machine, one line saying so). A test
    without them would only be recorded as new: then the A/B mode is the one that compares."""
    covered, differences = baseline.machine_coverage(environment)
    total = len(baseline.entries)
    if covered and len(covered) == total:
        return True, f"{where}: all {total} tests have runs from this machine: gate on the baseline"
    ab = "compare base and head with python -m pytest_i2v ab instead"
    if covered:
        return (
            False,
            f"{where}: only {len(covered)} of {total} tests have runs from this machine; {ab}",
        )
    why = f" ({'; '.join(differences)})" if differences else ""
    return False, f"{where}: no runs from this machine{why}; {ab}"


def _this_machine(device: str) -> dict[str, str | int | float | None]:
    from pytest_i2v.measure.device import TorchRuntime
    from pytest_i2v.measure.environment import collect_environment

    runtime = TorchRuntime()
    name = device if device != "auto" else "cuda:0" if runtime.cuda_count() else "cpu"
    return collect_environment(name, runtime.open(name).info())


def run_baseline_command(args: argparse.Namespace) -> str:
    directory = Path(args.dir)
    if args.action == "show":
        return show(_baseline_from_arg(args.target, directory))
    if args.action == "match":
        path = (
            Path(args.target)
            if Path(args.target).suffix in (".yaml", ".yml")
            else baseline_path(directory, args.target)
        )
        if path.is_file():
            matched, line = match(read_baseline(path), str(path), _this_machine(args.device))
        else:  # a missing file is an answer here (no baseline matches), not a usage error
            matched, line = (
                False,
                f"{path}: no baseline file; "
                "compare base and head with python -m pytest_i2v ab instead",
            )
        print(line)
        raise SystemExit(0 if matched else NO_MATCH)
    old_arg, new_arg = args.target, args.other
    if new_arg is None:
        raise I2VUsageError(
            "baseline diff needs two arguments: OLD NEW "
            "(baseline files/profiles, or a baseline and a results JSON)"
        )
    old = _baseline_from_arg(old_arg, directory)
    if new_arg.endswith(".json"):
        return diff_results(old, read_results(Path(new_arg)))
    return diff_baselines(old, _baseline_from_arg(new_arg, directory))
