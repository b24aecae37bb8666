"""A pytest plugin that puts the plugin on the simulated CUDA device (``measure.simulated``).

Only for the tests and ``gpu-check --dry-run``: ``pytest -p pytest_i2v.simulated_plugin``. The
cards come from ``PYTEST_I2V_SIMULATED_GPUS`` (a JSON list of ``SimulatedGpu`` fields; one H200
when unset); throttling is driven there too: ``[{"throttled": {"2": {"reasons_mask": 32}}}]``
throttles the device's second generation (see ``SimulatedGpu``). Pipelines compute on the CPU;
their weights count as resident on the simulated GPU unless an offload mode keeps them on the
host, and each denoiser/decoder forward holds activations sized by its input."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.measure.simulated import SimulatedGpu, SimulatedRuntime

ENV_GPUS = "PYTEST_I2V_SIMULATED_GPUS"
ENV_MEMORY_FRACTION = "PYTEST_I2V_SIMULATED_MEMORY_FRACTION"


def runtime_from_env() -> SimulatedRuntime:
    raw = os.environ.get(ENV_GPUS, "")
    gpus = [SimulatedGpu.from_dict(g) for g in json.loads(raw)] if raw.strip() else [SimulatedGpu()]
    return SimulatedRuntime(gpus=gpus)


RUNTIME = runtime_from_env()


@pytest.hookimpl(tryfirst=True)
def pytest_i2v_device_runtime() -> Any:
    """The simulated machine."""
    return RUNTIME


@pytest.hookimpl(tryfirst=True)
def pytest_i2v_load_pipeline(key: Any, work_dir: Path, allow_pickle: bool) -> Any:
    """Load on the CPU, then count the weights on the simulated device and start its workload."""
    from pytest_i2v.models.sources import load_pipeline

    loaded = load_pipeline(replace(key, offload=None), work_dir, allow_pickle=allow_pickle)
    device = RUNTIME.last_opened
    if device is None:
        return replace(loaded, key=key)
    fraction = os.environ.get(ENV_MEMORY_FRACTION)
    if fraction:
        device.set_memory_fraction(float(fraction))
    device.remove_weights()  # a reload replaces the previous pipeline's weights
    if key.offload is None:
        device.place_weights(loaded.pipe)
    from pytest_i2v.pipelines.base import adapter_for

    adapter = adapter_for(key.pipeline)
    device.attach(loaded.pipe, [*adapter.denoisers(loaded.pipe), adapter.vae_decoder(loaded.pipe)])  # for its lifetime
    return replace(loaded, key=key)
