"""The A/B job's fresh pytest processes: their command line, environment and pytest configuration,
the runner that logs their output, and the error a failed one raises."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_LINES = 25
# pytest's exit codes that still mean "the tests ran": 0 all passed, 1 some failed
RAN_EXIT_CODES = (0, 1)
# What each A/B process measures unless the user's pytest args say otherwise (theirs come later
# and win): between-process noise dominates (benchmarks/ab_power.py: at 2 % between and 1 % within,
# 1 repeat costs 68 GPU minutes per unchanged PR job for the same power that 3 repeats buy for 86),
# so one repeat after the warm-up, and fast mode (per-step time measured, the total predicted;
# refused by the plugin where a test offloads), unless --full-runs.
PROCESS_REPEATS = ("--i2v-repeats", "1")
PROCESS_FAST = "--i2v-fast"
# Where pytest reads its configuration from (its rootdir/inifile rules), with the section it needs.
PYTEST_CONFIG_FILES = (
    ("pytest.ini", ""),
    (".pytest.ini", ""),
    ("pyproject.toml", "[tool.pytest"),
    ("tox.ini", "[pytest]"),
    ("setup.cfg", "[tool:pytest]"),
)

# One pytest process: argv, working directory, environment, log file -> exit code.
ProcessRunner = Callable[[Sequence[str], Path, Mapping[str, str], Path], int]


@dataclass(frozen=True)
class ProcessRun:
    side: str
    round: int  # -1: the collection pass
    exit_code: int
    wall_s: float
    log: Path


class ABProcessFailed(Exception):
    """A pytest process that did not get to run the tests (exit code other than 0 or 1)."""

    def __init__(self, message: str, exit_code: int, log_tail: str):
        super().__init__(message)
        self.exit_code = exit_code
        self.log_tail = log_tail


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


def process_failed(run: ProcessRun, what: str, kept: str = "") -> ABProcessFailed:
    code = 4 if run.exit_code == 4 else 3  # the pytest args were bad (4), or something broke (3)
    message = f"{what}: pytest exited with {run.exit_code}; see {run.log}{kept}"
    return ABProcessFailed(message, code, log_tail(run.log))


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
    """Both sides get their own tree as rootdir, so that their node ids agree. A tree without a
    pytest configuration file gets an empty one: otherwise the working tree's pytest would climb
    out of the repository to a parent directory's (another project's) while the base's worktree
    finds none."""
    args = ["--rootdir", str(root)]
    if not has_pytest_config(root, subdir):
        empty = tmp / "pytest-empty.ini"
        if not empty.is_file():
            empty.write_text("[pytest]\n", encoding="utf-8")
        args += ["-c", str(empty), "--confcutdir", str(root)]  # conftests still load from the tree
    return args
