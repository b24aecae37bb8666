"""HunyuanVideo-I2V (``HunyuanVideoImageToVideoPipeline``): a 13 B dual-/single-stream transformer
conditioned by a Llava-Llama-3-8B text encoder (which also sees the image) and a CLIP-L text
encoder.

The published checkpoint (``hunyuanvideo-community/HunyuanVideo-I2V``) is the "token_replace"
variant: 16 input channels, the image latent replaces the first latent frame, and guidance is
embedded (``guidance_scale`` feeds the guidance embedder; no second transformer call).

The Llama tokenizer cannot be downloaded, so an offline word-level one is built that reproduces
what the pipeline's default prompt template relies on: ``<|begin_of_text|>`` first, the header and
``<|eot_id|>`` specials, ``"\\n\\n"`` as one token (so ``<image>`` sits at index 5, the template's
``image_emb_start``), ``<image>`` at the text encoder's ``image_token_index`` and padding with its
``pad_token_id``. Sequence lengths then match the real model's: 256 + crop_start padded tokens,
576 image-feature positions, 252 + 144 text tokens into the transformer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.pipelines.base import (
    CONFIG_ROOT,
    PipelineAdapter,
    building,
    cast_floating,
    read_config,
)
from pytest_i2v.pipelines.tokenizers import PROMPT_WORDS, load_byte_level_clip_tokenizer

NAME = "hunyuanvideo-i2v"
CONFIG_DIR = CONFIG_ROOT / NAME
# The pipeline pads the Llama prompt to max_sequence_length (256, its default) + the template's
# crop_start.
LLAMA_MAX_LENGTH = 256 + 103
CLIP_MAX_LENGTH = 77


@dataclass(frozen=True)
class LlamaTokenIds:
    """Where the template's special tokens sit in the Llama vocabulary."""

    begin_of_text: int
    end_of_text: int
    unknown: int
    start_header: int
    end_header: int
    eot: int
    double_newline: int
    newline: int
    image: int
    pad: int

    def specials(self) -> dict[str, int]:
        return {
            "<|begin_of_text|>": self.begin_of_text,
            "<|end_of_text|>": self.end_of_text,
            "<unk>": self.unknown,
            "<|start_header_id|>": self.start_header,
            "<|end_header_id|>": self.end_header,
            "<|eot_id|>": self.eot,
            "\n\n": self.double_newline,
            "\n": self.newline,
            "<image>": self.image,
            "<pad>": self.pad,
        }


def fullsize_token_ids(text_encoder_config: dict[str, Any]) -> LlamaTokenIds:
    """Llama 3's ids (begin/end of text from the config; the header, eot and newline ids are Llama
    3's own, 128002 is a reserved id standing in for unk, which Llama 3 lacks); <image> and pad from
    the Llava config, which the pipeline reads them from."""
    text = text_encoder_config["text_config"]
    return LlamaTokenIds(
        begin_of_text=text["bos_token_id"],
        end_of_text=text["eos_token_id"],
        unknown=128002,
        start_header=128006,
        end_header=128007,
        eot=128009,
        double_newline=271,
        newline=198,
        image=text_encoder_config["image_token_index"],
        pad=text_encoder_config["pad_token_id"],
    )


# The tiny Llava's vocabulary is 1000 ids: words from 0, specials at the top.
TINY_LLAMA_VOCAB = 1000
TINY_TOKEN_IDS = LlamaTokenIds(
    begin_of_text=990,
    end_of_text=991,
    unknown=992,
    start_header=993,
    end_header=994,
    eot=995,
    double_newline=996,
    newline=997,
    image=998,
    pad=999,
)


def _template_words() -> list[str]:
    """The words of the pipeline's default template and of the usual prompts (others map to unk)."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import (
        DEFAULT_PROMPT_TEMPLATE,
    )

    text = re.sub(r"<\|[a-z_]+\|>|<image>", " ", str(DEFAULT_PROMPT_TEMPLATE["template"]).lower())
    found = re.findall(r"\w+|[^\w\s]+", text) + list(PROMPT_WORDS)
    return list(dict.fromkeys(found))


def build_llama_tokenizer(
    directory: Path, ids: LlamaTokenIds, vocab_size: int, model_max_length: int
) -> Any:
    """A Llama-3-style fast tokenizer (saved under ``directory`` and loaded back).

    The vocabulary is dense up to the largest special id (reserved fillers in the gaps, as Llama 3
    has), so that saving it does not warn about holes; every id stays below ``vocab_size``."""
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ids.specials()
    if max(specials.values()) >= vocab_size:
        raise ValueError(
            f"special token ids {specials} must stay below the text encoder's vocab_size "
            f"{vocab_size}"
        )
    taken = set(specials.values())
    free_ids = (i for i in range(vocab_size) if i not in taken)
    vocab = dict(specials)
    for word in _template_words():
        vocab[word] = next(free_ids)
    # Dense: every id up to the largest special has a token.
    present = set(vocab.values())
    for filler_id in range(max(present) + 1):
        if filler_id not in present:
            vocab[f"<|reserved_{filler_id}|>"] = filler_id

    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    # Specials are matched before pre-tokenization (longest first, so "\n\n" wins over "\n").
    tokenizer.add_special_tokens([AddedToken(token, normalized=False) for token in specials])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A $B",
        special_tokens=[("<|begin_of_text|>", ids.begin_of_text)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="right",
    )
    directory.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(directory))
    return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)


def _clip_tokenizer(directory: Path) -> Any:
    return load_byte_level_clip_tokenizer(directory, CLIP_MAX_LENGTH)


def _image_processor(size: int, config: dict[str, Any] | None = None) -> Any:
    from transformers import CLIPImageProcessor

    if config is not None:
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
        from diffusers import (
            AutoencoderKLHunyuanVideo,
            FlowMatchEulerDiscreteScheduler,
            HunyuanVideoTransformer3DModel,
        )
        from transformers import (
            CLIPTextConfig,
            CLIPTextModel,
            LlavaConfig,
            LlavaForConditionalGeneration,
        )

        torch.manual_seed(0)
        transformer = HunyuanVideoTransformer3DModel(
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
        torch.manual_seed(0)
        vae = AutoencoderKLHunyuanVideo(
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
        torch.manual_seed(0)
        scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
        ids = TINY_TOKEN_IDS
        # Plain dicts: transformers 5's config classes take these as **kwargs.
        text_config: dict[str, Any] = {
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
        vision_config: dict[str, Any] = {
            "model_type": "clip_vision_model",
            "hidden_size": 8,
            "intermediate_size": 37,
            "projection_dim": 32,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "image_size": 48,
            "patch_size": 2,
        }
        llava_config: dict[str, Any] = {
            "vision_config": vision_config,
            "text_config": text_config,
            "pad_token_id": ids.pad,
            "image_token_index": ids.image,
        }
        clip_config: dict[str, Any] = {
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
        torch.manual_seed(0)
        text_encoder = LlavaForConditionalGeneration(LlavaConfig(**llava_config))
        torch.manual_seed(0)
        text_encoder_2 = CLIPTextModel(CLIPTextConfig(**clip_config))
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
            image_processor=_image_processor(
                0, read_config(CONFIG_DIR, "image_processor", "preprocessor_config.json")
            ),
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
    ) -> dict[str, Any]:
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
