"""Warm-up, then repeats of one generation, each synchronised and measured; OOM is a result."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import torch

from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.measure.device import Device, TorchRuntime

# session/recording.py imports AdaptiveRepeats from here (the measure() parameter it builds):
# re-exported, by the redundant alias, until that import names measure.measurement.
from pytest_i2v.measure.measurement import AdaptiveRepeats as AdaptiveRepeats
from pytest_i2v.measure.measurement import Measurement, RepeatSample
from pytest_i2v.measure.memory import (
    HostRssPeak,
    NvmlSampler,
    device_peak,
    free_device_memory,
    start_level,
)
from pytest_i2v.measure.output import reduce_output
from pytest_i2v.measure.timing import ROUND_CLOCK, StageRecorder
from pytest_i2v.pipelines.base import adapter_for
from pytest_i2v.record.output import compare_outputs
from pytest_i2v.record.parts import OomInfo, OutputReference
from pytest_i2v.verdict.fidelity import FidelityFigures

# (phase, repeat, repeats, step, steps) -> None; phase is "warm-up" or "repeat".
ProgressCallback = Callable[[str, int, int, int, int], None]

# Allocation failures that do not arrive as torch.cuda.OutOfMemoryError: cuBLAS and cuDNN failing
# to get workspace, and the driver's own "out of memory" (a RuntimeError or torch.AcceleratorError).
_OOM_MESSAGES = (
    ("CUBLAS_STATUS_ALLOC_FAILED", "cublas"),
    ("CUDNN_STATUS_ALLOC_FAILED", "cudnn"),
    ("CUDNN_STATUS_NOT_ENOUGH_WORKSPACE", "cudnn"),
    ("CUDA error: out of memory", "cuda-driver"),
    ("CUDA out of memory", "allocator"),
)


def oom_form(exc: BaseException) -> str | None:
    """Which out-of-memory form ``exc`` is ("allocator", "cublas", "cudnn", "cuda-driver", "host"),
    or None when it is not one."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "allocator"
    if isinstance(exc, MemoryError):
        return "host"
    if isinstance(exc, RuntimeError):
        text = str(exc)
        for needle, form in _OOM_MESSAGES:
            if needle in text:
                return form
    return None


def generate(
    pipe: Any,
    spec: GenerationSpec,
    image: Any,
    step_end: Callable[[int], None] | None = None,
    latents_seen: Callable[[torch.Tensor], None] | None = None,
) -> Any:
    """One generation of ``spec`` through its pipeline's adapter (reproducible inputs, numpy
    frames; ``latents_seen`` gets each step's latents where the pipeline has step callbacks)."""
    return adapter_for(spec.pipeline).generate(pipe, spec, image, step_end, latents_seen)


def stage_recorder(
    pipe: Any, spec: GenerationSpec, clock: Any, on_step: Callable[[int], None] | None
) -> StageRecorder:
    """Hooks on the pipeline's denoiser(s) and VAE decoder; step ends from callbacks where it has
    them."""
    adapter = adapter_for(spec.pipeline)
    return StageRecorder(
        pipe,
        clock,
        on_step,
        denoisers=adapter.denoisers(pipe),
        decoder=adapter.vae_decoder(pipe),
        callback_steps=adapter.info.step_callbacks,
    )


class GenerationRounds:
    """The warm-up and measured generations of one measurement as setup / target / teardown, the
    shape of pytest-benchmark's ``pedantic``: the plugin's own loop (``run_rounds``) and
    pytest-benchmark's run the same rounds. Whichever runs them reads ``ROUND_CLOCK`` right before
    and right after ``target``; those two readings are the round's synchronised total, which the
    plugin's clocks split into encode / steps / decode."""

    def __init__(
        self,
        runner: GenerationRunner,
        spec: GenerationSpec,
        image: Any,
        warmup: int,
        count: int,
        adaptive: AdaptiveRepeats | None,
    ):
        self.spec = spec
        self.warmup = warmup
        self.count = count  # measured rounds at most (adaptive repeats may stop earlier)
        self.samples: list[RepeatSample] = []
        self.shape: tuple[int, ...] | None = None
        self.last_stage: tuple[str, int | None] = ("encode", None)  # where a failing round stopped
        self._runner = runner
        self._image = image
        self._adaptive = adaptive
        self._calls = 0  # setups so far: the first ``warmup`` are warm-ups
        self._stack = ExitStack()
        self._recorder: StageRecorder | None = None
        self._readings: list[
            float
        ] = []  # ROUND_CLOCK readings this round: before and after the generation
        self._frames: Any = None
        self._latents: torch.Tensor | None = None  # the last step's, until teardown reduces them
        self.output: OutputReference | None = None  # the first measured round's, reduced
        # the second measured round's output against the first's: this code run twice here, the
        # noise an output comparison must see past (None: one measured round)
        self.output_repeat: FidelityFigures | None = None

    @property
    def done(self) -> bool:
        """Adaptive repeats: the median is known well enough (never during warm-up)."""
        return self._adaptive is not None and self._adaptive.done([s.total_s for s in self.samples])

    def _phase(self) -> tuple[str, int, int]:
        if self._calls <= self.warmup:
            return "warm-up", self._calls, self.warmup
        return "repeat", self._calls - self.warmup, self.count

    def setup(self) -> None:
        """Before the timer: hooks in, the device idle, peaks reset, NVML sampling started, the
        round clock this round's."""
        self._calls += 1
        on_step = None
        progress = self._runner.progress
        if progress is not None:
            phase, index, count = self._phase()
            steps = self.spec.steps

            def on_step(step: int) -> None:
                progress(phase, index, count, step, steps)

        runner = self._runner
        self._recorder = stage_recorder(runner.pipe, self.spec, runner.clock, on_step)
        self._readings.clear()
        runner.device.synchronize()
        runner.device.reset_peak_stats()
        runner.rss.reset()
        runner.nvml.start()
        try:
            self._stack.enter_context(self._recorder)
        except BaseException:
            runner.nvml.stop()
            raise
        ROUND_CLOCK.now = self._read_clock

    def _see_latents(self, latents: torch.Tensor) -> None:
        self._latents = latents

    def _read_clock(self) -> float:
        reading = self._runner.device.now()
        self._readings.append(reading)
        return reading

    def target(self) -> None:
        """The timed part, between two readings of ``ROUND_CLOCK``: one generation, returning once
        the device has finished it."""
        recorder = self._recorder
        assert recorder is not None, "setup() runs before target()"
        try:
            recorder.begin()
            frames = generate(
                self._runner.pipe, self.spec, self._image, recorder.step_end, self._see_latents
            )
            recorder.finish()
            self._runner.device.synchronize()
            # freed in teardown: a deallocation here would be timed
            self._frames = frames
        except BaseException:
            # OOM, a failing step, Ctrl-C: hooks out, sampler thread stopped, where it happened kept
            ROUND_CLOCK.now = None
            self._latents = None  # an OOM's memory goes back with the failure
            self._stack.close()
            self._runner.nvml.stop()
            self.last_stage = (recorder.stage, recorder.current_step)
            raise

    def teardown(self) -> None:
        """After the timer: hooks out, sampling stopped, a measured round kept as a sample."""
        recorder, runner = self._recorder, self._runner
        ROUND_CLOCK.now = None
        assert recorder is not None, "setup() runs before teardown()"
        self._stack.close()
        nvml = runner.nvml.stop()
        frames, self._frames = self._frames, None
        latents, self._latents = self._latents, None
        if len(self._readings) != 2:
            raise RuntimeError(
                f"a round's timer read the round clock {len(self._readings)} times, not 2 (before "
                "and after the generation): the timer was not pytest_i2v's ROUND_CLOCK"
            )
        total = self._readings[1] - self._readings[0]
        if self._phase()[0] == "warm-up":
            return
        self.shape = tuple(frames.shape)
        if self.output is None:  # after the timer: reducing the frames is never timed
            self.output = reduce_output(frames, latents)
        elif len(self.samples) == 1:
            self.output_repeat = compare_outputs(self.output, reduce_output(frames, latents))
        stages = recorder.times()
        self.samples.append(
            RepeatSample(
                total_s=total,
                encode_s=stages.encode_s,
                step_s=stages.step_s,
                decode_s=stages.decode_s,
                peak=device_peak(runner.device, nvml, runner.rss.read()),
                conditions=runner.nvml.conditions(),
                denoise_span_s=stages.denoise_span_s,
            )
        )


# Runs a measurement's rounds: all its warm-ups, then its measured rounds (fewer once ``done``).
RoundsDriver = Callable[[GenerationRounds], None]


def run_rounds(rounds: GenerationRounds) -> None:
    """The plugin's own loop."""
    for _ in range(rounds.warmup + rounds.count):
        rounds.setup()
        ROUND_CLOCK()
        rounds.target()
        ROUND_CLOCK()
        rounds.teardown()
        if rounds.done:
            break


class GenerationRunner:
    """Runs and measures one spec on one loaded pipeline, on one device (named in every CUDA
    call)."""

    def __init__(self, pipe: Any, device: Device | str, progress: ProgressCallback | None = None):
        self.pipe = pipe
        self.device: Device = TorchRuntime().open(device) if isinstance(device, str) else device
        self.progress = progress
        self.clock = self.device.clock()
        self.rss = HostRssPeak()
        self.nvml = NvmlSampler(self.device)

    def _memory_now(self) -> int | None:
        """Allocated device memory on a GPU, resident host memory on the CPU."""
        allocated = self.device.allocated_bytes()
        return allocated if allocated is not None else self.rss.current()

    def measure(
        self,
        spec: GenerationSpec,
        image: Any,
        warmup: int,
        repeats: int,
        fast_steps: int | None = None,
        adaptive: AdaptiveRepeats | None = None,
        drive: RoundsDriver | None = None,
    ) -> Measurement:
        """``fast_steps``: run only that many denoising steps (fast mode); ``adaptive``: repeat
        until the median is known well enough instead of exactly ``repeats`` times; ``drive``: what
        runs the rounds (``run_rounds`` by default; pytest-benchmark's ``pedantic`` through
        ``benchmark_bridge``)."""
        with self.device.activate():
            return self._measure(spec, image, warmup, repeats, fast_steps, adaptive, drive)

    def _measure(
        self,
        spec: GenerationSpec,
        image: Any,
        warmup: int,
        repeats: int,
        fast_steps: int | None,
        adaptive: AdaptiveRepeats | None,
        drive: RoundsDriver | None,
    ) -> Measurement:
        started = self.device.now()
        run_spec = (
            replace(spec, steps=fast_steps) if fast_steps and fast_steps < spec.steps else spec
        )
        count = adaptive.maximum if adaptive else repeats
        start = start_level(self.device)
        before = self._memory_now()
        rounds = GenerationRounds(self, run_spec, image, warmup, count, adaptive)
        oom = self._drive(rounds, drive)
        if oom is not None:
            # Outside the except block: the exception, its traceback and the tensors its frames
            # hold are gone, so this frees them too (inside the block it could not).
            free_device_memory(self.device)
            oom = replace(oom, before_bytes=before, after_free_bytes=self._memory_now())
        clocks = self.device.nvml_clocks() if self.device.is_cuda else None
        locked = clocks.locked if clocks is not None else None
        samples, shape = rounds.samples, rounds.shape
        expected = (1, spec.frames, spec.height, spec.width, 3)
        if shape is not None and shape != expected:
            raise RuntimeError(
                f"the pipeline returned frames of shape {shape}, expected {expected}"
            )
        return Measurement(
            spec=spec,
            outcome="oom" if oom else "ok",
            warmup=warmup,
            samples=tuple(samples),
            oom=oom,
            nvml_note=self.device.nvml_note if self.device.is_cuda else None,
            output_shape=shape,
            output=rounds.output,
            output_repeat=rounds.output_repeat,
            nvml_opened_by=self.device.nvml_opened_by if self.device.is_cuda else None,
            wall_s=self.device.now() - started,
            measured_steps=run_spec.steps,
            adaptive=adaptive,
            start=start,
            locked_sm_clock_mhz=locked.sm_clock_mhz if locked is not None else None,
            base_sm_clock_mhz=clocks.base_sm_clock_mhz() if clocks is not None else None,
        )

    def _drive(self, rounds: GenerationRounds, drive: RoundsDriver | None) -> OomInfo | None:
        """Runs the rounds (``run_rounds`` unless ``drive`` is given); an out-of-memory error ends
        them as an ``OomInfo`` of where it happened, any other error propagates."""
        try:
            (drive or run_rounds)(rounds)
        except Exception as exc:
            form = oom_form(exc)
            if form is None:
                raise
            stage, step = rounds.last_stage
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return OomInfo(
                stage=stage,
                step=step if stage == "denoise" else None,
                message=message,
                allocated_bytes=self.device.allocated_bytes(),
                form=form,
            )
        return None
