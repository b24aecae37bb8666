"""``--i2v-lock-clocks``: the NVML lock and its restore (a stand-in module), the one-line warnings
where it cannot lock, the restore after a failing test and after Ctrl-C (a pytester run on the
simulated device), and the lock in the record and in the fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from pytest_i2v.measure import clocks
from pytest_i2v.measure.clocks import ClockLockWarning, LockedClocks, NvmlClocks, lock_clocks
from pytest_i2v.measure.device import CpuDevice
from pytest_i2v.measure.simulated import SimulatedRuntime
from pytest_i2v.measure.simulated_gpu import SimulatedGpu
from pytest_i2v.session.settings import Settings, resolve_settings
from pytest_i2v.verdict.fingerprint import GPU_CLOCKS_KEY, fingerprint_for, software_changes


class NVMLError_NoPermission(Exception):  # pynvml's name
    pass


class NVMLError_NotSupported(Exception):
    pass


class LockingNvml:
    """The pynvml lock calls, recorded; ``refuse`` makes the SM lock fail, ``memory`` says whether
    the board can lock its memory clock, ``reset_fails`` makes the reset fail."""

    def __init__(
        self, refuse: type[Exception] | None = None, memory: bool = True, reset_fails: bool = False
    ):
        self.refuse = refuse
        self.memory = memory
        self.reset_fails = reset_fails
        self.calls: list[tuple[Any, ...]] = []

    def nvmlDeviceGetDefaultApplicationsClock(self, handle: Any, clock_type: int) -> int:
        return {clocks.NVML_CLOCK_GRAPHICS: 1755, clocks.NVML_CLOCK_MEM: 2619}[clock_type]

    def nvmlDeviceSetGpuLockedClocks(self, handle: Any, low: int, high: int) -> None:
        if self.refuse is not None:
            raise self.refuse("Insufficient Permissions")
        self.calls.append(("lock sm", handle, low, high))

    def nvmlDeviceSetMemoryLockedClocks(self, handle: Any, low: int, high: int) -> None:
        if not self.memory:
            raise NVMLError_NotSupported("Not Supported")
        self.calls.append(("lock mem", handle, low, high))

    def nvmlDeviceResetGpuLockedClocks(self, handle: Any) -> None:
        if self.reset_fails:
            raise NVMLError_NoPermission("Insufficient Permissions")
        self.calls.append(("reset sm", handle))

    def nvmlDeviceResetMemoryLockedClocks(self, handle: Any) -> None:
        self.calls.append(("reset mem", handle))


# -- measure.clocks with a stand-in NVML ---------------------------------------------------------
def test_the_lock_holds_the_default_applications_clocks_and_restore_resets_them() -> None:
    nvml = LockingNvml()
    control = NvmlClocks(nvml, "gpu0")
    locked = control.lock()
    assert locked == LockedClocks(1755.0, 2619.0) and control.locked == locked
    assert locked.label == "locked 1755 MHz, memory 2619 MHz"
    assert nvml.calls == [("lock sm", "gpu0", 1755, 1755), ("lock mem", "gpu0", 2619, 2619)]
    control.restore()
    assert (
        nvml.calls[2:] == [("reset sm", "gpu0"), ("reset mem", "gpu0")] and control.locked is None
    )
    control.restore()  # the second call (a cleanup run twice) has nothing left to restore
    assert len(nvml.calls) == 4


def test_a_board_without_memory_locking_keeps_the_sm_lock() -> None:
    nvml = LockingNvml(memory=False)
    control = NvmlClocks(nvml, "gpu0")
    assert control.lock() == LockedClocks(1755.0, None)
    assert control.locked is not None and control.locked.label == "locked 1755 MHz"
    control.restore()
    assert nvml.calls == [
        ("lock sm", "gpu0", 1755, 1755),
        ("reset sm", "gpu0"),
    ]  # no memory reset to do


def test_a_failed_restore_is_one_warning_with_the_command() -> None:
    control = NvmlClocks(LockingNvml(memory=False, reset_fails=True), "gpu0", "cuda:0")
    control.lock()
    with pytest.warns(ClockLockWarning) as caught:
        control.restore()
    assert [str(w.message) for w in caught] == [
        "pytest-i2v: --i2v-lock-clocks: could not restore the clocks of cuda:0 "
        "(NVMLError_NoPermission); reset them with `sudo nvidia-smi -rgc`"
    ]


def simulated_device(**gpu: Any) -> Any:
    return SimulatedRuntime(gpus=[SimulatedGpu(**gpu)]).open("cuda:0")


@pytest.mark.parametrize(
    ("mode", "error", "fix"),
    [
        (
            "no-permission",
            "NVMLError_NoPermission",
            "run as root, or lock them beforehand with `sudo nvidia-smi -lgc`",
        ),
        (
            "not-supported",
            "NVMLError_NotSupported",
            "this board reports no default applications clock; lock them "
            "beforehand at a clock of your choice with `sudo nvidia-smi -lgc MHZ,MHZ`",
        ),
    ],
)
def test_a_refused_lock_is_one_warning_and_leaves_the_clocks_alone(
    mode: str, error: str, fix: str
) -> None:
    device = simulated_device(clock_lock=mode)
    with pytest.warns(ClockLockWarning) as caught:
        assert lock_clocks(device) is None
    assert [str(w.message) for w in caught] == [
        "pytest-i2v: --i2v-lock-clocks: NVML refused to lock the clocks of cuda:0 "
        f"({error}), so they run unlocked; {fix}"
    ]
    assert device.locked_sm_clock_mhz is None and device.nvml_clocks().locked is None


def test_the_cpu_has_no_clock_to_lock() -> None:
    with pytest.warns(ClockLockWarning) as caught:
        assert lock_clocks(CpuDevice()) is None
    assert [str(w.message) for w in caught] == [
        "pytest-i2v: --i2v-lock-clocks: cpu has no GPU clock to lock; "
        "ignored (use --i2v-device cuda)"
    ]


def test_without_nvml_the_clocks_are_not_locked() -> None:
    with pytest.warns(
        ClockLockWarning, match=r"NVML is unavailable on cuda:0, so its clocks run unlocked"
    ) as caught:
        assert lock_clocks(simulated_device(nvml="unavailable")) is None
    # one line about the lock (NVML's own absence is NvmlWarning's one line)
    assert len([w for w in caught if issubclass(w.category, ClockLockWarning)]) == 1


def test_the_simulated_card_reads_its_locked_clock_and_logs_the_calls() -> None:
    device = simulated_device()
    control = lock_clocks(device)
    assert control is not None and control.locked == LockedClocks(1590.0, 2619.0)
    assert control.read().sm_clock_mhz == 1590.0
    control.restore()
    assert control.read().sm_clock_mhz == 1980.0
    assert [name for name, _ in device.calls if "LockedClocks" in name] == [
        "nvmlDeviceSetGpuLockedClocks",
        "nvmlDeviceSetMemoryLockedClocks",
        "nvmlDeviceResetGpuLockedClocks",
        "nvmlDeviceResetMemoryLockedClocks",
    ]


# -- settings and fingerprint ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cli", "ini", "expected"),
    [(None, None, False), (True, None, True), (None, "true", True), (None, "false", False)],
)
def test_the_option_and_its_ini_key(cli: bool | None, ini: str | None, expected: bool) -> None:
    settings = resolve_settings(
        lambda dest: cli if dest == "lock_clocks" else None,
        lambda key: ini if key == "i2v_lock_clocks" else None,
        Path("."),
        Path("."),
    )
    assert settings.lock_clocks is expected
    assert Settings().lock_clocks is False


def test_a_locked_run_against_an_unlocked_baseline_is_an_environment_change() -> None:
    environment = {"gpu_name": "NVIDIA H200", "torch": "2.13.0"}
    unlocked = fingerprint_for(environment, {"dtype": "bf16"})
    locked = fingerprint_for(
        {**environment, GPU_CLOCKS_KEY: LockedClocks(1590.0).label}, {"dtype": "bf16"}
    )
    assert GPU_CLOCKS_KEY not in unlocked  # baselines from before the option compare as before
    assert locked[GPU_CLOCKS_KEY] == "locked 1590 MHz"
    assert software_changes(unlocked, locked) == ("gpu_clocks None -> locked 1590 MHz",)
    assert software_changes(unlocked, dict(unlocked)) == ()


# -- a pytest session on the simulated device ---------------------------------------------------
# The simulated device's log is written at interpreter exit, after pytest's own cleanup has run.
LOG_CONFTEST = """
import atexit
import json

from pytest_i2v.simulated_plugin import RUNTIME

atexit.register(
    lambda: open("device_calls.json", "w").write(json.dumps([name for name, _ in RUNTIME.calls]))
)
"""
SESSION_TESTS = """
import pytest

SPEC = dict(width=32, height=32, frames=2, steps=2)

@pytest.mark.i2v(**SPEC)
def test_1_measured(i2v_run):
    assert i2v_run(repeats=3).outcome == "ok"

@pytest.mark.i2v(**SPEC, seed=1)
def test_2_fails(i2v_run):
    i2v_run()
    assert False, "a failing test"

@pytest.mark.i2v(**SPEC, seed=2)
def test_3_interrupted(i2v_run):
    raise KeyboardInterrupt

def test_4_never_runs():
    pass
"""


def nvml_lock_calls(project: pytest.Pytester) -> list[str]:
    calls = json.loads(Path(project.path, "device_calls.json").read_text())
    return [c for c in calls if "LockedClocks" in c]


def test_the_clocks_are_restored_after_a_failure_and_a_ctrl_c(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The card hits its power cap in the 2nd generation (test_1's 2nd repeat: no warm-up here).
    power_capped = {"reasons_mask": 0x4, "sm_clock_mhz": 1400.0, "temperature_c": None}
    monkeypatch.setenv(
        "PYTEST_I2V_SIMULATED_GPUS",
        json.dumps([{"name": "NVIDIA H200", "throttled": {"2": power_capped}}]),
    )
    i2v_project.makeconftest(LOG_CONFTEST)
    i2v_project.makepyfile(test_session=SESSION_TESTS)
    result = i2v_project.runpytest_subprocess(
        "-p",
        "pytest_i2v.simulated_plugin",
        "--i2v-model",
        "tiny",
        "--i2v-dtype",
        "fp32",
        "--i2v-json",
        "out.json",
        "--i2v-lock-clocks",
        "--junitxml",
        "junit.xml",
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(passed=1, failed=1)
    assert nvml_lock_calls(i2v_project) == [
        "nvmlDeviceSetGpuLockedClocks",
        "nvmlDeviceSetMemoryLockedClocks",
        "nvmlDeviceResetGpuLockedClocks",
        "nvmlDeviceResetMemoryLockedClocks",
    ]
    assert "ClockLockWarning" not in result.stdout.str()
    document = json.loads(Path(i2v_project.path, "out.json").read_text())
    assert document["environment"][GPU_CLOCKS_KEY] == "locked 1590 MHz, memory 2619 MHz"
    record = next(r for r in document["records"] if r["nodeid"].endswith("test_1_measured"))
    assert record["fingerprint"][GPU_CLOCKS_KEY] == "locked 1590 MHz, memory 2619 MHz"
    conditions = record["conditions"]
    assert (
        conditions["locked_sm_clock_mhz"] == 1590.0
        and conditions["summary"] == "throttled (power, 1 of 3 repeats)"
    )
    assert [r["sm_clock_mhz"] for r in conditions["repeats"]] == [1590.0, 1400.0, 1590.0]
    assert [r["temperature_c"] for r in conditions["repeats"]] == [
        45.0,
        45.0,
        45.0,
    ]  # None: the card's nominal
    assert (
        'name="i2v_conditions" value="throttled (power, 1 of 3 repeats)"'
        in Path(i2v_project.path, "junit.xml").read_text()
    )


REFUSED_TESTS = """
import pytest

@pytest.mark.i2v(width=32, height=32, frames=2, steps=2)
def test_measured(i2v_run):
    assert i2v_run().outcome == "ok"
"""


def test_no_permission_is_one_warning_line_and_the_run_passes(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PYTEST_I2V_SIMULATED_GPUS",
        json.dumps([{"name": "NVIDIA H200", "clock_lock": "no-permission"}]),
    )
    i2v_project.makeconftest(LOG_CONFTEST)
    i2v_project.makepyfile(test_refused=REFUSED_TESTS)
    i2v_project.makeini(
        "[pytest]\ni2v_repeats = 1\ni2v_warmup = 0\ni2v_lock_clocks = true\n"
        "filterwarnings = ignore::FutureWarning\n"
    )  # the option from the ini file
    result = i2v_project.runpytest_subprocess(
        "-p",
        "pytest_i2v.simulated_plugin",
        "--i2v-model",
        "tiny",
        "--i2v-dtype",
        "fp32",
        "--i2v-json",
        "out.json",
    )
    result.assert_outcomes(passed=1, warnings=1)
    said = [line for line in result.stdout.lines if "--i2v-lock-clocks" in line]
    assert (
        len(said) == 1 and "ClockLockWarning" in said[0] and "NVMLError_NoPermission" in said[0]
    ), said
    assert nvml_lock_calls(i2v_project) == [
        "nvmlDeviceSetGpuLockedClocks"
    ]  # tried once; nothing to reset
    record = json.loads(Path(i2v_project.path, "out.json").read_text())["records"][0]
    assert (
        GPU_CLOCKS_KEY not in record["fingerprint"]
        and record["conditions"]["locked_sm_clock_mhz"] is None
    )


def test_on_the_cpu_the_option_is_one_warning_line(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile("def test_x(i2v_spec):\n    pass\n")
    result = i2v_project.runpytest_subprocess(
        "--i2v-device", "cpu", "--gpu-profile", "cpu", "--i2v-model", "tiny", "--i2v-lock-clocks"
    )
    result.assert_outcomes(passed=1, warnings=1)
    said = [line for line in result.stdout.lines if "--i2v-lock-clocks" in line]
    assert (
        len(said) == 1
        and "ClockLockWarning" in said[0]
        and "cpu has no GPU clock to lock" in said[0]
    ), said


class FakeConfig:
    """What ``runtime._lock_clocks`` asks of a pytest config: xdist's marks and ``add_cleanup``."""

    def __init__(self, numprocesses: int | None = None, worker: bool = False):
        self.option = type("Option", (), {"numprocesses": numprocesses})()
        if worker:
            self.workerinput = {"workerid": "gw0"}
        self.cleanups: list[Any] = []

    def add_cleanup(self, func: Any) -> None:
        self.cleanups.append(func)


@pytest.mark.parametrize(
    ("config", "locks"),
    [
        (FakeConfig(), True),
        (FakeConfig(numprocesses=2, worker=True), True),
        (FakeConfig(numprocesses=2), False),
    ],
)
def test_the_process_that_measures_locks_and_registers_the_restore(
    config: FakeConfig, locks: bool
) -> None:
    from pytest_i2v.session.runtime import _lock_clocks

    device = simulated_device()
    locked = _lock_clocks(cast(pytest.Config, config), Settings(lock_clocks=True), device)
    if not locks:  # the xdist controller measures nothing: its workers lock their own GPUs
        assert locked is None and config.cleanups == [] and device.calls == []
        return
    assert locked == LockedClocks(1590.0, 2619.0) and device.locked_sm_clock_mhz == 1590.0
    assert len(config.cleanups) == 1
    config.cleanups[0]()
    assert device.locked_sm_clock_mhz is None and device.locked_mem_clock_mhz is None
    assert (
        _lock_clocks(cast(pytest.Config, config), Settings(), simulated_device()) is None
    )  # the option is off


def test_a_fresh_process_child_adopts_the_parents_lock_and_never_touches_the_clocks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """D6: the child re-measures under the clocks its parent holds; a child that locked and restored
    them would leave the parent's later tests unlocked while labelled locked."""
    from pytest_i2v.session.fresh_process import HELD_CLOCKS_ENV
    from pytest_i2v.session.runtime import _lock_clocks

    config, device = FakeConfig(), simulated_device()
    child = Settings(lock_clocks=True, remeasure_into=tmp_path / "records.json")
    monkeypatch.setenv(HELD_CLOCKS_ENV, LockedClocks(1590.0, 2619.0).encoded())
    assert _lock_clocks(cast(pytest.Config, config), child, device) == LockedClocks(1590.0, 2619.0)
    assert device.calls == [] and config.cleanups == []
    monkeypatch.setenv(HELD_CLOCKS_ENV, LockedClocks(1590.0).encoded())
    assert _lock_clocks(cast(pytest.Config, config), child, device) == LockedClocks(1590.0)
    monkeypatch.delenv(HELD_CLOCKS_ENV)
    assert _lock_clocks(cast(pytest.Config, config), child, device) is None and device.calls == []
