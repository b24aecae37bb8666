"""The work a generation does, read from one profiled generation (``measure.profiling``): per stage
(encode, one denoising step, decode) each op with its input shapes and dtypes, its call count and
its self time; on CUDA also each kernel with its device time (keyed by the shapes and dtypes of
the op that launched it), host-device syncs, copies by direction with their bytes, and
allocator calls.

The digest covers only what does not vary between identical processes (names, shapes, dtypes,
counts, bytes), never a time: unchanged code has one digest in every process. Two signatures
are compared in ``work_diff``. Pure: no torch, no pytest."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

STAGES = ("encode", "step", "decode")
OP = "op"  # an aten op on the host (its self time: the CPU's work, or the launch on a GPU)
KERNEL = "kernel"  # a device kernel (its device time)
SYNC = "sync"  # a host-device synchronisation (cudaStreamSynchronize, cudaDeviceSynchronize, ...)
MEMCPY = "memcpy"  # a copy; the name says the direction (HtoD, DtoH, DtoD)
MALLOC = "malloc"  # a cudaMalloc / cudaFree: the caching allocator went to the driver
# The rows whose time makes a step's time: ops on the CPU (synchronous); kernels, syncs and
# copies on CUDA.
TIMED_KINDS = {"cpu": (OP,), "cuda": (KERNEL, SYNC, MEMCPY, MALLOC)}


# A work row as a list (``WorkRow.to_list``): kind, name, shapes, dtypes, count, time, samples,
# bytes
WorkRowList = list[str | int | float | list[float]]


class StageWorkDoc(TypedDict, total=False):
    """A ``StageWork`` in a signature's JSON (``to_bytes``)."""

    span_s: float
    span_samples_s: list[float]
    rows: list[WorkRowList]


class WorkSignatureDoc(TypedDict):
    """``WorkSignature.to_dict()``: the full table, as a baseline's side file keeps it."""

    digest: str
    device_kind: str
    profiled_steps: int
    noise: list[str]
    stages: dict[str, StageWorkDoc]


@dataclass(frozen=True)
class WorkRow:
    kind: str
    name: str
    shapes: str = ""
    dtypes: str = ""
    count: int = 1  # calls per stage (per denoising step for "step")
    # median time per stage (per step): self time for ops, device time for kernels
    time_s: float = 0.0
    samples_s: tuple[float, ...] = ()  # per profiled step (the step stage), for the interval
    bytes: int = 0  # copies: bytes per stage (per step)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.name, self.shapes, self.dtypes)

    @property
    def label(self) -> str:
        detail = ", ".join(part for part in (self.shapes, self.dtypes) if part)
        return f"{self.name} ({detail})" if detail else self.name

    def to_list(self) -> WorkRowList:
        return [
            self.kind,
            self.name,
            self.shapes,
            self.dtypes,
            self.count,
            round(self.time_s, 9),
            [round(s, 9) for s in self.samples_s],
            self.bytes,
        ]

    @classmethod
    def from_list(cls, data: Sequence[Any]) -> WorkRow:
        kind, name, shapes, dtypes, count, time_s, samples, nbytes = data
        return cls(
            str(kind),
            str(name),
            str(shapes),
            str(dtypes),
            int(count),
            float(time_s),
            tuple(float(s) for s in samples),
            int(nbytes),
        )


@dataclass(frozen=True)
class StageWork:
    rows: tuple[WorkRow, ...]
    span_s: float  # the stage's duration (per step: the median over the profiled steps)
    span_samples_s: tuple[float, ...] = ()  # per profiled step

    def timed(self, device_kind: str) -> float:
        kinds = TIMED_KINDS.get(device_kind, (OP,))
        return sum(r.time_s for r in self.rows if r.kind in kinds)

    def host_gap_s(self, device_kind: str) -> float:
        """The stage's time outside every timed row (never below zero: on a GPU kernels overlap the
        host)."""
        return max(0.0, self.span_s - self.timed(device_kind))

    def to_dict(self) -> StageWorkDoc:
        return {
            "span_s": round(self.span_s, 9),
            "span_samples_s": [round(s, 9) for s in self.span_samples_s],
            "rows": [r.to_list() for r in self.rows],
        }

    @classmethod
    def from_dict(cls, data: StageWorkDoc) -> StageWork:
        return cls(
            tuple(WorkRow.from_list(r) for r in data.get("rows") or ()),
            float(data.get("span_s") or 0.0),
            tuple(float(s) for s in data.get("span_samples_s") or ()),
        )


@dataclass(frozen=True)
class WorkSignature:
    """One generation's work. ``noise``: named sources of work that may differ between identical
    processes, each with its cure (e.g. cuDNN's autotuner: ``torch.backends.cudnn.benchmark =
    False``)."""

    stages: Mapping[str, StageWork]
    device_kind: str = "cpu"  # "cpu" or "cuda"
    profiled_steps: int = 0
    noise: tuple[str, ...] = ()
    digest: str = field(default="")

    def __post_init__(self) -> None:
        if not self.digest:
            object.__setattr__(self, "digest", digest_of(self.stages))

    @property
    def step_s(self) -> float:
        step = self.stages.get("step")
        return step.span_s if step is not None else 0.0

    def to_dict(self) -> WorkSignatureDoc:
        return {
            "digest": self.digest,
            "device_kind": self.device_kind,
            "profiled_steps": self.profiled_steps,
            "noise": list(self.noise),
            "stages": {name: stage.to_dict() for name, stage in self.stages.items()},
        }

    def to_record(self) -> dict[str, str | int | list[str]]:
        """The form a results record keeps: the digest in the open, the table packed (gzip, base64),
        since the open table is ~1,400 rows per test and made a 42-test results.json 21.6 MB."""
        return {
            "digest": self.digest,
            "device_kind": self.device_kind,
            "profiled_steps": self.profiled_steps,
            "noise": list(self.noise),
            "rows": sum(len(stage.rows) for stage in self.stages.values()),
            "packed": base64.b64encode(to_bytes(self)).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkSignature:
        """``to_dict``'s or ``to_record``'s form."""
        if "packed" in data:
            unpacked = from_bytes(base64.b64decode(str(data["packed"])))
            if unpacked is None:
                raise ValueError(
                    f"work signature {data.get('digest')}: its packed table cannot be read"
                )
            return unpacked
        stages = {
            name: StageWork.from_dict(stage) for name, stage in (data.get("stages") or {}).items()
        }
        return cls(
            stages,
            str(data.get("device_kind") or "cpu"),
            int(data.get("profiled_steps") or 0),
            tuple(data.get("noise") or ()),
            str(data.get("digest") or "") or digest_of(stages),
        )


def to_bytes(signature: WorkSignature) -> bytes:
    """A signature as a baseline keeps it (gzip-compressed JSON): its full table, for the gate's
    diff."""
    return gzip.compress(json.dumps(signature.to_dict(), separators=(",", ":")).encode(), mtime=0)


def from_bytes(data: bytes) -> WorkSignature | None:
    """The signature ``to_bytes`` wrote, or None when it cannot be read (then nothing is
    compared)."""
    try:
        return WorkSignature.from_dict(json.loads(gzip.decompress(data)))
    except (ValueError, TypeError, KeyError, OSError, EOFError):
        return None


def digest_of(stages: Mapping[str, StageWork]) -> str:
    """A hash of the deterministic part: per stage, each row's kind, name, shapes, dtypes, count,
    bytes."""
    canonical = sorted(
        [stage, *row.key, row.count, row.bytes]
        for stage, work in stages.items()
        for row in work.rows
    )
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()[:16]


def without_kernels(stages: Mapping[str, StageWork]) -> dict[str, StageWork]:
    """The stages less their kernel rows: the part of the work a named noise source (cuDNN's
    autotuner) cannot change between identical processes."""
    return {
        name: StageWork(
            tuple(r for r in work.rows if r.kind != KERNEL), work.span_s, work.span_samples_s
        )
        for name, work in stages.items()
    }


def same_work(base: WorkSignature, head: WorkSignature) -> bool:
    """Whether two signatures record the same work. Where either side names a noise source its
    kernels may differ between identical processes, so both are compared without them (one side
    with the autotuner on and the other off never share a full digest)."""
    if base.digest == head.digest:
        return True
    if not (base.noise or head.noise):
        return False
    return digest_of(without_kernels(base.stages)) == digest_of(without_kernels(head.stages))
