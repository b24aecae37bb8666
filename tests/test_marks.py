from __future__ import annotations

import pytest

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import GenerationSpec, Scaling, call_marker, i2v, marker_help


def test_preset_resolution_is_square_with_study_defaults() -> None:
    spec = i2v(resolution="768p")
    assert (spec.width, spec.height, spec.frames, spec.steps, spec.guidance, spec.fps) == (
        768,
        768,
        16,
        50,
        9.0,
        8,
    )
    assert spec.label == "768p"


def test_explicit_size_and_options() -> None:
    spec = i2v(
        width=1280, height=704, frames=8, memory=["vae_tiling", "model_cpu_offload"], dtype="bf16"
    )
    assert spec.label == "1280x704"
    assert spec.offload == "model_cpu_offload"
    assert spec.toggles == ("vae_tiling",)


def test_no_size_defaults_to_512p() -> None:
    assert i2v().resolution == "512p"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution": "480p"}, "not a preset"),
        ({"width": 500, "height": 512}, "multiple of 8"),
        ({"width": 512}, "both width= and height="),
        ({"resolution": "512p", "width": 512, "height": 512}, "not both"),
        ({"frames": 0}, "frames=0 must be >= 1"),
        ({"steps": -3}, "steps=-3"),
        ({"frames": 2.5}, "must be an integer"),
        ({"frames": True}, "must be an integer"),
        ({"guidance": "high"}, "guidance='high'"),
        ({"guidance": float("nan")}, "finite"),
        ({"dtype": "int8"}, "dtype='int8' is unknown"),
        (
            {"memory": ["gradient_checkpointing"]},
            "memory option 'gradient_checkpointing' is unknown",
        ),
        ({"memory": ["model_cpu_offload", "sequential_cpu_offload"]}, "exclude each other"),
        ({"prompt": ""}, "prompt"),
    ],
)
def test_bad_marks_name_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(I2VUsageError, match=message):
        i2v(**kwargs)


def test_call_marker_turns_a_wrong_signature_into_a_usage_error() -> None:
    with pytest.raises(I2VUsageError, match=r"i2v: .*unexpected keyword argument 'frame'"):
        call_marker(i2v, (), {"frame": 16})
    assert call_marker(i2v, ("256p",), {}).width == 256


def test_scaling_shrinks_sizes_and_steps_keeping_multiples_of_8() -> None:
    scaling = Scaling(size_divisor=8, steps_divisor=5)
    spec = i2v(resolution="768p", steps=50).scaled(scaling)
    assert (spec.width, spec.height, spec.steps, spec.frames) == (96, 96, 10, 16)
    assert i2v(width=264, height=256, steps=3).scaled(scaling).width == 32  # 33 rounds down to 32
    assert Scaling().is_identity and i2v().scaled(Scaling()) == i2v()
    assert "1024p->128x128" in scaling.describe()


def test_spec_round_trips_through_dict() -> None:
    spec = i2v(resolution="256p", memory=("vae_slicing",))
    assert GenerationSpec.from_dict(spec.to_dict()) == spec


def test_marker_help_comes_from_the_signature() -> None:
    text = marker_help(i2v, "x")
    assert text.startswith("i2v(resolution: 'str | None' = None") or text.startswith(
        "i2v(resolution: str | None = None"
    )
    assert "frames" in text and "memory" in text


@pytest.mark.parametrize("offload", ["group_offload", "sequential_cpu_offload"])
def test_torch_compile_with_hooks_inside_the_blocks_is_one_usage_line(offload: str) -> None:
    """Issue 21, defect 1: those offloads' hooks cannot be traced inside compiled blocks."""
    with pytest.raises(
        I2VUsageError,
        match=rf"^memory options torch_compile and {offload} cannot be combined: .*"
        r"pair torch_compile with model_cpu_offload$",
    ):
        i2v(pipeline="wan2.1-i2v", memory=("torch_compile", offload))
    i2v(
        pipeline="wan2.1-i2v", memory=("torch_compile", "model_cpu_offload")
    )  # hooks around the model: fine
