"""Hooks users can implement in a conftest.py to swap parts of pytest-i2v."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # a sibling of storage in the layers: the alias is for the annotation only
    from pytest_i2v.storage import Environment

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_i2v_wrap_pipeline(pipe: Any, key: Any) -> Any:
    """Wrap or replace the pipeline the plugin loaded for ``key`` (a ``pytest_i2v.PipelineKey``);
    return the pipeline to use, or None to keep ``pipe``.

    Called once per load, before the plugin applies the key's memory options, compile, placement
    and the progress-bar switch-off to what you return, and checks each. To load with your own
    class instead, set ini ``i2v_pipeline_class``."""


@hookspec(firstresult=True)
def pytest_i2v_load_pipeline(key: Any, work_dir: Path, allow_pickle: bool, wrap: Any) -> Any:
    """Replace the plugin's loader: load the pipeline for ``key`` (a ``pytest_i2v.PipelineKey``)
    and return a ``pytest_i2v.LoadedPipeline``; ``allow_pickle``: whether pickle weights may be
    loaded (--i2v-allow-pickle); ``wrap(pipe, key)``: the ``pytest_i2v_wrap_pipeline`` hooks.

    Called once per key per session; the first non-None result wins (the plugin's default
    loads from ``key.source``). Your loader must apply ``key.load_options``, ``key.offload`` and
    the placement on ``key.device`` itself: the plugin checks each on the returned modules and
    fails the test with one line naming an option that is not there."""


@hookspec
def pytest_i2v_environment(environment: Environment) -> None:
    """Add or change entries of the environment fingerprint in place (e.g. a container image tag).

    Each value is a string, a number, a boolean or None. Keep it free of serial numbers and host
    names: it is stored in baselines."""


@hookspec(firstresult=True)
def pytest_i2v_device_runtime() -> Any:
    """Return the ``DeviceRuntime`` that opens devices (``pytest_i2v.measure.device``).

    The plugin's default is the real machine through torch.cuda; the tests return a simulated
    one."""
