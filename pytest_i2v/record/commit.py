"""Which commit a run measured: ``$GITHUB_SHA`` in Actions, else git's HEAD, else None. Read by
the baselines (``session.gate_loop``) and the history (``--i2v-history``, ``history add``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git_commit(root: Path) -> str | None:
    """The commit being measured: $GITHUB_SHA in Actions, else git's HEAD, else None."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"][:12]
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None
