"""The library boundary of the simulated CUDA device: stand-ins for ``torch.cuda`` and ``pynvml``.

The project's own ``CudaDevice``, ``CudaEventClock``, ``NvmlHandle`` and ``NvmlClocks`` run against
these, so the tests and ``gpu-check --dry-run`` execute the code a GPU runs, and a bug in it (a
swapped device index, a missing synchronise, a wrong NVML lookup) fails them. The stand-ins keep the
real APIs' rules where the project depends on them:

- every ``torch.cuda`` call is logged with the device index it was *given* (not the one it meant);
- an event's ``elapsed_time`` raises, as CUDA's does, until a synchronise of its device has
  completed it; ``empty_cache`` frees the *current* device's cache (``torch.cuda.device(i)`` sets
  it);
- NVML answers as pynvml does: UUID lookups by ``GPU-``/``MIG-`` strings, physical indices that
  ignore ``CUDA_VISIBLE_DEVICES``, ``usedGpuMemory`` that may be ``None``, container PIDs that are
  not ``os.getpid()``, the older throttle-reasons query, and errors that are pynvml's own classes.

Each device's state (allocator, clocks, events) lives on the ``SimulatedCudaDevice`` the runtime
opened for that index; these objects only route calls to it. No pytest here."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pytest_i2v.measure.device_name import split_device

# torch.profiler and pynvml are imported inside the fakes that stand in for them: only the
# simulated device runs these.

# NVML's clock types (nvmlClockType_t), as measure.clocks names them
NVML_CLOCK_MEM = 2


def _index_of(device: Any) -> int:
    """The index a torch.cuda call was given: an int, a ``torch.device``, "cuda:N" or None
    (current)."""
    if device is None:
        return 0
    if isinstance(device, int):
        return device
    if isinstance(device, str):
        parsed = split_device(device)
        if parsed is None:
            raise ValueError(f"not a device string: {device!r}")
        return parsed.cuda_index if parsed.cuda_index is not None else 0
    index = getattr(device, "index", None)
    return int(index) if index is not None else 0


@dataclass(frozen=True)
class SimulatedProperties:
    """What ``torch.cuda.get_device_properties`` answers: ``uuid`` is the bare UUID (torch prints no
    ``GPU-``/``MIG-`` prefix)."""

    name: str
    total_memory: int
    multi_processor_count: int
    uuid: str


class SimulatedStream:
    def __init__(self, index: int):
        self.device_index = index


# What a synchronise costs the host here. The simulated card computes on the CPU, synchronously, so
# it has no queue to drain; a real cudaDeviceSynchronize costs at least a host-device round trip (an
# assumption of order 10 microseconds, not a measurement). Charging a fixed busy wait makes a sync
# per step work with a time, as it is on a GPU (the benchmark benchmarks/work_signature_gate.py
# sizes it).
SYNC_ROUND_TRIP_S = 20e-6


def _busy_wait(seconds: float) -> None:
    """Spin (a sleep's resolution is coarser than the wait)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class SimulatedEvent:
    """``torch.cuda.Event(enable_timing=True)``: records the device's time on ``record``, and is
    complete only once a synchronise of that device has returned after it."""

    def __init__(self, cuda: SimulatedTorchCuda, enable_timing: bool = False):
        self._cuda = cuda
        self.enable_timing = enable_timing
        self.index: int | None = None
        self.time: float | None = None
        self.completed = False

    def record(self, stream: Any = None) -> None:
        index = (
            stream.device_index if isinstance(stream, SimulatedStream) else self._cuda.current_index
        )
        device = self._cuda.device_at(index, "Event.record")
        self.index, self.time, self.completed = index, device.now(), False
        device.pending_events.append(self)

    def elapsed_time(self, end: SimulatedEvent) -> float:
        """Milliseconds between two completed events; CUDA refuses before they completed."""
        if not (self.enable_timing and end.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
        if not (self.completed and end.completed) or self.time is None or end.time is None:
            raise RuntimeError(
                "CUDA error: device not ready"
            )  # what elapsed_time says before a synchronise
        return (end.time - self.time) * 1000.0


class SimulatedTorchCuda:
    """The ``torch.cuda`` functions ``CudaDevice`` and ``CudaEventClock`` call, routed by index to
    the runtime's simulated devices and logged as ``(function, index given)``."""

    def __init__(self, runtime: Any):
        self._runtime = runtime
        self._current: list[int] = [0]

    @property
    def current_index(self) -> int:
        return self._current[-1]

    def device_at(self, index: int, call: str) -> Any:
        self._runtime.calls.append((call, index))
        devices = self._runtime.devices
        if index not in devices:
            raise RuntimeError(f"CUDA error: invalid device ordinal ({index})")
        return devices[index]

    # -- devices and streams ------------------------------------------------------------------
    @contextlib.contextmanager
    def device(self, index: Any) -> Iterator[None]:
        self.device_at(_index_of(index), "device")
        self._current.append(_index_of(index))
        try:
            yield
        finally:
            self._current.pop()

    def current_stream(self, device: Any = None) -> SimulatedStream:
        index = self.current_index if device is None else _index_of(device)
        self.device_at(index, "current_stream")
        return SimulatedStream(index)

    def synchronize(self, device: Any = None) -> None:
        from torch.profiler import record_function

        index = self.current_index if device is None else _index_of(device)
        with record_function(
            "cudaDeviceSynchronize"
        ):  # in a profiler trace, as the CUDA runtime call shows
            self.device_at(index, "synchronize").complete_events()
            _busy_wait(SYNC_ROUND_TRIP_S)

    def Event(self, enable_timing: bool = False) -> SimulatedEvent:
        return SimulatedEvent(self, enable_timing)

    def get_device_properties(self, device: Any) -> SimulatedProperties:
        simulated = self.device_at(_index_of(device), "get_device_properties")
        gpu = simulated.gpu
        return SimulatedProperties(gpu.name, gpu.total_bytes, gpu.sm_count, simulated.cuda_uuid)

    # -- the caching allocator ------------------------------------------------------------------
    def empty_cache(self) -> None:
        self.device_at(self.current_index, "empty_cache").release_cache()

    def reset_peak_memory_stats(self, device: Any = None) -> None:
        self.device_at(_index_of(device), "reset_peak_memory_stats").reset_peaks()

    def memory_allocated(self, device: Any = None) -> int:
        return int(self.device_at(_index_of(device), "memory_allocated").memory.allocated)

    def memory_reserved(self, device: Any = None) -> int:
        return int(self.device_at(_index_of(device), "memory_reserved").memory.reserved)

    def max_memory_allocated(self, device: Any = None) -> int:
        return int(self.device_at(_index_of(device), "max_memory_allocated").memory.peak_allocated)

    def max_memory_reserved(self, device: Any = None) -> int:
        return int(self.device_at(_index_of(device), "max_memory_reserved").memory.peak_reserved)


def nvml_error(name: str) -> BaseException:
    """pynvml's own error for ``NVML_ERROR_<NAME>`` (pynvml picks the ``NVMLError_*`` subclass)."""
    import pynvml

    error: BaseException = pynvml.NVMLError(getattr(pynvml, f"NVML_ERROR_{name}"))
    return error


@dataclass(frozen=True)
class SimulatedProcess:
    """An entry of ``nvmlDeviceGetComputeRunningProcesses``."""

    pid: int
    usedGpuMemory: int | None  # pynvml's name; None where the driver cannot say


@dataclass(frozen=True)
class SimulatedMemoryInfo:
    total: int
    free: int
    used: int


class SimulatedPynvml:
    """The pynvml functions the project calls, answered by the runtime's simulated devices (a handle
    is the device). Only devices the runtime has opened exist for NVML, at their physical index."""

    def __init__(self, runtime: Any):
        self._runtime = runtime

    def _log(self, call: str, device: Any) -> None:
        self._runtime.calls.append((call, device.index))

    def _cards(self) -> list[Any]:
        return list(self._runtime.devices.values())

    def nvmlInit(self) -> None:  # pynvml's names, here and below
        modes = {device.gpu.nvml for device in self._cards()} or {"process"}
        if "unavailable" in modes:
            raise nvml_error("LIBRARY_NOT_FOUND")
        if "mismatch" in modes:
            raise nvml_error("LIB_RM_VERSION_MISMATCH")

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> Any:
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for device in self._cards():
            if device.nvml_uuid == text:
                self._log("nvmlDeviceGetHandleByUUID", device)
                return device
        raise nvml_error("NOT_FOUND")

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        for device in self._cards():
            if device.nvml_index == index:
                self._log("nvmlDeviceGetHandleByIndex", device)
                return device
        raise nvml_error("INVALID_ARGUMENT")

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[SimulatedProcess]:
        gpu = handle.gpu
        if gpu.nvml != "process":
            raise nvml_error("NOT_SUPPORTED")  # no per-process accounting (some containers, MIG)
        pid = gpu.container_pid if gpu.container_pid is not None else os.getpid()
        used = None if gpu.process_memory_unknown else gpu.context_bytes + handle.memory.reserved
        return [SimulatedProcess(pid, used)]

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> SimulatedMemoryInfo:
        gpu = handle.gpu
        used = gpu.context_bytes + handle.memory.reserved + gpu.other_process_bytes
        return SimulatedMemoryInfo(gpu.total_bytes, gpu.total_bytes - used, used)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        if handle.gpu.power_limit_w is None:
            raise nvml_error("NOT_SUPPORTED")
        return int(handle.gpu.power_limit_w * 1000)  # milliwatts, as NVML

    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int:
        return self.nvmlDeviceGetEnforcedPowerLimit(handle)

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        if clock_type == NVML_CLOCK_MEM:
            return int(handle.locked_mem_clock_mhz or handle.gpu.mem_clock_mhz)
        return int(handle.sm_clock_now())

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        throttle = handle.throttle_now()
        hot = throttle.temperature_c if throttle is not None else None
        return int(hot if hot is not None else handle.gpu.temperature_c)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        throttle = handle.throttle_now()
        drawn = throttle.power_w if throttle is not None else None
        return int((drawn if drawn is not None else handle.gpu.power_w) * 1000)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        if handle.gpu.reasons_query == "throttle":
            raise nvml_error("FUNCTION_NOT_FOUND")  # a driver before NVML 12's rename
        return int(handle.reasons_now())

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Any) -> int:
        return int(handle.reasons_now())

    def nvmlDeviceGetDefaultApplicationsClock(self, handle: Any, clock_type: int) -> int:
        gpu = handle.gpu
        return int(gpu.mem_clock_mhz if clock_type == NVML_CLOCK_MEM else gpu.base_clock_mhz)

    def _refuse(self, kind: str) -> None:
        if kind == "no-permission":
            raise nvml_error("NO_PERMISSION")
        if kind == "not-supported":
            raise nvml_error("NOT_SUPPORTED")

    def nvmlDeviceSetGpuLockedClocks(self, handle: Any, low: int, high: int) -> None:
        self._log("nvmlDeviceSetGpuLockedClocks", handle)
        self._refuse(handle.gpu.clock_lock)
        handle.locked_sm_clock_mhz = float(high)

    def nvmlDeviceSetMemoryLockedClocks(self, handle: Any, low: int, high: int) -> None:
        self._log("nvmlDeviceSetMemoryLockedClocks", handle)
        self._refuse(handle.gpu.clock_lock if handle.gpu.memory_clock_lock else "not-supported")
        handle.locked_mem_clock_mhz = float(high)

    def nvmlDeviceResetGpuLockedClocks(self, handle: Any) -> None:
        self._log("nvmlDeviceResetGpuLockedClocks", handle)
        handle.locked_sm_clock_mhz = None

    def nvmlDeviceResetMemoryLockedClocks(self, handle: Any) -> None:
        self._log("nvmlDeviceResetMemoryLockedClocks", handle)
        handle.locked_mem_clock_mhz = None


# ops that move no data on a GPU, views and metadata: the simulated card launches no kernel for them
METADATA_OPS = frozenset(
    {
        "aten::view",
        "aten::reshape",
        "aten::_unsafe_view",
        "aten::as_strided",
        "aten::expand",
        "aten::permute",
        "aten::transpose",
        "aten::t",
        "aten::unsqueeze",
        "aten::squeeze",
        "aten::slice",
        "aten::select",
        "aten::empty",
        "aten::empty_strided",
        "aten::empty_like",
        "aten::detach",
        "aten::alias",
        "aten::split",
        "aten::chunk",
        "aten::narrow",
        "aten::resolve_conj",
        "aten::resolve_neg",
        "aten::lift_fresh",
        "aten::unbind",
        "aten::flatten",
        "aten::view_as",
        "aten::expand_as",
        "aten::contiguous",
        "aten::to",
        "aten::type_as",
        "aten::result_type",
    }
)


class SimulatedKernels:
    """The simulated card's kernels: one per op that computes (not a view, not a wrapper of other
    ops), named after it, its device time the op's own time on the CPU it computes on; a copy is a
    DtoD copy."""

    activities = ("cpu",)

    def kernels_of(self, event: Any) -> list[tuple[str, float]]:
        name = str(event.name)
        if not name.startswith("aten::") or name in METADATA_OPS or event.nested_ops:
            return []
        seconds = float(event.self_s)
        if name in ("aten::copy_", "aten::_to_copy"):
            return [("Memcpy DtoD (Device -> Device)", seconds)]
        return [(f"sim_kernel<{name.removeprefix('aten::')}>", seconds)]
