"""The environment a measurement was taken in: GPU, driver, CUDA, library versions.

No serial numbers, UUIDs or host names. Extended through the ``pytest_i2v_environment`` hook."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import torch

import pytest_i2v


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def detect_gpu(device: str | None = None) -> tuple[str | None, float | None]:
    """(device name, memory in GiB) of the CUDA device, or (None, None) without one."""
    if not torch.cuda.is_available():
        return None, None
    index = torch.device(device).index if device and device.startswith("cuda") else None
    properties = torch.cuda.get_device_properties(index or 0)
    return str(properties.name), properties.total_memory / 2**30


def _driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # no driver, no NVML: the fingerprint just lacks it
        return None


def collect_environment(device: str) -> dict[str, Any]:
    gpu_name, gpu_memory_gib = detect_gpu(device) if device.startswith("cuda") else (None, None)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "device": device,
        "gpu_name": gpu_name,
        "gpu_memory_gib": round(gpu_memory_gib, 2) if gpu_memory_gib else None,
        "driver": _driver_version() if gpu_name else None,
        "cuda": torch.version.cuda,
        "cudnn": str(cudnn) if cudnn else None,
        "torch": torch.__version__,
        "diffusers": _version("diffusers"),
        "transformers": _version("transformers"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "plugin": pytest_i2v.__version__,
    }
