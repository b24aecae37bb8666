"""Hooks users can implement in a conftest.py to swap parts of pytest-i2v."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_i2v_load_pipeline(key: Any, work_dir: Path, allow_pickle: bool) -> Any:
    """Load the pipeline for ``key`` (a ``PipelineKey``) and return a ``LoadedPipeline``;
    ``allow_pickle``: whether pickle weights may be loaded (--i2v-allow-pickle).

    Called once per key per session; the first non-None result wins (the plugin's default
    loads from ``key.source``)."""


@hookspec
def pytest_i2v_environment(environment: dict[str, Any]) -> None:
    """Add or change entries of the environment fingerprint in place (e.g. a container image tag).

    Keep it free of serial numbers and host names: it is stored in baselines."""


@hookspec(firstresult=True)
def pytest_i2v_device_runtime() -> Any:
    """Return the ``DeviceRuntime`` that opens devices (``pytest_i2v.measure.device``).

    The plugin's default is the real machine through torch.cuda; the tests return a simulated one."""
