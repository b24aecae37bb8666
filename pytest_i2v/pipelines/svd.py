"""Stable Video Diffusion img2vid-xt (``StableVideoDiffusionPipeline``): image-only conditioning (no
prompt), a spatio-temporal UNet, a VAE with a temporal decoder and a CLIP ViT-H/14 image encoder.

Classifier-free guidance is batched into one UNet call per step, with a guidance scale that ramps
from ``min_guidance_scale`` (first frame) to ``max_guidance_scale`` (last frame); the spec's
``guidance`` is the maximum, as in the pipeline's own signature."""

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

# diffusers and transformers are imported inside the builders: importing the adapter stays cheap.

CONFIG_DIR = CONFIG_ROOT / "svd"
# The pipeline's docstring example for img2vid-xt decodes 8 frames at a time; its default (None)
# decodes all frames at once, which at 1024x576x25 is the peak of the whole generation. The
# example is how the model is run in practice, so the benchmark measures that.
DECODE_CHUNK_SIZE = 8


def _tiny_vae() -> Any:
    from diffusers import AutoencoderKLTemporalDecoder

    torch.manual_seed(0)
    return AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        sample_size=64,
    )


class StableVideoDiffusionAdapter(PipelineAdapter):
    name = "svd"

    def build_tiny(self, work_dir: Path) -> Any:
        """The real block layout (four UNet levels, four VAE levels: latents 1/8 of the image) with
        32 channels everywhere; the CLIP encoder keeps the 224-pixel input the pipeline resizes
        to."""
        from diffusers import (
            EulerDiscreteScheduler,
            StableVideoDiffusionPipeline,
            UNetSpatioTemporalConditionModel,
        )
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

        embed_dim = 32
        time_embed_dim = 8
        torch.manual_seed(0)
        unet = UNetSpatioTemporalConditionModel(
            sample_size=8,
            in_channels=8,
            out_channels=4,
            block_out_channels=(32, 32, 32, 32),
            layers_per_block=1,
            cross_attention_dim=embed_dim,
            num_attention_heads=(2, 2, 2, 2),
            num_frames=2,
            addition_time_embed_dim=time_embed_dim,
            # fps, motion bucket and noise augmentation: three added time ids
            projection_class_embeddings_input_dim=3 * time_embed_dim,
        )
        vae = _tiny_vae()
        torch.manual_seed(0)
        # transformers 5's typed config signatures do not list these keyword arguments (older ones
        # do).
        image_encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(  # type: ignore[call-arg, unused-ignore]
                hidden_size=32,
                projection_dim=embed_dim,
                num_hidden_layers=1,
                num_attention_heads=4,
                intermediate_size=37,
                image_size=224,
                patch_size=32,
            )
        )
        scheduler = EulerDiscreteScheduler.from_config(
            read_config(CONFIG_DIR, "scheduler", "scheduler_config.json")
        )
        feature_extractor = CLIPImageProcessor(
            **read_config(CONFIG_DIR, "feature_extractor", "preprocessor_config.json")
        )
        return StableVideoDiffusionPipeline(
            vae=vae,
            image_encoder=image_encoder,
            unet=unet,
            scheduler=scheduler,
            feature_extractor=feature_extractor,
        )

    def build_fullsize_modules(
        self, device: str | torch.device, dtype: torch.dtype
    ) -> dict[str, torch.nn.Module]:
        from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        with building(device, dtype):
            modules: dict[str, torch.nn.Module] = {
                "unet": UNetSpatioTemporalConditionModel.from_config(
                    read_config(CONFIG_DIR, "unet")
                ),
                "vae": AutoencoderKLTemporalDecoder.from_config(read_config(CONFIG_DIR, "vae")),
                "image_encoder": CLIPVisionModelWithProjection(
                    CLIPVisionConfig(**read_config(CONFIG_DIR, "image_encoder"))
                ),
            }
        # diffusers' AlphaBlender makes its mix_factor with the legacy torch.Tensor([...])
        # constructor, which ignores the device context: 38 scalars land on the CPU whatever the
        # device says.
        target = torch.device(device)
        for name, module in modules.items():
            if any(t.device != target for t in (*module.parameters(), *module.buffers())):
                modules[name] = module.to(target)
        return cast_floating(modules, dtype)

    def build_fullsize(self, device: str | torch.device, dtype: torch.dtype, work_dir: Path) -> Any:
        from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline
        from transformers import CLIPImageProcessor

        return StableVideoDiffusionPipeline(
            **self.build_fullsize_modules(device, dtype),
            scheduler=EulerDiscreteScheduler.from_config(
                read_config(CONFIG_DIR, "scheduler", "scheduler_config.json")
            ),
            feature_extractor=CLIPImageProcessor(
                **read_config(CONFIG_DIR, "feature_extractor", "preprocessor_config.json")
            ),
        )

    def fullsize_denoisers(
        self, device: str | torch.device = "meta", dtype: torch.dtype = torch.float16
    ) -> list[Any]:
        # The hub checkpoint's UNet is fp16 (the "fp16" variant the model card loads).
        return [self.build_fullsize_modules(device, dtype)["unet"]]

    def call_kwargs(
        self, spec: GenerationSpec, image: Any, generator: torch.Generator
    ) -> PipelineCallKwargs:
        # No prompt: SVD is conditioned on the image alone. min_guidance_scale stays at its default
        # (1.0).
        return {
            "image": image,
            "height": spec.height,
            "width": spec.width,
            "num_frames": spec.frames,
            "num_inference_steps": spec.steps,
            "max_guidance_scale": spec.guidance,
            "fps": spec.fps,
            "decode_chunk_size": DECODE_CHUNK_SIZE,
            "generator": generator,
        }

    def reset_toggles(self, pipe: Any) -> None:
        # The spatio-temporal UNet has enable_forward_chunking but no disable_forward_chunking:
        # a chunk size of None is what its transformer blocks start with.
        super().reset_toggles(pipe)
        for module in pipe.unet.modules():
            if hasattr(module, "set_chunk_feed_forward"):
                module.set_chunk_feed_forward(chunk_size=None)


ADAPTERS = {"svd": StableVideoDiffusionAdapter()}
