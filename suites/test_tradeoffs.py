"""Parameter trade-offs at 768p: the study's 16 vs 12 frames and 50 vs 40 steps, and a frames sweep
showing how time and memory scale with the number of frames."""

from pathlib import Path

import pytest

from pytest_i2v import Study

STUDY = Study.load(Path(__file__).with_name("study.yaml"))
CONFIG = STUDY.tradeoffs
RESOLUTION = CONFIG["resolution"]
BASE = {**STUDY.defaults, "resolution": RESOLUTION}

pytestmark = pytest.mark.tradeoffs


def _budget():
    budget = STUDY.vram_budgets_gb.get(RESOLUTION)
    return [pytest.mark.vram_budget(budget)] if budget else []


@pytest.mark.parametrize(
    "frames, steps",
    [
        pytest.param(
            c["frames"],
            c["steps"],
            marks=[pytest.mark.i2v(**{**BASE, **c}), *_budget()],
            id=f"{c['frames']}f-{c['steps']}steps",
        )
        for c in CONFIG["combos"]
    ],
)
def test_frames_steps_combo(frames, steps, i2v_run, i2v_spec):
    result = i2v_run()
    assert result.outcome == "ok"
    assert len(result.stages.step_samples_s[0]) == i2v_spec.steps


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param(f, marks=pytest.mark.i2v(**{**BASE, "frames": f}), id=f"{f}f")
        for f in CONFIG["frames_sweep"]
    ],
)
def test_frames_sweep(frames, i2v_run, i2v_spec):
    result = i2v_run()
    assert result.outcome == "ok"
    # the frames generated: the study's count, or the profile's scaled one (the cpu profile divides
    # by 4)
    assert result.config["frames"] == i2v_spec.frames
    assert result.gen_fps == pytest.approx(i2v_spec.frames / result.time_s)
