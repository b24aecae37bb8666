"""pytest-benchmark through its public API: the i2v rounds are the benchmark's rounds, its JSON and
``compare`` carry the i2v tests, its options behave as its users expect, and the i2v results,
baselines and verdicts do not depend on whether it is active."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import pytest_i2v
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.session.benchmark_info import benchmark_group, extra_info
from tests.test_outcomes import CONFTEST as KINDS_CONFTEST
from tests.test_outcomes import CPU_PROFILE as KINDS_PROFILE
from tests.test_outcomes import TESTS as KINDS_TESTS

SUITE = """
import pytest

SMALL = dict(resolution="256p", frames=2, steps=10)

@pytest.mark.i2v(**SMALL, seed=1)
def test_first(i2v_run):
    assert i2v_run().outcome == "ok"

@pytest.mark.benchmark(group="mine")
@pytest.mark.i2v(resolution="256p", frames=2, steps=50, seed=2, fast=True)
def test_own_group_fast(i2v_run):
    assert i2v_run().outcome == "ok"

@pytest.mark.i2v(**SMALL)
def test_only_loads(i2v_pipeline):
    assert i2v_pipeline is not None

def test_plain():
    assert True
"""
ARGS = (
    "--i2v-repeats",
    "3",
    "--i2v-warmup",
    "1",
    "--i2v-json",
    "r.json",
    "-p",
    "no:randomly",
    "-p",
    "no:cacheprovider",
)


def records(path: Path) -> dict[str, dict[str, Any]]:
    return {r["nodeid"].split("::")[1]: r for r in json.loads(path.read_text())["records"]}


def benchmarks(path: Path) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in json.loads(path.read_text())["benchmarks"]}


@pytest.fixture
def suite(i2v_project: pytest.Pytester) -> pytest.Pytester:
    i2v_project.makepyfile(test_suite=SUITE)
    return i2v_project


@pytest.mark.parametrize("clock", ["virtual", "real"])
def test_the_benchmark_rounds_are_the_records_repeats(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, clock: str
) -> None:
    """One loop: each round's time is the record's repeat time, to the last bit, on either clock."""
    extra: tuple[str, ...] = ()
    if clock == "virtual":
        monkeypatch.setenv("PYTEST_I2V_SIMULATED_GPUS", "[]")
        monkeypatch.setenv("PYTEST_I2V_VIRTUAL_TIME", "1")
        extra = ("-p", "pytest_i2v.simulated_plugin")
    result = suite.runpytest(*ARGS, *extra, "--benchmark-json", "b.json")
    result.assert_outcomes(passed=4)
    recorded, benched = records(suite.path / "r.json"), benchmarks(suite.path / "b.json")
    assert sorted(benched) == ["test_first", "test_own_group_fast"]  # one per measuring test
    for name, bench in benched.items():
        record = recorded[name]
        measured = (record["fast"] or {}).get("measured_time_samples_s", record["time_samples_s"])
        assert bench["stats"]["data"] == measured and bench["stats"]["rounds"] == 3
        assert bench["stats"]["iterations"] == 1
        assert bench["options"]["timer"] == "pytest_i2v.round_clock"
    first = recorded["test_first"]
    assert benched["test_first"]["stats"]["median"] == first["time_s"]
    assert benched["test_first"]["group"] == "i2vgen-xl 256p (32x32)"
    assert benched["test_own_group_fast"]["group"] == "mine"  # the user's benchmark mark wins
    info = benched["test_first"]["extra_info"]
    assert info["peak_host_rss_bytes"] == first["peak_memory"]["host_rss_bytes"] > 0
    assert (
        info["peak_bytes"] == info["peak_host_rss_bytes"] and info["peak_kind"] == "peak host RSS"
    )
    assert (
        info["outcome"] == first["decision"]["kind"] and info["step_s"] == first["stages"]["step_s"]
    )
    assert (info["width"], info["height"], info["frames"], info["steps"]) == (32, 32, 2, 2)
    fast = benched["test_own_group_fast"]["extra_info"]
    assert fast["mode"] == "fast" and fast["measured_steps"] < fast["steps"]


def test_autosaved_runs_compare_and_name_the_i2v_tests(
    suite: pytest.Pytester, virtual_time: tuple[str, ...]
) -> None:
    for _ in range(2):
        suite.runpytest(
            *ARGS, *virtual_time, "--benchmark-autosave", "--benchmark-storage", "store"
        ).assert_outcomes(passed=4)
    saved = sorted((suite.path / "store").rglob("*.json"))
    assert len(saved) == 2
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_benchmark",
            "--storage",
            str(suite.path / "store"),
            "compare",
            "0001",
            "0002",
            "--group-by",
            "group",
        ],
        capture_output=True,
        text=True,
        cwd=suite.path,
        check=True,
    )
    assert "test_first (0001" in shown.stdout and "test_first (0002" in shown.stdout
    assert (
        "test_own_group_fast (0001" in shown.stdout
        and "benchmark 'i2vgen-xl 256p (32x32)'" in shown.stdout
    )


def _normalised(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The records without what a process measures for real beside the virtual clock: host memory
    and the load time."""
    out = []
    for record in document["records"]:
        record = {
            k: v for k, v in record.items() if k not in ("load_s", "peak_memory", "memory_start")
        }
        if record.get("oom"):  # the memory before the run and after freeing it: host RSS
            record["oom"] = {
                k: v
                for k, v in record["oom"].items()
                if k not in ("before_bytes", "after_free_bytes")
            }
        verdict = dict(record.get("verdict") or {})
        verdict["metrics"] = [
            m for m in verdict.get("metrics") or [] if "rss" not in m.get("metric", "")
        ]
        out.append({**record, "verdict": verdict})
    return out


def _baseline_runs(path: Path) -> dict[str, list[dict[str, Any]]]:
    stored = yaml.safe_load(path.read_text())
    return {
        nodeid: [
            {k: v for k, v in run.items() if k not in ("host_rss_bytes", "date")}
            for segment in entry["segments"]
            for run in segment["runs"]
        ]
        for nodeid, entry in stored["entries"].items()
    }


def test_results_baselines_and_verdicts_are_the_same_with_and_without_pytest_benchmark(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, virtual_time: tuple[str, ...]
) -> None:
    """Every outcome kind (recorded, regressed and re-measured, improved, over budget, out of
    memory), once with pytest-benchmark off and once with it on, on the virtual clock."""
    i2v_project.makeconftest(KINDS_CONFTEST)
    i2v_project.makepyfile(test_kinds=KINDS_TESTS)
    (i2v_project.path / "profiles").mkdir()
    (i2v_project.path / "profiles" / "cpu.yaml").write_text(
        KINDS_PROFILE.replace("confirm: 0", "confirm: 1")
    )
    seen: dict[str, Any] = {}
    for mode, switch in (("off", ("-p", "no:benchmark")), ("on", ("--benchmark-json", "b.json"))):
        args = (
            "--i2v-repeats",
            "2",
            "--i2v-warmup",
            "1",
            "--i2v-baseline-dir",
            f"bl-{mode}",
            "--i2v-profile-dir",
            "profiles",
            "--i2v-json",
            f"r-{mode}.json",
            "-p",
            "no:randomly",
            *virtual_time,
            *switch,
        )
        monkeypatch.setenv("SLOW", "test_improves")
        recorded = i2v_project.runpytest(*args, "--i2v-update-baselines")
        recorded_doc = json.loads((i2v_project.path / f"r-{mode}.json").read_text())
        monkeypatch.setenv("SLOW", "test_regresses")
        gated = i2v_project.runpytest(*args, "--i2v-gate-mode", "enforce")
        gated_doc = json.loads((i2v_project.path / f"r-{mode}.json").read_text())
        seen[mode] = {
            "exit": (recorded.ret, gated.ret),
            "outcomes": (recorded.parseoutcomes(), gated.parseoutcomes()),
            "recorded": _normalised(recorded_doc),
            "gated": _normalised(gated_doc),
            "gate": gated_doc["gate"],
            "baselines": _baseline_runs(i2v_project.path / f"bl-{mode}" / "cpu.yaml"),
        }
    for key in seen["off"]:
        assert seen["on"][key] == seen["off"][key], f"{key} differs with pytest-benchmark active"
    kinds = {r["nodeid"].split("::")[1]: r["decision"]["kind"] for r in seen["on"]["gated"]}
    assert kinds == {
        "test_regresses": "regressed",
        "test_improves": "improved",
        "test_steady": "passed",
        "test_over_budget": "over-budget",
        "test_oom": "out-of-memory",
        "test_drifts": "passed",  # no drift injected here
    }
    benched = benchmarks(i2v_project.path / "b.json")
    # the OOM raised inside pedantic: pytest-benchmark leaves it out; the re-measured one says so
    assert (
        "test_oom" not in benched
        and benched["test_regresses"]["extra_info"]["gate_measurements"] == 2
    )
    assert benched["test_regresses"]["extra_info"]["outcome"] == "regressed"


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (("--benchmark-disable",), {"passed": 4}),
        (("--benchmark-skip",), {"passed": 2, "skipped": 2}),
        (("--benchmark-only",), {"passed": 2, "skipped": 2}),
        (("--i2v-target-ci", "50"), {"passed": 4}),
        (("-n", "2"), {"passed": 4}),
    ],
)
def test_pytest_benchmark_options_behave_as_its_users_expect(
    suite: pytest.Pytester,
    virtual_time: tuple[str, ...],
    option: tuple[str, ...],
    expected: dict[str, int],
) -> None:
    if option[0] == "-n":
        pytest.importorskip("xdist", reason="pytest-xdist is in the test extra")
    result = suite.runpytest(*ARGS, *virtual_time, "--benchmark-json", "b.json", "-rs", *option)
    result.assert_outcomes(**expected)
    assert "Benchmark fixture was not used" not in result.stdout.str()
    measured = records(suite.path / "r.json") if (suite.path / "r.json").exists() else {}
    written = benchmarks(suite.path / "b.json") if (suite.path / "b.json").exists() else {}
    if option == ("--benchmark-skip",):
        # the i2v tests are benchmarks: skipped; the plain test and the loading-only test run
        result.stdout.fnmatch_lines(["*Skipping benchmark (--benchmark-skip active)*"])
        assert measured == {}
    elif option == ("--benchmark-only",):
        result.stdout.fnmatch_lines(["*Skipping non-benchmark (--benchmark-only active)*"])
        assert sorted(measured) == sorted(written) == ["test_first", "test_own_group_fast"]
    else:
        # the i2v measurement runs in full and is judged; pytest-benchmark records nothing
        assert sorted(measured) == ["test_first", "test_own_group_fast"]
        assert all(r["repeats"] >= 3 and r["time_s"] > 0 for r in measured.values())
        assert (
            written == {}
        )  # under xdist pytest-benchmark disables itself (its warning is the workers')


def _private_names(package: Path) -> set[str]:
    """Every private attribute name pytest-benchmark's own code uses (``self._mode``,
    ``config._benchmarksession``)."""
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                names.add(node.attr)
    return names


def test_the_package_reaches_for_no_private_attribute_of_pytest_benchmark() -> None:
    """Outside ``self``, no attribute or ``getattr`` name of pytest_i2v is one of pytest-benchmark's
    private names, and nothing imports pytest-benchmark's modules: the fixture is the whole
    interface."""
    import pytest_benchmark

    private = _private_names(Path(pytest_benchmark.__file__).parent)
    assert {"_benchmarksession", "_mode", "_timer"} <= private  # the scan sees them
    found = []
    for path in Path(pytest_i2v.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in private
            ):
                found.append(
                    f"{path.name}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})"
                )  # type: ignore[attr-defined]
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                found += [
                    f"{path.name}:{node.lineno} import {m}"
                    for m in modules
                    if m.startswith("pytest_benchmark")
                ]
    assert found == []


def test_extra_info_and_group_read_the_record() -> None:
    record = {
        "nodeid": "tests/test_svd.py::test_svd",
        "config": {
            "pipeline": "svd",
            "width": 1024,
            "height": 576,
            "frames": 14,
            "steps": 25,
            "dtype": "fp16",
            "memory": ["vae_slicing"],
            "resolution": None,
        },
        "mode": "fast",
        "fast": {
            "measured_steps": 5,
            "steps": 25,
            "measured_time_s": 0.5,
            "measured_time_samples_s": [0.5],
        },
        "time_s": 2.5,
        "gen_fps": 5.6,
        "repeats": 5,
        "stages": {"step_s": 0.09, "encode_s": 0.1, "decode_s": 0.4},
        "peak_memory": {
            "device_bytes": 9 * 2**30,
            "device_scope": "process",
            "reserved_bytes": 8 * 2**30,
            "allocated_bytes": 7 * 2**30,
        },
        "decision": {"kind": "regressed", "fails": True, "reason": "slower"},
        "verdict": {"verdict": "regressed"},
        "fingerprint": {"gpu_name": "NVIDIA H200", "driver": "570.1", "torch": None},
    }
    info = extra_info(GenerationRecord.from_partial({**record, "measurements": 2}))
    assert (
        info["peak_bytes"] == 9 * 2**30 and info["peak_kind"] == "NVML, this process"
    )  # the headline peak
    assert (
        info["peak_reserved_bytes"],
        info["peak_allocated_bytes"],
        info["peak_host_rss_bytes"],
    ) == (8 * 2**30, 7 * 2**30, None)
    assert (
        info["measured_steps"] == 5
        and info["memory_options"] == ["vae_slicing"]
        and info["resolution"] == "1024x576"
    )
    assert (
        info["machine"] == {"gpu_name": "NVIDIA H200", "driver": "570.1"}
        and info["gate_measurements"] == 2
    )
    assert json.loads(json.dumps(info)) == info  # JSON as it is
    assert benchmark_group(record["config"]) == "svd 1024x576"
    assert (
        benchmark_group({"pipeline": "i2vgen-xl", "resolution": "512p", "width": 64, "height": 64})
        == "i2vgen-xl 512p (64x64)"
    )
