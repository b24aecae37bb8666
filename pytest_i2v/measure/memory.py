"""Peak memory: the torch CUDA allocator, NVML device memory (sampled by a thread) and host RSS.

Every CUDA/NVML call is guarded: on a CPU-only machine the CUDA figures are ``None``."""

from __future__ import annotations

import os
import re
import resource
import threading
from dataclasses import asdict, dataclass
from typing import Any

import torch

NVML_SAMPLE_PERIOD_S = 0.01


@dataclass(frozen=True)
class PeakMemory:
    allocated_bytes: int | None = None  # torch allocator max_memory_allocated
    reserved_bytes: int | None = None  # torch allocator max_memory_reserved
    device_bytes: int | None = None  # NVML, this process where the driver tells, else the device
    host_rss_bytes: int | None = None  # host resident-set high-water mark

    def to_dict(self) -> dict[str, int | None]:
        return asdict(self)

    @staticmethod
    def max_of(peaks: list[PeakMemory]) -> PeakMemory:
        def largest(name: str) -> int | None:
            values = [getattr(p, name) for p in peaks if getattr(p, name) is not None]
            return max(values) if values else None

        return PeakMemory(*(largest(n) for n in ("allocated_bytes", "reserved_bytes", "device_bytes", "host_rss_bytes")))


def cuda_in_use(device: str) -> bool:
    return device.startswith("cuda") and torch.cuda.is_available()


class AllocatorPeak:
    def __init__(self, device: str):
        self._device = device
        self._active = cuda_in_use(device)

    def reset(self) -> None:
        if self._active:
            torch.cuda.reset_peak_memory_stats(self._device)

    def read(self) -> tuple[int | None, int | None]:
        if not self._active:
            return None, None
        return torch.cuda.max_memory_allocated(self._device), torch.cuda.max_memory_reserved(self._device)

    def current_allocated(self) -> int | None:
        return torch.cuda.memory_allocated(self._device) if self._active else None


class HostRssPeak:
    """VmHWM from /proc, reset through /proc/self/clear_refs where the kernel allows it;
    otherwise ru_maxrss, which cannot be reset (then it is the process high-water mark)."""

    def __init__(self) -> None:
        self.resettable = os.path.exists("/proc/self/clear_refs")

    def reset(self) -> None:
        if not self.resettable:
            return
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # "5": reset the peak RSS (VmHWM) to the current RSS
        except OSError:
            self.resettable = False

    @staticmethod
    def current() -> int | None:
        try:
            with open("/proc/self/status") as handle:
                found = re.search(r"VmRSS:\s+(\d+)\s+kB", handle.read())
            return int(found.group(1)) * 1024 if found else None
        except OSError:
            return None

    def read(self) -> int:
        try:
            with open("/proc/self/status") as handle:
                found = re.search(r"VmHWM:\s+(\d+)\s+kB", handle.read())
            if found:
                return int(found.group(1)) * 1024
        except OSError:
            pass
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class NvmlSampler:
    """Samples device memory every 10 ms on a background thread while a repeat runs."""

    def __init__(self, device: str, nvml: Any = None):
        """``nvml``: the pynvml module (tests pass a fake one); imported here when None."""
        self._handle: Any = None
        self._nvml: Any = None
        self.unavailable_reason: str | None = None
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if not cuda_in_use(device) and nvml is None:
            self.unavailable_reason = "no CUDA device"
            return
        try:
            if nvml is not None:
                self._nvml = nvml
                nvml.nvmlInit()
                self._handle = nvml.nvmlDeviceGetHandleByIndex(0)
                return
            import pynvml

            pynvml.nvmlInit()
            index = torch.device(device).index or 0
            uuid = str(torch.cuda.get_device_properties(index).uuid)
            try:
                self._handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
            except pynvml.NVMLError:
                self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._nvml = pynvml
        except Exception as exc:  # NVML missing or failing must not stop a measurement
            self.unavailable_reason = f"NVML unavailable: {type(exc).__name__}"

    @property
    def available(self) -> bool:
        return self._handle is not None

    def _sample(self) -> int:
        nvml = self._nvml
        pid = os.getpid()
        try:
            for process in nvml.nvmlDeviceGetComputeRunningProcesses(self._handle):
                if process.pid == pid and process.usedGpuMemory:
                    return int(process.usedGpuMemory)
        except nvml.NVMLError:
            pass  # per-process figures need driver support (not in some containers)
        return int(nvml.nvmlDeviceGetMemoryInfo(self._handle).used)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._peak = max(self._peak, self._sample())
            except Exception as exc:
                self.unavailable_reason = f"NVML failed mid-run: {type(exc).__name__}"
                self._handle = None
                return
            self._stop.wait(NVML_SAMPLE_PERIOD_S)

    def start(self) -> None:
        if not self.available:
            return
        self._peak = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="i2v-nvml-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> int | None:
        if self._thread is None:
            return None
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self.available:
            try:
                self._peak = max(self._peak, self._sample())
            except Exception:
                pass
        # What was sampled before a mid-run failure still counts.
        return self._peak or None


def free_device_memory(device: str) -> None:
    import gc

    gc.collect()
    if cuda_in_use(device):
        torch.cuda.empty_cache()
