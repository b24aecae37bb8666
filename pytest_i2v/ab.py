"""``python -m pytest_i2v ab``: base and head measured interleaved in one job, on one machine.

    python -m pytest_i2v ab --base REF [--head REF] [--rounds N] [--min-effect PCT] [--out DIR] [--fixed-rounds]
        [--full-runs] [--calibrate] [--baseline-dir DIR] [-- pytest args]

Why: a stored baseline comes from other days, processes and machine states; between processes the
times move by several per cent. Running base and head alternately in the same job lets slow drift
cancel out, and pairing the rounds removes what the two sides share.

How it runs:

- The base is checked out with ``git worktree add --detach`` in a temporary directory; so is the
  head when ``--head`` names a ref. Without ``--head`` the head is the working tree as it is.
- A quick ``pytest --collect-only`` per side first: an i2v test (an ``i2v`` mark or the ``i2v_run``
  fixture) that only one side has is a usage error that names it.
- Round r runs one fresh pytest process per side: (base, head) when r is even, (head, base) when r
  is odd (ABBA), each with ``PYTHONPATH=<its tree>`` first, so that each side imports its own
  pytest_i2v and its own tests. Both get the same pytest args, hence the same profile and device.
- The runs never read or write the project's baselines (an empty ``--i2v-baseline-dir`` per
  process; ``--i2v-update-baselines`` is refused) and write their reports into the temporary directory.
- Sequential (the default; ``--fixed-rounds`` turns it off): after every round the job judges each test
  at that look (``ab_sequential``: Lan-DeMets spending); a decided test leaves the job (``--deselect``
  in the later processes) and the job ends when every test is decided or ``--rounds`` are spent. The
  calibration (``--calibrate``: base against base, stored in the profile's baseline file) gives each
  test its spread with its real degrees of freedom, where it matches the machine and software.
- ``ab_stats.compare_rounds`` pairs the rounds; ``<out>/ab.json``, ``ab.md`` and ``ab.html`` are
  written, the Markdown is printed, and the exit code is 1 when a test regressed, else 0.
- From the second round on, each completed round rewrites those three files (atomically) from the
  rounds so far, marked "partial: 3 of 16 rounds done": a job killed at a CI time limit, or stopped
  by a failed process, still leaves the verdicts of its complete rounds. The final write replaces
  them. An earlier job's files in the same ``--out`` are removed first: never taken for this job's.
- Each process's output is kept in ``<out>/logs/``; its results JSON in ``<out>/<side>-<round>.json``.
  A process that exits with anything but 0 or 1 (a usage or internal error) stops the job.

The dirty-worktree rule: without ``--head`` uncommitted changes to tracked files are measured as
the head (the meta says so). With ``--head`` the working tree is not measured at all, so a dirty
one is ambiguous (the user may expect their edits to count): that is a usage error; commit or
stash the changes, or drop ``--head``. Untracked files do not count as changes.

Whatever happens (a usage error after the worktrees exist, a failed process, Ctrl-C) the worktrees
are removed (``git worktree remove --force``, then ``git worktree prune``) and the temporary
directory deleted. Nothing is written to ``--out`` before the collection pass agrees.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.storage import write_text_atomic

if TYPE_CHECKING:  # the statistics import scipy: only when the rounds are done
    from pytest_i2v.ab_stats import ABTestResult

SIDES = ("base", "head")
DEFAULT_OUT = "i2v-ab"
LOG_TAIL_LINES = 25
OUTPUTS = ("ab.json", "ab.md", "ab.html")  # the comparison, rewritten after each round from the second on
PARTIAL_FROM_ROUNDS = 2  # fewer rounds give no interval: nothing worth writing yet
# pytest's exit codes that still mean "the tests ran": 0 all passed, 1 some failed
RAN_EXIT_CODES = (0, 1)
COLLECT_NOTHING = 5  # pytest: no tests collected
COLLECT_ENV = "PYTEST_I2V_AB_COLLECT_OUT"
# Written into the temporary directory for the collection pass: the base may predate this module,
# so the plugin that lists the i2v tests cannot live in the package under test.
COLLECT_PLUGIN = '''"""pytest-i2v ab: lists the collected i2v tests (written by pytest_i2v.ab)."""
import json
import os


def pytest_collection_finish(session):
    nodeids = [item.nodeid for item in session.items
               if item.get_closest_marker("i2v") is not None or "i2v_run" in getattr(item, "fixturenames", ())]
    with open(os.environ["{env}"], "w", encoding="utf-8") as handle:
        json.dump(nodeids, handle)
'''.replace("{env}", COLLECT_ENV)
COLLECT_PLUGIN_NAME = "_pytest_i2v_ab_collect"
# What each A/B process measures unless the user's pytest args say otherwise (theirs come later and win):
# between-process noise dominates (benchmarks/ab_power.py: at 2 % between and 1 % within, 1 repeat costs 68
# GPU minutes per unchanged PR job for the same power that 3 repeats buy for 86), so one repeat after the
# warm-up, and fast mode (per-step time measured, the total predicted; refused by the plugin where a test
# offloads), unless --full-runs.
PROCESS_REPEATS = ("--i2v-repeats", "1")
PROCESS_FAST = "--i2v-fast"
# pytest args the A/B job sets itself (or forbids): the user's would break the comparison
FORBIDDEN_ARGS = {
    "--i2v-update-baselines": "A/B runs never write baselines; record them with a normal pytest run",
    "--i2v-json": "ab writes each run's results into --out itself",
    "--i2v-baseline-dir": "A/B runs never read baselines; they compare base with head",
}

# One pytest process: argv, working directory, environment, log file -> exit code.
ProcessRunner = Callable[[Sequence[str], Path, Mapping[str, str], Path], int]


@dataclass(frozen=True)
class ABOptions:
    base: str
    head: str | None = None  # None: the working tree as it is
    rounds: int | None = None  # None: ab_stats.DEFAULT_ROUNDS
    min_effect_pct: float | None = None  # None: ab_stats.DEFAULT_MIN_EFFECT
    out: Path = Path(DEFAULT_OUT)
    pytest_args: tuple[str, ...] = ()
    sequential: bool = True  # each test leaves once decided (ab_sequential); False: every test runs every round
    full_runs: bool = False  # False: each process measures in fast mode (PROCESS_DEFAULTS); True: full generations
    calibrate: bool = False  # base against itself: store each test's spread (ab_calibration), compare nothing
    baseline_dir: Path | None = None  # where the calibration is read and written (None: <repository>/baselines)


@dataclass(frozen=True)
class Revision:
    """One side of the comparison and where its files are."""

    side: str  # "base" or "head"
    ref: str | None  # as the user gave it; None: the working tree
    sha: str
    root: Path  # a temporary worktree, or the repository itself for the working tree
    dirty: bool = False  # the working tree with uncommitted changes to tracked files

    @property
    def label(self) -> str:
        """The revision as the user named it; the working tree says whether it has uncommitted changes."""
        if self.ref is not None:
            return self.ref
        return "working tree" + (" (uncommitted changes included)" if self.dirty else "")


@dataclass(frozen=True)
class ProcessRun:
    side: str
    round: int  # -1: the collection pass
    exit_code: int
    wall_s: float
    log: Path


@dataclass(frozen=True)
class ABOutcome:
    markdown: str
    exit_code: int  # 1: a test regressed
    results: list[ABTestResult]
    meta: dict[str, Any]
    runs: list[ProcessRun] = field(default_factory=list)


class ABProcessFailed(Exception):
    """A pytest process that did not get to run the tests (exit code other than 0 or 1)."""

    def __init__(self, message: str, exit_code: int, log_tail: str):
        super().__init__(message)
        self.exit_code = exit_code
        self.log_tail = log_tail


def machine_name(environment: Mapping[str, Any]) -> str:
    """The device under the numbers, from a results document's environment (its fingerprint)."""
    if environment.get("gpu_name"):
        return str(environment["gpu_name"])
    name = str(environment.get("cpu_model") or platform.processor() or platform.machine() or "unknown CPU")
    if environment.get("cpu_threads"):
        name += f", {environment['cpu_threads']} torch threads"
    return name


def unstable_conditions(docs: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """Each process record whose GPU was not stable under its repeats, as ``base round 2: <test>:
    throttled (thermal, 2 of 5 repeats)``: the hardware under the numbers, for the summary. The paired
    statistics already carry what it did to the times; this says why a spread is wide."""
    lines = []
    for side in SIDES:
        for round_index, document in enumerate(docs.get(side, ())):
            for record in document.get("records", []):
                summary = (record.get("conditions") or {}).get("summary")
                if summary not in (None, "stable", "not read"):
                    lines.append(f"{side} round {round_index + 1}: {record.get('nodeid')}: {summary}")
    return lines


def abba_order(rounds: int) -> list[tuple[str, str]]:
    """(base, head) on even rounds, (head, base) on odd ones: a drift across the job hits both sides alike."""
    return [SIDES if r % 2 == 0 else (SIDES[1], SIDES[0]) for r in range(rounds)]


def run_logged(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> int:
    """The real process runner: stdout and stderr together into the log file."""
    with log.open("w", encoding="utf-8") as handle:
        return subprocess.run(list(argv), cwd=cwd, env=dict(env), stdout=handle, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, check=False).returncode


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)


def repository_root(cwd: Path) -> Path:
    done = _git(cwd, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise I2VUsageError(f"{cwd} is not inside a git repository; run ab from the repository to compare")
    return Path(done.stdout.strip())


def resolve_commit(repo: Path, ref: str, flag: str) -> str:
    done = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if done.returncode != 0 or not done.stdout.strip():
        raise I2VUsageError(f"{flag} {ref!r} is not a commit in {repo}; use a branch, tag or SHA "
                            f"(fetch it first in a shallow clone: git fetch origin {ref})")
    return done.stdout.strip()


def has_uncommitted_changes(repo: Path) -> bool:
    """Changes to tracked files, staged or not; untracked files are not the code under test."""
    done = _git(repo, "status", "--porcelain", "--untracked-files=no")
    if done.returncode != 0:
        raise I2VUsageError(f"git status failed in {repo}: {done.stderr.strip()}")
    return bool(done.stdout.strip())


def check_options(options: ABOptions, default_rounds: int) -> tuple[int, float | None]:
    if options.calibrate:
        from pytest_i2v.ab_calibration import DEFAULT_CALIBRATION_ROUNDS, MIN_CALIBRATION_ROUNDS

        if options.head is not None:
            raise I2VUsageError("--calibrate runs the base against itself; drop --head (or name the revision to "
                                "calibrate with --base)")
        rounds = DEFAULT_CALIBRATION_ROUNDS if options.rounds is None else options.rounds
        if rounds < MIN_CALIBRATION_ROUNDS:
            raise I2VUsageError(f"--rounds {rounds}: a calibration needs at least {MIN_CALIBRATION_ROUNDS} A/A rounds "
                                f"(the default {DEFAULT_CALIBRATION_ROUNDS} gives {DEFAULT_CALIBRATION_ROUNDS - 1} df)")
        default_rounds = rounds
    rounds = default_rounds if options.rounds is None else options.rounds
    if rounds < 2:
        raise I2VUsageError(f"--rounds {rounds}: an A/B comparison needs at least 2 rounds (one ABBA pair); "
                            f"the default is {default_rounds}")
    if options.min_effect_pct is not None and not 0 < options.min_effect_pct < 100:
        raise I2VUsageError(f"--min-effect {options.min_effect_pct}: use a percentage between 0 and 100, e.g. 3")
    for arg in options.pytest_args:
        flag = arg.split("=", 1)[0]
        if flag in FORBIDDEN_ARGS:
            raise I2VUsageError(f"pytest arg {flag}: {FORBIDDEN_ARGS[flag]}; drop it")
    return rounds, options.min_effect_pct


class Workspace:
    """The temporary directory and the worktrees in it; ``close`` leaves nothing behind."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.path = Path(tempfile.mkdtemp(prefix="i2v-ab-"))
        self.worktrees: list[Path] = []

    def add_worktree(self, name: str, sha: str) -> Path:
        path = self.path / name
        self.worktrees.append(path)  # before git creates it: an interrupted add is cleaned up too
        done = _git(self.repo, "worktree", "add", "--detach", str(path), sha)
        if done.returncode != 0:
            raise I2VUsageError(f"git worktree add {sha[:12]} failed: {done.stderr.strip().splitlines()[-1:]}")
        return path

    def close(self) -> None:
        for path in self.worktrees:
            _git(self.repo, "worktree", "remove", "--force", str(path))
        if self.worktrees:
            _git(self.repo, "worktree", "prune")
        shutil.rmtree(self.path, ignore_errors=True)


def _side_env(root: Path, extra_paths: Sequence[Path] = (), extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This side's tree first on the import path: its pytest_i2v, its conftest helpers."""
    env = dict(os.environ)
    paths = [str(root), *(str(p) for p in extra_paths)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


def _pytest_argv(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"]


# Where pytest reads its configuration from (its rootdir/inifile rules), with the section it needs.
PYTEST_CONFIG_FILES = (("pytest.ini", ""), (".pytest.ini", ""), ("pyproject.toml", "[tool.pytest"),
                       ("tox.ini", "[pytest]"), ("setup.cfg", "[tool:pytest]"))


def has_pytest_config(root: Path, subdir: Path) -> bool:
    """Whether a pytest configuration file lies in this tree, from ``subdir`` up to its root."""
    for directory in [root / subdir, *(root / subdir).parents]:
        for name, section in PYTEST_CONFIG_FILES:
            path = directory / name
            if path.is_file() and (not section or section in path.read_text(encoding="utf-8", errors="replace")):
                return True
        if directory == root:
            break
    return False


def _config_args(root: Path, subdir: Path, tmp: Path) -> list[str]:
    """Both sides get their own tree as rootdir, so that their node ids agree. A tree without a pytest
    configuration file gets an empty one: otherwise the working tree's pytest would climb out of the
    repository to a parent directory's (another project's) while the base's worktree finds none."""
    args = ["--rootdir", str(root)]
    if not has_pytest_config(root, subdir):
        empty = tmp / "pytest-empty.ini"
        if not empty.is_file():
            empty.write_text("[pytest]\n", encoding="utf-8")
        args += ["-c", str(empty), "--confcutdir", str(root)]  # conftests still load from the tree
    return args


def _failed(run: ProcessRun, what: str, kept: str = "") -> ABProcessFailed:
    code = 4 if run.exit_code == 4 else 3  # the pytest args were bad (4), or something broke (3)
    return ABProcessFailed(f"{what}: pytest exited with {run.exit_code}; see {run.log}{kept}", code, log_tail(run.log))


class ABJob:
    """One ``ab`` invocation, from resolving the refs to the written comparison."""

    def __init__(self, options: ABOptions, runner: ProcessRunner | None = None, cwd: Path | None = None,
                 progress: Callable[[str], None] | None = None):
        self.options = options
        self.runner = runner
        self.cwd = (cwd or Path.cwd()).resolve()
        self.progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        self.runs: list[ProcessRun] = []
        self.repo = self.cwd
        self.priors: dict[str, Any] = {}  # nodeid -> metric -> gate.Noise: this machine's calibration
        self.calibration_note: str | None = None
        self.decided: dict[str, ABTestResult] = {}  # a sequential job's decided tests: they leave the later rounds
        self.decided_after: dict[str, int] = {}
        self.all_decided = False

    def _run(self, side: str, round_index: int, argv: Sequence[str], cwd: Path, env: Mapping[str, str],
             log: Path) -> ProcessRun:
        runner = self.runner or run_logged  # looked up now: a test can patch run_logged
        log.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        code = runner(argv, cwd, env, log)
        run = ProcessRun(side, round_index, code, time.perf_counter() - started, log)
        self.runs.append(run)
        return run

    def run(self) -> ABOutcome:
        from pytest_i2v import ab_stats

        rounds, min_effect_pct = check_options(self.options, ab_stats.DEFAULT_ROUNDS)
        repo = self.repo = repository_root(self.cwd)
        subdir = self.cwd.relative_to(repo.resolve())  # the user's pytest args are relative to it
        base_sha = resolve_commit(repo, self.options.base, "--base")
        dirty = has_uncommitted_changes(repo)
        if self.options.head is not None:
            head_sha = resolve_commit(repo, self.options.head, "--head")
            if dirty:
                raise I2VUsageError(f"--head {self.options.head!r} with uncommitted changes in {repo}: they would not "
                                    f"be measured; commit or stash them, or drop --head to measure the working tree")
        else:
            head_sha = resolve_commit(repo, "HEAD", "HEAD")
        out = (self.cwd / self.options.out).resolve()
        workspace = Workspace(repo)
        try:
            base = Revision("base", self.options.base, base_sha, workspace.add_worktree("base", base_sha))
            if self.options.calibrate:  # A/A: the base against itself, from the same checkout
                head = Revision("head", self.options.base, base_sha, base.root)
            elif self.options.head is not None:
                head = Revision("head", self.options.head, head_sha, workspace.add_worktree("head", head_sha))
            else:
                head = Revision("head", None, head_sha, repo, dirty=dirty)
            revisions = {"base": base, "head": head}
            for revision in revisions.values():
                if not (revision.root / subdir).is_dir():
                    raise I2VUsageError(f"{subdir} does not exist on the {revision.side} side "
                                        f"({revision.label}); run ab from a directory both have")
            selected = self._collect(revisions, subdir, workspace.path)
            min_effect = ab_stats.DEFAULT_MIN_EFFECT if min_effect_pct is None else min_effect_pct / 100  # a fraction
            self.progress(f"ab: {len(selected)} i2v tests, {rounds} rounds, base {base.label} ({base.sha[:12]}), "
                          f"head {head.label} ({head.sha[:12]})")
            (out / "logs").mkdir(parents=True, exist_ok=True)
            for name in OUTPUTS:  # an earlier job's verdict must not pass for this one's if this one stops early
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

    def _results(self, docs: Mapping[str, list[dict[str, Any]]], rounds_planned: int,
                 min_effect: float) -> list[ABTestResult]:
        """The verdicts of the rounds so far: at this look of the sequential plan, with the calibration's
        spreads, and the tests decided at earlier looks as they were decided."""
        from pytest_i2v import ab_stats
        from pytest_i2v.ab_sequential import SequentialPlan

        plan = SequentialPlan(rounds_planned, 1.0 - ab_stats.DEFAULT_CONFIDENCE) if self.sequential else None
        return ab_stats.compare_rounds(docs["base"], docs["head"], min_effect=min_effect,
                                       confidence=ab_stats.DEFAULT_CONFIDENCE, plan=plan, calibration=self.priors,
                                       decided=self.decided)

    def _compare_and_write(self, revisions: Mapping[str, Revision], docs: Mapping[str, list[dict[str, Any]]],
                           rounds_planned: int, min_effect: float, out: Path,
                           results: list[ABTestResult] | None = None) -> ABOutcome:
        """The verdicts of the rounds in ``docs`` (all of them, or those done so far), written to ``out``;
        ``results``: those verdicts, when the caller has them already."""
        from pytest_i2v import ab_stats

        if results is None:
            results = self._results(docs, rounds_planned, min_effect)
        meta = self._meta(revisions, rounds_planned, min_effect, ab_stats.DEFAULT_CONFIDENCE, docs)
        return self._write(results, meta, out)

    def _calibration_path(self, docs: Mapping[str, list[dict[str, Any]]]) -> Path | None:
        from pytest_i2v.baseline_store import baseline_path

        profile = ((docs["base"][0].get("profile") or {}) if docs["base"] else {}).get("name")
        if not profile:
            return None
        directory = self.options.baseline_dir or self.repo / "baselines"
        return baseline_path(directory if directory.is_absolute() else self.cwd / directory, str(profile))

    def _load_calibration(self, docs: Mapping[str, list[dict[str, Any]]]) -> None:
        """After round 1 (the records name the machine): this machine's calibration, if current."""
        from pytest_i2v.ab_calibration import choose
        from pytest_i2v.baseline_store import read_baseline

        records = docs["base"][0].get("records") or [] if docs["base"] else []
        path = self._calibration_path(docs)
        if not records or path is None:
            return
        calibration, self.calibration_note = choose(read_baseline(path).calibrations, records[0].get("fingerprint") or {})
        if calibration is not None:
            self.priors = calibration.priors(records)
            self.calibration_note += f" ({len(self.priors)} of {len(records)} tests, from {path.name})"
        self.progress(f"ab: {self.calibration_note}")

    def _store_calibration(self, docs: Mapping[str, list[dict[str, Any]]], commit: str) -> None:
        from pytest_i2v.ab_calibration import calibrate
        from pytest_i2v.baseline_store import store_calibration

        path = self._calibration_path(docs)
        if path is None:
            raise I2VUsageError("the A/A rounds wrote no profile name; run the calibration with --gpu-profile NAME")
        calibration = calibrate(docs["base"], docs["head"], commit,
                                datetime.now(timezone.utc).isoformat(timespec="seconds"))
        store_calibration(path, path.stem, calibration)
        spreads = sorted(float(t["time_s"]["sd"]) for t in calibration.tests.values() if t.get("time_s"))
        middle = f", median log-ratio sd {spreads[len(spreads) // 2]:.2%}" if spreads else ""
        self.calibration_note = (f"calibrated {len(calibration.tests)} tests over {calibration.rounds} A/A rounds "
                                 f"({calibration.rounds - 1} df each{middle}); stored in {path}")
        self.progress(f"ab: {self.calibration_note}")

    def _collect(self, revisions: Mapping[str, Revision], subdir: Path, tmp: Path) -> list[str]:
        """The i2v tests each side selects with the user's args; both must have the same ones."""
        plugin_dir = tmp / "collect-plugin"
        plugin_dir.mkdir()
        (plugin_dir / f"{COLLECT_PLUGIN_NAME}.py").write_text(COLLECT_PLUGIN, encoding="utf-8")
        selected: dict[str, list[str]] = {}
        for side, revision in revisions.items():
            listing = tmp / f"collect-{side}.json"
            argv = _pytest_argv([*self.options.pytest_args, *_config_args(revision.root, subdir, tmp),
                                 "--collect-only", "-q", "-p", COLLECT_PLUGIN_NAME])
            env = _side_env(revision.root, [plugin_dir], {COLLECT_ENV: str(listing)})
            run = self._run(side, -1, argv, revision.root / subdir, env, tmp / "logs" / f"{side}-collect.log")
            if run.exit_code not in (*RAN_EXIT_CODES, COLLECT_NOTHING):
                raise _failed(run, f"collecting the tests on the {side} side ({revision.label})")
            selected[side] = json.loads(listing.read_text(encoding="utf-8")) if listing.is_file() else []
        if not selected["base"] and not selected["head"]:
            raise I2VUsageError("the pytest args select no i2v test on either side; pass the tests to compare after --")
        for side, other in (("head", "base"), ("base", "head")):
            only = [n for n in selected[side] if n not in set(selected[other])]
            if only:
                more = f" (and {len(only) - 1} more)" if len(only) > 1 else ""
                raise I2VUsageError(f"test {only[0]}{more} exists on the {side} side only "
                                    f"({revisions[side].label}); deselect it after -- (e.g. "
                                    f"--deselect {only[0]}) so that both sides run the same tests")
        return selected["base"]

    def _rounds(self, revisions: Mapping[str, Revision], subdir: Path, rounds: int, min_effect: float, out: Path,
                tmp: Path) -> dict[str, list[dict[str, Any]]]:
        """Every round's results documents per side. After each complete round from
        ``PARTIAL_FROM_ROUNDS`` on, but the last (the caller writes the final files), the partial files."""
        from pytest_i2v.results import read_results

        docs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for round_index, order in enumerate(abba_order(rounds)):
            # decided tests leave the job: node ids are rootdir-relative, as --deselect reads them
            deselect = [arg for nodeid in self.decided for arg in ("--deselect", nodeid)]
            for side in order:
                revision = revisions[side]
                name = f"{side}-{round_index}"
                results = out / f"{name}.json"
                results.unlink(missing_ok=True)  # never read a stale file from an earlier job
                argv = _pytest_argv([
                    *self._process_defaults(),
                    *self.options.pytest_args,
                    *_config_args(revision.root, subdir, tmp),
                    "--i2v-json", str(results),
                    # empty, and new for each process: never the project's baselines, and an ini that
                    # records baselines cannot make a later round gate (and re-measure) against an earlier one
                    "--i2v-baseline-dir", str(tmp / f"baselines-{name}"),
                    # the ini may send these into the working tree; keep them out of the user's files
                    "--i2v-report", str(tmp / "reports" / f"{name}.html"),
                    "--i2v-markdown", str(tmp / "reports" / f"{name}.md"),
                    # the work signature once, in round 1 (exact: one profile per side decides a changed work)
                    "--i2v-signature", "on" if round_index == 0 and not self.options.calibrate else "off",
                    *deselect,
                ])
                run = self._run(side, round_index, argv, revision.root / subdir, _side_env(revision.root),
                                out / "logs" / f"{name}.log")
                kept = f"; {out / 'ab.md'} has the verdicts of the {round_index} rounds done" \
                    if round_index >= PARTIAL_FROM_ROUNDS else ""  # round_index: the complete rounds before this one
                if run.exit_code not in RAN_EXIT_CODES:
                    raise _failed(run, f"round {round_index + 1} on the {side} side ({revision.label})", kept)
                if not results.is_file():
                    raise _failed(run, f"round {round_index + 1} on the {side} side wrote no results", kept)
                self.progress(f"ab: round {round_index + 1}/{rounds} {side}: {run.wall_s:.1f} s "
                              f"(pytest exit {run.exit_code})")
                docs[side].append(read_results(results))
            if round_index == 0 and not self.options.calibrate:
                self._load_calibration(docs)
            done = round_index + 1
            if done >= rounds:
                break  # the caller writes the final files
            verdicts = self._results(docs, rounds, min_effect)
            if self.sequential:
                from pytest_i2v.ab_sequential import is_decided

                for result in verdicts:
                    if is_decided(result.overall) and result.nodeid not in self.decided:
                        self.decided[result.nodeid], self.decided_after[result.nodeid] = result, done
                        self.progress(f"ab: {result.nodeid} decided after {done} round{'s' if done > 1 else ''}: "
                                      f"{result.overall}")
                self.all_decided = bool(verdicts) and len(self.decided) == len(verdicts)
                if self.all_decided:
                    self.progress(f"ab: every test decided after {done} of at most {rounds} rounds")
                    break
            # a changed work is decided by round 1: show it now; from round 2 on, every round
            if done >= PARTIAL_FROM_ROUNDS or any(r.work is not None and not r.work.get("identical") for r in verdicts):
                self._compare_and_write(revisions, docs, rounds, min_effect, out, verdicts)
        return docs

    def _meta(self, revisions: Mapping[str, Revision], rounds_planned: int, min_effect: float, confidence: float,
              docs: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
        """``report.ab``'s meta: what was compared, how, and on what; ``rounds`` counts those in ``docs``."""
        environment = dict((docs["base"][0].get("environment") or {}) if docs["base"] else {})
        rounds = len(docs["base"])
        return {
            "base": revisions["base"].label,
            "head": revisions["head"].label,
            "base_commit": revisions["base"].sha,
            "head_commit": revisions["head"].sha,
            "rounds": rounds,
            "rounds_planned": rounds_planned,
            "order": " ".join("".join("A" if side == "base" else "B" for side in pair) for pair in abba_order(rounds)),
            "min_effect": min_effect,
            "confidence": confidence,
            "machine": {"name": machine_name(environment), "host": platform.node(), "environment": environment},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "pytest_args": list(self.options.pytest_args),
            "conditions": unstable_conditions(docs),
            "design": "sequential" if self.sequential else "fixed",
            "all_decided": self.all_decided,
            "decided_after": dict(self.decided_after),
            "calibration": self.calibration_note,
        }

    def _write(self, results: list[ABTestResult], meta: dict[str, Any], out: Path) -> ABOutcome:
        from pytest_i2v.report.ab import ab_document, render_ab_html, render_ab_markdown

        markdown = render_ab_markdown(results, meta)
        document = ab_document(results, meta)
        # every process of the job, in the order they ran: the files behind the verdicts
        document["runs"] = [{"side": r.side, "round": r.round, "exit_code": r.exit_code, "wall_s": round(r.wall_s, 3),
                             "log": f"logs/{r.log.name}",
                             "results": f"{r.side}-{r.round}.json" if r.round >= 0 else None} for r in self.runs]
        write_text_atomic(out / "ab.json", json.dumps(document, indent=2) + "\n")
        write_text_atomic(out / "ab.md", markdown)
        write_text_atomic(out / "ab.html", render_ab_html(results, meta))
        regressed = any(r.overall == "regressed" for r in results)
        return ABOutcome(markdown, 1 if regressed else 0, results, meta, list(self.runs))


def run_ab(options: ABOptions, runner: ProcessRunner | None = None, cwd: Path | None = None) -> ABOutcome:
    return ABJob(options, runner, cwd).run()
