"""A test's declared budgets checked against its record: the headline peak against the VRAM
budget, the median time against the time budget. One of the decision's inputs
(``outcome.DecisionInputs.budget_failures``)."""

from __future__ import annotations

from collections.abc import Mapping

from pytest_i2v.verdict.peak import PeakField, headline_peak


def budget_peak(peak_memory: Mapping[str, PeakField] | None) -> tuple[float | None, str]:
    """The figure a VRAM budget is checked against: the headline peak (``peak.headline_peak``) of
    a record's ``peak_memory``."""
    peak = headline_peak(peak_memory)
    return (float(peak.bytes) if peak.bytes is not None else None), peak.label


def budget_failures(
    peak_memory: Mapping[str, PeakField] | None,
    median_s: float | None,
    vram_gb: float | None,
    time_s: float | None,
) -> list[str]:
    """What exceeded the declared ``vram_gb`` and ``time_s``: a record's ``peak_memory`` and its
    median time ``median_s``."""
    failures = []
    if vram_gb is not None:
        peak, label = budget_peak(peak_memory)
        if peak is not None and peak / 1e9 > vram_gb:
            over = peak / 1e9 - vram_gb
            failures.append(
                f"VRAM budget {vram_gb:g} GB exceeded: measured {peak / 1e9:.2f} GB ({label}), "
                f"over by {over:.2f} GB (+{over / vram_gb:.1%})"
            )
    if time_s is not None and median_s is not None and median_s > time_s:
        over = median_s - time_s
        failures.append(
            f"time budget {time_s:g} s exceeded: median {median_s:.3f} s, "
            f"over by {over:.3f} s (+{over / time_s:.1%})"
        )
    return failures
