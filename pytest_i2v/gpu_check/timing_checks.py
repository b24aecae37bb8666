"""The timing checks, pure functions over result records: (b) the CUDA-event stages add up to
the synchronised total, (c) the steps add up to the loop's own timing, (f) fast mode predicts a
full run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pytest_i2v.gpu_check.plan import CheckResult
from pytest_i2v.gpu_check.records import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    fmt_seconds,
    ok_records,
    pct,
    record_name,
)
from pytest_i2v.record.record import GenerationRecord


def _timing_samples(
    record: GenerationRecord,
) -> tuple[list[float], list[list[float]], list[float], list[float]] | None:
    """(synchronised totals, per-repeat step times, per-repeat encode, per-repeat decode) of one
    record, or None. In fast mode the synchronised totals are the measured (shortened) runs."""
    stages, fast = record.stages, record.fast
    if record.mode == "fast":
        totals = fast.measured_time_samples_s if fast else []
    else:
        totals = record.time_samples_s
    steps, encode, decode = stages.step_samples_s, stages.encode_samples_s, stages.decode_samples_s
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
        [float(e) for e in encode if e is not None],  # none is, from the check above
        [float(d) for d in decode if d is not None],
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
    records: Sequence[GenerationRecord], missing: list[str]
) -> Iterator[tuple[str, int, float, list[float], float, float]]:
    """(test, repeat number, synchronised total, step times, encode, decode) of every repeat; a
    record without per-repeat stage timings is listed in ``missing``."""
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
    records: Sequence[GenerationRecord], tolerance_pct: float | None, key: str = "b"
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
    records: Sequence[GenerationRecord], tolerance_pct: float | None, key: str = "c"
) -> CheckResult:
    """(c) the per-step times sum to the denoising loop as its own mark pair times it (first
    denoiser call to decode start: events no step shares), per repeat. Not total - encode - decode:
    that holds whenever (b) does, so it could not fail on its own."""
    bar = f"{tolerance_pct:g} %" if tolerance_pct is not None else "2 %"
    title = f"per-step times sum to the denoising loop's own timing within {bar}, per repeat"
    deviations: list[tuple[float, str]] = []
    missing: list[str] = []
    for record in ok_records(records):
        steps, recorded = record.stages.step_samples_s, record.stages.denoise_span_samples_s
        spans = [span for span in recorded if span]
        if not steps or len(steps) != len(recorded) or len(spans) != len(recorded):
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


def check_fast_prediction(
    fast: GenerationRecord | None,
    full: GenerationRecord | None,
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
        if record.outcome != "ok" or not record.time_s:
            return CheckResult(key, title, FAIL, f"the {what} {label} run ended {record.outcome!r}")
    assert fast is not None and full is not None
    if fast.mode != "fast" or full.mode != "full":
        return CheckResult(
            key,
            title,
            FAIL,
            f"expected a fast and a full record, got {fast.mode} and {full.mode}",
        )
    fast_s, full_s = fast.time_s, full.time_s
    assert fast_s and full_s  # both ran ok with a time, from the loop above
    measured = fast.fast.measured_steps if fast.fast else None
    delta = pct(float(fast_s), float(full_s))
    steps = fast.setting("steps")
    figures = (
        f"predicted {fmt_seconds(fast_s)} from {measured} of {steps} steps "
        f"vs full {fmt_seconds(full_s)} ({delta:+.2f} %)"
    )
    if tolerance_pct is None:
        return CheckResult(
            key, title, NOT_APPLICABLE, f"dry run, CPU timings are not judged ({figures})"
        )
    return CheckResult(key, title, FAIL if abs(delta) > tolerance_pct else PASS, figures)
