from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
import yaml

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.baseline_run import run_from_record
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.baseline_records import BaselineFile, config_id
from pytest_i2v.verdict.baseline_store import (
    MAX_RUNS_PER_SEGMENT,
    AcceptedRun,
    baseline_path,
    read_baseline,
    update_baseline,
)
from pytest_i2v.verdict.yaml_shapes import dump_yaml

GOLDEN = Path(__file__).parent / "golden" / "baseline.yaml"
CONFIG = {
    "width": 64,
    "height": 64,
    "frames": 16,
    "steps": 10,
    "guidance": 9.0,
    "fps": 8,
    "dtype": "fp32",
    "memory": [],
    "source": "tiny",
    "prompt": "p",
    "seed": 0,
}
FINGERPRINT = {"driver": "550.54", "torch": "2.13.0", "dtype": "fp32", "attention": "sdpa"}


def record(time_s: float = 0.5, rss: int = 500 * 2**20) -> GenerationRecord:
    return GenerationRecord.from_partial(
        {
            "nodeid": "t::a",
            "repeats": 5,
            "time_s": time_s,
            "stages": {"step_s": time_s / 20, "decode_s": 0.1234567, "encode_s": 0.01},
            "peak_memory": {
                "allocated_bytes": None,
                "reserved_bytes": None,
                "device_bytes": None,
                "host_rss_bytes": rss,
            },
        }
    )


def accepted(
    nodeid: str,
    time_s: float = 0.5,
    fingerprint: dict | None = None,
    date: str = "2026-11-25T00:00:00+00:00",
    config: dict | None = None,
) -> AcceptedRun:
    return AcceptedRun(
        nodeid,
        dict(config or CONFIG),
        dict(fingerprint or FINGERPRINT),
        run_from_record(record(time_s), "abc123", date=date),
    )


def test_run_figures_are_rounded_and_ordered() -> None:
    run = run_from_record(record(0.123456789), "abc", date="d")
    assert list(run) == [
        "date",
        "commit",
        "repeats",
        "time_s",
        "step_s",
        "decode_s",
        "encode_s",
        "host_rss_bytes",
    ]
    assert run["time_s"] == 0.12346 and run["decode_s"] == 0.12346


def test_round_trip_and_golden_file(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    update_baseline(
        path, "cpu", [accepted("suites/t.py::test_b"), accepted("suites/t.py::test_a", 0.25)]
    )
    update_baseline(
        path, "cpu", [accepted("suites/t.py::test_a", 0.26, date="2026-11-26T00:00:00+00:00")]
    )
    text = path.read_text()
    if os.environ.get("I2V_REGOLD"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), (
        "the stored format changed: review, then regenerate with I2V_REGOLD=1"
    )
    baseline = read_baseline(path, "cpu")
    assert list(baseline.entries) == [
        "suites/t.py::test_a",
        "suites/t.py::test_b",
    ]  # sorted: stable diffs
    entry = baseline.entries["suites/t.py::test_a"]
    assert [r["time_s"] for r in entry.current.runs] == [0.25, 0.26]
    assert BaselineFile.from_dict(yaml.safe_load(text), "x").to_dict() == baseline.to_dict()


def test_new_fingerprint_starts_a_new_segment(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    update_baseline(path, "cpu", [accepted("t::a")])
    summary = update_baseline(
        path, "cpu", [accepted("t::a", fingerprint={**FINGERPRINT, "driver": "560.35"})]
    )
    entry = read_baseline(path).entries["t::a"]
    assert len(entry.segments) == 2 and entry.current.fingerprint["driver"] == "560.35"
    assert len(entry.current.runs) == 1
    assert summary.new_segments == ("t::a",)


def test_changed_config_replaces_the_entry_and_reset_drops_history(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    update_baseline(path, "cpu", [accepted("t::a"), accepted("t::a")])
    update_baseline(path, "cpu", [accepted("t::a", config={**CONFIG, "frames": 8})])
    entry = read_baseline(path).entries["t::a"]
    assert entry.config["frames"] == 8 and len(entry.current.runs) == 1
    update_baseline(path, "cpu", [accepted("t::a", config={**CONFIG, "frames": 8})])
    summary = update_baseline(
        path, "cpu", [accepted("t::a", config={**CONFIG, "frames": 8})], mode="reset"
    )
    assert len(read_baseline(path).entries["t::a"].current.runs) == 1 and summary.reset == ("t::a",)


def test_history_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    for index in range(MAX_RUNS_PER_SEGMENT + 5):
        update_baseline(path, "cpu", [accepted("t::a", 1.0 + index)])
    runs = read_baseline(path).entries["t::a"].current.runs
    assert (
        len(runs) == MAX_RUNS_PER_SEGMENT and runs[-1]["time_s"] == 1.0 + MAX_RUNS_PER_SEGMENT + 4
    )


def test_config_id_is_stable_and_sensitive() -> None:
    assert config_id(CONFIG) == config_id(dict(reversed(list(CONFIG.items()))))
    assert config_id(CONFIG) != config_id({**CONFIG, "steps": 11})
    assert config_id(CONFIG) == config_id(
        {**CONFIG, "provenance": "other", "study": {}}
    )  # not part of the generation


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "schema: pytest-i2v/baseline\nschema_version: 2\nprofile: cpu\n",
            "schema_version 2, newer than this plugin reads",
        ),
        ("schema: something-else\n", "not a pytest-i2v baseline file"),
        (
            "schema: pytest-i2v/baseline\nschema_version: 1\nprofile: rtx4090\n",
            "holds baselines for profile 'rtx4090', not 'cpu'",
        ),
        ("entries: [unclosed\n", "not valid YAML"),
        (
            "schema: pytest-i2v/baseline\nschema_version: 1\nprofile: cpu\n"
            "entries:\n  t::a: {segments: []}\n",
            r"entries\['t::a'\]\.config_id: expected the test's config id",
        ),
        ("!!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    ],
)
def test_bad_baseline_files_are_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cpu.yaml"
    path.write_text(text)
    with pytest.raises(I2VUsageError, match=message):
        read_baseline(path, "cpu")


def test_baseline_path_stays_in_its_directory(tmp_path: Path) -> None:
    assert baseline_path(tmp_path, "cpu") == (tmp_path / "cpu.yaml").resolve()
    with pytest.raises(I2VUsageError):
        baseline_path(tmp_path, "../escape")


def _writer(path: str, worker: int, count: int) -> None:
    for index in range(count):
        update_baseline(
            Path(path),
            "cpu",
            [accepted(f"t::w{worker}"), accepted("t::shared", 1.0 + worker + index / 100)],
        )


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), w, 2)) for w in range(8)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    entries = read_baseline(path, "cpu").entries
    assert sorted(entries) == sorted([f"t::w{w}" for w in range(8)] + ["t::shared"])
    assert all(len(entries[f"t::w{w}"].current.runs) == 2 for w in range(8))
    shared = [r["time_s"] for r in entries["t::shared"].current.runs]
    assert len(shared) == 16 and len(set(shared)) == 16  # none lost, none duplicated


def _rewrite_forever(path: str) -> None:
    big = [accepted(f"t::{n}") for n in range(200)]
    while True:
        update_baseline(Path(path), "cpu", big)


def test_killed_writer_leaves_old_or_new_file(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    update_baseline(path, "cpu", [accepted("t::seed")])
    context = multiprocessing.get_context("fork")
    rng = random.Random(0)
    for _ in range(8):
        process = context.Process(target=_rewrite_forever, args=(str(path),))
        process.start()
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        baseline = read_baseline(path, "cpu")  # parses: never a partial file
        assert "t::seed" in baseline.entries
    update_baseline(
        path, "cpu", [accepted("t::after")]
    )  # the next writer clears what killed writers left
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_dump_is_safe_yaml() -> None:
    text = dump_yaml({"schema": "pytest-i2v/baseline", "entries": {}})
    assert text.startswith("# pytest-i2v baselines") and "!!python" not in text
