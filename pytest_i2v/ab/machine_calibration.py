"""The job's side of the A/B calibration (``pytest_i2v.verdict.ab_calibration``): which baseline
file holds it, this machine's spreads read after round 1, and an A/A job's spreads stored."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from pytest_i2v.ab.results_doc import ResultsDocument
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.verdict.ab_calibration import calibrate, choose
from pytest_i2v.verdict.baseline_store import baseline_path, read_baseline, store_calibration
from pytest_i2v.verdict.noise_prior import Noise

Docs = Mapping[str, list[ResultsDocument]]  # side -> the rounds' results documents
Priors = dict[str, dict[str, Noise]]  # nodeid -> metric -> the calibrated spread


def calibration_path(docs: Docs, baseline_dir: Path | None, repo: Path, cwd: Path) -> Path | None:
    """The baseline file of the profile round 1 ran under (None: no profile named)."""
    profile = ((docs["base"][0].get("profile") or {}) if docs["base"] else {}).get("name")
    if not profile:
        return None
    directory = baseline_dir or repo / "baselines"
    return baseline_path(directory if directory.is_absolute() else cwd / directory, str(profile))


def load_calibration(docs: Docs, path: Path | None) -> tuple[Priors, str] | None:
    """After round 1 (the records name the machine): this machine's spreads if its calibration is
    current (else none), with a line that says which; None when there is nothing to look up."""
    records = docs["base"][0].get("records") or [] if docs["base"] else []
    if not records or path is None:
        return None
    fingerprint = records[0].get("fingerprint") or {}
    calibration, note = choose(read_baseline(path).calibrations, fingerprint)
    if calibration is None:
        return {}, note
    priors = calibration.priors(records)
    return priors, note + f" ({len(priors)} of {len(records)} tests, from {path.name})"


def store_ab_calibration(docs: Docs, path: Path | None, commit: str) -> str:
    """An A/A job's spreads, stored in the profile's baseline file; the line that says so."""
    if path is None:
        raise I2VUsageError(
            "the A/A rounds wrote no profile name; run the calibration with --gpu-profile NAME"
        )
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    calibration = calibrate(docs["base"], docs["head"], commit, created)
    store_calibration(path, path.stem, calibration)
    spreads = sorted(
        float(t["time_s"]["sd"]) for t in calibration.tests.values() if t.get("time_s")
    )
    middle = f", median log-ratio sd {spreads[len(spreads) // 2]:.2%}" if spreads else ""
    return (
        f"calibrated {len(calibration.tests)} tests over {calibration.rounds} A/A rounds "
        f"({calibration.rounds - 1} df each{middle}); stored in {path}"
    )
