"""A pytest plugin that puts the plugin on the simulated CUDA device (``measure.simulated``).

Only for the tests and ``gpu-check --dry-run``: ``pytest -p pytest_i2v.simulated_plugin``. The
cards come from ``PYTEST_I2V_SIMULATED_GPUS`` (a JSON list of ``SimulatedGpu`` fields; one H200
when unset); throttling is driven there too: ``[{"throttled": {"2": {"reasons_mask": 32}}}]``
throttles the device's second generation (see ``SimulatedGpu``). Pipelines compute on the CPU;
their weights count as resident on the simulated GPU unless an offload mode keeps them on the
host, and each denoiser/decoder forward holds activations sized by its input.

``PYTEST_I2V_VIRTUAL_TIME=1`` (or a JSON object of ``VirtualWork`` fields) times every device it
opens, the CPU included, on the deterministic virtual clock; a test's conftest injects work with
``add_work(seconds)`` (virtual seconds there, a real sleep otherwise). With
``PYTEST_I2V_SIMULATED_GPUS='[]'`` the machine has no GPU: the CPU profiles on virtual time."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.measure.simulated import SimulatedRuntime
from pytest_i2v.measure.simulated_gpu import SimulatedGpu
from pytest_i2v.measure.virtual_time import VirtualCpuDevice, VirtualWork

# The pipeline loaders (torch, diffusers) are imported inside the hook that loads a pipeline:
# ``-p pytest_i2v.simulated_plugin`` must stay cheap for runs that never load one.
ENV_GPUS = "PYTEST_I2V_SIMULATED_GPUS"
ENV_MEMORY_FRACTION = "PYTEST_I2V_SIMULATED_MEMORY_FRACTION"
ENV_VIRTUAL_TIME = "PYTEST_I2V_VIRTUAL_TIME"


def runtime_from_env() -> SimulatedRuntime:
    raw = os.environ.get(ENV_GPUS, "")
    gpus = [SimulatedGpu.from_dict(g) for g in json.loads(raw)] if raw.strip() else [SimulatedGpu()]
    return SimulatedRuntime(
        gpus=gpus, work=VirtualWork.from_env(os.environ.get(ENV_VIRTUAL_TIME, ""))
    )


RUNTIME = runtime_from_env()


def add_work(seconds: float) -> None:
    """Work a test injects into the generation under way (e.g. from a forward pre-hook): virtual
    seconds on the device being measured when the clock is virtual, else a real sleep."""
    device = RUNTIME.last_opened
    if device is None:
        time.sleep(seconds)
    else:
        device.add_work(seconds)


@pytest.hookimpl(tryfirst=True)
def pytest_i2v_device_runtime() -> Any:
    """The simulated machine."""
    return RUNTIME


@pytest.hookimpl(tryfirst=True)
def pytest_i2v_load_pipeline(key: Any, work_dir: Path, allow_pickle: bool, wrap: Any) -> Any:
    """Load on the CPU, then count the weights on the simulated device and start its workload."""
    from pytest_i2v.pipelines.base import adapter_for
    from pytest_i2v.pipelines.loading import load_pipeline

    # The real placement calls run (offload hooks and all), on the CPU the simulated card computes
    # on.
    loaded = load_pipeline(key, work_dir, allow_pickle=allow_pickle, wrap=wrap)
    device = RUNTIME.last_opened
    if device is None:
        return replace(loaded, key=key)
    adapter = adapter_for(key.pipeline)
    timed = [*adapter.denoisers(loaded.pipe), adapter.vae_decoder(loaded.pipe)]
    if isinstance(device, VirtualCpuDevice):
        device.attach(loaded.pipe, timed)  # for its lifetime
        return replace(loaded, key=key)
    fraction = os.environ.get(ENV_MEMORY_FRACTION)
    if fraction:
        device.set_memory_fraction(float(fraction))
    device.remove_weights()  # a reload replaces the previous pipeline's weights
    device.place_pipeline(loaded.pipe, key.offload)  # resident as the real placement keeps them
    device.attach(loaded.pipe, timed)  # for its lifetime
    return replace(loaded, key=key)
