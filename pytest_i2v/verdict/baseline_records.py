"""What a baseline file holds, in memory: per test an entry of segments split by environment
fingerprint, the A/B calibrations, and the lookups the gate makes (this machine's newest segment,
the pooled noise prior, the work-signature table beside the file). ``from_dict`` checks the parsed
YAML part by part, so a malformed part is named by its place; ``baseline_store`` reads and writes
the file."""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import ConfigValue
from pytest_i2v.storage import Scalar, check_schema
from pytest_i2v.verdict.ab_calibration import Calibration, CalibrationDoc
from pytest_i2v.verdict.fingerprint import (
    machine_changes,
    same_machine,
    software_changes,
)
from pytest_i2v.verdict.gate import TIME_METRICS
from pytest_i2v.verdict.noise_prior import Noise, prior_from
from pytest_i2v.verdict.signature import WorkSignature, from_bytes
from pytest_i2v.verdict.yaml_shapes import (
    ENTRIES_SHAPE,
    ENTRY_SHAPE,
    SEGMENT_SHAPE,
    describe_value,
    figure,
    malformed,
    mapping_part,
    sequence_part,
)

BASELINE_SCHEMA = "pytest-i2v/baseline"
BASELINE_SCHEMA_VERSION = 1
# What defines a generation: a change here means the old numbers no longer apply.
CONFIG_ID_FIELDS = (
    "width",
    "height",
    "frames",
    "steps",
    "guidance",
    "fps",
    "dtype",
    "memory",
    "source",
    "prompt",
    "seed",
    "pipeline",
    "attention",
    "cache",
)
# Fields added after baselines existed, with the value every older record implies: left out of the
# id at that value, so an I2VGen-XL baseline written before pipelines existed keeps its id.
CONFIG_ID_IMPLIED = {"pipeline": "i2vgen-xl", "attention": None, "cache": None}


class SegmentDoc(TypedDict, total=False):
    """A ``Segment`` in the baseline YAML (``entries[nodeid].segments[]``)."""

    fingerprint: dict[str, Scalar]
    runs: Sequence[Mapping[str, Scalar]]  # flat: figures, the date, the commit, the NVML scope
    signature: str
    output: str


class BaselineEntryDoc(TypedDict):
    """A ``BaselineEntry`` in the baseline YAML (``entries[nodeid]``)."""

    config_id: str
    config: dict[str, ConfigValue]
    segments: list[SegmentDoc]


class BaselineFileDoc(TypedDict, total=False):
    """The baseline YAML, as ``BaselineFile.to_dict`` writes it."""

    schema: str
    schema_version: int
    profile: str
    entries: dict[str, BaselineEntryDoc]
    ab_calibration: list[CalibrationDoc]


def config_id(config: Mapping[str, ConfigValue]) -> str:
    fields = {k: config.get(k, CONFIG_ID_IMPLIED.get(k)) for k in CONFIG_ID_FIELDS}
    fields = {
        k: v
        for k, v in fields.items()
        if not (k in CONFIG_ID_IMPLIED and v == CONFIG_ID_IMPLIED[k])
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@dataclass
class Segment:
    fingerprint: dict[str, Scalar]
    # Flat, as parsed: the judgement and the review CLI read a run's figures by name.
    runs: list[dict[str, Scalar]] = field(default_factory=list)
    signature: str | None = (
        None  # the digest of the newest accepted run's work signature: its table is a side file
    )
    output: str | None = None  # the digest of the newest accepted run's output: a side file

    @property
    def step_s(self) -> float | None:
        """The median timed step of the runs: what a changed work's effect is a share of."""
        steps = [float(step) for run in self.runs if (step := figure(run.get("step_s")))]
        return statistics.median(steps) if steps else None

    def to_dict(self) -> SegmentDoc:
        data: SegmentDoc = {
            "fingerprint": dict(sorted(self.fingerprint.items())),
            "runs": self.runs,
        }
        if self.signature:
            data["signature"] = self.signature
        if self.output:
            data["output"] = self.output
        return data


@dataclass
class BaselineEntry:
    nodeid: str
    config_id: str
    config: dict[str, ConfigValue]
    segments: list[Segment] = field(default_factory=list)

    @property
    def current(self) -> Segment | None:
        return self.segments[-1] if self.segments else None

    def segment_for(self, fingerprint: Mapping[str, Scalar]) -> Segment | None:
        """The newest segment measured on this machine, None if every one is another machine's.
        A machine key a segment lacks (written before the key existed) is unknown and matches."""
        return next(
            (s for s in reversed(self.segments) if same_machine(s.fingerprint, fingerprint)), None
        )

    def segment_to_extend(self, fingerprint: Mapping[str, Scalar]) -> Segment | None:
        """Where an accepted run with this fingerprint goes: this machine's newest segment if its
        software is the same too, else None (a new segment)."""
        segment = self.segment_for(fingerprint)
        if segment is None or software_changes(segment.fingerprint, fingerprint):
            return None
        return segment

    def to_dict(self) -> BaselineEntryDoc:
        return {
            "config_id": self.config_id,
            "config": {k: self.config.get(k) for k in CONFIG_ID_FIELDS if k in self.config},
            "segments": [s.to_dict() for s in self.segments],
        }


@dataclass
class BaselineFile:
    profile: str
    entries: dict[str, BaselineEntry] = field(default_factory=dict)
    path: Path | None = None  # where it was read from (its work-signature tables live beside it)
    calibrations: list[Calibration] = field(
        default_factory=list
    )  # A/B calibrations, one per machine and software

    def work_of(self, segment: Segment | None) -> WorkSignature | None:
        """The work-signature table a segment names, read from beside the file; None without one."""
        if segment is None or not segment.signature or self.path is None:
            return None
        return read_signature(self.path, segment.signature)

    def output_of(self, segment: Segment | None) -> bytes | None:
        """The stored output a segment names (``record.output`` reads it), from beside the file;
        None without one."""
        if segment is None or not segment.output or self.path is None:
            return None
        stored = output_dir(self.path) / f"{segment.output}.json.gz"
        return stored.read_bytes() if stored.is_file() else None

    def pooled(
        self, fingerprint: Mapping[str, Scalar] | None = None, leave_out: str | None = None
    ) -> dict[str, Noise | None]:
        """The run-to-run noise prior per time metric (``noise_prior.prior_from``), fitted over
        every entry's segment from the machine of ``fingerprint`` (another machine's noise is not
        this one's; without one, the newest segments) except ``leave_out``: the judged test never
        counts its own runs twice."""
        segments = [
            e.current if fingerprint is None else e.segment_for(fingerprint)
            for nodeid, e in self.entries.items()
            if nodeid != leave_out
        ]
        return {
            metric: prior_from(
                [[figure(r.get(metric)) for r in s.runs] for s in segments if s is not None]
            )
            for metric in TIME_METRICS
        }

    def machine_coverage(
        self, environment: Mapping[str, Scalar]
    ) -> tuple[list[str], tuple[str, ...]]:
        """(the tests with runs measured on the machine of ``environment``, and how the newest
        segment's machine differs when none has any): what CI's gate reads to choose its mode."""
        covered = [
            nodeid
            for nodeid, entry in sorted(self.entries.items())
            if (segment := entry.segment_for(environment)) is not None and segment.runs
        ]
        newest = [e.current.fingerprint for e in self.entries.values() if e.current]
        return covered, (() if covered or not newest else machine_changes(newest[0], environment))

    def find_by_config(self, cid: str) -> list[str]:
        return [nodeid for nodeid, entry in self.entries.items() if entry.config_id == cid]

    def to_dict(self) -> BaselineFileDoc:
        data: BaselineFileDoc = {
            "schema": BASELINE_SCHEMA,
            "schema_version": BASELINE_SCHEMA_VERSION,
            "profile": self.profile,
            "entries": {nodeid: self.entries[nodeid].to_dict() for nodeid in sorted(self.entries)},
        }
        if self.calibrations:
            data["ab_calibration"] = [c.to_dict() for c in self.calibrations]
        return data

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], where: str, profile: str | None = None
    ) -> BaselineFile:
        check_schema(data, BASELINE_SCHEMA, BASELINE_SCHEMA_VERSION, where, "baseline")
        stored_profile = data.get("profile")
        if profile is not None and stored_profile != profile:
            raise I2VUsageError(
                f"{where} holds baselines for profile {stored_profile!r}, not {profile!r}; "
                f"rename or move it, or pass --gpu-profile {stored_profile}"
            )
        stored = mapping_part(data.get("entries"), "entries", where, ENTRIES_SHAPE)
        entries = {nodeid: _entry(nodeid, entry, where) for nodeid, entry in stored.items()}
        blocks = sequence_part(
            data.get("ab_calibration"), "ab_calibration", where, "a list of calibration blocks"
        )
        calibrations = [
            _calibration(block, f"ab_calibration[{index}]", where)
            for index, block in enumerate(blocks)
        ]
        return cls(str(stored_profile), entries, calibrations=calibrations)


def _entry(nodeid: Any, entry: Any, where: str) -> BaselineEntry:
    if not isinstance(nodeid, str):
        keys = f"{ENTRIES_SHAPE} (keys such as 'tests/test_x.py::test_a')"
        raise malformed(where, "entries", keys, nodeid)
    place = f"entries[{nodeid!r}]"
    if not isinstance(entry, Mapping):
        raise malformed(where, place, ENTRY_SHAPE, entry)
    cid = entry.get("config_id")
    if isinstance(cid, bool) or not isinstance(cid, (str, int)):
        raise malformed(where, f"{place}.config_id", "the test's config id (12 hex digits)", cid)
    config = mapping_part(
        entry.get("config"), f"{place}.config", where, "a mapping of generation settings"
    )
    segments = []
    for index, segment in enumerate(
        sequence_part(
            entry.get("segments"),
            f"{place}.segments",
            where,
            f"a list of segments, each {SEGMENT_SHAPE}",
        )
    ):
        segments.append(_segment(segment, f"{place}.segments[{index}]", where))
    return BaselineEntry(nodeid, str(cid), dict(config), segments)


def _segment(segment: Any, place: str, where: str) -> Segment:
    if not isinstance(segment, Mapping):
        raise malformed(where, place, SEGMENT_SHAPE, segment)
    fingerprint = mapping_part(
        segment.get("fingerprint"), f"{place}.fingerprint", where, "a mapping of environment keys"
    )
    runs = sequence_part(segment.get("runs"), f"{place}.runs", where, "a list of runs")
    for index, run in enumerate(runs):
        mapping_part(run, f"{place}.runs[{index}]", where, "a mapping of a run's figures")
    signature, output = segment.get("signature"), segment.get("output")
    if signature is not None and not isinstance(signature, str):
        raise malformed(where, f"{place}.signature", "a work-signature digest", signature)
    if output is not None and not isinstance(output, str):
        raise malformed(where, f"{place}.output", "an output digest", output)
    runs_read = [dict(run or {}) for run in runs]
    return Segment(dict(fingerprint), runs_read, signature or None, output or None)


def _calibration(block: Any, place: str, where: str) -> Calibration:
    """An A/B calibration block, checked here so that a malformed one is named by its place."""
    fix = "delete the block and run python -m pytest_i2v ab --calibrate again"
    if not isinstance(block, Mapping):
        raise I2VUsageError(
            f"{where}: {place}: expected a mapping with fingerprint, date, rounds "
            f"and tests; got {describe_value(block)}; {fix}"
        )
    fingerprint, tests, rounds = block.get("fingerprint"), block.get("tests"), block.get("rounds")
    broken = [
        (key, expected)
        for key, ok, expected in (
            (
                "fingerprint",
                fingerprint is None or isinstance(fingerprint, Mapping),
                "a mapping of environment keys",
            ),
            ("date", block.get("date") is not None, "the calibration's date"),
            (
                "rounds",
                isinstance(rounds, int) and not isinstance(rounds, bool),
                "a whole number of rounds",
            ),
            (
                "tests",
                tests is None
                or (
                    isinstance(tests, Mapping)
                    and all(isinstance(v, Mapping) for v in tests.values())
                ),
                "a mapping of test node ids to their figures",
            ),
        )
        if not ok
    ]
    if broken:
        key, expected = broken[0]
        raise I2VUsageError(
            f"{where}: {place}.{key}: expected {expected}; "
            f"got {describe_value(block.get(key))}; {fix}"
        )
    return Calibration.from_dict(block, f"{where}: {place}")


def signature_dir(path: Path) -> Path:
    """Where a baseline file's work-signature tables live, one gzip-compressed JSON per digest
    (``baselines/cpu.yaml`` -> ``baselines/cpu.signatures/``): kept out of the YAML, which stays
    short enough to review; the runs name the digest."""
    return path.with_name(f"{path.stem}.signatures")


def output_dir(path: Path) -> Path:
    """Where a baseline file's stored outputs live, one gzip-compressed JSON per digest
    (``baselines/cpu.yaml`` -> ``baselines/cpu.outputs/``), as the work signatures' tables do."""
    return path.with_name(f"{path.stem}.outputs")


@dataclass(frozen=True)
class StoredFile:
    """A side file of the baseline, named by its digest: what the segment keeps of a run's output
    (``record.output`` makes and reads its bytes; the store only keeps them)."""

    digest: str
    data: bytes


def read_signature(path: Path, digest: str) -> WorkSignature | None:
    """The table of ``digest`` stored beside the baseline file ``path``; None when missing or
    unreadable."""
    table = signature_dir(path) / f"{digest}.json.gz"
    return from_bytes(table.read_bytes()) if table.is_file() else None
