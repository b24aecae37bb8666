"""What a session measures with: the GPU profile, the device, the default dtype and model source.

Resolved once, when the first i2v test is collected; a bad device, profile or model source is a
usage error naming the culprit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.measure.device import DeviceInfo, DeviceRuntime
from pytest_i2v.measure.device_name import parse_device
from pytest_i2v.pipelines import (
    PIPELINES,
    class_of_directory,
    parse_model_sources,
    pipeline_of_source,
    session_pipeline,
    source_for,
)
from pytest_i2v.pipelines.pipeline_class import PipelineClasses, resolve_pipeline_classes
from pytest_i2v.pipelines.source_check import check_model_source
from pytest_i2v.profiles import GpuProfile, pick_profile
from pytest_i2v.session.settings import Settings


@dataclass(frozen=True)
class RunPlan:
    """What this session measures with: the profile, device, default dtype and model source."""

    profile: GpuProfile
    device: str  # "cpu" or "cuda:N", always with its index
    dtype: str
    model: str  # the bare model source (--i2v-model or the profile's)
    gpu: DeviceInfo | None = None  # the device measured on, as it describes itself
    pipeline: str = "i2vgen-xl"  # the pipeline of tests whose mark names none
    model_sources: tuple[tuple[str, str], ...] = ()  # --i2v-model NAME=SOURCE entries
    repeats: int = 5  # --i2v-repeats, else the profile's
    signature: bool = True  # --i2v-signature, else the profile's: profile each test's work once
    roofline: bool = (
        True  # --i2v-roofline, else the profile's: count FLOPs once per generation shape
    )
    # --i2v-pipeline-class: users' own classes
    pipeline_classes: PipelineClasses = field(default_factory=PipelineClasses)

    def source_for(self, pipeline: str) -> str:
        """The model source ``pipeline`` loads from (see pipelines.source_for)."""
        return source_for(
            pipeline,
            self.pipeline,
            self.model,
            dict(self.model_sources),
            self.profile.model,
            self.profile.pipeline,
        )

    def pipeline_class_for(self, pipeline: str) -> str | None:
        """The user's ``module:Class`` that loads ``pipeline`` (None: the diffusers class)."""
        return self.pipeline_classes.target_for(pipeline)

    def describe(self) -> list[str]:
        gpu = f" ({self.gpu.name}, {self.gpu.total_bytes / 2**30:.1f} GiB)" if self.gpu else ""
        profile = self.profile
        lines = [
            f"i2v: profile {profile.name} ({profile.description}), device {self.device}{gpu}, "
            f"pipeline {self.pipeline}, model {self.source_for(self.pipeline)}, dtype {self.dtype}"
        ]
        if not profile.scaling.is_identity:
            lines.append(
                f"i2v: {profile.name} profile scales the study down: {profile.scaling.describe()}"
            )
        return lines


def plan_run(
    settings: Settings,
    profiles: dict[str, GpuProfile],
    runtime: DeviceRuntime,
    worker_device: str | None = None,
) -> RunPlan:
    """Resolve the device first (a bad ``cuda:N`` is a usage error), then detect the profile from
    that device, not from GPU 0. ``worker_device``: an xdist worker's own GPU, used whenever the run
    is on CUDA."""
    cuda_count = runtime.cuda_count()
    if settings.device is not None:
        parse_device(settings.device, cuda_count)
    if settings.device == "cpu":
        detect_on = None
    else:
        detect_on = worker_device or settings.device or ("cuda" if cuda_count else None)
    info = runtime.open(detect_on).info() if detect_on else None
    gpu_name, gpu_memory_gib = (info.name, info.total_bytes / 2**30) if info else (None, None)
    profile = pick_profile(
        settings.gpu_profile, profiles, gpu_name, gpu_memory_gib, settings.allow_profile_mismatch
    )
    device = settings.device or ("cuda" if profile.device == "cuda" and cuda_count else "cpu")
    if device != "cpu" and worker_device is not None:
        device = worker_device
    kind, index = parse_device(device, cuda_count)
    device = f"cuda:{index}" if kind == "cuda" else "cpu"
    dtype = settings.dtype or profile.dtype
    if dtype == "fp16" and device == "cpu" and not settings.dtype:
        dtype = "fp32"  # a GPU profile forced onto the CPU: its fp16 default is impractical there
    if dtype == "fp16" and device == "cpu":
        raise I2VUsageError(
            "--i2v-dtype fp16 on the CPU: many fp16 kernels are missing or very slow there; "
            "use fp32 or bf16"
        )
    bare, per_pipeline = parse_model_sources(settings.model) if settings.model else (None, {})
    model = check_model_source(bare or profile.model, settings.allow_pickle)
    sources = tuple(
        (name, check_model_source(source, settings.allow_pickle))
        for name, source in per_pipeline.items()
    )
    classes = resolve_pipeline_classes(settings.pipeline_class)
    pipeline = settings.pipeline or _owner_of_own_class(model if bare else None, classes)
    pipeline = session_pipeline(pipeline, bare, profile.pipeline)
    return RunPlan(
        profile=profile,
        device=device,
        dtype=dtype,
        model=model,
        gpu=info if device != "cpu" else None,
        pipeline=pipeline,
        model_sources=sources,
        repeats=settings.repeats or profile.repeats,
        signature=profile.signature if settings.signature is None else settings.signature,
        roofline=profile.roofline if settings.roofline is None else settings.roofline,
        pipeline_classes=classes,
    )


def _owner_of_own_class(source: str | None, classes: PipelineClasses) -> str | None:
    """The pipeline of a model directory whose model_index.json names a class the registry does
    not know: the one ``i2v_pipeline_class`` maps it to, else a usage error naming the class (a
    guess would load it as I2VGen-XL and fail at setup)."""
    if source is None or not Path(source).is_dir() or pipeline_of_source(source) is not None:
        return None
    class_name = class_of_directory(Path(source))
    if class_name is None:
        return None
    mapped = classes.pipeline_of_class_name(class_name)
    if mapped is not None:
        return mapped
    raise I2VUsageError(
        f"--i2v-model {source}: model_index.json names the pipeline class {class_name}, which "
        f"pytest-i2v does not know; map it to the supported pipeline it derives from with ini "
        f"i2v_pipeline_class = NAME=your.module:{class_name} (NAME: {', '.join(PIPELINES)}), or "
        f"load it as that pipeline's diffusers class with --i2v-pipeline NAME"
    )
