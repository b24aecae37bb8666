"""What a baseline keeps of one accepted run: its figures, flat (``baseline_store.RUN_FIELDS``),
read from the typed record."""

from __future__ import annotations

from datetime import datetime, timezone

from pytest_i2v.metrics import DECODE_S, ENCODE_S, MEMORY_METRICS, STEP_S, TIME_S
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.storage import Scalar
from pytest_i2v.verdict.baseline_store import PROBE_FIELDS, RUN_FIELDS


def _round(value: Scalar) -> Scalar:
    if isinstance(value, float):
        return float(f"{value:.5g}")  # 5 significant digits: finer than any noise we can see
    return value


def run_from_record(
    record: GenerationRecord, commit: str | None, date: str | None = None
) -> dict[str, Scalar]:
    """The figures of one accepted run, as stored in a history."""
    stages, peak, conditions = record.stages, record.peak_memory, record.conditions
    run: dict[str, Scalar] = {
        "date": date or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "repeats": record.repeats,
        TIME_S: record.time_s,
        STEP_S: stages.step_s,
        DECODE_S: stages.decode_s,
        ENCODE_S: stages.encode_s,
    }
    for metric in MEMORY_METRICS:
        run[metric] = record.peak(metric)
    if peak.device_bytes is not None:
        run["device_scope"] = peak.device_scope  # NVML figures of different scopes never compare
    if conditions is not None:  # a GPU's: the clock under the time, and any throttling
        run["sm_clock_mhz"] = conditions.median_sm_clock_mhz
        if conditions.summary not in ("stable", "not read"):
            # Kept, not refused: a re-baseline on a hot runner must still record; the reviewer
            # sees why.
            run["conditions"] = conditions.summary
    # the segment keeps the newest one's table
    run["work"] = record.signature.digest if record.signature else None
    for name, value in (record.machine_probe or {}).items():  # the machine's speed that session
        if name in PROBE_FIELDS:
            run[f"probe_{name}"] = value
    return {k: _round(run[k]) for k in RUN_FIELDS if run.get(k) is not None or k in ("commit",)}
