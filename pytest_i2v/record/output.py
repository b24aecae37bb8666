"""One test's reduced output (``measure.output`` reduces it) unpacked, and compared with its
reference: per-frame PSNR (data range 1) and SSIM from scikit-image, with the Gaussian window of
Wang et al. (sigma 1.5, 11 pixels), and the cosine similarity of the whole outputs. numpy only: the
review CLI and A/B compare outputs without torch."""

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
from pytest_i2v.verdict.fidelity import FidelityFigures

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


def compare_outputs(reference: OutputReference, current: OutputReference) -> FidelityFigures:
    frames = len(current.kept_frames)
    if (reference.shape, reference.kept_frames) != (current.shape, current.kept_frames):
        return FidelityFigures(frames, False, None, None, 0.0, shape_changed=True)
    if reference.packed == current.packed:
        return FidelityFigures(frames, True, None, None, 1.0)
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
