"""The gpu-check command: the plan for this machine, the pytest runs in a temporary directory, the
checks over their results and the files written to ``--out``."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.gpu_check.checks import evaluate
from pytest_i2v.gpu_check.plan import (
    CheckPlan,
    CheckResult,
    model_source,
    parse_device,
    pipeline_info,
    plan_for,
)
from pytest_i2v.gpu_check.records import (
    DRY_RUN_PROFILE,
    EXTRA_RESULTS,
    FAIL,
    LOG_FILE,
    PROFILE_DIR,
    REPORT_FILE,
    RESULTS_FILE,
    SIMULATED_H200,
    SUITE_FILE,
    SUMMARY_FILE,
    RunResult,
    SimulatedGpu,
)
from pytest_i2v.gpu_check.suite import (
    dry_run_profile_yaml,
    run_pytest,
    run_selections,
    suite_source,
)
from pytest_i2v.gpu_check.summary import final_line, render_summary
from pytest_i2v.pipelines import DEFAULT_PIPELINE
from pytest_i2v.storage import write_text_atomic


# -- the plan for this machine ------------------------------------------------------------------
# torch is imported inside _cuda_count, the one place gpu-check's parent process needs it (the CUDA
# devices): the dry run and the checks stay torch-free.
def _cuda_count(dry_run: bool, simulated: Sequence[SimulatedGpu]) -> int:
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
    """The runs' sizes and settings; a bad --pipeline, --device or --model, or no CUDA, is one usage
    line."""
    info = pipeline_info(pipeline)  # first: a typo is reported on a machine without CUDA too
    simulated: tuple[SimulatedGpu, ...] = (
        (SIMULATED_H200.copy(), SIMULATED_H200.copy()) if dry_run else ()
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
            step = f"[{index}/{len(selections)}] {name} run"
            _progress(f"{step}: {len(tests)} test{'s' if len(tests) > 1 else ''} on {device} ...")
            result = run_pytest(plan, workdir, name, device, tests)
            _progress(f"{step}: pytest exit {result.returncode} after {result.seconds:.0f} s")
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
        f"{final_line(report.checks, plan)} for pipeline {plan.pipeline}; {RESULTS_FILE}, "
        f"{REPORT_FILE} and {SUMMARY_FILE} in {report.out}"
    )
    return 1 if report.failed else 0
