"""A round's results document (``--i2v-json``) as the A/B job reads it: TypedDicts of the loaded
JSON's shape (every key optional: an older or failed run writes fewer), and ``RoundRecord``, one
test's record parsed once for the verdicts (its work signature stays packed until compared)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

from pytest_i2v.storage import Scalar
from pytest_i2v.verdict.peak import HeadlinePeak, PeakField, headline_peak


class EnvironmentDoc(TypedDict, total=False):
    gpu_name: str | None
    cpu_model: str | None
    cpu_threads: int | None


class ProfileDoc(TypedDict, total=False):
    name: str | None


class ConfigDoc(TypedDict, total=False):
    pipeline: str | None


class StagesDoc(TypedDict, total=False):
    step_s: float | None


class ConditionsDoc(TypedDict, total=False):
    summary: str | None  # "stable", "not read", or what was not stable


class SignatureDoc(TypedDict, total=False):
    """``WorkSignature.to_record()``: the digest in the open, the op table packed."""

    digest: str
    device_kind: str
    profiled_steps: int
    noise: list[str]
    rows: int
    packed: str


class RecordDoc(TypedDict, total=False):
    nodeid: str
    outcome: str
    config: ConfigDoc | None
    time_s: float | None
    stages: StagesDoc | None
    conditions: ConditionsDoc | None
    peak_memory: Mapping[str, PeakField] | None
    fingerprint: Mapping[str, Scalar] | None  # what ab_calibration.choose matches on
    signature: SignatureDoc | None  # round 1 only (--i2v-signature on)


class ResultsDocument(TypedDict, total=False):
    records: list[RecordDoc]
    environment: EnvironmentDoc | None
    profile: ProfileDoc | None


@dataclass(frozen=True)
class RoundRecord:
    """One test's figures and outcome in one round's process."""

    nodeid: str
    pipeline: str  # "unknown" where the config names none
    outcome: str | None
    time_s: float | None
    step_s: float | None
    peak: HeadlinePeak  # the headline peak memory
    signature: SignatureDoc | None  # round 1 only; parsed where two are compared

    @classmethod
    def from_dict(cls, record: RecordDoc) -> RoundRecord:
        return cls(
            nodeid=record["nodeid"],
            pipeline=str((record.get("config") or {}).get("pipeline") or "unknown"),
            outcome=record.get("outcome"),
            time_s=record.get("time_s"),
            step_s=(record.get("stages") or {}).get("step_s"),
            peak=headline_peak(record.get("peak_memory")),
            signature=record.get("signature"),
        )
