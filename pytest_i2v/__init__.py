"""pytest-i2v: a pytest plugin that measures image-to-video diffusion generations: I2VGen-XL,
Stable Video Diffusion, Wan 2.1/2.2 I2V, LTX-Video, CogVideoX-I2V and HunyuanVideo-I2V.

The public API is what this module exports (``__all__``, listed in docs/project/public-api.md):
what tests and conftests import. Everything else may move without notice. The names load on
first use, so ``import pytest_i2v`` (which pytest does for every run, through the plugin's entry
point) imports neither torch nor matplotlib."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_PUBLIC = {
    # one measured generation, as hooks and the results JSON see it
    "GenerationRecord": "pytest_i2v.record.record",
    "GenerationSpec": "pytest_i2v.generation.marks",  # what an i2v mark describes
    "Budget": "pytest_i2v.generation.marks",
    # the mark's signature, callable: i2v(resolution="512p", ...) -> GenerationSpec
    "i2v": "pytest_i2v.generation.marks",
    "vram_budget": "pytest_i2v.generation.marks",
    "time_budget": "pytest_i2v.generation.marks",
    "Study": "pytest_i2v.study",  # the study's scaled generations, as the suites use it
    "pick_resolution": "pytest_i2v.study",
    "synthetic_portrait": "pytest_i2v.generation.inputs",  # the default input image
    "hookspecs": "pytest_i2v.hookspecs",  # the hooks a conftest can implement (a module)
    # what the loading hooks receive and return, and what a load's checks find
    "PipelineKey": "pytest_i2v.pipelines.loading",
    "LoadedPipeline": "pytest_i2v.pipelines.loading",
    "AppliedOption": "pytest_i2v.pipelines.applied_options",
    # a tiny random model directory for CPU runs
    "save_tiny_model": "pytest_i2v.pipelines.tiny_model",
}
__all__ = [
    "AppliedOption",
    "Budget",
    "GenerationRecord",
    "GenerationSpec",
    "LoadedPipeline",
    "PipelineKey",
    "Study",
    "__version__",
    "hookspecs",
    "i2v",
    "pick_resolution",
    "save_tiny_model",
    "synthetic_portrait",
    "time_budget",
    "vram_budget",
]  # _PUBLIC's names, spelled out for ruff and mypy (tests/test_public_api.py keeps the two equal)

if TYPE_CHECKING:
    from pytest_i2v import hookspecs
    from pytest_i2v.generation.inputs import synthetic_portrait
    from pytest_i2v.generation.marks import Budget, GenerationSpec, i2v, time_budget, vram_budget
    from pytest_i2v.pipelines.applied_options import AppliedOption
    from pytest_i2v.pipelines.loading import LoadedPipeline, PipelineKey
    from pytest_i2v.pipelines.tiny_model import save_tiny_model
    from pytest_i2v.record.record import GenerationRecord
    from pytest_i2v.study import Study, pick_resolution


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_i2v' has no attribute {name!r}")
    value = importlib.import_module(module)
    return value if name == "hookspecs" else getattr(value, name)
