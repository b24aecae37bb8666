"""The GPU's conditions per repeat: what ``conditions`` decides (marks, summary, reasons), how
``measure.clocks`` reads NVML (a stand-in module: the old name, failures), and a measurement on the
simulated device whose 2nd and 4th repeats run throttled."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pynvml
import pytest

from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import i2v
from pytest_i2v.measure import clocks
from pytest_i2v.measure.clocks import ConditionsReading, NvmlClocks, repeat_conditions
from pytest_i2v.measure.device import CpuDevice
from pytest_i2v.measure.memory import CONDITIONS_EVERY_N_SAMPLES, NvmlSampler
from pytest_i2v.measure.nvml import NvmlReading
from pytest_i2v.measure.runner import GenerationRunner
from pytest_i2v.measure.simulated_gpu import SimulatedGpu, SimulatedThrottle
from pytest_i2v.measure.virtual_time import VirtualWork
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.session.recording import record_of
from pytest_i2v.verdict.conditions import RepeatConditions, RunConditions, assess, throttle_reasons
from tests.test_gpu_path import gpu_device

SW_THERMAL, HW_THERMAL, SW_POWER = 0x20, 0x40, 0x4
GPU_IDLE, APPLICATIONS_CLOCKS, SYNC_BOOST, DISPLAY_CLOCKS = 0x1, 0x2, 0x10, 0x100


def repeat(sm: float = 1980.0, reasons: tuple[str, ...] = ()) -> RepeatConditions:
    return RepeatConditions(
        sm_clock_mhz=sm,
        mem_clock_mhz=2619.0,
        temperature_c=60.0,
        power_w=400.0,
        power_limit_w=700.0,
        reasons=reasons,
    )


# -- conditions.py: reasons, marks, summary ----------------------------------------------------
@pytest.mark.parametrize(
    ("mask", "reasons"),
    [
        (None, ()),
        (0, ()),
        (SW_THERMAL | HW_THERMAL, ("thermal",)),  # two bits, one reason, named once
        (SW_THERMAL | SW_POWER, ("power", "thermal")),
        (0x8, ("hw-slowdown",)),
        (
            GPU_IDLE | APPLICATIONS_CLOCKS | SYNC_BOOST | DISPLAY_CLOCKS,
            (),
        ),  # settings and idling: not a slowdown
        (GPU_IDLE | SW_THERMAL, ("thermal",)),
        (
            pynvml.nvmlClocksThrottleReasonBoardLimit | pynvml.nvmlClocksThrottleReasonReliability,
            ("board-limit", "reliability"),
        ),  # the older query's extra reasons
    ],
)
def test_throttle_reasons_names_only_the_bits_that_slow_the_work(
    mask: int | None, reasons: tuple[str, ...]
) -> None:
    assert throttle_reasons(mask) == reasons


def test_three_thermal_repeats_of_five_are_throttled() -> None:
    run = assess(
        [
            repeat(),
            repeat(reasons=("thermal",)),
            repeat(reasons=("thermal",)),
            repeat(),
            repeat(reasons=("thermal",)),
        ]
    )
    assert run.summary == "throttled (thermal, 3 of 5 repeats)"
    assert run.marked == (False, True, True, False, True) and not run.stable


def test_a_four_percent_clock_drop_is_marked_and_two_percent_is_not() -> None:
    four = assess([repeat(), repeat(), repeat(1980.0 * 0.96), repeat(), repeat()])
    assert four.marks[2] == ("clock",) and four.summary == "clock off the median (1 of 5 repeats)"
    two = assess([repeat(), repeat(), repeat(1980.0 * 0.98), repeat(), repeat()])
    assert two.stable and two.summary == "stable"


def test_a_throttled_majority_does_not_mark_the_stable_minority() -> None:
    """The reference clock is the unthrottled repeats' median: three repeats thermally throttled to
    1400 MHz do not make the two at the card's 1980 MHz "off the median"."""
    run = assess(
        [
            repeat(),
            repeat(1400.0, ("thermal",)),
            repeat(1400.0, ("thermal",)),
            repeat(),
            repeat(1400.0, ("thermal",)),
        ]
    )
    assert (
        run.reference_sm_clock_mhz == 1980.0 and run.median_sm_clock_mhz == 1400.0
    )  # the clock beside the time
    assert run.marks == ((), ("thermal", "clock"), ("thermal", "clock"), (), ("thermal", "clock"))
    assert run.summary == "throttled (thermal, 3 of 5 repeats)"
    # with every repeat throttled there is no card clock to refer to: the repeats' own median
    assert assess([repeat(1400.0, ("power",))] * 3).reference_sm_clock_mhz == 1400.0


def test_idle_and_application_clock_bits_leave_a_run_stable() -> None:
    reading = ConditionsReading(sm_clock_mhz=1980.0, reasons_mask=GPU_IDLE | APPLICATIONS_CLOCKS)
    run = assess([repeat_conditions([reading])] * 3)
    assert run.summary == "stable"


def test_nothing_read_is_not_read() -> None:
    assert assess([RepeatConditions()] * 3).summary == "not read"


def test_run_conditions_round_trip_with_the_lock() -> None:
    run = assess(
        [repeat(1590.0), repeat(1500.0, ("power",))],
        locked_sm_clock_mhz=1590.0,
        base_sm_clock_mhz=1590.0,
    )
    data = run.to_dict()
    assert (
        data["summary"] == "throttled (power, 1 of 2 repeats)"
        and data["locked_sm_clock_mhz"] == 1590.0
    )
    assert data["base_sm_clock_mhz"] == 1590.0
    assert RunConditions.from_dict(data) == run


def test_a_power_cap_at_or_above_the_base_clock_is_normal() -> None:
    """Issue 21, defect 7: an H200 at its software power cap under sustained load, boosting between
    1830 and 1980 MHz (7 % apart) above its 1590 MHz base clock, is working as designed: nothing is
    marked, so a real slowdown on it cannot be excused as "unreliable". Below the base clock it is
    held back."""
    boosting = [
        repeat(1980.0),
        repeat(1830.0, ("power",)),
        repeat(1900.0, ("power",)),
        repeat(1850.0, ("power",)),
    ]
    assert assess(boosting, base_sm_clock_mhz=1590.0).summary == "stable"
    assert assess(boosting).summary != "stable"  # without the base clock: the old, stricter rule
    held = assess([repeat(1980.0), repeat(1200.0, ("power",))], base_sm_clock_mhz=1590.0)
    assert held.marks == ((), ("power", "clock"))
    hot = assess([repeat(1980.0), repeat(1900.0, ("thermal",))], base_sm_clock_mhz=1590.0)
    assert hot.marks == ((), ("thermal",))  # a thermal slowdown is never normal
    locked = assess([repeat(1590.0, ("power",)), repeat(1500.0)], locked_sm_clock_mhz=1590.0)
    assert locked.marks == ((), ("clock",))  # the lock is the floor: 5.7 % under it


# -- measure.clocks: one repeat's samples -> its conditions --------------------------------------
def test_a_repeats_samples_reduce_to_median_clocks_hottest_and_every_reason() -> None:
    readings = [
        ConditionsReading(1980.0, 2619.0, 60.0, 400.0, 700.0, 0),
        ConditionsReading(1500.0, 2619.0, 88.0, 690.0, 700.0, SW_THERMAL),
        ConditionsReading(1970.0, 2619.0, 70.0, 450.0, 700.0, SW_POWER),
        ConditionsReading(None, None, None, None, None, None),  # a sample NVML failed
    ]
    conditions = repeat_conditions(readings)
    assert conditions == RepeatConditions(
        sm_clock_mhz=1970.0,
        mem_clock_mhz=2619.0,
        temperature_c=88.0,
        power_w=690.0,
        power_limit_w=700.0,
        reasons=("power", "thermal"),
    )
    assert repeat_conditions([]) == RepeatConditions() and not RepeatConditions().read


# -- measure.clocks: reading through a stand-in pynvml --------------------------------------------
class NVMLError_FunctionNotFound(Exception):  # pynvml's name
    pass


class FakeNvml:
    """The pynvml calls the conditions are read with; ``reasons_api`` picks which reasons query
    exists."""

    def __init__(self, reasons_api: str = "event", mask: int = SW_THERMAL, fail: bool = False):
        self.reasons_api = reasons_api
        self.mask = mask
        self.fail = fail
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if (
            name == "nvmlDeviceGetCurrentClocksEventReasons"
            and object.__getattribute__(self, "reasons_api") == "throttle-only"
        ):
            raise AttributeError(name)  # a pynvml from before the rename
        return object.__getattribute__(self, name)

    def _answer(self, name: str, value: Any) -> Any:
        self.calls.append(name)
        if self.fail:
            raise RuntimeError("NVML: GPU is lost")
        return value

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        return int(
            self._answer(
                "nvmlDeviceGetClockInfo",
                {clocks.NVML_CLOCK_SM: 1755, clocks.NVML_CLOCK_MEM: 2619}[clock_type],
            )
        )

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        assert sensor == clocks.NVML_TEMPERATURE_GPU
        return int(self._answer("nvmlDeviceGetTemperature", 83))

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return int(self._answer("nvmlDeviceGetPowerUsage", 612_345))  # milliwatts

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return int(self._answer("nvmlDeviceGetEnforcedPowerLimit", 700_000))

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        if self.reasons_api == "event-not-in-driver":
            self.calls.append("nvmlDeviceGetCurrentClocksEventReasons")
            raise NVMLError_FunctionNotFound(
                "Function Not Found"
            )  # the library has it, the driver does not
        return int(self._answer("nvmlDeviceGetCurrentClocksEventReasons", self.mask))

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Any) -> int:
        return int(self._answer("nvmlDeviceGetCurrentClocksThrottleReasons", self.mask))


def test_nvml_enum_values_are_pynvmls() -> None:
    assert (
        clocks.NVML_CLOCK_GRAPHICS,
        clocks.NVML_CLOCK_SM,
        clocks.NVML_CLOCK_MEM,
        clocks.NVML_TEMPERATURE_GPU,
    ) == (
        pynvml.NVML_CLOCK_GRAPHICS,
        pynvml.NVML_CLOCK_SM,
        pynvml.NVML_CLOCK_MEM,
        pynvml.NVML_TEMPERATURE_GPU,
    )
    assert all(hasattr(pynvml, query) for query in clocks.REASONS_QUERIES)


def test_a_reading_has_every_figure_in_its_unit() -> None:
    nvml = FakeNvml()
    reading = NvmlClocks(nvml, "handle").read()
    assert reading == ConditionsReading(
        sm_clock_mhz=1755.0,
        mem_clock_mhz=2619.0,
        temperature_c=83.0,
        power_w=612.345,
        power_limit_w=700.0,
        reasons_mask=SW_THERMAL,
    )
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" not in nvml.calls  # the new name answered


@pytest.mark.parametrize("api", ["throttle-only", "event-not-in-driver"])
def test_the_reasons_fall_back_to_the_old_name(api: str) -> None:
    nvml = FakeNvml(reasons_api=api, mask=SW_POWER | GPU_IDLE)
    reading = NvmlClocks(nvml, "handle").read()
    assert reading.reasons_mask == SW_POWER | GPU_IDLE
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" in nvml.calls
    assert repeat_conditions([reading]).reasons == ("power",)


def test_a_failing_nvml_gives_empty_fields_never_an_error() -> None:
    reading = NvmlClocks(FakeNvml(fail=True), "handle").read()
    assert reading == ConditionsReading()
    assert repeat_conditions([reading]) == RepeatConditions()


class FailingClocksDevice(CpuDevice):
    """A CUDA device whose NVML fails on every call (memory and conditions alike)."""

    is_cuda = True

    def nvml_clocks(self) -> NvmlClocks | None:
        return NvmlClocks(FakeNvml(fail=True), "handle")


def test_a_failing_nvml_does_not_break_the_sampler() -> None:
    sampler = NvmlSampler(FailingClocksDevice())
    sampler.start()
    assert sampler.stop() == (None, "unavailable")
    conditions = sampler.conditions()
    assert conditions == RepeatConditions() and not conditions.read


class CountingDevice(CpuDevice):
    """A CUDA device whose NVML answers, counting memory samples and condition samples."""

    is_cuda = True

    def __init__(self) -> None:
        self.nvml = FakeNvml()
        self.memory_samples = 0

    def nvml_memory(self) -> NvmlReading:
        self.memory_samples += 1
        return NvmlReading(1 << 30, "process")

    def nvml_clocks(self) -> NvmlClocks | None:
        return NvmlClocks(self.nvml, "handle")


def test_the_conditions_are_read_every_tenth_memory_sample_and_at_both_ends() -> None:
    device = CountingDevice()
    sampler = NvmlSampler(device)
    sampler.start()
    deadline = (
        time.monotonic() + 30.0
    )  # about 35 samples in 0.35 s; a loaded machine samples less often
    while device.memory_samples < 35 and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    condition_samples = device.nvml.calls.count("nvmlDeviceGetTemperature")
    assert device.memory_samples >= 12  # the thread ran (a loaded machine samples less often)
    # start and stop read them once each; the thread every 10th tick
    assert condition_samples == 2 + (device.memory_samples - 2) // CONDITIONS_EVERY_N_SAMPLES
    assert sampler.conditions() == RepeatConditions(
        1755.0, 2619.0, 83.0, 612.345, 700.0, ("thermal",)
    )


def test_the_cpu_has_no_conditions() -> None:
    sampler = NvmlSampler(CpuDevice())
    sampler.start()
    sampler.stop()
    assert CpuDevice().nvml_clocks() is None and sampler.conditions() is None


# -- end to end on the simulated device ------------------------------------------------------------
SPEC = i2v(width=32, height=32, frames=2, steps=2)


def test_throttled_repeats_are_marked_and_are_the_slow_ones(tiny_pipe: Any) -> None:
    # No warm-up: generation n is repeat n. The throttled repeats run at a quarter of the card's
    # clock, timed on the virtual clock: exactly four times as long, whatever the machine does
    # meanwhile.
    throttle = SimulatedThrottle(reasons_mask=SW_THERMAL, sm_clock_mhz=495.0, temperature_c=91.0)
    device = gpu_device(
        tiny_pipe,
        SimulatedGpu(throttled={2: throttle, 4: throttle}, boost_clocks_mhz=(1980.0,)),
        work=VirtualWork(),
    )
    with device.workload(tiny_pipe):
        measurement = GenerationRunner(tiny_pipe, device).measure(
            SPEC, synthetic_portrait(64, 64), warmup=0, repeats=5
        )
    record = record_of("test_x", measurement, {"device": "cuda:0"}, None)
    conditions = record.conditions
    assert conditions is not None and conditions.summary == "throttled (thermal, 2 of 5 repeats)"
    assert [bool(m) for m in conditions.marks] == [False, True, False, True, False]
    assert [r.sm_clock_mhz for r in conditions.repeats] == [
        1980.0,
        495.0,
        1980.0,
        495.0,
        1980.0,
    ]
    assert [r.temperature_c for r in conditions.repeats] == [45.0, 91.0, 45.0, 91.0, 45.0]
    assert conditions.median_sm_clock_mhz == 1980.0 and conditions.locked_sm_clock_mhz is None
    times = record.time_samples_s
    throttled, stable = [times[1], times[3]], [times[0], times[2], times[4]]
    assert min(throttled) > statistics.median(stable), times
    assert throttled == pytest.approx([4 * times[0]] * 2) and stable == pytest.approx(
        [times[0]] * 3
    ), times
    # the per-step times the report shows beside the clocks follow them too
    steps = record.stages.step_samples_s
    assert min(min(steps[1]), min(steps[3])) > statistics.median(
        [min(steps[0]), min(steps[2]), min(steps[4])]
    ), steps
    assert ("i2v_conditions", "throttled (thermal, 2 of 5 repeats)") in record.user_properties()
    assert GenerationRecord.from_dict(record.to_dict()).conditions == conditions


def test_a_cpu_measurement_has_no_conditions(tiny_pipe: Any) -> None:
    measurement = GenerationRunner(tiny_pipe, CpuDevice()).measure(
        SPEC, synthetic_portrait(64, 64), warmup=0, repeats=1
    )
    record = record_of("test_x", measurement, {"device": "cpu"}, None)
    assert measurement.conditions is None and record.conditions is None
    assert all(name != "i2v_conditions" for name, _ in record.user_properties())
