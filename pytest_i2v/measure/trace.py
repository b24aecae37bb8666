"""The profiler's raw trace as the work signature reads it: host events with their self time, their
input shapes and dtypes, and the device kernels each launched (CUPTI's records, linked to the launch
by its correlation id). Pure over the raw events' accessors (``name()``, ``start_ns()``, ...): the
conversion runs without torch on recorded stand-ins in the tests."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

DTYPE_BYTES = {
    "float": 4,
    "double": 8,
    "c10::Half": 2,
    "c10::BFloat16": 2,
    "Half": 2,
    "BFloat16": 2,
    "long int": 8,
    "int": 4,
    "short int": 2,
    "signed char": 1,
    "unsigned char": 1,
    "bool": 1,
    "c10::Float8_e4m3fn": 1,
}


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


# One host event as the nesting walk reads it: (start ns, duration ns, name, is annotation, raw).
_HostEntry = tuple[int, int, str, bool, Any]


def trace_events(
    raw: Iterable[Any], keep: Callable[[str, bool], bool] = lambda name, annotation: True
) -> list[TraceEvent]:
    """Host events in start order, each with its self time and the kernels launched inside it (a
    kernel belongs to the innermost op around its launch call). ``keep(name, is_annotation)``: which
    events to return (every event still counts for its parent's self time)."""
    host: list[Any] = []
    device: list[Any] = []
    for event in raw:
        (host if _host(event) else device).append(event)
    nesting = _Nesting(link_launches=bool(device))
    for events in _by_thread(host).values():
        nesting.walk(events, keep)
    kernels: dict[int, list[tuple[str, float]]] = {}
    for kernel in device:
        owner = nesting.op_of_launch.get(kernel.linked_correlation_id())
        if owner is not None:
            kernels.setdefault(id(owner), []).append(
                (str(kernel.name()), kernel.duration_ns() / 1e9)
            )
    return [
        _trace_event(entry, nesting, kernels.get(id(entry[4]), []))
        for entry in sorted(nesting.kept, key=lambda e: e[0])
    ]


def _by_thread(host: Sequence[Any]) -> dict[int, list[_HostEntry]]:
    by_thread: dict[int, list[_HostEntry]] = {}
    for event in host:
        by_thread.setdefault(event.start_thread_id(), []).append(
            (event.start_ns(), event.duration_ns(), event.name(), event.is_user_annotation(), event)
        )
    return by_thread


@dataclass
class _Nesting:
    """What the walk over each thread's events finds: the time and the ops nested in each event,
    the op around each kernel launch call (where the trace has kernels), and the events to keep."""

    link_launches: bool
    nested_s: dict[int, int] = field(default_factory=dict)  # id(raw) -> nested events' duration
    nested_ops: dict[int, int] = field(default_factory=dict)
    op_of_launch: dict[int, Any] = field(default_factory=dict)  # correlation id -> op's raw event
    kept: list[_HostEntry] = field(default_factory=list)

    def walk(self, events: list[_HostEntry], keep: Callable[[str, bool], bool]) -> None:
        """One thread's events, outermost first at equal starts."""
        events.sort(key=lambda e: (e[0], -e[1]))
        stack: list[tuple[int, int, str, bool, Any]] = []  # (end, id, name, is_op, raw)
        for start, duration, name, annotation, event in events:
            end = start + duration
            while stack and stack[-1][0] < end:
                stack.pop()
            is_op = "::" in name and not annotation
            if stack:
                parent = stack[-1][1]
                self.nested_s[parent] = self.nested_s.get(parent, 0) + duration
                if is_op:
                    self.nested_ops[parent] = self.nested_ops.get(parent, 0) + 1
            if self.link_launches and not is_op and event.correlation_id():
                op = next((entry[4] for entry in reversed(stack) if entry[3]), None)
                if op is not None:
                    self.op_of_launch[event.correlation_id()] = op
            if keep(name, annotation):
                self.kept.append((start, duration, name, annotation, event))
            stack.append((end, id(event), name, is_op, event))


def _trace_event(
    entry: _HostEntry, nesting: _Nesting, kernels: list[tuple[str, float]]
) -> TraceEvent:
    start, duration, name, annotation, event = entry
    key = id(event)
    shapes = [list(s) for s in (event.shapes() or [])]
    dtypes = [str(d) for d in (event.dtypes() or [])]
    nbytes = (
        math.prod(shapes[0]) * DTYPE_BYTES.get(dtypes[0], 0)
        if shapes and shapes[0] and dtypes
        else 0
    )
    return TraceEvent(
        name=str(name),
        start_s=start / 1e9,
        end_s=(start + duration) / 1e9,
        self_s=max(0, duration - nesting.nested_s.get(key, 0)) / 1e9,
        shapes=str(shapes).replace(" ", "") if any(shapes) else "",
        dtypes=",".join(dtypes),
        nbytes=nbytes,
        annotation=bool(annotation),
        nested_ops=nesting.nested_ops.get(key, 0),
        kernels=tuple(kernels),
    )
