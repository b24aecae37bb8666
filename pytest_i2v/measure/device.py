"""The one seam between measurement and the accelerator.

Everything the runner asks of a GPU goes through a ``Device``: synchronise, time with events,
allocator statistics, free the cache, NVML readings. ``CudaDevice`` names its index in every
call (so ``cuda:1`` never reads GPU 0); ``CpuDevice`` is the no-op host; the simulated device in
``measure.simulated`` lets the CPU CI drive the CUDA code paths (tests and ``gpu-check --dry-run``
only, never a measurement run)."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.measure.clocks import NvmlClocks

# Where an NVML memory figure comes from: this process (per-process accounting), the whole device
# (containers, MIG, old drivers hide per-process figures), or nowhere.
MemoryScope = Literal["process", "device", "unavailable"]


class NvmlWarning(UserWarning):
    """NVML could not be used (driver/library mismatch, no driver): device figures are missing."""


@dataclass(frozen=True)
class DeviceInfo:
    """The device as it describes itself: what the machine half of the fingerprint is made of."""

    name: str
    total_bytes: int
    index: int | None = None
    sm_count: int | None = None  # streaming multiprocessors (a cut-down board has fewer)
    power_limit_w: float | None = None  # the enforced power limit: a capped card is a slower machine
    form: str | None = None  # "PCIe", "SXM", "NVL"; None: read from the name (fingerprint.gpu_form_from_name)


@dataclass(frozen=True)
class NvmlReading:
    used_bytes: int | None
    scope: MemoryScope


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

    def now(self) -> float:
        """Host seconds for a generation's synchronised total (``perf_counter``; a simulated device's
        virtual time)."""
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


class CpuDevice:
    """The host: no allocator statistics, no NVML, nothing to synchronise."""

    name = "cpu"
    placement = "cpu"
    is_cuda = False
    nvml_note: str | None = None

    def activate(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        pass

    def clock(self) -> Clock:
        return HostClock()

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


class CudaEventClock:
    """CUDA events recorded on the device's current stream: no host sync inside the loop; read
    once after the final synchronise."""

    def __init__(self, device: Any):
        self._device = device

    def mark(self) -> Any:
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self._device))
        return event

    def seconds_between(self, start: Any, end: Any) -> float:
        return float(start.elapsed_time(end)) / 1000.0


class NvmlHandle:
    """One GPU through NVML, opened by UUID (NVML's order can differ from CUDA's), with the
    scope of each reading. Opening never raises: a mismatch is one warning, then 'unavailable'."""

    def __init__(self, nvml: Any, uuid: str | None, index: int):
        self._nvml = nvml
        self._handle: Any = None
        self.note: str | None = None
        try:
            nvml.nvmlInit()
            handle = None
            if uuid:
                with contextlib.suppress(Exception):
                    handle = nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
            self._handle = handle if handle is not None else nvml.nvmlDeviceGetHandleByIndex(index)
        except Exception as exc:  # no driver, or a driver older than the library
            kind = type(exc).__name__
            # pynvml: NVMLError_LibRmVersionMismatch, "RM has detected an NVML/RM version mismatch."
            if "VersionMismatch" in kind or "version mismatch" in str(exc).lower():
                self.note = f"NVML driver/library version mismatch ({kind}): device memory not measured"
            else:
                self.note = f"NVML unavailable ({kind}): device memory not measured"
            warnings.warn(NvmlWarning(f"pytest-i2v: {self.note}"), stacklevel=2)

    @property
    def available(self) -> bool:
        return self._handle is not None

    @property
    def handle(self) -> Any:
        return self._handle

    def read(self) -> NvmlReading:
        if self._handle is None:
            return NvmlReading(None, "unavailable")
        nvml, pid = self._nvml, os.getpid()
        try:
            for process in nvml.nvmlDeviceGetComputeRunningProcesses(self._handle):
                used = getattr(process, "usedGpuMemory", None)
                if process.pid == pid and used:
                    return NvmlReading(int(used), "process")
        except Exception:
            pass  # per-process figures need driver support (not in some containers, not on MIG)
        try:
            return NvmlReading(int(nvml.nvmlDeviceGetMemoryInfo(self._handle).used), "device")
        except Exception as exc:
            self.note = f"NVML failed mid-run ({type(exc).__name__}): later samples are missing"
            self._handle = None
            return NvmlReading(None, "unavailable")


class CudaDevice:
    """One CUDA device, by index: every torch.cuda call names it."""

    is_cuda = True

    def __init__(self, index: int, nvml: Any = None):
        import torch

        self.index = index
        self.name = f"cuda:{index}"
        self.placement = self.name
        self._torch_device = torch.device("cuda", index)
        self._nvml_module = nvml
        self._nvml: NvmlHandle | None = None
        self._clocks: NvmlClocks | None = None

    def activate(self) -> contextlib.AbstractContextManager[None]:
        import torch

        return torch.cuda.device(self.index)

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self._torch_device)

    def clock(self) -> Clock:
        return CudaEventClock(self._torch_device)

    def now(self) -> float:
        return time.perf_counter()

    def empty_cache(self) -> None:
        import torch

        with torch.cuda.device(self.index):  # empty_cache frees the current device's cache
            torch.cuda.empty_cache()

    def reset_peak_stats(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(self._torch_device)

    def allocated_bytes(self) -> int | None:
        import torch

        return int(torch.cuda.memory_allocated(self._torch_device))

    def reserved_bytes(self) -> int | None:
        import torch

        return int(torch.cuda.memory_reserved(self._torch_device))

    def peak_allocated_bytes(self) -> int | None:
        import torch

        return int(torch.cuda.max_memory_allocated(self._torch_device))

    def peak_reserved_bytes(self) -> int | None:
        import torch

        return int(torch.cuda.max_memory_reserved(self._torch_device))

    def info(self) -> DeviceInfo | None:
        import torch

        properties = torch.cuda.get_device_properties(self.index)
        # form=None: NVML has no form-factor query for these boards; the fingerprint reads the name.
        return DeviceInfo(name=str(properties.name), total_bytes=int(properties.total_memory), index=self.index,
                          sm_count=getattr(properties, "multi_processor_count", None),
                          power_limit_w=self._power_limit_w())

    def _power_limit_w(self) -> float | None:
        """NVML's enforced power limit (what the board is held to), else the management limit, in W;
        None where NVML cannot say (its opening already warned once)."""
        handle = self._handle()
        if not handle.available:
            return None
        nvml = self._nvml_library()
        for query in ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"):
            with contextlib.suppress(Exception):  # not supported on this board or driver: try the next
                return float(getattr(nvml, query)(handle.handle)) / 1000.0  # NVML reports milliwatts
        return None

    def _nvml_library(self) -> Any:
        """The NVML module given (a stand-in in tests), else pynvml."""
        if self._nvml_module is None:
            import pynvml

            self._nvml_module = pynvml
        return self._nvml_module

    def _handle(self) -> NvmlHandle:
        if self._nvml is None:
            import torch

            uuid = getattr(torch.cuda.get_device_properties(self.index), "uuid", None)
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
    def nvml(self) -> NvmlHandle:
        return self._handle()


def parse_device(name: str, cuda_count: int) -> tuple[str, int | None]:
    """``cpu`` / ``cuda`` / ``cuda:N`` -> (kind, index); a missing GPU or an index out of range is a
    usage error in one line."""
    if name == "cpu":
        return "cpu", None
    if name != "cuda" and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise I2VUsageError(f"--i2v-device {name!r}: use cpu, cuda or cuda:N")
    index = int(name[5:]) if name.startswith("cuda:") else 0
    if cuda_count == 0:
        raise I2VUsageError(f"--i2v-device {name}: CUDA is not available here; use --i2v-device cpu")
    if index >= cuda_count:
        raise I2VUsageError(f"--i2v-device {name}: this machine has {cuda_count} CUDA device(s) "
                            f"(cuda:0 to cuda:{cuda_count - 1}); pick one of those")
    return "cuda", index


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
