"""Memory-saving options of the large pipelines (offload, group offload, fp8 layerwise casting, VAE
tiling), each against the plain run of the same pipeline at its native settings."""

from pathlib import Path

import pytest

from pytest_i2v import Study

STUDY = Study.load(Path(__file__).with_name("study.yaml"))
CONFIG = STUDY.pipeline_memory_options

pytestmark = pytest.mark.pipeline_memory_options


@pytest.mark.parametrize(
    ("pipeline", "option"),
    [
        pytest.param(
            p,
            o,
            marks=pytest.mark.i2v(pipeline=p, memory=[] if o == "none" else [o]),
            id=f"{p}-{o}",
        )
        for p in CONFIG.get("pipelines", [])
        for o in CONFIG.get("options", [])
    ],
)
def test_pipeline_memory_option(pipeline, option, i2v_run):
    result = i2v_run()
    assert result.outcome == "ok"
    assert result.config["pipeline"] == pipeline
    assert result.config["memory"] == ([] if option == "none" else [option])
