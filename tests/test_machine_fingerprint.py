"""A fingerprint that tells machines apart: the CPU's kernel ISA flags and physical cores, the
GPU's SM count, power limit and form. A baseline from another machine is "new", never a
regression; software changes keep following the env policy; baselines written before these
keys still compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_i2v.cli_baseline import diff_baselines, diff_results
from pytest_i2v.measure.environment import collect_environment
from pytest_i2v.measure.simulated import SimulatedRuntime
from pytest_i2v.measure.simulated_gpu import SimulatedGpu
from pytest_i2v.verdict.baseline_records import BaselineEntry, BaselineFile, Segment
from pytest_i2v.verdict.baseline_store import (
    AcceptedRun,
    read_baseline,
    update_baseline,
)
from pytest_i2v.verdict.fingerprint import (
    MACHINE_KEYS,
    SOFTWARE_KEYS,
    fingerprint_for,
    gpu_form_from_name,
    machine_changes,
    parse_cpu_isa,
    parse_physical_cores,
    software_changes,
)
from pytest_i2v.verdict.gate import GateSettings, judge_metrics
from pytest_i2v.verdict.outcome import NO_MACHINE_BASELINE, DecisionInputs, decide


def cpuinfo(flags: str, cores: list[tuple[int, int]], model: str = "AMD EPYC") -> str:
    """/proc/cpuinfo text: one block per logical CPU, (physical id, core id) each."""
    blocks = []
    for number, (package, core) in enumerate(cores):
        blocks.append(
            f"processor\t: {number}\nvendor_id\t: AuthenticAMD\nmodel name\t: {model}\n"
            f"physical id\t: {package}\ncore id\t\t: {core}\nflags\t\t: fpu sse2 {flags} rdrand\n"
        )
    return "\n".join(blocks)


ZEN3 = cpuinfo("avx avx2 fma", [(0, 0), (0, 1)])
ZEN4 = cpuinfo("avx avx2 avx512f avx512_bf16 avx512vl fma", [(0, 0), (0, 1)])
SAPPHIRE_RAPIDS = cpuinfo("avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8", [(0, 0)])


# -- /proc/cpuinfo ---------------------------------------------------------------------------------
def test_isa_flags_keep_only_the_kernel_relevant_ones_sorted() -> None:
    assert parse_cpu_isa(ZEN3) == "avx2"
    assert parse_cpu_isa(ZEN4) == "avx2 avx512_bf16 avx512f"
    assert parse_cpu_isa(SAPPHIRE_RAPIDS) == "amx_bf16 amx_tile avx2 avx512_bf16 avx512f"
    assert parse_cpu_isa(cpuinfo("sse2 sse4_2", [(0, 0)])) == "none"  # known: none of them
    assert parse_cpu_isa("processor\t: 0\nFeatures\t: fp asimd\n") is None  # no flags line: unknown
    assert parse_cpu_isa("") is None


def test_two_cpus_with_the_same_name_and_other_flags_are_different_machines() -> None:
    first = fingerprint_for(collect_environment("cpu", cpuinfo=ZEN3), {"dtype": "fp32"})
    second = fingerprint_for(collect_environment("cpu", cpuinfo=ZEN4), {"dtype": "fp32"})
    assert first["cpu_model"] == second["cpu_model"] == "AMD EPYC"
    assert first != second
    assert machine_changes(first, second) == ("cpu_isa avx2 -> avx2 avx512_bf16 avx512f",)
    assert software_changes(first, second) == ()


def test_physical_cores_count_distinct_package_and_core_pairs() -> None:
    hyperthreaded = cpuinfo("avx2", [(0, 0), (0, 0), (0, 1), (0, 1)])  # 2 cores, 2 threads each
    two_sockets = cpuinfo("avx2", [(0, 0), (0, 1), (1, 0), (1, 1)])  # core ids repeat per socket
    assert parse_physical_cores(hyperthreaded) == 2
    assert parse_physical_cores(two_sockets) == 4
    assert parse_physical_cores("processor\t: 0\nmodel name\t: vm\n") is None  # no core ids


def test_physical_cores_fall_back_to_the_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 7)
    environment = collect_environment("cpu", cpuinfo="processor\t: 0\nmodel name\t: vm\n")
    assert environment["cpu_physical_cores"] == 7
    assert environment["cpu_isa"] is None


def test_the_cpu_fingerprint_holds_every_machine_key() -> None:
    environment = collect_environment("cpu", cpuinfo=cpuinfo("avx2", [(0, 0), (0, 1), (0, 2)]))
    fingerprint = fingerprint_for(environment, {"dtype": "fp32"})
    assert fingerprint["cpu_isa"] == "avx2" and fingerprint["cpu_physical_cores"] == 3
    assert isinstance(fingerprint["cpu_threads"], int)
    assert set(MACHINE_KEYS) <= set(fingerprint) and set(SOFTWARE_KEYS) <= set(fingerprint)
    assert (
        "machine" not in fingerprint and "device" not in fingerprint
    )  # not hook-added "extra" keys


# -- the GPU half, on the simulated device ---------------------------------------------------------
def test_gpu_fields_of_the_simulated_device_reach_the_fingerprint() -> None:
    runtime = SimulatedRuntime(
        gpus=[
            SimulatedGpu(),
            SimulatedGpu(
                name="NVIDIA H100 PCIe", sm_count=114, power_limit_w=350.0, total_bytes=80 * 10**9
            ),
        ]
    )
    h200 = fingerprint_for(
        collect_environment("cuda:0", runtime.open("cuda:0").info()), {"dtype": "bf16"}
    )
    pcie = fingerprint_for(
        collect_environment("cuda:1", runtime.open("cuda:1").info()), {"dtype": "bf16"}
    )
    assert (h200["gpu_sm_count"], h200["gpu_power_limit_w"], h200["gpu_form"]) == (132, 700, "SXM")
    assert (pcie["gpu_sm_count"], pcie["gpu_power_limit_w"], pcie["gpu_form"]) == (114, 350, "PCIe")
    assert "cpu_isa" not in h200  # a GPU's fingerprint is the GPU's


def test_a_capped_or_cut_down_card_of_the_same_name_is_another_machine() -> None:
    def fingerprint(gpu: SimulatedGpu) -> dict[str, Any]:
        info = SimulatedRuntime(gpus=[gpu]).open("cuda:0").info()
        return fingerprint_for(collect_environment("cuda:0", info), {"dtype": "bf16"})

    full = fingerprint(SimulatedGpu())
    assert machine_changes(full, fingerprint(SimulatedGpu(power_limit_w=450.0))) == (
        "gpu_power_limit_w 700 -> 450",
    )
    assert machine_changes(full, fingerprint(SimulatedGpu(sm_count=114))) == (
        "gpu_sm_count 132 -> 114",
    )
    # the form comes from the board's name, as torch and NVML report it
    assert set(machine_changes(full, fingerprint(SimulatedGpu(name="NVIDIA H200 NVL")))) == {
        "gpu_form SXM -> NVL",
        "gpu_name NVIDIA H200 -> NVIDIA H200 NVL",
    }
    # NVML unavailable: the power limit is unknown, and unknown is not a difference
    no_nvml = fingerprint(SimulatedGpu(nvml="unavailable"))
    assert no_nvml["gpu_power_limit_w"] is None and machine_changes(full, no_nvml) == ()


@pytest.mark.parametrize(
    ("name", "form"),
    [
        ("NVIDIA H100 PCIe", "PCIe"),
        ("NVIDIA H100 NVL", "NVL"),
        ("NVIDIA H200 NVL", "NVL"),
        ("NVIDIA H100 80GB HBM3", "SXM"),
        ("NVIDIA H200", "SXM"),
        ("Tesla V100-SXM2-16GB", "SXM"),
        ("NVIDIA A100-SXM4-80GB", "SXM"),
        ("NVIDIA A100 80GB PCIe", "PCIe"),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_the_form_factor_from_the_board_name(name: str, form: str | None) -> None:
    assert gpu_form_from_name(name) == form


# -- the gate --------------------------------------------------------------------------------------
HISTORY = [
    {"time_s": 10.0, "step_s": 1.0},
    {"time_s": 10.2, "step_s": 1.02},
    {"time_s": 9.9, "step_s": 0.99},
]
SLOWER = {"time_s": 40.0, "step_s": 4.0}  # +300 %


def stored(isa: str) -> dict[str, Any]:
    return {
        "cpu_model": "AMD EPYC",
        "cpu_isa": isa,
        "cpu_physical_cores": 2,
        "cpu_threads": 2,
        "gpu_name": None,
        "torch": "2.13.0",
        "driver": None,
        "dtype": "fp32",
        "attention": "sdpa",
    }


def test_a_baseline_from_a_cpu_with_other_isa_flags_is_new_not_regressed() -> None:
    settings = GateSettings()
    # the control: the same history on the same machine is a regression
    assert judge_metrics(HISTORY, SLOWER, settings).verdict == "regressed"
    changes = machine_changes(stored("avx2"), stored("avx2 avx512_bf16 avx512f"))
    verdict = judge_metrics(HISTORY, SLOWER, settings, machine_changes=changes)
    assert verdict.verdict == "new" and not verdict.metrics and not verdict.regressions
    assert verdict.machine_changes == ("cpu_isa avx2 -> avx2 avx512_bf16 avx512f",)
    assert NO_MACHINE_BASELINE in verdict.notes[0]
    outcome = decide(
        DecisionInputs(
            "ok",
            [],
            verdict.verdict,
            "fail",
            "enforce",
            "cpu",
            machine_changes=verdict.machine_changes,
        )
    )
    assert (outcome.kind, outcome.fails) == ("passed", False)
    assert outcome.reason.startswith("no baseline for this machine, recorded as new")
    # whatever else changed too, another machine is never env-changed
    both = judge_metrics(
        HISTORY, SLOWER, settings, env_changes=("torch 2.12 -> 2.13",), machine_changes=changes
    )
    assert both.verdict == "new"


@pytest.mark.parametrize(
    ("policy", "verdict", "kind", "fails"),
    [
        ("warn", "env-changed", "env-changed", False),
        ("fail", "env-changed", "env-changed", True),
        ("ignore", "regressed", "regressed", True),
    ],
)
def test_software_changes_still_follow_the_env_policy(
    policy: str, verdict: str, kind: str, fails: bool
) -> None:
    old, new = stored("avx2"), {**stored("avx2"), "torch": "2.14.0"}
    assert machine_changes(old, new) == ()
    changes = software_changes(old, new)
    assert changes == ("torch 2.13.0 -> 2.14.0",)
    result = judge_metrics(HISTORY, SLOWER, GateSettings(env_policy=policy), env_changes=changes)
    assert result.verdict == verdict
    outcome = decide(DecisionInputs("ok", [], result.verdict, policy, "enforce", "cpu"))
    assert (outcome.kind, outcome.fails) == (kind, fails)


def test_an_old_segment_without_the_new_keys_still_compares() -> None:
    """The rule: a machine key missing from a stored segment (or None) is unknown, and unknown
    does not make a machine different; new keys are not software changes either."""
    old = {
        "cpu_model": "AMD EPYC",
        "cpu_threads": 2,
        "gpu_name": None,
        "gpu_memory_gib": None,
        "torch": "2.13.0",
        "driver": None,
        "dtype": "fp32",
        "attention": "sdpa",
    }
    current = stored("avx2 avx512f")
    assert machine_changes(old, current) == () and software_changes(old, current) == ()
    assert (
        judge_metrics(
            HISTORY, SLOWER, GateSettings(), env_changes=software_changes(old, current)
        ).verdict
        == "regressed"
    )
    entry = BaselineEntry("t.py::test_a", "abc", {}, [Segment(old, list(HISTORY))])
    assert entry.segment_for(current) is entry.segments[0]
    # a known key that differs still tells the machines apart
    assert machine_changes({**old, "cpu_threads": 4}, current) == ("cpu_threads 4 -> 2",)


def test_the_gate_reads_the_newest_segment_of_this_machine() -> None:
    avx2, avx512 = stored("avx2"), stored("avx2 avx512_bf16 avx512f")
    entry = BaselineEntry(
        "t.py::test_a",
        "abc",
        {},
        [Segment(avx2, [{"time_s": 1.0}]), Segment(avx512, [{"time_s": 2.0}])],
    )
    assert entry.segment_for(avx2) is entry.segments[0]  # a runner of the other kind recorded last
    assert entry.segment_for(avx512) is entry.segments[1]
    assert entry.segment_for(stored("avx2 avx512f amx_tile")) is None


def test_the_pooled_noise_comes_from_this_machines_segments_only() -> None:
    quiet, noisy = stored("avx2"), stored("avx2 avx512_bf16 avx512f")
    entries = {
        f"t.py::test_{i}": BaselineEntry(
            f"t.py::test_{i}",
            "abc",
            {},
            [
                Segment(quiet, [{"time_s": 1.0}, {"time_s": 1.01}, {"time_s": 0.99}]),
                Segment(
                    noisy, [{"time_s": 1.0}, {"time_s": 2.0}, {"time_s": 0.5}]
                ),  # recorded last: the "current"
            ],
        )
        for i in range(3)
    }
    baseline = BaselineFile("cpu", entries)
    on_quiet, on_noisy = baseline.pooled(quiet)["time_s"], baseline.pooled(noisy)["time_s"]
    assert on_quiet is not None and on_noisy is not None
    assert (
        on_quiet.variance < 0.001 < on_noisy.variance
    )  # the quiet machine does not borrow the other's noise
    assert (
        baseline.pooled()["time_s"] == on_noisy
    )  # without a fingerprint: the newest segments, as before
    assert (
        baseline.pooled(stored("avx2 amx_tile"))["time_s"] is None
    )  # a third machine has no history


def test_baseline_diff_against_results_reads_this_machines_segment(tmp_path: Path) -> None:
    avx2, avx512 = stored("avx2"), stored("avx2 avx512_bf16 avx512f")
    path = tmp_path / "cpu.yaml"
    config = {"width": 64, "steps": 2, "dtype": "fp32"}
    update_baseline(
        path,
        "cpu",
        [
            AcceptedRun("t.py::test_a", config, avx2, {"time_s": t, "commit": None})
            for t in (1.0, 1.01, 0.99)
        ],
    )
    update_baseline(
        path,
        "cpu",
        [
            AcceptedRun("t.py::test_a", config, avx512, {"time_s": t, "commit": None})
            for t in (4.0, 4.04, 3.96)
        ],
    )  # a faster-to-regress history, last
    baseline = read_baseline(path, "cpu")

    def results(fingerprint: dict[str, Any], time_s: float) -> dict[str, Any]:
        return {
            "records": [
                {
                    "nodeid": "t.py::test_a",
                    "outcome": "ok",
                    "time_s": time_s,
                    "stages": {},
                    "peak_memory": {},
                    "fingerprint": fingerprint,
                }
            ]
        }

    # on the avx2 machine, 4.0 s is judged against the avx2 runs (1.0 s), not the newest segment
    assert "| t.py::test_a | regressed |" in diff_results(baseline, results(avx2, 4.0))
    assert "| t.py::test_a | pass |" in diff_results(baseline, results(avx512, 4.0))
    other = diff_results(baseline, results(stored("avx2 amx_tile"), 40.0))
    assert f"| t.py::test_a | new ({NO_MACHINE_BASELINE}) |" in other and "cpu_isa" in other


def test_baseline_diff_of_two_files_never_subtracts_two_machines(tmp_path: Path) -> None:
    config = {"width": 64, "steps": 2, "dtype": "fp32"}
    files = {}
    for name, fingerprint, time_s in (
        ("old", stored("avx2"), 1.0),
        ("same", stored("avx2"), 1.5),
        ("other", stored("avx2 avx512f"), 3.0),
    ):
        update_baseline(
            tmp_path / f"{name}.yaml",
            "cpu",
            [AcceptedRun("t.py::test_a", config, fingerprint, {"time_s": time_s, "commit": None})],
        )
        files[name] = read_baseline(tmp_path / f"{name}.yaml", "cpu")
    assert "(+50.0 %)" in diff_baselines(files["old"], files["same"])
    table = diff_baselines(files["old"], files["other"])
    assert (
        "| t.py::test_a | another machine | 1.00 s -> 3.00 s (-) |" in table
        and "cpu_isa avx2 -> avx2 avx512f" in table
    )


# -- the baseline store ----------------------------------------------------------------------------
def accepted(fingerprint: dict[str, Any], time_s: float) -> AcceptedRun:
    return AcceptedRun(
        "t.py::test_a",
        {"width": 64, "steps": 2, "dtype": "fp32"},
        fingerprint,
        {"date": "2026-01-01T00:00:00+00:00", "commit": None, "time_s": time_s},
    )


def test_accepted_runs_of_another_machine_start_its_own_segment(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    avx2, avx512 = stored("avx2"), stored("avx2 avx512_bf16 avx512f")
    update_baseline(path, "cpu", [accepted(avx2, 1.0)])
    summary = update_baseline(path, "cpu", [accepted(avx512, 2.0)])
    assert summary.new_segments == ("t.py::test_a",)
    update_baseline(path, "cpu", [accepted(avx2, 1.1)])  # back on the first kind: its segment grows
    entry = read_baseline(path, "cpu").entries["t.py::test_a"]
    assert [[r["time_s"] for r in s.runs] for s in entry.segments] == [[1.0, 1.1], [2.0]]


def test_an_old_segment_is_extended_and_pinned_to_this_machine(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    old = {k: v for k, v in stored("avx2").items() if k not in ("cpu_isa", "cpu_physical_cores")}
    update_baseline(path, "cpu", [accepted(old, 1.0)])
    summary = update_baseline(path, "cpu", [accepted(stored("avx2"), 1.1)])
    assert summary.new_segments == ()
    entry = read_baseline(path, "cpu").entries["t.py::test_a"]
    assert len(entry.segments) == 1 and len(entry.segments[0].runs) == 2
    assert (
        entry.segments[0].fingerprint["cpu_isa"] == "avx2"
    )  # now known: another CPU no longer matches
    assert entry.segment_for(stored("avx2 avx512f")) is None


# -- end to end: a stored baseline from a CPU with other ISA flags ---------------------------------
TESTS = """
import pytest

@pytest.mark.i2v(width=64, height=64, frames=2, steps=2, seed=1)
def test_a(i2v_run):
    assert i2v_run().outcome == "ok"
"""
ARGS = (
    "--i2v-baseline-dir",
    "bl",
    "--i2v-json",
    "r.json",
    "-p",
    "no:randomly",
    "--i2v-gate-mode",
    "enforce",
    "--i2v-env-policy",
    "fail",
)


def test_a_baseline_from_another_cpu_is_new_end_to_end(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(test_m=TESTS)
    i2v_project.runpytest(*ARGS, "--i2v-update-baselines").assert_outcomes(passed=1)
    path = i2v_project.path / "bl" / "cpu.yaml"
    document = yaml.safe_load(path.read_text())
    segment = document["entries"]["test_m.py::test_a"]["segments"][0]
    if segment["fingerprint"].get("cpu_isa") is None:
        pytest.skip("this machine's /proc/cpuinfo has no flags line: its ISA is unknown")
    # the stored run: another CPU's (other ISA flags), four times faster (this run reads +300 %)
    segment["fingerprint"]["cpu_isa"] = "amx_bf16 amx_tile avx2 avx512_bf16 avx512f (another cpu)"
    for run in segment["runs"]:
        for metric in ("time_s", "step_s", "decode_s", "encode_s"):
            if metric in run:
                run[metric] = run[metric] / 4
    path.write_text(yaml.safe_dump(document, sort_keys=False))

    result = i2v_project.runpytest(*ARGS)
    result.assert_outcomes(passed=1)
    record = json.loads((i2v_project.path / "r.json").read_text())["records"][0]
    assert record["verdict"]["verdict"] == "new"
    assert record["decision"]["kind"] == "passed"
    assert record["decision"]["reason"].startswith(
        "no baseline for this machine, recorded as new: cpu_isa"
    )

    # accepting this run starts this machine's segment beside the other one's
    i2v_project.runpytest(*ARGS, "--i2v-update-baselines").assert_outcomes(passed=1)
    segments = yaml.safe_load(path.read_text())["entries"]["test_m.py::test_a"]["segments"]
    assert len(segments) == 2 and segments[0]["fingerprint"]["cpu_isa"].endswith("(another cpu)")


def test_a_reset_drops_only_this_machines_history_and_keeps_all_its_new_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cpu.yaml"
    avx2, avx512 = stored("avx2"), stored("avx2 avx512_bf16 avx512f")
    update_baseline(path, "cpu", [accepted(avx2, 1.0), accepted(avx2, 1.1)])
    update_baseline(path, "cpu", [accepted(avx512, 2.0)])
    summary = update_baseline(
        path, "cpu", [accepted(avx2, 3.0), accepted(avx2, 3.1), accepted(avx2, 3.2)], mode="reset"
    )
    assert summary.reset == ("t.py::test_a",)
    entry = read_baseline(path, "cpu").entries["t.py::test_a"]
    # the other machine's segment stays; this machine's history is the three new
    # runs, not the last one
    assert [[r["time_s"] for r in s.runs] for s in entry.segments] == [[2.0], [3.0, 3.1, 3.2]]
