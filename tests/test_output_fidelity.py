"""A test's output, reduced (``measure.output``), and judged against a reference
(``record.output``, ``verdict.fidelity``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import i2v
from pytest_i2v.measure.output import (
    LONG_SIDE,
    MAX_FRAMES,
    kept_frame_indices,
    reduce_output,
)
from pytest_i2v.measure.runner import GenerationRunner, generate
from pytest_i2v.record.output import compare_outputs, unpack_output
from pytest_i2v.verdict.fidelity import FidelityBar, FidelityFigures

SPEC = i2v(width=32, height=32, frames=4, steps=3)
LOSSLESS = FidelityBar(min_psnr_db=60.0, min_ssim=0.99)


def _video(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth video (gradients that move): what a decoder produces, not white noise."""
    rows = np.linspace(0.0, 1.0, height)[:, None]
    cols = np.linspace(0.0, 1.0, width)[None, :]
    video = np.empty((1, frames, height, width, 3), dtype=np.float32)
    for f in range(frames):
        for c in range(3):
            video[0, f, :, :, c] = 0.5 + 0.4 * np.sin(6 * rows + 4 * cols + f * 0.3 + c + seed)
    return video


def test_the_kept_frames_are_evenly_spaced_with_the_first_and_the_last() -> None:
    assert kept_frame_indices(4) == [0, 1, 2, 3]
    kept = kept_frame_indices(81)
    assert len(kept) == MAX_FRAMES and kept[0] == 0 and kept[-1] == 80
    assert kept == sorted(set(kept))


def test_the_reference_is_downscaled_uint8_and_unpacks_to_what_it_packed() -> None:
    video = _video(16, 480, 832)
    reference = reduce_output(video)
    assert reference.generated_shape == [16, 480, 832, 3]
    assert reference.shape == [MAX_FRAMES, 37, LONG_SIDE, 3]  # 480 * 64 / 832 = 36.9
    pixels = unpack_output(reference)
    assert pixels.dtype == np.uint8 and list(pixels.shape) == reference.shape
    # area averaging of a smooth picture keeps its values: the first frame's mean, to a level
    assert abs(pixels[0].mean() / 255.0 - video[0, 0].mean()) < 2 / 255
    assert len(reference.packed) < 64 * 1024


def test_the_same_output_is_identical_and_holds_any_bar() -> None:
    video = _video(4, 64, 64)
    figures = compare_outputs(reduce_output(video), reduce_output(video.copy()))
    assert figures.identical and figures.min_psnr_db is None and figures.cosine == 1.0
    assert LOSSLESS.held(figures) and figures.summary() == "identical, 4 frames"


def test_a_level_in_one_pixel_is_seen_and_still_holds_the_lossless_bar() -> None:
    video = _video(4, 64, 64)
    nudged = video.copy()
    nudged[0, 2, 10, 10, 0] += 1.0 / 255.0
    figures = compare_outputs(reduce_output(video), reduce_output(nudged))
    assert not figures.identical and figures.min_psnr_db is not None
    assert figures.min_psnr_db > 80.0 and LOSSLESS.held(figures)


def test_another_video_fails_the_bar_and_says_by_how_much() -> None:
    base, other = _video(4, 64, 64), _video(4, 64, 64, seed=2)
    figures = compare_outputs(reduce_output(base), reduce_output(other))
    assert figures.min_psnr_db is not None and figures.min_psnr_db < 30.0
    assert figures.mean_ssim is not None and figures.mean_ssim < 0.99
    assert not LOSSLESS.held(figures)
    text = LOSSLESS.describe(figures)
    assert text.startswith(f"PSNR {figures.min_psnr_db:.1f} dB < 60.0 dB, SSIM ")
    assert text.endswith("against the reference's output, 4 frames")


def test_another_shape_never_holds() -> None:
    figures = compare_outputs(reduce_output(_video(4, 64, 64)), reduce_output(_video(5, 64, 64)))
    assert figures.shape_changed and not LOSSLESS.held(figures)
    assert figures.summary() == "the output's shape changed"


def test_frames_below_the_ssim_window_are_judged_by_psnr_alone() -> None:
    small, other = _video(2, 8, 8), _video(2, 8, 8, seed=1)
    figures = compare_outputs(reduce_output(small), reduce_output(other))
    assert figures.mean_ssim is None and figures.min_psnr_db is not None
    held = FidelityFigures(2, False, 70.0, None, 0.99)
    assert LOSSLESS.held(held) and not LOSSLESS.held(replace(held, min_psnr_db=59.9))


def test_a_measurement_keeps_its_first_measured_output(tiny_pipe) -> None:
    image = synthetic_portrait(64, 64)
    measurement = GenerationRunner(tiny_pipe, "cpu").measure(SPEC, image, warmup=1, repeats=2)
    assert measurement.output is not None
    assert measurement.output.generated_shape == [4, 32, 32, 3]
    assert measurement.output.latents_packed is None  # I2VGen-XL hands no latents per step
    again = reduce_output(generate(tiny_pipe, SPEC, image))
    assert compare_outputs(measurement.output, again).identical  # the same seed, the same video


def test_skipping_every_other_denoiser_call_is_seen_on_the_tiny_model(tiny_pipe) -> None:
    """Random weights: the denoiser moves the output little (about 43 dB on 64x64, 10 steps), so
    only a bar set from unchanged code's repeatability (identical on the CPU) sees it."""
    image, spec = synthetic_portrait(64, 64), replace(SPEC, steps=6)
    base = reduce_output(generate(tiny_pipe, spec, image))
    calls: list[object] = []

    def reuse_every_other(module: object, args: object, output: object) -> object:
        calls.append(output)
        return calls[-2] if len(calls) % 2 == 0 else output

    handle = tiny_pipe.unet.register_forward_hook(reuse_every_other)
    try:
        cached = reduce_output(generate(tiny_pipe, spec, image))
    finally:
        handle.remove()
    figures = compare_outputs(base, cached)
    assert not figures.identical and not LOSSLESS.held(figures)
