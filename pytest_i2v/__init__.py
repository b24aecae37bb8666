"""pytest-i2v: a pytest plugin that measures image-to-video diffusion (I2VGen-XL) generations."""

from __future__ import annotations

__version__ = "0.1.0"
