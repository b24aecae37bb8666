"""CogVideoX-5B-I2V: full-size configs, the tiny pipeline, its rules (8k+1 frames, 720x480 only for
the real transformer), the step count with both CogVideoX schedulers and the memory options."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import GenerationSpec, i2v
from pytest_i2v.measure.runner import generate
from pytest_i2v.pipelines import PIPELINES
from pytest_i2v.pipelines.base import CONFIG_ROOT, adapter_for, parameter_count, read_config
from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline
from pytest_i2v.pipelines.memory_toggles import apply_toggles, reset_toggles
from tests.pipeline_support import assert_timed_step_by_step, load_tiny, require_pipeline
from tests.pipeline_support import measure_once as _measure

NAME = "cogvideox-i2v"
diffusers = require_pipeline(NAME)

# Small and valid: 4x4 latents (sizes multiples of 16), 3 latent frames (8k+1), 2 steps. 64x64 is
# also larger than the tiny VAE's 48x40 tiles, so vae_tiling really tiles.
SMALL = {"width": 64, "height": 64, "frames": 9, "steps": 2}


def _small(**overrides: Any) -> GenerationSpec:
    """A tiny-model generation: the mark is the real model's (720x480 only), the size a
    scaled one, as the cpu profile's scaling produces (the tiny transformer has no learned
    positional embeddings)."""
    values = {**SMALL, **overrides}
    width, height = values.pop("width"), values.pop("height")
    return replace(i2v(pipeline=NAME, **values), width=width, height=height)


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cogvideox-i2v")


@pytest.fixture(scope="module")
def tiny_pipe(work_dir: Path) -> Any:
    return load_tiny(NAME, work_dir)


def test_fullsize_transformer_parameter_count_matches_the_checkpoint() -> None:
    """The transformer built from the shipped config has the published size within 2 %.

    The model card (https://huggingface.co/THUDM/CogVideoX-5b-I2V) and the paper (arXiv 2408.06072)
    only say "5B"; the architecture has 5.57 B parameters, 11 % above that rounded name. The precise
    published figure is the checkpoint: its transformer shards are 4.99 + 4.99 + 1.27 = 11.25 GB in
    bf16
    (https://huggingface.co/THUDM/CogVideoX-5b-I2V/tree/70c4b01b7e1eba10070aa0fa1b404e07ee0c8d2a/transformer),
    5.625 B values at 2 bytes. Those values include the 54.6 M learned positional embedding that
    diffusers keeps as a buffer, so the parameters alone are 1 % below it and parameters plus
    persistent buffers match it to the shards' rounding (3 significant digits)."""
    published = 11.25e9 / 2
    (transformer,) = adapter_for(NAME).fullsize_denoisers("meta", torch.bfloat16)
    assert type(transformer).__name__ == "CogVideoXTransformer3DModel"
    count = parameter_count(transformer)
    assert abs(count - published) / published < 0.02, (
        f"{count:,} parameters vs {published:,.0f} published"
    )
    stored = sum(t.numel() for t in transformer.state_dict().values())
    assert stored - count == 54_607_872  # (226 text + 13 * 30 * 45 video tokens) x 3072
    assert abs(stored - published) / published < 0.001, (
        f"{stored:,} stored values vs {published:,.0f}"
    )


def test_every_fullsize_component_builds_on_meta_with_the_model_index_classes(
    tmp_path: Path,
) -> None:
    index = json.loads((CONFIG_ROOT / NAME / "model_index.json").read_text(encoding="utf-8"))
    pipe = adapter_for(NAME).build_fullsize("meta", torch.bfloat16, tmp_path)
    assert type(pipe).__name__ == index["_class_name"] == PIPELINES[NAME].pipeline_class
    components = {key: value for key, value in index.items() if not key.startswith("_")}
    assert set(components) == set(pipe.components)
    for component, (_library, class_name) in components.items():
        if component == "tokenizer":
            continue  # built offline (no sentencepiece vocabulary): checked below
        assert type(getattr(pipe, component)).__name__ == class_name, component
    for component in ("transformer", "vae", "text_encoder"):
        module = getattr(pipe, component)
        assert all(
            p.device.type == "meta" and p.dtype == torch.bfloat16 for p in module.parameters()
        ), component
    # The 1.0 I2V architecture: image latents concatenated on the channels, no ofs embedding, no
    # temporal patching (1.5 has both), learned positional embeddings for 60x90 latents.
    config = pipe.transformer.config
    assert (config.in_channels, config.ofs_embed_dim, config.patch_size_t) == (32, None, None)
    assert config.use_rotary_positional_embeddings and config.use_learned_positional_embeddings
    assert (pipe.vae_scale_factor_spatial, pipe.vae_scale_factor_temporal) == (8, 4)
    assert pipe.text_encoder.config.d_model == config.text_embed_dim == 4096
    # T5-XXL's encoder: 4.76 B parameters, the hub's 9.52 GB of bf16 text_encoder shards.
    assert abs(parameter_count(pipe.text_encoder) - 9.52e9 / 2) / 4.76e9 < 0.01
    ids = pipe.tokenizer(
        "A person slowly turning head to the right", padding="max_length", max_length=226
    ).input_ids
    assert len(ids) == pipe.tokenizer.model_max_length == config.max_text_seq_length == 226
    assert max(ids) < pipe.text_encoder.config.vocab_size


def test_registry_entry_matches_the_model_card() -> None:
    info = PIPELINES[NAME]
    native = info.native
    assert (
        native.width,
        native.height,
        native.frames,
        native.steps,
        native.guidance,
        native.fps,
    ) == (720, 480, 49, 50, 6.0, 8)
    assert (
        info.constraints.frames_ok(native.frames)
        and info.constraints.violation(720, 480, 49) is None
    )
    assert info.min_diffusers == "0.30.3" and not info.uses_fps and info.step_callbacks
    # CogVideoXAttnProcessor2_0 calls SDPA itself: a backend set on the
    # transformer would be ignored.
    assert not info.attention_backends
    assert (
        "forward_chunking" not in info.memory_options
    )  # the transformer has no enable_forward_chunking
    assert not hasattr(diffusers.CogVideoXTransformer3DModel, "enable_forward_chunking")


def test_tiny_generation_is_timed_step_by_step(tiny_pipe: Any) -> None:
    spec = _small()
    assert_timed_step_by_step(_measure(tiny_pipe, spec), spec)


def test_tiny_pipeline_has_the_real_compression_and_scheduler(tiny_pipe: Any) -> None:
    """So the tiny pipeline obeys the same size and frame rules and takes the same
    steps as the real one."""
    assert (tiny_pipe.vae_scale_factor_spatial, tiny_pipe.vae_scale_factor_temporal) == (8, 4)
    assert (
        tiny_pipe.transformer.config.patch_size == 2
        and tiny_pipe.transformer.config.patch_size_t is None
    )
    shipped = read_config(CONFIG_ROOT / NAME, "scheduler", "scheduler_config.json")
    assert type(tiny_pipe.scheduler).__name__ == shipped["_class_name"] == "CogVideoXDDIMScheduler"
    assert tiny_pipe.scheduler.config.snr_shift_scale == shipped["snr_shift_scale"] == 1.0


@pytest.fixture
def dpm_scheduler(tiny_pipe: Any) -> Iterator[Any]:
    """The tiny pipeline with THUDM's recommended CogVideoXDPMScheduler, the shipped
    one put back after."""
    shipped = tiny_pipe.scheduler
    tiny_pipe.scheduler = diffusers.CogVideoXDPMScheduler.from_config(shipped.config)
    try:
        yield tiny_pipe
    finally:
        tiny_pipe.scheduler = shipped


def test_one_step_callback_per_step_with_the_dpm_scheduler(dpm_scheduler: Any) -> None:
    """DPM-solver keeps a second-order history but has scheduler order 1: one transformer call and
    one callback per step, so per-step times mean the same as with the shipped DDIM scheduler."""
    assert dpm_scheduler.scheduler.order == 1
    steps = 3
    spec = _small(steps=steps)
    ended: list[int] = []
    calls = [0]
    hook = dpm_scheduler.transformer.register_forward_pre_hook(
        lambda *_: calls.__setitem__(0, calls[0] + 1)
    )
    try:
        generate(dpm_scheduler, spec, synthetic_portrait(spec.width, spec.height), ended.append)
    finally:
        hook.remove()
    assert ended == list(range(1, steps + 1))
    assert calls[0] == steps  # classifier-free guidance is batched into one call
    result = _measure(dpm_scheduler, spec)
    assert result.outcome == "ok" and len(result.samples[0].step_s) == steps


def test_call_keeps_the_pipeline_defaults() -> None:
    """No fps argument, no negative prompt, and ``use_dynamic_cfg`` /
    ``max_sequence_length`` left at the pipeline's defaults (False / 226): the demo's
    dynamic CFG changes only the guidance weight."""
    spec = _small(guidance=4.5)
    kwargs = adapter_for(NAME).call_kwargs(spec, object(), torch.Generator())
    assert (
        kwargs["guidance_scale"] == 4.5
        and kwargs["num_frames"] == 9
        and kwargs["num_inference_steps"] == 2
    )
    assert kwargs["prompt"] == spec.prompt and (kwargs["height"], kwargs["width"]) == (64, 64)
    assert not {"negative_prompt", "use_dynamic_cfg", "max_sequence_length", "fps"} & set(kwargs)
    defaults = inspect.signature(diffusers.CogVideoXImageToVideoPipeline.__call__).parameters
    assert (
        defaults["use_dynamic_cfg"].default is False
        and defaults["max_sequence_length"].default == 226
    )


def test_invalid_frames_and_sizes_are_usage_errors() -> None:
    with pytest.raises(I2VUsageError, match=r"frames=5 breaks frames = 8k\+1 \(try 1 or 9\)"):
        i2v(pipeline=NAME, frames=5)
    with pytest.raises(
        I2VUsageError, match=r"width=1280, height=720 is not the model's only size 720x480"
    ):
        i2v(pipeline=NAME, width=1280, height=720)


def test_an_even_latent_frame_count_decodes_to_the_wrong_length(tiny_pipe: Any) -> None:
    """Why frames are 8k+1 and not 4k+1: 5 frames are 2 latent frames, which the
    VAE decodes to 8."""
    frames = tiny_pipe(
        image=synthetic_portrait(32, 32),
        prompt="a cat",
        height=32,
        width=32,
        num_frames=5,
        num_inference_steps=1,
        output_type="np",
    ).frames
    assert frames.shape[1] == 8


def test_the_real_transformer_refuses_other_sizes_as_a_usage_error(tiny_pipe: Any) -> None:
    """Learned positional embeddings exist for one latent size only: the full-size config allows
    720x480 and nothing else, and a transformer like that fails a generation at another size with an
    I2VUsageError before diffusers' ValueError from inside the first step."""
    from pytest_i2v.pipelines.cogvideox import fixed_size_violation

    full = SimpleNamespace(
        **read_config(CONFIG_ROOT / NAME, "transformer")
    )  # the shipped config's values
    assert fixed_size_violation(full, 8, 720, 480) is None
    message = fixed_size_violation(full, 8, 1280, 720)
    assert message is not None and "width=1280, height=720" in message and "720x480 only" in message
    assert (
        fixed_size_violation(tiny_pipe.transformer.config, 8, 80, 48) is None
    )  # RoPE alone: any size

    shipped = tiny_pipe.transformer
    torch.manual_seed(0)
    tiny_pipe.transformer = diffusers.CogVideoXTransformer3DModel.from_config(
        shipped.config, use_learned_positional_embeddings=True
    )  # sample 8x8 latents: 64x64 pixels
    try:
        with pytest.raises(I2VUsageError, match=r"width=80, height=48: .* 64x64 only"):
            _measure(tiny_pipe, _small(width=80, height=48))
        assert _measure(tiny_pipe, _small()).outcome == "ok"
    finally:
        tiny_pipe.transformer = shipped


def test_layerwise_fp8_runs(work_dir: Path) -> None:
    pipe = load_pipeline(
        PipelineKey(
            source="tiny",
            dtype="fp32",
            device="cpu",
            pipeline=NAME,
            load_options=("layerwise_fp8",),
        ),
        work_dir,
    ).pipe
    assert any(p.dtype == torch.float8_e4m3fn for p in pipe.transformer.parameters())
    assert _measure(pipe, _small(memory="layerwise_fp8")).outcome == "ok"


@pytest.mark.parametrize("toggle", ["vae_slicing", "vae_tiling"])
def test_vae_toggles_run_and_are_undone(
    tiny_pipe: Any, toggle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = {"vae_slicing": "use_slicing", "vae_tiling": "use_tiling"}[toggle]
    assert toggle in PIPELINES[NAME].memory_options
    tiled: list[int] = []
    original = tiny_pipe.vae.tiled_decode

    def counting_tiled_decode(*args: Any, **kwargs: Any) -> Any:
        tiled.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_pipe.vae, "tiled_decode", counting_tiled_decode)
    apply_toggles(tiny_pipe, (toggle,), pipeline=NAME)
    try:
        assert getattr(tiny_pipe.vae, flag)
        assert _measure(tiny_pipe, _small(memory=toggle)).outcome == "ok"
    finally:
        reset_toggles(tiny_pipe, pipeline=NAME)
    assert not getattr(tiny_pipe.vae, flag)
    # Tiling decodes the 64x64 video in 48x40 tiles; slicing splits the batch, a single video here.
    assert bool(tiled) == (toggle == "vae_tiling")
