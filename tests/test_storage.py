"""Atomic writes leave the mode a plain write would: reports, JSON, Markdown and baselines readable
by others under the usual umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_i2v.storage import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_0644_under_umask_022_and_an_existing_one_keeps_its_mode(
    tmp_path: Path, umask_022: None
) -> None:
    fresh = tmp_path / "report.html"
    write_text_atomic(fresh, "<p>one</p>")
    assert mode(fresh) == 0o644 and fresh.read_text() == "<p>one</p>"
    fresh.chmod(0o640)  # the user narrowed it: a rewrite keeps that, as open(path, "w") would
    write_text_atomic(fresh, "<p>two</p>")
    assert mode(fresh) == 0o640 and fresh.read_text() == "<p>two</p>"
    old = os.umask(0o077)
    try:
        write_text_atomic(tmp_path / "private.json", "{}")
    finally:
        os.umask(old)
    assert mode(tmp_path / "private.json") == 0o600
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_the_main_jobs_result_files_are_readable_by_others(tmp_path: Path, umask_022: None) -> None:
    """A real (tiny) run under umask 022: report, JSON and Markdown at 0644."""
    out = tmp_path / "i2v-results"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites/test_resolution_sweep.py",
            "-k",
            "256p",
            "-q",
            "-p",
            "no:cacheprovider",
            "--i2v-repeats",
            "1",
            "--i2v-warmup",
            "0",
            "--i2v-json",
            str(out / "results.json"),
            "--i2v-report",
            str(out / "report.html"),
            "--i2v-markdown",
            str(out / "summary.md"),
            "--i2v-baseline-dir",
            str(tmp_path / "baselines"),
            "--i2v-update-baselines",
            # file modes are the point: a loaded machine's probe must not skip the write
            "--i2v-force-baselines",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    written = [
        out / "results.json",
        out / "report.html",
        out / "summary.md",
        tmp_path / "baselines" / "cpu.yaml",
    ]
    assert {p.name: oct(mode(p)) for p in written} == {p.name: oct(0o644) for p in written}
    # the machine speed probe ran before the first test and at the end: in the environment, each
    # record and the baseline run, as measurements (never fingerprint keys)
    document = __import__("json").loads((out / "results.json").read_text())
    probe = document["environment"]["machine_probe"]
    assert set(probe) == {"start", "end"} and all(
        v > 0 for side in probe.values() for v in side.values()
    )
    assert document["records"][0]["machine_probe"] == probe["start"]
    assert "machine_probe" not in document["records"][0]["fingerprint"]
    run = __import__("yaml").safe_load((tmp_path / "baselines" / "cpu.yaml").read_text())
    stored = next(iter(run["entries"].values()))["segments"][0]["runs"][0]
    assert stored["probe_gemm_gflops"] == pytest.approx(probe["start"]["gemm_gflops"], rel=1e-4)
