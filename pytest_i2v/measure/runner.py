"""Warm-up, then repeats of one generation, each synchronised and measured; OOM is a result."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from pytest_i2v.marks import GenerationSpec
from pytest_i2v.measure.memory import AllocatorPeak, HostRssPeak, NvmlSampler, PeakMemory, free_device_memory
from pytest_i2v.measure.timing import StageRecorder, clock_for, synchronize

# (phase, repeat, repeats, step, steps) -> None; phase is "warm-up" or "repeat".
ProgressCallback = Callable[[str, int, int, int, int], None]
OOM_ERRORS: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError, MemoryError)


@dataclass(frozen=True)
class RepeatSample:
    total_s: float
    encode_s: float | None
    step_s: tuple[float, ...]
    decode_s: float | None
    peak: PeakMemory


@dataclass(frozen=True)
class OomInfo:
    stage: str  # "encode", "denoise" or "decode"
    step: int | None  # the denoising step (1-based) when the stage is "denoise"
    message: str
    allocated_bytes: int | None  # allocator state at the moment of the error

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "step": self.step, "message": self.message, "allocated_bytes": self.allocated_bytes}


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


@dataclass(frozen=True)
class Measurement:
    spec: GenerationSpec
    outcome: str  # "ok" or "oom"
    warmup: int
    samples: tuple[RepeatSample, ...] = ()
    oom: OomInfo | None = None
    nvml_note: str | None = None
    output_shape: tuple[int, ...] | None = None
    wall_s: float = 0.0  # the whole measurement, warm-up included (what the gate costs)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def time_s(self) -> float | None:
        return _median([s.total_s for s in self.samples])

    @property
    def gen_fps(self) -> float | None:
        # The study's definition: frames produced per second of generation (not playback fps).
        time_s = self.time_s
        return self.spec.frames / time_s if time_s else None

    @property
    def step_s(self) -> float | None:
        return _median([step for s in self.samples for step in s.step_s])

    @property
    def peak(self) -> PeakMemory:
        return PeakMemory.max_of([s.peak for s in self.samples])

    def stages_dict(self) -> dict[str, Any]:
        return {
            "encode_s": _median([s.encode_s for s in self.samples if s.encode_s is not None]),
            "denoise_s": _median([sum(s.step_s) for s in self.samples if s.step_s]),
            "step_s": self.step_s,
            "step_samples_s": [list(s.step_s) for s in self.samples],
            "decode_s": _median([s.decode_s for s in self.samples if s.decode_s is not None]),
        }


def generate(pipe: Any, spec: GenerationSpec, image: Any) -> Any:
    """One generation with reproducible inputs: ``generator=`` alone is not enough because
    ``vae.encode(...).latent_dist.sample()`` ignores it, so the global torch RNG is seeded too."""
    torch.manual_seed(spec.seed)
    generator = torch.Generator("cpu").manual_seed(spec.seed)
    return pipe(
        prompt=spec.prompt, image=image, height=spec.height, width=spec.width, num_frames=spec.frames,
        num_inference_steps=spec.steps, guidance_scale=spec.guidance, target_fps=spec.fps,
        generator=generator, output_type="np",
    ).frames


class GenerationRunner:
    """Runs and measures one spec on one loaded pipeline."""

    def __init__(self, pipe: Any, device: str, progress: ProgressCallback | None = None):
        self.pipe = pipe
        self.device = device
        self.progress = progress
        self._clock = clock_for(device)
        self._allocator = AllocatorPeak(device)
        self._rss = HostRssPeak()
        self._nvml = NvmlSampler(device)

    def _one(self, spec: GenerationSpec, image: Any, phase: str, index: int, count: int) -> tuple[RepeatSample, Any]:
        on_step = None
        if self.progress is not None:
            progress = self.progress

            def on_step(step: int) -> None:
                progress(phase, index, count, step, spec.steps)

        recorder = StageRecorder(self.pipe, self._clock, on_step)
        synchronize(self.device)
        self._allocator.reset()
        self._rss.reset()
        self._nvml.start()
        try:
            with recorder:
                started = time.perf_counter()
                recorder.begin()
                frames = generate(self.pipe, spec, image)
                recorder.finish()
                synchronize(self.device)
                total = time.perf_counter() - started
        except OOM_ERRORS:
            self._nvml.stop()
            self._last_stage = (recorder.stage, len(recorder.step_marks) or None)
            raise
        device_peak = self._nvml.stop()
        allocated, reserved = self._allocator.read()
        stages = recorder.times()
        sample = RepeatSample(
            total_s=total, encode_s=stages.encode_s, step_s=stages.step_s, decode_s=stages.decode_s,
            peak=PeakMemory(allocated, reserved, device_peak, self._rss.read()),
        )
        return sample, frames

    def measure(self, spec: GenerationSpec, image: Any, warmup: int, repeats: int) -> Measurement:
        samples: list[RepeatSample] = []
        shape: tuple[int, ...] | None = None
        oom: OomInfo | None = None
        started = time.perf_counter()
        self._last_stage: tuple[str, int | None] = ("encode", None)
        try:
            for index in range(warmup):
                self._one(spec, image, "warm-up", index + 1, warmup)
            for index in range(repeats):
                sample, frames = self._one(spec, image, "repeat", index + 1, repeats)
                shape = tuple(frames.shape)
                del frames
                samples.append(sample)
        except OOM_ERRORS as exc:
            stage, step = self._last_stage
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            oom = OomInfo(stage=stage, step=step if stage == "denoise" else None, message=message,
                          allocated_bytes=self._allocator.current_allocated())
        if oom is not None:
            # Outside the except block, so the traceback (and the tensors its frames hold) is gone.
            free_device_memory(self.device)
        expected = (1, spec.frames, spec.height, spec.width, 3)
        if shape is not None and shape != expected:
            raise RuntimeError(f"the pipeline returned frames of shape {shape}, expected {expected}")
        return Measurement(
            spec=spec, outcome="oom" if oom else "ok", warmup=warmup, samples=tuple(samples), oom=oom,
            nvml_note=self._nvml.unavailable_reason if self.device.startswith("cuda") else None, output_shape=shape, wall_s=time.perf_counter() - started,
        )
