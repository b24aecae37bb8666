"""One test's reduced output (``measure.output`` reduces it) unpacked, and compared with its
reference: per-frame PSNR (data range 1) and SSIM from scikit-image, with the Gaussian window of
Wang et al. (sigma 1.5, 11 pixels), and the cosine similarity of the whole outputs; the final
latents, where both kept them, by numpy's allclose, RMSE and cosine (dynamo's rule,
``verdict.fidelity.LatentsFigures``). numpy only: the review CLI and A/B compare outputs without
torch."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import zlib
from collections.abc import Callable
from typing import cast

import numpy as np
from skimage import metrics

from pytest_i2v.record.parts import OutputReference
from pytest_i2v.verdict.baseline_records import StoredFile
from pytest_i2v.verdict.fidelity import FidelityFigures, LatentsFigures

SSIM_WINDOW = 11  # the Gaussian window's size at sigma 1.5: smaller frames get no SSIM
# scikit-image's metrics carry no annotations: a number out, whatever the arrays
peak_signal_noise_ratio = cast(Callable[..., float], metrics.peak_signal_noise_ratio)
structural_similarity = cast(Callable[..., float], metrics.structural_similarity)


def unpack_output(reference: OutputReference) -> np.ndarray:
    """The reference's pixels, (kept frames, height, width, 3) uint8."""
    raw = zlib.decompress(base64.b64decode(reference.packed))
    return np.frombuffer(raw, dtype=np.uint8).reshape(reference.shape)


def _unit(reference: OutputReference) -> np.ndarray:
    """float64 in [0, 1]: a one-level change in one pixel still moves the figures."""
    return unpack_output(reference).astype(np.float64) / 255.0


def _ssim(base: np.ndarray, head: np.ndarray) -> float | None:
    if min(base.shape[1:3]) < SSIM_WINDOW:
        return None
    per_frame = [
        structural_similarity(
            b,
            h,
            data_range=1.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for b, h in zip(base, head, strict=True)
    ]
    return float(np.mean(per_frame))


def unpack_latents(reference: OutputReference) -> np.ndarray | None:
    """The kept latent values, float32, or None where the pipeline exposed none."""
    if reference.latents_packed is None:
        return None
    raw = zlib.decompress(base64.b64decode(reference.latents_packed))
    return np.frombuffer(raw, dtype=np.float32)


def compare_latents(reference: OutputReference, current: OutputReference) -> LatentsFigures | None:
    base, head = unpack_latents(reference), unpack_latents(current)
    if base is None or head is None:
        return None
    dtype = current.latents_dtype or "float32"
    same_kind = (reference.latents_shape, reference.latents_dtype) == (
        current.latents_shape,
        current.latents_dtype,
    )
    if not same_kind or base.shape != head.shape:
        return LatentsFigures(dtype, True, False, False, float("inf"), 0.0)
    nonfinite_added = current.latents_nonfinite and not reference.latents_nonfinite
    finite = np.isfinite(base) & np.isfinite(head)
    b, h = base[finite].astype(np.float64), head[finite].astype(np.float64)
    figures = LatentsFigures(dtype, False, nonfinite_added, False, 0.0, 1.0)
    tolerance = figures.tolerance
    norms = float(np.linalg.norm(b) * np.linalg.norm(h))
    return dataclasses.replace(
        figures,
        allclose=bool(np.allclose(h, b, rtol=tolerance, atol=tolerance)),
        rmse=float(np.sqrt(np.mean((h - b) ** 2))) if b.size else 0.0,
        cosine=float(b @ h / norms) if norms else float(np.array_equal(b, h)),
    )


def compare_outputs(reference: OutputReference, current: OutputReference) -> FidelityFigures:
    frames = len(current.kept_frames)
    latents = compare_latents(reference, current)
    if (reference.shape, reference.kept_frames) != (current.shape, current.kept_frames):
        return FidelityFigures(frames, False, None, None, 0.0, shape_changed=True)
    if reference.packed == current.packed:
        return FidelityFigures(frames, True, None, None, 1.0, latents=latents)
    base, head = _unit(reference), _unit(current)
    psnr = [
        float(peak_signal_noise_ratio(b, h, data_range=1.0))
        for b, h in zip(base, head, strict=True)
        if not np.array_equal(b, h)  # an identical frame has no PSNR: it never is the worst
    ]
    centred_base, centred_head = (base - base.mean()).ravel(), (head - head.mean()).ravel()
    norms = float(np.linalg.norm(centred_base) * np.linalg.norm(centred_head))
    cosine = float(centred_base @ centred_head / norms) if norms else 0.0
    return FidelityFigures(
        frames=frames,
        identical=False,
        min_psnr_db=min(psnr),
        mean_ssim=_ssim(base, head),
        cosine=cosine,
        latents=latents,
    )


def stored_output(reference: OutputReference) -> StoredFile:
    """The output as the baseline keeps it beside its file, named by a digest of its pixels."""
    document = json.dumps(dataclasses.asdict(reference), sort_keys=True)
    digest = hashlib.sha256(document.encode()).hexdigest()[:16]
    return StoredFile(digest, gzip.compress(document.encode(), mtime=0))


def read_stored_output(data: bytes) -> OutputReference | None:
    """A stored output; None when it cannot be read (then nothing is compared)."""
    try:
        return OutputReference(**json.loads(gzip.decompress(data)))
    except (OSError, ValueError, TypeError):
        return None
