from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.inputs import load_input_image, synthetic_portrait
from pytest_i2v.generation.marks import i2v
from pytest_i2v.measure.runner import GenerationRunner, generate

SPEC = i2v(width=32, height=32, frames=4, steps=3)


def test_measure_reports_every_step_and_stage(tiny_pipe) -> None:
    progress: list[tuple] = []
    runner = GenerationRunner(tiny_pipe, "cpu", progress=lambda *a: progress.append(a))
    measurement = runner.measure(SPEC, synthetic_portrait(64, 64), warmup=1, repeats=2)
    assert measurement.outcome == "ok"
    assert len(measurement.samples) == 2
    assert all(len(s.step_s) == 3 for s in measurement.samples)
    stages = measurement.stages
    assert stages.encode_s and stages.encode_s > 0 and stages.decode_s and stages.decode_s > 0
    # the stages account for the whole synchronised total (hooks see every part of the call)
    for s in measurement.samples:
        assert s.encode_s + sum(s.step_s) + s.decode_s == pytest.approx(s.total_s, rel=0.05)
    assert measurement.gen_fps == pytest.approx(4 / measurement.time_s)
    assert measurement.peak.host_rss_bytes > 0 and measurement.peak.allocated_bytes is None
    assert measurement.output_shape == (1, 4, 32, 32, 3)
    assert progress[0] == ("warm-up", 1, 1, 1, 3) and progress[-1] == ("repeat", 2, 2, 3, 3)


def test_generation_is_reproducible_with_the_same_seed(tiny_pipe) -> None:
    image = synthetic_portrait(64, 64)
    a = generate(tiny_pipe, SPEC, image)
    torch.manual_seed(1234)  # a disturbed global RNG must not matter
    b = generate(tiny_pipe, SPEC, image)
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("module", "stage", "step"),
    [("text_encoder", "encode", None), ("unet", "denoise", 2), ("decoder", "decode", None)],
)
def test_oom_at_each_stage_is_a_result(
    tiny_pipe, module: str, stage: str, step: int | None
) -> None:
    # Raise from inside the model (a submodule), as a real OOM would, after the
    # stage's own hooks ran.
    target = {
        "text_encoder": tiny_pipe.text_encoder,
        "unet": tiny_pipe.unet.conv_in,
        "decoder": tiny_pipe.vae.decoder.conv_in,
    }[module]
    calls = {"n": 0}

    def explode(*_: object) -> None:
        calls["n"] += 1
        if module != "unet" or calls["n"] == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handle = target.register_forward_pre_hook(explode)
    try:
        measurement = GenerationRunner(tiny_pipe, "cpu").measure(
            SPEC, synthetic_portrait(64, 64), warmup=0, repeats=2
        )
    finally:
        handle.remove()
    assert measurement.outcome == "oom"
    assert measurement.oom.stage == stage and measurement.oom.step == step
    assert "Tried to allocate" in measurement.oom.message
    # the pipeline still works afterwards
    again = GenerationRunner(tiny_pipe, "cpu").measure(
        SPEC, synthetic_portrait(64, 64), warmup=0, repeats=1
    )
    assert again.outcome == "ok"


def test_host_memory_error_counts_as_oom(tiny_pipe) -> None:
    def explode(*_: object) -> None:
        raise MemoryError()

    handle = tiny_pipe.unet.register_forward_pre_hook(explode)
    try:
        measurement = GenerationRunner(tiny_pipe, "cpu").measure(
            SPEC, synthetic_portrait(64, 64), warmup=0, repeats=1
        )
    finally:
        handle.remove()
    assert measurement.outcome == "oom" and measurement.oom.message == "MemoryError"


def test_other_errors_propagate(tiny_pipe) -> None:
    def explode(*_: object) -> None:
        raise ValueError("boom in a step")

    handle = tiny_pipe.unet.register_forward_pre_hook(explode)
    try:
        with pytest.raises(ValueError, match="boom in a step"):
            GenerationRunner(tiny_pipe, "cpu").measure(
                SPEC, synthetic_portrait(64, 64), warmup=0, repeats=1
            )
    finally:
        handle.remove()


def test_synthetic_portrait_is_deterministic() -> None:
    assert np.array_equal(np.asarray(synthetic_portrait()), np.asarray(synthetic_portrait()))
    assert synthetic_portrait().size == (768, 768)


def test_input_image_errors(tmp_path) -> None:
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    with pytest.raises(I2VUsageError, match="not an image Pillow can read"):
        load_input_image(bad)
    with pytest.raises(I2VUsageError, match="no such file"):
        load_input_image(tmp_path / "missing.png")
    good = tmp_path / "in.png"
    synthetic_portrait(40, 30).save(good)
    assert load_input_image(good).size == (40, 30)
