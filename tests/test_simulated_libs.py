"""The project's own CUDA and NVML code (CudaDevice, CudaEventClock, NvmlHandle, NvmlClocks) against
the simulated torch.cuda and pynvml, which keep the real APIs' rules
(``measure.simulated_libs``)."""

from __future__ import annotations

import warnings
from typing import Any

import pynvml
import pytest

from pytest_i2v.measure.device import CudaDevice
from pytest_i2v.measure.memory import NvmlSampler
from pytest_i2v.measure.nvml import NvmlHandle, NvmlWarning
from pytest_i2v.measure.simulated import SimulatedRuntime
from pytest_i2v.measure.simulated_gpu import SimulatedGpu
from pytest_i2v.measure.simulated_libs import SimulatedEvent
from pytest_i2v.measure.virtual_time import VirtualWork


def opened(
    *gpus: SimulatedGpu, work: VirtualWork | None = None
) -> tuple[SimulatedRuntime, list[Any]]:
    runtime = SimulatedRuntime(gpus=list(gpus), work=work)
    return runtime, [runtime.open(f"cuda:{i}") for i in range(len(gpus))]


# -- torch.cuda's rules ---------------------------------------------------------------------------
def test_an_event_reads_only_after_a_synchronise_of_its_device() -> None:
    runtime, (device,) = opened(SimulatedGpu(), work=VirtualWork())
    clock = device.clock()
    start = clock.mark()
    device.add_work(0.25)
    end = clock.mark()
    with pytest.raises(RuntimeError, match="device not ready"):  # CUDA refuses before completion
        clock.seconds_between(start, end)
    device.synchronize()
    assert clock.seconds_between(start, end) == pytest.approx(0.25)
    assert isinstance(start, SimulatedEvent) and ("Event.record", 0) in runtime.calls


def test_a_synchronise_of_another_device_completes_nothing_here() -> None:
    _, (first, second) = opened(SimulatedGpu(), SimulatedGpu(), work=VirtualWork())
    clock = first.clock()
    start, end = clock.mark(), clock.mark()
    second.synchronize()
    with pytest.raises(RuntimeError, match="device not ready"):
        clock.seconds_between(start, end)


def test_empty_cache_frees_the_current_devices_cache_and_keeps_live_segments() -> None:
    _, (_, second) = opened(SimulatedGpu(), SimulatedGpu())
    kept = second.allocate(3 * 2**20)  # a live 3 MiB block: its 4 MiB of segments stay
    freed = second.allocate(64 * 2**20)
    freed.free()
    assert second.reserved_bytes() == 68 * 2**20 and second.allocated_bytes() == 3 * 2**20
    runtime_cuda = second._cuda
    runtime_cuda.empty_cache()  # no device context: the current device is cuda:0
    assert second.reserved_bytes() == 68 * 2**20
    second.empty_cache()  # CudaDevice enters its own device first
    assert second.reserved_bytes() == 4 * 2**20 > second.allocated_bytes()
    del kept


# -- NVML's rules -------------------------------------------------------------------------------
def test_nvml_finds_a_mig_instance_by_its_mig_uuid() -> None:
    """Issue 21, defect 4: torch gives the bare UUID; a MIG instance is MIG-<uuid> in NVML. The old
    lookup tried GPU-<uuid> only and fell back to NVML's index 0, the whole GPU, without a word."""
    runtime, (device,) = opened(SimulatedGpu(mig=True, nvml="device"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NvmlWarning)  # found: no warning
        handle = device.nvml
    assert handle.opened_by == f"UUID MIG-{device.cuda_uuid}" and handle.note is None
    assert device.nvml_opened_by == handle.opened_by  # what the record's nvml_device says
    assert ("nvmlDeviceGetHandleByIndex", 0) not in runtime.calls


def test_nvml_never_reads_by_index_when_cuda_visible_devices_renumbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NVML's index 1 is the machine's second GPU, not CUDA's second visible one."""
    _, (device,) = opened(SimulatedGpu())
    device.nvml_uuid = "GPU-not-the-one-torch-names"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with pytest.warns(
        NvmlWarning,
        match=r"NVML not read: no NVML device has the UUID of cuda:0 .* "
        r"CUDA_VISIBLE_DEVICES=2,3 renumbers the devices",
    ):
        handle = device.nvml
    assert not handle.available and handle.read().scope == "unavailable"
    assert (
        device.nvml_note is not None and "CUDA_VISIBLE_DEVICES" in device.nvml_note
    )  # into the record's notes


def test_an_index_fallback_is_said_in_one_warning_and_the_note() -> None:
    _, (device,) = opened(SimulatedGpu())
    device.nvml_uuid = "GPU-unknown"
    with pytest.warns(
        NvmlWarning, match=r"NVML opened by index 0: no NVML device has the UUID of cuda:0"
    ):
        handle = NvmlHandle(device._nvml_library(), device.cuda_uuid, 0, visible_devices="")
    assert handle.available and handle.opened_by == "index 0"


@pytest.mark.parametrize(
    ("gpu", "scope"),
    [
        (SimulatedGpu(), "process"),
        (
            SimulatedGpu(container_pid=4242),
            "device",
        ),  # a container's PID namespace: not this process's entry
        (SimulatedGpu(process_memory_unknown=True), "device"),  # usedGpuMemory None
        (SimulatedGpu(nvml="device"), "device"),  # no per-process accounting
    ],
)
def test_the_per_process_figure_is_used_only_when_it_is_this_process(
    gpu: SimulatedGpu, scope: str
) -> None:
    _, (device,) = opened(gpu)
    block = device.allocate(100 * 2**20)
    reading = device.nvml_memory()
    assert reading.scope == scope
    assert (
        reading.used_bytes
        == device.gpu.context_bytes + device.memory.reserved + device.gpu.other_process_bytes
    )
    del block


def test_the_older_throttle_reasons_query_is_used_where_the_new_one_is_missing() -> None:
    _, (device,) = opened(SimulatedGpu(reasons_query="throttle"))
    clocks = device.nvml_clocks()
    assert (
        clocks is not None and clocks.read().reasons_mask == 0x4
    )  # the power cap, through the old name


def test_nvml_errors_are_pynvmls_own_classes() -> None:
    _, (device,) = opened(SimulatedGpu(power_limit_w=None, clock_lock="no-permission"))
    nvml = device._nvml_library()
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetEnforcedPowerLimit(device.nvml.handle)
    with pytest.raises(pynvml.NVMLError_NoPermission):
        nvml.nvmlDeviceSetGpuLockedClocks(device.nvml.handle, 1590, 1590)
    assert device.info().power_limit_w is None  # the real CudaDevice reads None through the refusal


def test_the_simulated_card_boosts_and_sits_at_its_power_cap() -> None:
    """Clocks that move and a power cap that is on, as a datacenter board under load: the real
    sampler reads them, and the run is stable (defect 7's rule)."""
    _, (device,) = opened(SimulatedGpu())
    sampler = NvmlSampler(device)
    clocks = []
    for _ in range(4):
        device.reset_peak_stats()  # a generation starts
        sampler.start()
        sampler.stop()
        conditions = sampler.conditions()
        assert conditions is not None and conditions.reasons == ("power",)
        clocks.append(conditions.sm_clock_mhz)
        device._pre_hook(None, (), {})  # its first forward
        device._live.pop().free()
    assert len(set(clocks)) > 1


def test_the_real_cuda_device_class_runs_here() -> None:
    _, (device,) = opened(SimulatedGpu())
    assert isinstance(device, CudaDevice) and type(device).synchronize is CudaDevice.synchronize
    assert (
        type(device).clock is CudaDevice.clock
        and type(device).nvml_memory is CudaDevice.nvml_memory
    )
