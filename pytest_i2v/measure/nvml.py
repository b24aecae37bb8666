"""NVML, the driver's view of a GPU: opened by UUID, each memory reading with its scope (this
process, the whole device, or nothing), and one warning instead of an error when it cannot be
used."""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from typing import Any, Literal

# Where an NVML memory figure comes from: this process (per-process accounting), the whole device
# (containers, MIG, old drivers hide per-process figures), or nowhere.
MemoryScope = Literal["process", "device", "unavailable"]


class NvmlWarning(UserWarning):
    """NVML could not be used (driver/library mismatch, no driver): device figures are missing."""


@dataclass(frozen=True)
class NvmlReading:
    used_bytes: int | None
    scope: MemoryScope


class NvmlHandle:
    """One GPU through NVML, opened by UUID (NVML's order can differ from CUDA's), with the
    scope of each reading. Opening never raises: a mismatch is one warning, then 'unavailable'.

    torch prints a device's UUID bare; NVML names it ``GPU-<uuid>``, or ``MIG-<uuid>`` for a MIG
    instance, so both are tried. NVML's indices are physical and ignore ``CUDA_VISIBLE_DEVICES``: an
    index is used only when the UUID cannot be, nothing renumbers the devices, and never silently
    (``note`` and ``opened_by`` say what is read and why)."""

    def __init__(self, nvml: Any, uuid: str | None, index: int, visible_devices: str | None = None):
        self._nvml = nvml
        self._handle: Any = None
        self.note: str | None = None
        self.opened_by: str | None = (
            None  # "UUID MIG-...", "index 0": which NVML device the figures are
        )
        if visible_devices is None:
            visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        try:
            nvml.nvmlInit()
        except Exception as exc:  # no driver, or a driver older than the library
            kind = type(exc).__name__
            # pynvml: NVMLError_LibRmVersionMismatch, "RM has detected an NVML/RM version mismatch."
            if "VersionMismatch" in kind or "version mismatch" in str(exc).lower():
                self.note = (
                    f"NVML driver/library version mismatch ({kind}): device memory not measured"
                )
            else:
                self.note = f"NVML unavailable ({kind}): device memory not measured"
            warnings.warn(NvmlWarning(f"pytest-i2v: {self.note}"), stacklevel=2)
            return
        bare = uuid[4:] if uuid and uuid.startswith(("GPU-", "MIG-")) else uuid
        for candidate in ([uuid] if uuid and uuid != bare else []) + (
            [f"GPU-{bare}", f"MIG-{bare}"] if bare else []
        ):
            with contextlib.suppress(Exception):
                self._handle = nvml.nvmlDeviceGetHandleByUUID(candidate)
                self.opened_by = f"UUID {candidate}"
                return
        why = (
            f"no NVML device has the UUID of cuda:{index} ({uuid})"
            if uuid
            else f"torch gives no UUID for cuda:{index}"
        )
        if visible_devices:
            # NVML's index N is the machine's N-th GPU, not CUDA's N-th visible one: it would read
            # another card.
            self.note = (
                f"NVML not read: {why}, and CUDA_VISIBLE_DEVICES={visible_devices} renumbers the "
                f"devices, so NVML's index {index} could be another GPU"
            )
        else:
            try:
                self._handle = nvml.nvmlDeviceGetHandleByIndex(index)
                self.opened_by = f"index {index}"
                self.note = f"NVML opened by index {index}: {why}"
            except Exception as exc:
                self.note = (
                    f"NVML not read: {why}, and its index {index} failed ({type(exc).__name__})"
                )
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
