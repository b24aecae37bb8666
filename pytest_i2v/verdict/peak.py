"""The one memory figure that stands for a test: budgets, the gate, the charts, the tables and the
recommendation all use ``headline_peak`` and nothing else chooses.

The order, first available wins:
1. NVML, this process (``device_scope == "process"``): what the process holds on the card, the
   CUDA context and non-torch allocations included; what ``nvidia-smi`` shows per process, as the
   study measured. The allocator's cache only grows within a run, so sampling misses no peak of it.
2. The allocator's peak reserved: the same without the context, where per-process NVML figures are
   missing (containers, MIG). A device-wide NVML figure is never the headline: it counts other
   processes.
3. The allocator's peak allocated (reserved was not reported).
4. The host RSS high-water mark: the CPU, where there is no device memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LABELS = {
    "device_bytes": "NVML, this process",
    "reserved_bytes": "peak reserved",
    "allocated_bytes": "peak allocated",
    "host_rss_bytes": "peak host RSS",
}
SCOPES = {
    "device_bytes": "process",
    "reserved_bytes": "allocator",
    "allocated_bytes": "allocator",
    "host_rss_bytes": "host",
}


# A peak_memory field: a byte count, or the NVML figure's scope ("process", "device")
PeakField = int | float | str | None


@dataclass(frozen=True)
class HeadlinePeak:
    bytes: int | None
    key: str | None  # the peak_memory field it came from; None when nothing was measured
    label: str  # "NVML, this process", "peak reserved", ...
    scope: str  # "process", "allocator", "host" or "none"

    @property
    def gb(self) -> float | None:
        return self.bytes / 1e9 if self.bytes is not None else None


def headline_peak(peak_memory: Mapping[str, PeakField] | None) -> HeadlinePeak:
    peak = peak_memory or {}
    candidates = ["reserved_bytes", "allocated_bytes", "host_rss_bytes"]
    if peak.get("device_scope") == "process":
        candidates.insert(0, "device_bytes")
    for key in candidates:
        value = peak.get(key)
        if value:
            return HeadlinePeak(int(value), key, LABELS[key], SCOPES[key])
    return HeadlinePeak(None, None, "not measured", "none")
