"""The environment of a run, read from the machine: versions (torch, CUDA, cuDNN, the driver through
NVML, diffusers, transformers), the GPU as the device describes itself, the processor from
/proc/cpuinfo. The keys and what a change of each means are ``pytest_i2v.verdict.fingerprint``'s
(pure); reading them needs torch and NVML, so it lives here, with the measurement."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import pytest_i2v
from pytest_i2v.measure.device import DeviceInfo
from pytest_i2v.storage import Environment
from pytest_i2v.verdict.fingerprint import (
    GPU_CLOCKS_KEY,
    gpu_form_from_name,
    parse_cpu_isa,
    parse_cpu_model,
    parse_physical_cores,
)

# torch and pynvml are imported where their versions and the GPU are read: pynvml may be absent.


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # no driver, no NVML: the fingerprint just lacks it
        return None


def _cudnn_version() -> str | None:
    """cuDNN's version, or None: a build can report cuDNN available and still fail (or return
    None) when asked its version, e.g. a mismatched libcudnn; the fingerprint must not crash."""
    import torch

    try:
        version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:
        return None
    return str(version) if version else None


def _read_cpuinfo() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def collect_environment(
    device: str,
    gpu: DeviceInfo | None = None,
    cpuinfo: str | None = None,
    gpu_clocks: str | None = None,
) -> Environment:
    """``gpu``: the measured device as it describes itself (``Device.info()``), None on the CPU;
    ``cpuinfo``: the text of /proc/cpuinfo (read here when not given); ``gpu_clocks``: the clocks
    --i2v-lock-clocks holds (``LockedClocks.label``), None when not locked (the key is then
    absent)."""
    import torch

    cpuinfo = cpuinfo if cpuinfo is not None else _read_cpuinfo()
    gpu_name, gpu_memory_gib = (
        (gpu.name, gpu.total_bytes / 2**30) if gpu is not None else (None, None)
    )
    power_limit = gpu.power_limit_w if gpu is not None else None
    locked = {GPU_CLOCKS_KEY: gpu_clocks} if gpu_clocks is not None else {}
    return {
        "device": device,
        "gpu_name": gpu_name,
        "gpu_memory_gib": round(gpu_memory_gib, 2) if gpu_memory_gib else None,
        "gpu_sm_count": gpu.sm_count if gpu is not None else None,
        "gpu_power_limit_w": round(power_limit)
        if power_limit
        else None,  # whole watts: limits are set in W
        "gpu_form": (gpu.form or gpu_form_from_name(gpu.name)) if gpu is not None else None,
        "driver": _driver_version() if gpu_name else None,
        "cuda": torch.version.cuda,
        "cudnn": _cudnn_version(),
        "torch": str(torch.__version__),
        "diffusers": _version("diffusers"),
        "transformers": _version("transformers"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_model": (parse_cpu_model(cpuinfo) if cpuinfo else None)
        or platform.processor()
        or None,
        "cpu_isa": parse_cpu_isa(cpuinfo) if cpuinfo else None,
        "cpu_physical_cores": (parse_physical_cores(cpuinfo) if cpuinfo else None)
        or os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "plugin": pytest_i2v.__version__,
        **locked,
    }
