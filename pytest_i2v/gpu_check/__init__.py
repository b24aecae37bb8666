"""``python -m pytest_i2v gpu-check``: one command that runs the study through the real plugin on a
GPU and cross-checks what the plugin measured (about 8 minutes on an RTX 4090 or an H200).

    python -m pytest_i2v gpu-check [--out DIR] [--device cuda:N] [--dry-run] [--model random|tiny|DIR]
                                   [--pipeline NAME]

It writes a temporary test module, runs pytest on it in subprocesses (a fresh process is part of
check (d), and an induced OOM must not take the checking process down), reads the results JSONs
and judges them with the pure functions below (no pytest or torch import at module level):

    (a) allocator peak <= NVML peak <= device total     (e) an induced OOM is recorded, the next test passes
    (b) CUDA-event stage total vs synchronised total    (f) fast mode predicts a full run
    (c) per-step times sum to the loop's own timing         (g) model_cpu_offload lowers the allocated peak
    (d) 512p after 1024p == 512p in a fresh process     (h) (a)-(c) on a second GPU
                                                        (i) NVML read the clocks under every repeat
    (j) the work signature is the same in a fresh process, and its timed rows account for the step

``--dry-run`` runs the same code on the CPU: the tiny model on simulated GPUs
(``pytest_i2v.simulated_plugin``), at the cpu profile's sizes. Its memory checks are judged as on a
GPU; its stage-sum checks are judged (exact per repeat), the fast-mode check is shown, not judged (CPU noise).

``--pipeline NAME`` (default i2vgen-xl) checks another adapter: four sizes from about half to all of
its native width and height (each valid for the pipeline), its native frames, steps and guidance;
on the dry run the same 32-128 pixel sizes, rounded to its size multiple. I2VGen-XL keeps the
study's 256p..1024p presets. Check (g) is not applicable to a pipeline without model_cpu_offload.

A pipeline whose model accepts one size only (``Constraints.fixed_size``: cogvideox-i2v, 720x480) is
checked at that size alone, on a GPU and on the dry run: check (d), which needs a smaller size after
the largest, is not applicable (and its fresh-process run is not made). Its dry-run marks name the
fixed size too (a mark at another size is refused at collection); a profile written for the dry run
(the simulated GPU's, with the cpu profile's size scaling) runs the tiny model at 1/8 of it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.gpu_check.checks import (
    check_conditions,
    check_event_total,
    check_fast_prediction,
    check_memory_order,
    check_offload_peak,
    check_oom_recovery,
    check_same_peak,
    check_second_gpu,
    check_signature,
    check_step_sum,
    evaluate,
)
from pytest_i2v.gpu_check.plan import (
    CheckPlan,
    CheckResult,
    RunResult,
    Tolerances,
    model_source,
    parse_device,
    pipeline_info,
    plan_for,
)
from pytest_i2v.gpu_check.records import (
    AFTER_LARGEST,
    DRY_RUN_PROFILE,
    DRY_RUN_SIZE_DIVISOR,
    EXTRA_RESULTS,
    FAIL,
    FULL,
    LOG_FILE,
    NOT_APPLICABLE,
    OFFLOAD,
    PASS,
    PROFILE_DIR,
    REPORT_FILE,
    RESULTS_FILE,
    SIMULATED_H200,
    SUITE_FILE,
    SUMMARY_FILE,
    SWEEP,
)
from pytest_i2v.gpu_check.suite import (
    dry_run_profile_yaml,
    plugin_args,
    pytest_command,
    run_pytest,
    run_selections,
    suite_source,
)
from pytest_i2v.gpu_check.summary import final_line, render_summary
from pytest_i2v.pipelines import DEFAULT_PIPELINE
from pytest_i2v.storage import write_text_atomic


# -- the plan for this machine (its CUDA devices: the one place gpu-check's parent process imports torch)
def _cuda_count(dry_run: bool, simulated: Sequence[Mapping[str, Any]]) -> int:
    if dry_run:
        return len(simulated)
    import torch

    if not torch.cuda.is_available():
        raise I2VUsageError(
            f"gpu-check needs a CUDA device (torch {torch.__version__} has none here); "
            f"run with --dry-run to exercise it on the CPU"
        )
    return int(torch.cuda.device_count())


def make_plan(
    dry_run: bool = False,
    device: str = "cuda:0",
    model: str | None = None,
    pipeline: str = DEFAULT_PIPELINE,
) -> CheckPlan:
    """The runs' sizes and settings; a bad --pipeline, --device or --model, or no CUDA, is one usage line."""
    info = pipeline_info(pipeline)  # first: a typo is reported on a machine without CUDA too
    simulated: tuple[Mapping[str, Any], ...] = (
        (dict(SIMULATED_H200), dict(SIMULATED_H200)) if dry_run else ()
    )
    count = _cuda_count(dry_run, simulated)
    device = parse_device(device, count)
    other = None
    if count > 1:
        other = "cuda:1" if device != "cuda:1" else "cuda:0"
    source = model_source(model, dry_run, info.name)
    return plan_for(
        info,
        dry_run=dry_run,
        device=device,
        other_device=other,
        model=source,
        simulated_gpus=simulated,
    )


@dataclass(frozen=True)
class GpuCheckReport:
    plan: CheckPlan
    checks: tuple[CheckResult, ...]
    runs: tuple[RunResult, ...]
    out: Path

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)


def _progress(text: str) -> None:
    print(f"gpu-check: {text}", file=sys.stderr, flush=True)


def run_gpu_check(plan: CheckPlan, out: Path) -> GpuCheckReport:
    if out.exists() and not out.is_dir():
        raise I2VUsageError(f"--out {out}: exists and is not a directory")
    _progress(f"pipeline {plan.pipeline}: {plan.describe_mode()}")
    selections = run_selections(plan)
    results: dict[str, RunResult] = {}
    with tempfile.TemporaryDirectory(prefix="pytest-i2v-gpu-check-") as tmp:
        workdir = Path(tmp)
        (workdir / SUITE_FILE).write_text(suite_source(plan), encoding="utf-8")
        if plan.size_divisor > 1:
            (workdir / PROFILE_DIR).mkdir()
            (workdir / PROFILE_DIR / f"{DRY_RUN_PROFILE}.yaml").write_text(
                dry_run_profile_yaml(plan), encoding="utf-8"
            )
        (workdir / "pytest.ini").write_text(
            "[pytest]\nfilterwarnings =\n    ignore:.*I2VGenXLPipeline has been deprecated.*\n",
            encoding="utf-8",
        )
        for index, (name, (device, tests)) in enumerate(selections.items(), start=1):
            _progress(
                f"[{index}/{len(selections)}] {name} run: {len(tests)} test{'s' if len(tests) > 1 else ''} "
                f"on {device} ..."
            )
            result = run_pytest(plan, workdir, name, device, tests)
            _progress(
                f"[{index}/{len(selections)}] {name} run: pytest exit {result.returncode} after {result.seconds:.0f} s"
            )
            results[name] = result
        report_html = (
            (workdir / "main.html").read_text(encoding="utf-8")
            if (workdir / "main.html").is_file()
            else None
        )
    runs = tuple(results.values())
    checks = evaluate(
        plan, results["main"], results.get("fresh"), results["oom"], results.get("second")
    )
    write_outputs(out, plan, results, report_html, checks)
    return GpuCheckReport(plan=plan, checks=tuple(checks), runs=runs, out=out)


def write_outputs(
    out: Path,
    plan: CheckPlan,
    results: Mapping[str, RunResult],
    report_html: str | None,
    checks: Sequence[CheckResult],
) -> None:
    """At most 7 files, each written atomically; a file this run did not produce is removed, so
    nothing stale from an earlier check is left next to this one's summary."""
    out.mkdir(parents=True, exist_ok=True)
    main = results["main"]
    files: dict[str, str | None] = {
        RESULTS_FILE: json.dumps(main.document, indent=2) + "\n"
        if main.document is not None
        else None,
        REPORT_FILE: report_html,
    }
    for name, filename in EXTRA_RESULTS.items():
        run = results.get(name)
        files[filename] = (
            json.dumps(run.document, indent=2) + "\n" if run and run.document is not None else None
        )
    files[LOG_FILE] = "".join(
        f"===== {r.name} run: {' '.join(r.command)}\n{r.log}\n" for r in results.values()
    )
    files[SUMMARY_FILE] = render_summary(plan, main, checks, list(results.values()))
    for filename, text in files.items():
        if text is None:
            (out / filename).unlink(missing_ok=True)
        else:
            write_text_atomic(out / filename, text)


def main(
    out: str, device: str, dry_run: bool, model: str | None, pipeline: str | None = None
) -> int:
    """The CLI's entry: prints one line per check and a final line; 1 when a check failed."""
    plan = make_plan(
        dry_run=dry_run, device=device, model=model, pipeline=pipeline or DEFAULT_PIPELINE
    )
    report = run_gpu_check(plan, Path(out))
    for check in report.checks:
        print(check.line)
    print(
        f"{final_line(report.checks, plan)} for pipeline {plan.pipeline}; {RESULTS_FILE}, {REPORT_FILE} and "
        f"{SUMMARY_FILE} in {report.out}"
    )
    return 1 if report.failed else 0


__all__ = [  # the checks, the plan and the run, as ``pytest_i2v.gpu_check`` offered them as one module
    "AFTER_LARGEST",
    "DRY_RUN_PROFILE",
    "DRY_RUN_SIZE_DIVISOR",
    "EXTRA_RESULTS",
    "FAIL",
    "FULL",
    "LOG_FILE",
    "NOT_APPLICABLE",
    "OFFLOAD",
    "PASS",
    "PROFILE_DIR",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SUITE_FILE",
    "SUMMARY_FILE",
    "SWEEP",
    "CheckPlan",
    "CheckResult",
    "GpuCheckReport",
    "RunResult",
    "Tolerances",
    "check_conditions",
    "check_event_total",
    "check_fast_prediction",
    "check_memory_order",
    "check_offload_peak",
    "check_oom_recovery",
    "check_same_peak",
    "check_second_gpu",
    "check_signature",
    "check_step_sum",
    "dry_run_profile_yaml",
    "evaluate",
    "final_line",
    "main",
    "make_plan",
    "plan_for",
    "plugin_args",
    "pytest_command",
    "render_summary",
    "run_gpu_check",
    "run_pytest",
    "run_selections",
    "suite_source",
    "write_outputs",
]
