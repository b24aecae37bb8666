"""One record per measured test and the schema-versioned results document (``--i2v-json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.storage import check_schema, write_text_atomic

if TYPE_CHECKING:  # the review CLI reads results without torch
    from pytest_i2v.measure.measurement import Measurement

RESULTS_SCHEMA = "pytest-i2v/results"
RESULTS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class GenerationRecord:
    nodeid: str
    config: dict[str, Any]
    outcome: str
    repeats: int
    warmup: int
    time_s: float | None
    time_samples_s: list[float]
    gen_fps: float | None
    stages: dict[str, Any]
    peak_memory: dict[str, int | None]
    load_s: float | None
    oom: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    wall_s: float | None = None
    config_id: str | None = None
    fingerprint: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None  # gate.RegressionVerdict.to_dict()
    latency_class: str | None = (
        None  # good / acceptable / too-slow (the study's patience thresholds)
    )
    budget: dict[str, float | None] | None = None  # declared vram_gb / time_s
    baseline_history: list[float] | None = (
        None  # the baseline's last accepted total times (for charts)
    )
    mode: str = "full"  # "fast": time_s and gen_fps are predicted from measured steps
    fast: dict[str, Any] | None = (
        None  # fast mode: measured_steps, measured_time_s, measured_time_samples_s
    )
    ci_pct: float | None = None  # 95 % CI width of the median time, % of the median
    adaptive: dict[str, Any] | None = (
        None  # adaptive repeats: target, repeats needed, how it stopped
    )
    roofline: dict[str, Any] | None = (
        None  # achieved TFLOP/s of the denoising loop vs the datasheet peak
    )
    memory_start: dict[str, Any] | None = (
        None  # measure.memory.MemoryLevel: where the measurement started
    )
    decision: dict[str, Any] | None = None  # outcome.Outcome: what the test comes to, decided once
    conditions: dict[str, Any] | None = (
        None  # conditions.RunConditions: the GPU per repeat (None on the CPU)
    )
    nvml_device: str | None = (
        None  # which NVML device the figures are ("UUID GPU-...", "index 0"); None: no NVML
    )
    signature: dict[str, Any] | None = (
        None  # signature.WorkSignature.to_record(): the work of one profiled generation
    )
    work: dict[str, Any] | None = (
        None  # work_diff.WorkDiff.to_dict() against the baseline, with its "verdict"
    )
    measurements: int = (
        1  # the gate's: the first, plus one per re-measurement (in this process or a fresh one)
    )
    machine_probe: dict[str, float] | None = (
        None  # measure.probe: this session's machine speed, before its first test
    )

    @classmethod
    def from_measurement(
        cls, nodeid: str, measurement: Measurement, model: Mapping[str, Any], load_s: float | None
    ) -> GenerationRecord:
        config = measurement.spec.to_dict()
        config.update(model)  # source, provenance, dtype actually used, device
        notes = [measurement.nvml_note] if measurement.nvml_note else []
        conditions = measurement.conditions
        fast = None
        if measurement.predicted:
            fast = {
                "predicted": True,
                "measured_steps": measurement.measured_steps,
                "steps": measurement.spec.steps,
                "measured_time_s": measurement.measured_time_s,
                "measured_time_samples_s": [s.total_s for s in measurement.samples],
            }
        adaptive = None
        if measurement.adaptive is not None:
            a = measurement.adaptive
            adaptive = {
                "target_ci_pct": a.target_pct,
                "min_repeats": a.minimum,
                "max_repeats": a.maximum,
                "repeats_needed": len(measurement.samples),
                "stopped": "converged"
                if (measurement.ci_pct or 1e9) <= a.target_pct
                else "max-repeats",
            }
        return cls(
            nodeid=nodeid,
            config=config,
            outcome=measurement.outcome,
            repeats=len(measurement.samples),
            warmup=measurement.warmup,
            time_s=measurement.time_s,
            time_samples_s=measurement.time_samples_s,
            gen_fps=measurement.gen_fps,
            stages=measurement.stages_dict(),
            peak_memory=measurement.peak.to_dict(),
            load_s=load_s,
            oom=measurement.oom.to_dict() if measurement.oom else None,
            notes=notes,
            wall_s=measurement.wall_s,
            mode="fast" if fast else "full",
            fast=fast,
            ci_pct=measurement.ci_pct,
            adaptive=adaptive,
            memory_start=measurement.start.to_dict() if measurement.start else None,
            conditions=conditions.to_dict() if conditions is not None else None,
            nvml_device=measurement.nvml_opened_by,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "config": self.config,
            "outcome": self.outcome,
            "repeats": self.repeats,
            "warmup": self.warmup,
            "time_s": self.time_s,
            "time_samples_s": self.time_samples_s,
            "gen_fps": self.gen_fps,
            "stages": self.stages,
            "peak_memory": self.peak_memory,
            "load_s": self.load_s,
            "oom": self.oom,
            "notes": self.notes,
            "wall_s": self.wall_s,
            "config_id": self.config_id,
            "fingerprint": self.fingerprint,
            "verdict": self.verdict,
            "latency_class": self.latency_class,
            "budget": self.budget,
            "baseline_history": self.baseline_history,
            "mode": self.mode,
            "fast": self.fast,
            "ci_pct": self.ci_pct,
            "adaptive": self.adaptive,
            "roofline": self.roofline,
            "memory_start": self.memory_start,
            "decision": self.decision,
            "conditions": self.conditions,
            "nvml_device": self.nvml_device,
            "signature": self.signature,
            "work": self.work,
            "measurements": self.measurements,
            "machine_probe": self.machine_probe,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationRecord:
        known: dict[str, Any] = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @classmethod
    def from_partial(cls, data: Mapping[str, Any]) -> GenerationRecord:
        """A record of an older or hand-written results document: the measured fields it leaves
        out take their empty values (the review CLI judges it as the plugin would)."""
        empty: dict[str, Any] = {
            "config": {},
            "outcome": "ok",
            "repeats": 0,
            "warmup": 0,
            "time_s": None,
            "time_samples_s": [],
            "gen_fps": None,
            "stages": {},
            "peak_memory": {},
            "load_s": None,
        }
        return cls.from_dict({**empty, **{k: v for k, v in data.items() if v is not None}})

    def user_properties(self) -> list[tuple[str, Any]]:
        """The key figures for JUnit XML (``record_property``-style)."""
        props: list[tuple[str, Any]] = [
            ("i2v_outcome", (self.decision or {}).get("kind", self.outcome)),
            ("i2v_measured", self.outcome),
        ]
        if self.verdict:
            props.append(("i2v_verdict", self.verdict["verdict"]))
        if self.conditions:
            props.append(("i2v_conditions", self.conditions["summary"]))
        for name, value in (
            ("i2v_time_s", self.time_s),
            ("i2v_gen_fps", self.gen_fps),
            ("i2v_step_s", self.stages.get("step_s")),
            ("i2v_peak_allocated_bytes", self.peak_memory.get("allocated_bytes")),
            ("i2v_peak_reserved_bytes", self.peak_memory.get("reserved_bytes")),
            ("i2v_peak_device_bytes", self.peak_memory.get("device_bytes")),
            ("i2v_peak_host_rss_bytes", self.peak_memory.get("host_rss_bytes")),
        ):
            if value is not None:
                props.append((name, round(value, 6) if isinstance(value, float) else value))
        return props


def build_document(
    environment: Mapping[str, Any],
    profile: Mapping[str, Any],
    settings: Mapping[str, Any],
    records: list[GenerationRecord],
    pipelines: list[dict[str, Any]],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "schema": RESULTS_SCHEMA,
        "schema_version": RESULTS_SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": dict(environment),
        "profile": dict(profile),
        "settings": dict(settings),
        "pipelines": pipelines,
        "records": [r.to_dict() for r in records],  # in the order the tests ran
        **dict(extra or {}),
    }


def write_json_atomic(path: Path, document: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def read_results(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise I2VUsageError(
            f"results file {path} does not exist; run pytest with --i2v-json {path} first"
        ) from None
    except json.JSONDecodeError as exc:
        raise I2VUsageError(
            f"results file {path} is not valid JSON (line {exc.lineno}); regenerate it"
        ) from None
    check_schema(document, RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION, str(path), "results")
    return dict(document)
