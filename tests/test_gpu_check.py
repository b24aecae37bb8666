"""``python -m pytest_i2v gpu-check``: the pure checks on hand-made records (a pass and a fail each),
the command's bad input, and one end-to-end dry run on the simulated GPUs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v import gpu_check
from pytest_i2v.cli import main
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.gpu_check import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    CheckPlan,
    RunResult,
    Tolerances,
    check_event_total,
    check_fast_prediction,
    check_memory_order,
    check_offload_peak,
    check_oom_recovery,
    check_same_peak,
    check_second_gpu,
    check_step_sum,
    evaluate,
    make_plan,
    render_summary,
)

GiB = 2**30
CHECK_LINE = re.compile(r"^(PASS|FAIL|N/A) \(([a-h])\) ")


def record(name: str = "test_sweep[512p]", *, outcome: str = "ok", allocated: float = 10.0, reserved: float = 11.0,
           nvml: float | None = 12.0, scope: str = "process", encode: float = 1.0, steps: tuple[float, ...] = (1.0, 1.0, 1.0),
           decode: float = 1.0, totals: tuple[float, ...] = (5.0, 5.0), mode: str = "full", time_s: float = 5.0,
           device: str = "cuda:0", **extra: Any) -> dict[str, Any]:
    """A results record as the plugin writes it; memory in GiB, times in seconds."""
    fast = {"predicted": True, "measured_steps": len(steps), "steps": 50, "measured_time_s": totals[0],
            "measured_time_samples_s": list(totals)} if mode == "fast" else None
    return {
        "nodeid": f"test_gpu_check_suite.py::{name}", "outcome": outcome, "mode": mode, "fast": fast,
        "time_s": time_s if outcome == "ok" else None,
        "time_samples_s": [time_s] * len(totals) if mode == "fast" else list(totals),
        "stages": {"encode_s": encode, "decode_s": decode, "step_s": steps[0], "step_samples_s": [list(steps)] * len(totals),
                   "encode_samples_s": [encode] * len(totals), "decode_samples_s": [decode] * len(totals),
                   "denoise_s": sum(steps)},
        "peak_memory": {"allocated_bytes": int(allocated * GiB), "reserved_bytes": int(reserved * GiB),
                        "device_bytes": int(nvml * GiB) if nvml is not None else None, "host_rss_bytes": GiB,
                        "device_scope": scope},
        "config": {"width": 512, "height": 512, "frames": 16, "steps": 50, "device": device},
        **extra,
    }


# -- (a) --------------------------------------------------------------------------------------
def test_memory_order_passes_when_allocated_reserved_nvml_and_total_are_ordered() -> None:
    result = check_memory_order([record()], total_bytes=24 * GiB)
    assert result.status == PASS and "NVML per process" in result.detail and "total 24.00 GiB" in result.detail


def test_memory_order_fails_when_nvml_is_below_the_allocator() -> None:
    result = check_memory_order([record(nvml=9.0)], total_bytes=24 * GiB)
    assert result.status == FAIL and "reserved > NVML (process)" in result.detail


def test_memory_order_fails_when_nvml_exceeds_the_card() -> None:
    assert check_memory_order([record(nvml=25.0)], total_bytes=24 * GiB).status == FAIL


def test_memory_order_says_when_nvml_is_device_wide_or_missing() -> None:
    assert "device-wide" in check_memory_order([record(scope="device")], 24 * GiB).detail
    missing = check_memory_order([record(nvml=None, scope="unavailable")], 24 * GiB)
    assert missing.status == NOT_APPLICABLE and "unavailable" in missing.detail


# -- (b) and (c) --------------------------------------------------------------------------------
def test_event_total_within_two_percent_passes_and_five_fails() -> None:
    assert check_event_total([record(totals=(5.05, 4.96))], 2.0).status == PASS  # 1 % and 0.8 % apart
    failed = check_event_total([record(totals=(5.0, 5.25))], 2.0)  # the second repeat is 4.8 % apart
    assert failed.status == FAIL and "1 of 2 repeats" in failed.detail and "repeat 2" in failed.detail


def test_event_total_in_fast_mode_uses_the_measured_runs_not_the_prediction() -> None:
    fast = record(mode="fast", steps=(1.0, 1.0), totals=(4.0, 4.0), time_s=52.0)  # 1 + 2 + 1 measured, 52 predicted
    assert check_event_total([fast], 2.0).status == PASS


def test_event_total_is_shown_not_judged_without_a_tolerance() -> None:
    result = check_event_total([record(totals=(5.0, 6.25))], None)
    assert result.status == NOT_APPLICABLE and "not judged" in result.detail and "-20.00 %" in result.detail


def test_step_sum_within_two_percent_passes_and_five_fails() -> None:
    assert check_step_sum([record(totals=(5.03, 5.0))], 2.0).status == PASS  # denoise 3.03 vs steps 3.0: 1 %
    failed = check_step_sum([record(totals=(5.16, 5.0))], 2.0)  # denoise 3.16: 5 %
    assert failed.status == FAIL and "from the denoise time" in failed.detail


def test_timing_checks_fail_without_timings() -> None:
    bare = record()
    bare["stages"] = {}
    assert check_step_sum([bare], 2.0).status == FAIL


# -- (d) --------------------------------------------------------------------------------------
def test_same_peak_within_one_percent_passes_and_five_fails() -> None:
    fresh = record(allocated=10.0, reserved=11.0)
    assert check_same_peak(record(allocated=10.05, reserved=11.05), fresh, 1.0).status == PASS
    failed = check_same_peak(record(allocated=10.5, reserved=11.0), fresh, 1.0)
    assert failed.status == FAIL and "+5.00 %" in failed.detail


def test_same_peak_fails_without_the_fresh_record() -> None:
    result = check_same_peak(record(), None, 1.0)
    assert result.status == FAIL and "fresh-process" in result.detail


# -- (e) --------------------------------------------------------------------------------------
def test_oom_recovery_passes_when_the_oom_is_recorded_and_the_next_test_is_ok() -> None:
    oom = record("test_oom_largest", outcome="oom", oom={"stage": "denoise", "step": 3, "form": "allocator",
                                                         "before_bytes": 5 * GiB, "after_free_bytes": 5 * GiB})
    result = check_oom_recovery(oom, record("test_after_oom", memory_start={"allocated_bytes": 5 * GiB}))
    assert result.status == PASS and "OOM during step 3" in result.detail


def test_oom_recovery_fails_when_nothing_ran_out_or_the_next_test_broke() -> None:
    assert check_oom_recovery(record("test_oom_largest"), record("test_after_oom")).status == FAIL
    oom = record("test_oom_largest", outcome="oom", oom={"stage": "encode"})
    assert check_oom_recovery(oom, record("test_after_oom", outcome="oom")).status == FAIL
    assert check_oom_recovery(oom, None).status == FAIL


# -- (f) --------------------------------------------------------------------------------------
def test_fast_prediction_within_two_percent_passes_and_five_fails() -> None:
    full = record("test_full_smallest", time_s=20.0)
    assert check_fast_prediction(record(mode="fast", time_s=20.2), full, 2.0).status == PASS
    failed = check_fast_prediction(record(mode="fast", time_s=21.0), full, 2.0)
    assert failed.status == FAIL and "+5.00 %" in failed.detail
    assert check_fast_prediction(record(mode="fast", time_s=21.0), full, None).status == NOT_APPLICABLE


def test_fast_prediction_needs_a_fast_and_a_full_record() -> None:
    assert check_fast_prediction(record(time_s=20.0), record(time_s=20.0), 2.0).status == FAIL


# -- (g) --------------------------------------------------------------------------------------
def test_offload_peak_must_be_lower() -> None:
    assert check_offload_peak(record(allocated=6.0), record(allocated=10.0)).status == PASS
    failed = check_offload_peak(record(allocated=10.0), record(allocated=10.0))
    assert failed.status == FAIL and "+0.0 %" in failed.detail


# -- (h) --------------------------------------------------------------------------------------
def test_second_gpu_is_not_applicable_on_one_gpu() -> None:
    result = check_second_gpu(None, None, [], None, Tolerances())
    assert result.status == NOT_APPLICABLE and result.detail == "one GPU"
    assert result.line == "N/A (h) (a)-(c) on a second GPU: one GPU"


def test_second_gpu_applies_a_to_c_on_its_records() -> None:
    good = [record(device="cuda:1")]
    assert check_second_gpu("cuda:1", None, good, 24 * GiB, Tolerances()).status == PASS
    assert check_second_gpu("cuda:1", None, [record(device="cuda:1", nvml=9.0)], 24 * GiB, Tolerances()).status == FAIL
    wrong = check_second_gpu("cuda:1", None, [record(device="cuda:0")], 24 * GiB, Tolerances())
    assert wrong.status == FAIL and "another device" in wrong.detail
    assert check_second_gpu("cuda:1", "the second run timed out", [], None, Tolerances()).status == FAIL


# -- all checks together ---------------------------------------------------------------------------
def plan() -> CheckPlan:
    return CheckPlan(dry_run=False, device="cuda:0", other_device=None, model="random", dtype="fp16",
                     sizes=(("256p", 256), ("512p", 512), ("768p", 768), ("1024p", 1024)), frames=16, steps=50,
                     guidance=9.0, fast_steps=5, repeats=2, warmup=1, offload_steps=10, oom_headroom_bytes=GiB,
                     timeout_s=600.0)


def run(name: str, records: list[dict[str, Any]] | None, returncode: int | None = 0) -> RunResult:
    document = None if records is None else {"environment": {"gpu_name": "NVIDIA GeForce RTX 4090", "gpu_memory_gib": 23.99,
                                                             "driver": "560.35", "cuda": "12.4", "torch": "2.13.0",
                                                             "diffusers": "0.42.1"}, "records": records}
    return RunResult(name=name, command=("pytest",), returncode=returncode, seconds=1.0, document=document,
                     log="ERROR: something broke")


def good_runs() -> tuple[RunResult, RunResult, RunResult]:
    main_records = [record("test_sweep[256p]", mode="fast", time_s=20.0), record("test_full_smallest", time_s=20.1),
                    record("test_sweep[512p]", mode="fast", time_s=40.0, roofline={"efficiency": 0.41}),
                    record("test_sweep[768p]", mode="fast"), record("test_sweep[1024p]", mode="fast", allocated=20.0,
                                                                    reserved=21.0, nvml=22.0),
                    record("test_after_largest", mode="fast"), record("test_offload", allocated=6.0, reserved=7.0, nvml=8.0)]
    oom = [record("test_oom_largest", outcome="oom", oom={"stage": "denoise", "step": 1}), record("test_after_oom")]
    return run("main", main_records), run("fresh", [record("test_sweep[512p]", mode="fast")]), run("oom", oom, 1)


def test_evaluate_gives_eight_checks_in_order() -> None:
    main_run, fresh, oom = good_runs()
    checks = evaluate(plan(), main_run, fresh, oom, None)
    assert [c.key for c in checks] == list("abcdefgh")
    assert [c.status for c in checks] == [PASS] * 7 + [NOT_APPLICABLE]


def test_evaluate_fails_the_checks_of_a_run_without_results() -> None:
    _, fresh, oom = good_runs()
    checks = evaluate(plan(), run("main", None, returncode=2), fresh, oom, None)
    failed = {c.key for c in checks if c.status == FAIL}
    assert failed == {"a", "b", "c", "d", "f", "g"}
    assert "the main run exited 2 without a results file" in checks[0].detail and "something broke" in checks[0].detail


def test_summary_has_the_environment_the_generations_and_the_checks() -> None:
    main_run, fresh, oom = good_runs()
    checks = evaluate(plan(), main_run, fresh, oom, None)
    text = render_summary(plan(), main_run, checks, [main_run, fresh, oom])
    assert "| NVIDIA GeForce RTX 4090 | 24.0 GiB | 560.35 | 12.4 | 2.13.0 | 0.42.1 |" in text
    assert "| 512p | 512x512, 16 frames, 50 steps | ok | 40.00 s (predicted) |" in text and "| 41 % |" in text
    assert "fast mode: 5 of 50 denoising steps measured" in text
    assert "- N/A (h) (a)-(c) on a second GPU: one GPU" in text
    assert text.rstrip().endswith("gpu-check passed: 7 passed, 0 failed, 1 not applicable (fast mode, 5 of 50 steps measured)")


# -- the command -------------------------------------------------------------------------------
def test_the_generated_suite_is_valid_python() -> None:
    ast.parse(gpu_check.suite_source(plan()))
    ast.parse(gpu_check.suite_source(make_plan(dry_run=True)))


def test_the_dry_run_plan_uses_the_cpu_profiles_sizes_and_two_simulated_gpus() -> None:
    dry = make_plan(dry_run=True, device="cuda")
    assert dry.device == "cuda:0" and dry.other_device == "cuda:1" and dry.model == "tiny"
    assert [pixels for _, pixels in dry.sizes] == [32, 64, 96, 128]
    assert make_plan(dry_run=True, device="cuda:1").other_device == "cuda:0"


def test_the_plugin_is_passed_with_p_only_when_it_is_not_autoloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    assert gpu_check.plugin_args() == []  # installed here: the entry point loads it, -p would register it twice
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert gpu_check.plugin_args() == ["-p", "pytest_i2v.plugin"]


@pytest.mark.parametrize(("argv", "message"), [
    (["gpu-check", "--dry-run", "--device", "cuda:2"], "--device cuda:2: this machine has 2 CUDA device(s)"),
    (["gpu-check", "--dry-run", "--device", "cpu"], "--device 'cpu': gpu-check checks a CUDA device"),
    (["gpu-check", "--dry-run", "--model", "/no/such/dir"], "--model '/no/such/dir': use random, tiny or a local"),
])
def test_bad_input_is_one_usage_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 4
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_without_cuda_it_says_to_use_the_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["gpu-check"]) == 4
    assert capsys.readouterr().err.strip() == (
        f"error: gpu-check needs a CUDA device (torch {torch.__version__} has none here); "
        f"run with --dry-run to exercise it on the CPU")
    with pytest.raises(I2VUsageError):
        make_plan(dry_run=False)


def test_the_checks_do_not_import_torch_or_pytest() -> None:
    code = "import sys, pytest_i2v.gpu_check; print(sorted(m for m in ('torch', 'pytest') if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip() == "[]"


def test_dry_run_passes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = subprocess.run([sys.executable, "-m", "pytest_i2v", "gpu-check", "--dry-run", "--out", str(out)],
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = [line for line in completed.stdout.splitlines() if CHECK_LINE.match(line)]
    assert [CHECK_LINE.match(line).group(2) for line in lines] == list("abcdefgh"), completed.stdout  # type: ignore[union-attr]
    statuses = {CHECK_LINE.match(line).group(2): CHECK_LINE.match(line).group(1) for line in lines}  # type: ignore[union-attr]
    # The simulated memory is judged as on a GPU, and so are the stage sums (exact per repeat);
    # fast mode against a full run is shown, not judged (two runs on a shared CPU differ by more).
    assert all(statuses[k] == PASS for k in "abcdegh"), completed.stdout
    assert statuses["f"] == NOT_APPLICABLE, completed.stdout
    assert completed.stdout.strip().splitlines()[-1].startswith("gpu-check passed: 7 passed, 0 failed, 1 not applicable")
    for name in ("results.json", "report.html", "gpu-check.md"):
        assert (out / name).is_file(), name
    assert len(list(out.iterdir())) <= 8
    summary = (out / "gpu-check.md").read_text()
    assert "DRY RUN" in summary and "| 1024p | 128x128, 4 frames, 3 steps | ok |" in summary
