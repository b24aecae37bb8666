"""I2VGen-XL (``I2VGenXLPipeline``): the study's pipeline. Deprecated upstream and without step
callbacks, so its steps are timed from UNet forward hooks (classifier-free guidance is batched into
one UNet call per step). Its model builders live beside it: ``i2vgen_xl_tiny``,
``i2vgen_xl_fullsize`` (from ``configs/i2vgen-xl``) and ``i2vgen_xl_compat``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.pipelines import i2vgen_xl_fullsize
from pytest_i2v.pipelines.base import PipelineAdapter, PipelineCallKwargs
from pytest_i2v.pipelines.i2vgen_xl_compat import alias_clip_text_model
from pytest_i2v.pipelines.i2vgen_xl_tiny import build_tiny_pipeline, save_tiny_pipeline

# diffusers is imported inside the toggle methods: importing the adapter stays cheap.


class I2VGenXLAdapter(PipelineAdapter):
    name = "i2vgen-xl"

    def build_tiny(self, work_dir: Path) -> Any:
        return build_tiny_pipeline(work_dir)

    def save_tiny(self, work_dir: Path) -> Path:
        return save_tiny_pipeline(work_dir)

    def build_fullsize(self, device: str | torch.device, dtype: torch.dtype, work_dir: Path) -> Any:
        # Looked up on the module at call time, so tests can replace the 2.5 B-parameter build.
        return i2vgen_xl_fullsize.build_fullsize_pipeline(str(device), dtype, work_dir)

    def fullsize_denoisers(
        self, device: str | torch.device = "meta", dtype: torch.dtype = torch.float16
    ) -> list[Any]:
        return [i2vgen_xl_fullsize.build_fullsize_modules(device, dtype)["unet"]]

    def after_load(self, pipe: Any) -> None:
        alias_clip_text_model(pipe)

    def call_kwargs(
        self, spec: GenerationSpec, image: Any, generator: torch.Generator
    ) -> PipelineCallKwargs:
        return {
            "prompt": spec.prompt,
            "image": image,
            "height": spec.height,
            "width": spec.width,
            "num_frames": spec.frames,
            "num_inference_steps": spec.steps,
            "guidance_scale": spec.guidance,
            "target_fps": spec.fps,
            "generator": generator,
        }

    def apply_toggles(self, pipe: Any, toggles: tuple[str, ...], attention: str | None) -> None:
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        super().apply_toggles(pipe, toggles, attention=None)
        for toggle in toggles:
            if toggle == "attention_slicing":
                # I2VGenXLUNet has no set_attention_slice of its own; its Attention blocks do.
                # "auto" as diffusers means it: half the heads per slice.
                for module in pipe.unet.modules():
                    if hasattr(module, "set_attention_slice") and hasattr(
                        module, "sliceable_head_dim"
                    ):
                        module.set_attention_slice(max(1, module.sliceable_head_dim // 2))
            elif toggle == "sdpa":
                pipe.unet.set_attn_processor(AttnProcessor2_0())
            elif toggle == "eager_attention":
                pipe.unet.set_attn_processor(AttnProcessor())

    def reset_toggles(self, pipe: Any) -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        pipe.vae.disable_slicing()
        pipe.vae.disable_tiling()
        pipe.unet.disable_forward_chunking()
        pipe.unet.set_attn_processor(AttnProcessor2_0())


ADAPTERS = {"i2vgen-xl": I2VGenXLAdapter()}
