"""The A/B job's parts: its options and outcome, the git worktrees of the two sides, the fresh pytest
processes with their logs, and the collection pass that lists the i2v tests."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_i2v.errors import I2VUsageError

if TYPE_CHECKING:  # the statistics import scipy: only when the rounds are done
    from pytest_i2v.ab.paired import ABTestResult

SIDES = ("base", "head")
DEFAULT_OUT = "i2v-ab"
LOG_TAIL_LINES = 25
TEMP_PREFIX = (
    "i2v-ab-"  # the job's temporary directory (its worktrees), under the system's temp dir
)
OUTPUTS = (
    "ab.json",
    "ab.md",
    "ab.html",
)  # the comparison, rewritten after each round from the second on
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
    sequential: bool = (
        True  # each test leaves once decided (ab_sequential); False: every test runs every round
    )
    full_runs: bool = False  # False: each process measures in fast mode (PROCESS_DEFAULTS); True: full generations
    calibrate: bool = (
        False  # base against itself: store each test's spread (ab_calibration), compare nothing
    )
    baseline_dir: Path | None = (
        None  # where the calibration is read and written (None: <repository>/baselines)
    )


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
    name = str(
        environment.get("cpu_model") or platform.processor() or platform.machine() or "unknown CPU"
    )
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
                    lines.append(
                        f"{side} round {round_index + 1}: {record.get('nodeid')}: {summary}"
                    )
    return lines


def abba_order(rounds: int) -> list[tuple[str, str]]:
    """(base, head) on even rounds, (head, base) on odd ones: a drift across the job hits both sides alike."""
    return [SIDES if r % 2 == 0 else (SIDES[1], SIDES[0]) for r in range(rounds)]


def run_logged(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> int:
    """The real process runner: stdout and stderr together into the log file."""
    with log.open("w", encoding="utf-8") as handle:
        return subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        ).returncode


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
        raise I2VUsageError(
            f"{cwd} is not inside a git repository; run ab from the repository to compare"
        )
    return Path(done.stdout.strip())


def resolve_commit(repo: Path, ref: str, flag: str) -> str:
    done = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if done.returncode != 0 or not done.stdout.strip():
        raise I2VUsageError(
            f"{flag} {ref!r} is not a commit in {repo}; use a branch, tag or SHA "
            f"(fetch it first in a shallow clone: git fetch origin {ref})"
        )
    return done.stdout.strip()


def has_uncommitted_changes(repo: Path) -> bool:
    """Changes to tracked files, staged or not; untracked files are not the code under test."""
    done = _git(repo, "status", "--porcelain", "--untracked-files=no")
    if done.returncode != 0:
        raise I2VUsageError(f"git status failed in {repo}: {done.stderr.strip()}")
    return bool(done.stdout.strip())


def check_options(options: ABOptions, default_rounds: int) -> tuple[int, float | None]:
    if options.calibrate:
        from pytest_i2v.verdict.ab_calibration import (
            DEFAULT_CALIBRATION_ROUNDS,
            MIN_CALIBRATION_ROUNDS,
        )

        if options.head is not None:
            raise I2VUsageError(
                "--calibrate runs the base against itself; drop --head (or name the revision to "
                "calibrate with --base)"
            )
        rounds = DEFAULT_CALIBRATION_ROUNDS if options.rounds is None else options.rounds
        if rounds < MIN_CALIBRATION_ROUNDS:
            raise I2VUsageError(
                f"--rounds {rounds}: a calibration needs at least {MIN_CALIBRATION_ROUNDS} A/A rounds "
                f"(the default {DEFAULT_CALIBRATION_ROUNDS} gives {DEFAULT_CALIBRATION_ROUNDS - 1} df)"
            )
        default_rounds = rounds
    rounds = default_rounds if options.rounds is None else options.rounds
    if rounds < 2:
        raise I2VUsageError(
            f"--rounds {rounds}: an A/B comparison needs at least 2 rounds (one ABBA pair); "
            f"the default is {default_rounds}"
        )
    if options.min_effect_pct is not None and not 0 < options.min_effect_pct < 100:
        raise I2VUsageError(
            f"--min-effect {options.min_effect_pct}: use a percentage between 0 and 100, e.g. 3"
        )
    for arg in options.pytest_args:
        flag = arg.split("=", 1)[0]
        if flag in FORBIDDEN_ARGS:
            raise I2VUsageError(f"pytest arg {flag}: {FORBIDDEN_ARGS[flag]}; drop it")
    return rounds, options.min_effect_pct


class Workspace:
    """The temporary directory and the worktrees in it; ``close`` leaves nothing behind."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        self.worktrees: list[Path] = []

    def add_worktree(self, name: str, sha: str) -> Path:
        path = self.path / name
        self.worktrees.append(path)  # before git creates it: an interrupted add is cleaned up too
        done = _git(self.repo, "worktree", "add", "--detach", str(path), sha)
        if done.returncode != 0:
            raise I2VUsageError(
                f"git worktree add {sha[:12]} failed: {done.stderr.strip().splitlines()[-1:]}"
            )
        return path

    def close(self) -> None:
        for path in self.worktrees:
            _git(self.repo, "worktree", "remove", "--force", str(path))
        if self.worktrees:
            _git(self.repo, "worktree", "prune")
        shutil.rmtree(self.path, ignore_errors=True)


def side_env(
    root: Path, extra_paths: Sequence[Path] = (), extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This side's tree first on the import path: its pytest_i2v, its conftest helpers."""
    env = dict(os.environ)
    paths = [str(root), *(str(p) for p in extra_paths)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


def pytest_argv(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"]


# Where pytest reads its configuration from (its rootdir/inifile rules), with the section it needs.
PYTEST_CONFIG_FILES = (
    ("pytest.ini", ""),
    (".pytest.ini", ""),
    ("pyproject.toml", "[tool.pytest"),
    ("tox.ini", "[pytest]"),
    ("setup.cfg", "[tool:pytest]"),
)


def has_pytest_config(root: Path, subdir: Path) -> bool:
    """Whether a pytest configuration file lies in this tree, from ``subdir`` up to its root."""
    for directory in [root / subdir, *(root / subdir).parents]:
        for name, section in PYTEST_CONFIG_FILES:
            path = directory / name
            if path.is_file() and (
                not section or section in path.read_text(encoding="utf-8", errors="replace")
            ):
                return True
        if directory == root:
            break
    return False


def config_args(root: Path, subdir: Path, tmp: Path) -> list[str]:
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


def process_failed(run: ProcessRun, what: str, kept: str = "") -> ABProcessFailed:
    code = 4 if run.exit_code == 4 else 3  # the pytest args were bad (4), or something broke (3)
    return ABProcessFailed(
        f"{what}: pytest exited with {run.exit_code}; see {run.log}{kept}", code, log_tail(run.log)
    )
