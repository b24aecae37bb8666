"""What an i2v test tells pytest-benchmark's JSON consumers beyond its round times: the group it
belongs to and its ``extra_info``. Pure: read from a results record
(``GenerationRecord.to_dict()``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_i2v.verdict.fingerprint import CPU_MACHINE_KEYS, FINGERPRINT_KEYS
from pytest_i2v.verdict.peak import LABELS, record_peak


def benchmark_group(config: Mapping[str, Any]) -> str:
    """The pipeline and the resolution, with the size a profile scaled it to:
    ``i2vgen-xl 512p (64x64)``."""
    size = f"{config.get('width')}x{config.get('height')}"
    label = config.get("resolution") or size
    return f"{config.get('pipeline')} {label}" + (f" ({size})" if label != size else "")


def extra_info(record: Mapping[str, Any]) -> dict[str, Any]:
    """The generation, its stages, memory in bytes, the outcome and the machine: seconds and bytes,
    None where not measured. ``gate_measurements`` > 1: the gate re-measured; the benchmark's rounds
    are the first measurement's, these figures the last one's (the record's)."""
    config = record.get("config") or {}
    stages = record.get("stages") or {}
    peak_memory = record.get("peak_memory") or {}
    peak = record_peak(record)
    decision = record.get("decision") or {}
    fingerprint = record.get("fingerprint") or {}
    fast = record.get("fast") or {}
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
        "memory_options": list(config.get("memory") or []),
        "attention": config.get("attention"),
        "device": config.get("device"),
        "mode": record.get("mode"),
        # fast mode: each round ran measured_steps steps; time_s is the full run predicted from them
        "measured_steps": fast.get("measured_steps", config.get("steps")),
        "repeats": record.get("repeats"),
        "warmup": record.get("warmup"),
        "time_s": record.get("time_s"),
        "encode_s": stages.get("encode_s"),
        "denoise_s": stages.get("denoise_s"),
        "step_s": stages.get("step_s"),
        "decode_s": stages.get("decode_s"),
        "gen_fps": record.get("gen_fps"),
        "peak_bytes": peak.bytes,
        "peak_kind": peak.label,
        **{f"peak_{key}": peak_memory.get(key) for key in LABELS},
        "outcome": decision.get("kind", record.get("outcome")),
        "outcome_reason": decision.get("reason"),
        "verdict": (record.get("verdict") or {}).get("verdict"),
        "gate_measurements": int(record.get("measurements") or 1),
        "machine": {
            key: fingerprint[key]
            for key in (*FINGERPRINT_KEYS, *CPU_MACHINE_KEYS)
            if fingerprint.get(key) is not None
        },
    }
