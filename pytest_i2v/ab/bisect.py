"""``python -m pytest_i2v bisect --good A --bad B -- <pytest args>``: the first commit whose run
differs.

The commits from A (exclusive) to B (inclusive) along the ancestry path, in order. Each probed
commit is checked out in a temporary worktree (``ab.workspace``: the user's checkout is never
touched) and runs the given tests once, profiled (``--i2v-signature on``, one fast repeat): its
work signatures. The work is exact, so no statistics are needed:

- **a work change**: the tests whose digest differs between A and B decide; a binary search over
  the commits finds the first whose digests differ from A's, in about log2(n) probes; the printed
  "what changed" table is that commit's work against its parent's.
- **a timing-only change** (A's and B's work identical): each probe is the project's sequential
  A/B job (``ab``) of A against the probed commit; a commit is bad where a test regressed. The
  first bad commit is confirmed against its parent (its neighbour) by one more A/B job, and the
  cost (jobs, processes, wall time) is printed: a timing bisection costs a whole A/B job per probe.

Assumes one change (monotone: every commit after the first bad one is bad too), as ``git bisect``
does."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pytest_i2v.ab.job import run_ab
from pytest_i2v.ab.options import ABOptions
from pytest_i2v.ab.paired import FAILING
from pytest_i2v.ab.processes import (
    PROCESS_FAST,
    ProcessRun,
    ProcessRunner,
    config_args,
    process_failed,
    pytest_argv,
    run_logged,
    side_env,
)
from pytest_i2v.ab.workspace import Workspace, repository_root, resolve_commit
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.document import read_records
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.markdown import work_change_lines
from pytest_i2v.report.rows import WorkChange
from pytest_i2v.verdict.work_diff import diff

RAN = (0, 1)  # pytest ran the tests (1: some failed, which a probe does not judge)


def first_bad(count: int, is_bad: Callable[[int], bool]) -> int:
    """The index of the first bad commit among ``count`` (the last is bad, "before the first" is
    good), by binary search: about log2(count) calls."""
    good, bad = -1, count - 1
    while bad - good > 1:
        middle = (good + bad) // 2
        if is_bad(middle):
            bad = middle
        else:
            good = middle
    return bad


def commits_between(repo: Path, good: str, bad: str) -> list[str]:
    """good (exclusive) .. bad (inclusive), oldest first, along the ancestry path."""
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", good, bad], cwd=repo, capture_output=True
    )
    if done.returncode != 0:
        raise I2VUsageError(
            f"--good {good[:12]} is not an ancestor of --bad {bad[:12]}; bisect needs a good "
            "commit before the bad one"
        )
    listed = subprocess.run(
        ["git", "rev-list", "--reverse", "--ancestry-path", f"{good}..{bad}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not listed:
        raise I2VUsageError("--good and --bad are the same commit: nothing to bisect")
    return listed


def _subject(repo: Path, sha: str) -> str:
    return subprocess.run(
        ["git", "log", "-1", "--format=%s", sha], cwd=repo, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class Prober:
    """One profiled run per commit, in its own worktree; each commit probed once."""

    repo: Path
    workspace: Workspace
    pytest_args: Sequence[str]
    runner: ProcessRunner = run_logged
    probed: dict[str, dict[str, GenerationRecord]] = field(default_factory=dict)
    wall_s: float = 0.0

    def records(self, sha: str) -> dict[str, GenerationRecord]:
        if sha in self.probed:
            return self.probed[sha]
        root = self.workspace.add_worktree(f"probe-{len(self.probed)}", sha)
        tmp = self.workspace.path
        name = f"probe-{sha[:12]}"
        results, log = tmp / f"{name}.json", tmp / f"{name}.log"
        defaults = [] if PROCESS_FAST in self.pytest_args else [PROCESS_FAST]
        # each flag with its value on one line (fmt: skip keeps the pairs)
        argv = pytest_argv([
            *defaults,
            *self.pytest_args,
            *config_args(root, Path("."), tmp),
            "--i2v-json", str(results),
            "--i2v-signature", "on",
            "--i2v-repeats", "1",
            "--i2v-baseline-dir", str(tmp / f"baselines-{name}"),
            "--i2v-report", str(tmp / f"{name}.html"),
            "--i2v-markdown", str(tmp / f"{name}.md"),
        ])  # fmt: skip
        started = time.perf_counter()
        code = self.runner(argv, root, side_env(root), log)
        wall = time.perf_counter() - started
        self.wall_s += wall
        if code not in RAN or not results.is_file():
            raise process_failed(ProcessRun(sha[:12], 0, code, wall, log), f"probe {sha[:12]}")
        document = json.loads(results.read_text(encoding="utf-8"))
        found = {r.nodeid: r for r in read_records(document, str(results))}
        self.probed[sha] = found
        return found


def _digests(records: dict[str, GenerationRecord]) -> dict[str, str]:
    return {n: r.signature.digest for n, r in records.items() if r.signature is not None}


@dataclass(frozen=True)
class BisectResult:
    kind: str  # "work" or "time"
    commit: str
    subject: str
    index: int  # among the commits after --good
    commits: int
    probes: int  # commits profiled (work) or A/B jobs run (time)
    wall_s: float
    changed_tests: tuple[str, ...]
    what_changed: tuple[str, ...]  # the Markdown lines: the work table, or the A/B verdicts

    def text(self) -> str:
        how = (
            f"{self.probes} profiled probes (one generation per commit)"
            if self.kind == "work"
            else f"{self.probes} sequential A/B jobs (timing only: the work was identical)"
        )
        lines = [
            f"bisect: the first {self.kind} change is {self.commit[:12]} {self.subject!r} "
            f"(commit {self.index + 1} of {self.commits} after --good), found with {how}, "
            f"{self.wall_s:.0f} s",
            f"changed: {', '.join(self.changed_tests)}",
            "",
            *self.what_changed,
        ]
        return "\n".join(lines).rstrip() + "\n"


def _work_table(
    parent: dict[str, GenerationRecord], child: dict[str, GenerationRecord], tests: Sequence[str]
) -> list[str]:
    changes = []
    for nodeid in tests:
        before, after = parent.get(nodeid), child.get(nodeid)
        if before and after and before.signature and after.signature:
            work = diff(before.signature.work(), after.signature.work(), before.stages.step_s)
            changes.append(WorkChange(nodeid, work))
    return work_change_lines(changes)


@dataclass(frozen=True)
class BisectOptions:
    good: str
    bad: str
    pytest_args: tuple[str, ...] = ()
    rounds: int = 4  # per A/B job of the timing fallback
    min_effect_pct: float | None = None


def _bisect_time(
    options: BisectOptions, commits: list[str], workspace: Workspace, cwd: Path | None
) -> tuple[int, int, list[str], list[str]]:
    """(first bad index, A/B jobs, the regressed tests, the confirmation's verdict lines)."""
    jobs = 0
    regressed: dict[int, list[str]] = {}

    def job(base: str, head: str) -> list[str]:
        nonlocal jobs
        jobs += 1
        out = workspace.path / f"ab-{jobs}"
        ab_options = ABOptions(
            base=base,
            head=head,
            rounds=options.rounds,
            min_effect_pct=options.min_effect_pct,
            out=out,
            pytest_args=options.pytest_args,
        )
        outcome = run_ab(ab_options, cwd=cwd)
        return [r.nodeid for r in outcome.results if r.overall in FAILING]

    def is_bad(index: int) -> bool:
        regressed[index] = job(options.good, commits[index])
        return bool(regressed[index])

    if not is_bad(len(commits) - 1):
        raise I2VUsageError(
            f"--bad {options.bad}: no test differs from --good {options.good} in its work or "
            f"its time ({options.rounds} A/B rounds); nothing to bisect"
        )
    index = first_bad(len(commits), lambda i: regressed[i] != [] if i in regressed else is_bad(i))
    parent = commits[index - 1] if index > 0 else options.good
    confirmed = job(parent, commits[index]) if index > 0 else regressed[index]
    found = ", ".join(confirmed) or "nothing (the change may be spread over commits)"
    lines = [f"A/B of {parent[:12]} (its parent) against {commits[index][:12]}: failed {found}"]
    return index, jobs, regressed[index], lines


def run_bisect(options: BisectOptions, cwd: Path | None = None) -> BisectResult:
    repo = repository_root(cwd or Path.cwd())
    good = resolve_commit(repo, options.good, "--good")
    bad = resolve_commit(repo, options.bad, "--bad")
    commits = commits_between(repo, good, bad)
    workspace = Workspace(repo)
    started = time.perf_counter()
    try:
        prober = Prober(repo, workspace, options.pytest_args)
        reference, last = _digests(prober.records(good)), _digests(prober.records(bad))
        changed = sorted(n for n in reference if n in last and reference[n] != last[n])
        if changed:

            def differs(index: int) -> bool:
                digests = _digests(prober.records(commits[index]))
                return any(digests.get(n) != reference[n] for n in changed)

            index = first_bad(len(commits), differs)
            parent = commits[index - 1] if index > 0 else good
            table = _work_table(prober.records(parent), prober.records(commits[index]), changed)
            kind, probes, tests, lines = "work", len(prober.probed), changed, table
        else:
            resolved = replace(options, good=good, bad=bad)  # the A/B jobs name exact commits
            index, probes, tests, lines = _bisect_time(resolved, commits, workspace, cwd)
            kind = "time"
    finally:
        workspace.close()
    return BisectResult(
        kind,
        commits[index],
        _subject(repo, commits[index]),
        index,
        len(commits),
        probes,
        time.perf_counter() - started,
        tuple(tests),
        tuple(lines),
    )
