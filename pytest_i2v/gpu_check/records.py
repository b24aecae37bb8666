"""The names gpu-check gives its tests, files and statuses, the shape of the results documents the
plan, the checks and the summary read (TypedDicts: the loaded JSON as it is), and small helpers
over their records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

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


# -- the results document's shape, as far as the checks and the summary read it -----------------
# (``GenerationRecord.to_dict()``; every key optional: a failed run writes fewer)
class PeakMemoryDoc(TypedDict, total=False):
    allocated_bytes: int | None
    reserved_bytes: int | None
    device_bytes: int | None  # NVML
    device_scope: str | None  # "process", "device" or why NVML was unavailable


class StagesDoc(TypedDict, total=False):
    step_s: float | None  # the median step
    step_samples_s: list[list[float]] | None  # per repeat, per step
    encode_samples_s: list[float | None] | None
    decode_samples_s: list[float | None] | None
    denoise_span_samples_s: list[float | None] | None  # the loop's own mark pair, per repeat


class FastDoc(TypedDict, total=False):
    measured_steps: int | None
    measured_time_samples_s: list[float] | None


class ConfigDoc(TypedDict, total=False):
    device: str | None
    width: int | None
    height: int | None
    frames: int | None
    steps: int | None


class OomDoc(TypedDict, total=False):
    step: int | None
    stage: str | None
    form: str
    before_bytes: int | None
    after_free_bytes: int | None


class MemoryStartDoc(TypedDict, total=False):
    allocated_bytes: int | None


class RooflineDoc(TypedDict, total=False):
    efficiency: float | None


class RepeatConditionsDoc(TypedDict, total=False):
    sm_clock_mhz: float | None


class ConditionsDoc(TypedDict, total=False):
    summary: str
    repeats: list[RepeatConditionsDoc] | None
    locked_sm_clock_mhz: float | None
    base_sm_clock_mhz: float | None


class SignatureDoc(TypedDict, total=False):
    """``WorkSignature.to_record()``: the digest in the open, the op table packed."""

    digest: str
    device_kind: str
    profiled_steps: int
    noise: list[str]
    rows: int
    packed: str


class ResultRecord(TypedDict, total=False):
    nodeid: str
    outcome: str
    mode: str  # "fast" or "full"
    time_s: float | None
    time_samples_s: list[float] | None
    config: ConfigDoc | None
    stages: StagesDoc | None
    peak_memory: PeakMemoryDoc | None
    fast: FastDoc | None
    oom: OomDoc | None
    memory_start: MemoryStartDoc | None
    roofline: RooflineDoc | None
    conditions: ConditionsDoc | None
    nvml_device: str | None
    signature: SignatureDoc | None  # WorkSignature.from_dict reads it


class EnvironmentDoc(TypedDict, total=False):
    gpu_name: str | None
    gpu_memory_gib: float | None
    driver: str | None
    cuda: str | None
    torch: str | None
    diffusers: str | None


class ResultsDocument(TypedDict, total=False):
    records: list[ResultRecord]
    environment: EnvironmentDoc


class SimulatedGpu(TypedDict):
    """One entry of PYTEST_I2V_SIMULATED_GPUS."""

    name: str
    total_bytes: int


# -- small helpers over records ------------------------------------------------------------------
def records_by_test(document: ResultsDocument | None) -> dict[str, ResultRecord]:
    """``test_sweep[512p]`` -> record (the node id without its file)."""
    if document is None:
        return {}
    return {str(r["nodeid"]).split("::")[-1]: r for r in document.get("records", [])}


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


def record_name(record: ResultRecord) -> str:
    return str(record.get("nodeid", "?")).split("::")[-1]


def ok_records(records: Sequence[ResultRecord]) -> list[ResultRecord]:
    return [r for r in records if r.get("outcome") == "ok"]


def device_total_bytes(document: ResultsDocument | None) -> int | None:
    """The GPU's memory as the results' environment gives it (GiB, rounded to 0.01)."""
    gib = (document or {}).get("environment", {}).get("gpu_memory_gib")
    return int(float(gib) * GiB) if gib else None
