"""The pipelines that replaced I2VGen-XL (SVD, Wan 2.1/2.2, LTX-Video, CogVideoX, HunyuanVideo-I2V)
at their native settings, each with its declared VRAM budget (see study.yaml)."""

from pathlib import Path

import pytest

from pytest_i2v import Study

STUDY = Study.load(Path(__file__).with_name("study.yaml"))

pytestmark = pytest.mark.pipelines


def _case(name: str, entry: dict):
    arguments = {k: v for k, v in entry.items() if k != "vram_gb"}
    marks = [pytest.mark.i2v(**arguments)]
    if "vram_gb" in entry:
        marks.append(pytest.mark.vram_budget(entry["vram_gb"]))
    return pytest.param(entry["pipeline"], marks=marks, id=name)


@pytest.mark.parametrize(
    "pipeline", [_case(name, entry) for name, entry in STUDY.pipelines.items()]
)
def test_pipeline_native(pipeline, i2v_run):
    result = i2v_run()
    assert result.outcome == "ok"
    assert result.config["pipeline"] == pipeline
    assert len(result.stages.step_samples_s[0]) == result.config["steps"]
