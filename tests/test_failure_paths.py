"""Failure paths that lose nothing: an unwritable baselines directory is found before measuring
(exit 4, one line), a baseline write that fails at the end keeps the results, and runs whose
timings are doubtful are not recorded unless forced, with a line that says so."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import VIRTUAL_TIME_ARGS

TEST = """
import pytest

@pytest.mark.i2v(resolution="256p", frames=2, steps=10)
def test_a(i2v_run):
    assert i2v_run().outcome == "ok"
"""
# i2v_project's ini forces doubtful runs into the baseline: the rule under test here needs it off.
ARGS = (
    "--i2v-baseline-dir",
    "bl",
    "--i2v-json",
    "r.json",
    "-p",
    "no:randomly",
    "-o",
    "i2v_force_baselines=false",
)


def _unwritable_line(directory: Path, reason: str) -> str:
    return (
        f"ERROR: --i2v-update-baselines: cannot write the baselines directory {directory} "
        f"({reason}); make it writable or pass --i2v-baseline-dir DIR (nothing was measured)"
    )


def _can_mount_read_only() -> bool:
    probe = (
        subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
        if shutil.which("unshare")
        else None
    )
    return probe is not None and probe.returncode == 0


@pytest.mark.skipif(
    not _can_mount_read_only(),
    reason="needs unshare -m (root) for a read-only bind mount; "
    "test_a_baselines_path_under_a_file_is_refused covers the check",
)
def test_a_read_only_baselines_directory_is_refused_before_measuring(
    i2v_project: pytest.Pytester,
) -> None:
    """The issue's case: a read-only file system under --i2v-update-baselines. Before: an 85-line
    traceback after the whole run, exit 1, no results.json. Now: one line, exit 4, nothing
    written."""
    i2v_project.makepyfile(TEST)
    baselines = i2v_project.path / "bl"
    baselines.mkdir()
    (baselines / "cpu.yaml").write_text("keep: me\n")
    pytest_cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-n",
        "0",
        *ARGS,
        "--i2v-update-baselines",
    ]
    script = (
        f'mount --bind "{baselines}" "{baselines}" && '
        f'mount -o remount,bind,ro "{baselines}" "{baselines}" && exec "$@"'
    )
    completed = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", *pytest_cmd],
        cwd=i2v_project.path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 4, completed.stdout + completed.stderr
    assert [line for line in completed.stderr.splitlines() if line] == [
        _unwritable_line(baselines, f"{baselines}: Read-only file system")
    ]
    assert not (i2v_project.path / "r.json").exists()
    assert (baselines / "cpu.yaml").read_text() == "keep: me\n"


def test_a_baselines_path_under_a_file_is_refused(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(TEST)
    (i2v_project.path / "taken").write_text("a file, not a folder\n")
    result = i2v_project.runpytest(
        "--i2v-baseline-dir", "taken/bl", "--i2v-json", "r.json", "--i2v-update-baselines"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    taken = i2v_project.path / "taken"
    assert [line for line in result.errlines if line] == [
        _unwritable_line(taken / "bl", f"{taken}: Not a directory")
    ]
    assert not (i2v_project.path / "r.json").exists()


def test_a_baseline_write_that_fails_at_the_end_keeps_the_results(
    i2v_project: pytest.Pytester, virtual_time: tuple[str, ...]
) -> None:
    """The directory was writable when checked and is gone by the end (another job replaced it with
    a file): the results are written first, the baseline failure is one line, the run stays
    green. On the virtual clock: a loaded machine's probe moving between start and end would make
    the run "not recorded, timings doubtful" before the write is even tried."""
    i2v_project.makepyfile(
        TEST
        + """

def test_z_replaces_the_baselines_folder():
    import shutil
    shutil.rmtree("bl", ignore_errors=True)
    open("bl", "w").close()
"""
    )
    (i2v_project.path / "bl").mkdir()
    result = i2v_project.runpytest(*ARGS, *virtual_time, "--i2v-update-baselines")
    result.assert_outcomes(passed=2)
    records = json.loads((i2v_project.path / "r.json").read_text())["records"]
    assert [r["nodeid"] for r in records] == [
        "test_a_baseline_write_that_fails_at_the_end_keeps_the_results.py::test_a"
    ]
    lines = [line for line in result.outlines if line.startswith("i2v baselines")]
    assert len(lines) == 1 and lines[0].startswith(
        f"i2v baselines NOT written: {i2v_project.path / 'bl' / 'cpu.yaml'}: "
    )
    assert lines[0].endswith("; the results files above hold this run's measurements")
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.fixture
def recorded(i2v_project: pytest.Pytester, virtual_time: tuple[str, ...]) -> pytest.Pytester:
    """A baseline of test_a recorded on the virtual clock at machine speed 1 (its run stores the
    probe)."""
    i2v_project.makepyfile(TEST)
    result = i2v_project.runpytest(*ARGS, *virtual_time, "--i2v-update-baselines")
    result.assert_outcomes(passed=1)
    assert _runs(i2v_project) == 1
    return i2v_project


def _runs(pytester: pytest.Pytester) -> int:
    stored = yaml.safe_load((pytester.path / "bl" / "cpu.yaml").read_text())
    return sum(
        len(segment["runs"])
        for entry in stored["entries"].values()
        for segment in entry["segments"]
    )


LEFT_OUT = (
    "i2v baselines: 1 run(s) not recorded, their timings are doubtful ({why}); "
    "rerun on a quiet machine, start this machine's history afresh with "
    "--i2v-update-baselines=reset if its speed changed for good, "
    "or pass --i2v-force-baselines to record them anyway"
)


def test_a_run_at_another_machine_speed_is_not_recorded_unless_forced(
    recorded: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A neighbour's load: the probe reads 0.40x the baseline machine's speed and the test takes
    2.5x as long. Appending it would poison the baseline (the next quiet run reads
    "improved -60 %")."""
    monkeypatch.setenv("PYTEST_I2V_VIRTUAL_TIME", '{"machine_speed": 0.4}')
    result = recorded.runpytest(*ARGS, *VIRTUAL_TIME_ARGS, "--i2v-update-baselines")
    result.assert_outcomes(passed=1)
    why = (
        "this machine ran the probe at 0.40x the baseline machine's speed "
        "(matrix products 0.40x, memory bandwidth 0.40x, "
        "tiny ops (launch and host overhead) 0.40x): timings not comparable; memory still judged"
    )
    nodeid = next(line for line in result.outlines if line.startswith("  not recorded: ")).split(
        ": ", 1
    )[1]
    assert nodeid.endswith("::test_a")
    assert LEFT_OUT.format(why=why) in result.outlines
    # the closing line and the results document count what was written, not what was attempted
    headline = (
        "baselines recorded (0 of 1 runs: 1 left out, timings doubtful); the gate was not applied"
    )
    assert result.outlines[-2] == f"i2v: {headline}", result.outlines[-3:]
    document = json.loads((recorded.path / "r.json").read_text())
    assert document["gate"]["headline"] == headline
    assert _runs(recorded) == 1
    assert (recorded.path / "r.json").is_file()  # the run's measurements are kept either way

    # reset: the machine changed for good, its history starts afresh at the new speed
    result = recorded.runpytest(*ARGS, *VIRTUAL_TIME_ARGS, "--i2v-update-baselines=reset")
    result.stdout.fnmatch_lines(["i2v baselines written: *cpu.yaml: 1 run(s) recorded*"])
    assert _runs(recorded) == 1 and "not recorded" not in result.stdout.str()

    monkeypatch.setenv("PYTEST_I2V_VIRTUAL_TIME", "1")
    result = recorded.runpytest(
        *ARGS, *VIRTUAL_TIME_ARGS, "--i2v-update-baselines", "--i2v-force-baselines"
    )
    result.stdout.fnmatch_lines(["i2v baselines written: *cpu.yaml: 1 run(s) recorded*"])
    assert _runs(recorded) == 2


def test_a_run_whose_machine_slowed_during_the_session_is_not_recorded(
    recorded: pytest.Pytester,
) -> None:
    """The probe at the end reads half the speed of the probe at the start: a neighbour arrived."""
    recorded.makepyfile(
        TEST
        + """

def test_z_a_neighbour_arrives():
    from pytest_i2v.simulated_plugin import RUNTIME
    RUNTIME.last_opened.time.speed = 0.5
"""
    )
    result = recorded.runpytest(*ARGS, *VIRTUAL_TIME_ARGS, "--i2v-update-baselines")
    result.assert_outcomes(passed=2)
    why = (
        "the machine's speed moved during the run (end against start: matrix products 0.50x, "
        "memory bandwidth 0.50x, tiny ops (launch and host overhead) 0.50x): "
        "a neighbour or throttling; this run's timings are unreliable"
    )
    assert LEFT_OUT.format(why=why) in result.outlines
    # the closing line and the results document count what was written, not what was attempted
    headline = (
        "baselines recorded (0 of 1 runs: 1 left out, timings doubtful); the gate was not applied"
    )
    moved = "; also unreliable: the machine's speed moved during the run"
    assert result.outlines[-2].startswith(f"i2v: {headline}{moved}"), result.outlines[-3:]
    document = json.loads((recorded.path / "r.json").read_text())
    assert document["gate"]["headline"].startswith(f"{headline}{moved}")
    assert _runs(recorded) == 1
