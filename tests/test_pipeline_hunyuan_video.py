"""HunyuanVideo-I2V adapter: published architecture, offline tokenizer, tiny generation,
constraints, memory options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import GenerationSpec, i2v
from pytest_i2v.measure.measurement import Measurement
from pytest_i2v.measure.runner import GenerationRunner
from pytest_i2v.pipelines import PIPELINES
from pytest_i2v.pipelines.base import CONFIG_ROOT, adapter_for, parameter_count
from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline
from pytest_i2v.pipelines.memory_toggles import apply_toggles, reset_toggles
from tests.pipeline_support import require_pipeline

NAME = "hunyuanvideo-i2v"
require_pipeline(NAME)
# The published transformer size: "13B" (HunyuanVideo paper, arXiv 2412.03603, and the model card).
PUBLISHED_TRANSFORMER_PARAMS = 13e9


def small_spec() -> GenerationSpec:
    # The smallest generation the rules allow with motion: 64x64 (4x16), 5 = 4*1+1 frames, 2 steps.
    return i2v(pipeline=NAME, width=64, height=64, frames=5, steps=2)


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_pipeline(
        PipelineKey(source="tiny", dtype="fp32", device="cpu", pipeline=NAME),
        tmp_path_factory.mktemp("hunyuan-tiny"),
    ).pipe


def measure(pipe: Any, spec: GenerationSpec) -> Measurement:
    return GenerationRunner(pipe, "cpu").measure(
        spec, synthetic_portrait(spec.width, spec.height), warmup=0, repeats=1
    )


def test_fullsize_transformer_matches_published_size() -> None:
    """The HunyuanVideo-I2V transformer (the token_replace "HYVideo-T/2-I2V-16ch" config of
    diffusers' scripts/convert_hunyuan_video_to_diffusers.py) has "13B" parameters: HunyuanVideo
    paper, https://arxiv.org/abs/2412.03603 ("over 13 billion parameters"), and the diffusers docs,
    https://huggingface.co/docs/diffusers/api/pipelines/hunyuan_video ("a 13B parameter diffusion
    transformer"). The shipped config builds 12.82 B, 1.4 % under the rounded figure."""
    (transformer,) = adapter_for(NAME).fullsize_denoisers("meta", torch.bfloat16)
    count = parameter_count(transformer)
    assert abs(count - PUBLISHED_TRANSFORMER_PARAMS) / PUBLISHED_TRANSFORMER_PARAMS < 0.02, count
    assert (
        transformer.config.image_condition_type == "token_replace"
        and transformer.config.guidance_embeds
    )


def test_fullsize_components_build_on_meta_with_model_index_classes(tmp_path: Path) -> None:
    pipe = adapter_for(NAME).build_fullsize("meta", torch.bfloat16, tmp_path)
    index = json.loads((CONFIG_ROOT / NAME / "model_index.json").read_text(encoding="utf-8"))
    assert index["_class_name"] == type(pipe).__name__ == PIPELINES[NAME].pipeline_class
    from transformers import PreTrainedTokenizerBase

    for component, (_library, class_name) in (
        (k, v) for k, v in index.items() if not k.startswith("_")
    ):
        built = pipe.components[component]
        names = {cls.__name__ for cls in type(built).__mro__}
        if component.startswith("tokenizer"):
            # Offline vocabularies: a fast Llama-style tokenizer and CLIP's BPE class.
            assert isinstance(built, PreTrainedTokenizerBase), component
            assert component == "tokenizer" or class_name in names, (component, names)
        else:
            # transformers may hand back its PIL-backend subclass of CLIPImageProcessor
            # without torchvision.
            assert class_name in names or f"{class_name}Pil" in names, (
                component,
                class_name,
                names,
            )
        if isinstance(built, torch.nn.Module):
            assert all(p.device.type == "meta" for p in built.parameters()), component
    # The Llava-Llama-3-8B text encoder: 8.03 B Llama 3 + CLIP ViT-L/336 + projector.
    assert 8.0e9 < parameter_count(pipe.text_encoder) < 8.5e9


def test_fullsize_tokenizer_keeps_template_positions(tmp_path: Path) -> None:
    """What the default prompt template relies on: <image> at image_emb_start (5), three
    <|end_header_id|>, padding with the Llava pad id, every id inside the vocabulary."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import (
        DEFAULT_PROMPT_TEMPLATE,
    )

    pipe = adapter_for(NAME).build_fullsize("meta", torch.bfloat16, tmp_path)
    config = pipe.text_encoder.config
    text = str(DEFAULT_PROMPT_TEMPLATE["template"]).format(
        "A person slowly turning head to the right"
    )
    ids = pipe.tokenizer(text, padding="max_length", max_length=256 + 103).input_ids
    assert len(ids) == 359 and max(ids) < config.text_config.vocab_size
    assert ids.index(config.image_token_index) == DEFAULT_PROMPT_TEMPLATE["image_emb_start"]
    assert ids.count(pipe.tokenizer.convert_tokens_to_ids("<|end_header_id|>")) == 3
    assert ids[-1] == config.pad_token_id == pipe.tokenizer.pad_token_id


def test_tiny_generation_times_every_stage(tiny_pipe: Any) -> None:
    spec = small_spec()
    result = measure(tiny_pipe, spec)
    assert result.outcome == "ok"
    (sample,) = result.samples
    assert len(sample.step_s) == spec.steps
    staged = sample.encode_s + sum(sample.step_s) + sample.decode_s
    assert abs(staged - sample.total_s) <= 0.02 * sample.total_s, (staged, sample.total_s)
    # token_replace keeps every frame (the 33-channel latent_concat variant would drop 4).
    assert result.output_shape == (1, spec.frames, spec.height, spec.width, 3)


@pytest.mark.parametrize("frames", [6, 8, 130])
def test_invalid_frames_rejected(frames: int) -> None:
    with pytest.raises(I2VUsageError) as caught:
        i2v(pipeline=NAME, frames=frames)
    assert f"frames={frames}" in str(caught.value) and "4k+1" in str(caught.value)


def test_invalid_size_rejected() -> None:
    with pytest.raises(I2VUsageError) as caught:
        i2v(pipeline=NAME, width=1288, height=720)
    assert "width=1288" in str(caught.value) and "multiple of 16" in str(caught.value)


def test_native_settings_are_the_published_ones() -> None:
    native = PIPELINES[NAME].native
    assert (native.width, native.height, native.frames, native.steps, native.guidance) == (
        1280,
        720,
        129,
        50,
        6.0,
    )


@pytest.mark.parametrize("toggle", ["vae_slicing", "vae_tiling"])
def test_vae_toggles_run(tiny_pipe: Any, toggle: str) -> None:
    assert toggle in PIPELINES[NAME].memory_options
    apply_toggles(tiny_pipe, (toggle,), pipeline=NAME)
    try:
        assert measure(tiny_pipe, small_spec()).outcome == "ok"
    finally:
        reset_toggles(tiny_pipe, pipeline=NAME)


def test_layerwise_fp8_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    assert "layerwise_fp8" in PIPELINES[NAME].memory_options
    pipe = load_pipeline(
        PipelineKey(
            source="tiny",
            dtype="fp32",
            device="cpu",
            pipeline=NAME,
            load_options=("layerwise_fp8",),
        ),
        tmp_path_factory.mktemp("hunyuan-fp8"),
    ).pipe
    assert pipe.transformer.transformer_blocks[0].attn.to_q.weight.dtype == torch.float8_e4m3fn
    assert measure(pipe, small_spec()).outcome == "ok"


def test_forward_chunking_is_not_offered() -> None:
    """HunyuanVideoTransformer3DModel has no enable_forward_chunking."""
    from diffusers import HunyuanVideoTransformer3DModel

    assert not hasattr(HunyuanVideoTransformer3DModel, "enable_forward_chunking")
    assert "forward_chunking" not in PIPELINES[NAME].memory_options
