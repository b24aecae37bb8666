"""The study's main table: 256p, 512p, 768p and 1024p at 16 frames, 50 steps, guidance 9.0,
fps 8."""

from pathlib import Path

import pytest

from pytest_i2v import Study

STUDY = Study.load(Path(__file__).with_name("study.yaml"))

pytestmark = pytest.mark.sweep


def _case(resolution: str):
    marks = [pytest.mark.i2v(resolution=resolution, **STUDY.defaults)]
    if resolution in STUDY.vram_budgets_gb:
        marks.append(pytest.mark.vram_budget(STUDY.vram_budgets_gb[resolution]))
    return pytest.param(resolution, marks=marks, id=resolution)


@pytest.mark.parametrize("resolution", [_case(r) for r in STUDY.resolution_sweep])
def test_resolution_sweep(resolution, i2v_run):
    result = i2v_run()
    assert result.outcome == "ok"
    assert result.stages.step_s and result.stages.step_s > 0
