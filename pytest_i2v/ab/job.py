"""The A/B job: resolve the refs, collect, run the ABBA rounds, judge after each round, write the
outputs (``pytest_i2v.ab`` says how it runs)."""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_i2v.ab import workspace
from pytest_i2v.ab.workspace import (
    COLLECT_ENV,
    COLLECT_NOTHING,
    COLLECT_PLUGIN,
    COLLECT_PLUGIN_NAME,
    OUTPUTS,
    PARTIAL_FROM_ROUNDS,
    PROCESS_FAST,
    PROCESS_REPEATS,
    RAN_EXIT_CODES,
    SIDES,
    ABOptions,
    ABOutcome,
    ProcessRun,
    ProcessRunner,
    Revision,
    Workspace,
    abba_order,
    check_options,
    config_args,
    has_uncommitted_changes,
    machine_name,
    process_failed,
    pytest_argv,
    repository_root,
    resolve_commit,
    side_env,
    unstable_conditions,
)
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.storage import write_text_atomic

if TYPE_CHECKING:  # the statistics import scipy: only when the rounds are done
    from pytest_i2v.ab.paired import ABTestResult


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
        self.priors: dict[
            str, Any
        ] = {}  # nodeid -> metric -> gate.Noise: this machine's calibration
        self.calibration_note: str | None = None
        self.decided: dict[
            str, ABTestResult
        ] = {}  # a sequential job's decided tests: they leave the later rounds
        self.decided_after: dict[str, int] = {}
        self.all_decided = False

    def _run(
        self,
        side: str,
        round_index: int,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        log: Path,
    ) -> ProcessRun:
        runner = (
            self.runner or workspace.run_logged
        )  # looked up now: a test can patch workspace.run_logged
        log.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        code = runner(argv, cwd, env, log)
        run = ProcessRun(side, round_index, code, time.perf_counter() - started, log)
        self.runs.append(run)
        return run

    def run(self) -> ABOutcome:
        from pytest_i2v.ab import paired

        rounds, min_effect_pct = check_options(self.options, paired.DEFAULT_ROUNDS)
        repo = self.repo = repository_root(self.cwd)
        subdir = self.cwd.relative_to(repo.resolve())  # the user's pytest args are relative to it
        base_sha = resolve_commit(repo, self.options.base, "--base")
        dirty = has_uncommitted_changes(repo)
        if self.options.head is not None:
            head_sha = resolve_commit(repo, self.options.head, "--head")
            if dirty:
                raise I2VUsageError(
                    f"--head {self.options.head!r} with uncommitted changes in {repo}: they would not "
                    f"be measured; commit or stash them, or drop --head to measure the working tree"
                )
        else:
            head_sha = resolve_commit(repo, "HEAD", "HEAD")
        out = (self.cwd / self.options.out).resolve()
        workspace = Workspace(repo)
        try:
            base = Revision(
                "base", self.options.base, base_sha, workspace.add_worktree("base", base_sha)
            )
            if self.options.calibrate:  # A/A: the base against itself, from the same checkout
                head = Revision("head", self.options.base, base_sha, base.root)
            elif self.options.head is not None:
                head = Revision(
                    "head", self.options.head, head_sha, workspace.add_worktree("head", head_sha)
                )
            else:
                head = Revision("head", None, head_sha, repo, dirty=dirty)
            revisions = {"base": base, "head": head}
            for revision in revisions.values():
                if not (revision.root / subdir).is_dir():
                    raise I2VUsageError(
                        f"{subdir} does not exist on the {revision.side} side "
                        f"({revision.label}); run ab from a directory both have"
                    )
            selected = self._collect(revisions, subdir, workspace.path)
            min_effect = (
                paired.DEFAULT_MIN_EFFECT if min_effect_pct is None else min_effect_pct / 100
            )  # a fraction
            self.progress(
                f"ab: {len(selected)} i2v tests, {rounds} rounds, base {base.label} ({base.sha[:12]}), "
                f"head {head.label} ({head.sha[:12]})"
            )
            (out / "logs").mkdir(parents=True, exist_ok=True)
            for name in (
                OUTPUTS
            ):  # an earlier job's verdict must not pass for this one's if this one stops early
                (out / name).unlink(missing_ok=True)
            for run in self.runs:  # the collection pass agreed: its logs join the others
                if run.log.is_file():
                    shutil.copyfile(run.log, out / "logs" / run.log.name)
            docs = self._rounds(revisions, subdir, rounds, min_effect, out, workspace.path)
        finally:
            workspace.close()
        if self.options.calibrate:
            self._store_calibration(docs, base_sha)
        return self._compare_and_write(revisions, docs, rounds, min_effect, out)

    def _process_defaults(self) -> list[str]:
        given = {arg.split("=", 1)[0] for arg in self.options.pytest_args}
        defaults = [] if PROCESS_REPEATS[0] in given else list(PROCESS_REPEATS)
        if not self.options.full_runs and PROCESS_FAST not in given:
            defaults.append(PROCESS_FAST)
        return defaults

    @property
    def sequential(self) -> bool:
        return self.options.sequential and not self.options.calibrate

    def _results(
        self, docs: Mapping[str, list[dict[str, Any]]], rounds_planned: int, min_effect: float
    ) -> list[ABTestResult]:
        """The verdicts of the rounds so far: at this look of the sequential plan, with the calibration's
        spreads, and the tests decided at earlier looks as they were decided."""
        from pytest_i2v.ab import paired, rounds
        from pytest_i2v.ab.sequential import SequentialPlan

        plan = (
            SequentialPlan(rounds_planned, 1.0 - paired.DEFAULT_CONFIDENCE)
            if self.sequential
            else None
        )
        return rounds.compare_rounds(
            docs["base"],
            docs["head"],
            min_effect=min_effect,
            confidence=paired.DEFAULT_CONFIDENCE,
            plan=plan,
            calibration=self.priors,
            decided=self.decided,
        )

    def _compare_and_write(
        self,
        revisions: Mapping[str, Revision],
        docs: Mapping[str, list[dict[str, Any]]],
        rounds_planned: int,
        min_effect: float,
        out: Path,
        results: list[ABTestResult] | None = None,
    ) -> ABOutcome:
        """The verdicts of the rounds in ``docs`` (all of them, or those done so far), written to ``out``;
        ``results``: those verdicts, when the caller has them already."""
        from pytest_i2v.ab import paired

        if results is None:
            results = self._results(docs, rounds_planned, min_effect)
        meta = self._meta(revisions, rounds_planned, min_effect, paired.DEFAULT_CONFIDENCE, docs)
        return self._write(results, meta, out)

    def _calibration_path(self, docs: Mapping[str, list[dict[str, Any]]]) -> Path | None:
        from pytest_i2v.verdict.baseline_store import baseline_path

        profile = ((docs["base"][0].get("profile") or {}) if docs["base"] else {}).get("name")
        if not profile:
            return None
        directory = self.options.baseline_dir or self.repo / "baselines"
        return baseline_path(
            directory if directory.is_absolute() else self.cwd / directory, str(profile)
        )

    def _load_calibration(self, docs: Mapping[str, list[dict[str, Any]]]) -> None:
        """After round 1 (the records name the machine): this machine's calibration, if current."""
        from pytest_i2v.verdict.ab_calibration import choose
        from pytest_i2v.verdict.baseline_store import read_baseline

        records = docs["base"][0].get("records") or [] if docs["base"] else []
        path = self._calibration_path(docs)
        if not records or path is None:
            return
        calibration, self.calibration_note = choose(
            read_baseline(path).calibrations, records[0].get("fingerprint") or {}
        )
        if calibration is not None:
            self.priors = calibration.priors(records)
            self.calibration_note += (
                f" ({len(self.priors)} of {len(records)} tests, from {path.name})"
            )
        self.progress(f"ab: {self.calibration_note}")

    def _store_calibration(self, docs: Mapping[str, list[dict[str, Any]]], commit: str) -> None:
        from pytest_i2v.verdict.ab_calibration import calibrate
        from pytest_i2v.verdict.baseline_store import store_calibration

        path = self._calibration_path(docs)
        if path is None:
            raise I2VUsageError(
                "the A/A rounds wrote no profile name; run the calibration with --gpu-profile NAME"
            )
        calibration = calibrate(
            docs["base"],
            docs["head"],
            commit,
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        store_calibration(path, path.stem, calibration)
        spreads = sorted(
            float(t["time_s"]["sd"]) for t in calibration.tests.values() if t.get("time_s")
        )
        middle = f", median log-ratio sd {spreads[len(spreads) // 2]:.2%}" if spreads else ""
        self.calibration_note = (
            f"calibrated {len(calibration.tests)} tests over {calibration.rounds} A/A rounds "
            f"({calibration.rounds - 1} df each{middle}); stored in {path}"
        )
        self.progress(f"ab: {self.calibration_note}")

    def _collect(self, revisions: Mapping[str, Revision], subdir: Path, tmp: Path) -> list[str]:
        """The i2v tests each side selects with the user's args; both must have the same ones."""
        plugin_dir = tmp / "collect-plugin"
        plugin_dir.mkdir()
        (plugin_dir / f"{COLLECT_PLUGIN_NAME}.py").write_text(COLLECT_PLUGIN, encoding="utf-8")
        selected: dict[str, list[str]] = {}
        for side, revision in revisions.items():
            listing = tmp / f"collect-{side}.json"
            argv = pytest_argv(
                [
                    *self.options.pytest_args,
                    *config_args(revision.root, subdir, tmp),
                    "--collect-only",
                    "-q",
                    "-p",
                    COLLECT_PLUGIN_NAME,
                ]
            )
            env = side_env(revision.root, [plugin_dir], {COLLECT_ENV: str(listing)})
            run = self._run(
                side, -1, argv, revision.root / subdir, env, tmp / "logs" / f"{side}-collect.log"
            )
            if run.exit_code not in (*RAN_EXIT_CODES, COLLECT_NOTHING):
                raise process_failed(
                    run, f"collecting the tests on the {side} side ({revision.label})"
                )
            selected[side] = (
                json.loads(listing.read_text(encoding="utf-8")) if listing.is_file() else []
            )
        if not selected["base"] and not selected["head"]:
            raise I2VUsageError(
                "the pytest args select no i2v test on either side; pass the tests to compare after --"
            )
        for side, other in (("head", "base"), ("base", "head")):
            only = [n for n in selected[side] if n not in set(selected[other])]
            if only:
                more = f" (and {len(only) - 1} more)" if len(only) > 1 else ""
                raise I2VUsageError(
                    f"test {only[0]}{more} exists on the {side} side only "
                    f"({revisions[side].label}); deselect it after -- (e.g. "
                    f"--deselect {only[0]}) so that both sides run the same tests"
                )
        return selected["base"]

    def _rounds(
        self,
        revisions: Mapping[str, Revision],
        subdir: Path,
        rounds: int,
        min_effect: float,
        out: Path,
        tmp: Path,
    ) -> dict[str, list[dict[str, Any]]]:
        """Every round's results documents per side. After each complete round from
        ``PARTIAL_FROM_ROUNDS`` on, but the last (the caller writes the final files), the partial files."""
        from pytest_i2v.generation.results import read_results

        docs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for round_index, order in enumerate(abba_order(rounds)):
            # decided tests leave the job: node ids are rootdir-relative, as --deselect reads them
            deselect = [arg for nodeid in self.decided for arg in ("--deselect", nodeid)]
            for side in order:
                revision = revisions[side]
                name = f"{side}-{round_index}"
                results = out / f"{name}.json"
                results.unlink(missing_ok=True)  # never read a stale file from an earlier job
                argv = pytest_argv(
                    [
                        *self._process_defaults(),
                        *self.options.pytest_args,
                        *config_args(revision.root, subdir, tmp),
                        "--i2v-json",
                        str(results),
                        # empty, and new for each process: never the project's baselines, and an ini that
                        # records baselines cannot make a later round gate (and re-measure) against an earlier one
                        "--i2v-baseline-dir",
                        str(tmp / f"baselines-{name}"),
                        # the ini may send these into the working tree; keep them out of the user's files
                        "--i2v-report",
                        str(tmp / "reports" / f"{name}.html"),
                        "--i2v-markdown",
                        str(tmp / "reports" / f"{name}.md"),
                        # the work signature once, in round 1 (exact: one profile per side decides a changed work)
                        "--i2v-signature",
                        "on" if round_index == 0 and not self.options.calibrate else "off",
                        *deselect,
                    ]
                )
                run = self._run(
                    side,
                    round_index,
                    argv,
                    revision.root / subdir,
                    side_env(revision.root),
                    out / "logs" / f"{name}.log",
                )
                kept = (
                    f"; {out / 'ab.md'} has the verdicts of the {round_index} rounds done"
                    if round_index >= PARTIAL_FROM_ROUNDS
                    else ""
                )  # round_index: the complete rounds before this one
                if run.exit_code not in RAN_EXIT_CODES:
                    raise process_failed(
                        run, f"round {round_index + 1} on the {side} side ({revision.label})", kept
                    )
                if not results.is_file():
                    raise process_failed(
                        run, f"round {round_index + 1} on the {side} side wrote no results", kept
                    )
                self.progress(
                    f"ab: round {round_index + 1}/{rounds} {side}: {run.wall_s:.1f} s "
                    f"(pytest exit {run.exit_code})"
                )
                docs[side].append(read_results(results))
            if round_index == 0 and not self.options.calibrate:
                self._load_calibration(docs)
            done = round_index + 1
            if done >= rounds:
                break  # the caller writes the final files
            verdicts = self._results(docs, rounds, min_effect)
            if self.sequential:
                from pytest_i2v.ab.sequential import is_decided

                for result in verdicts:
                    if is_decided(result.overall) and result.nodeid not in self.decided:
                        self.decided[result.nodeid], self.decided_after[result.nodeid] = (
                            result,
                            done,
                        )
                        self.progress(
                            f"ab: {result.nodeid} decided after {done} round{'s' if done > 1 else ''}: "
                            f"{result.overall}"
                        )
                self.all_decided = bool(verdicts) and len(self.decided) == len(verdicts)
                if self.all_decided:
                    self.progress(f"ab: every test decided after {done} of at most {rounds} rounds")
                    break
            # a changed work is decided by round 1: show it now; from round 2 on, every round
            if done >= PARTIAL_FROM_ROUNDS or any(
                r.work is not None and not r.work.get("identical") for r in verdicts
            ):
                self._compare_and_write(revisions, docs, rounds, min_effect, out, verdicts)
        return docs

    def _meta(
        self,
        revisions: Mapping[str, Revision],
        rounds_planned: int,
        min_effect: float,
        confidence: float,
        docs: Mapping[str, list[dict[str, Any]]],
    ) -> dict[str, Any]:
        """``ab.outputs``' meta: what was compared, how, and on what; ``rounds`` counts those in ``docs``."""
        environment = dict((docs["base"][0].get("environment") or {}) if docs["base"] else {})
        rounds = len(docs["base"])
        return {
            "base": revisions["base"].label,
            "head": revisions["head"].label,
            "base_commit": revisions["base"].sha,
            "head_commit": revisions["head"].sha,
            "rounds": rounds,
            "rounds_planned": rounds_planned,
            "order": " ".join(
                "".join("A" if side == "base" else "B" for side in pair)
                for pair in abba_order(rounds)
            ),
            "min_effect": min_effect,
            "confidence": confidence,
            "machine": {
                "name": machine_name(environment),
                "host": platform.node(),
                "environment": environment,
            },
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "pytest_args": list(self.options.pytest_args),
            "conditions": unstable_conditions(docs),
            "design": "sequential" if self.sequential else "fixed",
            "all_decided": self.all_decided,
            "decided_after": dict(self.decided_after),
            "calibration": self.calibration_note,
        }

    def _write(self, results: list[ABTestResult], meta: dict[str, Any], out: Path) -> ABOutcome:
        from pytest_i2v.ab.outputs import ab_document, render_ab_html, render_ab_markdown

        markdown = render_ab_markdown(results, meta)
        document = ab_document(results, meta)
        # every process of the job, in the order they ran: the files behind the verdicts
        document["runs"] = [
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
        write_text_atomic(out / "ab.json", json.dumps(document, indent=2) + "\n")
        write_text_atomic(out / "ab.md", markdown)
        write_text_atomic(out / "ab.html", render_ab_html(results, meta))
        regressed = any(r.overall == "regressed" for r in results)
        return ABOutcome(markdown, 1 if regressed else 0, results, meta, list(self.runs))


def run_ab(
    options: ABOptions, runner: ProcessRunner | None = None, cwd: Path | None = None
) -> ABOutcome:
    return ABJob(options, runner, cwd).run()
