"""All ten checks (a)-(j) over the runs' results, in order: a pure function over the records.

The checks themselves live by family: ``memory_checks`` (a, d, e, g), ``timing_checks`` (b, c, f),
``device_checks`` (h, i) and ``signature_check`` (j). Here each is given its run's records, or
fails with the reason when the run it needs left none, or is not applicable where nothing was run
for it (a fixed-size pipeline's (d), a pipeline without model_cpu_offload's (g))."""

from __future__ import annotations

from pytest_i2v.gpu_check.device_checks import check_conditions, check_second_gpu
from pytest_i2v.gpu_check.memory_checks import (
    check_memory_order,
    check_offload_peak,
    check_oom_recovery,
    check_same_peak,
)
from pytest_i2v.gpu_check.plan import CheckPlan, CheckResult
from pytest_i2v.gpu_check.records import (
    AFTER_LARGEST,
    AFTER_OOM,
    FAIL,
    FULL,
    NOT_APPLICABLE,
    OFFLOAD,
    OFFLOAD_OPTION,
    OOM,
    RunResult,
    device_total_bytes,
    sweep_id,
)
from pytest_i2v.gpu_check.signature_check import SIGNATURE_TITLE, check_signature
from pytest_i2v.gpu_check.timing_checks import (
    check_event_total,
    check_fast_prediction,
    check_step_sum,
)

# The titles of the checks on the main run, for when it left no results to check.
_MAIN_RUN_TITLES = {
    "a": "allocator peak <= NVML peak <= device total",
    "b": "CUDA-event stage total vs wall clock",
    "c": "per-step times sum to the loop's own timing",
    "f": "fast mode predicts a full run",
    "g": "model_cpu_offload lowers the allocated peak",
}


def evaluate(
    plan: CheckPlan,
    main: RunResult,
    fresh: RunResult | None,
    oom: RunResult,
    second: RunResult | None,
) -> list[CheckResult]:
    """All ten checks over the runs' results, in order (``fresh`` is None for a fixed-size pipeline:
    check (d) is not applicable and its run was not made)."""
    return [
        *_main_run_checks(plan, main),
        _same_peak(plan, main, fresh),
        _oom_recovery(plan, oom),
        _fast_prediction(plan, main),
        _offload_peak(plan, main),
        _second_gpu(plan, second),
        check_conditions(main.records, main.problem),
        _signature(plan, main, fresh),
    ]


def _main_run_failed(main: RunResult, key: str) -> CheckResult:
    """A check on the main run when it left no results: failed with the reason."""
    return CheckResult(key, _MAIN_RUN_TITLES[key], FAIL, str(main.problem))


def _main_run_checks(plan: CheckPlan, main: RunResult) -> list[CheckResult]:
    """(a), (b) and (c) on the main run's records."""
    if main.problem:
        return [_main_run_failed(main, key) for key in ("a", "b", "c")]
    records, timing_pct = main.records, plan.tolerances.timing_pct
    return [
        check_memory_order(records, device_total_bytes(main.environment)),
        check_event_total(records, timing_pct),
        check_step_sum(records, timing_pct),
    ]


def _same_peak(plan: CheckPlan, main: RunResult, fresh: RunResult | None) -> CheckResult:
    """(d): the middle size after the largest (main run) against a fresh process's."""
    one_size = plan.one_size_reason
    if one_size is not None:  # nothing was run for it: not judged, whatever the main run did
        return CheckResult(
            "d",
            "a smaller size after the largest reports the fresh-process peak",
            NOT_APPLICABLE,
            f"not applicable: {one_size}, no smaller size to measure after it",
        )
    title = f"{plan.middle} after {plan.largest} reports the fresh-process peak"
    if fresh is None:
        return CheckResult("d", title, FAIL, "no fresh-process run")
    if main.problem or fresh.problem:
        return CheckResult("d", title, FAIL, str(main.problem or fresh.problem))
    return check_same_peak(
        main.record(AFTER_LARGEST),
        fresh.record(sweep_id(plan.middle)),
        plan.tolerances.memory_pct,
        plan.middle,
        plan.largest,
    )


def _oom_recovery(plan: CheckPlan, oom: RunResult) -> CheckResult:
    """(e) on the OOM run: the largest size under a memory limit, then the smallest."""
    if oom.problem:
        title = "an induced OOM is recorded as OOM and the next test passes"
        return CheckResult("e", title, FAIL, oom.problem)
    return check_oom_recovery(oom.record(OOM), oom.record(AFTER_OOM), plan.largest, plan.smallest)


def _fast_prediction(plan: CheckPlan, main: RunResult) -> CheckResult:
    """(f): the smallest size in fast mode against its full run."""
    if main.problem:
        return _main_run_failed(main, "f")
    return check_fast_prediction(
        main.record(sweep_id(plan.smallest)),
        main.record(FULL),
        plan.tolerances.fast_pct,
        plan.smallest,
    )


def _offload_peak(plan: CheckPlan, main: RunResult) -> CheckResult:
    """(g): the middle size with model_cpu_offload against the plain one."""
    if not plan.offload_supported:  # nothing was run for it: not judged, whatever the main run did
        return CheckResult(
            "g",
            f"{OFFLOAD_OPTION} lowers the {plan.middle} allocated peak",
            NOT_APPLICABLE,
            f"not applicable to {plan.pipeline} (it does not support {OFFLOAD_OPTION})",
        )
    if main.problem:
        return _main_run_failed(main, "g")
    return check_offload_peak(main.record(OFFLOAD), main.record(sweep_id(plan.middle)), plan.middle)


def _second_gpu(plan: CheckPlan, second: RunResult | None) -> CheckResult:
    """(h) on the second GPU's run, when the machine has one."""
    return check_second_gpu(
        plan.other_device,
        second.problem if second else None,
        second.records if second else [],
        device_total_bytes(second.environment) if second else None,
        plan.tolerances,
    )


def _signature(plan: CheckPlan, main: RunResult, fresh: RunResult | None) -> CheckResult:
    """(j): the middle size's work signature in the main run against the fresh process's."""
    if main.problem or fresh is None or fresh.problem:
        why = main.problem or (fresh.problem if fresh else "no fresh-process run (one size only)")
        status = FAIL if main.problem or fresh else NOT_APPLICABLE
        return CheckResult("j", SIGNATURE_TITLE, status, str(why))
    return check_signature(
        main.record(sweep_id(plan.middle)),
        fresh.record(sweep_id(plan.middle)),
        plan.tolerances.attribution_pct,
    )
