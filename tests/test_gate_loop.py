"""The whole loop on the tiny model: record a baseline, re-run, inject a slowdown / extra memory /
a driver change, and update baselines under xdist."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import VIRTUAL_TIME_ARGS

CONFTEST = """
import os

import pytest
import torch

from pytest_i2v.simulated_plugin import add_work


def pytest_i2v_environment(environment):
    environment["driver"] = os.environ.get("FAKE_DRIVER", "550.54")


SLOW_PROCESS = []


def slow_process():
    '''The first process to claim the marker file runs slow throughout (a between-process fluke);
    no other does.'''
    if not SLOW_PROCESS:
        try:
            os.close(os.open("slow-process.claim", os.O_CREAT | os.O_EXCL))
            SLOW_PROCESS.append(True)
        except FileExistsError:
            SLOW_PROCESS.append(False)
    return SLOW_PROCESS[0]


@pytest.fixture(autouse=True)
def inject(request):
    what, _, target = os.environ.get("INJECT", "").partition(":")
    if not what or request.node.name != target:
        yield
        return
    pipe = request.getfixturevalue("i2v_pipeline")

    def slow(module, args):
        if what != "slowprocess" or slow_process():
            add_work(0.08)  # virtual seconds: the verdict follows the injection, not the machine

    def hungry(module, args):
        block = torch.ones(100_000_000)  # 400 MB, touched, freed when the hook returns
        del block

    def drift(module, args, output):  # the denoiser's prediction off by 20 %: another video
        return (output[0] * 0.8, *output[1:]) if isinstance(output, tuple) else output * 0.8

    if what == "drift":
        handle = pipe.unet.register_forward_hook(drift)
    else:
        handle = pipe.unet.register_forward_pre_hook(hungry if what == "hungry" else slow)
    yield
    handle.remove()
"""

TESTS = """
import pytest

SMALL = dict(resolution="256p", frames=2, steps=10)

@pytest.mark.i2v(**SMALL, seed=1)
def test_a(i2v_run):
    assert i2v_run().outcome == "ok"

@pytest.mark.i2v(**SMALL, seed=2)
def test_b(i2v_run):
    assert i2v_run().outcome == "ok"
"""

# Every run here times on the virtual clock (tests/conftest.py's virtual_time): the verdicts are the
# gate's decision on known times, never the machine's noise. Memory is still the real host RSS.
ARGS = (
    "--i2v-repeats",
    "3",
    "--i2v-warmup",
    "1",
    "--i2v-baseline-dir",
    "bl",
    "--i2v-json",
    "r.json",
    "-p",
    "no:randomly",
    "--i2v-profile-dir",
    "profiles",
    *VIRTUAL_TIME_ARGS,
)
# The shipped cpu profile with wider bars: the memory figure (host RSS) is real and shares the
# machine.
CPU_PROFILE = """
name: cpu
memory_gb: 24
device: cpu
model: tiny
dtype: fp32
scaling: {size_divisor: 8, steps_divisor: 5}
gate: {min_effect: 1.0, tolerance: 1.0, prior_noise: 0.08, memory_rel: 0.05, memory_abs_mib: 96}
"""


@pytest.fixture
def loop(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, virtual_time: tuple[str, ...]
) -> pytest.Pytester:
    monkeypatch.delenv("INJECT", raising=False)
    monkeypatch.delenv("FAKE_DRIVER", raising=False)
    i2v_project.makeconftest(CONFTEST)
    i2v_project.makepyfile(test_loop=TESTS)
    (i2v_project.path / "profiles").mkdir()
    (i2v_project.path / "profiles" / "cpu.yaml").write_text(CPU_PROFILE)
    result = i2v_project.runpytest(*ARGS, "--i2v-update-baselines")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["i2v baselines written: */bl/cpu.yaml: 2 run(s) recorded, new entries: 2"]
    )
    return i2v_project


def verdicts(pytester: pytest.Pytester) -> dict[str, str]:
    records = json.loads((pytester.path / "r.json").read_text())["records"]
    return {r["nodeid"].split("::")[1]: r["verdict"]["verdict"] for r in records}


def test_recorded_baseline_then_unchanged_rerun_passes(loop: pytest.Pytester) -> None:
    stored = yaml.safe_load((loop.path / "bl" / "cpu.yaml").read_text())
    assert sorted(stored["entries"]) == ["test_loop.py::test_a", "test_loop.py::test_b"]
    run = stored["entries"]["test_loop.py::test_a"]["segments"][0]["runs"][0]
    assert run["time_s"] > 0 and run["step_s"] > 0 and run["host_rss_bytes"] > 0
    assert (
        stored["entries"]["test_loop.py::test_a"]["segments"][0]["fingerprint"]["driver"]
        == "550.54"
    )
    result = loop.runpytest(*ARGS)
    result.assert_outcomes(passed=2)
    # unchanged: nothing regressed (a noisy tiny stage may read as "improved", which never fails)
    assert set(verdicts(loop).values()) <= {"pass", "improved"}


def test_slowdown_fails_exactly_that_test_with_the_section(
    loop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INJECT", "slow:test_b")
    result = loop.runpytest(*ARGS, "--junitxml", "junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*i2v gate: regressed (profile cpu, baseline */bl/cpu.yaml)*",
            "*per-step time: REGRESSED +*: current * vs baseline median * (1 run, pass band *); "
            "bar: +/-100% tolerance*",
            "*note: re-measured (1/1, in a fresh process) after a regressed verdict "
            "with median * s: confirmed*",
            "*re-baseline: python -m pytest test_loop.py::test_b --gpu-profile cpu "
            "--i2v-update-baselines*",
            "FAILED test_loop.py::test_b - i2v gate: regressed*",
        ]
    )
    assert "FAILED test_loop.py::test_a" not in result.stdout.str()
    assert verdicts(loop)["test_b"] == "regressed" and verdicts(loop)["test_a"] != "regressed"
    junit = (loop.path / "junit.xml").read_text()
    assert 'failures="1"' in junit  # JUnit counts the regression (pytest-benchmark's gate shows 0)


def test_only_a_fresh_process_can_reject_a_slow_process(
    loop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """test_b's process runs slow throughout: a re-measurement in that process confirms the flag and
    fails the unchanged code; the default re-measurement in a fresh process (which is not slow)
    rejects it."""
    monkeypatch.setenv("INJECT", "slowprocess:test_b")
    result = loop.runpytest(*ARGS, "--i2v-confirm-in", "same")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*note: re-measured (1/1, in this process) after a regressed verdict * s: confirmed*"]
    )

    (loop.path / "slow-process.claim").unlink()
    recorded = (loop.path / "bl" / "cpu.yaml").read_bytes()
    result = loop.runpytest(*ARGS, "--junitxml", "junit.xml", "--i2v-markdown", "r.md")
    result.assert_outcomes(passed=2)
    records = {
        r["nodeid"].split("::")[1]: r
        for r in json.loads((loop.path / "r.json").read_text())["records"]
    }
    fresh = records["test_b"]
    # passed; or improved, when the fresh child's host RSS (a new process) reads lower than the
    # baseline's, which was recorded inside this test process: memory may improve, the time did not
    # regress
    assert fresh["measurements"] == 2 and fresh["decision"]["kind"] in ("passed", "improved")
    assert fresh["verdict"]["verdict"] != "regressed" and not fresh["decision"]["fails"]
    assert "re-measured (1/1, in a fresh process) after a regressed verdict" in fresh["notes"][-1]
    assert fresh["notes"][-1].endswith(": not confirmed") and records["test_a"]["measurements"] == 1
    # the child wrote none of the parent's files: one JUnit report of two tests, the parent's
    # Markdown
    assert (
        'tests="2"' in (loop.path / "junit.xml").read_text()
        and "test\\_b" in (loop.path / "r.md").read_text()
    )
    assert (loop.path / "bl" / "cpu.yaml").read_bytes() == recorded


def test_extra_memory_is_a_memory_regression(
    loop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host RSS is the whole process's: both runs are fresh processes with a baseline of their own,
    so what earlier tests left in this process (a pytest-xdist worker runs them in any order) cannot
    hide the 400 MB."""
    fresh = (*ARGS, "--i2v-baseline-dir", "bl-fresh")
    loop.runpytest_subprocess(*fresh, "--i2v-update-baselines").assert_outcomes(passed=2)
    monkeypatch.setenv("INJECT", "hungry:test_a")
    result = loop.runpytest_subprocess(*fresh)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*peak host RSS: REGRESSED +*bar: +5% + 96 MiB over the baseline*"]
    )
    assert verdicts(loop)["test_a"] == "regressed"


@pytest.mark.parametrize(
    ("policy", "outcome"),
    [("warn", {"passed": 2}), ("fail", {"failed": 2}), ("ignore", {"passed": 2})],
)
def test_driver_change_follows_the_policy(
    loop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, policy: str, outcome: dict[str, int]
) -> None:
    monkeypatch.setenv("FAKE_DRIVER", "560.35")
    result = loop.runpytest(*ARGS, "--i2v-env-policy", policy)
    result.assert_outcomes(**outcome)
    expected = {"pass", "improved"} if policy == "ignore" else {"env-changed"}
    assert set(verdicts(loop).values()) <= expected
    if policy == "fail":
        result.stdout.fnmatch_lines(
            ["*environment changed since the baseline: driver 550.54 -> 560.35*"]
        )


def test_update_after_driver_change_starts_a_new_segment(
    loop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DRIVER", "560.35")
    result = loop.runpytest(*ARGS, "--i2v-update-baselines")
    result.stdout.fnmatch_lines(["*: 2 run(s) recorded, new fingerprint segments: 2"])
    stored = yaml.safe_load((loop.path / "bl" / "cpu.yaml").read_text())
    segments = stored["entries"]["test_loop.py::test_a"]["segments"]
    assert [s["fingerprint"]["driver"] for s in segments] == ["550.54", "560.35"]
    loop.runpytest(*ARGS).assert_outcomes(passed=2)
    assert set(verdicts(loop).values()) <= {"pass", "improved"}


def test_renamed_test_and_changed_config_are_reported_not_compared(loop: pytest.Pytester) -> None:
    loop.makepyfile(
        test_loop=TESTS.replace("def test_a", "def test_a_renamed").replace("seed=2", "seed=3")
    )
    result = loop.runpytest(*ARGS, "-rA")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*has the same generation config under test_loop.py::test_a (renamed test?)*",
            "*the generation config changed since the baseline (seed)*",
        ]
    )
    assert verdicts(loop) == {"test_a_renamed": "new", "test_b": "new"}


def test_failed_or_oom_runs_are_never_recorded(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        """
        import pytest

        @pytest.mark.i2v(resolution="256p", frames=2, steps=10)
        def test_fails_after_measuring(i2v_run):
            i2v_run()
            assert False, "a real failure"

        @pytest.mark.i2v(resolution="256p", frames=2, steps=10, seed=5)
        def test_ok(i2v_run):
            i2v_run()
        """
    )
    i2v_project.runpytest("--i2v-baseline-dir", "bl", "--i2v-update-baselines").assert_outcomes(
        passed=1, failed=1
    )
    stored = yaml.safe_load((i2v_project.path / "bl" / "cpu.yaml").read_text())
    assert list(stored["entries"]) == ["test_failed_or_oom_runs_are_never_recorded.py::test_ok"]


def test_the_shipped_cpu_profile_reports_and_enforces_on_request(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, virtual_time: tuple[str, ...]
) -> None:
    monkeypatch.delenv("FAKE_DRIVER", raising=False)
    i2v_project.makeconftest(CONFTEST)
    i2v_project.makepyfile(test_loop=TESTS)
    args = (
        "--i2v-repeats",
        "3",
        "--i2v-warmup",
        "1",
        "--i2v-baseline-dir",
        "bl",
        "--i2v-json",
        "r.json",
        *virtual_time,
    )
    monkeypatch.delenv("INJECT", raising=False)
    i2v_project.runpytest(*args, "--i2v-update-baselines").assert_outcomes(passed=2)
    monkeypatch.setenv("INJECT", "slow:test_b")
    result = i2v_project.runpytest(*args, "--i2v-confirm", "0", "-rA")
    result.assert_outcomes(
        passed=2
    )  # the cpu profile reports only: a loaded CPU must not fail the main job
    assert verdicts(i2v_project)["test_b"] == "regressed"
    result.stdout.fnmatch_lines(
        ["*note: profile cpu reports only (--i2v-gate-mode enforce to fail on it)*"]
    )
    # enforced on request: the slowed test fails after its one re-measurement, the unchanged one
    # passes
    result = i2v_project.runpytest(*args, "--i2v-confirm", "1", "--i2v-gate-mode", "enforce")
    result.assert_outcomes(passed=1, failed=1)


def test_a_slower_machine_is_not_slower_code(
    loop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The baseline was recorded at machine speed 1 (its runs store the probe). The same code on a
    machine at 0.4x the speed takes 2.5x the time (past the profile's 100 % bar): the probe reads
    0.40x, no test fails or reads "would have regressed", the decision and the headline name the
    machine; memory is still judged. On a machine of the baseline's speed, the same slowdown
    injected into test_b's code fails test_b."""
    stored = yaml.safe_load((loop.path / "bl" / "cpu.yaml").read_text())
    run = stored["entries"]["test_loop.py::test_a"]["segments"][0]["runs"][0]
    assert (run["probe_gemm_gflops"], run["probe_copy_gbs"], run["probe_tiny_ops_per_ms"]) == (
        100.0,
        20.0,
        200.0,
    )
    monkeypatch.setenv("PYTEST_I2V_VIRTUAL_TIME", '{"machine_speed": 0.4}')
    result = loop.runpytest(*ARGS, "--i2v-gate-mode", "enforce")
    result.assert_outcomes(passed=2)
    records = json.loads((loop.path / "r.json").read_text())
    slower_machine = (
        "this machine ran the probe at 0.40x the baseline machine's speed (matrix products 0.40x"
    )
    for record in records["records"]:
        decision = record["decision"]
        assert decision["kind"] == "passed" and decision["reason"].startswith(slower_machine)
        assert decision["reason"].endswith("timings not comparable; memory still judged")
        time_metrics = [
            m for m in record["verdict"]["metrics"] if m["metric"] in ("time_s", "step_s")
        ]
        assert {m["verdict"] for m in time_metrics} == {"regressed"} and not any(
            m["gating"] for m in time_metrics
        )
        assert any(
            m["gating"] for m in record["verdict"]["metrics"] if m["metric"] == "host_rss_bytes"
        )
    headline = records["gate"]["headline"]
    assert headline.startswith(
        "the gate passes: this machine ran the probe at 0.40x the baseline machine's speed"
    )
    assert "--i2v-update-baselines=reset" in headline and "regressed" not in headline
    assert records["environment"]["machine_probe"]["start"]["gemm_gflops"] == 40.0

    monkeypatch.setenv("PYTEST_I2V_VIRTUAL_TIME", "1")
    monkeypatch.setenv("INJECT", "slow:test_b")
    result = loop.runpytest(*ARGS, "--i2v-gate-mode", "enforce")
    result.assert_outcomes(passed=1, failed=1)
    assert verdicts(loop)["test_b"] == "regressed"


@pytest.mark.parametrize("inject", ["", "slow:test_b"], ids=["unchanged", "slowdown"])
def test_baseline_diff_decides_what_the_gate_decided(
    loop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, inject: str
) -> None:
    """The review CLI and the plugin go through one judgement and one decision: ``baseline diff``
    of the run's results against its baseline comes to every test's recorded outcome."""
    from pytest_i2v.cli_baseline import diff_results
    from pytest_i2v.verdict.baseline_store import read_baseline

    if inject:
        monkeypatch.setenv("INJECT", inject)
    loop.runpytest(*ARGS)
    document = json.loads((loop.path / "r.json").read_text())
    table = diff_results(read_baseline(loop.path / "bl" / "cpu.yaml", "cpu"), document)
    kinds = set()
    for record in document["records"]:
        row = next(
            line for line in table.splitlines() if line.startswith(f"| {record['nodeid']} |")
        )
        decision = record["decision"]
        kinds.add(decision["kind"])
        assert row.endswith(f"| {decision['kind']}{' (fails)' if decision['fails'] else ''} |"), row
    assert ("regressed" in kinds) == bool(inject)


def test_a_faster_head_with_another_video_fails_as_output_changed(
    loop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faster but different is not faster: the base is slow on test_a, the head fast with another
    video; test_a fails as output changed with its figures, test_b passes, the base re-run three
    times passes."""
    monkeypatch.setenv("INJECT", "slow:test_a")
    loop.runpytest(*ARGS, "--i2v-update-baselines=reset").assert_outcomes(passed=2)
    stored = yaml.safe_load((loop.path / "bl" / "cpu.yaml").read_text())
    segment = stored["entries"]["test_loop.py::test_a"]["segments"][0]
    assert (loop.path / "bl" / "cpu.outputs" / f"{segment['output']}.json.gz").is_file()
    monkeypatch.setenv("INJECT", "drift:test_a")
    head = loop.runpytest(*ARGS)
    head.assert_outcomes(passed=1, failed=1)
    head.stdout.fnmatch_lines(
        [
            "FAILED test_loop.py::test_a - i2v: output changed: PSNR * dB < 80.0 dB*",
            "*::test_a: * | output-changed | output changed: PSNR * dB < 80.0 dB, SSIM * "
            "against the baseline's output, * frames",
        ]
    )
    records = {r["nodeid"]: r for r in json.loads((loop.path / "r.json").read_text())["records"]}
    changed = records["test_loop.py::test_a"]
    assert changed["time_s"] < segment["runs"][0]["time_s"]  # it did get faster
    assert changed["decision"]["kind"] == "output-changed" and changed["decision"]["fails"]
    assert changed["fidelity"]["verdict"] == "changed"
    assert changed["fidelity"]["reference"] is not None  # the report draws what it was
    assert records["test_loop.py::test_b"]["fidelity"]["figures"]["identical"]
    assert "the gate fails: 1 output-changed" in head.stdout.str()
    monkeypatch.setenv("INJECT", "slow:test_a")
    for _ in range(3):
        again = loop.runpytest(*ARGS)
        again.assert_outcomes(passed=2)
        assert "output changed" not in again.stdout.str()
        records = json.loads((loop.path / "r.json").read_text())["records"]
        assert [r["fidelity"]["verdict"] for r in records] == ["held", "held"]
        # this code run twice here gives one output: nothing to excuse
        assert all(r["output_repeat"]["identical"] for r in records)
