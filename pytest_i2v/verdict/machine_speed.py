"""A slower machine or slower code? The machine speed probe's figures (``measure.probe``) of this
run against those stored with the baseline runs of the same machine segment.

The fingerprint cannot see speed: cloud machines with the same CPU name and flags differ by 2x, and
so do GPUs with the same name (clocks, power limits, cooling, neighbours). The probe runs fixed
work, so its figures move with the machine and never with the code under test. When this run's probe
lies outside ``PROBE_TOLERANCE`` of the baseline runs' median on any figure, the timings are not
compared as if the machine were the same: the gate reports them but does not let them fail a test
(memory is still judged), and says which figure moved. A probe that moved between the start and the
end of the session (a neighbour started, the card throttled) marks the run's timings unreliable.

With the work signature: work unchanged and the probe slower is the machine; work changed is the
code (``work_diff.work_verdict`` decides that test whatever the probe says).

Pure: no pytest, no torch, no I/O."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_i2v.storage import Scalar

PROBE_LABELS = {
    "gemm_gflops": "matrix products",
    "copy_gbs": "memory bandwidth",
    "tiny_ops_per_ms": "tiny ops (launch and host overhead)",
}
# When two runs count as different machine speeds: the geometric mean of the figures' ratios moved
# by more than PROBE_TOLERANCE, or one figure by more than FIGURE_TOLERANCE (a machine slower at one
# thing only). benchmarks/machine_probe.py, 20 fresh processes on the 2-core CPU (2026-12-02): each
# figure spreads 16-20 % between processes, their geometric mean less; 1 of 20 processes lay beyond
# 40 % on the mean, none beyond a factor 2 on one figure. A 2x slower machine (0.5) is well beyond
# both.
PROBE_TOLERANCE = 0.40
FIGURE_TOLERANCE = 1.0


@dataclass(frozen=True)
class MachineSpeed:
    ratios: dict[str, float]  # this run / the baseline's median, per figure (above 1: faster)
    tolerance: float = PROBE_TOLERANCE

    @property
    def comparable(self) -> bool:
        return abs(math.log(self.speed)) <= math.log1p(self.tolerance) and all(
            abs(math.log(r)) <= math.log1p(FIGURE_TOLERANCE) for r in self.ratios.values()
        )

    @property
    def speed(self) -> float:
        """The geometric mean of the figures' ratios: the speed this run is judged to have."""
        return math.exp(statistics.fmean(math.log(r) for r in self.ratios.values()))

    def figures(self) -> str:
        return ", ".join(
            f"{PROBE_LABELS.get(name, name)} {ratio:.2f}x" for name, ratio in self.ratios.items()
        )

    def line(self) -> str:
        """One line for the decision and the headline."""
        return (
            f"this machine ran the probe at {self.speed:.2f}x the baseline machine's speed "
            f"({self.figures()}): "
            f"{NOT_COMPARABLE}"
        )


NOT_COMPARABLE = "timings not comparable; memory still judged"


def _figures(probe: Mapping[str, float | None] | None) -> dict[str, float]:
    return {
        name: float(value)
        for name, value in (probe or {}).items()
        if name in PROBE_LABELS and value and value > 0
    }


def compare_speed(
    runs: Sequence[Mapping[str, Scalar]],
    probe: Mapping[str, float | None] | None,
    tolerance: float = PROBE_TOLERANCE,
) -> MachineSpeed | None:
    """This run's probe against the median of the baseline runs that stored one
    (``probe_<figure>``);
    None where either side has none (a baseline older than the probe, the virtual clock)."""
    current = _figures(probe)
    ratios = {}
    for name, value in current.items():
        stored = [
            float(v)
            for run in runs
            if isinstance(v := run.get(f"probe_{name}"), (int, float)) and v > 0
        ]
        if stored:
            ratios[name] = value / statistics.median(stored)
    return MachineSpeed(ratios, tolerance) if ratios else None


def probe_moved(
    start: Mapping[str, float | None] | None,
    end: Mapping[str, float | None] | None,
    tolerance: float = PROBE_TOLERANCE,
) -> str | None:
    """One line when the machine's speed changed during the session, else None."""
    first, last = _figures(start), _figures(end)
    ratios = {name: last[name] / first[name] for name in first if name in last}
    speed = MachineSpeed(ratios, tolerance)
    if not ratios or speed.comparable:
        return None
    return (
        f"the machine's speed moved during the run (end against start: {speed.figures()}): a "
        "neighbour or "
        f"throttling; this run's timings are unreliable"
    )
