"""The full-size random-weights model is built in the requested dtype, every component, every
parameter (the shipped encoder configs say ``torch_dtype: float16``, which transformers would
otherwise honour), and offload keys build it on the CPU before placing it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
import torch

from pytest_i2v.pipelines.loading import TORCH_DTYPES, PipelineKey, load_pipeline

COMPONENTS = ("unet", "vae", "text_encoder", "image_encoder")


def _wrong_dtypes(module: torch.nn.Module, dtype: torch.dtype) -> list[str]:
    """Names of parameters and floating buffers that are not in ``dtype`` (integer buffers,
    such as CLIP's position ids, are not weights and keep their integer dtype)."""
    wrong = [f"{name}: {p.dtype}" for name, p in module.named_parameters() if p.dtype != dtype]
    wrong += [
        f"{name}: {b.dtype}"
        for name, b in module.named_buffers()
        if b.is_floating_point() and b.dtype != dtype
    ]
    return wrong


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_every_fullsize_component_is_built_in_the_requested_dtype(dtype: str) -> None:
    from pytest_i2v.pipelines.i2vgen_xl_fullsize import build_fullsize_modules

    modules = build_fullsize_modules("meta", TORCH_DTYPES[dtype])
    assert set(modules) == set(COMPONENTS)
    for name, module in modules.items():
        wrong = _wrong_dtypes(module, TORCH_DTYPES[dtype])
        assert not wrong, f"{name} has {len(wrong)} tensors not in {dtype}, e.g. {wrong[:3]}"


def test_a_config_dtype_that_slips_through_is_still_overruled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second guard: with the config's ``torch_dtype: float16`` kept, the image encoder
    comes out partly fp16 from transformers, and the build casts it to the requested dtype."""
    import pytest_i2v.pipelines.base as base
    import pytest_i2v.pipelines.i2vgen_xl_fullsize as fullsize

    monkeypatch.setattr(
        base, "_DTYPE_KEYS", ()
    )  # read_config, shared by every pipeline, keeps them
    modules = fullsize.build_fullsize_modules("meta", torch.float32)
    for name, module in modules.items():
        assert not _wrong_dtypes(module, torch.float32), name


def test_building_leaves_the_default_dtype_alone() -> None:
    from pytest_i2v.pipelines.i2vgen_xl_fullsize import build_fullsize_modules

    before = torch.get_default_dtype()
    build_fullsize_modules("meta", torch.bfloat16)
    assert torch.get_default_dtype() == before


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_fullsize_pipeline_components_all_have_the_requested_dtype(
    dtype: str, tmp_path: Path
) -> None:
    from pytest_i2v.pipelines.i2vgen_xl_fullsize import build_fullsize_pipeline

    pipe = build_fullsize_pipeline("meta", TORCH_DTYPES[dtype], tmp_path)
    for name in COMPONENTS:
        module = getattr(pipe, name)
        wrong = _wrong_dtypes(module, TORCH_DTYPES[dtype])
        assert not wrong, f"pipe.{name} has {len(wrong)} tensors not in {dtype}, e.g. {wrong[:3]}"
    assert pipe.dtype == TORCH_DTYPES[dtype]


# The real 2.5 B-parameter model on the CPU: ~10 GB of RAM in fp32 and about a minute per dtype
# on two cores. It is the acceptance check, so it runs in every CI run, in a child process:
# the 10 GB it leaves in the allocator's arenas would hide other tests' host-RSS peaks.
GENERATE = """
import sys
from pathlib import Path

import torch

from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import i2v
from pytest_i2v.measure.runner import generate
from pytest_i2v.pipelines.loading import TORCH_DTYPES, PipelineKey, load_pipeline

dtype, work = sys.argv[1], Path(sys.argv[2])
loaded = load_pipeline(PipelineKey(source="random", dtype=dtype, device="cpu"), work)
for name in ("unet", "vae", "text_encoder", "image_encoder"):
    module = getattr(loaded.pipe, name)
    wrong = [n for n, t in [*module.named_parameters(), *module.named_buffers()]
             if t.is_floating_point() and t.dtype != TORCH_DTYPES[dtype]]
    assert not wrong, f"pipe.{name} has {len(wrong)} tensors not in {dtype}, e.g. {wrong[:3]}"
spec = i2v(width=64, height=64, frames=4, steps=2)
frames = generate(loaded.pipe, spec, synthetic_portrait(64, 64))
print("frames", tuple(frames.shape))
"""


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_random_fullsize_generates_in_requested_dtype(dtype: str, tmp_path: Path) -> None:
    """``--i2v-model random --i2v-dtype fp32`` (and bf16) runs a real generation on the CPU;
    it used to fail in ``_encode_image`` with ``Half != float`` (an fp16 image encoder)."""
    completed = subprocess.run(
        [sys.executable, "-c", GENERATE, dtype, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "frames (1, 4, 64, 64, 3)" in completed.stdout


# --- Defect 8: offload keys build on the CPU, then place the model as the option says ----------


def test_build_device_for_offload_keys_is_the_cpu() -> None:
    from pytest_i2v.pipelines.loading import build_device_for

    assert (
        build_device_for(PipelineKey("random", "fp16", "cuda:1", offload="model_cpu_offload"))
        == "cpu"
    )
    assert (
        build_device_for(PipelineKey("random", "fp16", "cuda:1", offload="sequential_cpu_offload"))
        == "cpu"
    )
    assert build_device_for(PipelineKey("random", "fp16", "cuda:1")) == "cuda:1"
    assert build_device_for(PipelineKey("random", "fp32", "cpu")) == "cpu"


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the 2.5 B-parameter build with a recording fake pipe."""
    import pytest_i2v.pipelines.i2vgen_xl_fullsize as fullsize

    record: dict[str, Any] = {}

    def build(device: str, dtype: torch.dtype, work_dir: Path) -> Any:
        record["device"], record["dtype"] = device, dtype
        record["pipe"] = MagicMock(name="I2VGenXLPipeline")
        return record["pipe"]

    monkeypatch.setattr(fullsize, "build_fullsize_pipeline", build)
    return record


@pytest.mark.parametrize(
    "offload, method",
    [
        ("model_cpu_offload", "enable_model_cpu_offload"),
        ("sequential_cpu_offload", "enable_sequential_cpu_offload"),
    ],
)
def test_random_offload_key_builds_on_cpu_then_offloads_to_the_device(
    offload: str, method: str, fake_build: dict[str, Any], tmp_path: Path
) -> None:
    loaded = load_pipeline(
        PipelineKey(source="random", dtype="fp16", device="cuda:1", offload=offload), tmp_path
    )
    assert fake_build["device"] == "cpu"
    assert fake_build["dtype"] == torch.float16
    pipe = fake_build["pipe"]
    assert loaded.pipe is pipe
    getattr(pipe, method).assert_called_once_with(device="cuda:1")
    other = {"enable_model_cpu_offload", "enable_sequential_cpu_offload"} - {method}
    getattr(pipe, other.pop()).assert_not_called()
    pipe.to.assert_not_called()


def test_random_key_without_offload_builds_on_the_device(
    fake_build: dict[str, Any], tmp_path: Path
) -> None:
    load_pipeline(PipelineKey(source="random", dtype="fp16", device="cuda:1"), tmp_path)
    assert fake_build["device"] == "cuda:1"
    pipe = fake_build["pipe"]
    pipe.to.assert_called_once_with("cuda:1")
    pipe.enable_model_cpu_offload.assert_not_called()
    pipe.enable_sequential_cpu_offload.assert_not_called()
