"""The study's main table: 256p, 512p, 768p and 1024p at 16 frames, 50 steps, guidance 9.0, fps 8.

On the `cpu` profile the sizes and steps are scaled down (see the report header)."""

import pytest

RESOLUTIONS = ["256p", "512p", "768p", "1024p"]


@pytest.mark.parametrize(
    "resolution",
    [pytest.param(r, marks=pytest.mark.i2v(resolution=r, frames=16, steps=50, guidance=9.0, fps=8), id=r) for r in RESOLUTIONS],
)
def test_resolution_sweep(resolution, i2v_run):
    result = i2v_run()
    assert result.outcome == "ok"
    assert result.stages["step_s"] > 0
