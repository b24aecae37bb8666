"""The environment fingerprint survives a broken cuDNN, the fp32 roofline knows TF32, and the
H100/H200 form factors (SXM, PCIe, NVL) are told apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.measure.environment import collect_environment
from pytest_i2v.measure.flops import (
    FlopCount,
    matmul_precision_state,
    peak_key_for,
    roofline,
    roofline_peak,
)
from pytest_i2v.profiles import load_profiles, pick_profile

# ---------------------------------------------------------------------------- defect 10 (a): cuDNN


def test_collect_environment_survives_a_cudnn_version_that_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> int:
        raise RuntimeError("cuDNN version incompatibility")

    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", broken)
    environment = collect_environment("cpu")
    assert environment["cudnn"] is None
    assert environment["torch"] == str(torch.__version__)  # the rest is still collected


def test_collect_environment_with_a_cudnn_version_of_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: None)
    assert collect_environment("cpu")["cudnn"] is None


# ---------------------------------------------------------------------------- defect 10 (b): TF32


@pytest.mark.parametrize(
    ("dtype", "precision", "allow_tf32", "expected"),
    [
        ("fp32", "highest", False, "fp32"),  # PyTorch's default: plain FP32 cores
        ("fp32", "high", False, "tf32"),
        ("fp32", "medium", False, "tf32"),
        ("fp32", "highest", True, "tf32"),  # the older switch alone
        ("fp32", "high", True, "tf32"),
        ("fp16", "high", True, "fp16"),  # TF32 only concerns fp32 matmuls
        ("bf16", "medium", False, "bf16"),
        ("fp16", "highest", False, "fp16"),
    ],
)
def test_peak_key_for(dtype: str, precision: str, allow_tf32: bool, expected: str) -> None:
    assert peak_key_for(dtype, precision, allow_tf32) == expected


@pytest.fixture
def restore_matmul_precision() -> Iterator[None]:
    precision, allow = torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32
    yield
    torch.set_float32_matmul_precision(precision)
    torch.backends.cuda.matmul.allow_tf32 = allow


def test_matmul_precision_state_reads_torch(restore_matmul_precision: None) -> None:
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    assert matmul_precision_state() == ("highest", False)
    torch.set_float32_matmul_precision("high")
    precision, allow = matmul_precision_state()
    assert precision == "high" and peak_key_for("fp32", precision, allow) == "tf32"


def test_matmul_precision_state_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> str:
        raise RuntimeError("no such backend")

    monkeypatch.setattr(torch, "get_float32_matmul_precision", broken)
    precision, allow = matmul_precision_state()
    assert precision == "highest" and isinstance(allow, bool)


def test_roofline_records_the_peak_it_used() -> None:
    flops = FlopCount(unet_step=int(2e12), decode=int(1e12))
    result = roofline(flops, 0.01, 0.5, 400.0, peak_kind="tf32")
    assert (
        result is not None
        and result.peak_kind == "tf32"
        and result.efficiency == pytest.approx(0.5)
    )
    legacy = roofline(flops, 0.01, 0.5, 400.0)  # the old positional call still works
    assert legacy is not None and legacy.peak_kind is None


def test_roofline_peak_uses_tf32_when_on_and_falls_back_to_fp32() -> None:
    peaks = {"fp16": 312.0, "fp32": 19.5, "tf32": 156.0}
    assert roofline_peak(peaks, "fp32", "high", False) == (156.0, "tf32")
    assert roofline_peak(peaks, "fp32", "highest", False) == (19.5, "fp32")
    assert roofline_peak(peaks, "fp16", "high", True) == (312.0, "fp16")
    assert roofline_peak({"fp32": 30.0}, "fp32", "high", True) == (
        30.0,
        "fp32",
    )  # no published TF32 figure
    assert roofline_peak({}, "fp32", "high", True) == (None, "fp32")


def test_profiles_tf32_peaks_are_published_and_above_plain_fp32() -> None:
    profiles = load_profiles()
    with_tf32 = {
        name: p
        for name, p in profiles.items()
        if "tf32" in p.peak_tflops and "fp32" in p.peak_tflops
    }
    assert {
        "a100-40gb",
        "a100-80gb",
        "h100-sxm",
        "h100-pcie",
        "h100-nvl",
        "h200",
        "h200-nvl",
        "l4",
        "rtx4090",
    } <= set(with_tf32)
    for name, profile in with_tf32.items():
        # Ada/Ampere GeForce cards: dense TF32 tensor throughput equals their FP32 CUDA-core rate
        # (the whitepapers list 82.6 and 82.6 for the 4090); data-center cards are far above.
        assert profile.peak_tflops["tf32"] >= profile.peak_tflops["fp32"], name
        if not name.startswith("rtx"):
            assert profile.peak_tflops["tf32"] > profile.peak_tflops["fp32"], name
        assert profile.peak_tflops["tf32"] <= profile.peak_tflops["fp16"], (
            name
        )  # half the FP16 rate or less
    assert profiles["a100-80gb"].peak_tflops["tf32"] == pytest.approx(156.0)
    assert profiles["h100-sxm"].peak_tflops["tf32"] == pytest.approx(494.7)


def test_a_tf32_peak_key_is_valid_in_a_user_profile(tmp_path: Path) -> None:
    directory = tmp_path
    (directory / "x.yaml").write_text(
        "name: x\nmemory_gb: 8\nmatch: ['X']\npeak_tflops: {fp32: 10, tf32: 20}\n"
    )
    assert load_profiles(directory)["x"].peak_tflops["tf32"] == 20.0
    (directory / "x.yaml").write_text(
        "name: x\nmemory_gb: 8\nmatch: ['X']\npeak_tflops: {fp8: 10}\n"
    )
    with pytest.raises(I2VUsageError, match="peak_tflops must map fp16/bf16/fp32/tf32"):
        load_profiles(directory)


# ---------------------------------------------------------------- defect 10 (c): SXM vs PCIe vs NVL


@pytest.mark.parametrize(
    ("name", "memory_gib", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", 79.2, "h100-sxm"),
        ("NVIDIA H100 PCIe", 79.2, "h100-pcie"),
        ("NVIDIA H100 NVL", 93.6, "h100-nvl"),
        ("NVIDIA H200", 139.8, "h200"),
        ("NVIDIA H200 NVL", 139.8, "h200-nvl"),
    ],
)
def test_auto_tells_sxm_pcie_and_nvl_apart(name: str, memory_gib: float, expected: str) -> None:
    assert pick_profile("auto", load_profiles(), name, memory_gib).name == expected


def test_form_factors_carry_their_own_peaks() -> None:
    profiles = load_profiles()
    sxm, pcie, nvl = profiles["h100-sxm"], profiles["h100-pcie"], profiles["h100-nvl"]
    assert sxm.peak_tflops["fp16"] == pytest.approx(989.4)
    assert pcie.peak_tflops["fp16"] == pytest.approx(756.5)
    assert nvl.peak_tflops["fp16"] == pytest.approx(835.5)
    assert (
        sxm.memory_bandwidth_gbs == 3350
        and pcie.memory_bandwidth_gbs == 2000
        and nvl.memory_bandwidth_gbs == 3900
    )
    assert profiles["h200"].peak_tflops["fp16"] != profiles["h200-nvl"].peak_tflops["fp16"]


def test_h100_80gb_stays_an_alias_of_the_sxm_profile() -> None:
    profiles = load_profiles()
    alias = pick_profile("h100-80gb", profiles, "NVIDIA H100 80GB HBM3", 79.2)
    assert (
        alias.name == "h100-80gb"
    )  # baselines/h100-80gb.yaml and the gpu-h100-80gb runners keep working
    assert alias.alias_of == "h100-sxm" and alias.peak_tflops == profiles["h100-sxm"].peak_tflops
    with pytest.raises(I2VUsageError, match="--gpu-profile h100-80gb expects"):
        pick_profile(
            "h100-80gb", profiles, "NVIDIA H100 PCIe", 79.2
        )  # it no longer passes for a PCIe card


def test_an_explicit_sxm_profile_refuses_the_nvl_card() -> None:
    profiles = load_profiles()
    with pytest.raises(I2VUsageError, match="--gpu-profile h200 expects"):
        pick_profile("h200", profiles, "NVIDIA H200 NVL", 139.8)
    with pytest.raises(I2VUsageError, match="--gpu-profile h100-sxm expects"):
        pick_profile("h100-sxm", profiles, "NVIDIA H100 PCIe", 79.2)
