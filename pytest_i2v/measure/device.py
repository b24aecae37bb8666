"""The one seam between measurement and the accelerator.

Everything the runner asks of a GPU goes through a ``Device``: synchronise, time with events,
allocator statistics, free the cache, NVML readings. ``CudaDevice`` names its index in every
call (so ``cuda:1`` never reads GPU 0); ``CpuDevice`` is the no-op host; the simulated device in
``measure.simulated`` lets the CPU CI drive the CUDA code paths (tests and ``gpu-check --dry-run``
only, never a measurement run)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_i2v.measure.clocks import NvmlClocks
from pytest_i2v.measure.device_name import parse_device
from pytest_i2v.measure.nvml import NvmlHandle, NvmlReading

# torch and pynvml are imported where a device is opened or read: importing this module (the
# runtime seam, its types) stays cheap, and pynvml may be absent.


@dataclass(frozen=True)
class DeviceInfo:
    """The device as it describes itself: what the machine half of the fingerprint is made of."""

    name: str
    total_bytes: int
    index: int | None = None
    sm_count: int | None = None  # streaming multiprocessors (a cut-down board has fewer)
    power_limit_w: float | None = (
        None  # the enforced power limit: a capped card is a slower machine
    )
    form: str | None = (
        None  # "PCIe", "SXM", "NVL"; None: read from the name (fingerprint.gpu_form_from_name)
    )


class Clock(Protocol):
    def mark(self) -> Any: ...

    def seconds_between(self, start: Any, end: Any) -> float: ...


class HostClock:
    """``perf_counter`` marks: right where the work is synchronous (the CPU)."""

    def mark(self) -> float:
        return time.perf_counter()

    def seconds_between(self, start: Any, end: Any) -> float:
        return float(end - start)


class Device(Protocol):
    """What the runner needs of the device it measures on."""

    name: str  # as recorded: "cpu", "cuda:1"
    placement: str  # where tensors go (the simulated device computes on the CPU)
    is_cuda: bool

    def activate(self) -> contextlib.AbstractContextManager[None]: ...

    def synchronize(self) -> None: ...

    def clock(self) -> Clock: ...

    def trace_activities(self) -> tuple[str, ...]:
        """What torch.profiler records here: ("cpu",), or ("cpu", "cuda") where CUPTI records
        kernels."""
        ...

    def kernels_of(self, event: Any) -> list[tuple[str, float]]:
        """The kernels (name, device seconds) a profiled host op launched; none on the CPU."""
        ...

    def now(self) -> float:
        """Host seconds for a generation's synchronised total (``perf_counter``; a simulated
        device's virtual time)."""
        ...

    def empty_cache(self) -> None: ...

    def reset_peak_stats(self) -> None: ...

    def allocated_bytes(self) -> int | None: ...

    def reserved_bytes(self) -> int | None: ...

    def peak_allocated_bytes(self) -> int | None: ...

    def peak_reserved_bytes(self) -> int | None: ...

    def info(self) -> DeviceInfo | None: ...

    def nvml_memory(self) -> NvmlReading: ...

    def nvml_clocks(self) -> NvmlClocks | None:
        """The clocks and conditions through NVML (one object per device, which holds a lock); None
        without NVML."""
        ...

    @property
    def nvml_note(self) -> str | None: ...

    @property
    def nvml_opened_by(self) -> str | None:
        """Which NVML device its figures come from ("UUID GPU-...", "index 0"); None without
        NVML."""
        ...


class CpuDevice:
    """The host: no allocator statistics, no NVML, nothing to synchronise."""

    name = "cpu"
    placement = "cpu"
    is_cuda = False
    nvml_note: str | None = None
    nvml_opened_by: str | None = None

    def activate(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        pass

    def clock(self) -> Clock:
        return HostClock()

    def trace_activities(self) -> tuple[str, ...]:
        return ("cpu",)

    def kernels_of(self, event: Any) -> list[tuple[str, float]]:
        return []

    def now(self) -> float:
        return time.perf_counter()

    def empty_cache(self) -> None:
        pass

    def reset_peak_stats(self) -> None:
        pass

    def allocated_bytes(self) -> int | None:
        return None

    def reserved_bytes(self) -> int | None:
        return None

    def peak_allocated_bytes(self) -> int | None:
        return None

    def peak_reserved_bytes(self) -> int | None:
        return None

    def info(self) -> DeviceInfo | None:
        return None

    def nvml_memory(self) -> NvmlReading:
        return NvmlReading(None, "unavailable")

    def nvml_clocks(self) -> NvmlClocks | None:
        return None


def _torch_cuda() -> Any:
    import torch

    return torch.cuda


class CudaEventClock:
    """CUDA events recorded on the device's current stream: no host sync inside the loop; read
    once after the final synchronise. ``cuda``: the torch.cuda to call (a stand-in in the tests)."""

    def __init__(self, device: Any, cuda: Any = None):
        self._device = device
        self._cuda = cuda or _torch_cuda()

    def mark(self) -> Any:
        event = self._cuda.Event(enable_timing=True)
        event.record(self._cuda.current_stream(self._device))
        return event

    def seconds_between(self, start: Any, end: Any) -> float:
        return float(start.elapsed_time(end)) / 1000.0


class CuptiKernels:
    """What a real CUDA device adds to a profiler trace: the kernels CUPTI recorded for each op."""

    activities = ("cpu", "cuda")

    def kernels_of(self, event: Any) -> list[tuple[str, float]]:
        return list(
            event.kernels
        )  # measure.trace linked CUPTI's records to the op that launched them


class CudaDevice:
    """One CUDA device, by index: every torch.cuda call names it. ``nvml`` and ``cuda``: the pynvml
    and torch.cuda to call (the simulated device's stand-ins; None: the real ones); ``placement``:
    where its tensors go (the simulated device computes on the CPU)."""

    is_cuda = True

    def __init__(
        self,
        index: int,
        nvml: Any = None,
        cuda: Any = None,
        placement: str | None = None,
        kernels: Any = None,
    ):
        import torch

        self.index = index
        self.name = f"cuda:{index}"
        self.placement = placement or self.name
        self._torch_device = torch.device("cuda", index)
        self._cuda = cuda or _torch_cuda()
        self._kernels = (
            kernels or CuptiKernels()
        )  # the simulated card's: measure.simulated_libs.SimulatedKernels
        self._nvml_module = nvml
        self._nvml: NvmlHandle | None = None
        self._clocks: NvmlClocks | None = None

    def activate(self) -> contextlib.AbstractContextManager[None]:
        return self._cuda.device(self.index)  # type: ignore[no-any-return]

    def synchronize(self) -> None:
        self._cuda.synchronize(self._torch_device)

    def clock(self) -> Clock:
        return CudaEventClock(self._torch_device, self._cuda)

    def trace_activities(self) -> tuple[str, ...]:
        return tuple(self._kernels.activities)

    def kernels_of(self, event: Any) -> list[tuple[str, float]]:
        return list(self._kernels.kernels_of(event))

    def now(self) -> float:
        return time.perf_counter()

    def empty_cache(self) -> None:
        with self._cuda.device(self.index):  # empty_cache frees the current device's cache
            self._cuda.empty_cache()

    def reset_peak_stats(self) -> None:
        self._cuda.reset_peak_memory_stats(self._torch_device)

    def allocated_bytes(self) -> int | None:
        return int(self._cuda.memory_allocated(self._torch_device))

    def reserved_bytes(self) -> int | None:
        return int(self._cuda.memory_reserved(self._torch_device))

    def peak_allocated_bytes(self) -> int | None:
        return int(self._cuda.max_memory_allocated(self._torch_device))

    def peak_reserved_bytes(self) -> int | None:
        return int(self._cuda.max_memory_reserved(self._torch_device))

    def info(self) -> DeviceInfo | None:
        properties = self._cuda.get_device_properties(self.index)
        # form=None: NVML has no form-factor query for these boards; the fingerprint reads the name.
        return DeviceInfo(
            name=str(properties.name),
            total_bytes=int(properties.total_memory),
            index=self.index,
            sm_count=getattr(properties, "multi_processor_count", None),
            power_limit_w=self._power_limit_w(),
        )

    def _power_limit_w(self) -> float | None:
        """NVML's enforced power limit (what the board is held to), else the management limit, in W;
        None where NVML cannot say (its opening already warned once)."""
        handle = self._handle()
        if not handle.available:
            return None
        nvml = self._nvml_library()
        for query in ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"):
            with contextlib.suppress(
                Exception
            ):  # not supported on this board or driver: try the next
                return (
                    float(getattr(nvml, query)(handle.handle)) / 1000.0
                )  # NVML reports milliwatts
        return None

    def _nvml_library(self) -> Any:
        """The NVML module given (a stand-in in tests), else pynvml."""
        if self._nvml_module is None:
            import pynvml

            self._nvml_module = pynvml
        return self._nvml_module

    def _handle(self) -> NvmlHandle:
        if self._nvml is None:
            uuid = getattr(self._cuda.get_device_properties(self.index), "uuid", None)
            self._nvml = NvmlHandle(self._nvml_library(), str(uuid) if uuid else None, self.index)
        return self._nvml

    def nvml_memory(self) -> NvmlReading:
        return self._handle().read()

    def nvml_clocks(self) -> NvmlClocks | None:
        handle = self._handle()
        if not handle.available:
            return None
        if self._clocks is None:
            self._clocks = NvmlClocks(self._nvml_library(), handle.handle, self.name)
        return self._clocks

    @property
    def nvml_note(self) -> str | None:
        return self._handle().note

    @property
    def nvml_opened_by(self) -> str | None:
        return self._handle().opened_by

    @property
    def nvml(self) -> NvmlHandle:
        return self._handle()


class DeviceRuntime(Protocol):
    """What the machine has: how many CUDA devices, and a ``Device`` for one of them."""

    def cuda_count(self) -> int: ...

    def open(self, name: str) -> Device: ...


class TorchRuntime:
    """The real machine, through torch.cuda (guarded: a CPU build of torch has no CUDA)."""

    def cuda_count(self) -> int:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0

    def open(self, name: str) -> Device:
        kind, index = parse_device(name, self.cuda_count())
        if kind == "cpu" or index is None:
            return CpuDevice()
        return CudaDevice(index)
