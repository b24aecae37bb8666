from __future__ import annotations

from pathlib import Path

import pytest

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.profiles import load_profiles, pick_profile
from pytest_i2v.storage import validate_profile_name

REQUIRED = {
    "rtx4090",
    "rtx3060-12gb",
    "rtx4070-12gb",
    "rtx4080-16gb",
    "l4",
    "a10g",
    "a100-40gb",
    "a100-80gb",
    "h100-sxm",
    "h100-pcie",
    "h100-nvl",
    "h100-80gb",
    "h200",
    "h200-nvl",
    "cpu",
}


def test_shipped_profiles_are_all_there_and_valid() -> None:
    profiles = load_profiles()
    assert REQUIRED <= set(profiles)
    assert profiles["rtx4090"].memory_gb == 24 and profiles["rtx4090"].dtype == "fp16"
    cpu = profiles["cpu"]
    assert cpu.device == "cpu" and cpu.model == "tiny" and not cpu.scaling.is_identity


@pytest.mark.parametrize(
    ("name", "memory_gib", "expected"),
    [
        (None, None, "cpu"),
        ("NVIDIA GeForce RTX 4090", 23.6, "rtx4090"),
        ("NVIDIA A100-SXM4-40GB", 39.4, "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", 79.2, "a100-80gb"),
        ("NVIDIA H100 80GB HBM3", 79.2, "h100-sxm"),  # h100-80gb is its alias, never picked by auto
        ("NVIDIA L4", 22.0, "l4"),
        ("NVIDIA A10G", 22.0, "a10g"),
        ("NVIDIA H200", 139.8, "h200"),
    ],
)
def test_auto_picks_the_profile_of_the_detected_gpu(
    name: str | None, memory_gib: float | None, expected: str
) -> None:
    assert pick_profile("auto", load_profiles(), name, memory_gib).name == expected


def test_auto_with_an_unknown_gpu_says_how_to_add_a_profile() -> None:
    with pytest.raises(
        I2VUsageError, match="no GPU profile matches the detected GPU 'NVIDIA L40S'"
    ):
        pick_profile("auto", load_profiles(), "NVIDIA L40S", 44.5)


def test_mismatch_is_a_usage_error_unless_allowed() -> None:
    profiles = load_profiles()
    with pytest.raises(
        I2VUsageError,
        match=(
            r"--gpu-profile rtx4090 expects a 24 GB GPU .* has no GPU"
            r".*--i2v-allow-profile-mismatch"
        ),
    ):
        pick_profile("rtx4090", profiles, None)
    assert pick_profile("rtx4090", profiles, None, allow_mismatch=True).name == "rtx4090"


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(
        I2VUsageError, match="unknown GPU profile 'rtx9090'; known profiles: a100-40gb, a100-80gb"
    ):
        pick_profile("rtx9090", load_profiles(), None)


@pytest.mark.parametrize("name", ["../etc", "a/b", "UPPER", "", ".hidden"])
def test_profile_names_cannot_escape_their_directory(name: str) -> None:
    with pytest.raises(I2VUsageError, match="not allowed"):
        validate_profile_name(name)


def test_user_profile_dir_adds_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "rtx5090.yaml").write_text(
        "name: rtx5090\nmemory_gb: 32\ndevice: cuda\nmatch: ['RTX 5090']\n"
        "model: ali-vilab/i2vgen-xl\ndtype: bf16\n"
    )
    profiles = load_profiles(tmp_path)
    assert profiles["rtx5090"].dtype == "bf16"
    assert pick_profile("auto", profiles, "NVIDIA GeForce RTX 5090", 31.4).name == "rtx5090"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: bad\nmemory_gb: -4\nmatch: ['X']\n", "memory_gb must be a positive number"),
        ("name: bad\nmatch: ['X']\n", "memory_gb must be a positive number"),
        ("name: other\nmemory_gb: 8\nmatch: ['X']\n", "must equal the file name"),
        ("name: bad\nmemory_gb: 8\n", "match must list"),
        ("name: bad\nmemory_gb: 8\nmatch: ['X']\ndtype: fp8\n", "dtype 'fp8' is unknown"),
        ("name: bad\nmemory_gb: [8\n", "not valid YAML"),
        ("- just a list\n", "must hold a mapping"),
        ("schema_version: 99\nname: bad\nmemory_gb: 8\nmatch: ['X']\n", "schema_version 99"),
    ],
)
def test_bad_profile_files_are_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(I2VUsageError, match=message):
        load_profiles(tmp_path)


def test_missing_profile_dir_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(I2VUsageError, match="is not a directory"):
        load_profiles(tmp_path / "nope")
