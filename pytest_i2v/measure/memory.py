"""Peak memory: the torch CUDA allocator, NVML (sampled by a thread, with its scope) and host RSS.

Every figure comes through a ``Device`` (``measure.device``): on the CPU the CUDA figures are
``None``, and a ``cuda:N`` device answers for GPU N, never for the current one."""

from __future__ import annotations

import gc
import os
import re
import resource
import sys
import threading
from typing import Any

from pytest_i2v.measure.clocks import ConditionsReading, NvmlClocks, repeat_conditions
from pytest_i2v.measure.device import Device
from pytest_i2v.record.parts import MemoryLevel, PeakMemory
from pytest_i2v.verdict.conditions import RepeatConditions

NVML_SAMPLE_PERIOD_S = 0.01
# The conditions take six NVML calls a sample; clocks and throttle states last far longer than 10
# ms, so every 10th memory sample reads them (and the first and last of each repeat always do).
CONDITIONS_EVERY_N_SAMPLES = 10


def drop_failed_test_references() -> None:
    """A failed test's traceback keeps its frames, and their tensors, alive: drop what Python keeps
    of the last error (``sys.last_*``) so the next test starts from the pipeline's own memory."""
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            try:
                delattr(sys, name)
            except AttributeError:
                pass


def release_traceback(tb: Any) -> None:
    """Drop the locals of a finished traceback's frames (a failed test's tensors). ``frame.clear()``
    alone leaves the ``f_locals`` snapshot that traceback formatting made (CPython 3.11/3.12)."""
    while tb is not None:
        frame = tb.tb_frame
        try:
            frame.clear()
        except RuntimeError:  # still executing (a generator or this very call): leave it
            tb = tb.tb_next
            continue
        try:
            frame.f_locals.clear()
        except (AttributeError, TypeError, ValueError):
            pass  # 3.13's write-through proxy: clear() already dropped them
        tb = tb.tb_next


def free_device_memory(device: Device) -> None:
    """Collect garbage (tensors in reference cycles), then return the allocator's cache."""
    gc.collect()
    device.empty_cache()


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


def start_level(device: Device) -> MemoryLevel:
    """Free what the previous test left (its cache, its traceback), reset the peak counters and read
    where this test starts. Without it, a 1024p test's reserved and NVML peaks reappear in the
    next."""
    drop_failed_test_references()
    free_device_memory(device)
    device.reset_peak_stats()
    reading = device.nvml_memory()
    return MemoryLevel(
        device.allocated_bytes(),
        device.reserved_bytes(),
        reading.used_bytes,
        reading.scope if device.is_cuda else None,
        HostRssPeak.current(),
    )


class NvmlSampler:
    """Samples the device's NVML memory, and its conditions (clocks, temperature, power, throttle
    reasons), every 10 ms on a background thread while a repeat runs."""

    def __init__(self, device: Device):
        self._device = device
        self._peak = 0
        self._scope: str | None = None
        self._clocks: NvmlClocks | None = None
        self._readings: list[ConditionsReading] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        tick = 0
        while not self._stop.is_set():
            tick += 1
            self._take(conditions=tick % CONDITIONS_EVERY_N_SAMPLES == 0)
            self._stop.wait(NVML_SAMPLE_PERIOD_S)

    def _take(self, conditions: bool = True) -> None:
        if conditions and self._clocks is not None:
            try:
                self._readings.append(self._clocks.read())
            except (
                Exception
            ):  # read() does not raise; a stand-in might, and must not stop the measurement
                pass
        try:
            reading = self._device.nvml_memory()
        except (
            Exception
        ):  # a failing NVML must never stop a measurement (the device keeps the note)
            return
        if reading.used_bytes is None:
            return
        if self._scope is not None and reading.scope != self._scope:
            self._scope = "mixed"  # per-process figures came and went: not comparable
        elif self._scope is None:
            self._scope = reading.scope
        self._peak = max(self._peak, reading.used_bytes)

    def start(self) -> None:
        self._readings = []
        if not self._device.is_cuda:
            return
        self._peak, self._scope = 0, None
        try:
            self._clocks = self._device.nvml_clocks()
        except Exception:
            self._clocks = None
        self._stop.clear()
        self._take()
        self._thread = threading.Thread(target=self._loop, name="i2v-nvml-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> tuple[int | None, str | None]:
        """(peak bytes, scope); (None, "unavailable") where NVML gave nothing."""
        if self._thread is None:
            return None, None
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._take()
        if not self._peak:
            return None, "unavailable"
        return self._peak, self._scope

    def conditions(self) -> RepeatConditions | None:
        """The last repeat's conditions (after ``stop``): None on the CPU; on a GPU without NVML, a
        ``RepeatConditions`` that read nothing."""
        if not self._device.is_cuda:
            return None
        return repeat_conditions(self._readings)


def device_peak(device: Device, nvml: tuple[int | None, str | None], rss: int) -> PeakMemory:
    return PeakMemory(
        device.peak_allocated_bytes(), device.peak_reserved_bytes(), nvml[0], rss, nvml[1]
    )
