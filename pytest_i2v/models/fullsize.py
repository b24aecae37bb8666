"""The full-size I2VGen-XL architecture with random weights, built from the real component
configs shipped in ``configs/i2vgen-xl`` (no weights). Shapes are exact, so time and memory
match the real model at any resolution without a download (UNet 1.42 B, 2.49 B parameters)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:  # Python 3.10
        from importlib.abc import Traversable

# Package data, read through importlib.resources, so a non-editable install (or a zipped one) finds it.
CONFIG_DIR: Traversable = files("pytest_i2v") / "models" / "configs" / "i2vgen-xl"


# The shipped encoder configs record the checkpoint's dtype (``torch_dtype: float16``), and
# transformers builds (parts of) a model in that dtype whatever the default dtype says: an
# fp16 image encoder in an fp32 pipeline fails in ``_encode_image`` with ``Half != float``.
# The requested dtype decides, so these keys are dropped before a config is used.
_DTYPE_KEYS = ("torch_dtype", "dtype")


def _config(component: str, filename: str = "config.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CONFIG_DIR / component / filename).read_text(encoding="utf-8"))
    for key in _DTYPE_KEYS:
        data.pop(key, None)
    return data


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_fullsize_modules(device: str | torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """UNet, VAE, text and image encoders initialised directly on ``device`` in ``dtype``
    (``device="meta"`` builds shapes only, which is how tests count parameters)."""
    from diffusers import AutoencoderKL, I2VGenXLUNet
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    with torch.device(device), _default_dtype(dtype):
        modules: dict[str, torch.nn.Module] = {
            "unet": I2VGenXLUNet.from_config(_config("unet")),
            "vae": AutoencoderKL.from_config(_config("vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**_config("text_encoder"))),
            "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(**_config("image_encoder"))),
        }
    # Belt and braces: a library release that still picks a dtype of its own for a submodule is
    # overruled. Only then: diffusers warns on every ``.to(dtype)`` of a model (integer buffers,
    # such as CLIP's position ids, are not weights and keep their dtype either way).
    for name, module in modules.items():
        if any(t.is_floating_point() and t.dtype != dtype for t in _tensors(module)):
            modules[name] = module.to(dtype)
    return modules


def _tensors(module: torch.nn.Module) -> Iterator[torch.Tensor]:
    yield from module.parameters()
    yield from module.buffers()


def build_fullsize_pipeline(device: str, dtype: torch.dtype, work_dir: Path) -> Any:
    from diffusers import DDIMScheduler, I2VGenXLPipeline
    from transformers import CLIPImageProcessor

    from pytest_i2v.models.tokenizer import load_byte_level_clip_tokenizer

    modules = build_fullsize_modules(device, dtype)
    return I2VGenXLPipeline(
        **modules,
        scheduler=DDIMScheduler.from_config(_config("scheduler", "scheduler_config.json")),
        tokenizer=load_byte_level_clip_tokenizer(work_dir / "tokenizer-fullsize", model_max_length=77),
        feature_extractor=CLIPImageProcessor(**_config("feature_extractor", "preprocessor_config.json")),
    )
