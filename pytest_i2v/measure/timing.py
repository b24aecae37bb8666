"""Stage and per-step timing: a forward pre-hook on the denoiser(s) marks where denoising starts,
and each step ends either at the next denoiser call (I2VGen-XL, which has no step callbacks and
batches guidance into one UNet call) or at the pipeline's ``callback_on_step_end`` (the others:
one step is one step even when guidance makes two denoiser calls or two experts take turns).

The marks come from the device's clock (``measure.device``): on CUDA an event recorded on the
device's stream, so timing adds no host/device sync inside the loop and the events are read once
after the final synchronise; on the CPU a ``perf_counter`` reading (the work is synchronous)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pytest_i2v.measure.device import Clock


@dataclass(frozen=True)
class StageTimes:
    encode_s: float | None
    step_s: tuple[float, ...]
    decode_s: float | None
    # the denoising loop timed by a mark pair of its own (first denoiser call -> decode start),
    # shared with no step: what the steps must add up to (gpu-check (c)), an independent reading
    denoise_span_s: float | None = None

    @property
    def denoise_s(self) -> float | None:
        return float(sum(self.step_s)) if self.step_s else None


class RoundClock:
    """The clock of the generation under way, as a timer function: pytest-benchmark's rounds (its
    ``timer``) and the plugin's own loop read it right before and right after one generation, and
    the record's total is the difference of those same two readings, so both report the same time.
    Outside a round (nothing registered) it is ``perf_counter``."""

    __name__ = "pytest_i2v.round_clock"  # how pytest-benchmark's JSON names the timer

    def __init__(self) -> None:
        self.now: Callable[[], float] | None = None  # the device clock of the round under way

    def __call__(self) -> float:
        return self.now() if self.now is not None else time.perf_counter()


ROUND_CLOCK = RoundClock()  # one per process: the rounds run one at a time


class StageRecorder:
    """Marks the start of denoising, the end of each step and the start of decoding.

    Hook mode (``callback_steps=False``): every denoiser forward starts a step; a step spans one
    forward to the next, so it includes the guidance arithmetic and the scheduler update, and the
    last step ends where decoding starts. Callback mode: the first denoiser forward starts the
    first step and ``step_end`` (called from ``callback_on_step_end``) ends each one; decoding is
    what follows the last step. Either way encode + steps + decode is the whole call."""

    def __init__(
        self,
        pipe: Any,
        clock: Clock,
        on_step: Callable[[int], None] | None = None,
        denoisers: list[Any] | None = None,
        decoder: Any = None,
        callback_steps: bool = False,
    ):
        self._pipe = pipe
        self._clock = clock
        self._on_step = on_step
        self._denoisers = denoisers if denoisers is not None else [pipe.unet]
        self._decoder = decoder if decoder is not None else pipe.vae.decoder
        self._callback_steps = callback_steps
        self._handles: list[Any] = []
        self.start: Any = None
        self.end: Any = None
        self.step_marks: list[
            Any
        ] = []  # hook mode: each step's start; callback mode: denoising's start
        self.step_end_marks: list[Any] = []  # callback mode: each step's end
        self.decode_mark: Any = None
        self.span_marks: list[
            Any
        ] = []  # the loop's own pair: [first denoiser call, decode start or end]

    def __enter__(self) -> StageRecorder:
        for model in self._denoisers:
            self._handles.append(model.register_forward_pre_hook(self._denoiser_pre_hook))
        vae = self._pipe.vae
        for module in (getattr(vae, "post_quant_conv", None), self._decoder):
            if module is not None:
                self._handles.append(module.register_forward_pre_hook(self._decode_pre_hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _denoiser_pre_hook(self, module: Any, args: Any) -> None:
        if not self.span_marks:
            self.span_marks.append(self._clock.mark())
        if self._callback_steps:
            if not self.step_marks:
                self.step_marks.append(self._clock.mark())
            return
        self.step_marks.append(self._clock.mark())
        if self._on_step is not None:
            self._on_step(len(self.step_marks))

    def step_end(self, step: int) -> None:
        """``callback_on_step_end``: step ``step`` (1-based) has finished, scheduler update
        included."""
        self.step_end_marks.append(self._clock.mark())
        if self._on_step is not None:
            self._on_step(step)

    def _decode_pre_hook(self, module: Any, args: Any) -> None:
        if self.decode_mark is None and self.step_marks:
            self.decode_mark = self._clock.mark()
            if len(self.span_marks) == 1:
                self.span_marks.append(self._clock.mark())

    def begin(self) -> None:
        self.start = self._clock.mark()

    def finish(self) -> None:
        self.end = self._clock.mark()
        if len(self.span_marks) == 1:  # no decode seen: the loop ran to the end
            self.span_marks.append(self._clock.mark())

    @property
    def stage(self) -> str:
        """Where the generation is now (for OOM reports)."""
        if self.decode_mark is not None:
            return "decode"
        return "denoise" if self.step_marks else "encode"

    @property
    def current_step(self) -> int | None:
        """The denoising step in progress (1-based), or None before denoising."""
        if not self.step_marks:
            return None
        return len(self.step_end_marks) + 1 if self._callback_steps else len(self.step_marks)

    def intervals(self) -> list[tuple[str, Any, Any]]:
        """The generation's stages as (stage, start mark, end mark): "encode", one "step" per
        denoising step, "decode" (absent when the pipeline returned before decoding); empty before
        denoising."""
        if not self.step_marks:
            return []
        if self._callback_steps:
            bounds = [self.step_marks[0], *self.step_end_marks]
            decode_start = bounds[-1] if len(bounds) > 1 else None
        else:
            bounds = [
                *self.step_marks,
                self.decode_mark if self.decode_mark is not None else self.end,
            ]
            decode_start = self.decode_mark
        found = [("encode", self.start, bounds[0]), *(("step", a, b) for a, b in pairwise(bounds))]
        if decode_start is not None:
            found.append(("decode", decode_start, self.end))
        return found

    def times(self) -> StageTimes:
        """Read after a device synchronise."""
        seconds = self._clock.seconds_between
        intervals = self.intervals()
        if not intervals:
            return StageTimes(encode_s=None, step_s=(), decode_s=None)
        span = seconds(*self.span_marks) if len(self.span_marks) == 2 else None
        timed = {stage: seconds(a, b) for stage, a, b in intervals if stage != "step"}
        steps = tuple(seconds(a, b) for stage, a, b in intervals if stage == "step")
        return StageTimes(
            encode_s=timed["encode"],
            step_s=steps,
            decode_s=timed.get("decode"),
            denoise_span_s=span,
        )
