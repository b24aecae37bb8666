from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pytest_i2v.errors import I2VUsageError, ModelSourceError
from pytest_i2v.pipelines.i2vgen_xl_compat import alias_clip_text_model
from pytest_i2v.pipelines.loading import PipelineKey, load_from_pretrained, load_pipeline
from pytest_i2v.pipelines.memory_toggles import apply_toggles, reset_toggles
from pytest_i2v.pipelines.source_check import check_model_source


def test_tiny_pipeline_round_trips_through_save_and_from_pretrained(
    tiny_model_dir: Path, tiny_pipe
) -> None:
    from diffusers import I2VGenXLPipeline

    assert (tiny_model_dir / "model_index.json").is_file()
    assert list(tiny_model_dir.glob("unet/*.safetensors")), "weights are saved as safetensors"
    assert isinstance(tiny_pipe, I2VGenXLPipeline)
    assert tiny_pipe.vae_scale_factor == 8  # 4-block VAE, like the real model
    assert tiny_pipe.tokenizer("a person").input_ids[0] == tiny_pipe.tokenizer.bos_token_id


def test_load_pipeline_records_time_and_provenance(tmp_path: Path) -> None:
    loaded = load_pipeline(PipelineKey(source="tiny", dtype="fp32", device="cpu"), tmp_path)
    assert loaded.provenance == "tiny-random-weights"
    assert loaded.load_s > 0
    assert loaded.pipe.unet.dtype == torch.float32


def test_fullsize_random_architecture_matches_the_real_model() -> None:
    from pytest_i2v.pipelines.i2vgen_xl_fullsize import build_fullsize_modules

    modules = build_fullsize_modules("meta", torch.float16)
    count = {name: sum(p.numel() for p in module.parameters()) for name, module in modules.items()}
    assert round(count["unet"] / 1e9, 2) == 1.42
    assert round(sum(count.values()) / 1e9, 2) == 2.49
    assert modules["unet"].dtype == torch.float16
    assert sum(count.values()) * 2 / 2**30 == pytest.approx(4.64, abs=0.01)  # GiB in fp16


def test_compat_alias_only_when_text_model_is_missing() -> None:
    flat = SimpleNamespace(final_layer_norm=object())  # transformers >= 5.6 layout
    pipe = SimpleNamespace(text_encoder=flat)
    assert alias_clip_text_model(pipe) is True
    assert pipe.text_encoder.text_model is flat
    nested = SimpleNamespace(text_model=object())  # transformers < 5.6 layout
    assert alias_clip_text_model(SimpleNamespace(text_encoder=nested)) is False
    assert alias_clip_text_model(SimpleNamespace(text_encoder=SimpleNamespace())) is False


def test_compat_alias_keeps_state_dict_unchanged(tiny_pipe) -> None:
    encoder = tiny_pipe.text_encoder
    keys = set(encoder.state_dict())
    object.__setattr__(encoder, "text_model_probe", encoder)
    assert set(encoder.state_dict()) == keys


def test_model_source_checks(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert check_model_source("tiny") == "tiny"
    assert check_model_source("ali-vilab/i2vgen-xl") == "ali-vilab/i2vgen-xl"
    assert check_model_source(str(tiny_model_dir)) == str(tiny_model_dir)
    with pytest.raises(I2VUsageError, match="no such directory"):
        check_model_source(str(tmp_path / "missing"))
    with pytest.raises(I2VUsageError, match=r"no model_index\.json"):
        check_model_source(str(tmp_path))
    with pytest.raises(I2VUsageError, match="neither a local directory, a hub id"):
        check_model_source("just-a-name")


def test_missing_hub_model_offline_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelSourceError) as raised:
        load_from_pretrained("nobody-here/no-such-model", "fp32", "cpu")
    message = str(raised.value)
    assert "\n" not in message
    assert (
        "hub id nobody-here/no-such-model in the local cache" in message
        and "--i2v-model random" in message
    )


def test_toggles_apply_and_reset(tiny_pipe) -> None:
    apply_toggles(tiny_pipe, ("vae_slicing", "vae_tiling", "eager_attention"))
    assert tiny_pipe.vae.use_slicing and tiny_pipe.vae.use_tiling
    processors = {type(p).__name__ for p in tiny_pipe.unet.attn_processors.values()}
    assert processors == {"AttnProcessor"}
    reset_toggles(tiny_pipe)
    assert not tiny_pipe.vae.use_slicing and not tiny_pipe.vae.use_tiling
    assert {type(p).__name__ for p in tiny_pipe.unet.attn_processors.values()} == {
        "AttnProcessor2_0"
    }
