"""The typed parts of a results record: times by stage, peak memory, where memory started, an
out-of-memory error, fast mode, adaptive repeats, the roofline, the declared budget, the packed
work signature and the work compared with the baseline.

Each part's fields are its JSON keys (``record.serialise`` writes them generically), so a field's
name is a schema field: metric names come from ``pytest_i2v.metrics``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cattrs

from pytest_i2v.metrics import ALLOCATED_BYTES, DEVICE_BYTES, HOST_RSS_BYTES, RESERVED_BYTES
from pytest_i2v.storage import JsonValue, as_json
from pytest_i2v.verdict.fidelity import FidelityBar, FidelityFigures, FidelityVerdict
from pytest_i2v.verdict.signature import WorkSignature
from pytest_i2v.verdict.work_diff import WorkDiff


@dataclass(frozen=True)
class Stages:
    """Per-stage times in seconds: medians over the repeats, and each repeat's own figures."""

    encode_s: float | None = None
    # fast mode: N x the median measured step (predicted); else the measured loop
    denoise_s: float | None = None
    step_s: float | None = None
    step_samples_s: list[list[float]] = field(default_factory=list)
    decode_s: float | None = None
    # per repeat, so each repeat's stages can be checked against its own synchronised total
    encode_samples_s: list[float | None] = field(default_factory=list)
    decode_samples_s: list[float | None] = field(default_factory=list)
    denoise_span_samples_s: list[float | None] = field(default_factory=list)


@dataclass(frozen=True)
class PeakMemory:
    allocated_bytes: int | None = None  # torch allocator max_memory_allocated
    reserved_bytes: int | None = None  # torch allocator max_memory_reserved
    device_bytes: int | None = None  # NVML; what it covers is in device_scope
    host_rss_bytes: int | None = None  # host resident-set high-water mark
    # "process" (this process), "device" (the whole GPU, other processes included) or "unavailable";
    # figures of different scopes are never compared.
    device_scope: str | None = None

    @staticmethod
    def max_of(peaks: list[PeakMemory]) -> PeakMemory:
        def largest(name: str) -> int | None:
            values = [getattr(p, name) for p in peaks if getattr(p, name) is not None]
            return max(values) if values else None

        scopes = {p.device_scope for p in peaks if p.device_scope is not None}
        scope = scopes.pop() if len(scopes) == 1 else ("mixed" if scopes else None)
        return PeakMemory(
            allocated_bytes=largest(ALLOCATED_BYTES),
            reserved_bytes=largest(RESERVED_BYTES),
            device_bytes=largest(DEVICE_BYTES),
            host_rss_bytes=largest(HOST_RSS_BYTES),
            device_scope=scope,
        )


@dataclass(frozen=True)
class MemoryLevel:
    """Where a test's measurement started, after the cache was freed and the peaks reset."""

    allocated_bytes: int | None
    reserved_bytes: int | None
    device_bytes: int | None
    device_scope: str | None
    host_rss_bytes: int | None


@dataclass(frozen=True)
class OomInfo:
    stage: str  # "encode", "denoise" or "decode"
    step: int | None  # the denoising step (1-based) when the stage is "denoise"
    message: str
    allocated_bytes: int | None  # allocator state at the moment of the error
    before_bytes: int | None = None  # allocated (GPU) or RSS (CPU) before the measurement
    after_free_bytes: int | None = None  # the same once caches were freed: back near "before"
    form: str = "allocator"  # see oom_form


@dataclass(frozen=True)
class FastMode:
    """``--i2v-fast``: the total is predicted from ``measured_steps`` of ``steps``."""

    measured_steps: int | None
    steps: int
    measured_time_s: float | None
    measured_time_samples_s: list[float]
    predicted: bool = True


@dataclass(frozen=True)
class AdaptiveRecord:
    """Adaptive repeats (``--i2v-target-ci``): the target, the repeats needed, how it stopped."""

    target_ci_pct: float
    min_repeats: int
    max_repeats: int
    repeats_needed: int
    stopped: str  # "converged" or "max-repeats"


@dataclass(frozen=True)
class Roofline:
    """Achieved TFLOP/s of the denoising loop (and the decode) against the datasheet peak."""

    unet_step_tflop: float
    decode_tflop: float
    denoise_tflops: float
    decode_tflops: float | None
    peak_tflops: float | None
    peak_kind: str | None  # the profile's peak_tflops key: fp16, bf16, fp32 or tf32
    efficiency: float | None
    # a lower bound then: the attention FLOPs ran in kernels the counter cannot see (results
    # before 2026-12-02 do not say; they are read as counting it, as they were shown)
    excludes_attention: bool = False


@dataclass(frozen=True)
class DeclaredBudget:
    """The budgets the test's mark declares (``vram_gb``, ``time_s``), either may be None."""

    vram_gb: float | None = None
    time_s: float | None = None


@dataclass(frozen=True)
class SignatureRecord:
    """``WorkSignature.to_record()``: the digest in the open, the op table packed."""

    digest: str
    device_kind: str
    profiled_steps: int
    noise: list[str]
    rows: int
    packed: str

    @classmethod
    def of(cls, signature: WorkSignature) -> SignatureRecord:
        return cattrs.structure(signature.to_record(), cls)

    def work(self) -> WorkSignature:
        """The signature itself, its table unpacked."""
        return WorkSignature.from_dict(self.__dict__)


@dataclass(frozen=True)
class WorkComparison:
    """The work against the baseline's: the diff, its verdict ("identical", "changed",
    "improved", "regressed") and, for identical work, where the excess time sits."""

    diff: WorkDiff
    verdict: str
    excess: str | None = None

    def to_dict(self) -> dict[str, JsonValue]:
        """Flat, as the report and the explanations read it: the diff's keys (its largest rows),
        the verdict, the excess."""
        excess = {"excess": self.excess} if self.excess else {}
        return {**as_json(self.diff.to_dict()), "verdict": self.verdict, **excess}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkComparison:
        return cls(WorkDiff.from_dict(data), str(data.get("verdict")), data.get("excess"))


@dataclass(frozen=True)
class OutputReference:
    """The output of a test's first measured generation, reduced to compare another run's with
    (``measure.output``): some of its frames, downscaled, uint8 RGB, zlib-packed in base64."""

    kept_frames: list[int]  # the generated frames' indices, first and last included
    shape: list[int]  # (kept frames, height, width, 3) of the packed pixels
    generated_shape: list[int]  # (frames, height, width, 3) as the pipeline returned them
    packed: str
    # the final latents before decode, where the pipeline hands them to callback_on_step_end:
    # their dtype and shape, whether any is NaN or inf, and at most measure.output.LATENT_VALUES
    # of them, evenly spaced over the flattened tensor, float32, zlib-packed in base64
    latents_dtype: str | None = None
    latents_shape: list[int] | None = None
    latents_nonfinite: bool = False
    latents_packed: str | None = None


@dataclass(frozen=True)
class OutputComparison:
    """A test's output judged against its reference's: the figures, the bar they were held to,
    what the reference was (the baseline's output, or a sibling test's of this session) and the
    verdict. ``reference``: the reference's output where the two differ (the report draws both);
    None where they are identical."""

    figures: FidelityFigures
    bar: FidelityBar
    lossy: bool  # held to the lossy bar (a cache, a test marked lossy)
    against: str  # "the baseline's output" or "test_native's output"
    verdict: FidelityVerdict
    reference: OutputReference | None = None

    def line(self) -> str:
        """The decision's words: ``PSNR 17.9 dB < 30.0 dB, SSIM 0.61 < 0.90 against the
        baseline's output, 8 frames`` (the lossy bar named)."""
        bar = " (the lossy bar)" if self.lossy else ""
        return self.bar.describe(self.figures, self.against) + bar

    def note(self) -> str:
        """The terminal line's word on the output: "" where it is the reference's exactly."""
        if self.figures.identical:
            return ""
        words = {"held": "output held", "changed": "output changed"}
        word = words.get(self.verdict, "output nondeterministic (not judged)")
        return f"{word}: {self.line()}"
