"""The final latents before decode, judged by PyTorch dynamo's accuracy rule: allclose at the
dtype's tolerance, else an RMSE within twice this code's own run-to-run RMSE and a cosine of at
least 0.99. The lossless bar holds them; a lossy test's latents move by design."""

from __future__ import annotations

import numpy as np
import torch

from pytest_i2v.measure.output import LATENT_VALUES, reduce_output
from pytest_i2v.record.output import compare_outputs
from pytest_i2v.verdict.fidelity import (
    FidelitySettings,
    fidelity_verdict,
    with_base,
)

FRAMES = np.random.default_rng(0).random((1, 4, 32, 32, 3), dtype=np.float32)
LATENTS = torch.randn(1, 16, 2, 8, 8, generator=torch.Generator().manual_seed(0))
SETTINGS = FidelitySettings()


def _figures(latents: torch.Tensor, frames: np.ndarray = FRAMES):  # type: ignore[no-untyped-def]
    return compare_outputs(reduce_output(FRAMES, LATENTS), reduce_output(frames, latents))


def test_the_same_latents_are_allclose_and_hold() -> None:
    figures = _figures(LATENTS.clone())
    assert figures.identical and figures.latents is not None
    assert figures.latents.allclose and figures.latents.held()
    assert fidelity_verdict(figures, SETTINGS.lossless, None) == "held"


def test_a_reordering_at_float32_rounding_stays_within() -> None:
    reordered = (LATENTS * 3.0 + 1.0 - 1.0) / 3.0  # rounding differs, values do not
    assert not torch.equal(reordered, LATENTS)
    latents = _figures(reordered).latents
    assert latents is not None and latents.allclose and latents.held()


def test_latents_the_frames_hide_still_fail_the_lossless_bar_and_not_the_lossy_one() -> None:
    """Random weights can saturate the decoder: the frames stay identical, the latents do not."""
    moved = LATENTS + 0.3 * torch.randn(LATENTS.shape, generator=torch.Generator().manual_seed(1))
    figures = _figures(moved)
    assert figures.identical  # the frames are this test's own: the decoder hid the change
    assert figures.latents is not None and not figures.latents.held()
    assert fidelity_verdict(figures, SETTINGS.lossless, None) == "changed"
    assert fidelity_verdict(figures, SETTINGS.lossy, None) == "held"
    line = SETTINGS.lossless.describe(figures, "the baseline's output")
    assert line.startswith("frames identical, latents cosine 0.9")
    assert "< 0.99" in line and line.endswith("against the baseline's output, 4 frames")


def test_a_multiple_of_the_codes_own_noise_is_allowed_and_beyond_it_is_not() -> None:
    """dynamo's multiplier: an RMSE up to twice the base's own (plus a tenth of the tolerance)."""
    noise = LATENTS + 1e-3 * torch.randn(LATENTS.shape, generator=torch.Generator().manual_seed(2))
    repeat = _figures(noise)  # this code's second run against its first
    assert repeat.latents is not None and not repeat.latents.allclose
    near = _figures(LATENTS + (noise - LATENTS) * 1.5)
    far = _figures(LATENTS + (noise - LATENTS) * 4.0)
    assert fidelity_verdict(near, SETTINGS.lossless, repeat) == "held"
    assert fidelity_verdict(near, SETTINGS.lossless, None) == "changed"  # no noise to allow
    assert fidelity_verdict(far, SETTINGS.lossless, repeat) == "changed"
    based = with_base(far, repeat).latents
    assert based is not None and "RMSE 4.0x the base's" in based.summary()


def test_nan_a_new_shape_or_dtype_never_holds() -> None:
    with_nan = LATENTS.clone()
    with_nan[0, 0, 0, 0, 0] = float("nan")
    nan_latents = _figures(with_nan).latents
    assert nan_latents is not None and nan_latents.nonfinite_added and not nan_latents.held()
    for other in (LATENTS[:, :8], LATENTS.to(torch.float64)):
        latents = _figures(other).latents
        assert latents is not None and latents.shape_changed and not latents.held()


def test_a_large_latent_keeps_an_even_sample_within_the_size_budget() -> None:
    big = torch.randn(1, 16, 21, 60, 104)  # Wan 2.1 480p, 81 frames: 2.1 M values
    reference = reduce_output(FRAMES, big)
    assert reference.latents_shape == [1, 16, 21, 60, 104]
    assert reference.latents_packed is not None
    assert len(reference.latents_packed) < 4 * LATENT_VALUES * 4 // 3 + 64  # float32, base64
    assert not reference.latents_nonfinite and reference.latents_dtype == "float32"


def test_outputs_without_latents_compare_their_frames_alone() -> None:
    figures = compare_outputs(reduce_output(FRAMES), reduce_output(FRAMES, LATENTS))
    assert figures.identical and figures.latents is None
