"""``python -m pytest_i2v init``: the starter it writes collects and calls the reusable gate with
inputs it has; it overwrites nothing (all four files or none); a bad flag is one line and exit 4."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_i2v.cli import USAGE_ERROR, main
from pytest_i2v.starter.plan import FILES

ROOT = Path(__file__).resolve().parents[1]


def _init(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_i2v", "init", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_init_writes_a_starter_that_collects(tmp_path: Path) -> None:
    completed = _init(
        "--pipeline",
        "wan2.1-i2v",
        "--model",
        "tiny",
        "--size",
        "256x128",
        "--frames",
        "17",
        "--steps",
        "8",
        "--vram-budget",
        "20",
        "--profiles",
        "cpu,rtx4090",
        "--dir",
        str(tmp_path),
        "--workflow-ref",
        "acme/pytest-i2v@v0.1.0",
    )
    assert completed.returncode == 0, completed.stderr
    assert sorted(
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()
    ) == sorted(FILES)
    assert (
        all(path in completed.stdout for path in FILES)
        and "--i2v-update-baselines" in completed.stdout
    )
    test = (tmp_path / "tests" / "test_i2v.py").read_text()
    assert (
        '@pytest.mark.vram_budget(20)\n@pytest.mark.i2v(pipeline="wan2.1-i2v", '
        "width=256, height=128, " in test
    )
    assert "frames=17, steps=8" in test and "def test_i2v(i2v_run):" in test
    ini = (tmp_path / "pytest.ini").read_text()
    assert "i2v_model = tiny\n" in ini and "i2v_pipeline = wan2.1-i2v\n" in ini
    assert "def pytest_i2v_wrap_pipeline(pipe, key):" in (tmp_path / "conftest.py").read_text()
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "tests/test_i2v.py::test_i2v" in collected.stdout

    caller = yaml.safe_load((tmp_path / ".github" / "workflows" / "i2v.yml").read_text())
    job = caller["jobs"]["i2v"]
    assert job["uses"] == "acme/pytest-i2v/.github/workflows/i2v-gate.yml@v0.1.0"
    gate = yaml.safe_load((ROOT / ".github" / "workflows" / "i2v-gate.yml").read_text())
    inputs = (gate[True] if True in gate else gate["on"])["workflow_call"]["inputs"]
    assert set(job["with"]) <= set(inputs)  # every input the caller passes exists
    assert job["with"]["profiles"] == '["cpu", "rtx4090"]' and job["with"]["model"] == "tiny"
    assert job["with"]["torch_index_url"].startswith(
        "https://download.pytorch.org/whl/cu"
    )  # a GPU profile
    assert caller["permissions"]["pull-requests"] == "write"
    actionlint = shutil.which("actionlint") or str(Path(sys.executable).with_name("actionlint"))
    linted = subprocess.run(
        [actionlint, str(tmp_path / ".github" / "workflows" / "i2v.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_init_writes_the_pipeline_class_and_defaults_to_the_native_generation(
    tmp_path: Path,
) -> None:
    assert (
        main(
            [
                "init",
                "--pipeline",
                "svd",
                "--pipeline-class",
                "acme.video:AcmeSVD",
                "--dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    ini = (tmp_path / "pytest.ini").read_text()
    assert "i2v_pipeline_class = svd=acme.video:AcmeSVD\n" in ini
    assert (
        "# i2v_model = stabilityai/stable-video-diffusion-img2vid-xt" in ini
    )  # unset: each profile's
    assert (
        "width=1024, height=576, frames=25, steps=25"
        in (tmp_path / "tests" / "test_i2v.py").read_text()
    )
    caller = yaml.safe_load((tmp_path / ".github" / "workflows" / "i2v.yml").read_text())["jobs"][
        "i2v"
    ]["with"]
    assert (
        caller["runner_labels"] == '["ubuntu-latest"]' and "model" not in caller
    )  # cpu only by default


def test_init_refuses_to_overwrite_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    assert main(["init", "--pipeline", "i2vgen-xl", "--dir", str(tmp_path)]) == USAGE_ERROR
    err = capsys.readouterr().err
    assert (
        err == f"error: refusing to overwrite {tmp_path / 'pytest.ini'}; move them away "
        f"(nothing was written), "
        f"or run init with --dir elsewhere\n"
    )
    assert [p.name for p in tmp_path.rglob("*")] == ["pytest.ini"]
    assert (tmp_path / "pytest.ini").read_text() == "[pytest]\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [],
            "--pipeline is required; use one of i2vgen-xl, svd, wan2.1-i2v, wan2.2-i2v, "
            "ltx-video, cogvideox-i2v, "
            "hunyuanvideo-i2v",
        ),
        (
            ["--pipeline", "wan3"],
            "--pipeline 'wan3' is not a known pipeline; use one of i2vgen-xl, svd, wan2.1-i2v, "
            "wan2.2-i2v, ltx-video, cogvideox-i2v, hunyuanvideo-i2v",
        ),
        (
            ["--pipeline", "wan2.1-i2v", "--size", "830x480"],
            "--size: width=830 is not a multiple of 16 (try 816 or 832): wan2.1-i2v "
            "needs sizes divisible by 16, "
            "frames = 4k+1 (native wan2.1-i2v: --size 832x480 --frames 81 --steps 40)",
        ),
        (
            ["--pipeline", "wan2.1-i2v", "--frames", "16"],
            "--frames: frames=16 breaks frames = 4k+1 (try 13 or 17): wan2.1-i2v needs "
            "sizes divisible by 16, "
            "frames = 4k+1 (native wan2.1-i2v: --size 832x480 --frames 81 --steps 40)",
        ),
        (
            ["--pipeline", "svd", "--size", "1024"],
            "--size '1024': use WxH, e.g. --size 1024x576 (svd's native size)",
        ),
        (
            ["--pipeline", "i2vgen-xl", "--profiles", "cpu,rtx9090"],
            "--profiles: 'rtx9090' is not a GPU profile; use any of a100-40gb, "
            "a100-80gb, a10g, cpu, h100-80gb, "
            "h100-nvl, h100-pcie, h100-sxm, h200, h200-nvl, l4, rtx3060-12gb, "
            "rtx4070-12gb, rtx4080-16gb, rtx4090 "
            "(comma-separated)",
        ),
        (
            ["--pipeline", "svd", "--model", "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"],
            "--model Wan-AI/Wan2.1-I2V-14B-480P-Diffusers: that is wan2.1-i2v's "
            "checkpoint, not svd's; pass --pipeline "
            "wan2.1-i2v, or --model stabilityai/stable-video-diffusion-img2vid-xt",
        ),
        (
            ["--pipeline", "svd", "--vram-budget", "0"],
            "--vram-budget 0: vram_budget(0.0): the budget must be a positive number",
        ),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["init", *argv, "--dir", str(tmp_path)]) == USAGE_ERROR
    assert capsys.readouterr().err == f"error: {message}\n"
    assert list(tmp_path.iterdir()) == []
