"""What an i2v test tells pytest-benchmark's JSON consumers beyond its round times: the group it
belongs to and its ``extra_info``. Pure: read from a results record."""

from __future__ import annotations

from collections.abc import Mapping

from pytest_i2v.metrics import DECODE_S, DENOISE_S, ENCODE_S, STEP_S, TIME_S
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.storage import JsonValue
from pytest_i2v.verdict.fingerprint import CPU_MACHINE_KEYS, FINGERPRINT_KEYS
from pytest_i2v.verdict.peak import LABELS


def benchmark_group(config: Mapping[str, JsonValue]) -> str:
    """The pipeline and the resolution, with the size a profile scaled it to:
    ``i2vgen-xl 512p (64x64)``."""
    size = f"{config.get('width')}x{config.get('height')}"
    label = config.get("resolution") or size
    return f"{config.get('pipeline')} {label}" + (f" ({size})" if label != size else "")


def extra_info(record: GenerationRecord) -> dict[str, JsonValue]:
    """The generation, its stages, memory in bytes, the outcome and the machine: seconds and bytes,
    None where not measured. ``gate_measurements`` > 1: the gate re-measured; the benchmark's rounds
    are the first measurement's, these figures the last one's (the record's). A JSON document:
    pytest-benchmark writes it as it is."""
    config, stages, decision = record.config, record.stages, record.decision
    peak = record.headline_peak()
    fingerprint = record.fingerprint or {}
    return {
        "pipeline": config.get("pipeline"),
        "resolution": config.get("resolution") or f"{config.get('width')}x{config.get('height')}",
        "width": config.get("width"),
        "height": config.get("height"),
        "frames": config.get("frames"),
        "steps": config.get("steps"),
        "guidance": config.get("guidance"),
        "fps": config.get("fps"),
        "dtype": config.get("dtype"),
        "memory_options": list(record.memory_options),
        "attention": config.get("attention"),
        "device": config.get("device"),
        "mode": record.mode,
        # fast mode: each round ran measured_steps steps; time_s is the full run predicted from them
        "measured_steps": record.fast.measured_steps if record.fast else config.get("steps"),
        "repeats": record.repeats,
        "warmup": record.warmup,
        TIME_S: record.time_s,
        ENCODE_S: stages.encode_s,
        DENOISE_S: stages.denoise_s,
        STEP_S: stages.step_s,
        DECODE_S: stages.decode_s,
        "gen_fps": record.gen_fps,
        "peak_bytes": peak.bytes,
        "peak_kind": peak.label,
        **{f"peak_{metric}": record.peak(metric) for metric in LABELS},
        "outcome": record.kind,
        "outcome_reason": decision.reason if decision else None,
        "verdict": record.verdict.verdict if record.verdict else None,
        "gate_measurements": record.measurements,
        "machine": {
            key: fingerprint[key]
            for key in (*FINGERPRINT_KEYS, *CPU_MACHINE_KEYS)
            if fingerprint.get(key) is not None
        },
    }
