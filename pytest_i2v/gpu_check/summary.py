"""gpu-check's summary (Markdown) and its final line."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_i2v.gpu_check.plan import CheckPlan, CheckResult
from pytest_i2v.gpu_check.records import (
    AFTER_LARGEST,
    FAIL,
    FULL,
    NOT_APPLICABLE,
    OFFLOAD,
    PASS,
    SWEEP,
    RunResult,
    fmt_bytes,
    fmt_seconds,
    records_by_test,
)
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.markdown import markdown_table


# -- the report ----------------------------------------------------------------------------------
def _row_label(test: str, plan: CheckPlan) -> str:
    if test.startswith(SWEEP + "["):
        return test[len(SWEEP) + 1 : -1]
    return {
        FULL: f"{plan.smallest} full run (f)",
        AFTER_LARGEST: f"{plan.middle} after {plan.largest} (d)",
        OFFLOAD: f"{plan.middle} model_cpu_offload (g)",
    }.get(test, test)


def render_summary(
    plan: CheckPlan, main: RunResult, checks: Sequence[CheckResult], runs: Sequence[RunResult]
) -> str:
    """gpu-check.md: the environment, one row per generation of the main run, one line per check."""
    lines = [f"# pytest-i2v gpu-check: {plan.pipeline}", "", _environment_table(main)]
    lines += [
        "",
        f"Pipeline {plan.pipeline}, model `{plan.model}` ({plan.dtype}) on {plan.device}; "
        f"{plan.describe_mode()}.",
        "",
    ]
    rows = [
        _generation_row(test, record, plan)
        for test, record in records_by_test(main.records).items()
    ]
    if rows:
        lines.append(markdown_table(_GENERATION_COLUMNS, rows))
    else:
        lines.append(f"No results from the main run: {main.problem}")
    lines += ["", "## Checks", ""]
    lines += [f"- {c.line}" for c in checks]
    lines += ["", "## Runs", ""]
    for run in runs:
        ended = "timed out" if run.returncode is None else f"exit {run.returncode}"
        lines.append(f"- {run.name}: {ended} after {run.seconds:.0f} s: `{' '.join(run.command)}`")
    lines += ["", final_line(checks, plan), ""]
    return "\n".join(lines)


def _environment_table(main: RunResult) -> str:
    """The machine the main run measured on, as its results' environment names it."""
    env = main.environment
    return markdown_table(
        ["GPU", "memory", "driver", "CUDA", "torch", "diffusers"],
        [
            [
                str(env.get("gpu_name") or "-"),
                f"{env['gpu_memory_gib']:.1f} GiB" if env.get("gpu_memory_gib") else "-",
                str(env.get("driver") or "-"),
                str(env.get("cuda") or "-"),
                str(env.get("torch") or "-"),
                str(env.get("diffusers") or "-"),
            ]
        ],
    )


_GENERATION_COLUMNS = [
    "generation",
    "config",
    "outcome",
    "time",
    "step",
    "peak allocated",
    "peak reserved",
    "peak NVML (scope)",
    "% of peak FLOP/s",
]


def _generation_row(test: str, record: GenerationRecord, plan: CheckPlan) -> list[str]:
    """One generation of the main run, in ``_GENERATION_COLUMNS``."""
    setting, peak = record.setting, record.peak_memory
    efficiency = record.roofline.efficiency if record.roofline else None
    size = (
        f"{setting('width')}x{setting('height')}, {setting('frames')} frames, "
        f"{setting('steps')} steps"
    )
    time_text = fmt_seconds(record.time_s) + (" (predicted)" if record.mode == "fast" else "")
    nvml = fmt_bytes(peak.device_bytes) + (f" ({peak.device_scope})" if peak.device_scope else "")
    return [
        _row_label(test, plan),
        size,
        record.outcome,
        time_text if record.outcome == "ok" else "-",
        fmt_seconds(record.stages.step_s),
        fmt_bytes(peak.allocated_bytes),
        fmt_bytes(peak.reserved_bytes),
        nvml,
        f"{efficiency * 100:.3g} %" if isinstance(efficiency, (int, float)) else "-",
    ]


def final_line(checks: Sequence[CheckResult], plan: CheckPlan) -> str:
    counts = {
        status: sum(1 for c in checks if c.status == status)
        for status in (PASS, FAIL, NOT_APPLICABLE)
    }
    verdict = "FAILED" if counts[FAIL] else "passed"
    mode = (
        "dry run"
        if plan.dry_run
        else f"fast mode, {plan.fast_steps} of {plan.steps} steps measured"
    )
    return (
        f"gpu-check {verdict}: {counts[PASS]} passed, {counts[FAIL]} failed, "
        f"{counts[NOT_APPLICABLE]} not applicable ({mode})"
    )
