"""A/B calibration: each test's between-process spread, measured once by running the base against
itself, and used by later A/B jobs on the same machine and software as a prior with its real
degrees of freedom.

Why: an A/B job that estimates its spread from its own few rounds pays for it in the t factor (4
rounds: 3 df, t = 12.9 at 99.9 %); the spread of a test on one machine is a property of the machine
and the software, not of the pull request, so it can be measured ahead (nightly) with many rounds.
An A/A job of R rounds gives R - 1 df for the variance of the paired log-ratio of each test.

Stored in the profile's baseline file, under ``ab_calibration``: one block per machine and software
(its fingerprint, minus the keys each test has of its own: dtype, attention), each test's config id
(a test whose generation changed is not calibrated any more) and, per time metric, the log-ratio
standard deviation and its df. A job on another machine finds none; one whose software keys changed
finds a stale one and says which keys (``choose``) and falls back to the job's pooled spread.

Pure: no pytest, no torch, no I/O (``baseline_store.store_calibration`` writes it)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.storage import Scalar
from pytest_i2v.verdict.fingerprint import same_machine, software_changes
from pytest_i2v.verdict.noise_prior import Noise

CalibratedMetric = Literal["time_s", "step_s"]
CALIBRATED_METRICS: tuple[CalibratedMetric, ...] = (
    "time_s",
    "step_s",
)  # the A/B time metrics (ab.paired.TIME_METRICS)
PER_TEST_KEYS = (
    "dtype",
    "attention",
)  # fingerprint keys a test has of its own: its config id covers them
MIN_CALIBRATION_ROUNDS = 3
DEFAULT_CALIBRATION_ROUNDS = (
    30  # 29 df: the t factor at 99.9 % is 3.7, against 12.9 with a 4-round job's own 3
)


class SpreadDoc(TypedDict):
    """A calibrated test's spread of one metric: the log-ratio's standard deviation, its df."""

    sd: float
    df: int


class CalibratedTestDoc(TypedDict, total=False):
    """A calibrated test (``tests[nodeid]``): its config id, how it was measured (``measured``), a
    spread per metric where every round measured it."""

    config_id: str | None
    measured: str
    time_s: SpreadDoc
    step_s: SpreadDoc


class CalibrationDoc(TypedDict):
    """A calibration block in the baseline YAML (``ab_calibration[]``)."""

    fingerprint: dict[str, Scalar]
    date: str
    commit: str | None
    rounds: int
    tests: dict[str, CalibratedTestDoc]


@dataclass(frozen=True)
class CalibrationRecord:
    """What a calibration reads of one test's record in one round (the A/B job reads the record:
    this layer sits below it)."""

    nodeid: str
    config_id: str | None
    mode: str | None  # "fast" or "full"
    repeats: int | None
    outcome: str | None
    time_s: float | None
    step_s: float | None
    fingerprint: Mapping[str, Scalar] | None  # the machine and software it ran on

    @property
    def measured(self) -> str:
        return measured(self.mode, self.repeats)

    def figure(self, metric: CalibratedMetric) -> float | None:
        return self.time_s if metric == "time_s" else self.step_s


@dataclass(frozen=True)
class Calibration:
    fingerprint: dict[str, Scalar]
    date: str
    commit: str | None
    rounds: int
    tests: dict[str, CalibratedTestDoc] = field(
        default_factory=dict
    )  # nodeid -> {config_id, measured, time_s: {sd, df}, ...}

    def priors(self, records: Sequence[CalibrationRecord]) -> dict[str, dict[str, Noise]]:
        """Per test whose generation and measurement are the calibrated ones (its config id, and
        fast or full with as many repeats: another measurement has another spread): its spread per
        metric."""
        priors: dict[str, dict[str, Noise]] = {}
        for record in records:
            nodeid = record.nodeid
            stored = self.tests.get(nodeid)
            if stored is None or (stored.get("config_id"), stored.get("measured")) != (
                record.config_id,
                record.measured,
            ):
                continue
            priors[nodeid] = {
                metric: Noise(float(spread["sd"]) ** 2, int(spread["df"]))
                for metric in CALIBRATED_METRICS
                if (spread := stored.get(metric))
            }
        return priors

    def to_dict(self) -> CalibrationDoc:
        return {
            "fingerprint": dict(sorted(self.fingerprint.items())),
            "date": self.date,
            "commit": self.commit,
            "rounds": self.rounds,
            "tests": {nodeid: self.tests[nodeid] for nodeid in sorted(self.tests)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Calibration:
        try:
            return cls(
                dict(data.get("fingerprint") or {}),
                str(data["date"]),
                data.get("commit"),
                int(data["rounds"]),
                # each test is a mapping: baseline_records._calibration checked it
                {str(k): v for k, v in (data.get("tests") or {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise I2VUsageError(
                f"{where}: malformed ab_calibration block ({type(exc).__name__}: {exc}); "
                f"delete it and run python -m pytest_i2v ab --calibrate again"
            ) from None


def machine_fingerprint(record_fingerprint: Mapping[str, Scalar]) -> dict[str, Scalar]:
    return {k: v for k, v in record_fingerprint.items() if k not in PER_TEST_KEYS}


def calibrate(
    base_records: Sequence[Sequence[CalibrationRecord]],
    head_records: Sequence[Sequence[CalibrationRecord]],
    commit: str | None,
    date: str,
) -> Calibration:
    """The spread of each test's paired log-ratios over A/A rounds (both sides the same code);
    ``base_records[i]``: the records of the base's round i (``ab.machine_calibration``)."""
    if len(base_records) != len(head_records) or len(base_records) < MIN_CALIBRATION_ROUNDS:
        raise I2VUsageError(
            f"a calibration needs at least {MIN_CALIBRATION_ROUNDS} complete rounds "
            f"(got {min(len(base_records), len(head_records))}); pass --rounds 30 for 29 df"
        )
    first = {r.nodeid: r for r in base_records[0]}
    base_rounds = [_round_figures(records) for records in base_records]
    head_rounds = [_round_figures(records) for records in head_records]
    tests: dict[str, CalibratedTestDoc] = {}
    for nodeid, record in first.items():
        entry: CalibratedTestDoc = {"config_id": record.config_id, "measured": record.measured}
        for metric in CALIBRATED_METRICS:
            pairs = [
                (b.get(nodeid, {}).get(metric, 0.0), h.get(nodeid, {}).get(metric, 0.0))
                for b, h in zip(base_rounds, head_rounds, strict=True)
            ]
            ratios = [math.log(h) - math.log(b) for b, h in pairs if b > 0 and h > 0]
            if len(ratios) == len(pairs) >= 2:
                entry[metric] = {
                    "sd": float(f"{statistics.stdev(ratios):.5g}"),
                    "df": len(ratios) - 1,
                }
        if any(metric in entry for metric in CALIBRATED_METRICS):
            tests[nodeid] = entry
    fingerprints = [r.fingerprint or {} for r in first.values()]
    fingerprint = machine_fingerprint(fingerprints[0] if fingerprints else {})
    return Calibration(fingerprint, date, commit, len(base_records), tests)


def measured(mode: str | None, repeats: int | None) -> str:
    """How a record was measured, as far as its spread depends on it: "fast, 1 repeat(s)"."""
    return f"{mode or 'full'}, {repeats} repeat(s)"


def _round_figures(records: Sequence[CalibrationRecord]) -> dict[str, dict[str, float]]:
    """Per test of one round's records (its first record of the id), each calibrated metric's
    figure: 0.0 where the test did not pass or the figure is missing."""
    figures: dict[str, dict[str, float]] = {}
    for record in records:
        if record.nodeid in figures:
            continue
        ok = record.outcome == "ok"
        values = {metric: record.figure(metric) for metric in CALIBRATED_METRICS}
        figures[record.nodeid] = {
            metric: float(value) if ok and value else 0.0 for metric, value in values.items()
        }
    return figures


def choose(
    calibrations: Sequence[Calibration], record_fingerprint: Mapping[str, Scalar]
) -> tuple[Calibration | None, str]:
    """This machine's newest calibration with the same software, and one line saying what the job
    uses: the calibration, or why not (none for this machine; stale, with the keys that changed)."""
    fingerprint = machine_fingerprint(record_fingerprint)
    mine = [c for c in calibrations if same_machine(c.fingerprint, fingerprint)]
    if not mine:
        return (
            None,
            "no A/B calibration for this machine: the spread comes from the job's own rounds",
        )
    newest = max(mine, key=lambda c: c.date)
    changed = software_changes(newest.fingerprint, fingerprint)
    if changed:
        return None, (
            f"the A/B calibration of {newest.date[:10]} is stale ({'; '.join(changed[:3])}): the "
            "spread "
            "comes from the job's own rounds; run python -m pytest_i2v ab --calibrate to refresh "
            "it"
        )
    return newest, (
        f"A/B calibration of {newest.date[:10]} ({newest.rounds} A/A rounds, "
        f"{newest.rounds - 1} df per test) used as each test's spread"
    )


def merge(calibrations: Sequence[Calibration], new: Calibration) -> list[Calibration]:
    """The stored blocks with ``new`` in place of this machine's block of the same software."""
    kept = [
        c
        for c in calibrations
        if not (
            same_machine(c.fingerprint, new.fingerprint)
            and not software_changes(c.fingerprint, new.fingerprint)
        )
    ]
    return [*kept, new]
