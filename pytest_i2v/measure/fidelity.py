"""One output against its reference (``measure.output``'s reduced frames): per-frame PSNR and SSIM
from torchmetrics (data range 1, no downloads), and the cosine similarity of the whole outputs."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from pytest_i2v.measure.output import unpack_output
from pytest_i2v.record.parts import OutputReference
from pytest_i2v.verdict.fidelity import FidelityFigures

SSIM_KERNEL = 11  # torchmetrics' default Gaussian window: smaller frames get no SSIM


def _pixels(reference: OutputReference) -> torch.Tensor:
    """(frames, 3, height, width) float64 in [0, 1]: float64 so that a one-level change in one
    pixel still moves the figures."""
    array = unpack_output(reference).astype(np.float64) / 255.0
    return torch.from_numpy(array).permute(0, 3, 1, 2)


def compare_outputs(reference: OutputReference, current: OutputReference) -> FidelityFigures:
    frames = len(current.kept_frames)
    if (reference.shape, reference.kept_frames) != (current.shape, current.kept_frames):
        return FidelityFigures(frames, False, None, None, 0.0, shape_changed=True)
    if reference.packed == current.packed:
        return FidelityFigures(frames, True, None, None, 1.0)
    base, head = _pixels(reference), _pixels(current)
    psnr = peak_signal_noise_ratio(head, base, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = None
    if min(base.shape[-2:]) >= SSIM_KERNEL:
        per_frame = structural_similarity_index_measure(
            head, base, data_range=1.0, reduction="none"
        )
        assert isinstance(per_frame, torch.Tensor)  # a tuple only with return_full_image
        ssim = float(per_frame.mean().item())
    centred_base, centred_head = (base - base.mean()).flatten(), (head - head.mean()).flatten()
    cosine = torch.nn.functional.cosine_similarity(centred_base, centred_head, dim=0)
    return FidelityFigures(
        frames=frames,
        identical=False,
        min_psnr_db=float(psnr.min().item()),
        mean_ssim=ssim,
        cosine=float(cosine.item()),
    )
