"""Dynamic resolution: the output resolution is picked from the input image size and the memory
available (the study's rule, extended by memory), then generated and measured."""

from pathlib import Path

import pytest

from pytest_i2v import Study, pick_resolution, synthetic_portrait
from pytest_i2v import i2v as make_spec

STUDY = Study.load(Path(__file__).with_name("study.yaml"))

pytestmark = pytest.mark.dynamic_resolution


@pytest.mark.parametrize(
    "source", [pytest.param(s, id=s["name"]) for s in STUDY.dynamic_resolution["inputs"]]
)
def test_dynamic_resolution(source, i2v_profile, i2v_run, request):
    margin = request.config.getoption("safety_margin_gb") or 2.0
    image = synthetic_portrait(source["width"], source["height"])
    resolution = pick_resolution(
        image.width,
        image.height,
        available_gb=i2v_profile.memory_gb,
        peak_gb=STUDY.vram_budgets_gb,
        margin_gb=float(margin),
    )
    if resolution is None:
        pytest.skip(
            f"no resolution fits {i2v_profile.memory_gb:g} GB minus the {margin} GB safety margin"
        )
    by_size = "512p" if source["width"] * source["height"] < 600 * 600 else "768p"
    # the size rule decides, unless the profile's memory forces a step down
    assert resolution == by_size or STUDY.vram_budgets_gb[by_size] > i2v_profile.memory_gb - float(
        margin
    )
    record = i2v_run(spec=make_spec(resolution=resolution, **STUDY.defaults), image=image)
    assert record.outcome == "ok"
    assert record.config["resolution"] == resolution
