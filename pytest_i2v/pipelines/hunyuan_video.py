"""HunyuanVideo-I2V (``HunyuanVideoImageToVideoPipeline``): a 13 B dual-/single-stream transformer
conditioned by a Llava-Llama-3-8B text encoder (which also sees the image) and a CLIP-L text
encoder.

The published checkpoint (``hunyuanvideo-community/HunyuanVideo-I2V``) is the "token_replace"
variant: 16 input channels, the image latent replaces the first latent frame, and guidance is
embedded (``guidance_scale`` feeds the guidance embedder; no second transformer call).

The Llama tokenizer cannot be downloaded: ``hunyuan_video_tokenizer`` builds an offline one with
the real model's sequence lengths."""

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
from pytest_i2v.pipelines.hunyuan_video_tokenizer import (
    LLAMA_MAX_LENGTH,
    TINY_LLAMA_VOCAB,
    TINY_TOKEN_IDS,
    LlamaTokenIds,
    build_llama_tokenizer,
    fullsize_token_ids,
)
from pytest_i2v.pipelines.tokenizers import load_byte_level_clip_tokenizer

# diffusers and transformers are imported inside the builders: importing the adapter stays cheap.

NAME = "hunyuanvideo-i2v"
CONFIG_DIR = CONFIG_ROOT / NAME
CLIP_MAX_LENGTH = 77


def _clip_tokenizer(directory: Path) -> Any:
    return load_byte_level_clip_tokenizer(directory, CLIP_MAX_LENGTH)


def _image_processor(size: int | None) -> Any:
    """``size``: the tiny vision tower's input; None: the published processor (its shipped
    config)."""
    from transformers import CLIPImageProcessor

    if size is None:
        config = read_config(CONFIG_DIR, "image_processor", "preprocessor_config.json")
        return CLIPImageProcessor(
            **{k: v for k, v in config.items() if k != "image_processor_type"}
        )
    # OpenAI CLIP's normalisation (what the real processor uses), at the tiny vision tower's size.
    return CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        resample=3,
    )


def build_fullsize_transformer(device: str | torch.device, dtype: torch.dtype) -> Any:
    from diffusers import HunyuanVideoTransformer3DModel

    with building(device, dtype):
        return HunyuanVideoTransformer3DModel.from_config(read_config(CONFIG_DIR, "transformer"))


def _tiny_transformer() -> Any:
    from diffusers import HunyuanVideoTransformer3DModel

    torch.manual_seed(0)
    return HunyuanVideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=10,
        num_layers=1,
        num_single_layers=1,
        num_refiner_layers=1,
        patch_size=1,
        patch_size_t=1,
        guidance_embeds=True,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(2, 4, 4),
        image_condition_type="token_replace",
    )


def _tiny_vae() -> Any:
    from diffusers import AutoencoderKLHunyuanVideo

    torch.manual_seed(0)
    return AutoencoderKLHunyuanVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        act_fn="silu",
        norm_num_groups=4,
        scaling_factor=0.476986,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
        mid_block_add_attention=True,
    )


# A tiny config as the transformers config classes' from_dict takes it (Llava nests its two).
_TinyConfig = dict[str, int | str]


def _tiny_text_encoder_configs(
    ids: LlamaTokenIds,
) -> tuple[dict[str, int | _TinyConfig], _TinyConfig]:
    """The tiny Llava (a Llama text model with a CLIP vision tower) and CLIP text configs."""
    text_config: _TinyConfig = {
        "model_type": "llama",
        "bos_token_id": ids.begin_of_text,
        "eos_token_id": ids.end_of_text,
        "hidden_size": 16,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": ids.pad,
        "vocab_size": TINY_LLAMA_VOCAB,
    }
    vision_config: _TinyConfig = {
        "model_type": "clip_vision_model",
        "hidden_size": 8,
        "intermediate_size": 37,
        "projection_dim": 32,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "image_size": 48,
        "patch_size": 2,
    }
    llava_config: dict[str, int | _TinyConfig] = {
        "vision_config": vision_config,
        "text_config": text_config,
        "pad_token_id": ids.pad,
        "image_token_index": ids.image,
    }
    clip_config: _TinyConfig = {
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_size": 8,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": 1,
        "vocab_size": 1000,
        "projection_dim": 32,
        "max_position_embeddings": CLIP_MAX_LENGTH,
    }
    return llava_config, clip_config


class HunyuanVideoI2VAdapter(PipelineAdapter):
    name = NAME

    def tune_tiny(self, pipe: Any) -> None:
        """Decode the tiny video in one go: framewise decoding hands the VAE sliced (non-contiguous)
        chunks, which fall onto torch's slow CPU conv3d path: 1.5 s instead of 0.3 s for the cpu
        profile's 33 frames, most of a generation. The real model keeps the default."""
        pipe.vae.use_framewise_decoding = False

    def build_tiny(self, work_dir: Path) -> Any:
        """diffusers' fast-test sizes (tests/pipelines/hunyuan_video/test_hunyuan_image2video.py),
        with the real token_replace conditioning and a 48 px / patch-2 vision tower: 24 x 24 = 576
        image features, the count the default template reserves, so the default template runs
        unchanged."""
        from diffusers import FlowMatchEulerDiscreteScheduler
        from transformers import (
            CLIPTextConfig,
            CLIPTextModel,
            LlavaConfig,
            LlavaForConditionalGeneration,
        )

        transformer = _tiny_transformer()
        vae = _tiny_vae()
        torch.manual_seed(0)
        scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
        ids = TINY_TOKEN_IDS
        llava_config, clip_config = _tiny_text_encoder_configs(ids)
        torch.manual_seed(0)
        text_encoder = LlavaForConditionalGeneration(LlavaConfig.from_dict(llava_config))
        torch.manual_seed(0)
        text_encoder_2 = CLIPTextModel(CLIPTextConfig.from_dict(clip_config))
        return self._assemble(
            text_encoder=text_encoder,
            tokenizer=build_llama_tokenizer(
                work_dir / "tiny-hunyuan-llama-tokenizer", ids, TINY_LLAMA_VOCAB, LLAMA_MAX_LENGTH
            ),
            transformer=transformer,
            vae=vae,
            scheduler=scheduler,
            text_encoder_2=text_encoder_2,
            tokenizer_2=_clip_tokenizer(work_dir / "tiny-hunyuan-clip-tokenizer"),
            image_processor=_image_processor(48),
        )

    def build_fullsize(self, device: str | torch.device, dtype: torch.dtype, work_dir: Path) -> Any:
        from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler
        from transformers import (
            CLIPTextConfig,
            CLIPTextModel,
            LlavaConfig,
            LlavaForConditionalGeneration,
        )

        llava_config = read_config(CONFIG_DIR, "text_encoder")
        clip_config = read_config(CONFIG_DIR, "text_encoder_2")
        with building(device, dtype):
            text_encoder = LlavaForConditionalGeneration(LlavaConfig(**llava_config))
            text_encoder_2 = CLIPTextModel(CLIPTextConfig(**clip_config))
            vae = AutoencoderKLHunyuanVideo.from_config(read_config(CONFIG_DIR, "vae"))
        modules = cast_floating(
            {"text_encoder": text_encoder, "text_encoder_2": text_encoder_2, "vae": vae}, dtype
        )
        vocab_size = int(llava_config["text_config"]["vocab_size"])
        return self._assemble(
            text_encoder=modules["text_encoder"],
            text_encoder_2=modules["text_encoder_2"],
            vae=modules["vae"],
            transformer=build_fullsize_transformer(device, dtype),
            tokenizer=build_llama_tokenizer(
                work_dir / "hunyuan-llama-tokenizer",
                fullsize_token_ids(llava_config),
                vocab_size,
                LLAMA_MAX_LENGTH,
            ),
            tokenizer_2=_clip_tokenizer(work_dir / "hunyuan-clip-tokenizer"),
            scheduler=FlowMatchEulerDiscreteScheduler.from_config(
                read_config(CONFIG_DIR, "scheduler", "scheduler_config.json")
            ),
            image_processor=_image_processor(None),
        )

    def fullsize_denoisers(
        self, device: str | torch.device = "meta", dtype: torch.dtype = torch.bfloat16
    ) -> list[Any]:
        # The transformer alone: no tokenizer directory, no 8 B text encoder.
        return [build_fullsize_transformer(device, dtype)]

    def _assemble(self, **components: Any) -> Any:
        return self.pipeline_class()(**components)

    def call_kwargs(
        self, spec: GenerationSpec, image: Any, generator: torch.Generator
    ) -> PipelineCallKwargs:
        # guidance_scale is the embedded guidance of the checkpoint (guidance_embeds=True): one
        # transformer call per step. true_cfg_scale stays at the pipeline default (1.0, no negative
        # prompt), as in the diffusers example for this checkpoint.
        return {
            "image": image,
            "prompt": spec.prompt,
            "height": spec.height,
            "width": spec.width,
            "num_frames": spec.frames,
            "num_inference_steps": spec.steps,
            "guidance_scale": spec.guidance,
            "generator": generator,
        }


ADAPTERS = {NAME: HunyuanVideoI2VAdapter()}
