"""Memory-saving options at 768p, each measured against the plain run ("none"): memory saved vs
time added is computed in the report and the recommendation. The offload options need CUDA and
are skipped on the CPU with that reason. The study's "gradient checkpointing" is a training
technique (it trades recomputation in the backward pass); inference has no backward pass, so it
is not offered here."""

from pathlib import Path

import pytest

from pytest_i2v import Study

STUDY = Study.load(Path(__file__).with_name("study.yaml"))
CONFIG = STUDY.memory_options

pytestmark = pytest.mark.memory_options


@pytest.mark.parametrize(
    "option",
    [
        pytest.param(
            o,
            marks=pytest.mark.i2v(
                **STUDY.defaults, resolution=CONFIG["resolution"], memory=[] if o == "none" else [o]
            ),
            id=o,
        )
        for o in CONFIG["options"]
    ],
)
def test_memory_option(option, i2v_run):
    result = i2v_run()
    assert result.outcome == "ok"
    assert result.config["memory"] == ([] if option == "none" else [option])
