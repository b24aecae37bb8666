from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_i2v.cli import main
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.study.reference import SHIPPED_REFERENCE, compare_published, load_reference
from pytest_i2v.verdict.baseline_store import update_baseline
from tests.report_fixtures import document, two_pipeline_document
from tests.test_baseline_store import CONFIG, accepted


@pytest.fixture
def two_baselines(tmp_path: Path) -> tuple[Path, Path]:
    old = tmp_path / "old" / "cpu.yaml"
    new = tmp_path / "new" / "cpu.yaml"
    update_baseline(old, "cpu", [accepted("t::a", 1.0), accepted("t::gone", 1.0)])
    update_baseline(
        new,
        "cpu",
        [
            accepted(
                "t::a",
                1.2,
                fingerprint={
                    "driver": "560.35",
                    "torch": "2.13.0",
                    "dtype": "fp32",
                    "attention": "sdpa",
                },
            ),
            accepted("t::added", 2.0),
        ],
    )
    return old, new


def test_baseline_show(
    two_baselines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, _ = two_baselines
    assert main(["baseline", "show", "cpu", "--dir", str(old.parent)]) == 0
    out = capsys.readouterr().out
    assert "profile cpu: 2 entries" in out
    assert "| t::a | 64x64x16f 10 steps | 1 | 1 | 1.00 s | 50.0 ms | 500 MiB |" in out


def test_baseline_diff_between_files(
    two_baselines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = two_baselines
    assert main(["baseline", "diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "| t::a | 1 -> 1 runs | 1.00 s -> 1.20 s (+20.0 %) |" in out
    assert "driver 550.54 -> 560.35" in out
    assert "| t::added | added |" in out and "| t::gone | removed |" in out


def test_baseline_diff_against_results(
    two_baselines: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, _ = two_baselines
    results = tmp_path / "r.json"
    record = {
        "nodeid": "t::a",
        "outcome": "ok",
        "time_s": 2.0,
        "config": CONFIG,
        "stages": {"step_s": 0.1, "decode_s": 0.12},
        "peak_memory": {"host_rss_bytes": 500 * 2**20},
        "fingerprint": {
            "driver": "550.54",
            "torch": "2.13.0",
            "dtype": "fp32",
            "attention": "sdpa",
        },
    }
    results.write_text(
        json.dumps({"schema": "pytest-i2v/results", "schema_version": 1, "records": [record]})
    )
    assert main(["baseline", "diff", str(old), str(results)]) == 0
    out = capsys.readouterr().out
    assert "| t::a | regressed | 2.00 s (+100.0 %) |" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["baseline", "show", "nope"], "no baseline for profile 'nope'"),
        (["baseline", "show", "../x"], "not allowed"),
        (["baseline", "diff", "cpu"], "needs two arguments"),
    ],
)
def test_cli_usage_errors_exit_4(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "../x" must not exist (an existing path is read as a baseline file): run from an empty
    # directory
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert main([*argv, "--dir", str(tmp_path)]) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.fixture
def two_pipeline_results(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(two_pipeline_document()))
    return path


def test_recommend_prints_one_matrix_per_pipeline(
    two_pipeline_results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", str(two_pipeline_results)]) == 0
    out = capsys.readouterr().out
    assert out.index("## i2vgen-xl\n") < out.index("## svd\n")
    i2vgen, svd = out.split("## svd\n")
    # Each fitted on its own plain runs: I2VGen-XL's three sizes, svd's two.
    assert "over 3 points" in i2vgen and "over 2 points" not in i2vgen
    assert "over 2 points" in svd and "over 3 points" not in svd


def test_recommend_for_one_pipeline(
    two_pipeline_results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", str(two_pipeline_results), "--pipeline", "svd"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## svd\n") and "i2vgen-xl" not in out and "over 2 points" in out


@pytest.mark.parametrize(
    "name", ["nope", "ltx-video"]
)  # unknown, and known but not in these results
def test_recommend_for_a_pipeline_without_results_is_a_one_line_usage_error(
    name: str, two_pipeline_results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", str(two_pipeline_results), "--pipeline", name]) == 4
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert (
        captured.err.startswith(f"error: --pipeline {name!r}")
        and "pipelines present: i2vgen-xl, svd" in captured.err
    )


def test_recommend_on_a_document_from_before_pipelines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = document()
    for record in old["records"]:
        del record["config"]["pipeline"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert main(["recommend", str(path), "--pipeline", "i2vgen-xl"]) == 0
    assert capsys.readouterr().out.startswith("## i2vgen-xl\n")


def test_results_from_a_newer_plugin_are_refused(
    tmp_path: Path, two_baselines: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "future.json"
    path.write_text(
        json.dumps({"schema": "pytest-i2v/results", "schema_version": 99, "records": []})
    )
    assert main(["baseline", "diff", str(two_baselines[0]), str(path)]) == 4
    assert "newer than this plugin reads" in capsys.readouterr().err


def test_module_entry_point() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_i2v", "--help"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0 and "baseline" in completed.stdout


def test_published_reference_is_labelled_and_only_informs() -> None:
    reference = load_reference(SHIPPED_REFERENCE)
    assert reference["provenance"] == "published"
    assert [r["time_s"] for r in reference["rows"][:4]] == [18.2, 36.5, 67.3, 112.6]
    measured = {
        "nodeid": "s::768",
        "outcome": "ok",
        "time_s": 33.65,
        "config": {
            "width": 768,
            "height": 768,
            "frames": 16,
            "steps": 50,
            "guidance": 9.0,
            "dtype": "fp16",
            "memory": [],
            "provenance": "full-size-random-weights",
        },
        "peak_memory": {
            "allocated_bytes": None,
            "reserved_bytes": 17_000_000_000,
            "device_bytes": None,
        },
    }
    comparison = compare_published([GenerationRecord.from_partial(measured)], reference)
    assert comparison["provenance"] == "published" and comparison["note"] is None
    row = next(r for r in comparison["rows"] if r["label"] == "768p")
    assert row["measured"]["time_ratio"] == pytest.approx(0.5) and row["measured"][
        "peak_gb"
    ] == pytest.approx(17.0)
    assert next(r for r in comparison["rows"] if r["label"] == "256p")["measured"] is None
    tiny = dict(measured, config=dict(measured["config"], provenance="tiny-random-weights"))
    assert compare_published([GenerationRecord.from_partial(tiny)], reference)["rows"] == []


def test_no_repository_baseline_holds_unmeasured_numbers() -> None:
    """Every file under baselines/ (outside reference/) is a measured baseline, never a published
    figure."""
    root = Path(__file__).resolve().parents[1] / "baselines"
    import yaml

    for path in root.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        assert data["schema"] == "pytest-i2v/baseline", path
        for entry in data["entries"].values():
            for segment in entry["segments"]:
                assert all(run.get("date") and run.get("repeats") for run in segment["runs"]), path
    assert all(
        yaml.safe_load(p.read_text())["provenance"] == "published"
        for p in (root / "reference").glob("*.yaml")
    )
