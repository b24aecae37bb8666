"""The checks (a)-(j): pure functions over result records, each a ``CheckResult``."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pytest_i2v.gpu_check.plan import CheckPlan, CheckResult, RunResult, Tolerances
from pytest_i2v.gpu_check.records import (
    AFTER_LARGEST,
    AFTER_OOM,
    FAIL,
    FULL,
    NOT_APPLICABLE,
    OFFLOAD,
    OFFLOAD_OPTION,
    OOM,
    PASS,
    GiB,
    device_total_bytes,
    fmt_bytes,
    fmt_seconds,
    ok_records,
    pct,
    record_name,
    sweep_id,
)


# -- the checks: pure functions over result records ----------------------------------------------
def check_memory_order(
    records: Sequence[Mapping[str, Any]], total_bytes: int | None, key: str = "a"
) -> CheckResult:
    """(a) allocated <= reserved <= NVML peak <= device total, per record. A process-scope NVML
    figure is this process (allocator cache + CUDA context); a device-scope one is the whole card."""
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
        peak = record.get("peak_memory") or {}
        allocated, reserved, nvml = (
            peak.get("allocated_bytes"),
            peak.get("reserved_bytes"),
            peak.get("device_bytes"),
        )
        scope = peak.get("device_scope")
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
    largest = max(ok, key=lambda r: (r.get("peak_memory") or {}).get("allocated_bytes") or 0)
    shown = next((j for j in judged if j.startswith(record_name(largest) + ":")), judged[-1])
    count = f"{len(judged)} record{'s' if len(judged) != 1 else ''}"
    return CheckResult(key, title, PASS, f"{count}, {where}{total}; largest {shown}")


def _timing_samples(
    record: Mapping[str, Any],
) -> tuple[list[float], list[list[float]], list[float], list[float]] | None:
    """(synchronised totals, per-repeat step times, per-repeat encode, per-repeat decode) of one
    record, or None. In fast mode the synchronised totals are the measured (shortened) runs."""
    stages = record.get("stages") or {}
    fast = record.get("fast") or {}
    totals = (
        fast.get("measured_time_samples_s")
        if record.get("mode") == "fast"
        else record.get("time_samples_s")
    )
    steps = stages.get("step_samples_s")
    encode, decode = stages.get("encode_samples_s"), stages.get("decode_samples_s")
    if (
        not totals
        or not steps
        or not encode
        or not decode
        or not len(totals) == len(steps) == len(encode) == len(decode)
    ):
        return None
    if any(e is None for e in encode) or any(d is None for d in decode):
        return None
    return (
        [float(t) for t in totals],
        [[float(s) for s in repeat] for repeat in steps],
        [float(e) for e in encode],
        [float(d) for d in decode],
    )


def _judge_worst(
    key: str,
    title: str,
    deviations: list[tuple[float, str]],
    tolerance_pct: float | None,
    what: str,
    missing: list[str],
) -> CheckResult:
    if not deviations:
        return CheckResult(
            key,
            title,
            FAIL,
            "no per-repeat timings to compare" + (f" ({'; '.join(missing)})" if missing else ""),
        )
    worst, where = max(deviations, key=lambda d: abs(d[0]))
    figures = f"worst {worst:+.2f} % ({where}) over {len(deviations)} repeats"
    if missing:
        figures += f"; not compared: {'; '.join(missing)}"
    if tolerance_pct is None:
        return CheckResult(
            key, title, NOT_APPLICABLE, f"dry run, CPU timings are not judged ({figures})"
        )
    if abs(worst) > tolerance_pct:
        over = sum(1 for d, _ in deviations if abs(d) > tolerance_pct)
        return CheckResult(
            key,
            title,
            FAIL,
            f"{over} of {len(deviations)} repeats off by more than "
            f"{tolerance_pct:g} % {what}: {figures}",
        )
    return CheckResult(key, title, PASS, figures)


def _repeats(
    records: Sequence[Mapping[str, Any]], missing: list[str]
) -> Iterator[tuple[str, int, float, list[float], float, float]]:
    """(test, repeat number, synchronised total, step times, encode, decode) of every repeat; a record
    without per-repeat stage timings is listed in ``missing``."""
    for record in ok_records(records):
        samples = _timing_samples(record)
        if samples is None:
            missing.append(f"{record_name(record)} lacks stage timings")
            continue
        totals, steps, encodes, decodes = samples
        for index, (total, repeat, encode, decode) in enumerate(
            zip(totals, steps, encodes, decodes, strict=True)
        ):
            yield record_name(record), index + 1, total, repeat, encode, decode


def check_event_total(
    records: Sequence[Mapping[str, Any]], tolerance_pct: float | None, key: str = "b"
) -> CheckResult:
    """(b) encode + sum(steps) + decode (device-clock marks) against the repeat's total measured
    with perf_counter around a synchronise, repeat by repeat."""
    bar = f"{tolerance_pct:g} %" if tolerance_pct is not None else "2 %"
    title = f"CUDA-event stage total within {bar} of the synchronised wall clock, per repeat"
    deviations: list[tuple[float, str]] = []
    missing: list[str] = []
    for name, index, total, repeat, encode, decode in _repeats(records, missing):
        events = encode + sum(repeat) + decode
        deviations.append(
            (
                pct(events, total),
                f"{name} repeat {index}: events {fmt_seconds(events)} vs wall {fmt_seconds(total)}",
            )
        )
    return _judge_worst(key, title, deviations, tolerance_pct, "from the wall clock", missing)


def check_step_sum(
    records: Sequence[Mapping[str, Any]], tolerance_pct: float | None, key: str = "c"
) -> CheckResult:
    """(c) the per-step times sum to the denoising loop as its own mark pair times it (first denoiser
    call to decode start: events no step shares), per repeat. Not total - encode - decode: that holds
    whenever (b) does, so it could not fail on its own."""
    bar = f"{tolerance_pct:g} %" if tolerance_pct is not None else "2 %"
    title = f"per-step times sum to the denoising loop's own timing within {bar}, per repeat"
    deviations: list[tuple[float, str]] = []
    missing: list[str] = []
    for record in ok_records(records):
        stages = record.get("stages") or {}
        steps, spans = (
            stages.get("step_samples_s") or [],
            stages.get("denoise_span_samples_s") or [],
        )
        if not steps or len(steps) != len(spans) or any(not span for span in spans):
            missing.append(f"{record_name(record)} lacks the loop's own timing")
            continue
        for index, (repeat, span) in enumerate(zip(steps, spans, strict=True)):
            deviations.append(
                (
                    pct(sum(repeat), span),
                    f"{record_name(record)} repeat {index + 1}: {len(repeat)} steps "
                    f"{fmt_seconds(sum(repeat))} vs loop {fmt_seconds(span)}",
                )
            )
    return _judge_worst(
        key, title, deviations, tolerance_pct, "from the loop's own timing", missing
    )


def check_same_peak(
    after: Mapping[str, Any] | None,
    fresh: Mapping[str, Any] | None,
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
        if record.get("outcome") != "ok":
            return CheckResult(key, title, FAIL, f"{what} ended {record.get('outcome')}")
    assert after is not None and fresh is not None
    parts: list[str] = []
    failed = False
    for name in ("allocated_bytes", "reserved_bytes"):
        a, f = (
            (after.get("peak_memory") or {}).get(name),
            (fresh.get("peak_memory") or {}).get(name),
        )
        label = name.removesuffix("_bytes")
        if a is None or f is None:
            return CheckResult(
                key, title, NOT_APPLICABLE, f"no {label} peak recorded (not a CUDA run?)"
            )
        delta = pct(a, f)
        failed |= abs(delta) > tolerance_pct
        parts.append(f"{label} {fmt_bytes(a)} vs fresh {fmt_bytes(f)} ({delta:+.2f} %)")
    return CheckResult(key, title, FAIL if failed else PASS, "; ".join(parts))


SIGNATURE_TITLE = "the work signature agrees in a fresh process and accounts for the step"


def check_signature(
    main: Mapping[str, Any] | None,
    fresh: Mapping[str, Any] | None,
    attribution_pct: float | None,
    key: str = "j",
) -> CheckResult:
    """(j) the same test's work signature in this process and in a fresh one: one digest (the gate's
    work verdict rests on it), and the step's timed rows (kernels on a GPU) add up to the step's span
    within ``attribution_pct`` (None: shown, not judged)."""
    from pytest_i2v.verdict.signature import WorkSignature

    for record, what in ((main, "the main run"), (fresh, "the fresh-process run")):
        if record is None or record.get("outcome") != "ok":
            return CheckResult(key, SIGNATURE_TITLE, FAIL, f"no measured record in {what}")
        if not record.get("signature"):
            return CheckResult(
                key, SIGNATURE_TITLE, NOT_APPLICABLE, "no work signature (--i2v-signature off)"
            )
    assert main is not None and fresh is not None
    a, b = WorkSignature.from_dict(main["signature"]), WorkSignature.from_dict(fresh["signature"])
    same = a.digest == b.digest
    step = a.stages.get("step")
    share = (
        step.timed(a.device_kind) / step.span_s if step is not None and step.span_s > 0 else None
    )
    parts = [f"digest {a.digest} vs fresh {b.digest} ({'equal' if same else 'DIFFERENT'})"]
    if a.noise:
        parts.append("noise named: " + "; ".join(a.noise))
    attributed_ok = True
    if share is not None:
        judged = attribution_pct is not None
        attributed_ok = not judged or abs(share - 1.0) * 100.0 <= (attribution_pct or 0.0)
        parts.append(
            f"the step's timed rows are {share:.1%} of its span"
            + ("" if judged else " (shown, not judged)")
        )
    return CheckResult(
        key, SIGNATURE_TITLE, PASS if same and attributed_ok else FAIL, "; ".join(parts)
    )


def check_oom_recovery(
    oom: Mapping[str, Any] | None,
    following: Mapping[str, Any] | None,
    largest: str = "1024p",
    smallest: str = "256p",
    key: str = "e",
) -> CheckResult:
    """(e) a generation that cannot fit (memory fraction) is recorded as an OOM, and the next test passes."""
    title = "an induced OOM is recorded as OOM and the next test passes"
    if oom is None:
        return CheckResult(
            key, title, FAIL, f"no record of the {largest} run under the memory fraction"
        )
    if oom.get("outcome") != "oom":
        return CheckResult(
            key,
            title,
            FAIL,
            f"the {largest} run under the memory fraction ended {oom.get('outcome')!r}, "
            f"not 'oom' (peak allocated {fmt_bytes((oom.get('peak_memory') or {}).get('allocated_bytes'))})",
        )
    info = oom.get("oom") or {}
    where = f"step {info.get('step')}" if info.get("step") else str(info.get("stage"))
    detail = f"{largest} OOM during {where} ({info.get('form', 'allocator')} form)"
    if info.get("before_bytes") is not None and info.get("after_free_bytes") is not None:
        detail += f", allocated {fmt_bytes(info['before_bytes'])} before, {fmt_bytes(info['after_free_bytes'])} after freeing"
    if following is None:
        return CheckResult(key, title, FAIL, f"{detail}; no record of the {smallest} test after it")
    if following.get("outcome") != "ok":
        return CheckResult(
            key,
            title,
            FAIL,
            f"{detail}; the {smallest} test after it ended {following.get('outcome')!r}",
        )
    start = following.get("memory_start") or {}
    if start.get("allocated_bytes") is not None:
        detail += f"; the {smallest} test after it started at {fmt_bytes(start['allocated_bytes'])} allocated"
    return CheckResult(key, title, PASS, f"{detail}; the {smallest} test after it passed")


def check_fast_prediction(
    fast: Mapping[str, Any] | None,
    full: Mapping[str, Any] | None,
    tolerance_pct: float | None,
    label: str = "256p",
    key: str = "f",
) -> CheckResult:
    """(f) fast mode's predicted total against a full run of the same generation."""
    bar = f"{tolerance_pct:g} %" if tolerance_pct is not None else "2 %"
    title = f"fast mode predicts the full {label} run within {bar}"
    for record, what in ((fast, "fast"), (full, "full")):
        if record is None:
            return CheckResult(key, title, FAIL, f"no {what} {label} record")
        if record.get("outcome") != "ok" or not record.get("time_s"):
            return CheckResult(
                key, title, FAIL, f"the {what} {label} run ended {record.get('outcome')!r}"
            )
    assert fast is not None and full is not None
    if fast.get("mode") != "fast" or full.get("mode") != "full":
        return CheckResult(
            key,
            title,
            FAIL,
            f"expected a fast and a full record, got {fast.get('mode')} and {full.get('mode')}",
        )
    measured = (fast.get("fast") or {}).get("measured_steps")
    delta = pct(float(fast["time_s"]), float(full["time_s"]))
    figures = (
        f"predicted {fmt_seconds(fast['time_s'])} from {measured} of {(fast.get('config') or {}).get('steps')} steps "
        f"vs full {fmt_seconds(full['time_s'])} ({delta:+.2f} %)"
    )
    if tolerance_pct is None:
        return CheckResult(
            key, title, NOT_APPLICABLE, f"dry run, CPU timings are not judged ({figures})"
        )
    return CheckResult(key, title, FAIL if abs(delta) > tolerance_pct else PASS, figures)


def check_offload_peak(
    offload: Mapping[str, Any] | None,
    plain: Mapping[str, Any] | None,
    label: str = "512p",
    key: str = "g",
) -> CheckResult:
    """(g) model_cpu_offload keeps the idle components on the host: a lower allocated peak."""
    title = f"model_cpu_offload lowers the {label} allocated peak"
    for record, what in ((offload, "model_cpu_offload"), (plain, "plain")):
        if record is None:
            return CheckResult(key, title, FAIL, f"no {what} {label} record")
        if record.get("outcome") != "ok":
            return CheckResult(
                key, title, FAIL, f"the {what} {label} run ended {record.get('outcome')!r}"
            )
    assert offload is not None and plain is not None
    a = (offload.get("peak_memory") or {}).get("allocated_bytes")
    b = (plain.get("peak_memory") or {}).get("allocated_bytes")
    if a is None or b is None:
        return CheckResult(
            key, title, NOT_APPLICABLE, "no allocated peak recorded (not a CUDA run?)"
        )
    figures = f"offload {fmt_bytes(a)} vs plain {fmt_bytes(b)} ({pct(a, b):+.1f} %)"
    return CheckResult(key, title, PASS if a < b else FAIL, figures)


def check_second_gpu(
    device: str | None,
    run_problem: str | None,
    records: Sequence[Mapping[str, Any]],
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
    wrong = [
        record_name(r)
        for r in records
        if (r.get("config") or {}).get("device") not in (None, device)
    ]
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


def check_conditions(
    records: Sequence[Mapping[str, Any]], run_problem: str | None = None, key: str = "i"
) -> CheckResult:
    """(i) every measured repeat has its SM clock from NVML (the conditions the gate's "unreliable"
    rests on); throttled or clock-drifting repeats are reported, not failed: they are the card's state."""
    title = "NVML read the clocks under every repeat"
    if run_problem is not None:
        return CheckResult(key, title, FAIL, run_problem)
    measured = ok_records(records)
    if not measured:
        return CheckResult(key, title, NOT_APPLICABLE, "no measured generation")
    unread = [
        record_name(r)
        for r in measured
        if not r.get("conditions")
        or any(rep.get("sm_clock_mhz") is None for rep in r["conditions"].get("repeats") or [{}])
    ]
    if unread:
        return CheckResult(key, title, FAIL, f"no SM clock from NVML for: {', '.join(unread)}")
    clocks = [rep["sm_clock_mhz"] for r in measured for rep in r["conditions"]["repeats"]]
    unstable = [
        f"{record_name(r)}: {r['conditions']['summary']}"
        for r in measured
        if r["conditions"].get("summary") != "stable"
    ]
    locked = {r["conditions"].get("locked_sm_clock_mhz") for r in measured} - {None}
    # the spread calibrates what counts as normal boost movement (conditions.assess) on this board
    spread = (max(clocks) - min(clocks)) / statistics.median(clocks) * 100.0
    bases = {r["conditions"].get("base_sm_clock_mhz") for r in measured} - {None}
    handles = sorted({str(r.get("nvml_device")) for r in measured if r.get("nvml_device")})
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


def evaluate(
    plan: CheckPlan,
    main: RunResult,
    fresh: RunResult | None,
    oom: RunResult,
    second: RunResult | None,
) -> list[CheckResult]:
    """All ten checks over the runs' results, in order (``fresh`` is None for a fixed-size pipeline:
    check (d) is not applicable and its run was not made)."""
    tol = plan.tolerances
    records = list((main.document or {}).get("records", []))
    total = device_total_bytes(main.document)
    checks: list[CheckResult] = []
    # Without the main run's results, the checks on it fail with the reason.
    titles = {
        "a": "allocator peak <= NVML peak <= device total",
        "b": "CUDA-event stage total vs wall clock",
        "c": "per-step times sum to the loop's own timing",
        "f": "fast mode predicts a full run",
        "g": "model_cpu_offload lowers the allocated peak",
    }
    failed = {k: CheckResult(k, t, FAIL, str(main.problem)) for k, t in titles.items()}
    if main.problem:
        checks += [failed["a"], failed["b"], failed["c"]]
    else:
        checks += [
            check_memory_order(records, total),
            check_event_total(records, tol.timing_pct),
            check_step_sum(records, tol.timing_pct),
        ]
    one_size = plan.one_size_reason
    if one_size is not None:  # nothing was run for it: not judged, whatever the main run did
        checks.append(
            CheckResult(
                "d",
                "a smaller size after the largest reports the fresh-process peak",
                NOT_APPLICABLE,
                f"not applicable: {one_size}, no smaller size to measure after it",
            )
        )
    elif fresh is None:
        checks.append(
            CheckResult(
                "d",
                f"{plan.middle} after {plan.largest} reports the fresh-process peak",
                FAIL,
                "no fresh-process run",
            )
        )
    elif main.problem or fresh.problem:
        checks.append(
            CheckResult(
                "d",
                f"{plan.middle} after {plan.largest} reports the fresh-process peak",
                FAIL,
                str(main.problem or fresh.problem),
            )
        )
    else:
        checks.append(
            check_same_peak(
                main.record(AFTER_LARGEST),
                fresh.record(sweep_id(plan.middle)),
                tol.memory_pct,
                plan.middle,
                plan.largest,
            )
        )
    if oom.problem:
        checks.append(
            CheckResult(
                "e", "an induced OOM is recorded as OOM and the next test passes", FAIL, oom.problem
            )
        )
    else:
        checks.append(
            check_oom_recovery(oom.record(OOM), oom.record(AFTER_OOM), plan.largest, plan.smallest)
        )
    if main.problem:
        checks.append(failed["f"])
    else:
        checks.append(
            check_fast_prediction(
                main.record(sweep_id(plan.smallest)), main.record(FULL), tol.fast_pct, plan.smallest
            )
        )
    if not plan.offload_supported:  # nothing was run for it: not judged, whatever the main run did
        checks.append(
            CheckResult(
                "g",
                f"{OFFLOAD_OPTION} lowers the {plan.middle} allocated peak",
                NOT_APPLICABLE,
                f"not applicable to {plan.pipeline} (it does not support {OFFLOAD_OPTION})",
            )
        )
    elif main.problem:
        checks.append(failed["g"])
    else:
        checks.append(
            check_offload_peak(
                main.record(OFFLOAD), main.record(sweep_id(plan.middle)), plan.middle
            )
        )
    second_records = list((second.document or {}).get("records", [])) if second else []
    checks.append(
        check_second_gpu(
            plan.other_device,
            second.problem if second else None,
            second_records,
            device_total_bytes(second.document) if second else None,
            tol,
        )
    )
    checks.append(check_conditions(records, main.problem))
    if main.problem or fresh is None or fresh.problem:
        why = main.problem or (fresh.problem if fresh else "no fresh-process run (one size only)")
        checks.append(
            CheckResult(
                "j", SIGNATURE_TITLE, FAIL if main.problem or fresh else NOT_APPLICABLE, str(why)
            )
        )
    else:
        checks.append(
            check_signature(
                main.record(sweep_id(plan.middle)),
                fresh.record(sweep_id(plan.middle)),
                tol.attribution_pct,
            )
        )
    return checks
