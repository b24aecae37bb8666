"""The job's side of the A/B calibration (``pytest_i2v.verdict.ab_calibration``): which baseline
file holds it, this machine's spreads read after round 1, and an A/A job's spreads stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from pytest_i2v.ab.results_doc import RoundResults
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.ab_calibration import CalibrationRecord, calibrate, choose
from pytest_i2v.verdict.baseline_store import baseline_path, read_baseline, store_calibration
from pytest_i2v.verdict.noise_prior import Noise

Docs = Mapping[str, list[RoundResults]]  # side -> the rounds' results
Priors = dict[str, dict[str, Noise]]  # nodeid -> metric -> the calibrated spread


def calibration_path(docs: Docs, baseline_dir: Path | None, repo: Path, cwd: Path) -> Path | None:
    """The baseline file of the profile round 1 ran under (None: no profile named)."""
    profile = docs["base"][0].profile if docs["base"] else None
    if not profile:
        return None
    directory = baseline_dir or repo / "baselines"
    return baseline_path(directory if directory.is_absolute() else cwd / directory, str(profile))


def load_calibration(docs: Docs, path: Path | None) -> tuple[Priors, str] | None:
    """After round 1 (the records name the machine): this machine's spreads if its calibration is
    current (else none), with a line that says which; None when there is nothing to look up."""
    records = docs["base"][0].records if docs["base"] else []
    if not records or path is None:
        return None
    fingerprint = records[0].fingerprint or {}
    calibration, note = choose(read_baseline(path).calibrations, fingerprint)
    if calibration is None:
        return {}, note
    priors = calibration.priors(calibration_records(records))
    return priors, note + f" ({len(priors)} of {len(records)} tests, from {path.name})"


def store_ab_calibration(docs: Docs, path: Path | None, commit: str) -> str:
    """An A/A job's spreads, stored in the profile's baseline file; the line that says so."""
    if path is None:
        raise I2VUsageError(
            "the A/A rounds wrote no profile name; run the calibration with --gpu-profile NAME"
        )
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    base = [calibration_records(d.records) for d in docs["base"]]
    head = [calibration_records(d.records) for d in docs["head"]]
    calibration = calibrate(base, head, commit, created)
    store_calibration(path, path.stem, calibration)
    spreads = sorted(
        float(t["time_s"]["sd"]) for t in calibration.tests.values() if t.get("time_s")
    )
    middle = f", median log-ratio sd {spreads[len(spreads) // 2]:.2%}" if spreads else ""
    return (
        f"calibrated {len(calibration.tests)} tests over {calibration.rounds} A/A rounds "
        f"({calibration.rounds - 1} df each{middle}); stored in {path}"
    )


def calibration_records(records: Sequence[GenerationRecord]) -> list[CalibrationRecord]:
    """What the calibration reads of each record (it sits below the record: plain values)."""
    return [
        CalibrationRecord(
            nodeid=r.nodeid,
            config_id=r.config_id,
            mode=r.mode,
            repeats=r.repeats,
            outcome=r.outcome,
            time_s=r.time_s,
            step_s=r.stages.step_s,
            fingerprint=r.fingerprint,
        )
        for r in records
    ]
