"""Wan 2.1 and Wan 2.2 image-to-video (``WanImageToVideoPipeline``), one adapter class for both.

- ``wan2.1-i2v`` (Wan-AI/Wan2.1-I2V-14B-480P-Diffusers): one transformer whose cross attention also
  reads CLIP ViT-H/14 image tokens (``image_dim`` 1280, ``added_kv_proj_dim`` 5120): 16.4 B
  parameters, not the 14 B of the name (that is the text-to-video backbone's size).
- ``wan2.2-i2v`` (Wan-AI/Wan2.2-I2V-A14B-Diffusers): two 14.3 B experts of the same shape without
  the image branch; ``transformer`` denoises while ``t >= boundary_ratio * 1000`` (high noise) and
  ``transformer_2`` below it. The image enters only through the 36 input channels (16 noise + 4
  mask + 16 VAE latents of the first frame), which 2.1 has as well.

Classifier-free guidance runs the transformer twice per step (cond, then uncond); steps are
timed from ``callback_on_step_end``, so one step is one step whatever the number of calls.

The full-size configs are package data under ``configs/<name>/`` (see SOURCES.md there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.pipelines.base import (
    CONFIG_ROOT,
    PipelineAdapter,
    PipelineCallKwargs,
    building,
    read_config,
)
from pytest_i2v.pipelines.tokenizers import t5_tokenizer

# diffusers and transformers are imported inside the builders: importing the adapter stays cheap.

# The UMT5 sequence length the pipeline pads every prompt to (its ``max_sequence_length`` default);
# the 2.1 attention processor also hard-codes 512 text tokens to split image from text context.
TEXT_SEQUENCE_LENGTH = 512

# Tiny components, shapes chosen so the real code paths run
# (added image K/V projections of the transformer's inner width, 36 input channels, CLIP's
# penultimate hidden state as image tokens).
_TINY_HEADS = 2
_TINY_HEAD_DIM = 12  # divisible into the 3 rotary axes the way the real 128 is
_TINY_TEXT_DIM = 16
_TINY_IMAGE_DIM = 8
_TINY_VOCAB = 128  # above every id the offline word-level tokenizer hands out
_TINY_TEXT_ENCODER: dict[str, int | str | bool] = {
    "vocab_size": _TINY_VOCAB,
    "d_model": _TINY_TEXT_DIM,
    "d_kv": 8,
    "d_ff": 32,
    "num_layers": 1,
    "num_heads": 2,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 32,
    "feed_forward_proj": "gated-gelu",
    "is_encoder_decoder": False,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
# 32-pixel input in 8-pixel patches: 16 image tokens (the real ViT-H/14 gives 257).
_TINY_IMAGE_ENCODER: dict[str, int] = {
    "hidden_size": _TINY_IMAGE_DIM,
    "intermediate_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
    "projection_dim": _TINY_IMAGE_DIM,
}


def _tiny_transformer(image_branch: bool) -> Any:
    """``image_branch``: Wan 2.1's added image K/V projections (Wan 2.2 has none: the model's
    defaults, None)."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=_TINY_HEADS,
        attention_head_dim=_TINY_HEAD_DIM,
        in_channels=36,
        out_channels=16,
        text_dim=_TINY_TEXT_DIM,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=_TINY_IMAGE_DIM if image_branch else None,
        added_kv_proj_dim=_TINY_HEADS * _TINY_HEAD_DIM if image_branch else None,
    )


def _tiny_vae() -> Any:
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    # z_dim 16 keeps the published latents_mean/std (16 values) valid.
    return AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


class WanImageToVideoAdapter(PipelineAdapter):
    """``two_experts``: Wan 2.2's high/low-noise pair and ``boundary_ratio``; otherwise Wan 2.1's
    single transformer with its CLIP image encoder."""

    def __init__(self, name: str, two_experts: bool):
        self.name = name
        self.two_experts = two_experts

    @property
    def config_dir(self) -> Any:
        return CONFIG_ROOT / self.name

    # ------------------------------------------------------------------ building
    def boundary_ratio(self) -> float | None:
        """Where the experts hand over (from the shipped model_index.json); None for one
        transformer."""
        if not self.two_experts:
            return None
        index = json.loads((self.config_dir / "model_index.json").read_text(encoding="utf-8"))
        return float(index["boundary_ratio"])

    def _transformer_roles(self) -> tuple[str, ...]:
        return ("transformer", "transformer_2") if self.two_experts else ("transformer",)

    def _fullsize_transformers(
        self, device: str | torch.device, dtype: torch.dtype
    ) -> dict[str, torch.nn.Module]:
        from diffusers import WanTransformer3DModel

        transformers: dict[str, torch.nn.Module] = {}
        for role in self._transformer_roles():
            with building(device, dtype):
                transformers[role] = WanTransformer3DModel.from_config(
                    read_config(self.config_dir, role)
                )
        return transformers

    def build_fullsize(self, device: str | torch.device, dtype: torch.dtype, work_dir: Path) -> Any:
        from diffusers import AutoencoderKLWan, UniPCMultistepScheduler
        from transformers import UMT5Config, UMT5EncoderModel

        modules = self._fullsize_transformers(device, dtype)
        with building(device, dtype):
            modules["vae"] = AutoencoderKLWan.from_config(read_config(self.config_dir, "vae"))
        with building(device, dtype):
            config = UMT5Config(**read_config(self.config_dir, "text_encoder"))
            encoder = UMT5EncoderModel(config)  # type: ignore[no-untyped-call, unused-ignore]
            modules["text_encoder"] = encoder
        scheduler = UniPCMultistepScheduler.from_config(
            read_config(self.config_dir, "scheduler", "scheduler_config.json")
        )
        tokenizer = t5_tokenizer(work_dir / f"tokenizer-{self.name}", TEXT_SEQUENCE_LENGTH)
        image_processor = None  # Wan 2.2 has no image encoder (the pipeline's default None)
        if not self.two_experts:
            from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

            with building(device, dtype):
                modules["image_encoder"] = CLIPVisionModel(
                    CLIPVisionConfig(**read_config(self.config_dir, "image_encoder"))
                )
            processor_config = read_config(
                self.config_dir, "image_processor", "preprocessor_config.json"
            )
            processor_config.pop("image_processor_type", None)
            image_processor = CLIPImageProcessor(**processor_config)
        return self.pipeline_class()(
            **modules,
            scheduler=scheduler,
            tokenizer=tokenizer,
            image_processor=image_processor,
            boundary_ratio=self.boundary_ratio(),
        )

    def fullsize_denoisers(
        self, device: str | torch.device = "meta", dtype: torch.dtype = torch.bfloat16
    ) -> list[Any]:
        # The transformers alone: the 5.7 B UMT5 encoder and the tokenizer files are not needed for
        # a count.
        transformers = self._fullsize_transformers(device, dtype)
        return [transformers[role] for role in self._transformer_roles()]

    def build_tiny(self, work_dir: Path) -> Any:
        from diffusers import UniPCMultistepScheduler
        from transformers import UMT5Config, UMT5EncoderModel

        modules: dict[str, torch.nn.Module] = {
            role: _tiny_transformer(image_branch=not self.two_experts)
            for role in self._transformer_roles()
        }
        modules["vae"] = _tiny_vae()
        torch.manual_seed(0)
        tiny_config = UMT5Config.from_dict(_TINY_TEXT_ENCODER)
        encoder = UMT5EncoderModel(tiny_config)  # type: ignore[no-untyped-call, unused-ignore]
        modules["text_encoder"] = encoder
        torch.manual_seed(0)
        scheduler = UniPCMultistepScheduler.from_config(
            read_config(self.config_dir, "scheduler", "scheduler_config.json")
        )
        tokenizer = t5_tokenizer(work_dir / f"tiny-tokenizer-{self.name}", TEXT_SEQUENCE_LENGTH)
        image_processor = None  # Wan 2.2 has no image encoder (the pipeline's default None)
        if not self.two_experts:
            from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

            torch.manual_seed(0)
            modules["image_encoder"] = CLIPVisionModel(
                CLIPVisionConfig.from_dict(_TINY_IMAGE_ENCODER)
            )
            image_processor = CLIPImageProcessor(
                size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
            )
        return self.pipeline_class()(
            **modules,
            scheduler=scheduler,
            tokenizer=tokenizer,
            image_processor=image_processor,
            boundary_ratio=self.boundary_ratio(),
        )

    # ------------------------------------------------------------------ calling
    def call_kwargs(
        self, spec: GenerationSpec, image: Any, generator: torch.Generator
    ) -> PipelineCallKwargs:
        kwargs: PipelineCallKwargs = {
            "prompt": spec.prompt,
            "image": image,
            "height": spec.height,
            "width": spec.width,
            "num_frames": spec.frames,
            "num_inference_steps": spec.steps,
            "guidance_scale": spec.guidance,
            "generator": generator,
        }
        if self.two_experts:
            # One guidance value for both experts: the official Wan 2.2 I2V config uses (3.5, 3.5),
            # and the pipeline itself falls back to guidance_scale when guidance_scale_2 is None.
            kwargs["guidance_scale_2"] = spec.guidance
        return kwargs


ADAPTERS = {
    "wan2.1-i2v": WanImageToVideoAdapter("wan2.1-i2v", two_experts=False),
    "wan2.2-i2v": WanImageToVideoAdapter("wan2.2-i2v", two_experts=True),
}
