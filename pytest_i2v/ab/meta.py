"""What the job's outputs say about its processes: the two sides in their ABBA order, the machine
under the numbers, and the runs whose GPU was not stable."""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence

from pytest_i2v.ab.results_doc import RoundResults
from pytest_i2v.storage import JsonValue

SIDES = ("base", "head")


def abba_order(rounds: int) -> list[tuple[str, str]]:
    """(base, head) on even rounds, (head, base) on odd ones: a drift across the job hits both
    sides alike."""
    return [SIDES if r % 2 == 0 else (SIDES[1], SIDES[0]) for r in range(rounds)]


def order_text(rounds: int) -> str:
    """The processes' order as letters, a pair per round: ``"AB BA AB"``."""
    return " ".join(
        "".join("A" if side == "base" else "B" for side in pair) for pair in abba_order(rounds)
    )


def machine_name(environment: Mapping[str, JsonValue]) -> str:
    """The device under the numbers, from a results document's environment (its fingerprint)."""
    if environment.get("gpu_name"):
        return str(environment["gpu_name"])
    name = str(
        environment.get("cpu_model") or platform.processor() or platform.machine() or "unknown CPU"
    )
    if environment.get("cpu_threads"):
        name += f", {environment['cpu_threads']} torch threads"
    return name


def unstable_conditions(docs: Mapping[str, Sequence[RoundResults]]) -> list[str]:
    """Each process record whose GPU was not stable under its repeats, as ``base round 2: <test>:
    throttled (thermal, 2 of 5 repeats)``: the hardware under the numbers, for the summary. The
    paired statistics already carry what it did to the times; this says why a spread is wide."""
    lines = []
    for side in SIDES:
        for round_index, document in enumerate(docs.get(side, ())):
            for record in document.records:
                summary = record.conditions.summary if record.conditions else None
                if summary not in (None, "stable", "not read"):
                    lines.append(f"{side} round {round_index + 1}: {record.nodeid}: {summary}")
    return lines
