"""The conditioning image: deterministic by default (the study used a 768x768 portrait), or a user
file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pytest_i2v.errors import I2VUsageError

DEFAULT_INPUT_SIZE = 768


def synthetic_portrait(
    width: int = DEFAULT_INPUT_SIZE, height: int = DEFAULT_INPUT_SIZE, seed: int = 0
) -> Image.Image:
    """A plain background, a head-and-shoulders shape and mild noise: a clear subject on a simple
    background like the study's input, identical in every run."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ny, nx = y / height, x / width
    image = np.empty((height, width, 3), np.float32)
    image[..., 0] = 0.55 + 0.25 * ny
    image[..., 1] = 0.60 + 0.10 * nx
    image[..., 2] = 0.75 - 0.20 * ny
    head = ((nx - 0.5) / 0.17) ** 2 + ((ny - 0.38) / 0.22) ** 2 <= 1.0
    shoulders = ((nx - 0.5) / 0.38) ** 2 + ((ny - 1.0) / 0.32) ** 2 <= 1.0
    image[head] = (0.85, 0.68, 0.55)
    image[shoulders] = (0.20, 0.25, 0.45)
    image += rng.normal(0.0, 0.02, image.shape).astype(np.float32)
    return Image.fromarray((np.clip(image, 0.0, 1.0) * 255).astype(np.uint8), "RGB")


def load_input_image(path: Path) -> Image.Image:
    if not path.is_file():
        raise I2VUsageError(
            f"i2v_input_image {path}: no such file; give a PNG/JPEG path or drop the setting"
        )
    try:
        with Image.open(path) as opened:
            rgb: Image.Image = opened.convert(
                "RGB"
            )  # Pillow's __enter__ returns Self: Any to mypy on 3.10
            return rgb
    except (UnidentifiedImageError, OSError) as exc:
        raise I2VUsageError(
            f"i2v_input_image {path}: not an image Pillow can read ({type(exc).__name__}); "
            "give a PNG or JPEG"
        ) from None
