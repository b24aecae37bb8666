"""A tiny random I2VGen-XL, built in-process (never a saved fixture: those are not portable
across transformers versions). Geometry follows diffusers' own I2VGen-XL test, except the VAE
has 4 blocks so latents are 1/8 of the image, as with the real model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pytest_i2v.pipelines.tokenizers import load_byte_level_clip_tokenizer

# diffusers and transformers are imported inside the builders: importing the adapter stays cheap.

# The text embedding width: the UNet's cross-attention and the image encoder's projection.
TEXT_DIM = 4
# Each component is built after torch.manual_seed(0): the same tiny weights in every session, so
# CPU baselines compare like with like.


def _tiny_unet() -> Any:
    from diffusers import I2VGenXLUNet

    torch.manual_seed(0)
    return I2VGenXLUNet(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=4,
        num_attention_heads=None,
        norm_num_groups=2,
    )


def _tiny_vae() -> Any:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        sample_size=32,
        norm_num_groups=2,
    )


def _tiny_text_encoder() -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    # transformers 5 declares config fields through huggingface_hub's @strict dataclass, which mypy
    # does not read: it sees only PreTrainedConfig's arguments (4.x spelled them out, hence
    # unused-ignore).
    return CLIPTextModel(
        CLIPTextConfig(  # type: ignore[call-arg, unused-ignore]
            bos_token_id=0,
            eos_token_id=2,
            hidden_size=TEXT_DIM,
            intermediate_size=16,
            layer_norm_eps=1e-05,
            num_attention_heads=2,
            num_hidden_layers=2,
            pad_token_id=1,
            vocab_size=1000,
            hidden_act="gelu",
            projection_dim=32,
        )
    )


def _tiny_image_encoder() -> Any:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    return CLIPVisionModelWithProjection(
        CLIPVisionConfig(  # type: ignore[call-arg, unused-ignore]
            hidden_size=4,
            projection_dim=TEXT_DIM,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            intermediate_size=16,
            patch_size=1,
        )
    )


def build_tiny_pipeline(work_dir: Path) -> Any:
    from diffusers import DDIMScheduler, I2VGenXLPipeline
    from transformers import CLIPImageProcessor

    unet = _tiny_unet()
    vae = _tiny_vae()
    text_encoder = _tiny_text_encoder()
    image_encoder = _tiny_image_encoder()
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    return I2VGenXLPipeline(
        unet=unet,
        vae=vae,
        scheduler=scheduler,
        text_encoder=text_encoder,
        tokenizer=load_byte_level_clip_tokenizer(work_dir / "tokenizer-src"),
        image_encoder=image_encoder,
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
    )


def save_tiny_pipeline(work_dir: Path) -> Path:
    """Build the tiny pipeline and ``save_pretrained`` it; returns the diffusers directory."""
    target = work_dir / "tiny-i2vgen-xl"
    if not (target / "model_index.json").is_file():
        build_tiny_pipeline(work_dir).save_pretrained(str(target), safe_serialization=True)
    return target
