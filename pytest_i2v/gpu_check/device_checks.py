"""The checks on the device measured, pure functions over result records: (h) the memory and
timing checks again on a second GPU, (i) NVML read the clocks under every repeat."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from pytest_i2v.gpu_check.memory_checks import check_memory_order
from pytest_i2v.gpu_check.plan import CheckResult, Tolerances
from pytest_i2v.gpu_check.records import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    ok_records,
    record_name,
)
from pytest_i2v.gpu_check.timing_checks import check_event_total, check_step_sum
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.conditions import RunConditions


def check_second_gpu(
    device: str | None,
    run_problem: str | None,
    records: Sequence[GenerationRecord],
    total_bytes: int | None,
    tolerances: Tolerances,
    key: str = "h",
) -> CheckResult:
    """(h) (a)-(c) again on a second GPU: every figure must come from the device measured."""
    title = f"(a)-(c) on {device}" if device else "(a)-(c) on a second GPU"
    if device is None:
        return CheckResult(key, title, NOT_APPLICABLE, "one GPU")
    if run_problem is not None:
        return CheckResult(key, title, FAIL, run_problem)
    wrong = [record_name(r) for r in records if r.setting("device") not in (None, device)]
    if wrong:
        return CheckResult(
            key,
            title,
            FAIL,
            f"records measured on another device than {device}: {', '.join(wrong)}",
        )
    parts = [
        check_memory_order(records, total_bytes),
        check_event_total(records, tolerances.timing_pct),
        check_step_sum(records, tolerances.timing_pct),
    ]
    status = (
        FAIL
        if any(p.status == FAIL for p in parts)
        else (PASS if any(p.status == PASS for p in parts) else NOT_APPLICABLE)
    )
    return CheckResult(
        key, title, status, " | ".join(f"({p.key}) {p.status}: {p.detail}" for p in parts)
    )


def _every_clock_read(conditions: RunConditions | None) -> bool:
    if conditions is None or not conditions.repeats:
        return False
    return all(rep.sm_clock_mhz is not None for rep in conditions.repeats)


def check_conditions(
    records: Sequence[GenerationRecord], run_problem: str | None = None, key: str = "i"
) -> CheckResult:
    """(i) every measured repeat has its SM clock from NVML (the conditions the gate's "unreliable"
    rests on); throttled or clock-drifting repeats are reported, not failed: they are the card's
    state."""
    title = "NVML read the clocks under every repeat"
    if run_problem is not None:
        return CheckResult(key, title, FAIL, run_problem)
    measured = ok_records(records)
    if not measured:
        return CheckResult(key, title, NOT_APPLICABLE, "no measured generation")
    unread = [record_name(r) for r in measured if not _every_clock_read(r.conditions)]
    if unread:
        return CheckResult(key, title, FAIL, f"no SM clock from NVML for: {', '.join(unread)}")
    # from here on every record has its conditions, and every repeat its clock
    conditions = [(record_name(r), r.conditions) for r in measured if r.conditions is not None]
    clocks = [
        clock for _, c in conditions for rep in c.repeats if (clock := rep.sm_clock_mhz) is not None
    ]
    unstable = [f"{name}: {c.summary}" for name, c in conditions if c.summary != "stable"]
    locked = {v for _, c in conditions if (v := c.locked_sm_clock_mhz) is not None}
    # the spread calibrates what counts as normal boost movement (conditions.assess) on this board
    spread = (max(clocks) - min(clocks)) / statistics.median(clocks) * 100.0
    bases = {v for _, c in conditions if (v := c.base_sm_clock_mhz) is not None}
    handles = sorted({r.nvml_device for r in measured if r.nvml_device})
    detail = (
        f"SM clock {min(clocks):.0f}-{max(clocks):.0f} MHz (spread {spread:.1f} % of the median"
        + (
            f"; base clock {', '.join(f'{c:.0f}' for c in sorted(bases))} MHz"
            if bases
            else "; base clock not read"
        )
        + f") over {len(clocks)} repeats of {len(measured)} tests"
        + f"; NVML device: {', '.join(handles) if handles else 'not recorded'}"
        + (f", locked at {', '.join(f'{c:.0f}' for c in sorted(locked))} MHz" if locked else "")
        + (f"; not stable: {'; '.join(unstable)}" if unstable else "; every test stable")
    )
    return CheckResult(key, title, PASS, detail)
