"""The typed results record and its schema: version 2 is written and read back exactly; a
version 1 results document of the main job (written before the typed record, with the baseline it
was judged against) still renders, still diffs, and ``baseline diff`` agrees with the gate on
every one of its records."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import shutil
from pathlib import Path

import pytest

from pytest_i2v.cli import main
from pytest_i2v.cli_baseline import diff_results
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.document import RESULTS_SCHEMA_VERSION, read_records, read_results
from pytest_i2v.record.parts import (
    AdaptiveRecord,
    DeclaredBudget,
    FastMode,
    OomInfo,
    PeakMemory,
    Roofline,
    Stages,
    WorkComparison,
)
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.markdown import md
from pytest_i2v.verdict.baseline_store import read_baseline
from pytest_i2v.verdict.conditions import RepeatConditions, assess
from pytest_i2v.verdict.gate import RegressionVerdict

MAIN_JOB_V1 = Path(__file__).parent / "data" / "main-job-v1"


@pytest.fixture
def v1_results(tmp_path: Path) -> Path:
    """The main job's results JSON as the plugin wrote it at schema version 1 (2026-12-07)."""
    path = tmp_path / "results.json"
    path.write_bytes(gzip.decompress((MAIN_JOB_V1 / "results.json.gz").read_bytes()))
    return path


def test_the_fixture_is_a_version_1_document_of_the_whole_main_job(v1_results: Path) -> None:
    raw = json.loads(v1_results.read_text())
    assert raw["schema_version"] == 1 and len(raw["records"]) == 42
    assert {r["nodeid"].split("::")[0] for r in raw["records"]} >= {
        "suites/test_resolution_sweep.py",
        "suites/test_pipelines.py",
    }


def test_a_version_1_document_reads_as_the_current_schema_and_round_trips(
    v1_results: Path,
) -> None:
    document = read_results(v1_results)
    assert document["schema_version"] == RESULTS_SCHEMA_VERSION == 4
    records = read_records(document, "v1")
    assert len(records) == 42 and all(isinstance(r.stages, Stages) for r in records)
    assert all(isinstance(r.peak_memory, PeakMemory) for r in records)
    # typed all the way: the parts are objects, and writing them back gives the same JSON
    assert {r.verdict.verdict for r in records if r.verdict} == {"pass"}
    assert {r.decision.kind for r in records if r.decision} == {"passed"}
    raw = json.loads(v1_results.read_text())["records"]
    # versions 3's and 4's output fields are the ones version 1 could not have written
    unwritten = {"output": None, "output_repeat": None, "fidelity_request": None, "fidelity": None}
    assert [r.to_dict() for r in records] == [{**r, **unwritten} for r in raw]


def test_every_field_of_the_record_is_written_and_read(v1_results: Path) -> None:
    record = read_records(read_results(v1_results), "v1")[0]
    written = record.to_dict()
    assert list(written) == [f.name for f in dataclasses.fields(GenerationRecord)]
    assert GenerationRecord.from_dict(written) == record


def test_a_version_1_document_still_renders(v1_results: Path, tmp_path: Path) -> None:
    html, markdown = tmp_path / "report.html", tmp_path / "summary.md"
    assert main(["report", str(v1_results), "-o", str(html), "--markdown", str(markdown)]) == 0
    nodeids = [r["nodeid"] for r in json.loads(v1_results.read_text())["records"]]
    page, summary = html.read_text(), markdown.read_text()
    assert all(nodeid.split("::")[1] in page for nodeid in nodeids)
    assert all(f"| {md(nodeid)} |" in summary for nodeid in nodeids)


def test_baseline_diff_agrees_with_the_gate_on_every_record_of_the_main_job(
    v1_results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline_path = tmp_path / "cpu.yaml"
    shutil.copy(MAIN_JOB_V1 / "cpu.yaml", baseline_path)
    document = read_results(v1_results)
    table = diff_results(read_baseline(baseline_path), document)
    for record in read_records(document, "v1"):
        assert record.verdict is not None
        row = re.search(rf"^\| {re.escape(record.nodeid)} \| (\S+) ", table, re.M)
        assert row is not None, record.nodeid
        assert row.group(1) == record.verdict.verdict, record.nodeid
    assert main(["baseline", "diff", str(baseline_path), str(v1_results)]) == 0
    assert capsys.readouterr().out.count("| suites/") == 42


def test_a_version_2_record_without_a_field_is_one_line_naming_the_test_and_the_field(
    v1_results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = read_results(v1_results)
    broken = dict(document["records"][3])
    del broken["stages"]
    document["records"][3] = broken
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(document))
    with pytest.raises(I2VUsageError, match=rf"{re.escape(broken['nodeid'])}.*stages"):
        read_results(path)
    before = path.read_bytes()
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stages" in err[0] and broken["nodeid"] in err[0]
    assert path.read_bytes() == before and not (tmp_path / "r.html").exists()


def test_a_version_1_record_without_a_field_takes_its_empty_value(
    v1_results: Path, tmp_path: Path
) -> None:
    raw = json.loads(v1_results.read_text())
    del raw["records"][0]["stages"], raw["records"][0]["machine_probe"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(raw))
    record = read_records(read_results(path), "old")[0]
    assert record.stages == Stages() and record.machine_probe is None


def test_every_typed_part_round_trips(v1_results: Path) -> None:
    record = read_records(read_results(v1_results), "v1")[0]
    work = WorkComparison.from_dict(
        {
            "identical": False,
            "effect_s": 0.002,
            "effect_pct": 8.1,
            "interval_pct": [4.0, 12.0],
            "noise": [],
            "rows": [],
            "rows_total": 2,
            "verdict": "changed",
        }
    )
    rich = dataclasses.replace(
        record,
        oom=OomInfo("denoise", 3, "CUDA out of memory", 2**30, before_bytes=2**29),
        fast=FastMode(3, 50, 0.2, [0.2, 0.21]),
        adaptive=AdaptiveRecord(5.0, 3, 15, 4, "converged"),
        roofline=Roofline(2.0, 1.0, 200.0, 2.0, 400.0, "fp16", 0.5, False),
        budget=DeclaredBudget(vram_gb=24.0),
        conditions=assess([RepeatConditions(1410.0, reasons=("thermal",)), RepeatConditions()]),
        work=work,
        verdict=RegressionVerdict("regressed", notes=("slower",)),
    )
    written = json.loads(json.dumps(rich.to_dict()))
    back = GenerationRecord.from_dict(written)
    assert back == rich and back.to_dict() == written
    assert written["work"]["verdict"] == "changed" and written["oom"]["step"] == 3


def test_a_version_2_document_reads_with_no_output(v1_results: Path, tmp_path: Path) -> None:
    document = read_results(v1_results)
    for record in document["records"]:
        for key in ("output", "output_repeat", "fidelity_request", "fidelity"):
            del record[key]  # what a version 2 plugin wrote
    path = tmp_path / "v2.json"
    path.write_text(json.dumps({**document, "schema_version": 2}))
    records = read_records(read_results(path), "v2")
    assert len(records) == 42 and all(r.output is None and r.fidelity is None for r in records)


def test_a_version_3_document_reads_without_its_unjudged_fidelity(
    v1_results: Path, tmp_path: Path
) -> None:
    document = read_results(v1_results)
    for record in document["records"]:
        del record["output_repeat"], record["fidelity_request"]
        # what a version 3 plugin wrote: the figures alone, never judged
        record["fidelity"] = {
            "frames": 2,
            "identical": False,
            "min_psnr_db": 40.0,
            "mean_ssim": None,
            "cosine": 0.99,
            "shape_changed": False,
        }
    path = tmp_path / "v3.json"
    path.write_text(json.dumps({**document, "schema_version": 3}))
    records = read_records(read_results(path), "v3")
    assert len(records) == 42 and all(r.fidelity is None for r in records)
    # the same figures in a version 4 document are not a comparison: one line names the field
    path.write_text(json.dumps({**document, "schema_version": 4}))
    with pytest.raises(I2VUsageError, match="fidelity"):
        read_records(read_results(path), "v4")
