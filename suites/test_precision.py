"""fp32 vs fp16 vs bf16 at 512p. The study claims ~14.5 % from half precision; this measures it.
fp16 is skipped on the CPU (its kernels are missing or very slow there), not faked."""

from pathlib import Path

import pytest

from pytest_i2v import Study

STUDY = Study.load(Path(__file__).with_name("study.yaml"))
CONFIG = STUDY.precision

pytestmark = pytest.mark.precision


@pytest.mark.parametrize(
    "dtype",
    [
        pytest.param(
            d,
            marks=pytest.mark.i2v(**STUDY.defaults, resolution=CONFIG["resolution"], dtype=d),
            id=d,
        )
        for d in CONFIG["dtypes"]
    ],
)
def test_precision(dtype, i2v_run, i2v_pipeline):
    result = i2v_run()
    assert result.outcome == "ok"
    assert result.config["dtype"] == dtype
    expected = {"fp32": "torch.float32", "fp16": "torch.float16", "bf16": "torch.bfloat16"}[dtype]
    assert str(i2v_pipeline.unet.dtype) == expected
