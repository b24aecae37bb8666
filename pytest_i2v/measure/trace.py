"""The profiler's raw trace as the work signature reads it: host events with their self time, their
input shapes and dtypes, and the device kernels each launched (CUPTI's records, linked to the launch
by its correlation id). Pure over the raw events' accessors (``name()``, ``start_ns()``, ...): the
conversion runs without torch on recorded stand-ins in the tests."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DTYPE_BYTES = {"float": 4, "double": 8, "c10::Half": 2, "c10::BFloat16": 2, "Half": 2, "BFloat16": 2, "long int": 8,
               "int": 4, "short int": 2, "signed char": 1, "unsigned char": 1, "bool": 1, "c10::Float8_e4m3fn": 1}


@dataclass(frozen=True)
class TraceEvent:
    """One host event (seconds from the trace's clock origin)."""

    name: str
    start_s: float
    end_s: float
    self_s: float  # its duration less the events nested in it
    shapes: str = ""
    dtypes: str = ""
    nbytes: int = 0  # the first input's bytes (what a copy moves)
    annotation: bool = False  # a record_function range, not an op
    nested_ops: int = 0  # ops nested directly in it
    kernels: tuple[tuple[str, float], ...] = ()  # (kernel, device seconds) it launched


def _host(event: Any) -> bool:
    kind = event.device_type()
    return str(getattr(kind, "name", kind)) == "CPU"


def trace_events(raw: Iterable[Any]) -> list[TraceEvent]:
    """Host events in start order, each with its self time and the kernels launched inside it (a kernel
    belongs to the innermost op around its launch call)."""
    host: list[Any] = []
    device: list[Any] = []
    for event in raw:
        (host if _host(event) else device).append(event)
    by_thread: dict[int, list[Any]] = {}
    for event in host:
        by_thread.setdefault(event.start_thread_id(), []).append(event)
    converted: dict[int, dict[str, Any]] = {}  # id(raw) -> fields
    op_of_launch: dict[int, int] = {}  # a launch call's correlation id -> id(raw) of its op
    for events in by_thread.values():
        events.sort(key=lambda e: (e.start_ns(), -e.duration_ns()))
        stack: list[Any] = []
        for event in events:
            start, end = event.start_ns(), event.start_ns() + event.duration_ns()
            while stack and stack[-1].start_ns() + stack[-1].duration_ns() < end:
                stack.pop()
            name = event.name()
            fields = converted[id(event)] = {"event": event, "nested_s": 0, "nested_ops": 0, "kernels": []}
            if stack:
                parent = converted[id(stack[-1])]
                parent["nested_s"] += event.duration_ns()
                if "::" in name and not event.is_user_annotation():
                    parent["nested_ops"] += 1
            if event.correlation_id():
                op = next((o for o in reversed(stack) if "::" in o.name() and not o.is_user_annotation()), None)
                if op is not None:
                    op_of_launch[event.correlation_id()] = id(op)
            fields["start"] = start
            stack.append(event)
    for kernel in device:
        owner = op_of_launch.get(kernel.linked_correlation_id())
        if owner is not None:
            converted[owner]["kernels"].append((str(kernel.name()), kernel.duration_ns() / 1e9))
    result = []
    for fields in converted.values():
        event = fields["event"]
        shapes = [list(s) for s in (event.shapes() or [])]
        dtypes = [str(d) for d in (event.dtypes() or [])]
        nbytes = math.prod(shapes[0]) * DTYPE_BYTES.get(dtypes[0], 0) if shapes and shapes[0] and dtypes else 0
        result.append(TraceEvent(
            name=str(event.name()), start_s=fields["start"] / 1e9, end_s=(fields["start"] + event.duration_ns()) / 1e9,
            self_s=max(0, event.duration_ns() - fields["nested_s"]) / 1e9,
            shapes=str(shapes).replace(" ", "") if any(shapes) else "", dtypes=",".join(dtypes), nbytes=nbytes,
            annotation=bool(event.is_user_annotation()), nested_ops=fields["nested_ops"], kernels=tuple(fields["kernels"])))
    result.sort(key=lambda e: e.start_s)
    return result
