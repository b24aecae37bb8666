"""The README's main job in a subprocess, and pytest-xdist workers' results merged into one set of
outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_report import parse

ROOT = Path(__file__).resolve().parents[1]


def test_resolution_sweep_suite_end_to_end(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "suites", tmp_path / "suites", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites/test_resolution_sweep.py",
            "-p",
            "no:cacheprovider",
            "--i2v-repeats",
            "2",
            "--i2v-json",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    document = json.loads(out.read_text())
    records = {r["config"]["resolution"]: r for r in document["records"]}
    assert set(records) == {"256p", "512p", "768p", "1024p"}
    for label, size in (("256p", 32), ("512p", 64), ("768p", 96), ("1024p", 128)):
        record = records[label]
        assert record["outcome"] == "ok" and record["config"]["width"] == size
        assert record["config"]["study"]["steps"] == 50 and record["config"]["steps"] == 10
        assert all(
            len(steps) == 10 and all(s > 0 for s in steps)
            for steps in record["stages"]["step_samples_s"]
        )
        assert record["peak_memory"]["host_rss_bytes"] > 0
        # the first measured generation's output, reduced (measure.output): 4 frames, <= 64 px
        output = record["output"]
        assert output["generated_shape"] == [4, size, size, 3]
        assert output["shape"] == [4, min(size, 64), min(size, 64), 3] and output["packed"]

    # Bigger frames cost more per step (the measurement sees the work, not just overhead). The
    # fastest step of each, the least disturbed by another process on the 2 cores, says it even when
    # a repeat of the small one was held up.
    def fastest_step(label: str) -> float:
        return min(min(steps) for steps in records[label]["stages"]["step_samples_s"])

    assert fastest_step("1024p") > fastest_step("256p")


def test_under_xdist_one_session_writes_one_json_one_report_and_the_baselines_once(
    i2v_project: pytest.Pytester,
) -> None:
    """Two workers: the controller writes every output once, from all the workers' results (one run
    of four tests for what used to be four runs: a worker process costs seconds of imports). On the
    CPU there is no GPU to split: the workers given --i2v-gpus share the CPU, and the profile is the
    cpu one."""
    pytest.importorskip("xdist", reason="pytest-xdist is in the test extra")
    i2v_project.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize(
            "n",
            [
                pytest.param(
                    n, marks=pytest.mark.i2v(resolution="256p", frames=2, steps=10, seed=n)
                )
                for n in range(4)
            ],
        )
        def test_gen(n, i2v_run, i2v_spec, i2v_profile):
            assert i2v_spec.seed == n and i2v_profile.name == "cpu"
            assert i2v_run().outcome == "ok"
        """
    )
    result = i2v_project.runpytest(
        "-n",
        "2",
        "--i2v-gpus",
        "0,1",
        "--i2v-json",
        "r.json",
        "--i2v-report",
        "r.html",
        "--i2v-baseline-dir",
        "bl",
        "--i2v-update-baselines",
    )
    result.assert_outcomes(passed=4)
    document = json.loads((i2v_project.path / "r.json").read_text())
    assert sorted(r["nodeid"].split("[")[1] for r in document["records"]) == [
        "0]",
        "1]",
        "2]",
        "3]",
    ]
    assert len(document["pipelines"]) == 2  # one load per worker
    written = [line for line in result.stdout.lines if line.startswith("i2v results written to")]
    assert sorted(Path(line.split(" written to ", 1)[1]).name for line in written) == [
        "r.html",
        "r.json",
    ]  # once each
    assert parse((i2v_project.path / "r.html").read_text()).rows["results-table"] == 4
    assert result.stdout.str().count("i2v baselines written") == 1
    result.stdout.fnmatch_lines(
        ["i2v baselines written: *cpu.yaml: 4 run(s) recorded, new entries: 4"]
    )  # every worker's
    assert all(r["outcome"] == "ok" for r in document["records"])
    stored = yaml.safe_load((i2v_project.path / "bl" / "cpu.yaml").read_text())
    assert len(stored["entries"]) == 4 and set(stored["entries"]) == {
        r["nodeid"] for r in document["records"]
    }
    assert all(len(e["segments"][0]["runs"]) == 1 for e in stored["entries"].values())
