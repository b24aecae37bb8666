"""Per-profile baselines: ``baselines/<profile>.yaml``, one entry per test, each a history of
accepted runs split into segments by environment fingerprint (a new driver starts a new segment,
so the gate never mixes drivers). The gate reads the newest segment of the measuring machine
(``fingerprint.MACHINE_KEYS``): runners of two kinds each keep their own history in one file.

Reviewed in pull requests, so: stable key order, rounded figures, one run per flow-style line.
Writes are atomic (temporary file + rename) and serialised by a lock file, and each write
re-reads the file under the lock and merges, so concurrent writers never lose an entry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import ConfigValue
from pytest_i2v.storage import (
    Scalar,
    read_yaml,
    validate_profile_name,
    write_bytes_atomic,
    write_text_atomic,
)
from pytest_i2v.verdict.ab_calibration import Calibration, merge
from pytest_i2v.verdict.baseline_records import (
    BaselineEntry,
    BaselineFile,
    Segment,
    StoredFile,
    config_id,
    output_dir,
    signature_dir,
)
from pytest_i2v.verdict.fingerprint import same_machine
from pytest_i2v.verdict.gate import MEMORY_METRICS, TIME_METRICS
from pytest_i2v.verdict.signature import WorkSignature, to_bytes
from pytest_i2v.verdict.yaml_shapes import dump_yaml

MAX_RUNS_PER_SEGMENT = 20  # older runs drop off: the bar follows slow drift, files stay short
PROBE_FIELDS = (
    "gemm_gflops",
    "copy_gbs",
    "tiny_ops_per_ms",
)  # measure.probe's figures, stored as probe_<figure>
RUN_FIELDS = (
    "date",
    "commit",
    "repeats",
    *TIME_METRICS,
    "encode_s",
    *MEMORY_METRICS,
    "device_scope",
    "sm_clock_mhz",
    "conditions",
    "work",
    *(f"probe_{name}" for name in PROBE_FIELDS),
)


def baseline_path(directory: Path, profile: str) -> Path:
    validate_profile_name(profile)
    path = (directory / f"{profile}.yaml").resolve()
    if path.parent != directory.resolve():
        raise I2VUsageError(f"baseline for profile {profile!r} would leave {directory}")
    return path


YAML_FIX = "fix the file (or restore it from version control), or delete it to re-record"


def read_baseline(path: Path, profile: str | None = None) -> BaselineFile:
    """The stored file, or an empty one when there is none yet. A bad one is one usage error that
    names its place: ``path:line:column`` for YAML, ``path: entries['t::a'].segments[0]`` for a
    malformed part."""
    if not path.exists():
        return BaselineFile(profile or path.stem, path=path)
    data = read_yaml(path, "baseline file", YAML_FIX)
    baseline = BaselineFile.from_dict(data, str(path), profile)
    baseline.path = path
    return baseline


@dataclass(frozen=True)
class AcceptedRun:
    nodeid: str
    config: Mapping[str, ConfigValue]
    fingerprint: dict[str, Scalar]
    run: dict[str, Scalar]
    signature: WorkSignature | None = (
        None  # the run's work signature (its table goes to a side file)
    )
    output: StoredFile | None = None  # the run's output, reduced (a side file too)


@dataclass(frozen=True)
class UpdateSummary:
    path: Path
    appended: tuple[str, ...] = ()
    created: tuple[str, ...] = ()
    new_segments: tuple[str, ...] = ()
    reset: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"{len(self.appended) + len(self.created)} run(s) recorded"]
        for label, items in (
            ("new entries", self.created),
            ("new fingerprint segments", self.new_segments),
            ("history reset", self.reset),
        ):
            if items:
                parts.append(f"{label}: {len(items)}")
        return f"{self.path}: " + ", ".join(parts)


def update_baseline(
    path: Path, profile: str, accepted: Iterable[AcceptedRun], mode: str = "append"
) -> UpdateSummary:
    """Merge accepted runs into the file under its lock (read, merge, atomic write)."""
    accepted = list(accepted)
    appended, created, segmented, reset = [], [], [], []
    tables: dict[str, WorkSignature] = {}
    outputs: dict[str, StoredFile] = {}
    with FileLock(str(path) + ".lock", timeout=120):
        # Under the lock no other writer is running: temporary files here are from killed writers.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        baseline = read_baseline(path, profile)
        # Reset once per test and call: its later runs append to the new history.
        reset_here: set[str] = set()
        for item in accepted:
            cid = config_id(item.config)
            entry = baseline.entries.get(item.nodeid)
            resetting = mode == "reset" and item.nodeid not in reset_here
            if entry is not None and entry.config_id == cid and resetting:
                # Only this machine's history: other machines' segments in the same profile file
                # stay.
                reset_here.add(item.nodeid)
                reset.append(item.nodeid)
                entry.segments = [
                    s for s in entry.segments if not same_machine(s.fingerprint, item.fingerprint)
                ]
            fresh = entry is None or entry.config_id != cid
            if entry is None or fresh:
                if entry is not None:
                    reset.append(item.nodeid)
                reset_here.add(item.nodeid)
                entry = BaselineEntry(item.nodeid, cid, dict(item.config))
                baseline.entries[item.nodeid] = entry
                created.append(item.nodeid)
            else:
                appended.append(item.nodeid)
            target = entry.segment_to_extend(item.fingerprint)
            if target is None:  # a new machine, or new software on this one
                if not fresh:
                    segmented.append(item.nodeid)
                target = Segment(dict(item.fingerprint))
                entry.segments.append(target)
            else:
                _pin_to_machine(target, item.fingerprint)
            target.runs.append(item.run)
            del target.runs[:-MAX_RUNS_PER_SEGMENT]
            if item.signature is not None:
                target.signature = item.signature.digest
                tables[item.signature.digest] = item.signature
            if item.output is not None:
                target.output = item.output.digest
                outputs[item.output.digest] = item.output
        write_text_atomic(path, dump_yaml(baseline.to_dict()))
        _sweep_tables(path, baseline, tables)
        _sweep_outputs(path, baseline, outputs)
    return UpdateSummary(path, tuple(appended), tuple(created), tuple(segmented), tuple(reset))


def _sweep_outputs(path: Path, baseline: BaselineFile, outputs: Mapping[str, StoredFile]) -> None:
    """Write the new outputs beside the file and drop the ones no segment names any more. Called
    under the lock."""
    store = output_dir(path)
    for digest, stored in outputs.items():
        if not (store / f"{digest}.json.gz").exists():
            write_bytes_atomic(store / f"{digest}.json.gz", stored.data)
    referenced = {s.output for e in baseline.entries.values() for s in e.segments if s.output}
    for kept in store.glob("*.json.gz") if store.is_dir() else ():
        if kept.name.removesuffix(".json.gz") not in referenced:
            kept.unlink(missing_ok=True)


def _pin_to_machine(segment: Segment, fingerprint: Mapping[str, Scalar]) -> None:
    """Machine keys the segment lacked (an older baseline) are now known: pin it to this machine."""
    segment.fingerprint.update(
        {
            key: value
            for key, value in fingerprint.items()
            if value is not None and segment.fingerprint.get(key) is None
        }
    )


def store_calibration(path: Path, profile: str, calibration: Calibration) -> None:
    """Put an A/B calibration into the baseline file under its lock, in place of this machine's
    block of the same software (``ab_calibration.merge``); the entries are left as they are."""
    with FileLock(str(path) + ".lock", timeout=120):
        baseline = read_baseline(path, profile)
        baseline.calibrations = merge(baseline.calibrations, calibration)
        write_text_atomic(path, dump_yaml(baseline.to_dict()))


def _sweep_tables(path: Path, baseline: BaselineFile, tables: Mapping[str, WorkSignature]) -> None:
    """Write the new work-signature tables beside the file and drop the ones no segment names any
    more (work that changed since: the history keeps only their digests). Called under the lock."""
    store = signature_dir(path)
    for digest, signature in tables.items():
        if not (store / f"{digest}.json.gz").exists():
            write_bytes_atomic(store / f"{digest}.json.gz", to_bytes(signature))
    referenced = {s.signature for e in baseline.entries.values() for s in e.segments if s.signature}
    for table in store.glob("*.json.gz") if store.is_dir() else ():
        if table.name.removesuffix(".json.gz") not in referenced:
            table.unlink(missing_ok=True)
