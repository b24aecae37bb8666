"""The gate's confirmation in a fresh process. Timing noise between processes is heavy-tailed (one
process in several runs 30-40 % slow throughout), and a re-measurement in the flagged process shares
that process's slow state: only a new process can reject it. The child is pytest again, on the one
test, with the parent's options; it measures, writes its records to a file and nothing else (no
report, no baseline, no re-measurement of its own), and the parent judges what it measured.

Pure: no pytest, no torch (the child is a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.document import read_records
from pytest_i2v.record.record import GenerationRecord

REMEASURE_INTO = "--i2v-remeasure-into"
# The clocks the parent holds locked, for the child's label (``LockedClocks.encoded``): the child
# must not lock them itself, since its restore at exit would unlock the parent's later tests.
HELD_CLOCKS_ENV = "PYTEST_I2V_HELD_CLOCKS"
# Options the child must not inherit, with whether each takes a value: what writes files (the parent
# writes them), what spreads the one test over workers, what selects by the cache, what the child
# is given anew, and pytest's basetemp (a shared one would be wiped by the child).
DROPPED: Mapping[str, bool] = {
    "--junitxml": True,
    "--junit-xml": True,
    "--basetemp": True,
    "--benchmark-json": True,
    "--benchmark-save": True,
    "--benchmark-autosave": False,
    "--benchmark-histogram": False,
    "--html": True,
    "--cov": False,
    "--cov-report": True,
    "-n": True,
    "--numprocesses": True,
    "--dist": True,
    "--maxprocesses": True,
    "--pdb": False,
    "--lf": False,
    "--last-failed": False,
    "--ff": False,
    "--failed-first": False,
    "--sw": False,
    "--stepwise": False,
    "--i2v-json": True,
    "--i2v-report": True,
    "--i2v-markdown": True,
    "--i2v-confirm": True,
    "--i2v-gate-mode": True,
    "--i2v-confirm-in": True,
    "--i2v-signature": True,
    "--i2v-device": True,
    REMEASURE_INTO: True,
    "--i2v-update-baselines": False,
    "--i2v-lock-clocks": False,
}
OPTIONAL_VALUES: Mapping[str, tuple[str, ...]] = {"--i2v-update-baselines": ("append", "reset")}
XDIST_ENVIRONMENT = (
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTEST_CURRENT_TEST",
)


class FreshProcessFailed(Exception):
    """The child measured nothing for the test: its exit status and last line say why."""


@dataclass(frozen=True)
class ChildProcess:
    """How the child is started: the parent's arguments (``invocation_params.args``) and test
    paths (``config.args``), the directory it was started in, the one test to run and the device
    to measure on."""

    invocation: Sequence[str]
    positional: Sequence[str]
    cwd: Path
    target: str
    device: str


def child_args(
    invocation: Sequence[str],
    positional: Sequence[str],
    target: str,
    records_path: Path,
    device: str,
) -> list[str]:
    """The parent's arguments without its test paths and ``DROPPED``, then the one test and the
    child's own."""
    args: list[str] = []
    skip_value = False
    paths = set(positional)
    for index, arg in enumerate(invocation):
        if skip_value:
            skip_value = False
            continue
        name = arg.split("=", 1)[0]
        short = arg[:2] if arg.startswith("-") and not arg.startswith("--") else None
        if name in DROPPED or short in DROPPED:
            takes_value = DROPPED.get(name, DROPPED.get(short or "", False))
            attached = "=" in arg or (short is not None and len(arg) > 2)
            following = invocation[index + 1] if index + 1 < len(invocation) else None
            optional = OPTIONAL_VALUES.get(name, ())
            skip_value = (takes_value and not attached) or (
                following is not None and following in optional
            )
            continue
        if arg in paths:
            continue
        args.append(arg)
    return [
        *args,
        target,
        "-p",
        "no:cacheprovider",
        REMEASURE_INTO,
        str(records_path),
        "--i2v-gate-mode",
        "report",
        "--i2v-confirm",
        "0",
        "--i2v-signature",
        "off",
        "--i2v-device",
        device,
        "-o",
        "i2v_lock_clocks=false",
    ]  # an ini key would lock them too


def remeasure(
    child: ChildProcess,
    nodeid: str,
    config_id: str | None,
    environment: Mapping[str, str] | None = None,
    held_clocks: str | None = None,
) -> GenerationRecord:
    """Run the test in a new pytest process and return its record of this generation
    (``config_id``); ``held_clocks``: the clocks this process holds locked, encoded, which the
    child labels and leaves alone."""
    env = {
        k: v
        for k, v in (environment if environment is not None else os.environ).items()
        if k not in XDIST_ENVIRONMENT and k != HELD_CLOCKS_ENV
    }
    if held_clocks is not None:
        env[HELD_CLOCKS_ENV] = held_clocks
    with tempfile.TemporaryDirectory(prefix="pytest-i2v-fresh-") as scratch:
        records_path = Path(scratch) / "records.json"
        command = [
            sys.executable,
            "-m",
            "pytest",
            *child_args(
                child.invocation, child.positional, child.target, records_path, child.device
            ),
        ]
        completed = subprocess.run(
            command, cwd=child.cwd, env=env, capture_output=True, text=True, check=False
        )
        records = _child_records(records_path)
    found = pick_record(records, nodeid, config_id)
    if found is None:
        lines = [
            line for line in (completed.stdout + completed.stderr).splitlines() if line.strip()
        ]
        last = lines[-1].strip() if lines else "no output"
        raise FreshProcessFailed(
            f"exit {completed.returncode}, no measured record for {nodeid}: {last}"
        )
    return found


def _child_records(path: Path) -> list[GenerationRecord]:
    """The records the child wrote; none where it wrote nothing readable (it failed: the caller
    says so with the child's last line)."""
    try:
        return read_records(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (OSError, ValueError, I2VUsageError):
        return []


def pick_record(
    records: Sequence[GenerationRecord], nodeid: str, config_id: str | None
) -> GenerationRecord | None:
    """The child's measured record of this test and generation (a test may measure several)."""
    for record in records:
        if record.nodeid == nodeid and record.config_id == config_id and record.outcome == "ok":
            return record
    return None
