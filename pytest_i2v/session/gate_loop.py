"""The gate around one test: its verdict against the baseline, the re-measurement of a flagged
run, the outcome (decided once, by ``outcome.decide``) and the runs queued for the baseline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from pytest_i2v.generation.marks import Budget
from pytest_i2v.record.baseline_run import run_from_record
from pytest_i2v.record.commit import git_commit
from pytest_i2v.record.judgement import (
    GateContext,
    Judgement,
    judge,
    judge_verdict,
    missing_sibling,
)
from pytest_i2v.record.output import stored_output
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.session.fresh_process import FreshProcessFailed
from pytest_i2v.session.plan import RunPlan
from pytest_i2v.session.settings import Settings
from pytest_i2v.study import fits_profile
from pytest_i2v.verdict.baseline_store import (
    AcceptedRun,
    UpdateSummary,
    baseline_path,
    read_baseline,
    update_baseline,
)
from pytest_i2v.verdict.explain import verdict_section, work_section
from pytest_i2v.verdict.gate import GateSettings, RegressionVerdict
from pytest_i2v.verdict.outcome import GateMode, decide, needs_confirmation


def gate_settings(plan: RunPlan, settings: Settings) -> GateSettings:
    """The profile's gate with the command line's and ini's overrides."""
    gate = plan.profile.gate
    if settings.env_policy:
        gate = replace(gate, env_policy=settings.env_policy)
    if settings.confirm is not None:
        gate = replace(gate, confirm=settings.confirm)
    if settings.gate_mode is not None:
        gate = replace(gate, enforce=settings.gate_mode == "enforce")
    return gate


class GateLoop:
    def __init__(self, settings: Settings, plan: RunPlan, baseline_dir: Path):
        self._settings = settings
        self._plan = plan
        self.gate = gate_settings(plan, settings)
        self.mode: GateMode = (
            "update" if settings.update_baselines else "enforce" if self.gate.enforce else "report"
        )
        self.baseline_path = baseline_path(baseline_dir, plan.profile.name)
        self.baseline = read_baseline(self.baseline_path, plan.profile.name)
        self.accepted: list[AcceptedRun] = []
        self.updates: list[UpdateSummary] = []
        self.doubtful: dict[str, str] = {}  # nodeid -> why its run's timings are doubtful
        self.left_out: list[LeftOut] = []  # accepted runs not recorded, and why
        self.write_error: str | None = None  # the baseline write failed: why (the results are kept)

    # -- one test ---------------------------------------------------------------------------
    def run(
        self,
        measure: Callable[[], GenerationRecord],
        earlier: Mapping[str, GenerationRecord],
        fresh: Callable[[str, str | None], GenerationRecord] | None = None,
    ) -> GenerationRecord:
        """Measure, judge, re-measure a flagged run (a one-off stall should not block a PR), decide.
        ``fresh(nodeid, config_id)``: the same test measured in a new process (``--i2v-confirm-in
        fresh``), the only re-measurement that can reject a slow process; ``measure`` again when
        there is none or it fails."""
        record = self.judged(measure(), earlier)
        confirmed: bool | None = None
        for attempt in range(self.gate.confirm):
            if not self.flagged(record):
                break
            first = record
            again, where = self._remeasure(first, measure, fresh)
            # The work was profiled once, in the first process: the re-measurement is timed only.
            record = replace(
                self.judged(again, earlier), signature=first.signature, work=first.work
            )
            confirmed = self.flagged(record)
            verdict = first.verdict.verdict if first.verdict else None
            record = replace(
                record,
                measurements=attempt + 2,
                notes=[
                    *record.notes,
                    (
                        f"re-measured ({attempt + 1}/{self.gate.confirm}, {where}) after a "
                        f"{verdict} verdict with median "
                        f"{first.time_s:.4g} s: {'confirmed' if confirmed else 'not confirmed'}"
                    ),
                ],
            )
        return self.decided(record, confirmed)

    def _remeasure(
        self,
        first: GenerationRecord,
        measure: Callable[[], GenerationRecord],
        fresh: Callable[[str, str | None], GenerationRecord] | None,
    ) -> tuple[GenerationRecord, str]:
        if (
            fresh is None
            or self._settings.confirm_in != "fresh"
            or self._settings.remeasure_into is not None
        ):
            return measure(), "in this process"
        try:
            return fresh(first.nodeid, first.config_id), "in a fresh process"
        except FreshProcessFailed as exc:
            return measure(), f"in this process, since the fresh one failed ({exc})"

    @property
    def context(self) -> GateContext:
        """What this session's tests are judged against."""
        profile = self._plan.profile
        return GateContext(self.baseline, self.gate, self.mode, profile.name, profile.fidelity)

    def judged(
        self, record: GenerationRecord, earlier: Mapping[str, GenerationRecord]
    ) -> GenerationRecord:
        """``record`` carrying its judgement (``record.judgement.judge``); ``earlier``: this
        session's records so far, by node id."""
        judged = judge(record, self.context, earlier).onto(record)
        missing = missing_sibling(record, earlier)
        return replace(judged, notes=[*judged.notes, missing]) if missing else judged

    def decided(self, record: GenerationRecord, confirmed: bool | None = None) -> GenerationRecord:
        """A judged ``record`` carrying its decision (``outcome.decide``, decided once)."""
        inputs = Judgement.of_record(record).inputs(record.outcome, self.context, confirmed)
        return replace(record, decision=decide(inputs))

    def flagged(self, record: GenerationRecord) -> bool:
        """Whether a judged ``record`` is re-measured before it may fail."""
        inputs = Judgement.of_record(record).inputs(record.outcome, self.context)
        return needs_confirmation(inputs)

    def judge(self, record: GenerationRecord, seen: set[str] | None = None) -> RegressionVerdict:
        """The time and memory verdict alone (before any throttling excuse)."""
        return judge_verdict(record, self.context, frozenset(seen or ()))

    def unfit_budget(self, budget: Budget | None) -> str | None:
        if budget is None or budget.vram_gb is None:
            return None
        if not self._plan.profile.scaling.is_identity:
            # A budget describes the generation as marked; a scaling profile (cpu) measures a
            # smaller one, so the budget's size is no reason to skip it there (exceeding it still
            # fails).
            return None
        return fits_profile(
            budget.vram_gb, self._plan.profile.memory_gb, self._settings.safety_margin_gb
        )

    def explain(self, record: GenerationRecord) -> str:
        """The readable section of a test's report: baseline, current, delta, bar, what to do."""
        if record.verdict is None or record.outcome != "ok":
            return ""
        notes = list(record.notes)
        decision = record.decision
        if decision is not None and decision.kind == "not-enforced":
            notes.append(
                f"profile {self._plan.profile.name} reports only (--i2v-gate-mode enforce to fail "
                "on it)"
            )
        section = verdict_section(
            record.verdict,
            record.nodeid,
            self._plan.profile.name,
            str(self.baseline_path),
            notes,
        )
        min_effect_pct = self.gate.min_effect * 100.0
        work = work_section(record.work.diff, min_effect_pct) if record.work else ""
        return "\n".join(part for part in (work, section) if part)

    # -- the baseline file ------------------------------------------------------------------
    def accept(self, record: GenerationRecord) -> None:
        """Queue a passing run for the baseline (written once, at the end of the session).
        Fast-mode runs are predicted, not measured: never a baseline."""
        if record.outcome == "ok" and record.fingerprint is not None and record.mode == "full":
            verdict = record.verdict or RegressionVerdict("new")
            # Another speed than the old runs' is no doubt when they are reset (a new machine).
            resetting = self._settings.update_baselines == "reset"
            other_speed = None if resetting else verdict.times_not_comparable
            doubt = verdict.unreliable or other_speed
            if doubt:
                self.doubtful[record.nodeid] = str(doubt)
            self.accepted.append(
                AcceptedRun(
                    record.nodeid,
                    record.generation_settings(),
                    record.fingerprint,
                    run_from_record(record, None),
                    record.signature.work() if record.signature else None,
                    stored_output(record.output) if record.output else None,
                )
            )

    def leave_out(self, probe_moved: str | None) -> int:
        """Decide which accepted runs the baseline will not get (``left_out``), before anything is
        written, so that the results document counts what is recorded; how many."""
        if self._settings.force_baselines or not self._settings.update_baselines:
            self.left_out = []
        else:
            self.left_out = [
                LeftOut(a.nodeid, probe_moved or self.doubtful[a.nodeid])
                for a in self.accepted
                if probe_moved or a.nodeid in self.doubtful
            ]
        return len(self.left_out)

    def write_baselines(self, root: Path, probe_moved: str | None = None) -> UpdateSummary | None:
        """Record the accepted runs, less those whose timings are doubtful (flagged unreliable, or
        measured at another machine speed than the baseline's, or the machine's speed moved during
        the session) unless --i2v-force-baselines; a write that fails is reported, never raised."""
        if not self.accepted or not self._settings.update_baselines:
            return None
        self.leave_out(probe_moved)
        skipped = {left.nodeid for left in self.left_out}
        runs = [a for a in self.accepted if a.nodeid not in skipped]
        if not runs:
            return None
        commit = git_commit(root)
        runs = [replace(a, run={**a.run, "commit": commit}) for a in runs]
        try:
            summary = update_baseline(
                self.baseline_path,
                self._plan.profile.name,
                runs,
                mode=self._settings.update_baselines,
            )
        except (OSError, TimeoutError) as exc:  # filelock's Timeout is a TimeoutError
            why = exc.strerror or exc if isinstance(exc, OSError) else exc
            self.write_error = f"{self.baseline_path}: {why}"
            return None
        self.updates.append(summary)
        return summary

    def baseline_lines(self) -> list[str]:
        """What the terminal says about the baselines: written, left out, or failed."""
        lines = [f"i2v baselines written: {summary.describe()}" for summary in self.updates]
        if self.left_out:
            reasons = sorted({left.reason for left in self.left_out})
            lines.append(
                f"i2v baselines: {len(self.left_out)} run(s) not recorded, their timings "
                f"are doubtful ({'; '.join(reasons)}); rerun on a quiet machine, start "
                f"this machine's history afresh with --i2v-update-baselines=reset if its "
                f"speed changed for good, or pass --i2v-force-baselines to record them "
                f"anyway"
            )
            lines += [f"  not recorded: {left.nodeid}" for left in self.left_out]
        if self.write_error:
            lines.append(
                f"i2v baselines NOT written: {self.write_error}; the results files above "
                f"hold this run's measurements"
            )
        return lines


@dataclass(frozen=True)
class LeftOut:
    """An accepted run the baseline did not get."""

    nodeid: str
    reason: str
