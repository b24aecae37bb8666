"""The pipeline registry as pure logic: each model's rules, model sources per pipeline, the default
pipeline, what the installed diffusers can run, and how a scaling profile keeps each rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import Scaling, i2v
from pytest_i2v.pipelines import (
    PIPELINES,
    Constraints,
    parse_model_sources,
    pipeline_of_directory,
    session_pipeline,
    source_for,
    unsupported_reason,
)
from pytest_i2v.pipelines.identify import pipeline_from_model_index
from pytest_i2v.profiles import load_profiles


def test_frame_rules_name_the_value_the_rule_and_the_nearest_valid_counts() -> None:
    wan = Constraints(size_multiple=16, frames_step=4, frames_offset=1)
    assert wan.violation(832, 480, 81) is None
    assert wan.violation(832, 480, 80) == "frames=80 breaks frames = 4k+1 (try 77 or 81)"
    assert wan.violation(830, 480, 81) == "width=830 is not a multiple of 16 (try 816 or 832)"
    svd = Constraints(size_multiple=8, min_frames=2)
    assert (
        svd.violation(64, 64, 1) == "frames=1 breaks frames >= 2 (try 2)"
    )  # one suggestion, not "2 or 2"
    ltx = Constraints(size_multiple=32, frames_step=8, frames_offset=1, min_steps=2)
    assert ltx.violation(768, 512, 121, steps=1) == "steps=1 breaks steps >= 2"
    fixed = Constraints(size_multiple=16, fixed_size=(720, 480))
    assert fixed.violation(720, 480, 9) is None
    assert fixed.violation(736, 480, 9) is not None and "only size 720x480" in str(
        fixed.violation(736, 480, 9)
    )


def test_marks_check_the_rules_of_their_pipeline() -> None:
    with pytest.raises(
        I2VUsageError,
        match=r"frames=16 breaks frames = 4k\+1 \(try 13 or 17\): wan2.1-i2v needs sizes "
        r"divisible by 16, frames = 4k\+1",
    ):
        i2v(pipeline="wan2.1-i2v", frames=16)
    with pytest.raises(
        I2VUsageError,
        match=r"steps=1 breaks steps >= 2: ltx-video needs sizes divisible by 32, "
        r"frames = 8k\+1 and steps >= 2",
    ):
        i2v(pipeline="ltx-video", steps=1)
    with pytest.raises(I2VUsageError, match=r"cogvideox-i2v needs 720x480, frames = 8k\+1"):
        i2v(pipeline="cogvideox-i2v", width=1280, height=720)
    with pytest.raises(
        I2VUsageError, match="pipeline='sora' is not a known pipeline; use one of i2vgen-xl, svd"
    ):
        i2v(pipeline="sora")


@pytest.mark.parametrize("name", list(PIPELINES))
def test_unset_values_are_the_pipelines_native_ones_and_valid(name: str) -> None:
    spec = i2v(pipeline=name)
    native = PIPELINES[name].native
    assert (spec.width, spec.height, spec.frames, spec.steps, spec.guidance) == (
        native.width,
        native.height,
        native.frames,
        native.steps,
        native.guidance,
    )
    assert (
        PIPELINES[name].constraints.violation(spec.width, spec.height, spec.frames, spec.steps)
        is None
    )


@pytest.mark.parametrize("name", list(PIPELINES))
def test_the_cpu_profile_scales_every_pipeline_within_its_rules(name: str) -> None:
    scaling = load_profiles()["cpu"].scaling
    scaled = i2v(pipeline=name).scaled(scaling)
    rules = PIPELINES[name].constraints
    assert scaled.width % rules.size_multiple == 0 and scaled.height % rules.size_multiple == 0
    assert rules.frames_ok(scaled.frames) and scaled.steps >= rules.min_steps
    assert scaled.frames <= max(
        2, PIPELINES[name].native.frames // 2
    )  # scaled down, not just rounded


def test_frames_scaling_keeps_a_sweep_distinct_and_never_goes_below_two() -> None:
    scaling = Scaling(frames_divisor=4)
    assert [scaling.frames(f) for f in (8, 16, 24, 32)] == [2, 4, 6, 8]
    assert scaling.frames(2) == 2 and scaling.frames(1) == 1
    assert i2v(pipeline="wan2.1-i2v").scaled(Scaling(size_divisor=8, frames_divisor=4)).frames == 21
    assert (
        i2v(pipeline="ltx-video").scaled(Scaling(size_divisor=8, frames_divisor=4)).frames == 33
    )  # 31 -> 8k+1
    assert (
        i2v(pipeline="ltx-video", steps=5).scaled(Scaling(steps_divisor=5)).steps == 2
    )  # its 2-step minimum


def test_model_sources_per_pipeline() -> None:
    assert parse_model_sources("tiny") == ("tiny", {})
    assert parse_model_sources("random,svd=/m/svd") == ("random", {"svd": "/m/svd"})
    for bad, message in (
        ("tiny,random", "two sources without a pipeline name"),
        ("sora=/m", "not a known pipeline"),
        ("svd=", "no source after '='"),
        ("tiny,,svd=x", "an empty entry"),
    ):
        with pytest.raises(I2VUsageError, match=message):
            parse_model_sources(bad)
    # builtins apply to every pipeline; a known hub id to its own; others load
    # their published hub id
    assert source_for("svd", "i2vgen-xl", "tiny", {}, "tiny") == "tiny"
    assert (
        source_for("svd", "i2vgen-xl", None, {}, "ali-vilab/i2vgen-xl")
        == "stabilityai/stable-video-diffusion-img2vid-xt"
    )
    assert (
        source_for("i2vgen-xl", "i2vgen-xl", None, {}, "ali-vilab/i2vgen-xl")
        == "ali-vilab/i2vgen-xl"
    )
    assert source_for("svd", "i2vgen-xl", "random", {"svd": "/m/svd"}, "tiny") == "/m/svd"
    # a hub id we cannot place belongs to the session's pipeline
    assert (
        source_for("wan2.1-i2v", "wan2.1-i2v", "me/my-wan-finetune", {}, "ali-vilab/i2vgen-xl")
        == "me/my-wan-finetune"
    )
    assert (
        source_for("svd", "wan2.1-i2v", "me/my-wan-finetune", {}, "ali-vilab/i2vgen-xl")
        == PIPELINES["svd"].hub_id
    )


def test_a_model_index_names_its_pipeline(tmp_path: Path) -> None:
    wan21 = {
        "_class_name": "WanImageToVideoPipeline",
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "transformer_2": [None, None],
    }
    wan22 = {
        **wan21,
        "transformer_2": ["diffusers", "WanTransformer3DModel"],
        "boundary_ratio": 0.9,
    }
    assert pipeline_from_model_index(wan21) == "wan2.1-i2v"
    assert pipeline_from_model_index(wan22) == "wan2.2-i2v"
    assert (
        pipeline_from_model_index({"_class_name": "LTXPipeline"}) == "ltx-video"
    )  # the hub repo's class
    assert pipeline_from_model_index({"_class_name": "StableDiffusionPipeline"}) is None
    (tmp_path / "model_index.json").write_text(
        '{"_class_name": "StableVideoDiffusionPipeline"}', encoding="utf-8"
    )
    assert pipeline_of_directory(tmp_path) == "svd"
    assert session_pipeline(None, str(tmp_path), None) == "svd"
    assert session_pipeline("ltx-video", str(tmp_path), None) == "ltx-video"  # the option wins
    assert session_pipeline(None, "tiny", "wan2.1-i2v") == "wan2.1-i2v"  # then the profile's
    assert session_pipeline(None, "tiny", None) == "i2vgen-xl"


def test_what_cannot_run_here_is_a_reason_naming_the_pipeline() -> None:
    wan = PIPELINES["wan2.2-i2v"]
    assert unsupported_reason(wan, (), None, "0.42.1", True) is None
    assert unsupported_reason(wan, (), None, "0.34.0", True) == (
        "pipeline wan2.2-i2v needs diffusers >= 0.35.0 with WanImageToVideoPipeline "
        "(installed: 0.34.0); pip install -U diffusers"
    )
    assert (
        unsupported_reason(wan, (), None, "0.42.1", False) is not None
    )  # a build without the class
    assert unsupported_reason(PIPELINES["svd"], ("vae_tiling",), None, "0.42.1", True) == (
        "memory option vae_tiling is not supported by pipeline svd"
    )
    assert "has no set_attention_backend" in str(
        unsupported_reason(PIPELINES["i2vgen-xl"], (), "flash", "0.42.1", True)
    )


def test_profiles_set_their_repeats() -> None:
    profiles = load_profiles()
    assert profiles["cpu"].repeats == 3
    assert {p.repeats for name, p in profiles.items() if name != "cpu"} == {5}


def test_a_bad_profile_repeats_or_pipeline_is_a_usage_error(tmp_path: Path) -> None:
    base = (
        "schema_version: 1\nname: mine\nmemory_gb: 24\ndevice: cpu\nmatch: []\n"
        "model: tiny\ndtype: fp32\n"
    )
    (tmp_path / "mine.yaml").write_text(base + "repeats: 0\n", encoding="utf-8")
    with pytest.raises(I2VUsageError, match="repeats must be a positive integer"):
        load_profiles(tmp_path)
    (tmp_path / "mine.yaml").write_text(base + "pipeline: sora\n", encoding="utf-8")
    with pytest.raises(I2VUsageError, match="pipeline 'sora' is unknown"):
        load_profiles(tmp_path)
