"""What gpu-check runs: its plan (sizes, frames, tolerances, which runs) and what a check says
(``CheckResult``; what a run left is ``records.RunResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import RESOLUTION_PRESETS, Scaling
from pytest_i2v.gpu_check.records import (
    DRY_RUN_MIN_FRAMES,
    DRY_RUN_PIXELS,
    DRY_RUN_SIZE_DIVISOR,
    GPU_DTYPES,
    LADDER_FRACTIONS,
    OFFLOAD_OPTION,
    GiB,
    MiB,
    SimulatedGpu,
)
from pytest_i2v.measure.device_name import split_device
from pytest_i2v.pipelines import DEFAULT_PIPELINE, PIPELINES, PipelineInfo, pipeline_of_directory


@dataclass(frozen=True)
class Tolerances:
    timing_pct: float | None = 2.0  # stage sums (b, c): exact per repeat, so judged on the CPU too
    fast_pct: float | None = (
        2.0  # (f) None: shown, not judged (two runs on a shared CPU differ by more)
    )
    # (j) the step's kernels (on a GPU) against its span; None: shown, not judged (the dry run's
    # tiny model spends most of a step in Python between short ops)
    attribution_pct: float | None = 5.0
    memory_pct: float = 1.0


@dataclass(frozen=True)
class CheckPlan:
    """What one gpu-check runs: the study's sizes on a GPU, the cpu profile's on the dry run (for
    another pipeline: a ladder up to its native size, and the dry run's sizes rounded to its
    multiple)."""

    dry_run: bool
    device: str  # "cuda:N"
    other_device: str | None  # (h): a second GPU, when the machine has one
    model: str
    dtype: str
    # the four sizes, smallest first: (label, pixels) if square, else (label, width, height)
    sizes: tuple[tuple[str, int] | tuple[str, int, int], ...]
    frames: int
    steps: int
    guidance: float
    fast_steps: int
    repeats: int
    warmup: int
    offload_steps: int  # the peak does not depend on the step count; fewer steps keep the budget
    oom_headroom_bytes: int  # (e): the memory limit is the loaded weights plus this
    timeout_s: float  # per pytest subprocess
    tolerances: Tolerances = field(default_factory=Tolerances)
    simulated_gpus: tuple[SimulatedGpu, ...] = ()  # dry run: PYTEST_I2V_SIMULATED_GPUS
    pipeline: str = DEFAULT_PIPELINE
    offload_supported: bool = (
        True  # the pipeline supports model_cpu_offload; else (g) is not applicable
    )
    fixed_size: bool = False  # the model accepts one size only: one rung, and (d) is not applicable
    # > 1: a profile written for the run scales the marks' sizes (a fixed-size pipeline's dry run)
    size_divisor: int = 1

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(size[0] for size in self.sizes)

    @property
    def dimensions(self) -> tuple[tuple[str, int, int], ...]:
        """(label, width, height) of every size, smallest first."""
        return tuple((size[0], size[1], size[-1]) for size in self.sizes)

    @property
    def uses_presets(self) -> bool:
        """The marks name the study's presets (I2VGen-XL on a GPU) rather than width and height."""
        return not self.dry_run and all(
            RESOLUTION_PRESETS.get(label) == width == height
            for label, width, height in self.dimensions
        )

    @property
    def smallest(self) -> str:
        return self.sizes[0][0]

    @property
    def middle(self) -> str:
        return "512p" if "512p" in self.labels else self.sizes[len(self.sizes) // 2][0]

    @property
    def largest(self) -> str:
        return self.sizes[-1][0]

    @property
    def device_index(self) -> int:
        device = split_device(self.device)
        if device is None or device.cuda_index is None:
            raise ValueError(f"not a CUDA device: {self.device!r} (parse_device checks it)")
        return device.cuda_index

    @property
    def one_size_reason(self) -> str | None:
        """Why checks that compare sizes are not applicable (the pipeline generates at one size), or
        None."""
        if not self.fixed_size:
            return None
        return f"{self.pipeline} generates at one size only ({self.largest})"

    def run_size(self, width: int, height: int) -> tuple[int, int]:
        """The size a mark of ``width x height`` runs at: scaled by the run's profile as the plugin
        scales it."""
        if self.size_divisor == 1:
            return width, height
        scaling, multiple = (
            Scaling(size_divisor=self.size_divisor),
            PIPELINES[self.pipeline].constraints.size_multiple,
        )
        return scaling.size(width, multiple), scaling.size(height, multiple)

    def describe_mode(self) -> str:
        mode = (
            f"fast mode: {self.fast_steps} of {self.steps} denoising steps measured per repeat, "
            f"the totals predicted (the full run of check (f) excepted); {self.repeats} repeats "
            f"after {self.warmup} warm-up"
        )
        if self.dry_run:
            sizes = (
                "the cpu profile's sizes"
                if self.pipeline == DEFAULT_PIPELINE
                else f"sizes {', '.join(self.labels)}"
            )
            if self.size_divisor > 1:
                shown = ", ".join(
                    "{}x{}".format(*self.run_size(width, height))
                    for _, width, height in self.dimensions
                )
                plural = "s" if len(self.sizes) > 1 else ""
                sizes = (
                    f"size{plural} {', '.join(self.labels)} on the marks, run at {shown} "
                    f"(the profile scales sizes /{self.size_divisor})"
                )
            mode = (
                f"DRY RUN on the CPU: model {self.model}, simulated GPUs, {sizes}; the fast-mode "
                f"check (f) shown, not judged (CPU noise); " + mode
            )
        return mode


@dataclass(frozen=True)
class CheckResult:
    key: str  # "a".."h"
    title: str
    status: str  # PASS, FAIL or N/A
    detail: str

    @property
    def line(self) -> str:
        return f"{self.status} ({self.key}) {self.title}: {self.detail}"


# -- the plan --------------------------------------------------------------------------------------
def parse_device(name: str, count: int) -> str:
    """``--device``: ``cuda`` or ``cuda:N`` of this machine's ``count``; ``cuda`` means
    ``cuda:0``."""
    if name == "cuda":
        name = "cuda:0"
    device = split_device(name)
    if device is None or device.cuda_index is None:
        raise I2VUsageError(
            f"--device {name!r}: gpu-check checks a CUDA device; use cuda or cuda:N "
            f"(--dry-run for the CPU)"
        )
    if device.cuda_index >= count:
        raise I2VUsageError(
            f"--device {name}: this machine has {count} CUDA device(s) "
            f"(cuda:0 to cuda:{count - 1}); pick one of those"
        )
    return name


def pipeline_info(name: str) -> PipelineInfo:
    if name not in PIPELINES:
        raise I2VUsageError(
            f"--pipeline {name!r}: not a known pipeline; use one of {', '.join(PIPELINES)}"
        )
    return PIPELINES[name]


def model_source(model: str | None, dry_run: bool, pipeline: str = DEFAULT_PIPELINE) -> str:
    if model is None:
        return "tiny" if dry_run else "random"
    if model in ("random", "tiny"):
        return model
    path = Path(model).expanduser()
    if not path.is_dir():
        raise I2VUsageError(
            f"--model {model!r}: use random, tiny or a local diffusers directory "
            f"({path} is not a directory)"
        )
    # Another pipeline's directory would not be loaded for these marks (the plugin would fall back
    # on the hub checkpoint or the profile's model): say so rather than measure something else.
    owner = pipeline_of_directory(path)
    if owner is not None and owner != pipeline:
        raise I2VUsageError(
            f"--model {model!r} holds a {owner} pipeline (model_index.json), not {pipeline}; "
            f"pass --pipeline {owner}"
        )
    return str(path.resolve())


def size_ladder(info: PipelineInfo) -> tuple[tuple[str, int, int], ...]:
    """About 1/2, 2/3, 5/6 and 1x the native width and height, each rounded down to a size the
    pipeline accepts; labelled ``WIDTHxHEIGHT``, smallest first (a rung that rounds onto another is
    kept once). A pipeline whose model accepts one size only has that one rung."""
    if info.constraints.fixed_size is not None:
        width, height = info.constraints.fixed_size
        return ((f"{width}x{height}", width, height),)
    rungs: dict[str, tuple[str, int, int]] = {}
    for numerator, denominator in LADDER_FRACTIONS:
        width = info.constraints.round_size(info.native.width * numerator // denominator)
        height = info.constraints.round_size(info.native.height * numerator // denominator)
        rungs.setdefault(f"{width}x{height}", (f"{width}x{height}", width, height))
    return tuple(rungs.values())


def dry_run_sizes(info: PipelineInfo) -> tuple[tuple[str, int, int], ...]:
    """The dry run's square sizes rounded to the pipeline's size multiple, labelled
    ``WIDTHxHEIGHT``; for a pipeline whose model accepts one size only, that size (which the run's
    profile scales down)."""
    if info.constraints.fixed_size is not None:
        return size_ladder(info)
    sizes = dict.fromkeys(info.constraints.round_size(pixels) for pixels in DRY_RUN_PIXELS)
    return tuple((f"{pixels}x{pixels}", pixels, pixels) for pixels in sizes)


def dry_run_frames(info: PipelineInfo) -> int:
    """The smallest valid frame count of at least DRY_RUN_MIN_FRAMES (3, 5 or 9 for the 1, 4k+1,
    8k+1 rules)."""
    return info.constraints.round_up_frames(max(DRY_RUN_MIN_FRAMES, info.constraints.min_frames))


def plan_for(
    info: PipelineInfo,
    *,
    dry_run: bool,
    device: str,
    other_device: str | None,
    model: str,
    simulated_gpus: tuple[SimulatedGpu, ...] = (),
) -> CheckPlan:
    """The runs' sizes and settings for one pipeline (pure: the device and model are checked
    already)."""
    if dry_run:
        return _dry_run_plan(info, device, other_device, model, simulated_gpus)
    if info.name == DEFAULT_PIPELINE:
        return _study_plan(info, device, other_device, model)
    return _native_plan(info, device, other_device, model)


def _dry_run_plan(
    info: PipelineInfo,
    device: str,
    other_device: str | None,
    model: str,
    simulated_gpus: tuple[SimulatedGpu, ...],
) -> CheckPlan:
    """The dry run: the cpu profile's scaling of the study (/8: 32..128 pixels), few frames, 3
    steps, no warm-up (the checks judged here are memory figures, which a warm-up does not change):
    about a minute on 2 cores."""
    sizes: tuple[tuple[str, int] | tuple[str, int, int], ...]
    fixed = info.constraints.fixed_size is not None
    if info.name == DEFAULT_PIPELINE:
        sizes, frames, guidance = (
            tuple((label, pixels // 8) for label, pixels in RESOLUTION_PRESETS.items()),
            4,
            9.0,
        )
        headroom = 8 * MiB
    else:
        sizes, frames, guidance = (
            dry_run_sizes(info),
            dry_run_frames(info),
            info.native.guidance,
        )
        # The tiny transformers' simulated activations are a few KiB (LTX-Video packs its
        # latents into 128-channel tokens): any headroom would let the induced OOM run finish.
        headroom = 0
    return CheckPlan(
        dry_run=True,
        device=device,
        other_device=other_device,
        model=model,
        dtype="fp32",
        sizes=sizes,
        frames=frames,
        steps=3,
        guidance=guidance,
        fast_steps=2,
        repeats=2,
        warmup=0,
        offload_steps=3,
        oom_headroom_bytes=headroom,
        timeout_s=300.0,
        tolerances=Tolerances(fast_pct=None, attribution_pct=None),
        simulated_gpus=simulated_gpus,
        pipeline=info.name,
        offload_supported=OFFLOAD_OPTION in info.memory_options,
        fixed_size=fixed,
        size_divisor=DRY_RUN_SIZE_DIVISOR if fixed else 1,
    )


def _study_plan(info: PipelineInfo, device: str, other_device: str | None, model: str) -> CheckPlan:
    """I2VGen-XL on a GPU: the study's generation; fast mode keeps the four sizes within 8 minutes
    on a 4090."""
    return CheckPlan(
        dry_run=False,
        device=device,
        other_device=other_device,
        model=model,
        dtype="fp16",
        sizes=tuple(RESOLUTION_PRESETS.items()),
        frames=16,
        steps=50,
        guidance=9.0,
        fast_steps=5,
        repeats=2,
        warmup=1,
        offload_steps=10,
        oom_headroom_bytes=GiB,
        timeout_s=600.0,
        pipeline=info.name,
        offload_supported=OFFLOAD_OPTION in info.memory_options,
    )


def _native_plan(
    info: PipelineInfo, device: str, other_device: str | None, model: str
) -> CheckPlan:
    """Another pipeline on a GPU: its native generation, up to its native size. The timeout guards
    against a hang, not a budget: the largest pipelines' native runs (HunyuanVideo's 1280x720x129)
    take many minutes each."""
    native = info.native
    return CheckPlan(
        dry_run=False,
        device=device,
        other_device=other_device,
        model=model,
        dtype=GPU_DTYPES.get(info.name, "bf16"),
        sizes=size_ladder(info),
        frames=native.frames,
        steps=native.steps,
        guidance=native.guidance,
        fast_steps=min(5, native.steps),
        repeats=2,
        warmup=1,
        offload_steps=min(10, native.steps),
        oom_headroom_bytes=GiB,
        timeout_s=3600.0,
        pipeline=info.name,
        offload_supported=OFFLOAD_OPTION in info.memory_options,
        fixed_size=info.constraints.fixed_size is not None,
    )
