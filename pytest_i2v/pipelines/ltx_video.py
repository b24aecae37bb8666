"""LTX-Video 0.9.1 (``LTXImageToVideoPipeline``): a 28-block video transformer over a VAE that packs
32x32x8 pixels into one latent token, a T5-XXL text encoder (128 tokens) and flow matching.

Classifier-free guidance batches the negative and positive prompt into one transformer call per
step; steps end at ``callback_on_step_end`` (the base class's default timing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

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

CONFIG_DIR = CONFIG_ROOT / "ltx-video"
# The pipeline's max_sequence_length default and the converted checkpoint's tokenizer length.
MAX_SEQUENCE_LENGTH = 128


def _tiny_vae() -> Any:
    from diffusers import AutoencoderKLLTXVideo

    torch.manual_seed(0)
    return AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4,
        upsample_factor=(1,) * 4,
        timestep_conditioning=False,
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )


class LTXVideoAdapter(PipelineAdapter):
    name = "ltx-video"

    def build_tiny(self, work_dir: Path) -> Any:
        """The real compression (patch 4 and three spatio-temporal scalings: 32x spatial, 8x
        temporal), so the tiny pipeline obeys the real size and frame rules, with 8 channels."""
        from diffusers import (
            FlowMatchEulerDiscreteScheduler,
            LTXImageToVideoPipeline,
            LTXVideoTransformer3DModel,
        )
        from transformers import T5Config, T5EncoderModel

        text_dim = 32
        torch.manual_seed(0)
        transformer = LTXVideoTransformer3DModel(
            in_channels=8,
            out_channels=8,
            patch_size=1,
            patch_size_t=1,
            num_attention_heads=4,
            attention_head_dim=8,
            cross_attention_dim=32,
            num_layers=1,
            caption_channels=text_dim,
        )
        vae = _tiny_vae()
        torch.manual_seed(0)
        # transformers 5's typed config signatures do not list these keyword arguments (older ones
        # do).
        text_encoder = T5EncoderModel(
            T5Config(  # type: ignore[call-arg, unused-ignore]
                vocab_size=1000,
                d_model=text_dim,
                d_kv=8,
                d_ff=37,
                num_layers=2,
                num_heads=4,
                relative_attention_num_buckets=8,
                feed_forward_proj="gated-gelu",
            )
        )
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(
            read_config(CONFIG_DIR, "scheduler", "scheduler_config.json")
        )
        tokenizer = t5_tokenizer(
            work_dir / "tokenizer-tiny-ltx-video", model_max_length=MAX_SEQUENCE_LENGTH
        )
        return LTXImageToVideoPipeline(
            scheduler=scheduler,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            transformer=transformer,
        )

    def build_fullsize_modules(
        self, device: str | torch.device, dtype: torch.dtype, with_text_encoder: bool = True
    ) -> dict[str, torch.nn.Module]:
        from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
        from transformers import T5Config, T5EncoderModel

        with building(device, dtype):
            modules: dict[str, torch.nn.Module] = {
                "transformer": LTXVideoTransformer3DModel.from_config(
                    read_config(CONFIG_DIR, "transformer")
                ),
                "vae": AutoencoderKLLTXVideo.from_config(read_config(CONFIG_DIR, "vae")),
            }
            if with_text_encoder:
                modules["text_encoder"] = T5EncoderModel(
                    T5Config(**read_config(CONFIG_DIR, "text_encoder"))
                )
        return cast_floating(modules, dtype)

    def build_fullsize(self, device: str | torch.device, dtype: torch.dtype, work_dir: Path) -> Any:
        from diffusers import FlowMatchEulerDiscreteScheduler, LTXImageToVideoPipeline

        return LTXImageToVideoPipeline(
            **self.build_fullsize_modules(device, dtype),
            scheduler=FlowMatchEulerDiscreteScheduler.from_config(
                read_config(CONFIG_DIR, "scheduler", "scheduler_config.json")
            ),
            tokenizer=t5_tokenizer(
                work_dir / "tokenizer-fullsize-ltx-video", model_max_length=MAX_SEQUENCE_LENGTH
            ),
        )

    def fullsize_denoisers(
        self, device: str | torch.device = "meta", dtype: torch.dtype = torch.bfloat16
    ) -> list[Any]:
        # The transformer alone (no tokenizer directory to write, no 4.7 B-parameter T5 to build).
        return [self.build_fullsize_modules(device, dtype, with_text_encoder=False)["transformer"]]

    def call_kwargs(
        self, spec: GenerationSpec, image: Any, generator: torch.Generator
    ) -> PipelineCallKwargs:
        return {
            "image": image,
            "prompt": spec.prompt,
            "height": spec.height,
            "width": spec.width,
            "num_frames": spec.frames,
            "num_inference_steps": spec.steps,
            "guidance_scale": spec.guidance,
            "frame_rate": spec.fps,
            "max_sequence_length": MAX_SEQUENCE_LENGTH,
            "generator": generator,
        }


ADAPTERS = {"ltx-video": LTXVideoAdapter()}
