"""The gate's fresh-process re-measurement: what the child is given, what comes back, and the
fallback when it measures nothing (the end-to-end proof is tests/test_gate_loop.py's slow-process
test)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.session import fresh_process
from pytest_i2v.session.fresh_process import (
    ChildProcess,
    FreshProcessFailed,
    child_args,
    pick_record,
)
from tests.test_unreliable import SLOW_MIDDLE, baseline_dir, gate_loop, record  # noqa: F401  (a fixture)


def test_the_child_keeps_the_measurement_options_and_drops_what_writes_or_spreads() -> None:
    parent = [
        "suites/",
        "--gpu-profile",
        "cpu",
        "--i2v-repeats",
        "5",
        "-p",
        "pytest_i2v.simulated_plugin",
        "--i2v-json",
        "out/r.json",
        "--i2v-report=out/r.html",
        "--junitxml",
        "j.xml",
        "-n",
        "2",
        "-n3",
        "--basetemp",
        "/tmp/bt",
        "--i2v-update-baselines",
        "reset",
        "--benchmark-json",
        "b.json",
        "--benchmark-autosave",
        "--i2v-confirm",
        "2",
        "suites/test_study.py",
        "-k",
        "256p",
    ]
    args = child_args(
        parent,
        ["suites/", "suites/test_study.py"],
        "/repo/suites/test_study.py::test_x[256p]",
        Path("/tmp/rec.json"),
        "cuda:1",
    )
    assert args[:8] == [
        "--gpu-profile",
        "cpu",
        "--i2v-repeats",
        "5",
        "-p",
        "pytest_i2v.simulated_plugin",
        "-k",
        "256p",
    ]
    assert args[8:] == [
        "/repo/suites/test_study.py::test_x[256p]",
        "-p",
        "no:cacheprovider",
        "--i2v-remeasure-into",
        "/tmp/rec.json",
        "--i2v-gate-mode",
        "report",
        "--i2v-confirm",
        "0",
        "--i2v-signature",
        "off",
        "--i2v-device",
        "cuda:1",
        "-o",
        "i2v_lock_clocks=false",
    ]
    # the bare update flag drops alone; the next option is kept
    assert child_args(["--i2v-update-baselines", "--i2v-warmup", "2"], [], "t", Path("r"), "cpu")[
        :2
    ] == ["--i2v-warmup", "2"]


def test_the_record_of_this_generation_is_picked() -> None:
    records = [
        GenerationRecord.from_partial(data)
        for data in (
            {"nodeid": "a", "config_id": "c1", "outcome": "ok", "time_s": 1.0},
            {"nodeid": "a", "config_id": "c2", "outcome": "ok", "time_s": 2.0},
            {"nodeid": "a", "config_id": "c3", "outcome": "oom"},
        )
    ]
    picked = pick_record(records, "a", "c2")
    assert picked is not None and picked.time_s == 2.0
    assert pick_record(records, "a", "c3") is None and pick_record(records, "b", "c1") is None


def test_a_child_that_measured_nothing_falls_back_to_this_process_and_says_so(
    baseline_dir: Path,  # noqa: F811
) -> None:
    loop = gate_loop(baseline_dir)
    slow = record(list(SLOW_MIDDLE))
    measured: list[None] = []
    asked: list[tuple[str, str | None]] = []

    def measure() -> GenerationRecord:
        measured.append(None)
        return slow

    def fresh(nodeid: str, config_id: str | None) -> GenerationRecord:
        asked.append((nodeid, config_id))
        raise FreshProcessFailed("exit 4, no measured record for t: ERROR: usage")

    decided = loop.run(measure, {}, fresh=fresh)
    assert asked == [(slow.nodeid, slow.config_id)] and len(measured) == 2
    assert decided.measurements == 2
    assert decided.notes[-1].startswith(
        "re-measured (1/1, in this process, since the fresh one failed "
        "(exit 4, no measured record for t: ERROR: usage)) after a regressed verdict"
    )

    def fresh_and_fast(nodeid: str, config_id: str | None) -> GenerationRecord:
        return record([1.0] * 5)

    measured.clear()
    rejected = loop.run(measure, {}, fresh=fresh_and_fast)
    assert len(measured) == 1 and rejected.notes[-1].endswith(
        "in a fresh process) after a regressed verdict "
        f"with median {slow.time_s:.4g} s: not confirmed"
    )
    assert rejected.decision is not None and rejected.decision.kind == "passed"


def test_the_child_never_locks_or_restores_the_clocks_the_parent_holds(
    monkeypatch: Any, tmp_path: Path
) -> None:
    """D6: a child that inherited --i2v-lock-clocks restored the clocks at its exit, so the parent's
    later tests ran unlocked while labelled locked. The flag is dropped, an ini key is overridden,
    and the parent's lock reaches the child as a label only."""
    args = child_args(["--i2v-lock-clocks", "--i2v-warmup", "2"], [], "t", Path("r"), "cuda:0")
    assert "--i2v-lock-clocks" not in args and args[:2] == ["--i2v-warmup", "2"]
    assert args[args.index("-o") + 1] == "i2v_lock_clocks=false"
    seen: dict[str, Any] = {}

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.update(kwargs["env"])
        return subprocess.CompletedProcess(command, 1, "", "")

    monkeypatch.setattr(fresh_process.subprocess, "run", run)
    with pytest.raises(FreshProcessFailed):
        fresh_process.remeasure(
            ChildProcess(["--i2v-lock-clocks"], [], tmp_path, "t", "cuda:0"),
            "t",
            None,
            environment={"PATH": "/bin"},
            held_clocks="1590,2619",
        )
    assert seen[fresh_process.HELD_CLOCKS_ENV] == "1590,2619"
    seen.clear()
    with pytest.raises(FreshProcessFailed):  # nothing held: nothing claimed
        fresh_process.remeasure(
            ChildProcess([], [], tmp_path, "t", "cuda:0"),
            "t",
            None,
            environment={"PATH": "/bin", fresh_process.HELD_CLOCKS_ENV: "stale"},
        )
    assert fresh_process.HELD_CLOCKS_ENV not in seen
