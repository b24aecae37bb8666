"""A round's results document (``--i2v-json``) as the A/B job reads it: ``RoundResults``, its typed
records (``record.document.read_records``: a base older than the typed record wrote schema version
1, read leniently), the environment it ran in and the profile it ran under."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.document import read_records, read_results
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.storage import JsonValue
from pytest_i2v.verdict.fidelity import FidelitySettings


@dataclass(frozen=True)
class RoundResults:
    """One side's process of one round: its records, in the order the tests ran."""

    records: list[GenerationRecord]
    # the machine and library facts, as the document has them (ab.json copies the first base's)
    environment: Mapping[str, JsonValue] = field(default_factory=dict)
    profile: str | None = None  # the profile's name: its baseline file holds the calibration
    source: str = ""  # the file it was read from
    # the profile's bars (the document's profile.fidelity): A/B holds head's output to them
    fidelity: FidelitySettings = field(default_factory=FidelitySettings)

    @classmethod
    def read(cls, path: Path) -> RoundResults:
        """The results file a process wrote (one usage error where it cannot be read)."""
        return cls.of(read_results(path), str(path))

    @classmethod
    def of(cls, document: Mapping[str, JsonValue], where: str) -> RoundResults:
        """A loaded results document whose schema was checked."""
        environment, profile = document.get("environment"), document.get("profile")
        name = profile.get("name") if isinstance(profile, Mapping) else None
        bars = profile.get("fidelity") if isinstance(profile, Mapping) else None
        return cls(
            records=read_records(document, where),
            environment=environment if isinstance(environment, Mapping) else {},
            profile=str(name) if name else None,
            source=where,
            fidelity=_fidelity(bars, where),
        )


def _fidelity(bars: JsonValue, where: str) -> FidelitySettings:
    """The document's bars; the defaults for a document from before they were written."""
    if not isinstance(bars, Mapping):
        return FidelitySettings()
    try:
        return FidelitySettings.from_mapping(bars)
    except ValueError as exc:
        raise I2VUsageError(f"{where}: profile.fidelity: {exc}") from None
