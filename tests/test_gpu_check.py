"""``python -m pytest_i2v gpu-check``: the pure checks on hand-made records (a pass and a fail
each), the command's bad input, one end-to-end dry run on the simulated GPUs, and the plans of the
other pipelines (``--pipeline``; their dry runs are not run here, to spare CI time)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.cli import main
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.gpu_check.checks import evaluate
from pytest_i2v.gpu_check.command import make_plan
from pytest_i2v.gpu_check.device_checks import check_conditions, check_second_gpu
from pytest_i2v.gpu_check.memory_checks import (
    check_memory_order,
    check_offload_peak,
    check_oom_recovery,
    check_same_peak,
)
from pytest_i2v.gpu_check.plan import CheckPlan, Tolerances, plan_for
from pytest_i2v.gpu_check.records import (
    AFTER_LARGEST,
    DRY_RUN_PROFILE,
    DRY_RUN_SIZE_DIVISOR,
    FAIL,
    FULL,
    NOT_APPLICABLE,
    OFFLOAD,
    PASS,
    PROFILE_DIR,
    SUITE_FILE,
    SWEEP,
    RunResult,
)
from pytest_i2v.gpu_check.signature_check import check_signature
from pytest_i2v.gpu_check.suite import (
    dry_run_profile_yaml,
    plugin_args,
    pytest_command,
    run_selections,
    suite_source,
)
from pytest_i2v.gpu_check.summary import render_summary
from pytest_i2v.gpu_check.timing_checks import (
    check_event_total,
    check_fast_prediction,
    check_step_sum,
)
from pytest_i2v.pipelines import DEFAULT_PIPELINE, PIPELINES, PipelineInfo
from pytest_i2v.record.parts import Stages
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.conditions import RepeatConditions, assess
from pytest_i2v.verdict.signature import StageWork, WorkRow, WorkSignature

GiB = 2**30
CHECK_LINE = re.compile(r"^(PASS|FAIL|N/A) \(([a-j])\) ")


def record(
    name: str = "test_sweep[512p]",
    *,
    outcome: str = "ok",
    allocated: float = 10.0,
    reserved: float = 11.0,
    nvml: float | None = 12.0,
    scope: str = "process",
    encode: float = 1.0,
    steps: tuple[float, ...] = (1.0, 1.0, 1.0),
    decode: float = 1.0,
    totals: tuple[float, ...] = (5.0, 5.0),
    mode: str = "full",
    time_s: float = 5.0,
    device: str = "cuda:0",
    clocks: tuple[float | None, ...] | None = None,
    spans: tuple[float, ...] | None = None,
    **extra: Any,
) -> GenerationRecord:
    """A results record as the plugin writes it; memory in GiB, times in seconds; ``clocks``: each
    repeat's SM clock (default 1980 MHz each), an entry None where NVML read none; ``spans``: each
    repeat's denoising loop by its own marks (default: the sum of the steps)."""
    clocks = clocks if clocks is not None else (1980.0,) * len(totals)
    extra.setdefault(
        "conditions", assess([RepeatConditions(sm_clock_mhz=c) for c in clocks]).to_dict()
    )
    fast = (
        {
            "predicted": True,
            "measured_steps": len(steps),
            "steps": 50,
            "measured_time_s": totals[0],
            "measured_time_samples_s": list(totals),
        }
        if mode == "fast"
        else None
    )
    return GenerationRecord.from_partial(
        {
            "nodeid": f"test_gpu_check_suite.py::{name}",
            "outcome": outcome,
            "mode": mode,
            "fast": fast,
            "time_s": time_s if outcome == "ok" else None,
            "time_samples_s": [time_s] * len(totals) if mode == "fast" else list(totals),
            "stages": {
                "encode_s": encode,
                "decode_s": decode,
                "step_s": steps[0],
                "step_samples_s": [list(steps)] * len(totals),
                "encode_samples_s": [encode] * len(totals),
                "decode_samples_s": [decode] * len(totals),
                "denoise_s": sum(steps),
                "denoise_span_samples_s": list(spans)
                if spans is not None
                else [sum(steps)] * len(totals),
            },
            "peak_memory": {
                "allocated_bytes": int(allocated * GiB),
                "reserved_bytes": int(reserved * GiB),
                "device_bytes": int(nvml * GiB) if nvml is not None else None,
                "host_rss_bytes": GiB,
                "device_scope": scope,
            },
            "config": {"width": 512, "height": 512, "frames": 16, "steps": 50, "device": device},
            **extra,
        }
    )


def oom_info(stage: str, **given: Any) -> dict[str, Any]:
    """A record's out-of-memory part: where it struck; the figures not given were not read."""
    unread = {"step": None, "message": "CUDA out of memory", "allocated_bytes": None}
    return {"stage": stage, **unread, **given}


def memory_start(allocated_bytes: int) -> dict[str, Any]:
    """Where a test's measurement started: the allocator's figure, the others not read."""
    return {
        "allocated_bytes": allocated_bytes,
        "reserved_bytes": None,
        "device_bytes": None,
        "device_scope": None,
        "host_rss_bytes": None,
    }


def roofline(efficiency: float) -> dict[str, Any]:
    """A roofline of ``efficiency`` (the share of the datasheet peak)."""
    return {
        "unet_step_tflop": 1.0,
        "decode_tflop": 1.0,
        "denoise_tflops": 100.0,
        "decode_tflops": None,
        "peak_tflops": 100.0 / efficiency,
        "peak_kind": "fp16",
        "efficiency": efficiency,
    }


# -- (a) --------------------------------------------------------------------------------------
def test_memory_order_passes_when_allocated_reserved_nvml_and_total_are_ordered() -> None:
    result = check_memory_order([record()], total_bytes=24 * GiB)
    assert (
        result.status == PASS
        and "NVML per process" in result.detail
        and "total 24.00 GiB" in result.detail
    )


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
    assert (
        check_event_total([record(totals=(5.05, 4.96))], 2.0).status == PASS
    )  # 1 % and 0.8 % apart
    failed = check_event_total(
        [record(totals=(5.0, 5.25))], 2.0
    )  # the second repeat is 4.8 % apart
    assert (
        failed.status == FAIL and "1 of 2 repeats" in failed.detail and "repeat 2" in failed.detail
    )


def test_event_total_in_fast_mode_uses_the_measured_runs_not_the_prediction() -> None:
    fast = record(
        mode="fast", steps=(1.0, 1.0), totals=(4.0, 4.0), time_s=52.0
    )  # 1 + 2 + 1 measured, 52 predicted
    assert check_event_total([fast], 2.0).status == PASS


def test_event_total_is_shown_not_judged_without_a_tolerance() -> None:
    result = check_event_total([record(totals=(5.0, 6.25))], None)
    assert (
        result.status == NOT_APPLICABLE
        and "not judged" in result.detail
        and "-20.00 %" in result.detail
    )


def test_step_sum_within_two_percent_passes_and_five_fails() -> None:
    assert (
        check_step_sum([record(spans=(3.03, 3.0))], 2.0).status == PASS
    )  # loop 3.03 vs steps 3.0: 1 %
    failed = check_step_sum([record(spans=(3.16, 3.0))], 2.0)  # loop 3.16: 5 %
    assert failed.status == FAIL and "from the loop's own timing" in failed.detail
    # independent of (b): the wall clock agreeing with the stage marks does not make (c) pass
    assert check_step_sum([record(totals=(5.0, 5.0), spans=(3.5, 3.5))], 2.0).status == FAIL


def test_timing_checks_fail_without_timings() -> None:
    bare = replace(record(), stages=Stages())
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
    oom = record(
        "test_oom_largest",
        outcome="oom",
        oom=oom_info(
            "denoise", step=3, form="allocator", before_bytes=5 * GiB, after_free_bytes=5 * GiB
        ),
    )
    result = check_oom_recovery(oom, record("test_after_oom", memory_start=memory_start(5 * GiB)))
    assert result.status == PASS and "OOM during step 3" in result.detail


def test_oom_recovery_fails_when_nothing_ran_out_or_the_next_test_broke() -> None:
    assert check_oom_recovery(record("test_oom_largest"), record("test_after_oom")).status == FAIL
    oom = record("test_oom_largest", outcome="oom", oom=oom_info("encode"))
    assert check_oom_recovery(oom, record("test_after_oom", outcome="oom")).status == FAIL
    assert check_oom_recovery(oom, None).status == FAIL


# -- (f) --------------------------------------------------------------------------------------
def test_fast_prediction_within_two_percent_passes_and_five_fails() -> None:
    full = record("test_full_smallest", time_s=20.0)
    assert check_fast_prediction(record(mode="fast", time_s=20.2), full, 2.0).status == PASS
    failed = check_fast_prediction(record(mode="fast", time_s=21.0), full, 2.0)
    assert failed.status == FAIL and "+5.00 %" in failed.detail
    assert (
        check_fast_prediction(record(mode="fast", time_s=21.0), full, None).status == NOT_APPLICABLE
    )


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
    assert (
        check_second_gpu(
            "cuda:1", None, [record(device="cuda:1", nvml=9.0)], 24 * GiB, Tolerances()
        ).status
        == FAIL
    )
    wrong = check_second_gpu("cuda:1", None, [record(device="cuda:0")], 24 * GiB, Tolerances())
    assert wrong.status == FAIL and "another device" in wrong.detail
    assert (
        check_second_gpu("cuda:1", "the second run timed out", [], None, Tolerances()).status
        == FAIL
    )


# -- all checks together ---------------------------------------------------------------------------
def plan() -> CheckPlan:
    return CheckPlan(
        dry_run=False,
        device="cuda:0",
        other_device=None,
        model="random",
        dtype="fp16",
        sizes=(("256p", 256), ("512p", 512), ("768p", 768), ("1024p", 1024)),
        frames=16,
        steps=50,
        guidance=9.0,
        fast_steps=5,
        repeats=2,
        warmup=1,
        offload_steps=10,
        oom_headroom_bytes=GiB,
        timeout_s=600.0,
    )


def run(name: str, records: list[GenerationRecord] | None, returncode: int | None = 0) -> RunResult:
    document = (
        None
        if records is None
        else {
            "environment": {
                "gpu_name": "NVIDIA GeForce RTX 4090",
                "gpu_memory_gib": 23.99,
                "driver": "560.35",
                "cuda": "12.4",
                "torch": "2.13.0",
                "diffusers": "0.42.1",
            },
            "schema_version": 2,
            "records": [r.to_dict() for r in records],
        }
    )
    return RunResult(
        name=name,
        command=("pytest",),
        returncode=returncode,
        seconds=1.0,
        document=document,
        log="ERROR: something broke",
    )


def work(
    kernel_s: float = 0.097, span_s: float = 0.1, name: str = "gemm"
) -> dict[str, str | int | list[str]]:
    """A work signature whose step is one kernel of ``kernel_s`` in a step of ``span_s``."""
    step = StageWork(
        (WorkRow("kernel", name, count=1, time_s=kernel_s, samples_s=(kernel_s,) * 3),),
        span_s,
        (span_s,) * 3,
    )
    return WorkSignature({"step": step}, "cuda", profiled_steps=3).to_record()


def good_runs() -> tuple[RunResult, RunResult, RunResult]:
    main_records = [
        record("test_sweep[256p]", mode="fast", time_s=20.0),
        record("test_full_smallest", time_s=20.1),
        record(
            "test_sweep[512p]",
            mode="fast",
            time_s=40.0,
            roofline=roofline(0.41),
            signature=work(),
        ),
        record("test_sweep[768p]", mode="fast"),
        record("test_sweep[1024p]", mode="fast", allocated=20.0, reserved=21.0, nvml=22.0),
        record("test_after_largest", mode="fast"),
        record("test_offload", allocated=6.0, reserved=7.0, nvml=8.0),
    ]
    oom = [
        record("test_oom_largest", outcome="oom", oom=oom_info("denoise", step=1)),
        record("test_after_oom"),
    ]
    fresh = [
        record("test_sweep[512p]", mode="fast", signature=work(kernel_s=0.098))
    ]  # other times, the same work
    return run("main", main_records), run("fresh", fresh), run("oom", oom, 1)


def test_evaluate_gives_ten_checks_in_order() -> None:
    main_run, fresh, oom = good_runs()
    checks = evaluate(plan(), main_run, fresh, oom, None)
    assert [c.key for c in checks] == list("abcdefghij")
    assert [c.status for c in checks] == [PASS] * 7 + [NOT_APPLICABLE, PASS, PASS]


# -- (j) --------------------------------------------------------------------------------------
def test_the_signature_check_needs_one_digest_and_a_step_its_rows_account_for() -> None:
    main, fresh = record(signature=work()), record(signature=work(kernel_s=0.096))
    passed = check_signature(main, fresh, 5.0)
    assert (
        passed.status == PASS
        and "(equal)" in passed.detail
        and "97.0% of its span" in passed.detail
    )
    other = check_signature(main, record(signature=work(name="gemm_fallback")), 5.0)
    assert (
        other.status == FAIL and "(DIFFERENT)" in other.detail
    )  # another kernel in a fresh process
    gappy = check_signature(record(signature=work(kernel_s=0.08)), fresh, 5.0)
    assert gappy.status == FAIL and "80.0% of its span" in gappy.detail
    assert (
        check_signature(record(signature=work(kernel_s=0.08)), fresh, None).status == PASS
    )  # the dry run: shown
    assert check_signature(record(), fresh, 5.0).status == NOT_APPLICABLE
    assert check_signature(None, fresh, 5.0).status == FAIL


# -- (i) --------------------------------------------------------------------------------------
def test_conditions_pass_with_every_clock_and_report_throttling() -> None:
    hot = record("test_sweep[1024p]", totals=(5.0, 6.0, 5.0), clocks=(1980.0, 1410.0, 1980.0))
    hot = replace(
        hot,
        conditions=assess(
            [
                RepeatConditions(1980.0),
                RepeatConditions(1410.0, reasons=("thermal",)),
                RepeatConditions(1980.0),
            ]
        ),
    )
    result = check_conditions([record(), hot, record("test_oom_largest", outcome="oom")])
    assert result.status == PASS
    # the clock spread it saw, to calibrate what counts as normal boost movement on this board
    assert result.detail == (
        "SM clock 1410-1980 MHz (spread 28.8 % of the median; base clock not read) over 5 repeats "
        "of 2 tests; NVML device: not recorded; not stable: test_sweep[1024p]: "
        "throttled (thermal, 1 of 3 repeats)"
    )
    hot = replace(hot, nvml_device="UUID GPU-0000")
    assert "; NVML device: UUID GPU-0000;" in check_conditions([hot]).detail
    assert check_conditions([record()]).detail.endswith("every test stable")


def test_conditions_fail_where_nvml_read_no_clock() -> None:
    result = check_conditions(
        [
            record(),
            record("test_sweep[768p]", clocks=(1980.0, None)),
            record("test_full_smallest", conditions=None),
        ]
    )
    assert result.status == FAIL
    assert result.detail == "no SM clock from NVML for: test_sweep[768p], test_full_smallest"
    assert check_conditions([]).status == NOT_APPLICABLE
    assert check_conditions([record()], "the main run exited 2").status == FAIL


def test_evaluate_fails_the_checks_of_a_run_without_results() -> None:
    _, fresh, oom = good_runs()
    checks = evaluate(plan(), run("main", None, returncode=2), fresh, oom, None)
    failed = {c.key for c in checks if c.status == FAIL}
    assert failed == {"a", "b", "c", "d", "f", "g", "i", "j"}
    assert (
        "the main run exited 2 without a results file" in checks[0].detail
        and "something broke" in checks[0].detail
    )


def test_summary_has_the_environment_the_generations_and_the_checks() -> None:
    main_run, fresh, oom = good_runs()
    checks = evaluate(plan(), main_run, fresh, oom, None)
    text = render_summary(plan(), main_run, checks, [main_run, fresh, oom])
    assert "| NVIDIA GeForce RTX 4090 | 24.0 GiB | 560.35 | 12.4 | 2.13.0 | 0.42.1 |" in text
    assert (
        "| 512p | 512x512, 16 frames, 50 steps | ok | 40.00 s (predicted) |" in text
        and "| 41 % |" in text
    )
    assert "fast mode: 5 of 50 denoising steps measured" in text
    assert "- N/A (h) (a)-(c) on a second GPU: one GPU" in text
    assert text.rstrip().endswith(
        "gpu-check passed: 9 passed, 0 failed, 1 not applicable (fast mode, 5 of 50 steps measured)"
    )


# -- the command -------------------------------------------------------------------------------
def test_the_generated_suite_is_valid_python() -> None:
    ast.parse(suite_source(plan()))
    ast.parse(suite_source(make_plan(dry_run=True)))


def test_the_dry_run_plan_uses_the_cpu_profiles_sizes_and_two_simulated_gpus() -> None:
    dry = make_plan(dry_run=True, device="cuda")
    assert dry.device == "cuda:0" and dry.other_device == "cuda:1" and dry.model == "tiny"
    assert [pixels for _, pixels in dry.sizes] == [32, 64, 96, 128]
    assert make_plan(dry_run=True, device="cuda:1").other_device == "cuda:0"


def test_the_plugin_is_passed_with_p_only_when_it_is_not_autoloaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    assert (
        plugin_args() == []
    )  # installed here: the entry point loads it, -p would register it twice
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert plugin_args() == ["-p", "pytest_i2v.plugin"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["gpu-check", "--dry-run", "--device", "cuda:2"],
            "--device cuda:2: this machine has 2 CUDA device(s)",
        ),
        (
            ["gpu-check", "--dry-run", "--device", "cpu"],
            "--device 'cpu': gpu-check checks a CUDA device",
        ),
        (
            ["gpu-check", "--dry-run", "--model", "/no/such/dir"],
            "--model '/no/such/dir': use random, tiny or a local",
        ),
    ],
)
def test_bad_input_is_one_usage_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
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
        f"run with --dry-run to exercise it on the CPU"
    )
    with pytest.raises(I2VUsageError):
        make_plan(dry_run=False)


def test_the_checks_do_not_import_torch_or_pytest() -> None:
    code = (
        "import sys, pytest_i2v.gpu_check; "
        "print(sorted(m for m in ('torch', 'pytest') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == "[]"


def test_dry_run_passes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_i2v", "gpu-check", "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = [line for line in completed.stdout.splitlines() if CHECK_LINE.match(line)]
    assert [CHECK_LINE.match(line).group(2) for line in lines] == list("abcdefghij"), (
        completed.stdout
    )  # type: ignore[union-attr]
    statuses = {CHECK_LINE.match(line).group(2): CHECK_LINE.match(line).group(1) for line in lines}  # type: ignore[union-attr]
    # The simulated memory is judged as on a GPU, and so are the stage sums (exact per repeat);
    # fast mode against a full run is shown, not judged (two runs on a shared CPU differ by more).
    # The work signature (j): one digest in the fresh process, on the simulated card's kernel
    # records.
    assert all(statuses[k] == PASS for k in "abcdeghij"), completed.stdout
    assert statuses["f"] == NOT_APPLICABLE, completed.stdout
    assert (
        completed.stdout.strip()
        .splitlines()[-1]
        .startswith("gpu-check passed: 9 passed, 0 failed, 1 not applicable")
    )
    for name in ("results.json", "report.html", "gpu-check.md"):
        assert (out / name).is_file(), name
    assert len(list(out.iterdir())) <= 8
    summary = (out / "gpu-check.md").read_text()
    assert "DRY RUN" in summary and "| 1024p | 128x128, 4 frames, 3 steps | ok |" in summary


# -- --pipeline: another adapter's plan ------------------------------------------------------------
OTHER_PIPELINES = [name for name in PIPELINES if name != DEFAULT_PIPELINE]
# Pipelines whose model accepts any size the constraints allow (a ladder of sizes; cogvideox-i2v has
# one).
LADDER_PIPELINES = [
    name for name in OTHER_PIPELINES if PIPELINES[name].constraints.fixed_size is None
]
FIXED = "cogvideox-i2v"


def gpu_plan(info: PipelineInfo) -> CheckPlan:
    return plan_for(info, dry_run=False, device="cuda:0", other_device=None, model="random")


def test_i2vgen_xl_keeps_the_studys_plan() -> None:
    assert gpu_plan(PIPELINES[DEFAULT_PIPELINE]) == plan()
    assert make_plan(dry_run=True, pipeline=DEFAULT_PIPELINE) == make_plan(dry_run=True)
    assert plan().uses_presets and not make_plan(dry_run=True).uses_presets


@pytest.mark.parametrize("name", LADDER_PIPELINES)
def test_a_pipelines_gpu_plan_is_a_valid_ladder_up_to_its_native_generation(name: str) -> None:
    info = PIPELINES[name]
    checked = gpu_plan(info)
    assert checked.pipeline == name and not checked.uses_presets
    assert len(checked.dimensions) == 4
    for label, width, height in checked.dimensions:
        assert info.constraints.violation(width, height, checked.frames) is None, label
        assert label == f"{width}x{height}"
    widths = [width for _, width, _ in checked.dimensions]
    assert widths == sorted(widths) and widths[0] <= info.native.width // 2
    assert checked.dimensions[-1][1:] == (info.native.width, info.native.height)
    assert (checked.frames, checked.steps, checked.guidance) == (
        info.native.frames,
        info.native.steps,
        info.native.guidance,
    )
    assert checked.fast_steps < checked.steps and checked.offload_steps <= checked.steps


def test_the_svd_plan_in_figures() -> None:
    svd = gpu_plan(PIPELINES["svd"])
    assert svd.labels == ("512x288", "680x384", "848x480", "1024x576")
    assert (svd.smallest, svd.middle, svd.largest) == ("512x288", "848x480", "1024x576")
    assert (svd.frames, svd.steps, svd.guidance, svd.dtype) == (25, 25, 3.0, "fp16")
    assert gpu_plan(PIPELINES["wan2.1-i2v"]).labels == ("416x240", "544x320", "688x400", "832x480")
    assert gpu_plan(PIPELINES["ltx-video"]).labels == (
        "384x256",
        "512x320",
        "640x416",
        "768x512",
    )  # multiples of 32


@pytest.mark.parametrize(
    ("name", "frames"), [("svd", 3), ("wan2.1-i2v", 5), ("ltx-video", 9), ("hunyuanvideo-i2v", 5)]
)
def test_a_pipelines_dry_run_plan_keeps_the_small_sizes_and_the_fewest_frames(
    name: str, frames: int
) -> None:
    info = PIPELINES[name]
    dry = make_plan(dry_run=True, pipeline=name)
    assert (
        dry.frames == frames
        and dry.steps == 3
        and dry.model == "tiny"
        and dry.guidance == info.native.guidance
    )
    assert dry.labels == ("32x32", "64x64", "96x96", "128x128")
    for label, width, height in dry.dimensions:
        assert info.constraints.violation(width, height, dry.frames) is None, label


def test_the_generated_suite_and_the_runs_name_the_pipeline(tmp_path: Path) -> None:
    svd = make_plan(dry_run=True, pipeline="svd")
    suite: dict[str, Any] = {}
    exec(compile(suite_source(svd), SUITE_FILE, "exec"), suite)
    assert suite["test_full_smallest"].pytestmark[0].kwargs["pipeline"] == "svd"
    assert {
        (m.kwargs["width"], m.kwargs["height"]) for m in suite["test_after_largest"].pytestmark
    } == {(96, 96)}
    command = pytest_command(svd, tmp_path, "main", "cuda:0", [FULL])
    assert command[command.index("--i2v-pipeline") + 1] == "svd"


def without_offload(name: str) -> PipelineInfo:
    info = PIPELINES[name]
    return replace(info, memory_options=info.memory_options - {"model_cpu_offload"})


def test_offload_is_neither_run_nor_judged_for_a_pipeline_without_model_cpu_offload() -> None:
    checked = gpu_plan(without_offload("svd"))
    assert not checked.offload_supported and gpu_plan(PIPELINES["svd"]).offload_supported
    assert OFFLOAD not in run_selections(checked)["main"][1]
    suite: dict[str, Any] = {}
    exec(compile(suite_source(checked), SUITE_FILE, "exec"), suite)
    assert "test_offload" not in suite and "test_sweep" in suite

    main_run, fresh, oom = good_runs()
    records = [r for r in main_run.records if not r.nodeid.endswith("::test_offload")]
    main_run = run("main", records)
    no_offload = replace(plan(), pipeline="svd", offload_supported=False)
    checks = evaluate(no_offload, main_run, fresh, oom, None)
    assert [c.status for c in checks] == [PASS] * 6 + [NOT_APPLICABLE] * 2 + [PASS] * 2
    assert checks[6].line == (
        "N/A (g) model_cpu_offload lowers the 512p allocated peak: "
        "not applicable to svd (it does not support model_cpu_offload)"
    )
    # Not a failure even when the main run has no results: nothing was run for it.
    broken = evaluate(no_offload, run("main", None, returncode=2), fresh, oom, None)
    assert broken[6].status == NOT_APPLICABLE
    summary = render_summary(no_offload, main_run, checks, [main_run, fresh, oom])
    assert (
        summary.startswith("# pytest-i2v gpu-check: svd\n")
        and "Pipeline svd, model `random` (fp16)" in summary
    )
    assert summary.rstrip().endswith(
        "gpu-check passed: 8 passed, 0 failed, 2 not applicable (fast mode, 5 of 50 steps measured)"
    )


@pytest.mark.parametrize(
    "argv", [["gpu-check", "--dry-run", "--pipeline", "sdxl"], ["gpu-check", "--pipeline", "sdxl"]]
)
def test_an_unknown_pipeline_is_one_usage_line_listing_the_names(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 4
    err = capsys.readouterr().err
    assert (
        err.strip()
        == f"error: --pipeline 'sdxl': not a known pipeline; use one of {', '.join(PIPELINES)}"
    )


def test_a_model_directory_of_another_pipeline_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableVideoDiffusionPipeline"}')
    assert main(["gpu-check", "--dry-run", "--model", str(tmp_path)]) == 4
    err = capsys.readouterr().err
    assert "holds a svd pipeline (model_index.json), not i2vgen-xl; pass --pipeline svd" in err
    assert len(err.strip().splitlines()) == 1
    assert make_plan(dry_run=True, model=str(tmp_path), pipeline="svd").model == str(
        tmp_path.resolve()
    )


# -- a fixed-size pipeline: one size, (d) not applicable -------------------------------------------
def suite_marks(checked: CheckPlan) -> dict[str, list[dict[str, Any]]]:
    """The generated suite's tests -> their i2v marks' arguments."""
    suite: dict[str, Any] = {}
    exec(compile(suite_source(checked), SUITE_FILE, "exec"), suite)
    found: dict[str, list[dict[str, Any]]] = {}
    for name, test in suite.items():
        if not name.startswith("test_"):
            continue
        marks = list(getattr(test, "pytestmark", []))
        for mark in [m for m in marks if m.name == "parametrize"]:
            marks += [
                m for param in mark.args[1] for m in param.marks
            ]  # the sweep's marks, one per size
        found[name] = [dict(m.kwargs) for m in marks if m.name == "i2v"]
    return found


def test_a_fixed_size_pipelines_gpu_plan_is_its_one_size_and_skips_the_fresh_run() -> None:
    info = PIPELINES[FIXED]
    assert info.constraints.fixed_size == (720, 480) and FIXED not in LADDER_PIPELINES
    checked = gpu_plan(info)
    assert checked.labels == ("720x480",) and checked.fixed_size and checked.size_divisor == 1
    assert checked.smallest == checked.middle == checked.largest == "720x480"
    assert (checked.frames, checked.steps, checked.guidance) == (
        info.native.frames,
        info.native.steps,
        info.native.guidance,
    )
    assert checked.one_size_reason == "cogvideox-i2v generates at one size only (720x480)"
    runs = run_selections(checked)
    assert list(runs) == ["main", "oom"]  # no fresh-process run: it serves (d) only
    assert runs["main"][1] == ["test_sweep[720x480]", FULL, OFFLOAD]
    marks = suite_marks(checked)
    assert AFTER_LARGEST not in marks and OFFLOAD in marks and len(marks[SWEEP]) == 1
    # The GPU marks ask for the fixed size itself, which the collection-time rule accepts.
    assert {(m["width"], m["height"]) for test in marks.values() for m in test} == {(720, 480)}
    assert info.constraints.violation(720, 480, checked.frames) is None
    # Every other pipeline keeps its ladder, its fresh run and (d).
    ladder = gpu_plan(PIPELINES["wan2.1-i2v"])
    assert not ladder.fixed_size and ladder.one_size_reason is None and len(ladder.labels) == 4
    assert list(run_selections(ladder)) == ["main", "fresh", "oom"]
    assert AFTER_LARGEST in run_selections(ladder)["main"][1]


def test_a_fixed_size_pipelines_dry_run_marks_the_fixed_size_and_a_profile_scales_it(
    tmp_path: Path,
) -> None:
    from pytest_i2v.generation.marks import Scaling, i2v
    from pytest_i2v.profiles.loading import _profile_from_yaml, load_profiles

    dry = make_plan(dry_run=True, pipeline=FIXED)
    assert dry.labels == ("720x480",) and dry.fixed_size and dry.frames == 9 and dry.steps == 3
    # The cpu profile's size scaling: the marks name 720x480, the tiny model runs at 80x48.
    assert dry.size_divisor == load_profiles()["cpu"].scaling.size_divisor == DRY_RUN_SIZE_DIVISOR
    spec = i2v(
        pipeline=FIXED, width=720, height=480, frames=dry.frames, steps=dry.steps
    )  # accepted at collection
    assert dry.run_size(720, 480) == (80, 48)
    scaled = spec.scaled(Scaling(size_divisor=dry.size_divisor))
    assert (scaled.width, scaled.height, scaled.steps) == (80, 48, 3)
    with pytest.raises(I2VUsageError, match="only size 720x480"):  # the rule is not weakened
        i2v(pipeline=FIXED, width=80, height=48, frames=dry.frames)
    assert (
        "size 720x480 on the marks, run at 80x48 (the profile scales sizes /8)"
        in dry.describe_mode()
    )
    marks = suite_marks(dry)
    assert len(marks[SWEEP]) == 1 and AFTER_LARGEST not in marks
    assert {(m["width"], m["height"]) for test in marks.values() for m in test} == {(720, 480)}

    command = pytest_command(dry, tmp_path, "main", "cuda:0", [FULL])
    assert command[command.index("--gpu-profile") + 1] == DRY_RUN_PROFILE
    assert command[command.index("--i2v-profile-dir") + 1] == str(tmp_path / PROFILE_DIR)
    path = tmp_path / f"{DRY_RUN_PROFILE}.yaml"
    path.write_text(dry_run_profile_yaml(dry), encoding="utf-8")
    profile = _profile_from_yaml(path)
    assert profile.device == "cuda" and profile.matches("NVIDIA H200", 131.3)
    assert profile.scaling == Scaling(size_divisor=8, steps_divisor=1)
    # The other pipelines' dry runs keep explicit small pixels under the auto-picked profile.
    svd = make_plan(dry_run=True, pipeline="svd")
    assert svd.size_divisor == 1 and not svd.fixed_size
    other = pytest_command(svd, tmp_path, "main", "cuda:0", [FULL])
    assert other[other.index("--gpu-profile") + 1] == "auto" and "--i2v-profile-dir" not in other


def fixed_size_runs() -> tuple[RunResult, RunResult]:
    main_records = [
        record("test_sweep[720x480]", mode="fast", time_s=20.0),
        record("test_full_smallest", time_s=20.1),
        record("test_offload", allocated=6.0, reserved=7.0, nvml=8.0),
    ]
    oom = [
        record("test_oom_largest", outcome="oom", oom=oom_info("denoise", step=1)),
        record("test_after_oom"),
    ]
    return run("main", main_records), run("oom", oom, 1)


def test_a_fixed_size_pipeline_reports_d_not_applicable_and_judges_the_other_checks() -> None:
    checked = gpu_plan(PIPELINES[FIXED])
    main_run, oom = fixed_size_runs()
    checks = evaluate(checked, main_run, None, oom, None)
    assert [c.key for c in checks] == list("abcdefghij")
    # (j) needs the fresh-process run that a one-size pipeline does not make
    assert [c.status for c in checks] == [PASS] * 3 + [NOT_APPLICABLE] + [PASS] * 3 + [
        NOT_APPLICABLE,
        PASS,
        NOT_APPLICABLE,
    ]
    assert checks[3].line == (
        "N/A (d) a smaller size after the largest reports the fresh-process peak: not applicable: "
        "cogvideox-i2v generates at one size only (720x480), no smaller size to measure after it"
    )
    assert "720x480 OOM" in checks[4].detail and "720x480" in checks[6].title
    # Not a failure even when the main run has no results: nothing was run for it.
    broken = evaluate(checked, run("main", None, returncode=2), None, oom, None)
    assert broken[3].status == NOT_APPLICABLE and broken[0].status == FAIL
    summary = render_summary(checked, main_run, checks, [main_run, oom])
    assert "- N/A (d) a smaller size after the largest" in summary
    assert summary.rstrip().endswith(
        "gpu-check passed: 7 passed, 0 failed, 3 not applicable (fast mode, 5 of 50 steps measured)"
    )


def test_without_its_fresh_run_a_ladder_pipeline_fails_d() -> None:
    main_run, _, oom = good_runs()
    checks = evaluate(plan(), main_run, None, oom, None)
    assert checks[3].status == FAIL and checks[3].detail == "no fresh-process run"
