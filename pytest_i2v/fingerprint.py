"""The environment a measurement was taken in: GPU, driver, CUDA, library versions.

No serial numbers, UUIDs or host names. Extended through the ``pytest_i2v_environment`` hook."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import torch

import pytest_i2v
from pytest_i2v.measure.device import DeviceInfo


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
    try:
        version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:
        return None
    return str(version) if version else None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# Keys of the environment that decide whether two runs are comparable.
FINGERPRINT_KEYS = ("gpu_name", "gpu_memory_gib", "driver", "cuda", "cudnn", "torch", "diffusers", "transformers",
                    "python", "plugin")
CPU_FINGERPRINT_KEYS = ("cpu_model", "cpu_threads")


def attention_backend(memory_options: list[str] | tuple[str, ...]) -> str:
    if "eager_attention" in memory_options:
        return "eager"
    if "attention_slicing" in memory_options:
        return "sliced"
    return "sdpa"


def fingerprint_for(environment: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The environment fingerprint of one measured test: the machine and libraries, plus the
    dtype and attention backend it ran with. Keys added through the environment hook count too."""
    keys = list(FINGERPRINT_KEYS)
    if environment.get("gpu_name") is None:
        keys += CPU_FINGERPRINT_KEYS  # on the CPU the processor is the "GPU"
    extra = [k for k in environment if k not in _BASE_ENVIRONMENT_KEYS]
    fingerprint = {key: environment.get(key) for key in keys + extra}
    fingerprint["dtype"] = config.get("dtype")
    # a diffusers attention backend named by the mark (attention=...), else the one the memory options imply
    fingerprint["attention"] = config.get("attention") or attention_backend(config.get("memory") or ())
    return fingerprint


def collect_environment(device: str, gpu: DeviceInfo | None = None) -> dict[str, Any]:
    """``gpu``: the measured device as it describes itself (``Device.info()``), None on the CPU."""
    gpu_name, gpu_memory_gib = (gpu.name, gpu.total_bytes / 2**30) if gpu is not None else (None, None)
    return {
        "device": device,
        "gpu_name": gpu_name,
        "gpu_memory_gib": round(gpu_memory_gib, 2) if gpu_memory_gib else None,
        "driver": _driver_version() if gpu_name else None,
        "cuda": torch.version.cuda,
        "cudnn": _cudnn_version(),
        "torch": str(torch.__version__),
        "diffusers": _version("diffusers"),
        "transformers": _version("transformers"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_threads": torch.get_num_threads(),
        "plugin": pytest_i2v.__version__,
    }


# Everything collect_environment reports; other keys come from pytest_i2v_environment hooks.
_BASE_ENVIRONMENT_KEYS = frozenset({
    "device", "gpu_name", "gpu_memory_gib", "driver", "cuda", "cudnn", "torch", "diffusers", "transformers",
    "python", "machine", "cpu_model", "cpu_threads", "plugin", "profile",
})
