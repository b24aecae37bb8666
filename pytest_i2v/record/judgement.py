"""One test judged against its baseline: the one path from a record to the decision's inputs.

``judge`` reads a results record and the baseline file and returns a ``Judgement``: the time and
memory verdict (``gate.judge_metrics``, throttling excused by ``explain.excuse_throttling``), the
work against the baseline's signature, the history the charts draw and the budgets' failures.
``Judgement.inputs`` is everything ``outcome.decide`` reads. The plugin's gate loop and the
review CLI's ``baseline diff`` both come here, so they cannot disagree."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pytest_i2v.metrics import DECODE_S, MEMORY_METRICS, STEP_S, TIME_S
from pytest_i2v.record.output import compare_outputs, read_stored_output
from pytest_i2v.record.parts import OutputComparison, OutputReference, WorkComparison
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.baseline_records import BaselineEntry, BaselineFile, Segment
from pytest_i2v.verdict.budget import budget_failures
from pytest_i2v.verdict.explain import excuse_throttling
from pytest_i2v.verdict.fidelity import (
    FidelityFigures,
    FidelitySettings,
    bar_for,
    fidelity_verdict,
    with_base,
)
from pytest_i2v.verdict.fingerprint import machine_changes, software_changes
from pytest_i2v.verdict.gate import GateSettings, RegressionVerdict, judge_metrics
from pytest_i2v.verdict.machine_speed import compare_speed
from pytest_i2v.verdict.outcome import DecisionInputs, GateMode
from pytest_i2v.verdict.throttling import per_repeat
from pytest_i2v.verdict.work_diff import WorkDiff, diff, locate_excess, work_verdict
from pytest_i2v.verdict.yaml_shapes import figure

HISTORY_RUNS = 10  # the baseline's last accepted times a record carries for its trend chart


@dataclass(frozen=True)
class GateContext:
    """What a test is judged against: the baseline file, the gate's settings and mode."""

    baseline: BaselineFile
    gate: GateSettings
    mode: GateMode
    profile: str
    fidelity: FidelitySettings = field(default_factory=FidelitySettings)

    @property
    def where(self) -> str:
        """The baseline file's name, for the notes."""
        return self.baseline.path.name if self.baseline.path else f"{self.profile}.yaml"


@dataclass(frozen=True)
class Judgement:
    """A test's verdict against its baseline, before the decision.

    ``work``: None when not compared; ``history``: this machine's last accepted times."""

    verdict: RegressionVerdict
    work: WorkComparison | None = None
    history: list[float] | None = None
    budget_failures: tuple[str, ...] = field(default=())
    fidelity: OutputComparison | None = None  # the output against its reference's

    def inputs(
        self, measured: str, context: GateContext, confirmed: bool | None = None
    ) -> DecisionInputs:
        """What ``outcome.decide`` reads: ``measured`` is the record's "ok" or "oom"."""
        work = self.work
        return DecisionInputs(
            measured,
            self.budget_failures,
            self.verdict.verdict,
            context.gate.env_policy,
            context.mode,
            context.profile,
            confirmed,
            machine_changes=self.verdict.machine_changes,
            unreliable=self.verdict.unreliable,
            work=work.verdict if work else None,
            work_summary=work_line(work),
            times_not_comparable=self.verdict.times_not_comparable,
            fidelity=self.fidelity.verdict if self.fidelity else None,
            fidelity_line=self.fidelity.line() if self.fidelity else "",
        )

    def onto(self, record: GenerationRecord) -> GenerationRecord:
        """``record`` carrying this judgement (its verdict, work and history)."""
        return replace(
            record,
            verdict=self.verdict,
            work=self.work,
            baseline_history=self.history,
            fidelity=self.fidelity,
        )

    @classmethod
    def of_record(cls, record: GenerationRecord) -> Judgement:
        """The judgement a judged record carries (``onto``'s inverse)."""
        verdict = record.verdict or RegressionVerdict("new")
        return cls(
            verdict,
            record.work,
            record.baseline_history,
            record_budget_failures(record),
            record.fidelity,
        )


def judge(
    record: GenerationRecord,
    context: GateContext,
    earlier: Mapping[str, GenerationRecord] | None = None,
) -> Judgement:
    """``record`` against ``context``'s baseline. ``earlier``: the tests already measured this
    session, by node id (a renamed test's old id among them is no candidate for its config; a
    sibling's output among them is a reference)."""
    earlier = earlier or {}
    seen = frozenset(earlier)
    stages = record.stages
    repeats = per_repeat(record.time_samples_s, stages.step_samples_s, stages.decode_samples_s)
    verdict = excuse_throttling(judge_verdict(record, context, seen), record.conditions, repeats)
    return Judgement(
        verdict,
        _work(record, context),
        _history(record, context.baseline),
        record_budget_failures(record),
        _fidelity(record, context, earlier),
    )


def judge_verdict(
    record: GenerationRecord, context: GateContext, seen: frozenset[str] = frozenset()
) -> RegressionVerdict:
    """The time and memory verdict, before any throttling excuse."""
    if record.outcome == "oom":
        return RegressionVerdict("oom")
    entry = context.baseline.entries.get(record.nodeid)
    if entry is None:
        return _no_entry(record, context, seen)
    if record.config_id is not None and entry.config_id != record.config_id:
        changed = sorted(k for k in entry.config if entry.config.get(k) != record.config.get(k))
        return RegressionVerdict(
            "new",
            notes=(
                "the generation config changed since the baseline "
                f"({', '.join(changed) or 'config'})"
                "; not compared: re-baseline with --i2v-update-baselines",
            ),
        )
    if entry.current is None or not entry.current.runs:
        return RegressionVerdict(
            "new", notes=(f"{context.where} has no accepted runs for this test yet",)
        )
    return _against_entry(record, entry, context)


def _no_entry(
    record: GenerationRecord, context: GateContext, seen: frozenset[str]
) -> RegressionVerdict:
    where = context.where
    same_config = [
        nodeid
        for nodeid in context.baseline.find_by_config(record.config_id or "")
        if nodeid not in seen
    ]
    note = f"no baseline for this test in {where}; record one with --i2v-update-baselines"
    if same_config:
        note = (
            f"no baseline under this test id, but {where} has the same generation config under "
            f"{same_config[0]} (renamed test?); re-baseline to carry it over"
        )
    return RegressionVerdict("new", notes=(note,))


def _against_entry(
    record: GenerationRecord, entry: BaselineEntry, context: GateContext
) -> RegressionVerdict:
    fingerprint = record.fingerprint or {}
    current = current_metrics(record)
    segment = entry.segment_for(fingerprint)
    newest = entry.current
    if segment is None and newest is not None:
        # Every segment is another machine's: judge_metrics says "new" and compares nothing.
        changes = machine_changes(newest.fingerprint, fingerprint)
        return judge_metrics(newest.runs, current, context.gate, machine_changes=changes)
    if segment is None or not segment.runs:
        return RegressionVerdict(
            "new",
            notes=(f"{context.where} has no accepted runs for this test on this machine yet",),
        )
    speed = compare_speed(segment.runs, record.machine_probe)
    return judge_metrics(
        segment.runs,
        current,
        context.gate,
        context.baseline.pooled(fingerprint, leave_out=record.nodeid),
        env_changes=software_changes(segment.fingerprint, fingerprint),
        times_not_comparable=speed.line() if speed is not None and not speed.comparable else None,
    )


def current_metrics(record: GenerationRecord) -> dict[str, float | int | str | None]:
    """The figures of ``record`` the gate judges: the total, a step, the decode, the peaks (with
    the device figure's scope, which decides whether two peaks compare)."""
    peak = record.peak_memory
    return {
        TIME_S: record.time_s,
        STEP_S: record.stages.step_s,
        DECODE_S: record.stages.decode_s,
        **{metric: record.peak(metric) for metric in MEMORY_METRICS},
        "device_scope": peak.device_scope,
    }


def _comparable_segment(record: GenerationRecord, baseline: BaselineFile) -> Segment | None:
    """This machine's segment of the test's entry under the same config, or None."""
    entry = baseline.entries.get(record.nodeid)
    if entry is None or (record.config_id is not None and entry.config_id != record.config_id):
        return None
    return entry.segment_for(record.fingerprint or {})  # another machine's history is no trend


def _work(record: GenerationRecord, context: GateContext) -> WorkComparison | None:
    """The work against this machine's baseline segment under the same software (other software
    does other work: that is the environment's change, not the code's); None when there is
    nothing to compare."""
    if record.signature is None or record.outcome != "ok":
        return None
    segment = _comparable_segment(record, context.baseline)
    fingerprint = record.fingerprint or {}
    if segment is None or software_changes(segment.fingerprint, fingerprint):
        return None
    base = context.baseline.work_of(segment)
    if base is None:
        return None
    head = record.signature.work()
    work = diff(base, head, segment.step_s)
    excess = locate_excess(base, head) if work.identical else None
    verdict = work_verdict(work, context.gate.min_effect * 100.0)
    assert verdict is not None  # only no diff at all has no verdict
    # kept as the results JSON keeps it: the largest rows (a round trip of the record is exact)
    kept = WorkDiff.from_dict(work.to_dict())
    return WorkComparison(kept, verdict or "identical", excess)


def _fidelity(
    record: GenerationRecord, context: GateContext, earlier: Mapping[str, GenerationRecord]
) -> OutputComparison | None:
    """The output judged against its reference: the sibling's the mark names (this session, same
    machine and software), else the one this machine's baseline segment keeps under the same
    software (other software computes other numerics: the environment's change, not the code's);
    None when there is nothing to compare."""
    if record.output is None or record.outcome != "ok":
        return None
    request = record.fidelity_request
    sibling = request.sibling_nodeid(record.nodeid) if request else None
    if sibling is not None:
        found = earlier.get(sibling)
        reference = found.output if found is not None else None
        against = f"{sibling.rsplit('::', 1)[-1]}'s output"
    else:
        reference = _baseline_output(record, context)
        against = "the baseline's output"
    if reference is None:
        return None
    return compare_with(reference, record, context.fidelity, against, record.output_repeat)


def compare_with(
    reference: OutputReference,
    record: GenerationRecord,
    settings: FidelitySettings,
    against: str,
    repeat: FidelityFigures | None,
) -> OutputComparison:
    """``record``'s output judged against ``reference``: at the bar its mark and config ask for,
    ``repeat`` being this code's own second run against its first (the noise the verdict allows;
    the gate's is the second measured generation, A/B's the base's second process). The one
    comparison the gate and A/B share."""
    if record.output is None:
        raise ValueError(f"{record.nodeid} has no output to compare")
    figures = with_base(compare_outputs(reference, record.output), repeat)
    bar, lossy = bar_for(settings, record.fidelity_request, record.lossy_by_config)
    return OutputComparison(
        figures,
        bar,
        lossy,
        against,
        fidelity_verdict(figures, bar, repeat),
        None if figures.identical else reference,
    )


def missing_sibling(
    record: GenerationRecord, earlier: Mapping[str, GenerationRecord]
) -> str | None:
    """The note for a test whose mark names a sibling that did not run before it this session
    (deselected, later in the order, or failed before measuring); None otherwise."""
    request = record.fidelity_request
    sibling = request.sibling_nodeid(record.nodeid) if request else None
    found = earlier.get(sibling) if sibling else None
    if request is None or sibling is None or (found is not None and found.output is not None):
        return None
    return (
        f"i2v_fidelity(against={request.against!r}) names {sibling}, which did not run before this "
        "test in this session: the output was not judged (run both, the sibling first)"
    )


def _baseline_output(record: GenerationRecord, context: GateContext) -> OutputReference | None:
    segment = _comparable_segment(record, context.baseline)
    if segment is None or software_changes(segment.fingerprint, record.fingerprint or {}):
        return None
    stored = context.baseline.output_of(segment)
    return read_stored_output(stored) if stored is not None else None


def _history(record: GenerationRecord, baseline: BaselineFile) -> list[float] | None:
    segment = _comparable_segment(record, baseline)
    if segment is None:
        return None
    times = [float(t) for run in segment.runs[-HISTORY_RUNS:] if (t := figure(run.get(TIME_S)))]
    return times or None


def record_budget_failures(record: GenerationRecord) -> tuple[str, ...]:
    """The declared budgets ``record`` exceeded (none for a run that did not finish)."""
    if not record.budget or record.outcome != "ok":
        return ()
    budget = record.budget
    peak_memory = dataclasses.asdict(record.peak_memory)
    return tuple(budget_failures(peak_memory, record.time_s, budget.vram_gb, budget.time_s))


def work_line(work: WorkComparison | None) -> str:
    """The work's one line for the decision: the changed work's estimate, or, for identical work,
    where the time went (``work_diff.locate_excess``)."""
    if work is None:
        return ""
    line = work.diff.summary()
    return f"{line}; the excess {work.excess}" if work.excess else line
