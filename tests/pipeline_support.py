"""What the per-pipeline test files share: skip a pipeline the installed diffusers lacks, load its
tiny model through the real from_pretrained path, and measure one generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.measure.measurement import Measurement
from pytest_i2v.measure.runner import GenerationRunner
from pytest_i2v.pipelines import PIPELINES
from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline


def require_pipeline(name: str) -> Any:
    """The diffusers module, or a module-level skip naming the class this diffusers lacks."""
    diffusers = pytest.importorskip("diffusers")
    if not hasattr(diffusers, PIPELINES[name].pipeline_class):
        pytest.skip(
            f"this diffusers has no {PIPELINES[name].pipeline_class}", allow_module_level=True
        )
    return diffusers


def load_tiny(name: str, work_dir: Path, load_options: tuple[str, ...] = ()) -> Any:
    """The tiny pipeline built, saved and loaded back (load_pipeline with source "tiny")."""
    key = PipelineKey(
        source="tiny", dtype="fp32", device="cpu", pipeline=name, load_options=load_options
    )
    return load_pipeline(key, work_dir).pipe


def measure_once(pipe: Any, spec: GenerationSpec) -> Measurement:
    """One measured generation, no warm-up."""
    return GenerationRunner(pipe, "cpu").measure(
        spec, synthetic_portrait(spec.width, spec.height), warmup=0, repeats=1
    )


def assert_timed_step_by_step(result: Measurement, spec: GenerationSpec) -> None:
    """One measured repeat: the frames asked for, one time per step, and encode + steps + decode
    within 2 % of the synchronised total."""
    assert result.outcome == "ok"
    assert result.output_shape == (1, spec.frames, spec.height, spec.width, 3)
    (sample,) = result.samples
    assert len(sample.step_s) == spec.steps
    assert sample.encode_s is not None and sample.decode_s is not None
    stages = sample.encode_s + sum(sample.step_s) + sample.decode_s
    assert stages == pytest.approx(sample.total_s, rel=0.02)
