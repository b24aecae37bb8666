"""The names gpu-check gives its tests, files and statuses, what one of its pytest runs left
(``RunResult``: its results document and the typed records in it) and small helpers over those
records. The runs are children of this revision, so their documents are the current schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TypedDict

from pytest_i2v.record.document import read_records
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.storage import Environment, JsonValue

MiB = 2**20


GiB = 2**30
PASS, FAIL, NOT_APPLICABLE = "PASS", "FAIL", "N/A"
USAGE_ERROR = 4  # pytest's exit code for usage errors (a child's bad --i2v-* value is ours too)

# The temporary test module and its tests; the runs select them by node id, in the order given.
SUITE_FILE = "test_gpu_check_suite.py"
SWEEP = "test_sweep"
FULL = "test_full_smallest"  # (f): the smallest size measured in full, next to its fast twin
AFTER_LARGEST = "test_after_largest"  # (d): the middle size right after the largest
OFFLOAD = "test_offload"  # (g)
OOM = "test_oom_largest"  # (e): the largest size under a memory fraction
AFTER_OOM = "test_after_oom"  # (e): the smallest size with the fraction lifted

# Output files, all in --out (at most 8; everything else stays in a temporary directory).
RESULTS_FILE, REPORT_FILE, SUMMARY_FILE, LOG_FILE = (
    "results.json",
    "report.html",
    "gpu-check.md",
    "gpu-check.log",
)
EXTRA_RESULTS = {
    "fresh": "results-fresh.json",
    "oom": "results-oom.json",
    "second": "results-second-gpu.json",
}

SIMULATED_H200: SimulatedGpu = {"name": "NVIDIA H200", "total_bytes": 141_000_000_000}

# The GPU sizes of a pipeline other than I2VGen-XL: these fractions of its native width and height,
# smallest first (the study's presets are I2VGen-XL's own: 1/2 to 2x its native 512p).
LADDER_FRACTIONS = ((1, 2), (2, 3), (5, 6), (1, 1))
# The dry run's sizes (the cpu profile's /8 scaling of the presets), where the tiny models are fast.
DRY_RUN_PIXELS = (32, 64, 96, 128)
DRY_RUN_MIN_FRAMES = 3  # enough frames for the temporal layers to do something
# A fixed-size pipeline's dry run: its marks name the fixed size (the collection-time rule) and a
# profile written for the run scales them by the cpu profile's size divisor (720x480 -> 80x48),
# steps unscaled.
DRY_RUN_SIZE_DIVISOR = 8
DRY_RUN_PROFILE = (
    "gpu-check-dry-run"  # the profile's name and file stem, in the run's temporary directory
)
PROFILE_DIR = "profiles"
# The published checkpoints' dtypes: the UNets ship fp16; the video transformers bf16 (fp16
# overflows in them).
GPU_DTYPES = {"i2vgen-xl": "fp16", "svd": "fp16"}
OFFLOAD_OPTION = "model_cpu_offload"  # what check (g) measures


class SimulatedGpu(TypedDict):
    """One entry of PYTEST_I2V_SIMULATED_GPUS."""

    name: str
    total_bytes: int


@dataclass(frozen=True)
class RunResult:
    """One pytest subprocess: its command, how it ended and the results document it wrote."""

    name: str  # "main", "fresh", "oom", "second"
    command: tuple[str, ...]
    returncode: int | None  # None: killed at the timeout
    seconds: float
    document: Mapping[str, JsonValue] | None  # as the run wrote it (copied to --out)
    log: str = ""

    @property
    def problem(self) -> str | None:
        """Why this run has no results to check, or None."""
        if self.document is not None:
            return None
        if self.returncode is None:
            return f"the {self.name} run timed out after {self.seconds:.0f} s (see {LOG_FILE})"
        return (
            f"the {self.name} run exited {self.returncode} without a results file "
            f"(see {LOG_FILE}): {last_error(self.log)}"
        )

    @cached_property
    def records(self) -> list[GenerationRecord]:
        """The typed records of its document, read once (every check reads them); none without."""
        if not self.document:
            return []
        return read_records({"records": [], **self.document}, f"the {self.name} run's results")

    @property
    def environment(self) -> Environment:
        """Its results' environment: the machine and library facts, each a JSON scalar."""
        found = (self.document or {}).get("environment")
        if not isinstance(found, Mapping):
            return {}
        return {k: v for k, v in found.items() if v is None or isinstance(v, (str, int, float))}

    def record(self, test: str) -> GenerationRecord | None:
        return records_by_test(self.records).get(test)


# -- small helpers over records ------------------------------------------------------------------
def records_by_test(records: Sequence[GenerationRecord]) -> dict[str, GenerationRecord]:
    """``test_sweep[512p]`` -> record (the node id without its file)."""
    return {record_name(r): r for r in records}


def sweep_id(label: str) -> str:
    return f"{SWEEP}[{label}]"


def last_error(log: str) -> str:
    """The line of a pytest log that says most about why it stopped."""
    lines = [line.rstrip() for line in log.splitlines() if line.strip()]
    for prefix in ("ERROR:", "E   ", "error:"):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return " ".join(found[-1].split())[:300]
    return lines[-1].strip()[:300] if lines else "no output"


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / GiB:.2f} GiB" if abs(value) >= GiB else f"{value / MiB:.1f} MiB"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.1f} ms"


def pct(a: float, b: float) -> float:
    """How far ``a`` is from ``b``, in % of ``b``."""
    return (a / b - 1.0) * 100.0


def record_name(record: GenerationRecord) -> str:
    return record.nodeid.split("::")[-1]


def ok_records(records: Sequence[GenerationRecord]) -> list[GenerationRecord]:
    return [r for r in records if r.outcome == "ok"]


def device_total_bytes(environment: Environment) -> int | None:
    """The GPU's memory as the results' environment gives it (GiB, rounded to 0.01)."""
    gib = environment.get("gpu_memory_gib")
    return int(float(gib) * GiB) if gib else None
