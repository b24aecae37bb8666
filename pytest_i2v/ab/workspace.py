"""The two sides' code in git: the refs resolved to commits, and the temporary directory with a
worktree per side that ``Workspace.close`` removes again."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pytest_i2v.errors import I2VUsageError

TEMP_PREFIX = (
    "i2v-ab-"  # the job's temporary directory (its worktrees), under the system's temp dir
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
        """The revision as the user named it; the working tree says whether it has uncommitted
        changes."""
        if self.ref is not None:
            return self.ref
        return "working tree" + (" (uncommitted changes included)" if self.dirty else "")


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
            last_line = done.stderr.strip().splitlines()[-1:]
            raise I2VUsageError(f"git worktree add {sha[:12]} failed: {last_line}")
        return path

    def close(self) -> None:
        for path in self.worktrees:
            _git(self.repo, "worktree", "remove", "--force", str(path))
        if self.worktrees:
            _git(self.repo, "worktree", "prune")
        shutil.rmtree(self.path, ignore_errors=True)
