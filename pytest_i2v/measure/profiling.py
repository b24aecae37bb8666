"""One profiled generation -> its ``WorkSignature`` (``pytest_i2v.verdict.signature``), with
``torch.profiler``.

The generation is never timed: it runs after the measurement, with a few denoising steps. The stage
boundaries come from the same hooks that split the timed generations (``StageRecorder``), marked
here as zero-length profiler annotations, so each op falls in the stage, and the step, that launched
it. Steps after the first and before the last are the step's samples (the first and the last carry
the loop's set-up and hand-over to the decoder).

The device supplies what only it knows (``Device.trace_activities`` and ``Device.kernels_of``): on
CUDA the kernels CUPTI recorded for each op; on the simulated card, kernel records made from the ops
it computes on the CPU, and its stand-in ``torch.cuda.synchronize`` shows in the trace as a
``cudaDeviceSynchronize``, so the CUDA fields are tested without a GPU."""

from __future__ import annotations

import bisect
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.measure.device import Device
from pytest_i2v.measure.trace import TraceEvent, trace_events
from pytest_i2v.verdict.signature import (
    KERNEL,
    MALLOC,
    MEMCPY,
    OP,
    SYNC,
    StageWork,
    WorkRow,
    WorkSignature,
    digest_of,
    without_kernels,
)

# torch.profiler and the pipelines (diffusers) are imported where a signature is taken: only a
# run with the work signature on takes one.

PROFILED_STEPS = (
    7  # five middle steps: the samples of the step's time (three gave t = 4.3 at 95 %, five 2.8)
)
MARK = "i2v::mark#"
# CUDA runtime calls that are work of their own in a signature (by the name the trace gives them).
SYNC_CALLS = (
    "cudaDeviceSynchronize",
    "cudaStreamSynchronize",
    "cudaEventSynchronize",
    "cudaStreamWaitEvent",
)
MALLOC_CALLS = ("cudaMalloc", "cudaFree", "cudaMallocAsync", "cudaFreeAsync")
CUDNN_AUTOTUNER = (
    "cuDNN's autotuner (torch.backends.cudnn.benchmark = True) may pick other convolution kernels "
    "in another process: kernels are left out of the digest; set it to False for a deterministic "
    "one"
)


class AnnotationClock:
    """A ``Clock`` whose marks are zero-length profiler annotations, found again in the trace by
    name; each mark also keeps its host time, so ``seconds_between`` works as on the CPU."""

    def __init__(self) -> None:
        self.count = 0

    def mark(self) -> tuple[str, float]:
        from torch.profiler import record_function

        self.count += 1
        name = f"{MARK}{self.count}"
        with record_function(name):
            pass
        return name, time.perf_counter()

    def seconds_between(self, start: tuple[str, float], end: tuple[str, float]) -> float:
        return end[1] - start[1]


def profile_work(
    pipe: Any, spec: GenerationSpec, image: Any, device: Device, steps: int = PROFILED_STEPS
) -> WorkSignature:
    """Run one generation of ``spec`` with at most ``steps`` denoising steps under the profiler."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from pytest_i2v.measure.runner import generate, stage_recorder
    from pytest_i2v.pipelines import PIPELINES

    rules = PIPELINES[spec.pipeline].constraints
    run_spec = replace(spec, steps=rules.round_steps(max(rules.min_steps, min(spec.steps, steps))))
    clock = AnnotationClock()
    recorder = stage_recorder(pipe, run_spec, clock, None)
    activities = [
        ProfilerActivity.CUDA if a == "cuda" else ProfilerActivity.CPU
        for a in device.trace_activities()
    ]
    autotuner = bool(
        device.is_cuda and torch.backends.cudnn.is_available() and torch.backends.cudnn.benchmark
    )
    device.synchronize()
    with profile(activities=activities, record_shapes=True) as prof, recorder:
        recorder.begin()
        generate(pipe, run_spec, image, recorder.step_end)
        recorder.finish()
        device.synchronize()
    # The raw trace (the profiler's own results, read once), not prof.events(): building those event
    # objects costs several times the generation on a small model.
    events = trace_events(prof.profiler.kineto_results.events(), keep=_kept)
    if device.is_cuda:
        events = [
            replace(e, kernels=tuple(device.kernels_of(e))) if _kind(e) == OP else e for e in events
        ]
    intervals = [
        (stage, start[0], end[0]) for stage, start, end in recorder.intervals()
    ]  # the marks' names
    return build_signature(
        events,
        intervals,
        "cuda" if device.is_cuda else "cpu",
        noise=(CUDNN_AUTOTUNER,) if autotuner else (),
    )


def _kept(name: str, annotation: bool) -> bool:
    """What the signature reads: ops, the stage marks, syncs and allocator calls (not every runtime
    call)."""
    return ("::" in name and not (annotation and not name.startswith(MARK))) or name.startswith(
        SYNC_CALLS + MALLOC_CALLS
    )


def _kind(event: TraceEvent) -> str | None:
    if event.name.startswith(SYNC_CALLS):
        return SYNC
    if event.name.startswith(MALLOC_CALLS):
        return MALLOC
    if event.annotation or "::" not in event.name or event.name.startswith("i2v::"):
        return None  # user annotations, runtime calls (cudaLaunchKernel, ...), the marks
    return OP


def build_signature(
    events: Sequence[TraceEvent],
    intervals: Sequence[tuple[str, Any, Any]],
    device_kind: str,
    noise: tuple[str, ...] = (),
) -> WorkSignature:
    """Attribute each event to the stage interval it starts in and aggregate per stage; the step's
    rows come from the middle steps (count: the most common per step; time: the median per step)."""
    marks = {e.name: e.start_s for e in events if e.name.startswith(MARK)}
    spans = [(stage, marks[a], marks[b]) for stage, a, b in intervals if a in marks and b in marks]
    step_indices = [i for i, (stage, _, _) in enumerate(spans) if stage == "step"]
    middle = step_indices[1:-1] or step_indices
    found = _rows_by_interval(events, spans)
    stages: dict[str, StageWork] = {}
    for stage in ("encode", "decode"):
        index = next((i for i, (s, _, _) in enumerate(spans) if s == stage), None)
        if index is not None:
            stage_rows = tuple(
                WorkRow(k[0], k[1], k[2], k[3], int(v[0]), v[1], (), int(v[2]))
                for k, v in sorted(found[index].items())
            )
            stages[stage] = StageWork(stage_rows, spans[index][2] - spans[index][1])
    if middle:
        stages["step"] = _step_work(
            [found[i] for i in middle], [spans[i][2] - spans[i][1] for i in middle]
        )
    signature = WorkSignature(stages, device_kind, len(middle), noise)
    if noise:  # kernels may differ between processes: the digest leaves them out
        signature = replace(signature, digest=digest_of(without_kernels(stages)))
    return signature


def _rows_by_interval(
    events: Sequence[TraceEvent], spans: Sequence[tuple[str, float, float]]
) -> defaultdict[int, dict[tuple[str, str, str, str], list[float]]]:
    """Per interval (its index in ``spans``): row key -> [count, seconds, bytes] of the ops and
    kernels whose events start in it; an interval with none reads as no rows."""
    found: defaultdict[int, dict[tuple[str, str, str, str], list[float]]] = defaultdict(dict)
    starts = [start for _, start, _ in spans]
    for event in sorted(events, key=lambda e: e.start_s):
        kind = _kind(event)
        if kind is None:
            continue
        index = _interval_of(event.start_s, spans, starts)
        if index is None:
            continue
        rows = found[index]
        _add(
            rows,
            (
                kind,
                event.name,
                event.shapes if kind == OP else "",
                event.dtypes if kind == OP else "",
            ),
            event.self_s,
            0,
        )
        for kernel, seconds in event.kernels:
            is_copy = kernel.startswith(("Memcpy", "Memset"))
            # A kernel is keyed by its launching op's shapes and dtypes: on CUDA only kernels are
            # timed into the estimate, so a re-shaped op must change its kernel's row too.
            key = (
                (MEMCPY, kernel, "", "")
                if is_copy
                else (KERNEL, kernel, event.shapes, event.dtypes)
            )
            _add(rows, key, seconds, event.nbytes if is_copy else 0)
    return found


def _add(
    rows: dict[tuple[str, str, str, str], list[float]],
    key: tuple[str, str, str, str],
    seconds: float,
    nbytes: int,
) -> None:
    entry = rows.setdefault(key, [0, 0.0, 0])
    entry[0] += 1
    entry[1] += seconds
    entry[2] += nbytes


def _interval_of(
    start: float, spans: Sequence[tuple[str, float, float]], starts: Sequence[float]
) -> int | None:
    index = bisect.bisect_right(starts, start) - 1
    if index < 0 or start >= spans[index][2]:
        return None
    return index


def _step_work(
    steps: Sequence[dict[tuple[str, str, str, str], list[float]]], spans: Sequence[float]
) -> StageWork:
    keys = sorted(set().union(*steps))
    rows = []
    for key in keys:
        counts = Counter(int(step[key][0]) if key in step else 0 for step in steps)
        count = max(counts.items(), key=lambda item: (item[1], -item[0]))[
            0
        ]  # the most common; ties: the fewer
        if count == 0:
            continue
        samples = tuple(step[key][1] if key in step else 0.0 for step in steps)
        nbytes = int(statistics.median(step[key][2] if key in step else 0 for step in steps))
        rows.append(
            WorkRow(
                key[0],
                key[1],
                key[2],
                key[3],
                count,
                float(statistics.median(samples)),
                samples,
                nbytes,
            )
        )
    return StageWork(tuple(rows), float(statistics.median(spans)), tuple(spans))
