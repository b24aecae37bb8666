"""A results document as the history's rows: the run's identity, its ``runs`` row and one
``results`` row per test. Pure: no database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.history.schema import BYTES_COLUMNS
from pytest_i2v.metrics import DECODE_S, DENOISE_S, ENCODE_S, STEP_S, TIME_S
from pytest_i2v.record.document import read_records
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.fingerprint import GPU_CLOCKS_KEY, MACHINE_KEYS, SOFTWARE_KEYS

# The environment's keys that say which machine ran, beside the fingerprint's machine keys.
MACHINE_CONTEXT_KEYS = ("device", "machine")


@dataclass(frozen=True)
class RunRows:
    """One results document, ready to insert: the run and its tests."""

    run: dict[str, Any]
    results: tuple[dict[str, Any], ...]

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])


def canonical_json(value: Any) -> str:
    """The one JSON text of a value: keys sorted, no spaces (digests are taken of it)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


def run_id_of(document: Mapping[str, Any], records: list[GenerationRecord]) -> str:
    """A run's identity: the time it was written, the whole environment it ran in (the machine,
    its software, the speed probe's figures) and each test with its measured times. The same file
    added twice, or copied to another runner and added there, is one run; two runners that finish
    in the same second differ in their environment or their times. The commit is left out: it
    says what was measured, not which run this is, and may be given only when the file is added."""
    identity = {
        "created": document.get("created"),
        "environment": document.get("environment"),
        "tests": [[r.nodeid, r.time_s, r.time_samples_s, r.stages.step_s] for r in records],
    }
    return digest(identity)


def run_rows(
    document: Mapping[str, Any], commit: str | None, where: str, added_at: datetime
) -> RunRows:
    """The rows of a results document whose schema was checked (``record.document``)."""
    records = read_records(document, where)
    environment = document.get("environment") or {}
    if not isinstance(environment, dict):
        raise I2VUsageError(f"{where}: its 'environment' is not an object; regenerate it")
    run_id = run_id_of(document, records)
    software = {k: environment.get(k) for k in (*SOFTWARE_KEYS, GPU_CLOCKS_KEY) if k in environment}
    machine = {k: environment.get(k) for k in (*MACHINE_CONTEXT_KEYS, *MACHINE_KEYS)}
    profile = (document.get("profile") or {}).get("name") or environment.get("profile")
    probe = environment.get("machine_probe")
    run = {
        "run_id": run_id,
        "commit": commit,
        "created": utc_text(document.get("created"), where),
        "machine": canonical_json(machine),
        "software_digest": digest(software),
        "software": canonical_json(software),
        "profile": str(profile) if profile is not None else None,
        "probe": canonical_json(probe) if probe else None,
        "tests": len(records),
        "added_at": added_at.astimezone(timezone.utc).isoformat(timespec="microseconds"),
    }
    return RunRows(run, tuple(result_row(run_id, r) for r in records))


def result_row(run_id: str, record: GenerationRecord) -> dict[str, Any]:
    peak = record.headline_peak()
    peaks = asdict(record.peak_memory)
    fidelity = record.fidelity
    return {
        "run_id": run_id,
        "nodeid": record.nodeid,
        "config_id": record.config_id,
        "config": canonical_json(record.config),
        "outcome": record.outcome,
        "decision": record.decision.kind if record.decision else None,
        TIME_S: record.time_s,
        ENCODE_S: record.stages.encode_s,
        DENOISE_S: record.stages.denoise_s,
        STEP_S: record.stages.step_s,
        DECODE_S: record.stages.decode_s,
        **{name: peaks.get(name) for name in BYTES_COLUMNS},
        "peak_metric": peak.key,
        "peak_bytes": peak.bytes,
        "work_digest": record.signature.digest if record.signature else None,
        "fidelity_verdict": fidelity.verdict if fidelity else None,
        "psnr_db": fidelity.figures.min_psnr_db if fidelity else None,
    }


def utc_text(created: Any, where: str) -> str:
    """The document's ``created`` as UTC ISO text, so that runs sort by it as text."""
    try:
        moment = datetime.fromisoformat(str(created))
    except ValueError:
        raise I2VUsageError(
            f"{where}: its 'created' {created!r} is not an ISO time; regenerate the results file"
        ) from None
    if moment.tzinfo is None:  # written without a zone: taken as UTC, as build_document writes
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")
