"""Whether a generation's output held against its reference's: the figures
(``record.output`` computes them) and the bar they are held to. Pure: no torch, no pytest."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FidelityFigures:
    """One output against its reference, over the frames both kept."""

    frames: int  # frames compared
    identical: bool  # every pixel equal
    min_psnr_db: float | None  # the worst frame's PSNR (data range 1); None when identical
    mean_ssim: float | None  # SSIM averaged over the frames; None where the frames are too small
    cosine: float  # cosine similarity of the whole outputs, their means removed
    shape_changed: bool = False  # another size or frame count: nothing else compares

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

    def held(self, figures: FidelityFigures) -> bool:
        if figures.shape_changed:
            return False
        if figures.identical:
            return True
        assert figures.min_psnr_db is not None  # not identical: a finite PSNR
        ssim_ok = figures.mean_ssim is None or figures.mean_ssim >= self.min_ssim
        return figures.min_psnr_db >= self.min_psnr_db and ssim_ok

    def describe(self, figures: FidelityFigures) -> str:
        """``PSNR 43.4 dB < 60.0 dB, SSIM 0.998 against the reference's output, 8 frames``."""
        if figures.shape_changed or figures.identical:
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
            f"PSNR {psnr:.1f} dB {sign} {self.min_psnr_db:.1f} dB{ssim_text} against the "
            f"reference's output, {figures.frames} frames"
        )


def output_note(figures: FidelityFigures | None) -> str:
    """The terminal line's word on an output that is not the baseline's: "output differs from the
    baseline's: PSNR 76.0 dB, ..., 5 frames (not judged yet)"; "" for the same output or none
    compared."""
    if figures is None or figures.identical:
        return ""
    return f"output differs from the baseline's: {figures.summary()} (not judged yet)"
