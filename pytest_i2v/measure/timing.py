"""Stage and per-step timing through module hooks (I2VGen-XL has no step callbacks).

The marks come from the device's clock (``measure.device``): on CUDA an event recorded on the
device's stream, so timing adds no host/device sync inside the loop and the events are read once
after the final synchronise; on the CPU a ``perf_counter`` reading (the work is synchronous)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_i2v.measure.device import Clock


@dataclass(frozen=True)
class StageTimes:
    encode_s: float | None
    step_s: tuple[float, ...]
    decode_s: float | None

    @property
    def denoise_s(self) -> float | None:
        return float(sum(self.step_s)) if self.step_s else None


class StageRecorder:
    """Marks the start of each UNet forward (one per denoising step, CFG is batched) and the
    first VAE-decoder call. A step spans one UNet forward to the next, so it includes the guidance
    arithmetic and the scheduler update; the last step ends where decoding starts."""

    def __init__(self, pipe: Any, clock: Clock, on_step: Callable[[int], None] | None = None):
        self._pipe = pipe
        self._clock = clock
        self._on_step = on_step
        self._handles: list[Any] = []
        self.start: Any = None
        self.end: Any = None
        self.step_marks: list[Any] = []
        self.decode_mark: Any = None

    def __enter__(self) -> StageRecorder:
        self._handles.append(self._pipe.unet.register_forward_pre_hook(self._unet_pre_hook))
        vae = self._pipe.vae
        for module in (getattr(vae, "post_quant_conv", None), vae.decoder):
            if module is not None:
                self._handles.append(module.register_forward_pre_hook(self._decode_pre_hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _unet_pre_hook(self, module: Any, args: Any) -> None:
        self.step_marks.append(self._clock.mark())
        if self._on_step is not None:
            self._on_step(len(self.step_marks))

    def _decode_pre_hook(self, module: Any, args: Any) -> None:
        if self.decode_mark is None and self.step_marks:
            self.decode_mark = self._clock.mark()

    def begin(self) -> None:
        self.start = self._clock.mark()

    def finish(self) -> None:
        self.end = self._clock.mark()

    @property
    def stage(self) -> str:
        """Where the generation is now (for OOM reports)."""
        if self.decode_mark is not None:
            return "decode"
        return "denoise" if self.step_marks else "encode"

    def times(self) -> StageTimes:
        """Read after a device synchronise."""
        seconds = self._clock.seconds_between
        marks = self.step_marks
        if not marks:
            return StageTimes(encode_s=None, step_s=(), decode_s=None)
        ends = [*marks[1:], self.decode_mark if self.decode_mark is not None else self.end]
        steps = tuple(seconds(a, b) for a, b in zip(marks, ends, strict=True))
        decode = seconds(self.decode_mark, self.end) if self.decode_mark is not None else None
        return StageTimes(encode_s=seconds(self.start, marks[0]), step_s=steps, decode_s=decode)
