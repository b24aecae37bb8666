"""Whether a generation's output held against its reference's: the figures
(``record.output`` computes them) and the bar they are held to. Pure: no torch, no pytest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pytest_i2v.generation.fidelity_mark import FidelityRequest
from pytest_i2v.storage import JsonValue

# "held": within the bar; "changed": beyond it (the test fails as output changed);
# "nondeterministic": two runs of this code in this process already differ beyond the bar, so the
# comparison cannot tell a change from noise (reported, never failed: dynamo's
# eager_two_runs_differ).
FidelityVerdict = Literal["held", "changed", "nondeterministic"]

# PyTorch dynamo's accuracy rule (torch._dynamo.utils.same) on the final latents: allclose at a
# per-dtype tolerance (dynamo's 1e-4 for float32; the half precisions' ours, about their machine
# epsilon), else an RMSE within RMSE_MULTIPLIER times this code's own run-to-run RMSE (plus a tenth
# of the tolerance) and a cosine similarity of at least MIN_LATENTS_COSINE. Random weights make
# pixels saturate or collapse; the latents before decode still carry the denoiser's work.
LATENTS_TOLERANCE = {"float32": 1e-4, "float64": 1e-7, "float16": 1e-3, "bfloat16": 1e-2}
RMSE_MULTIPLIER = 2.0
MIN_LATENTS_COSINE = 0.99


@dataclass(frozen=True)
class LatentsFigures:
    """The final latents (before decode) against the reference's, over the values both kept."""

    dtype: str
    shape_changed: bool  # another shape or dtype: nothing else compares
    nonfinite_added: bool  # NaN or inf where the reference had none
    allclose: bool  # within the dtype's tolerance, value by value
    rmse: float
    cosine: float
    base_rmse: float = 0.0  # this code's own second run against its first (0: identical)

    @property
    def tolerance(self) -> float:
        return LATENTS_TOLERANCE.get(self.dtype, LATENTS_TOLERANCE["float32"])

    def held(self) -> bool:
        """dynamo's rule: allclose, else RMSE within the multiple of the base's and cosine."""
        if self.shape_changed or self.nonfinite_added:
            return False
        if self.allclose:
            return True
        within = self.rmse <= RMSE_MULTIPLIER * self.base_rmse + self.tolerance / 10.0
        return within and self.cosine >= MIN_LATENTS_COSINE

    def summary(self) -> str:
        """``latents cosine 0.9300 < 0.99, RMSE 4.1x the base's`` (``latents allclose``)."""
        if self.shape_changed:
            return "the latents' shape or dtype changed"
        if self.nonfinite_added:
            return "the latents have NaN or inf values the reference's have not"
        if self.allclose:
            return f"latents allclose at {self.tolerance:g}"
        sign = "<" if self.cosine < MIN_LATENTS_COSINE else ">="
        if self.base_rmse > 0:
            rmse = f"RMSE {self.rmse / self.base_rmse:.1f}x the base's"
        else:
            rmse = f"RMSE {self.rmse:.2g} (the base's own runs identical)"
        return f"latents cosine {self.cosine:.4f} {sign} {MIN_LATENTS_COSINE}, {rmse}"


@dataclass(frozen=True)
class FidelityFigures:
    """One output against its reference, over the frames both kept."""

    frames: int  # frames compared
    identical: bool  # every pixel equal
    min_psnr_db: float | None  # the worst frame's PSNR (data range 1); None when identical
    mean_ssim: float | None  # SSIM averaged over the frames; None where the frames are too small
    cosine: float  # cosine similarity of the whole outputs, their means removed
    shape_changed: bool = False  # another size or frame count: nothing else compares
    latents: LatentsFigures | None = None  # where both runs kept their final latents

    def summary(self) -> str:
        """``PSNR 43.4 dB, SSIM 0.998, cosine 0.9992, 8 frames`` (``identical, 8 frames``)."""
        if self.shape_changed:
            return "the output's shape changed"
        if self.identical:
            return f"identical, {self.frames} frames"
        ssim = f", SSIM {self.mean_ssim:.3f}" if self.mean_ssim is not None else ""
        return (
            f"PSNR {self.min_psnr_db:.1f} dB{ssim}, cosine {self.cosine:.4f}, {self.frames} frames"
        )


@dataclass(frozen=True)
class FidelityBar:
    """What an output must keep against its reference to hold: the worst frame's PSNR and the mean
    SSIM."""

    min_psnr_db: float
    min_ssim: float
    # the lossless bar also holds the final latents to dynamo's rule (LatentsFigures.held), so a
    # change the decoded uint8 frames hide (saturated random weights) still shows; a lossy test's
    # latents move by design, and only its frames are held
    latents_rule: bool = True

    def held(self, figures: FidelityFigures) -> bool:
        if figures.shape_changed:
            return False
        if self.latents_rule and figures.latents is not None and not figures.latents.held():
            return False
        if figures.identical:
            return True
        assert figures.min_psnr_db is not None  # not identical: a finite PSNR
        ssim_ok = figures.mean_ssim is None or figures.mean_ssim >= self.min_ssim
        return figures.min_psnr_db >= self.min_psnr_db and ssim_ok

    def _latents_text(self, figures: FidelityFigures) -> str:
        latents = figures.latents
        if not self.latents_rule or latents is None or latents.held():
            return ""
        return f", {latents.summary()}"

    def describe(self, figures: FidelityFigures, against: str = "the reference's output") -> str:
        """``PSNR 43.4 dB < 60.0 dB, SSIM 0.998 >= 0.999 against the reference's output, 8
        frames``."""
        if figures.shape_changed:
            return f"{figures.summary()} against {against}"
        if figures.identical:
            latents = self._latents_text(figures)
            if latents:
                return f"frames identical{latents} against {against}, {figures.frames} frames"
            return figures.summary()
        psnr = figures.min_psnr_db
        sign = "<" if psnr is not None and psnr < self.min_psnr_db else ">="
        ssim = figures.mean_ssim
        ssim_text = (
            f", SSIM {ssim:.3f} {'<' if ssim < self.min_ssim else '>='} {self.min_ssim:.3f}"
            if ssim is not None
            else ""
        )
        return (
            f"PSNR {psnr:.1f} dB {sign} {self.min_psnr_db:.1f} dB{ssim_text}"
            f"{self._latents_text(figures)} against {against}, {figures.frames} frames"
        )


# Defaults, measured (benchmarks/output_sensitivity.py, docs/measurements/output-sensitivity.md,
# 2026-12-07): unchanged code on the CPU gives the same uint8 frames in 20 of 20 fresh processes;
# one thread instead of two moved tiny I2VGen-XL's output to 89 dB (one 8-bit step in one value
# of a 64 px frame is 89 dB); the smallest real change seen, a cache on tiny Wan 2.1, landed at
# 76 dB. So lossless code must keep 80 dB. A lossy test (a cache, fp8) is held to what the field
# publishes for a cache worth shipping: PSNR >= 30 dB (TeaCache's and MagCache's slow modes; their
# fast modes, 14-27 dB, are deliberately lossy) and SSIM >= 0.90.
LOSSLESS_BAR_DEFAULT = (80.0, 0.999)
LOSSY_BAR_DEFAULT = (30.0, 0.90)


@dataclass(frozen=True)
class FidelitySettings:
    """A profile's ``fidelity:``: the bar for code that should not change the output, and for a
    test marked lossy."""

    lossless: FidelityBar = field(default_factory=lambda: FidelityBar(*LOSSLESS_BAR_DEFAULT))
    lossy: FidelityBar = field(
        default_factory=lambda: FidelityBar(*LOSSY_BAR_DEFAULT, latents_rule=False)
    )

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            part: {"min_psnr_db": bar.min_psnr_db, "min_ssim": bar.min_ssim}
            for part, bar in (("lossless", self.lossless), ("lossy", self.lossy))
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FidelitySettings:
        """``{lossless: {min_psnr_db: 80, min_ssim: 0.999}, lossy: {...}}``, either part optional;
        a ValueError names what is wrong."""
        unknown = sorted(set(data) - {"lossless", "lossy"})
        if unknown:
            raise ValueError(f"unknown fidelity part(s) {', '.join(unknown)} (lossless, lossy)")
        settings = cls()
        bars = {}
        for part in ("lossless", "lossy"):
            given = data.get(part) or {}
            if not isinstance(given, Mapping):
                raise ValueError(f"{part} must map min_psnr_db and min_ssim to numbers")
            bars[part] = _bar(part, given, getattr(settings, part))
        return cls(**bars)


def _bar(part: str, data: Mapping[str, Any], base: FidelityBar) -> FidelityBar:
    unknown = sorted(set(data) - {"min_psnr_db", "min_ssim"})
    if unknown:
        raise ValueError(f"{part}: unknown key(s) {', '.join(unknown)} (min_psnr_db, min_ssim)")
    psnr = data.get("min_psnr_db", base.min_psnr_db)
    ssim = data.get("min_ssim", base.min_ssim)
    if not _number(psnr) or not _number(ssim) or psnr <= 0 or not 0 <= ssim <= 1:
        raise ValueError(
            f"{part}: min_psnr_db must be a positive number of dB and min_ssim a number in [0, 1], "
            f"got {psnr!r} and {ssim!r}"
        )
    return replace(base, min_psnr_db=float(psnr), min_ssim=float(ssim))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def bar_for(
    settings: FidelitySettings, request: FidelityRequest | None, lossy_config: bool
) -> tuple[FidelityBar, bool]:
    """(the bar, whether it is the lossy one) for a test: its mark's figures over the profile's
    lossy bar when the mark or the config (a cache) says lossy, else over the lossless one."""
    lossy = lossy_config or (request is not None and request.lossy)
    bar = settings.lossy if lossy else settings.lossless
    if request is not None and request.min_psnr_db is not None:
        bar = replace(bar, min_psnr_db=request.min_psnr_db)
    if request is not None and request.min_ssim is not None:
        bar = replace(bar, min_ssim=request.min_ssim)
    return bar, lossy


def fidelity_verdict(
    figures: FidelityFigures, bar: FidelityBar, repeat: FidelityFigures | None
) -> FidelityVerdict:
    """Held, changed, or nondeterministic: beyond the bar, but this code's own second run in the
    same process is beyond it too (``repeat``: the second measured generation against the first;
    None when only one was measured)."""
    if bar.held(with_base(figures, repeat)):
        return "held"
    # the repeat is its own base: dynamo's multiplier already allows the latents this code's noise
    if repeat is not None and not bar.held(with_base(repeat, repeat)):
        return "nondeterministic"
    return "changed"


def with_base(figures: FidelityFigures, repeat: FidelityFigures | None) -> FidelityFigures:
    """``figures`` with their latents' base RMSE: this code's own second run against its first
    (``repeat``), the noise dynamo's rule allows a multiple of."""
    if figures.latents is None or repeat is None or repeat.latents is None:
        return figures
    return replace(figures, latents=replace(figures.latents, base_rmse=repeat.latents.rmse))
