"""The full-size I2VGen-XL architecture with random weights, built from the real component
configs shipped in ``configs/i2vgen-xl`` (no weights). Shapes are exact, so time and memory
match the real model at any resolution without a download (UNet 1.42 B, 2.49 B parameters)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pytest_i2v.pipelines.base import CONFIG_ROOT, building, cast_floating, read_config
from pytest_i2v.pipelines.tokenizers import load_byte_level_clip_tokenizer

# diffusers and transformers are imported inside the builders: importing the adapter stays cheap.

# Package data (see base.CONFIG_ROOT), so a non-editable or zipped install finds it.
CONFIG_DIR = CONFIG_ROOT / "i2vgen-xl"


def _config(component: str, filename: str = "config.json") -> dict[str, Any]:
    # The shipped encoder configs record the checkpoint's dtype (torch_dtype: float16); read_config
    # drops it, so the requested dtype decides (an fp16 image encoder in an fp32 pipeline fails in
    # _encode_image).
    return read_config(CONFIG_DIR, component, filename)


def build_fullsize_modules(
    device: str | torch.device, dtype: torch.dtype
) -> dict[str, torch.nn.Module]:
    """UNet, VAE, text and image encoders initialised directly on ``device`` in ``dtype``
    (``device="meta"`` builds shapes only, which is how tests count parameters)."""
    from diffusers import AutoencoderKL, I2VGenXLUNet
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    with building(device, dtype):
        modules: dict[str, torch.nn.Module] = {
            "unet": I2VGenXLUNet.from_config(_config("unet")),
            "vae": AutoencoderKL.from_config(_config("vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**_config("text_encoder"))),
            "image_encoder": CLIPVisionModelWithProjection(
                CLIPVisionConfig(**_config("image_encoder"))
            ),
        }
    # A library release that still picks a dtype of its own for a submodule is overruled.
    return cast_floating(modules, dtype)


def build_fullsize_pipeline(device: str, dtype: torch.dtype, work_dir: Path) -> Any:
    from diffusers import DDIMScheduler, I2VGenXLPipeline
    from transformers import CLIPImageProcessor

    modules = build_fullsize_modules(device, dtype)
    return I2VGenXLPipeline(
        **modules,
        scheduler=DDIMScheduler.from_config(_config("scheduler", "scheduler_config.json")),
        tokenizer=load_byte_level_clip_tokenizer(
            work_dir / "tokenizer-fullsize", model_max_length=77
        ),
        feature_extractor=CLIPImageProcessor(
            **_config("feature_extractor", "preprocessor_config.json")
        ),
    )
