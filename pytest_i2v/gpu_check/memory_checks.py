"""The memory checks, pure functions over result records: (a) the peaks in order, (d) no peak
leaks from one test into the next, (e) an induced OOM is recorded and the next test passes, (g)
model_cpu_offload lowers the allocated peak."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from pytest_i2v.gpu_check.plan import CheckResult
from pytest_i2v.gpu_check.records import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    GiB,
    fmt_bytes,
    ok_records,
    pct,
    record_name,
)
from pytest_i2v.record.parts import OomInfo
from pytest_i2v.record.record import GenerationRecord


def check_memory_order(
    records: Sequence[GenerationRecord], total_bytes: int | None, key: str = "a"
) -> CheckResult:
    """(a) allocated <= reserved <= NVML peak <= device total, per record. A process-scope NVML
    figure is this process (allocator cache + CUDA context); a device-scope one is the whole
    card."""
    title = "allocator peak <= NVML peak <= device total"
    ok = ok_records(records)
    if not ok:
        return CheckResult(key, title, FAIL, "no successful generation to check")
    slack = GiB // 100  # the environment rounds the total to 0.01 GiB: allow that much
    failures: list[str] = []
    judged: list[str] = []
    scopes: set[str] = set()
    unavailable = ""
    for record in ok:
        peak = record.peak_memory
        allocated, reserved, nvml = peak.allocated_bytes, peak.reserved_bytes, peak.device_bytes
        scope = peak.device_scope
        if allocated is None:
            unavailable = f"{record_name(record)} has no allocator peak (not a CUDA run?)"
            continue
        if scope not in ("process", "device") or nvml is None:
            unavailable = f"NVML peak unavailable (scope {scope})"
            continue
        scopes.add(str(scope))
        chain = [("allocated", allocated)] + (
            [("reserved", reserved)] if reserved is not None else []
        )
        chain += [(f"NVML ({scope})", nvml)] + ([("total", total_bytes)] if total_bytes else [])
        text = " <= ".join(f"{name} {fmt_bytes(value)}" for name, value in chain)
        broken = [
            f"{a[0]} > {b[0]}"
            for a, b in itertools.pairwise(chain)
            if a[1] > b[1] + (slack if b[0] == "total" else 0)
        ]
        if broken:
            failures.append(f"{record_name(record)}: {text} broken ({', '.join(broken)})")
        judged.append(f"{record_name(record)}: {text}")
    if failures:
        return CheckResult(key, title, FAIL, "; ".join(failures))
    if not judged:
        return CheckResult(key, title, NOT_APPLICABLE, unavailable or "no NVML figures")
    where = (
        "device-wide NVML (other processes on the card count too)"
        if scopes == {"device"}
        else "NVML per process"
        if scopes == {"process"}
        else "NVML scopes " + "/".join(sorted(scopes))
    )
    total = "" if total_bytes else "; device total unknown, not compared"
    largest = max(ok, key=lambda r: r.peak_memory.allocated_bytes or 0)
    shown = next((j for j in judged if j.startswith(record_name(largest) + ":")), judged[-1])
    count = f"{len(judged)} record{'s' if len(judged) != 1 else ''}"
    return CheckResult(key, title, PASS, f"{count}, {where}{total}; largest {shown}")


def check_same_peak(
    after: GenerationRecord | None,
    fresh: GenerationRecord | None,
    tolerance_pct: float,
    middle: str = "512p",
    largest: str = "1024p",
    key: str = "d",
) -> CheckResult:
    """(d) the middle size measured right after the largest reports the peaks of a fresh process:
    nothing the larger test cached or left allocated leaks into the next test's figures."""
    title = f"{middle} after {largest} reports the fresh-process peak within {tolerance_pct:g} %"
    for record, what in (
        (after, f"the {middle} run after {largest}"),
        (fresh, f"the fresh-process {middle} run"),
    ):
        if record is None:
            return CheckResult(key, title, FAIL, f"no record of {what}")
        if record.outcome != "ok":
            return CheckResult(key, title, FAIL, f"{what} ended {record.outcome}")
    assert after is not None and fresh is not None
    parts: list[str] = []
    failed = False
    after_peak, fresh_peak = after.peak_memory, fresh.peak_memory
    for label, a, f in (
        ("allocated", after_peak.allocated_bytes, fresh_peak.allocated_bytes),
        ("reserved", after_peak.reserved_bytes, fresh_peak.reserved_bytes),
    ):
        if a is None or f is None:
            return CheckResult(
                key, title, NOT_APPLICABLE, f"no {label} peak recorded (not a CUDA run?)"
            )
        delta = pct(a, f)
        failed |= abs(delta) > tolerance_pct
        parts.append(f"{label} {fmt_bytes(a)} vs fresh {fmt_bytes(f)} ({delta:+.2f} %)")
    return CheckResult(key, title, FAIL if failed else PASS, "; ".join(parts))


def check_oom_recovery(
    oom: GenerationRecord | None,
    following: GenerationRecord | None,
    largest: str = "1024p",
    smallest: str = "256p",
    key: str = "e",
) -> CheckResult:
    """(e) a generation that cannot fit (memory fraction) is recorded as an OOM, and the next test
    passes."""
    title = "an induced OOM is recorded as OOM and the next test passes"
    if oom is None:
        return CheckResult(
            key, title, FAIL, f"no record of the {largest} run under the memory fraction"
        )
    if oom.outcome != "oom":
        return CheckResult(
            key,
            title,
            FAIL,
            f"the {largest} run under the memory fraction ended {oom.outcome!r}, "
            f"not 'oom' (peak allocated {fmt_bytes(oom.peak_memory.allocated_bytes)})",
        )
    detail = f"{largest} OOM during {_oom_detail(oom.oom)}"
    if following is None:
        return CheckResult(key, title, FAIL, f"{detail}; no record of the {smallest} test after it")
    if following.outcome != "ok":
        return CheckResult(
            key,
            title,
            FAIL,
            f"{detail}; the {smallest} test after it ended {following.outcome!r}",
        )
    start = following.memory_start
    if start is not None and start.allocated_bytes is not None:
        started = fmt_bytes(start.allocated_bytes)
        detail += f"; the {smallest} test after it started at {started} allocated"
    return CheckResult(key, title, PASS, f"{detail}; the {smallest} test after it passed")


def _oom_detail(info: OomInfo | None) -> str:
    """Where the error struck and its form (a record without its details: "None" where, the
    allocator form), with the memory before it and after freeing when both were read."""
    if info is None:
        return "None (allocator form)"
    where = f"step {info.step}" if info.step else info.stage
    detail = f"{where} ({info.form} form)"
    if info.before_bytes is not None and info.after_free_bytes is not None:
        before, after = fmt_bytes(info.before_bytes), fmt_bytes(info.after_free_bytes)
        detail += f", allocated {before} before, {after} after freeing"
    return detail


def check_offload_peak(
    offload: GenerationRecord | None,
    plain: GenerationRecord | None,
    label: str = "512p",
    key: str = "g",
) -> CheckResult:
    """(g) model_cpu_offload keeps the idle components on the host: a lower allocated peak."""
    title = f"model_cpu_offload lowers the {label} allocated peak"
    for record, what in ((offload, "model_cpu_offload"), (plain, "plain")):
        if record is None:
            return CheckResult(key, title, FAIL, f"no {what} {label} record")
        if record.outcome != "ok":
            return CheckResult(key, title, FAIL, f"the {what} {label} run ended {record.outcome!r}")
    assert offload is not None and plain is not None
    a, b = offload.peak_memory.allocated_bytes, plain.peak_memory.allocated_bytes
    if a is None or b is None:
        return CheckResult(
            key, title, NOT_APPLICABLE, "no allocated peak recorded (not a CUDA run?)"
        )
    figures = f"offload {fmt_bytes(a)} vs plain {fmt_bytes(b)} ({pct(a, b):+.1f} %)"
    return CheckResult(key, title, PASS if a < b else FAIL, figures)
