"""What one measurement comes to: its repeats (``RepeatSample``), an OOM where it ran out
(``OomInfo``), and the figures the results and the gate read (``Measurement``); the rule that stops
adaptive repeats once the median is known well enough (``AdaptiveRepeats``)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.record.parts import MemoryLevel, OomInfo, OutputReference, PeakMemory, Stages
from pytest_i2v.verdict.conditions import RepeatConditions, RunConditions, assess
from pytest_i2v.verdict.fidelity import FidelityFigures


@dataclass(frozen=True)
class RepeatSample:
    total_s: float
    encode_s: float | None
    step_s: tuple[float, ...]
    decode_s: float | None
    peak: PeakMemory
    conditions: RepeatConditions | None = None  # the GPU under this repeat (None on the CPU)
    denoise_span_s: float | None = None  # the loop by its own mark pair (StageTimes.denoise_span_s)


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def median_ci_pct(times: list[float]) -> float | None:
    """Full width of the 95 % confidence interval of the median, in % of the median: the
    log-scale spread with the median's asymptotic efficiency (sd * 1.2533 / sqrt(n))."""
    if len(times) < 2 or min(times) <= 0:
        return None
    logs = [math.log(t) for t in times]
    half = (
        stats.t.ppf(0.975, len(logs) - 1) * 1.2533 * statistics.stdev(logs) / math.sqrt(len(logs))
    )
    return (math.exp(half) - math.exp(-half)) * 100.0


@dataclass(frozen=True)
class AdaptiveRepeats:
    """Repeat until the median is known to ``target_pct`` (95 % CI width), within [minimum,
    maximum]."""

    target_pct: float
    minimum: int = 3
    maximum: int = 15

    def done(self, times: list[float]) -> bool:
        if len(times) < max(self.minimum, 2):
            return False
        width = median_ci_pct(times)
        return len(times) >= self.maximum or (width is not None and width <= self.target_pct)


@dataclass(frozen=True)
class Measurement:
    spec: GenerationSpec
    outcome: str  # "ok" or "oom"
    warmup: int
    samples: tuple[RepeatSample, ...] = ()
    oom: OomInfo | None = None
    nvml_note: str | None = None
    # which NVML device the figures come from (NvmlHandle.opened_by)
    nvml_opened_by: str | None = None
    output_shape: tuple[int, ...] | None = None
    output: OutputReference | None = None  # the first measured generation's, reduced
    output_repeat: FidelityFigures | None = None  # the second one's output against the first's
    wall_s: float = 0.0  # the whole measurement, warm-up included (what the gate costs)
    measured_steps: int | None = None  # fewer than spec.steps in fast mode
    adaptive: AdaptiveRepeats | None = None
    start: MemoryLevel | None = None  # the memory level this test's measurement started from
    locked_sm_clock_mhz: float | None = None  # --i2v-lock-clocks held the SM clock here
    # the board's base clock (NVML), the floor of a normal clock
    base_sm_clock_mhz: float | None = None

    @property
    def conditions(self) -> RunConditions | None:
        """The GPU's conditions per repeat and the repeats to distrust; None on the CPU."""
        if all(s.conditions is None for s in self.samples):
            return None
        return assess(
            [s.conditions or RepeatConditions() for s in self.samples],
            self.locked_sm_clock_mhz,
            base_sm_clock_mhz=self.base_sm_clock_mhz,
        )

    @property
    def predicted(self) -> bool:
        """Fast mode: the total is encode + N x median step + decode, predicted from K measured
        steps."""
        return self.measured_steps is not None and self.measured_steps < self.spec.steps

    def _total(self, sample: RepeatSample) -> float:
        if not self.predicted or not sample.step_s:
            return sample.total_s
        return (
            (sample.encode_s or 0.0)
            + self.spec.steps * float(statistics.median(sample.step_s))
            + (sample.decode_s or 0.0)
        )

    @property
    def time_samples_s(self) -> list[float]:
        """Per repeat: the synchronised total, or in fast mode the predicted total."""
        return [self._total(s) for s in self.samples]

    @property
    def measured_time_s(self) -> float | None:
        return _median([s.total_s for s in self.samples])

    @property
    def time_s(self) -> float | None:
        return _median(self.time_samples_s)

    @property
    def ci_pct(self) -> float | None:
        return median_ci_pct(self.time_samples_s)

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

    @property
    def stages(self) -> Stages:
        measured_denoise = _median([sum(s.step_s) for s in self.samples if s.step_s])
        step = self.step_s
        return Stages(
            encode_s=_median([s.encode_s for s in self.samples if s.encode_s is not None]),
            # fast mode: N x the median measured step (predicted); else the measured loop
            denoise_s=self.spec.steps * step if self.predicted and step else measured_denoise,
            step_s=step,
            step_samples_s=[list(s.step_s) for s in self.samples],
            decode_s=_median([s.decode_s for s in self.samples if s.decode_s is not None]),
            encode_samples_s=[s.encode_s for s in self.samples],
            decode_samples_s=[s.decode_s for s in self.samples],
            denoise_span_samples_s=[s.denoise_span_s for s in self.samples],
        )
