"""A generation's output, reduced to a small reference that another run's output is compared with
(``record.output``): at most ``MAX_FRAMES`` frames, evenly spaced with the first and the last,
each area-downscaled to at most ``LONG_SIDE`` pixels on its long side, as uint8 RGB.

Area averaging keeps what a changed denoiser or decoder does to the picture and drops what no
viewer sees at full size; uint8 is what a video file holds. ``benchmarks/output_sensitivity.py``
measures what the reduction keeps and what it costs."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import numpy as np
import torch

from pytest_i2v.record.parts import OutputReference

MAX_FRAMES = 8
LONG_SIDE = 64
# values of the final latents kept: 16 KiB as float32, every one of a tiny model's; a changed
# denoiser moves all of them, so an even sample over the flattened tensor sees it
LATENT_VALUES = 4096


def kept_frame_indices(frames: int, most: int = MAX_FRAMES) -> list[int]:
    """Evenly spaced frame indices, the first and the last always among them."""
    if frames <= most:
        return list(range(frames))
    return sorted({round(i * (frames - 1) / (most - 1)) for i in range(most)})


def reduce_output(frames: Any, latents: torch.Tensor | None = None) -> OutputReference:
    """``frames``: the pipeline's ``output_type="np"`` frames, (1, F, H, W, 3) floats in [0, 1];
    ``latents``: the final latents before decode, where the pipeline exposes them."""
    video = np.asarray(frames, dtype=np.float32)[0]
    count, height, width, _ = video.shape
    kept = kept_frame_indices(count)
    pixels = torch.from_numpy(video[kept]).permute(0, 3, 1, 2)  # (kept, 3, H, W)
    scale = min(1.0, LONG_SIDE / max(height, width))
    if scale < 1.0:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        pixels = torch.nn.functional.interpolate(pixels, size=size, mode="area")
    quantised = (pixels.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    array = quantised.permute(0, 2, 3, 1).contiguous().numpy()
    return OutputReference(
        kept_frames=kept,
        shape=list(array.shape),
        generated_shape=list(video.shape),
        packed=_pack(array.tobytes()),
        **_latents_fields(latents),
    )


def _pack(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def _latents_fields(latents: torch.Tensor | None) -> dict[str, Any]:
    if latents is None:
        return {}
    flat = latents.detach().reshape(-1)
    picked = torch.linspace(0, flat.numel() - 1, min(LATENT_VALUES, flat.numel()))
    values = flat[picked.round().long().to(flat.device)].to("cpu", torch.float32)
    return {
        "latents_dtype": str(latents.dtype).removeprefix("torch."),
        "latents_shape": list(latents.shape),
        "latents_nonfinite": not bool(torch.isfinite(flat).all()),
        "latents_packed": _pack(values.numpy().tobytes()),
    }
