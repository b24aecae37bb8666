"""The A/B job: resolve the refs, collect, run the ABBA rounds, judge after each round, write the
outputs (``pytest_i2v.ab`` says how it runs)."""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pytest_i2v.ab import paired, processes, rounds
from pytest_i2v.ab.collection import collect_tests
from pytest_i2v.ab.machine_calibration import (
    Priors,
    calibration_path,
    load_calibration,
    store_ab_calibration,
)
from pytest_i2v.ab.meta import SIDES, abba_order, machine_name, order_text, unstable_conditions
from pytest_i2v.ab.options import ABOptions, check_options
from pytest_i2v.ab.outputs import (
    ABMeta,
    MachineMeta,
    ab_document,
    render_ab_html,
    render_ab_markdown,
)
from pytest_i2v.ab.paired import ABTestResult
from pytest_i2v.ab.processes import (
    PROCESS_FAST,
    PROCESS_REPEATS,
    RAN_EXIT_CODES,
    ProcessRun,
    ProcessRunner,
    config_args,
    process_failed,
    pytest_argv,
    side_env,
)
from pytest_i2v.ab.results_doc import RoundResults
from pytest_i2v.ab.sequential import SequentialPlan, is_decided
from pytest_i2v.ab.workspace import (
    Revision,
    Workspace,
    has_uncommitted_changes,
    repository_root,
    resolve_commit,
)
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.storage import write_text_atomic

OUTPUTS = ("ab.json", "ab.md", "ab.html")  # the comparison, rewritten after each round from the 2nd
PARTIAL_FROM_ROUNDS = 2  # fewer rounds give no interval: nothing worth writing yet

Docs = dict[str, list[RoundResults]]  # side -> the rounds' results so far
Listing = dict[str, str | int | float | None]  # one process in ab.json's "runs"


@dataclass(frozen=True)
class ABOutcome:
    markdown: str
    exit_code: int  # 1: a test regressed or its output changed
    results: list[ABTestResult]
    meta: ABMeta
    runs: list[ProcessRun] = field(default_factory=list)


@dataclass(frozen=True)
class Rounds:
    """What every round of one job shares: the sides, where they run, where the files go."""

    revisions: Mapping[str, Revision]
    subdir: Path  # the user's directory, relative to each side's root
    planned: int
    min_effect: float  # a fraction
    out: Path
    tmp: Path  # the workspace's temporary directory


class ABJob:
    """One ``ab`` invocation, from resolving the refs to the written comparison."""

    def __init__(
        self,
        options: ABOptions,
        runner: ProcessRunner | None = None,
        cwd: Path | None = None,
        progress: Callable[[str], None] | None = None,
    ):
        self.options = options
        self.runner = runner
        self.cwd = (cwd or Path.cwd()).resolve()
        self.progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        self.runs: list[ProcessRun] = []
        self.repo = self.cwd
        self.priors: Priors = {}  # this machine's calibration, where it is current
        self.calibration_note: str | None = None
        # a sequential job's decided tests: they leave the later rounds
        self.decided: dict[str, ABTestResult] = {}
        self.decided_after: dict[str, int] = {}
        self.all_decided = False

    @property
    def sequential(self) -> bool:
        return self.options.sequential and not self.options.calibrate

    def _run(
        self,
        side: str,
        round_index: int,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        log: Path,
    ) -> ProcessRun:
        runner = self.runner or processes.run_logged  # looked up now: a test can patch it
        log.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        code = runner(argv, cwd, env, log)
        run = ProcessRun(side, round_index, code, time.perf_counter() - started, log)
        self.runs.append(run)
        return run

    def run(self) -> ABOutcome:
        planned, min_effect_pct = check_options(self.options, paired.DEFAULT_ROUNDS)
        # a fraction
        min_effect = paired.DEFAULT_MIN_EFFECT if min_effect_pct is None else min_effect_pct / 100
        repo = self.repo = repository_root(self.cwd)
        subdir = self.cwd.relative_to(repo.resolve())  # the user's pytest args are relative to it
        base_sha, head_sha, dirty = self._commits(repo)
        out = (self.cwd / self.options.out).resolve()
        workspace = Workspace(repo)
        try:
            revisions = self._revisions(workspace, base_sha, head_sha, dirty)
            for revision in revisions.values():
                if not (revision.root / subdir).is_dir():
                    raise I2VUsageError(
                        f"{subdir} does not exist on the {revision.side} side "
                        f"({revision.label}); run ab from a directory both have"
                    )
            job = Rounds(revisions, subdir, planned, min_effect, out, workspace.path)
            selected = collect_tests(
                revisions, subdir, workspace.path, self.options.pytest_args, self._run
            )
            self._announce(job, len(selected))
            self._prepare_out(out)
            docs = self._rounds(job)
        finally:
            workspace.close()
        if self.options.calibrate:
            path = calibration_path(docs, self.options.baseline_dir, self.repo, self.cwd)
            self.calibration_note = store_ab_calibration(docs, path, base_sha)
            self.progress(f"ab: {self.calibration_note}")
        return self._compare_and_write(job, docs)

    def _commits(self, repo: Path) -> tuple[str, str, bool]:
        """The base's and the head's commits, and whether the working tree has changes."""
        base_sha = resolve_commit(repo, self.options.base, "--base")
        dirty = has_uncommitted_changes(repo)
        if self.options.head is None:
            return base_sha, resolve_commit(repo, "HEAD", "HEAD"), dirty
        if dirty:
            raise I2VUsageError(
                f"--head {self.options.head!r} with uncommitted changes in {repo}: they would "
                f"not be measured; commit or stash them, or drop --head to measure the working "
                f"tree"
            )
        return base_sha, resolve_commit(repo, self.options.head, "--head"), dirty

    def _revisions(
        self, workspace: Workspace, base_sha: str, head_sha: str, dirty: bool
    ) -> dict[str, Revision]:
        base_root = workspace.add_worktree("base", base_sha)
        base = Revision("base", self.options.base, base_sha, base_root)
        if self.options.calibrate:  # A/A: the base against itself, from the same checkout
            head = Revision("head", self.options.base, base_sha, base.root)
        elif self.options.head is not None:
            head_root = workspace.add_worktree("head", head_sha)
            head = Revision("head", self.options.head, head_sha, head_root)
        else:
            head = Revision("head", None, head_sha, workspace.repo, dirty=dirty)
        return {"base": base, "head": head}

    def _announce(self, job: Rounds, tests: int) -> None:
        base, head = job.revisions["base"], job.revisions["head"]
        self.progress(
            f"ab: {tests} i2v tests, {job.planned} rounds, base {base.label} ({base.sha[:12]}), "
            f"head {head.label} ({head.sha[:12]})"
        )

    def _prepare_out(self, out: Path) -> None:
        (out / "logs").mkdir(parents=True, exist_ok=True)
        for name in OUTPUTS:  # an earlier job's verdict must not pass for this one's if it stops
            (out / name).unlink(missing_ok=True)
        for run in self.runs:  # the collection pass agreed: its logs join the others
            if run.log.is_file():
                shutil.copyfile(run.log, out / "logs" / run.log.name)

    def _process_defaults(self) -> list[str]:
        given = {arg.split("=", 1)[0] for arg in self.options.pytest_args}
        defaults = [] if PROCESS_REPEATS[0] in given else list(PROCESS_REPEATS)
        if not self.options.full_runs and PROCESS_FAST not in given:
            defaults.append(PROCESS_FAST)
        return defaults

    def _results(self, job: Rounds, docs: Docs) -> list[ABTestResult]:
        """The verdicts of the rounds so far: at this look of the sequential plan, with the
        calibration's spreads, and the tests decided at earlier looks as they were decided."""
        confidence = paired.DEFAULT_CONFIDENCE
        plan = SequentialPlan(job.planned, 1.0 - confidence) if self.sequential else None
        return rounds.compare_rounds(
            docs["base"],
            docs["head"],
            min_effect=job.min_effect,
            confidence=confidence,
            plan=plan,
            calibration=self.priors,
            decided=self.decided,
        )

    def _compare_and_write(
        self, job: Rounds, docs: Docs, results: list[ABTestResult] | None = None
    ) -> ABOutcome:
        """The verdicts of the rounds in ``docs`` (all of them, or those done so far), written to
        ``job.out``; ``results``: those verdicts, when the caller has them already."""
        if results is None:
            results = self._results(job, docs)
        return self._write(results, self._meta(job, docs), job.out)

    def _round_argv(self, job: Rounds, side: str, round_index: int, results: Path) -> list[str]:
        name = f"{side}-{round_index}"
        # decided tests leave the job: node ids are rootdir-relative, as --deselect reads them
        deselect = [arg for nodeid in self.decided for arg in ("--deselect", nodeid)]
        # the work signature once, in round 1 (exact: one profile per side decides a changed work)
        signature = "on" if round_index == 0 and not self.options.calibrate else "off"
        reports = job.tmp / "reports"
        # each flag with its value on one line (fmt: skip keeps the pairs)
        return pytest_argv([
            *self._process_defaults(),
            *self.options.pytest_args,
            *config_args(job.revisions[side].root, job.subdir, job.tmp),
            "--i2v-json", str(results),
            # empty, and new for each process: never the project's baselines, and an ini that
            # records baselines cannot make a later round gate (and re-measure) against an
            # earlier one
            "--i2v-baseline-dir", str(job.tmp / f"baselines-{name}"),
            # the ini may send these into the working tree; keep them out of the user's files
            "--i2v-report", str(reports / f"{name}.html"),
            "--i2v-markdown", str(reports / f"{name}.md"),
            "--i2v-signature", signature,
            *deselect,
        ])  # fmt: skip

    def _run_side(self, job: Rounds, side: str, round_index: int) -> RoundResults:
        """One side's process of this round; its results."""
        revision = job.revisions[side]
        name = f"{side}-{round_index}"
        results = job.out / f"{name}.json"
        results.unlink(missing_ok=True)  # never read a stale file from an earlier job
        argv = self._round_argv(job, side, round_index, results)
        log = job.out / "logs" / f"{name}.log"
        cwd, env = revision.root / job.subdir, side_env(revision.root)
        run = self._run(side, round_index, argv, cwd, env, log)
        # round_index: the complete rounds before this one
        kept = (
            f"; {job.out / 'ab.md'} has the verdicts of the {round_index} rounds done"
            if round_index >= PARTIAL_FROM_ROUNDS
            else ""
        )
        where = f"round {round_index + 1} on the {side} side"
        if run.exit_code not in RAN_EXIT_CODES:
            raise process_failed(run, f"{where} ({revision.label})", kept)
        if not results.is_file():
            raise process_failed(run, f"{where} wrote no results", kept)
        self.progress(
            f"ab: round {round_index + 1}/{job.planned} {side}: {run.wall_s:.1f} s "
            f"(pytest exit {run.exit_code})"
        )
        return RoundResults.read(results)

    def _load_calibration(self, docs: Docs) -> None:
        path = calibration_path(docs, self.options.baseline_dir, self.repo, self.cwd)
        loaded = load_calibration(docs, path)
        if loaded is not None:
            self.priors, self.calibration_note = loaded
            self.progress(f"ab: {self.calibration_note}")

    def _decide(self, verdicts: Sequence[ABTestResult], done: int, planned: int) -> None:
        """A sequential job's look after ``done`` rounds: the decided tests leave the job."""
        for result in verdicts:
            if is_decided(result.overall) and result.nodeid not in self.decided:
                self.decided[result.nodeid], self.decided_after[result.nodeid] = result, done
                self.progress(
                    f"ab: {result.nodeid} decided after {done} "
                    f"round{'s' if done > 1 else ''}: {result.overall}"
                )
        self.all_decided = bool(verdicts) and len(self.decided) == len(verdicts)
        if self.all_decided:
            self.progress(f"ab: every test decided after {done} of at most {planned} rounds")

    def _rounds(self, job: Rounds) -> Docs:
        """Every round's results documents per side. After each complete round from
        ``PARTIAL_FROM_ROUNDS`` on, but the last (the caller writes the final files), the partial
        files."""
        docs: Docs = {side: [] for side in SIDES}
        for round_index, order in enumerate(abba_order(job.planned)):
            for side in order:
                docs[side].append(self._run_side(job, side, round_index))
            if round_index == 0 and not self.options.calibrate:
                self._load_calibration(docs)
            done = round_index + 1
            if done >= job.planned:
                break  # the caller writes the final files
            verdicts = self._results(job, docs)
            if self.sequential:
                self._decide(verdicts, done, job.planned)
                if self.all_decided:
                    break
            # a changed work is decided by round 1: show it now; from round 2 on, every round
            changed_work = any(r.work is not None and not r.work.diff.identical for r in verdicts)
            if done >= PARTIAL_FROM_ROUNDS or changed_work:
                self._compare_and_write(job, docs, verdicts)
        return docs

    def _meta(self, job: Rounds, docs: Docs) -> ABMeta:
        """``ab.outputs``' meta: what was compared, how, and on what; ``rounds`` counts those in
        ``docs``."""
        environment = dict(docs["base"][0].environment) if docs["base"] else {}
        done = len(docs["base"])
        machine: MachineMeta = {
            "name": machine_name(environment),
            "host": platform.node(),
            "environment": environment,
        }
        return {
            "base": job.revisions["base"].label,
            "head": job.revisions["head"].label,
            "base_commit": job.revisions["base"].sha,
            "head_commit": job.revisions["head"].sha,
            "rounds": done,
            "rounds_planned": job.planned,
            "order": order_text(done),
            "min_effect": job.min_effect,
            "confidence": paired.DEFAULT_CONFIDENCE,
            "machine": machine,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "pytest_args": list(self.options.pytest_args),
            "conditions": unstable_conditions(docs),
            "design": "sequential" if self.sequential else "fixed",
            "all_decided": self.all_decided,
            "decided_after": dict(self.decided_after),
            "calibration": self.calibration_note,
        }

    def _runs_listing(self) -> list[Listing]:
        """Every process of the job, in the order they ran: the files behind the verdicts."""
        return [
            {
                "side": r.side,
                "round": r.round,
                "exit_code": r.exit_code,
                "wall_s": round(r.wall_s, 3),
                "log": f"logs/{r.log.name}",
                "results": f"{r.side}-{r.round}.json" if r.round >= 0 else None,
            }
            for r in self.runs
        ]

    def _write(self, results: list[ABTestResult], meta: ABMeta, out: Path) -> ABOutcome:
        markdown = render_ab_markdown(results, meta)
        document = ab_document(results, meta)
        document["runs"] = self._runs_listing()
        write_text_atomic(out / "ab.json", json.dumps(document, indent=2) + "\n")
        write_text_atomic(out / "ab.md", markdown)
        write_text_atomic(out / "ab.html", render_ab_html(results, meta))
        failed = any(r.overall in paired.FAILING for r in results)
        return ABOutcome(markdown, 1 if failed else 0, results, meta, list(self.runs))


def run_ab(
    options: ABOptions, runner: ProcessRunner | None = None, cwd: Path | None = None
) -> ABOutcome:
    return ABJob(options, runner, cwd).run()
