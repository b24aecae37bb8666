"""A good pytest citizen: installed, the plugin costs nothing until an i2v test is collected, and
the review CLI reads results without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.report_fixtures import document

HEAVY = ("torch", "diffusers", "transformers", "pynvml")


def imported(stderr: str) -> set[str]:
    """Top-level modules in ``python -X importtime`` output."""
    return {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_an_unrelated_project_imports_nothing_heavy_and_reads_no_baseline(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "cpu.yaml").write_text("{this is: not: valid yaml [")
    completed = run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--gpu-profile", "rtx4090"], tmp_path
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "1 passed" in completed.stdout
    assert not set(HEAVY) & imported(completed.stderr)
    assert "pytest_i2v" in imported(completed.stderr)  # the plugin was loaded, just dormant


def test_an_explicit_unknown_profile_is_still_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    completed = run(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--gpu-profile", "rtx9090"], tmp_path
    )
    assert completed.returncode == pytest.ExitCode.USAGE_ERROR
    assert "unknown GPU profile 'rtx9090'" in completed.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["report", "r.json", "-o", "r.html", "--markdown", "r.md"],
        ["compare", "r.json", "r.json"],
        ["recommend", "r.json"],
    ],
)
def test_the_review_cli_imports_no_torch(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "r.json").write_text(json.dumps(document()))
    completed = run(["-m", "pytest_i2v", *command], tmp_path)
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    assert not set(HEAVY) & imported(completed.stderr), sorted(
        set(HEAVY) & imported(completed.stderr)
    )


def test_baseline_show_and_diff_import_no_torch(tmp_path: Path) -> None:
    golden = Path(__file__).parent / "golden" / "baseline.yaml"
    for command in (
        ["baseline", "show", str(golden)],
        ["baseline", "diff", str(golden), str(golden)],
    ):
        completed = run(["-m", "pytest_i2v", *command], tmp_path)
        assert completed.returncode in (0, 1), completed.stderr[-2000:]
        assert not set(HEAVY) & imported(completed.stderr), (
            command,
            sorted(set(HEAVY) & imported(completed.stderr)),
        )
