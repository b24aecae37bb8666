"""``python -m pytest_i2v gpu-check``: one command that runs the study through the real plugin on a
GPU and cross-checks what the plugin measured (about 8 minutes on an RTX 4090 or an H200).

    python -m pytest_i2v gpu-check [--out DIR] [--device cuda:N] [--dry-run] [--model random|tiny|DIR]
                                   [--pipeline NAME]

It writes a temporary test module, runs pytest on it in subprocesses (a fresh process is part of
check (d), and an induced OOM must not take the checking process down), reads the results JSONs
and judges them with the pure functions below (no pytest or torch import at module level):

    (a) allocator peak <= NVML peak <= device total     (e) an induced OOM is recorded, the next test passes
    (b) CUDA-event stage total vs synchronised total    (f) fast mode predicts a full run
    (c) per-step times sum to the loop's own timing         (g) model_cpu_offload lowers the allocated peak
    (d) 512p after 1024p == 512p in a fresh process     (h) (a)-(c) on a second GPU
                                                        (i) NVML read the clocks under every repeat
    (j) the work signature is the same in a fresh process, and its timed rows account for the step

``--dry-run`` runs the same code on the CPU: the tiny model on simulated GPUs
(``pytest_i2v.simulated_plugin``), at the cpu profile's sizes. Its memory checks are judged as on a
GPU; its stage-sum checks are judged (exact per repeat), the fast-mode check is shown, not judged (CPU noise).

``--pipeline NAME`` (default i2vgen-xl) checks another adapter: four sizes from about half to all of
its native width and height (each valid for the pipeline), its native frames, steps and guidance;
on the dry run the same 32-128 pixel sizes, rounded to its size multiple. I2VGen-XL keeps the
study's 256p..1024p presets. Check (g) is not applicable to a pipeline without model_cpu_offload.

A pipeline whose model accepts one size only (``Constraints.fixed_size``: cogvideox-i2v, 720x480) is
checked at that size alone, on a GPU and on the dry run: check (d), which needs a smaller size after
the largest, is not applicable (and its fresh-process run is not made). Its dry-run marks name the
fixed size too (a mark at another size is refused at collection); a profile written for the dry run
(the simulated GPU's, with the cpu profile's size scaling) runs the tiny model at 1/8 of it.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.marks import RESOLUTION_PRESETS
from pytest_i2v.pipelines import DEFAULT_PIPELINE, PIPELINES, PipelineInfo, pipeline_of_directory
from pytest_i2v.report.markdown import markdown_table
from pytest_i2v.storage import write_text_atomic

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
RESULTS_FILE, REPORT_FILE, SUMMARY_FILE, LOG_FILE = "results.json", "report.html", "gpu-check.md", "gpu-check.log"
EXTRA_RESULTS = {"fresh": "results-fresh.json", "oom": "results-oom.json", "second": "results-second-gpu.json"}

SIMULATED_H200 = {"name": "NVIDIA H200", "total_bytes": 141_000_000_000}

# The GPU sizes of a pipeline other than I2VGen-XL: these fractions of its native width and height,
# smallest first (the study's presets are I2VGen-XL's own: 1/2 to 2x its native 512p).
LADDER_FRACTIONS = ((1, 2), (2, 3), (5, 6), (1, 1))
# The dry run's sizes (the cpu profile's /8 scaling of the presets): the tiny models stay fast at these.
DRY_RUN_PIXELS = (32, 64, 96, 128)
DRY_RUN_MIN_FRAMES = 3  # enough frames for the temporal layers to do something
# A fixed-size pipeline's dry run: its marks name the fixed size (the collection-time rule) and a profile
# written for the run scales them by the cpu profile's size divisor (720x480 -> 80x48), steps unscaled.
DRY_RUN_SIZE_DIVISOR = 8
DRY_RUN_PROFILE = "gpu-check-dry-run"  # the profile's name and file stem, in the run's temporary directory
PROFILE_DIR = "profiles"
# The published checkpoints' dtypes: the UNets ship fp16; the video transformers bf16 (fp16 overflows in them).
GPU_DTYPES = {"i2vgen-xl": "fp16", "svd": "fp16"}
OFFLOAD_OPTION = "model_cpu_offload"  # what check (g) measures


@dataclass(frozen=True)
class Tolerances:
    timing_pct: float | None = 2.0  # stage sums (b, c): exact per repeat, so judged on the CPU too
    fast_pct: float | None = 2.0  # (f) None: shown, not judged (two runs on a shared CPU differ by more)
    # (j) the step's kernels (on a GPU) against its span; None: shown, not judged (the dry run's tiny model
    # spends most of a step in Python between short ops)
    attribution_pct: float | None = 5.0
    memory_pct: float = 1.0


@dataclass(frozen=True)
class CheckPlan:
    """What one gpu-check runs: the study's sizes on a GPU, the cpu profile's on the dry run (for
    another pipeline: a ladder up to its native size, and the dry run's sizes rounded to its multiple)."""

    dry_run: bool
    device: str  # "cuda:N"
    other_device: str | None  # (h): a second GPU, when the machine has one
    model: str
    dtype: str
    # (label, pixels) for a square size, (label, width, height) otherwise: the four sizes, smallest first
    sizes: tuple[tuple[str, int] | tuple[str, int, int], ...]
    frames: int
    steps: int
    guidance: float
    fast_steps: int
    repeats: int
    warmup: int
    offload_steps: int  # the peak does not depend on the step count; fewer steps keep the budget
    oom_headroom_bytes: int  # (e): the memory limit is the loaded weights plus this
    timeout_s: float  # per pytest subprocess
    tolerances: Tolerances = field(default_factory=Tolerances)
    simulated_gpus: tuple[Mapping[str, Any], ...] = ()  # dry run: PYTEST_I2V_SIMULATED_GPUS
    pipeline: str = DEFAULT_PIPELINE
    offload_supported: bool = True  # the pipeline supports model_cpu_offload; else (g) is not applicable
    fixed_size: bool = False  # the model accepts one size only: one rung, and (d) is not applicable
    # > 1: the marks' sizes are scaled by a profile written for the run (a fixed-size pipeline's dry run)
    size_divisor: int = 1

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(size[0] for size in self.sizes)

    @property
    def dimensions(self) -> tuple[tuple[str, int, int], ...]:
        """(label, width, height) of every size, smallest first."""
        return tuple((size[0], size[1], size[-1]) for size in self.sizes)

    @property
    def uses_presets(self) -> bool:
        """The marks name the study's presets (I2VGen-XL on a GPU) rather than width and height."""
        return not self.dry_run and all(RESOLUTION_PRESETS.get(label) == width == height
                                        for label, width, height in self.dimensions)

    @property
    def smallest(self) -> str:
        return self.sizes[0][0]

    @property
    def middle(self) -> str:
        return "512p" if "512p" in self.labels else self.sizes[len(self.sizes) // 2][0]

    @property
    def largest(self) -> str:
        return self.sizes[-1][0]

    @property
    def device_index(self) -> int:
        return int(self.device.split(":")[1])

    @property
    def one_size_reason(self) -> str | None:
        """Why checks that compare sizes are not applicable (the pipeline generates at one size), or None."""
        if not self.fixed_size:
            return None
        return f"{self.pipeline} generates at one size only ({self.largest})"

    def run_size(self, width: int, height: int) -> tuple[int, int]:
        """The size a mark of ``width x height`` runs at: scaled by the run's profile as the plugin scales it."""
        if self.size_divisor == 1:
            return width, height
        from pytest_i2v.marks import Scaling

        scaling, multiple = Scaling(size_divisor=self.size_divisor), PIPELINES[self.pipeline].constraints.size_multiple
        return scaling.size(width, multiple), scaling.size(height, multiple)

    def describe_mode(self) -> str:
        mode = (f"fast mode: {self.fast_steps} of {self.steps} denoising steps measured per repeat, the totals "
                f"predicted (the full run of check (f) excepted); {self.repeats} repeats after {self.warmup} warm-up")
        if self.dry_run:
            sizes = "the cpu profile's sizes" if self.pipeline == DEFAULT_PIPELINE else f"sizes {', '.join(self.labels)}"
            if self.size_divisor > 1:
                shown = ", ".join("{}x{}".format(*self.run_size(width, height)) for _, width, height in self.dimensions)
                sizes = (f"size{'s' if len(self.sizes) > 1 else ''} {', '.join(self.labels)} on the marks, run at "
                         f"{shown} (the profile scales sizes /{self.size_divisor})")
            mode = (f"DRY RUN on the CPU: model {self.model}, simulated GPUs, {sizes}; the fast-mode "
                    f"check (f) shown, not judged (CPU noise); " + mode)
        return mode


@dataclass(frozen=True)
class CheckResult:
    key: str  # "a".."h"
    title: str
    status: str  # PASS, FAIL or N/A
    detail: str

    @property
    def line(self) -> str:
        return f"{self.status} ({self.key}) {self.title}: {self.detail}"


@dataclass(frozen=True)
class RunResult:
    """One pytest subprocess: its command, how it ended and the results document it wrote."""

    name: str  # "main", "fresh", "oom", "second"
    command: tuple[str, ...]
    returncode: int | None  # None: killed at the timeout
    seconds: float
    document: Mapping[str, Any] | None
    log: str = ""

    @property
    def problem(self) -> str | None:
        """Why this run has no results to check, or None."""
        if self.document is not None:
            return None
        if self.returncode is None:
            return f"the {self.name} run timed out after {self.seconds:.0f} s (see {LOG_FILE})"
        return f"the {self.name} run exited {self.returncode} without a results file (see {LOG_FILE}): {last_error(self.log)}"

    def record(self, test: str) -> Mapping[str, Any] | None:
        return records_by_test(self.document).get(test) if self.document is not None else None


# -- small helpers over records ------------------------------------------------------------------
def records_by_test(document: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
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


def _name(record: Mapping[str, Any]) -> str:
    return str(record.get("nodeid", "?")).split("::")[-1]


def _ok(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("outcome") == "ok"]


def device_total_bytes(document: Mapping[str, Any] | None) -> int | None:
    """The GPU's memory as the results' environment gives it (GiB, rounded to 0.01)."""
    gib = (document or {}).get("environment", {}).get("gpu_memory_gib")
    return int(float(gib) * GiB) if gib else None


# -- the checks: pure functions over result records ----------------------------------------------
def check_memory_order(records: Sequence[Mapping[str, Any]], total_bytes: int | None, key: str = "a") -> CheckResult:
    """(a) allocated <= reserved <= NVML peak <= device total, per record. A process-scope NVML
    figure is this process (allocator cache + CUDA context); a device-scope one is the whole card."""
    title = "allocator peak <= NVML peak <= device total"
    ok = _ok(records)
    if not ok:
        return CheckResult(key, title, FAIL, "no successful generation to check")
    slack = GiB // 100  # the environment rounds the total to 0.01 GiB: allow that much
    failures: list[str] = []
    judged: list[str] = []
    scopes: set[str] = set()
    unavailable = ""
    for record in ok:
        peak = record.get("peak_memory") or {}
        allocated, reserved, nvml = peak.get("allocated_bytes"), peak.get("reserved_bytes"), peak.get("device_bytes")
        scope = peak.get("device_scope")
        if allocated is None:
            unavailable = f"{_name(record)} has no allocator peak (not a CUDA run?)"
            continue
        if scope not in ("process", "device") or nvml is None:
            unavailable = f"NVML peak unavailable (scope {scope})"
            continue
        scopes.add(str(scope))
        chain = [("allocated", allocated)] + ([("reserved", reserved)] if reserved is not None else [])
        chain += [(f"NVML ({scope})", nvml)] + ([("total", total_bytes)] if total_bytes else [])
        text = " <= ".join(f"{name} {fmt_bytes(value)}" for name, value in chain)
        broken = [f"{a[0]} > {b[0]}" for a, b in itertools.pairwise(chain)
                  if a[1] > b[1] + (slack if b[0] == "total" else 0)]
        if broken:
            failures.append(f"{_name(record)}: {text} broken ({', '.join(broken)})")
        judged.append(f"{_name(record)}: {text}")
    if failures:
        return CheckResult(key, title, FAIL, "; ".join(failures))
    if not judged:
        return CheckResult(key, title, NOT_APPLICABLE, unavailable or "no NVML figures")
    where = ("device-wide NVML (other processes on the card count too)" if scopes == {"device"}
             else "NVML per process" if scopes == {"process"} else "NVML scopes " + "/".join(sorted(scopes)))
    total = "" if total_bytes else "; device total unknown, not compared"
    largest = max(ok, key=lambda r: (r.get("peak_memory") or {}).get("allocated_bytes") or 0)
    shown = next((j for j in judged if j.startswith(_name(largest) + ":")), judged[-1])
    count = f"{len(judged)} record{'s' if len(judged) != 1 else ''}"
    return CheckResult(key, title, PASS, f"{count}, {where}{total}; largest {shown}")


def _timing_samples(record: Mapping[str, Any]) -> tuple[list[float], list[list[float]], list[float], list[float]] | None:
    """(synchronised totals, per-repeat step times, per-repeat encode, per-repeat decode) of one
    record, or None. In fast mode the synchronised totals are the measured (shortened) runs."""
    stages = record.get("stages") or {}
    fast = record.get("fast") or {}
    totals = fast.get("measured_time_samples_s") if record.get("mode") == "fast" else record.get("time_samples_s")
    steps = stages.get("step_samples_s")
    encode, decode = stages.get("encode_samples_s"), stages.get("decode_samples_s")
    if not totals or not steps or not encode or not decode or not len(totals) == len(steps) == len(encode) == len(decode):
        return None
    if any(e is None for e in encode) or any(d is None for d in decode):
        return None
    return ([float(t) for t in totals], [[float(s) for s in repeat] for repeat in steps],
            [float(e) for e in encode], [float(d) for d in decode])


def _judge_worst(key: str, title: str, deviations: list[tuple[float, str]], tolerance_pct: float | None,
                 what: str, missing: list[str]) -> CheckResult:
    if not deviations:
        return CheckResult(key, title, FAIL, "no per-repeat timings to compare" + (f" ({'; '.join(missing)})" if missing else ""))
    worst, where = max(deviations, key=lambda d: abs(d[0]))
    figures = f"worst {worst:+.2f} % ({where}) over {len(deviations)} repeats"
    if missing:
        figures += f"; not compared: {'; '.join(missing)}"
    if tolerance_pct is None:
        return CheckResult(key, title, NOT_APPLICABLE, f"dry run, CPU timings are not judged ({figures})")
    if abs(worst) > tolerance_pct:
        over = sum(1 for d, _ in deviations if abs(d) > tolerance_pct)
        return CheckResult(key, title, FAIL, f"{over} of {len(deviations)} repeats off by more than "
                                             f"{tolerance_pct:g} % {what}: {figures}")
    return CheckResult(key, title, PASS, figures)


def _repeats(records: Sequence[Mapping[str, Any]], missing: list[str]
             ) -> Iterator[tuple[str, int, float, list[float], float, float]]:
    """(test, repeat number, synchronised total, step times, encode, decode) of every repeat; a record
    without per-repeat stage timings is listed in ``missing``."""
    for record in _ok(records):
        samples = _timing_samples(record)
        if samples is None:
            missing.append(f"{_name(record)} lacks stage timings")
            continue
        totals, steps, encodes, decodes = samples
        for index, (total, repeat, encode, decode) in enumerate(zip(totals, steps, encodes, decodes, strict=True)):
            yield _name(record), index + 1, total, repeat, encode, decode


def check_event_total(records: Sequence[Mapping[str, Any]], tolerance_pct: float | None, key: str = "b") -> CheckResult:
    """(b) encode + sum(steps) + decode (device-clock marks) against the repeat's total measured
    with perf_counter around a synchronise, repeat by repeat."""
    bar = f"{tolerance_pct:g} %" if tolerance_pct is not None else "2 %"
    title = f"CUDA-event stage total within {bar} of the synchronised wall clock, per repeat"
    deviations: list[tuple[float, str]] = []
    missing: list[str] = []
    for name, index, total, repeat, encode, decode in _repeats(records, missing):
        events = encode + sum(repeat) + decode
        deviations.append((pct(events, total), f"{name} repeat {index}: events "
                                               f"{fmt_seconds(events)} vs wall {fmt_seconds(total)}"))
    return _judge_worst(key, title, deviations, tolerance_pct, "from the wall clock", missing)


def check_step_sum(records: Sequence[Mapping[str, Any]], tolerance_pct: float | None, key: str = "c") -> CheckResult:
    """(c) the per-step times sum to the denoising loop as its own mark pair times it (first denoiser
    call to decode start: events no step shares), per repeat. Not total - encode - decode: that holds
    whenever (b) does, so it could not fail on its own."""
    bar = f"{tolerance_pct:g} %" if tolerance_pct is not None else "2 %"
    title = f"per-step times sum to the denoising loop's own timing within {bar}, per repeat"
    deviations: list[tuple[float, str]] = []
    missing: list[str] = []
    for record in _ok(records):
        stages = record.get("stages") or {}
        steps, spans = stages.get("step_samples_s") or [], stages.get("denoise_span_samples_s") or []
        if not steps or len(steps) != len(spans) or any(not span for span in spans):
            missing.append(f"{_name(record)} lacks the loop's own timing")
            continue
        for index, (repeat, span) in enumerate(zip(steps, spans, strict=True)):
            deviations.append((pct(sum(repeat), span), f"{_name(record)} repeat {index + 1}: {len(repeat)} steps "
                                                       f"{fmt_seconds(sum(repeat))} vs loop {fmt_seconds(span)}"))
    return _judge_worst(key, title, deviations, tolerance_pct, "from the loop's own timing", missing)


def check_same_peak(after: Mapping[str, Any] | None, fresh: Mapping[str, Any] | None, tolerance_pct: float,
                    middle: str = "512p", largest: str = "1024p", key: str = "d") -> CheckResult:
    """(d) the middle size measured right after the largest reports the peaks of a fresh process:
    nothing the larger test cached or left allocated leaks into the next test's figures."""
    title = f"{middle} after {largest} reports the fresh-process peak within {tolerance_pct:g} %"
    for record, what in ((after, f"the {middle} run after {largest}"), (fresh, f"the fresh-process {middle} run")):
        if record is None:
            return CheckResult(key, title, FAIL, f"no record of {what}")
        if record.get("outcome") != "ok":
            return CheckResult(key, title, FAIL, f"{what} ended {record.get('outcome')}")
    assert after is not None and fresh is not None
    parts: list[str] = []
    failed = False
    for name in ("allocated_bytes", "reserved_bytes"):
        a, f = (after.get("peak_memory") or {}).get(name), (fresh.get("peak_memory") or {}).get(name)
        label = name.removesuffix("_bytes")
        if a is None or f is None:
            return CheckResult(key, title, NOT_APPLICABLE, f"no {label} peak recorded (not a CUDA run?)")
        delta = pct(a, f)
        failed |= abs(delta) > tolerance_pct
        parts.append(f"{label} {fmt_bytes(a)} vs fresh {fmt_bytes(f)} ({delta:+.2f} %)")
    return CheckResult(key, title, FAIL if failed else PASS, "; ".join(parts))


SIGNATURE_TITLE = "the work signature agrees in a fresh process and accounts for the step"


def check_signature(main: Mapping[str, Any] | None, fresh: Mapping[str, Any] | None, attribution_pct: float | None,
                    key: str = "j") -> CheckResult:
    """(j) the same test's work signature in this process and in a fresh one: one digest (the gate's
    work verdict rests on it), and the step's timed rows (kernels on a GPU) add up to the step's span
    within ``attribution_pct`` (None: shown, not judged)."""
    from pytest_i2v.signature import WorkSignature

    for record, what in ((main, "the main run"), (fresh, "the fresh-process run")):
        if record is None or record.get("outcome") != "ok":
            return CheckResult(key, SIGNATURE_TITLE, FAIL, f"no measured record in {what}")
        if not record.get("signature"):
            return CheckResult(key, SIGNATURE_TITLE, NOT_APPLICABLE, "no work signature (--i2v-signature off)")
    assert main is not None and fresh is not None
    a, b = WorkSignature.from_dict(main["signature"]), WorkSignature.from_dict(fresh["signature"])
    same = a.digest == b.digest
    step = a.stages.get("step")
    share = step.timed(a.device_kind) / step.span_s if step is not None and step.span_s > 0 else None
    parts = [f"digest {a.digest} vs fresh {b.digest} ({'equal' if same else 'DIFFERENT'})"]
    if a.noise:
        parts.append("noise named: " + "; ".join(a.noise))
    attributed_ok = True
    if share is not None:
        judged = attribution_pct is not None
        attributed_ok = not judged or abs(share - 1.0) * 100.0 <= (attribution_pct or 0.0)
        parts.append(f"the step's timed rows are {share:.1%} of its span" + ("" if judged else " (shown, not judged)"))
    return CheckResult(key, SIGNATURE_TITLE, PASS if same and attributed_ok else FAIL, "; ".join(parts))


def check_oom_recovery(oom: Mapping[str, Any] | None, following: Mapping[str, Any] | None,
                       largest: str = "1024p", smallest: str = "256p", key: str = "e") -> CheckResult:
    """(e) a generation that cannot fit (memory fraction) is recorded as an OOM, and the next test passes."""
    title = "an induced OOM is recorded as OOM and the next test passes"
    if oom is None:
        return CheckResult(key, title, FAIL, f"no record of the {largest} run under the memory fraction")
    if oom.get("outcome") != "oom":
        return CheckResult(key, title, FAIL, f"the {largest} run under the memory fraction ended {oom.get('outcome')!r}, "
                                             f"not 'oom' (peak allocated {fmt_bytes((oom.get('peak_memory') or {}).get('allocated_bytes'))})")
    info = oom.get("oom") or {}
    where = f"step {info.get('step')}" if info.get("step") else str(info.get("stage"))
    detail = f"{largest} OOM during {where} ({info.get('form', 'allocator')} form)"
    if info.get("before_bytes") is not None and info.get("after_free_bytes") is not None:
        detail += f", allocated {fmt_bytes(info['before_bytes'])} before, {fmt_bytes(info['after_free_bytes'])} after freeing"
    if following is None:
        return CheckResult(key, title, FAIL, f"{detail}; no record of the {smallest} test after it")
    if following.get("outcome") != "ok":
        return CheckResult(key, title, FAIL, f"{detail}; the {smallest} test after it ended {following.get('outcome')!r}")
    start = following.get("memory_start") or {}
    if start.get("allocated_bytes") is not None:
        detail += f"; the {smallest} test after it started at {fmt_bytes(start['allocated_bytes'])} allocated"
    return CheckResult(key, title, PASS, f"{detail}; the {smallest} test after it passed")


def check_fast_prediction(fast: Mapping[str, Any] | None, full: Mapping[str, Any] | None, tolerance_pct: float | None,
                          label: str = "256p", key: str = "f") -> CheckResult:
    """(f) fast mode's predicted total against a full run of the same generation."""
    bar = f"{tolerance_pct:g} %" if tolerance_pct is not None else "2 %"
    title = f"fast mode predicts the full {label} run within {bar}"
    for record, what in ((fast, "fast"), (full, "full")):
        if record is None:
            return CheckResult(key, title, FAIL, f"no {what} {label} record")
        if record.get("outcome") != "ok" or not record.get("time_s"):
            return CheckResult(key, title, FAIL, f"the {what} {label} run ended {record.get('outcome')!r}")
    assert fast is not None and full is not None
    if fast.get("mode") != "fast" or full.get("mode") != "full":
        return CheckResult(key, title, FAIL, f"expected a fast and a full record, got {fast.get('mode')} and {full.get('mode')}")
    measured = (fast.get("fast") or {}).get("measured_steps")
    delta = pct(float(fast["time_s"]), float(full["time_s"]))
    figures = (f"predicted {fmt_seconds(fast['time_s'])} from {measured} of {(fast.get('config') or {}).get('steps')} steps "
               f"vs full {fmt_seconds(full['time_s'])} ({delta:+.2f} %)")
    if tolerance_pct is None:
        return CheckResult(key, title, NOT_APPLICABLE, f"dry run, CPU timings are not judged ({figures})")
    return CheckResult(key, title, FAIL if abs(delta) > tolerance_pct else PASS, figures)


def check_offload_peak(offload: Mapping[str, Any] | None, plain: Mapping[str, Any] | None,
                       label: str = "512p", key: str = "g") -> CheckResult:
    """(g) model_cpu_offload keeps the idle components on the host: a lower allocated peak."""
    title = f"model_cpu_offload lowers the {label} allocated peak"
    for record, what in ((offload, "model_cpu_offload"), (plain, "plain")):
        if record is None:
            return CheckResult(key, title, FAIL, f"no {what} {label} record")
        if record.get("outcome") != "ok":
            return CheckResult(key, title, FAIL, f"the {what} {label} run ended {record.get('outcome')!r}")
    assert offload is not None and plain is not None
    a = (offload.get("peak_memory") or {}).get("allocated_bytes")
    b = (plain.get("peak_memory") or {}).get("allocated_bytes")
    if a is None or b is None:
        return CheckResult(key, title, NOT_APPLICABLE, "no allocated peak recorded (not a CUDA run?)")
    figures = f"offload {fmt_bytes(a)} vs plain {fmt_bytes(b)} ({pct(a, b):+.1f} %)"
    return CheckResult(key, title, PASS if a < b else FAIL, figures)


def check_second_gpu(device: str | None, run_problem: str | None, records: Sequence[Mapping[str, Any]],
                     total_bytes: int | None, tolerances: Tolerances, key: str = "h") -> CheckResult:
    """(h) (a)-(c) again on a second GPU: every figure must come from the device measured."""
    title = f"(a)-(c) on {device}" if device else "(a)-(c) on a second GPU"
    if device is None:
        return CheckResult(key, title, NOT_APPLICABLE, "one GPU")
    if run_problem is not None:
        return CheckResult(key, title, FAIL, run_problem)
    wrong = [_name(r) for r in records if (r.get("config") or {}).get("device") not in (None, device)]
    if wrong:
        return CheckResult(key, title, FAIL, f"records measured on another device than {device}: {', '.join(wrong)}")
    parts = [check_memory_order(records, total_bytes), check_event_total(records, tolerances.timing_pct),
             check_step_sum(records, tolerances.timing_pct)]
    status = FAIL if any(p.status == FAIL for p in parts) else (
        PASS if any(p.status == PASS for p in parts) else NOT_APPLICABLE)
    return CheckResult(key, title, status, " | ".join(f"({p.key}) {p.status}: {p.detail}" for p in parts))


def check_conditions(records: Sequence[Mapping[str, Any]], run_problem: str | None = None,
                     key: str = "i") -> CheckResult:
    """(i) every measured repeat has its SM clock from NVML (the conditions the gate's "unreliable"
    rests on); throttled or clock-drifting repeats are reported, not failed: they are the card's state."""
    title = "NVML read the clocks under every repeat"
    if run_problem is not None:
        return CheckResult(key, title, FAIL, run_problem)
    measured = _ok(records)
    if not measured:
        return CheckResult(key, title, NOT_APPLICABLE, "no measured generation")
    unread = [_name(r) for r in measured
              if not r.get("conditions") or any(rep.get("sm_clock_mhz") is None for rep in r["conditions"].get("repeats") or [{}])]
    if unread:
        return CheckResult(key, title, FAIL, f"no SM clock from NVML for: {', '.join(unread)}")
    clocks = [rep["sm_clock_mhz"] for r in measured for rep in r["conditions"]["repeats"]]
    unstable = [f"{_name(r)}: {r['conditions']['summary']}" for r in measured if r["conditions"].get("summary") != "stable"]
    locked = {r["conditions"].get("locked_sm_clock_mhz") for r in measured} - {None}
    # the spread calibrates what counts as normal boost movement (conditions.assess) on this board
    spread = (max(clocks) - min(clocks)) / statistics.median(clocks) * 100.0
    bases = {r["conditions"].get("base_sm_clock_mhz") for r in measured} - {None}
    handles = sorted({str(r.get("nvml_device")) for r in measured if r.get("nvml_device")})
    detail = (f"SM clock {min(clocks):.0f}-{max(clocks):.0f} MHz (spread {spread:.1f} % of the median"
              + (f"; base clock {', '.join(f'{c:.0f}' for c in sorted(bases))} MHz" if bases else "; base clock not read")
              + f") over {len(clocks)} repeats of {len(measured)} tests"
              + f"; NVML device: {', '.join(handles) if handles else 'not recorded'}"
              + (f", locked at {', '.join(f'{c:.0f}' for c in sorted(locked))} MHz" if locked else "")
              + (f"; not stable: {'; '.join(unstable)}" if unstable else "; every test stable"))
    return CheckResult(key, title, PASS, detail)


def evaluate(plan: CheckPlan, main: RunResult, fresh: RunResult | None, oom: RunResult,
             second: RunResult | None) -> list[CheckResult]:
    """All ten checks over the runs' results, in order (``fresh`` is None for a fixed-size pipeline:
    check (d) is not applicable and its run was not made)."""
    tol = plan.tolerances
    records = list((main.document or {}).get("records", []))
    total = device_total_bytes(main.document)
    checks: list[CheckResult] = []
    # Without the main run's results, the checks on it fail with the reason.
    titles = {"a": "allocator peak <= NVML peak <= device total", "b": "CUDA-event stage total vs wall clock",
              "c": "per-step times sum to the loop's own timing", "f": "fast mode predicts a full run",
              "g": "model_cpu_offload lowers the allocated peak"}
    failed = {k: CheckResult(k, t, FAIL, str(main.problem)) for k, t in titles.items()}
    if main.problem:
        checks += [failed["a"], failed["b"], failed["c"]]
    else:
        checks += [check_memory_order(records, total), check_event_total(records, tol.timing_pct),
                   check_step_sum(records, tol.timing_pct)]
    one_size = plan.one_size_reason
    if one_size is not None:  # nothing was run for it: not judged, whatever the main run did
        checks.append(CheckResult("d", "a smaller size after the largest reports the fresh-process peak",
                                  NOT_APPLICABLE, f"not applicable: {one_size}, no smaller size to measure after it"))
    elif fresh is None:
        checks.append(CheckResult("d", f"{plan.middle} after {plan.largest} reports the fresh-process peak", FAIL,
                                  "no fresh-process run"))
    elif main.problem or fresh.problem:
        checks.append(CheckResult("d", f"{plan.middle} after {plan.largest} reports the fresh-process peak", FAIL,
                                  str(main.problem or fresh.problem)))
    else:
        checks.append(check_same_peak(main.record(AFTER_LARGEST), fresh.record(sweep_id(plan.middle)), tol.memory_pct,
                                      plan.middle, plan.largest))
    if oom.problem:
        checks.append(CheckResult("e", "an induced OOM is recorded as OOM and the next test passes", FAIL, oom.problem))
    else:
        checks.append(check_oom_recovery(oom.record(OOM), oom.record(AFTER_OOM), plan.largest, plan.smallest))
    if main.problem:
        checks.append(failed["f"])
    else:
        checks.append(check_fast_prediction(main.record(sweep_id(plan.smallest)), main.record(FULL),
                                            tol.fast_pct, plan.smallest))
    if not plan.offload_supported:  # nothing was run for it: not judged, whatever the main run did
        checks.append(CheckResult("g", f"{OFFLOAD_OPTION} lowers the {plan.middle} allocated peak", NOT_APPLICABLE,
                                  f"not applicable to {plan.pipeline} (it does not support {OFFLOAD_OPTION})"))
    elif main.problem:
        checks.append(failed["g"])
    else:
        checks.append(check_offload_peak(main.record(OFFLOAD), main.record(sweep_id(plan.middle)), plan.middle))
    second_records = list((second.document or {}).get("records", [])) if second else []
    checks.append(check_second_gpu(plan.other_device, second.problem if second else None, second_records,
                                   device_total_bytes(second.document) if second else None, tol))
    checks.append(check_conditions(records, main.problem))
    if main.problem or fresh is None or fresh.problem:
        why = main.problem or (fresh.problem if fresh else "no fresh-process run (one size only)")
        checks.append(CheckResult("j", SIGNATURE_TITLE, FAIL if main.problem or fresh else NOT_APPLICABLE, str(why)))
    else:
        checks.append(check_signature(main.record(sweep_id(plan.middle)), fresh.record(sweep_id(plan.middle)),
                                      tol.attribution_pct))
    return checks


# -- the report ----------------------------------------------------------------------------------
def _row_label(test: str, plan: CheckPlan) -> str:
    if test.startswith(SWEEP + "["):
        return test[len(SWEEP) + 1:-1]
    return {FULL: f"{plan.smallest} full run (f)", AFTER_LARGEST: f"{plan.middle} after {plan.largest} (d)",
            OFFLOAD: f"{plan.middle} model_cpu_offload (g)"}.get(test, test)


def render_summary(plan: CheckPlan, main: RunResult, checks: Sequence[CheckResult], runs: Sequence[RunResult]) -> str:
    """gpu-check.md: the environment, one row per generation of the main run, one line per check."""
    env = (main.document or {}).get("environment", {})
    lines = [f"# pytest-i2v gpu-check: {plan.pipeline}", ""]
    lines.append(markdown_table(["GPU", "memory", "driver", "CUDA", "torch", "diffusers"], [[
        str(env.get("gpu_name") or "-"), f"{env['gpu_memory_gib']:.1f} GiB" if env.get("gpu_memory_gib") else "-",
        str(env.get("driver") or "-"), str(env.get("cuda") or "-"), str(env.get("torch") or "-"),
        str(env.get("diffusers") or "-")]]))
    lines += ["", f"Pipeline {plan.pipeline}, model `{plan.model}` ({plan.dtype}) on {plan.device}; "
                  f"{plan.describe_mode()}.", ""]
    rows: list[list[str]] = []
    for test, record in records_by_test(main.document).items():
        config = record.get("config") or {}
        peak = record.get("peak_memory") or {}
        stages = record.get("stages") or {}
        roof = record.get("roofline") or {}
        efficiency = roof.get("efficiency")
        size = f"{config.get('width')}x{config.get('height')}, {config.get('frames')} frames, {config.get('steps')} steps"
        time_text = fmt_seconds(record.get("time_s")) + (" (predicted)" if record.get("mode") == "fast" else "")
        nvml = fmt_bytes(peak.get("device_bytes")) + (f" ({peak.get('device_scope')})" if peak.get("device_scope") else "")
        rows.append([_row_label(test, plan), size, str(record.get("outcome")),
                     time_text if record.get("outcome") == "ok" else "-", fmt_seconds(stages.get("step_s")),
                     fmt_bytes(peak.get("allocated_bytes")), fmt_bytes(peak.get("reserved_bytes")), nvml,
                     f"{efficiency * 100:.3g} %" if isinstance(efficiency, (int, float)) else "-"])
    if rows:
        lines.append(markdown_table(["generation", "config", "outcome", "time", "step", "peak allocated", "peak reserved",
                             "peak NVML (scope)", "% of peak FLOP/s"], rows))
    else:
        lines.append(f"No results from the main run: {main.problem}")
    lines += ["", "## Checks", ""]
    lines += [f"- {c.line}" for c in checks]
    lines += ["", "## Runs", ""]
    for run in runs:
        ended = "timed out" if run.returncode is None else f"exit {run.returncode}"
        lines.append(f"- {run.name}: {ended} after {run.seconds:.0f} s: `{' '.join(run.command)}`")
    lines += ["", final_line(checks, plan), ""]
    return "\n".join(lines)


def final_line(checks: Sequence[CheckResult], plan: CheckPlan) -> str:
    counts = {status: sum(1 for c in checks if c.status == status) for status in (PASS, FAIL, NOT_APPLICABLE)}
    verdict = "FAILED" if counts[FAIL] else "passed"
    mode = "dry run" if plan.dry_run else f"fast mode, {plan.fast_steps} of {plan.steps} steps measured"
    return (f"gpu-check {verdict}: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_APPLICABLE]} not applicable "
            f"({mode})")


# -- the plan --------------------------------------------------------------------------------------
def _cuda_count(dry_run: bool, simulated: Sequence[Mapping[str, Any]]) -> int:
    if dry_run:
        return len(simulated)
    import torch

    if not torch.cuda.is_available():
        raise I2VUsageError(f"gpu-check needs a CUDA device (torch {torch.__version__} has none here); "
                            f"run with --dry-run to exercise it on the CPU")
    return int(torch.cuda.device_count())


def _parse_device(name: str, count: int) -> str:
    if name == "cuda":
        name = "cuda:0"
    if not (name.startswith("cuda:") and name[5:].isdigit()):
        raise I2VUsageError(f"--device {name!r}: gpu-check checks a CUDA device; use cuda or cuda:N "
                            f"(--dry-run for the CPU)")
    if int(name[5:]) >= count:
        raise I2VUsageError(f"--device {name}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1}); "
                            f"pick one of those")
    return name


def _pipeline_info(name: str) -> PipelineInfo:
    if name not in PIPELINES:
        raise I2VUsageError(f"--pipeline {name!r}: not a known pipeline; use one of {', '.join(PIPELINES)}")
    return PIPELINES[name]


def _model_source(model: str | None, dry_run: bool, pipeline: str = DEFAULT_PIPELINE) -> str:
    if model is None:
        return "tiny" if dry_run else "random"
    if model in ("random", "tiny"):
        return model
    path = Path(model).expanduser()
    if not path.is_dir():
        raise I2VUsageError(f"--model {model!r}: use random, tiny or a local diffusers directory ({path} is not a directory)")
    # Another pipeline's directory would not be loaded for these marks (the plugin would fall back on
    # the hub checkpoint or the profile's model): say so rather than measure something else.
    owner = pipeline_of_directory(path)
    if owner is not None and owner != pipeline:
        raise I2VUsageError(f"--model {model!r} holds a {owner} pipeline (model_index.json), not {pipeline}; "
                            f"pass --pipeline {owner}")
    return str(path.resolve())


def size_ladder(info: PipelineInfo) -> tuple[tuple[str, int, int], ...]:
    """About 1/2, 2/3, 5/6 and 1x the native width and height, each rounded down to a size the
    pipeline accepts; labelled ``WIDTHxHEIGHT``, smallest first (a rung that rounds onto another is kept once).
    A pipeline whose model accepts one size only has that one rung."""
    if info.constraints.fixed_size is not None:
        width, height = info.constraints.fixed_size
        return ((f"{width}x{height}", width, height),)
    rungs: dict[str, tuple[str, int, int]] = {}
    for numerator, denominator in LADDER_FRACTIONS:
        width = info.constraints.round_size(info.native.width * numerator // denominator)
        height = info.constraints.round_size(info.native.height * numerator // denominator)
        rungs.setdefault(f"{width}x{height}", (f"{width}x{height}", width, height))
    return tuple(rungs.values())


def dry_run_sizes(info: PipelineInfo) -> tuple[tuple[str, int, int], ...]:
    """The dry run's square sizes rounded to the pipeline's size multiple, labelled ``WIDTHxHEIGHT``; for a
    pipeline whose model accepts one size only, that size (which the run's profile scales down)."""
    if info.constraints.fixed_size is not None:
        return size_ladder(info)
    sizes = dict.fromkeys(info.constraints.round_size(pixels) for pixels in DRY_RUN_PIXELS)
    return tuple((f"{pixels}x{pixels}", pixels, pixels) for pixels in sizes)


def dry_run_frames(info: PipelineInfo) -> int:
    """The smallest valid frame count of at least DRY_RUN_MIN_FRAMES (3, 5 or 9 for the 1, 4k+1, 8k+1 rules)."""
    return info.constraints.round_up_frames(max(DRY_RUN_MIN_FRAMES, info.constraints.min_frames))


def plan_for(info: PipelineInfo, *, dry_run: bool, device: str, other_device: str | None, model: str,
             simulated_gpus: tuple[Mapping[str, Any], ...] = ()) -> CheckPlan:
    """The runs' sizes and settings for one pipeline (pure: the device and model are checked already)."""
    sizes: tuple[tuple[str, int] | tuple[str, int, int], ...]
    fixed = info.constraints.fixed_size is not None
    if dry_run:
        # The cpu profile's scaling of the study (/8: 32..128 pixels), few frames, 3 steps, no warm-up (the
        # checks judged here are memory figures, which a warm-up does not change): about a minute on 2 cores.
        if info.name == DEFAULT_PIPELINE:
            sizes, frames, guidance = tuple((label, pixels // 8) for label, pixels in RESOLUTION_PRESETS.items()), 4, 9.0
            headroom = 8 * MiB
        else:
            sizes, frames, guidance = dry_run_sizes(info), dry_run_frames(info), info.native.guidance
            # The tiny transformers' simulated activations are a few KiB (LTX-Video packs its latents into
            # 128-channel tokens), so any headroom at all would let the induced OOM run finish.
            headroom = 0
        return CheckPlan(dry_run=True, device=device, other_device=other_device, model=model, dtype="fp32",
                         sizes=sizes, frames=frames, steps=3, guidance=guidance, fast_steps=2, repeats=2, warmup=0,
                         offload_steps=3, oom_headroom_bytes=headroom, timeout_s=300.0,
                         tolerances=Tolerances(fast_pct=None, attribution_pct=None), simulated_gpus=simulated_gpus, pipeline=info.name,
                         offload_supported=OFFLOAD_OPTION in info.memory_options, fixed_size=fixed,
                         size_divisor=DRY_RUN_SIZE_DIVISOR if fixed else 1)
    if info.name == DEFAULT_PIPELINE:
        # The study's generation; fast mode keeps the four sizes within the budget (8 minutes on a 4090).
        return CheckPlan(dry_run=False, device=device, other_device=other_device, model=model, dtype="fp16",
                         sizes=tuple(RESOLUTION_PRESETS.items()), frames=16, steps=50, guidance=9.0, fast_steps=5,
                         repeats=2, warmup=1, offload_steps=10, oom_headroom_bytes=GiB, timeout_s=600.0,
                         pipeline=info.name, offload_supported=OFFLOAD_OPTION in info.memory_options)
    # The pipeline's native generation, up to its native size. The timeout guards against a hang, not a
    # budget: the largest pipelines' native runs (HunyuanVideo's 1280x720x129) take many minutes each.
    native = info.native
    return CheckPlan(dry_run=False, device=device, other_device=other_device, model=model,
                     dtype=GPU_DTYPES.get(info.name, "bf16"), sizes=size_ladder(info), frames=native.frames,
                     steps=native.steps, guidance=native.guidance, fast_steps=min(5, native.steps), repeats=2, warmup=1,
                     offload_steps=min(10, native.steps), oom_headroom_bytes=GiB, timeout_s=3600.0,
                     pipeline=info.name, offload_supported=OFFLOAD_OPTION in info.memory_options, fixed_size=fixed)


def make_plan(dry_run: bool = False, device: str = "cuda:0", model: str | None = None,
              pipeline: str = DEFAULT_PIPELINE) -> CheckPlan:
    """The runs' sizes and settings; a bad --pipeline, --device or --model, or no CUDA, is one usage line."""
    info = _pipeline_info(pipeline)  # first: a typo is reported on a machine without CUDA too
    simulated: tuple[Mapping[str, Any], ...] = (dict(SIMULATED_H200), dict(SIMULATED_H200)) if dry_run else ()
    count = _cuda_count(dry_run, simulated)
    device = _parse_device(device, count)
    other = None
    if count > 1:
        other = "cuda:1" if device != "cuda:1" else "cuda:0"
    source = _model_source(model, dry_run, info.name)
    return plan_for(info, dry_run=dry_run, device=device, other_device=other, model=source, simulated_gpus=simulated)


# -- the temporary test module and the pytest subprocesses -----------------------------------------
SUITE_TEMPLATE = '''"""Written by `python -m pytest_i2v gpu-check`; each of its runs selects tests by node id."""

import contextlib
import json

import pytest

CONFIG = json.loads({config!r})
SIZES = {{label: (width, height) for label, width, height in CONFIG["sizes"]}}
SMALLEST, MIDDLE, LARGEST = CONFIG["smallest"], CONFIG["middle"], CONFIG["largest"]


def spec(label, **extra):
    """The mark's arguments: the study's preset (I2VGen-XL on a GPU), else explicit pixels."""
    width, height = SIZES[label]
    size = {{"resolution": label}} if CONFIG["presets"] else {{"width": width, "height": height}}
    args = dict(pipeline=CONFIG["pipeline"], frames=CONFIG["frames"], steps=CONFIG["steps"],
                guidance=CONFIG["guidance"], fast=True)
    args.update(extra)
    return {{**size, **args}}


@contextlib.contextmanager
def memory_limit(headroom):
    """Cap the device at what is allocated now (the loaded pipeline) plus ``headroom``."""
    if CONFIG["simulated"]:
        from pytest_i2v.simulated_plugin import RUNTIME

        device = RUNTIME.last_opened
        saved = device.limit_bytes  # its default keeps the CUDA context out; restored as it was
        device.set_memory_fraction((device.memory.allocated + headroom) / device.gpu.total_bytes)
        try:
            yield
        finally:
            device.limit_bytes = saved
        return
    import torch

    index = CONFIG["device_index"]
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(index).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_allocated(index) + headroom) / total), index)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, index)


@pytest.mark.parametrize("label", [pytest.param(label, marks=pytest.mark.i2v(**spec(label)), id=label) for label in SIZES])
def test_sweep(label, i2v_run):
    assert i2v_run().outcome == "ok"


@pytest.mark.i2v(**spec(SMALLEST, fast=False))
def test_full_smallest(i2v_run):
    # Runs right after the fast twin of the same generation, so its shapes are warm.
    assert i2v_run(warmup=0).outcome == "ok"


if CONFIG["after_largest"]:  # (d) only where the pipeline generates at more than one size
    @pytest.mark.i2v(**spec(MIDDLE))
    def test_after_largest(i2v_run):
        assert i2v_run().outcome == "ok"


if CONFIG["offload"]:  # (g) only where the pipeline supports model_cpu_offload
    @pytest.mark.i2v(**spec(MIDDLE, fast=False, steps=CONFIG["offload_steps"], memory=("model_cpu_offload",)))
    def test_offload(i2v_run):
        assert i2v_run(repeats=1, warmup=0).outcome == "ok"


@pytest.mark.i2v(**spec(LARGEST))
def test_oom_largest(i2v_pipeline, i2v_run):
    # i2v_pipeline first: the limit is set with the weights already on the device.
    with memory_limit(CONFIG["oom_headroom_bytes"]):
        record = i2v_run(repeats=1, warmup=0)
    assert record.outcome == "oom", f"{{LARGEST}} fitted under the memory limit ({{record.outcome}})"


@pytest.mark.i2v(**spec(SMALLEST))
def test_after_oom(i2v_run):
    assert i2v_run().outcome == "ok"
'''


def suite_source(plan: CheckPlan) -> str:
    config = {"sizes": [list(s) for s in plan.dimensions], "presets": plan.uses_presets, "simulated": plan.dry_run,
              "pipeline": plan.pipeline, "offload": plan.offload_supported, "after_largest": not plan.fixed_size,
              "smallest": plan.smallest, "middle": plan.middle, "largest": plan.largest, "frames": plan.frames,
              "steps": plan.steps, "guidance": plan.guidance, "offload_steps": plan.offload_steps,
              "oom_headroom_bytes": plan.oom_headroom_bytes, "device_index": plan.device_index}
    return SUITE_TEMPLATE.format(config=json.dumps(config))


def run_selections(plan: CheckPlan) -> dict[str, tuple[str, list[str]]]:
    """Run name -> (device, tests in the order they run)."""
    sweep = [sweep_id(label) for label in plan.labels]
    main = [sweep[0], FULL, *sweep[1:]]
    if not plan.fixed_size:
        main.append(AFTER_LARGEST)  # (d): right after the largest
    if plan.offload_supported:
        main.append(OFFLOAD)
    runs = {"main": (plan.device, main)}
    if not plan.fixed_size:
        runs["fresh"] = (plan.device, [sweep_id(plan.middle)])  # (d) only
    runs["oom"] = (plan.device, [OOM, AFTER_OOM])
    if plan.other_device:
        runs["second"] = (plan.other_device, sweep)  # (a)-(c) need the sweep only
    return runs


def plugin_args() -> list[str]:
    """``-p pytest_i2v.plugin`` only when the entry point does not load it (passing it twice is an error)."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return ["-p", "pytest_i2v.plugin"]
    registered = any(ep.value == "pytest_i2v.plugin" for ep in importlib.metadata.entry_points(group="pytest11"))
    return [] if registered else ["-p", "pytest_i2v.plugin"]


def dry_run_profile_yaml(plan: CheckPlan) -> str:
    """The profile a scaled dry run selects: the one ``auto`` picks for the simulated GPU, renamed,
    with the marks' sizes divided by ``plan.size_divisor`` (steps unscaled: the plan's are few already)."""
    import yaml

    from pytest_i2v.profiles import load_profiles, pick_profile

    gpu: Mapping[str, Any] = plan.simulated_gpus[plan.device_index] if plan.simulated_gpus else SIMULATED_H200
    picked = pick_profile("auto", load_profiles(), str(gpu["name"]), float(gpu["total_bytes"]) / GiB)
    data = yaml.safe_load(Path(picked.source).read_text(encoding="utf-8"))
    data.pop("aliases", None)
    data.update(name=DRY_RUN_PROFILE, scaling={"size_divisor": plan.size_divisor, "steps_divisor": 1},
                description=f"{picked.description}, sizes /{plan.size_divisor} (written by gpu-check --dry-run)")
    return str(yaml.safe_dump(data, sort_keys=False))


def pytest_command(plan: CheckPlan, workdir: Path, name: str, device: str, tests: Sequence[str]) -> list[str]:
    command = [sys.executable, "-m", "pytest", *plugin_args()]
    if plan.dry_run:
        command += ["-p", "pytest_i2v.simulated_plugin"]
    profile = ["--gpu-profile", "auto"]
    if plan.size_divisor > 1:
        profile = ["--i2v-profile-dir", str(workdir / PROFILE_DIR), "--gpu-profile", DRY_RUN_PROFILE]
    command += [
        "-c", str(workdir / "pytest.ini"), "--rootdir", str(workdir), "-p", "no:cacheprovider", "-p", "no:benchmark",
        "-q", "-rA",
        "--i2v-json", str(workdir / f"{name}.json"), *profile, "--i2v-allow-profile-mismatch",
        "--i2v-device", device, "--i2v-pipeline", plan.pipeline, "--i2v-model", plan.model, "--i2v-dtype", plan.dtype,
        "--i2v-repeats", str(plan.repeats), "--i2v-warmup", str(plan.warmup), "--i2v-fast-steps", str(plan.fast_steps),
        "--i2v-baseline-dir", str(workdir / "baselines"),  # never the user's baselines: every verdict is "new"
    ]
    if name == "main":
        command += ["--i2v-report", str(workdir / "main.html")]
    return command + [f"{SUITE_FILE}::{test}" for test in tests]


def child_environment(plan: CheckPlan) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTEST_ADDOPTS", "PYTEST_I2V_SIMULATED_MEMORY_FRACTION", "PYTEST_I2V_SIMULATED_GPUS"):
        env.pop(name, None)  # the runs are configured here, not by the caller's environment
    if plan.dry_run:
        env["PYTEST_I2V_SIMULATED_GPUS"] = json.dumps(list(plan.simulated_gpus))
        # One thread: the tiny model gains nothing from two, and on a busy 2-core machine torch's
        # threads wait on each other (several times slower).
        env["OMP_NUM_THREADS"] = "1"
    # The children import the same pytest_i2v as this process, installed or not.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return env


def run_pytest(plan: CheckPlan, workdir: Path, name: str, device: str, tests: Sequence[str]) -> RunResult:
    command = pytest_command(plan, workdir, name, device, tests)
    started = time.perf_counter()
    returncode: int | None
    try:
        completed = subprocess.run(command, cwd=workdir, env=child_environment(plan), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, timeout=plan.timeout_s, check=False)
        returncode, log = completed.returncode, completed.stdout
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout
        returncode, log = None, output.decode(errors="replace") if isinstance(output, bytes) else (output or "")
    seconds = time.perf_counter() - started
    if returncode == USAGE_ERROR and name == "main":
        # Nothing ran (an unknown GPU, a model directory diffusers cannot read): the user's to fix.
        # Later runs report it as their failure instead, so the main run's results are kept.
        raise I2VUsageError(f"the {name} pytest run refused its arguments: {last_error(log)}")
    path = workdir / f"{name}.json"
    document = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    # The temporary directory is gone once the check ends: show where it stood, not its name.
    shown = [a.replace(str(workdir), "<tmp>") for a in command]
    return RunResult(name=name, command=tuple(shown), returncode=returncode, seconds=seconds, document=document, log=log)


@dataclass(frozen=True)
class GpuCheckReport:
    plan: CheckPlan
    checks: tuple[CheckResult, ...]
    runs: tuple[RunResult, ...]
    out: Path

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)


def _progress(text: str) -> None:
    print(f"gpu-check: {text}", file=sys.stderr, flush=True)


def run_gpu_check(plan: CheckPlan, out: Path) -> GpuCheckReport:
    if out.exists() and not out.is_dir():
        raise I2VUsageError(f"--out {out}: exists and is not a directory")
    _progress(f"pipeline {plan.pipeline}: {plan.describe_mode()}")
    selections = run_selections(plan)
    results: dict[str, RunResult] = {}
    with tempfile.TemporaryDirectory(prefix="pytest-i2v-gpu-check-") as tmp:
        workdir = Path(tmp)
        (workdir / SUITE_FILE).write_text(suite_source(plan), encoding="utf-8")
        if plan.size_divisor > 1:
            (workdir / PROFILE_DIR).mkdir()
            (workdir / PROFILE_DIR / f"{DRY_RUN_PROFILE}.yaml").write_text(dry_run_profile_yaml(plan), encoding="utf-8")
        (workdir / "pytest.ini").write_text(
            "[pytest]\nfilterwarnings =\n    ignore:.*I2VGenXLPipeline has been deprecated.*\n", encoding="utf-8")
        for index, (name, (device, tests)) in enumerate(selections.items(), start=1):
            _progress(f"[{index}/{len(selections)}] {name} run: {len(tests)} test{'s' if len(tests) > 1 else ''} "
                      f"on {device} ...")
            result = run_pytest(plan, workdir, name, device, tests)
            _progress(f"[{index}/{len(selections)}] {name} run: pytest exit {result.returncode} after {result.seconds:.0f} s")
            results[name] = result
        report_html = (workdir / "main.html").read_text(encoding="utf-8") if (workdir / "main.html").is_file() else None
    runs = tuple(results.values())
    checks = evaluate(plan, results["main"], results.get("fresh"), results["oom"], results.get("second"))
    write_outputs(out, plan, results, report_html, checks)
    return GpuCheckReport(plan=plan, checks=tuple(checks), runs=runs, out=out)


def write_outputs(out: Path, plan: CheckPlan, results: Mapping[str, RunResult], report_html: str | None,
                  checks: Sequence[CheckResult]) -> None:
    """At most 7 files, each written atomically; a file this run did not produce is removed, so
    nothing stale from an earlier check is left next to this one's summary."""
    out.mkdir(parents=True, exist_ok=True)
    main = results["main"]
    files: dict[str, str | None] = {
        RESULTS_FILE: json.dumps(main.document, indent=2) + "\n" if main.document is not None else None,
        REPORT_FILE: report_html,
    }
    for name, filename in EXTRA_RESULTS.items():
        run = results.get(name)
        files[filename] = json.dumps(run.document, indent=2) + "\n" if run and run.document is not None else None
    files[LOG_FILE] = "".join(f"===== {r.name} run: {' '.join(r.command)}\n{r.log}\n" for r in results.values())
    files[SUMMARY_FILE] = render_summary(plan, main, checks, list(results.values()))
    for filename, text in files.items():
        if text is None:
            (out / filename).unlink(missing_ok=True)
        else:
            write_text_atomic(out / filename, text)


def main(out: str, device: str, dry_run: bool, model: str | None, pipeline: str | None = None) -> int:
    """The CLI's entry: prints one line per check and a final line; 1 when a check failed."""
    plan = make_plan(dry_run=dry_run, device=device, model=model, pipeline=pipeline or DEFAULT_PIPELINE)
    report = run_gpu_check(plan, Path(out))
    for check in report.checks:
        print(check.line)
    print(f"{final_line(report.checks, plan)} for pipeline {plan.pipeline}; {RESULTS_FILE}, {REPORT_FILE} and "
          f"{SUMMARY_FILE} in {report.out}")
    return 1 if report.failed else 0
