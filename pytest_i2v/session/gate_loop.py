"""The gate around one test: its verdict against the baseline, the re-measurement of a flagged
run, the outcome (decided once, by ``outcome.decide``) and the runs queued for the baseline."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytest_i2v.generation.marks import Budget
from pytest_i2v.generation.results import GenerationRecord
from pytest_i2v.session.fresh_process import FreshProcessFailed
from pytest_i2v.session.plan import RunPlan
from pytest_i2v.session.settings import Settings
from pytest_i2v.study import budget_failures, fits_profile
from pytest_i2v.verdict.baseline_store import (
    AcceptedRun,
    UpdateSummary,
    baseline_path,
    read_baseline,
    read_signature,
    run_from_record,
    update_baseline,
)
from pytest_i2v.verdict.explain import excuse_throttling, verdict_section, work_section
from pytest_i2v.verdict.fingerprint import machine_changes, software_changes
from pytest_i2v.verdict.gate import GateSettings, Noise, RegressionVerdict, judge
from pytest_i2v.verdict.machine_speed import compare_speed
from pytest_i2v.verdict.outcome import GateMode, Outcome, decide
from pytest_i2v.verdict.signature import WorkDiff, WorkSignature, diff, locate_excess, work_verdict


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
        self.mode: GateMode = "update" if settings.update_baselines else "enforce" if self.gate.enforce else "report"
        self.baseline_path = baseline_path(baseline_dir, plan.profile.name)
        self.baseline = read_baseline(self.baseline_path, plan.profile.name)
        self.accepted: list[AcceptedRun] = []
        self.updates: list[UpdateSummary] = []
        self.doubtful: dict[str, str] = {}  # nodeid -> why its run's timings are doubtful
        self.left_out: list[LeftOut] = []  # accepted runs not recorded, and why
        self.write_error: str | None = None  # the baseline write failed: why (the results are kept)

    # -- one test ---------------------------------------------------------------------------
    def run(self, measure: Callable[[], GenerationRecord], seen: set[str],
            fresh: Callable[[str, str | None], GenerationRecord] | None = None) -> GenerationRecord:
        """Measure, judge, re-measure a flagged run (a one-off stall should not block a PR), decide.
        ``fresh(nodeid, config_id)``: the same test measured in a new process (``--i2v-confirm-in fresh``),
        the only re-measurement that can reject a slow process; ``measure`` again when there is none or it fails."""
        record = self.judged(measure(), seen)
        confirmed: bool | None = None
        for attempt in range(self.gate.confirm):
            if not self._flagged(record):
                break
            first = record
            again, where = self._remeasure(first, measure, fresh)
            # The work was profiled once, in the first process: the re-measurement is timed only.
            record = replace(self.judged(again, seen), signature=first.signature, work=first.work)
            confirmed = self._flagged(record)
            verdict = (first.verdict or {}).get("verdict")
            record = replace(record, measurements=attempt + 2, notes=[*record.notes, (
                f"re-measured ({attempt + 1}/{self.gate.confirm}, {where}) after a {verdict} verdict with median "
                f"{first.time_s:.4g} s: {'confirmed' if confirmed else 'not confirmed'}")])
        return self.decided(record, confirmed)

    def _remeasure(self, first: GenerationRecord, measure: Callable[[], GenerationRecord],
                   fresh: Callable[[str, str | None], GenerationRecord] | None) -> tuple[GenerationRecord, str]:
        if fresh is None or self._settings.confirm_in != "fresh" or self._settings.remeasure_into is not None:
            return measure(), "in this process"
        try:
            return fresh(first.nodeid, first.config_id), "in a fresh process"
        except FreshProcessFailed as exc:
            return measure(), f"in this process, since the fresh one failed ({exc})"

    def judged(self, record: GenerationRecord, seen: set[str]) -> GenerationRecord:
        verdict = excuse_throttling(self.judge(record, seen), record.to_dict())
        return replace(record, verdict=verdict.to_dict(), baseline_history=self._history(record), work=self._work(record))

    def decided(self, record: GenerationRecord, confirmed: bool | None = None) -> GenerationRecord:
        verdict = record.verdict or {}
        work = record.work or {}
        outcome = decide(record.outcome, self.budget_failures(record), verdict.get("verdict"),
                         self.gate.env_policy, self.mode, self._plan.profile.name, confirmed,
                         machine_changes=tuple(verdict.get("machine_changes") or ()),
                         unreliable=verdict.get("unreliable"), work=work.get("verdict"),
                         work_summary=work_line(work), times_not_comparable=verdict.get("times_not_comparable"))
        return replace(record, decision=outcome.to_dict())

    def _work(self, record: GenerationRecord) -> dict[str, Any] | None:
        """The work against this machine's baseline segment under the same software (other software does
        other work: that is the environment's change, not the code's); None when there is nothing to compare."""
        if record.signature is None or record.outcome != "ok":
            return None
        entry = self.baseline.entries.get(record.nodeid)
        if entry is None or entry.config_id != record.config_id:
            return None
        fingerprint = record.fingerprint or {}
        segment = entry.segment_for(fingerprint)
        if segment is None or not segment.signature or software_changes(segment.fingerprint, fingerprint):
            return None
        base = read_signature(self.baseline_path, segment.signature)
        if base is None:
            return None
        head = WorkSignature.from_dict(record.signature)
        work = diff(base, head, segment.step_s)
        located = {"excess": locate_excess(base, head)} if work.identical else {}
        return {**work.to_dict(), "verdict": work_verdict(work, self.gate.min_effect * 100.0), **located}

    def _flagged(self, record: GenerationRecord) -> bool:
        """Whether the gate would fail this record, before budgets and modes (what re-measuring is for).
        A work regression fails on its own: re-measuring the time adds nothing to it. Changed or
        improved work does not excuse a slow time, so that time is re-measured like any other."""
        if (record.work or {}).get("verdict") == "regressed":
            return False
        verdict = (record.verdict or {}).get("verdict")
        return self.mode == "enforce" and (verdict == "regressed" or (verdict == "env-changed" and self.gate.env_policy == "fail"))

    def judge(self, record: GenerationRecord, seen: set[str] | None = None) -> RegressionVerdict:
        if record.outcome == "oom":
            return RegressionVerdict("oom")
        entry = self.baseline.entries.get(record.nodeid)
        where = self.baseline_path.name
        if entry is None:
            same_config = [n for n in self.baseline.find_by_config(record.config_id or "") if n not in (seen or set())]
            note = f"no baseline for this test in {where}; record one with --i2v-update-baselines"
            if same_config:
                note = (f"no baseline under this test id, but {where} has the same generation config under "
                        f"{same_config[0]} (renamed test?); re-baseline to carry it over")
            return RegressionVerdict("new", notes=(note,))
        if entry.config_id != record.config_id:
            changed = sorted(k for k in entry.config if entry.config.get(k) != record.config.get(k))
            return RegressionVerdict("new", notes=(
                f"the generation config changed since the baseline ({', '.join(changed) or 'config'}); "
                f"not compared: re-baseline with --i2v-update-baselines",))
        if entry.current is None or not entry.current.runs:
            return RegressionVerdict("new", notes=(f"{where} has no accepted runs for this test yet",))
        fingerprint = record.fingerprint or {}
        current = {"time_s": record.time_s, "step_s": record.stages.get("step_s"),
                   "decode_s": record.stages.get("decode_s"), **record.peak_memory}
        segment = entry.segment_for(fingerprint)
        if segment is None:  # every segment is another machine's: judge() says "new", compares nothing
            newest = entry.current
            return judge(newest.runs, current, self.gate, machine_changes=machine_changes(newest.fingerprint, fingerprint))
        if not segment.runs:
            return RegressionVerdict("new", notes=(f"{where} has no accepted runs for this test on this machine yet",))
        changes = software_changes(segment.fingerprint, fingerprint)
        speed = compare_speed(segment.runs, record.machine_probe)
        return judge(segment.runs, current, self.gate, self._pooled_for(fingerprint, record.nodeid), env_changes=changes,
                     times_not_comparable=speed.line() if speed is not None and not speed.comparable else None)

    def _pooled_for(self, fingerprint: Mapping[str, Any], nodeid: str) -> dict[str, Noise | None]:
        """The noise prior over this machine's segments of the file's other entries."""
        return self.baseline.pooled(fingerprint, leave_out=nodeid)

    def _history(self, record: GenerationRecord) -> list[float] | None:
        entry = self.baseline.entries.get(record.nodeid)
        if entry is None or entry.config_id != record.config_id:
            return None
        segment = entry.segment_for(record.fingerprint or {})  # another machine's history is no trend
        if segment is None:
            return None
        return [r["time_s"] for r in segment.runs[-10:] if r.get("time_s")] or None

    @staticmethod
    def budget_failures(record: GenerationRecord) -> list[str]:
        if not record.budget or record.outcome != "ok":
            return []
        return budget_failures(record.to_dict(), record.budget.get("vram_gb"), record.budget.get("time_s"))

    def unfit_budget(self, budget: Budget | None) -> str | None:
        if budget is None or budget.vram_gb is None:
            return None
        if not self._plan.profile.scaling.is_identity:
            # A budget describes the generation as marked; a scaling profile (cpu) measures a smaller
            # one, so the budget's size is no reason to skip it there (exceeding it still fails).
            return None
        return fits_profile(budget.vram_gb, self._plan.profile.memory_gb, self._settings.safety_margin_gb)

    def explain(self, record: GenerationRecord) -> str:
        """The readable section of a test's report: baseline, current, delta, bar, what to do."""
        if record.verdict is None or record.outcome != "ok":
            return ""
        notes = list(record.notes)
        decision = Outcome.from_dict(record.decision) if record.decision else None
        if decision is not None and decision.kind == "not-enforced":
            notes.append(f"profile {self._plan.profile.name} reports only (--i2v-gate-mode enforce to fail on it)")
        section = verdict_section(RegressionVerdict.from_dict(record.verdict), record.nodeid, self._plan.profile.name,
                                  str(self.baseline_path), notes)
        work = work_section(record.work, self.gate.min_effect * 100.0) if record.work else ""
        return "\n".join(part for part in (work, section) if part)

    # -- the baseline file ------------------------------------------------------------------
    def accept(self, record: GenerationRecord) -> None:
        """Queue a passing run for the baseline (written once, at the end of the session).
        Fast-mode runs are predicted, not measured: never a baseline."""
        if record.outcome == "ok" and record.fingerprint is not None and record.mode == "full":
            verdict = record.verdict or {}
            # Another speed than the old runs' is no doubt when they are reset (a new machine).
            resetting = self._settings.update_baselines == "reset"
            other_speed = None if resetting else verdict.get("times_not_comparable")
            doubt = verdict.get("unreliable") or other_speed
            if doubt:
                self.doubtful[record.nodeid] = str(doubt)
            self.accepted.append(AcceptedRun(record.nodeid, record.config, record.fingerprint,
                                             run_from_record(record.to_dict(), None),
                                             WorkSignature.from_dict(record.signature) if record.signature else None))

    def write_baselines(self, root: Path, probe_moved: str | None = None) -> UpdateSummary | None:
        """Record the accepted runs, less those whose timings are doubtful (flagged unreliable, or
        measured at another machine speed than the baseline's, or the machine's speed moved during
        the session) unless --i2v-force-baselines; a write that fails is reported, never raised."""
        if not self.accepted or not self._settings.update_baselines:
            return None
        runs = self.accepted
        if not self._settings.force_baselines:
            self.left_out = [LeftOut(a.nodeid, probe_moved or self.doubtful[a.nodeid])
                             for a in runs if probe_moved or a.nodeid in self.doubtful]
            skipped = {left.nodeid for left in self.left_out}
            runs = [a for a in runs if a.nodeid not in skipped]
        if not runs:
            return None
        commit = git_commit(root)
        runs = [replace(a, run={**a.run, "commit": commit}) for a in runs]
        try:
            summary = update_baseline(self.baseline_path, self._plan.profile.name, runs,
                                      mode=self._settings.update_baselines)
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
            lines.append(f"i2v baselines: {len(self.left_out)} run(s) not recorded, their timings "
                         f"are doubtful ({'; '.join(reasons)}); rerun on a quiet machine, start "
                         f"this machine's history afresh with --i2v-update-baselines=reset if its "
                         f"speed changed for good, or pass --i2v-force-baselines to record them "
                         f"anyway")
            lines += [f"  not recorded: {left.nodeid}" for left in self.left_out]
        if self.write_error:
            lines.append(f"i2v baselines NOT written: {self.write_error}; the results files above "
                         f"hold this run's measurements")
        return lines


@dataclass(frozen=True)
class LeftOut:
    """An accepted run the baseline did not get."""

    nodeid: str
    reason: str


def work_line(work: Mapping[str, Any]) -> str:
    """The work's one line for the decision: the changed work's estimate, or, for identical work, where
    the time went (``signature.locate_excess``)."""
    if not work:
        return ""
    line = WorkDiff.from_dict(work).summary()
    return f"{line}; the excess {work['excess']}" if work.get("excess") else line


def git_commit(root: Path) -> str | None:
    """The commit being measured: $GITHUB_SHA in Actions, else git's HEAD, else None."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"][:12]
    try:
        completed = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                   text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None
