"""CogVideoX-5B-I2V (``CogVideoXImageToVideoPipeline``): an expert transformer over T5-XXL text
tokens and the 3D causal VAE's latents (the conditioning image's latent is concatenated on the
channels, hence ``in_channels`` 32). Its 5.57 B parameters are 11 % above the model card's rounded
"5B"; the checkpoint (11.25 GB of bf16 = 5.625 B values, the parameters plus a 54.6 M learned
positional embedding diffusers keeps as a buffer) is the precise published size (see SOURCES.md).

Two things set it apart from the other video pipelines here:

* The 1.0 I2V transformer adds *learned* positional embeddings sized for 720x480
  (``use_learned_positional_embeddings``), and diffusers raises a bare ``ValueError`` from inside
  the first denoising step at any other size. ``generate`` checks the loaded transformer first and
  turns that into an ``I2VUsageError`` naming the size and the rule (the registry's ``Constraints``
  can only say "multiple of 16"). The tiny pipeline uses rotary embeddings alone, as the 1.0 T2V 5B
  does, so it runs at any size the constraints allow.
* The VAE decodes every frame of the video at the end, its memory peak; ``vae_tiling`` bounds it by
  tiles of the config's ``sample_height/2 x sample_width/2``. ``vae_slicing`` slices the batch only,
  so with one video per prompt it changes nothing (frames are already decoded two latent frames at
  a time): it is kept because the model card enables it and it must not break.

The checkpoint ships ``CogVideoXDDIMScheduler`` (model_index.json); THUDM's demo swaps in
``CogVideoXDPMScheduler`` with ``use_dynamic_cfg=True``. The benchmark keeps the shipped scheduler
and the pipeline's default ``use_dynamic_cfg=False``: both schedulers have order 1 and make one
transformer call (CFG batched) per step, so per-step times are the same either way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.pipelines.base import (
    CONFIG_ROOT,
    PipelineAdapter,
    PipelineCallKwargs,
    building,
    cast_floating,
    read_config,
)
from pytest_i2v.pipelines.tokenizers import t5_tokenizer

# diffusers and transformers are imported inside the builders: importing the adapter stays cheap.

NAME = "cogvideox-i2v"
# The transformer's text length and the pipeline's ``max_sequence_length`` default.
MAX_TEXT_TOKENS = 226


def fixed_size_violation(
    transformer_config: Any, vae_scale_factor: int, width: int, height: int
) -> str | None:
    """Why a transformer with learned positional embeddings cannot run ``width x height`` (or None):
    those embeddings exist for ``sample_width x sample_height`` latents only."""
    if not getattr(transformer_config, "use_learned_positional_embeddings", False):
        return None
    want_width = transformer_config.sample_width * vae_scale_factor
    want_height = transformer_config.sample_height * vae_scale_factor
    if (width, height) == (want_width, want_height):
        return None
    return (
        f"width={width}, height={height}: {NAME}'s transformer has learned positional "
        f"embeddings for {want_width}x{want_height} only (CogVideoX-5B-I2V 1.0 generates at "
        f"exactly that size); use width={want_width}, height={want_height}"
    )


def _tiny_transformer() -> Any:
    from diffusers import CogVideoXTransformer3DModel

    torch.manual_seed(0)
    return CogVideoXTransformer3DModel(
        # RoPE needs attention_head_dim divisible by 16 (as in diffusers' own fast test)
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=8,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=16,
        num_layers=1,
        sample_width=8,
        sample_height=8,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=MAX_TEXT_TOKENS,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=False,
    )


def _tiny_vae() -> Any:
    from diffusers import AutoencoderKLCogVideoX

    torch.manual_seed(0)
    # Four blocks: the real 8x spatial and 4x temporal compression. Sample 96x80 (h x w): tiles
    # of 48x40 pixels, so vae_tiling really tiles at the tiny sizes, with overlaps that fall on
    # whole latents as the real 480x720's 240x360 tiles do (other tile sizes give mismatched
    # latents).
    return AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(4, 4, 4, 4),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        sample_height=96,
        sample_width=80,
        scaling_factor=0.7,
    )


class CogVideoXI2VAdapter(PipelineAdapter):
    name = NAME

    # ------------------------------------------------------------------ building
    def build_tiny(self, work_dir: Path) -> Any:
        from diffusers import CogVideoXDDIMScheduler, CogVideoXImageToVideoPipeline
        from transformers import T5Config, T5EncoderModel

        transformer = _tiny_transformer()
        vae = _tiny_vae()
        torch.manual_seed(0)
        # T5 v1.1's gated-GELU layout at width 16 (= the transformer's text_embed_dim); the
        # vocabulary only has to hold the offline tokenizer's ids.
        tiny_t5: dict[str, int | str] = {
            "vocab_size": 128,
            "d_model": 16,
            "d_kv": 8,
            "d_ff": 32,
            "num_layers": 1,
            "num_heads": 2,
            "relative_attention_num_buckets": 8,
            "feed_forward_proj": "gated-gelu",
            "pad_token_id": 0,
            "eos_token_id": 1,
        }
        text_encoder = T5EncoderModel(T5Config.from_dict(tiny_t5))
        tokenizer = t5_tokenizer(work_dir / "tiny-cogvideox-i2v-tokenizer", MAX_TEXT_TOKENS)
        scheduler = CogVideoXDDIMScheduler.from_config(
            read_config(CONFIG_ROOT / NAME, "scheduler", "scheduler_config.json")
        )
        return CogVideoXImageToVideoPipeline(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=scheduler,
        )

    def build_fullsize(self, device: str | torch.device, dtype: torch.dtype, work_dir: Path) -> Any:
        from diffusers import (
            AutoencoderKLCogVideoX,
            CogVideoXDDIMScheduler,
            CogVideoXImageToVideoPipeline,
            CogVideoXTransformer3DModel,
        )
        from transformers import T5Config, T5EncoderModel

        configs = CONFIG_ROOT / NAME
        with building(device, dtype):
            modules: dict[str, torch.nn.Module] = {
                "transformer": CogVideoXTransformer3DModel.from_config(
                    read_config(configs, "transformer")
                ),
                "vae": AutoencoderKLCogVideoX.from_config(read_config(configs, "vae")),
                "text_encoder": T5EncoderModel(T5Config(**read_config(configs, "text_encoder"))),
            }
        cast_floating(modules, dtype)
        scheduler = CogVideoXDDIMScheduler.from_config(
            read_config(configs, "scheduler", "scheduler_config.json")
        )
        # T5's real vocabulary cannot be downloaded; any ids below vocab_size do, at the real
        # length.
        tokenizer = t5_tokenizer(work_dir / "cogvideox-i2v-tokenizer", MAX_TEXT_TOKENS)
        return CogVideoXImageToVideoPipeline(tokenizer=tokenizer, scheduler=scheduler, **modules)

    def fullsize_denoisers(
        self, device: str | torch.device = "meta", dtype: torch.dtype = torch.bfloat16
    ) -> list[Any]:
        # The transformer alone: no 4.8 B-parameter T5 and no tokenizer directory for a parameter
        # count.
        from diffusers import CogVideoXTransformer3DModel

        with building(device, dtype):
            return [
                CogVideoXTransformer3DModel.from_config(
                    read_config(CONFIG_ROOT / NAME, "transformer")
                )
            ]

    # ------------------------------------------------------------------ calling
    def call_kwargs(
        self, spec: GenerationSpec, image: Any, generator: torch.Generator
    ) -> PipelineCallKwargs:
        # No fps argument (the model is trained on 8 fps video), no negative prompt and the
        # pipeline's default use_dynamic_cfg=False and max_sequence_length=226.
        return {
            "prompt": spec.prompt,
            "image": image,
            "height": spec.height,
            "width": spec.width,
            "num_frames": spec.frames,
            "num_inference_steps": spec.steps,
            "guidance_scale": spec.guidance,
            "generator": generator,
        }

    def generate(
        self,
        pipe: Any,
        spec: GenerationSpec,
        image: Any,
        step_end: Any = None,
        latents_seen: Callable[[torch.Tensor], None] | None = None,
    ) -> Any:
        broken = fixed_size_violation(
            pipe.transformer.config, pipe.vae_scale_factor_spatial, spec.width, spec.height
        )
        if broken is not None:
            raise I2VUsageError(broken)
        return super().generate(pipe, spec, image, step_end, latents_seen)


ADAPTERS = {NAME: CogVideoXI2VAdapter()}
