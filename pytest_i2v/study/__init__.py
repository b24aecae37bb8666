"""The study's conclusions as code: latency classes, the dynamic-resolution rule, and a
recommendation matrix computed from measurements (never written by hand)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import RESOLUTION_PRESETS, Scaling
from pytest_i2v.report.grouping import group_by_pipeline
from pytest_i2v.verdict.peak import record_peak

# The study's user-patience thresholds (20 testers): < 30 s 85 % satisfied, 30-60 s 60 %, > 60 s 25 %.
DEFAULT_LATENCY_THRESHOLDS_S = (30.0, 60.0)
LATENCY_CLASSES = ("good", "acceptable", "too-slow")
DEFAULT_MEMORY_CLASSES_GB = (8, 12, 16, 24, 40, 48, 80)
DEFAULT_SAFETY_MARGIN_GB = 2.0  # the study: keep 2-3 GB free


def latency_class(
    time_s: float | None, thresholds: Sequence[float] = DEFAULT_LATENCY_THRESHOLDS_S
) -> str | None:
    if time_s is None:
        return None
    good, acceptable = thresholds
    return "good" if time_s < good else "acceptable" if time_s <= acceptable else "too-slow"


def parse_thresholds(text: str) -> tuple[float, float]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError("use two numbers of seconds, e.g. 30,60") from None
    if len(values) != 2 or not 0 < values[0] < values[1]:
        raise ValueError("use two increasing positive numbers of seconds, e.g. 30,60")
    return values[0], values[1]


# ---------------------------------------------------------------------------- dynamic resolution
def pick_resolution(
    width: int,
    height: int,
    available_gb: float | None = None,
    peak_gb: Mapping[str, float] | None = None,
    margin_gb: float = DEFAULT_SAFETY_MARGIN_GB,
) -> str | None:
    """The study's rule, extended by memory.

    The article: an input "smaller than 600x600" gets 512p, otherwise 768p (its code compared
    tuples, i.e. the width only; we compare the area, so a 500x900 input is not "small").
    Extended: an input of at least 1024x1024 gets 1024p when it fits; and with ``available_gb``
    and expected peaks per resolution, step down until the choice fits ``available - margin``.
    Returns None when nothing fits."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} must be positive")
    order = list(RESOLUTION_PRESETS)  # 256p .. 1024p
    if width * height < 600 * 600:
        choice = "512p"
    elif width >= 1024 and height >= 1024:
        choice = "1024p"
    else:
        choice = "768p"
    if available_gb is None or not peak_gb:
        return choice
    budget = available_gb - margin_gb
    for candidate in reversed(order[: order.index(choice) + 1]):
        if candidate in peak_gb and peak_gb[candidate] <= budget:
            return candidate
    return None


# ---------------------------------------------------------------------------- budgets
def budget_peak(record: Mapping[str, Any]) -> tuple[float | None, str]:
    """The figure a VRAM budget is checked against: the headline peak (``peak.headline_peak``)."""
    peak = record_peak(record)
    return (float(peak.bytes) if peak.bytes is not None else None), peak.label


def budget_failures(
    record: Mapping[str, Any], vram_gb: float | None, time_s: float | None
) -> list[str]:
    failures = []
    if vram_gb is not None:
        peak, label = budget_peak(record)
        if peak is not None and peak / 1e9 > vram_gb:
            over = peak / 1e9 - vram_gb
            failures.append(
                f"VRAM budget {vram_gb:g} GB exceeded: measured {peak / 1e9:.2f} GB ({label}), "
                f"over by {over:.2f} GB (+{over / vram_gb:.1%})"
            )
    if time_s is not None and record.get("time_s") is not None and record["time_s"] > time_s:
        over = record["time_s"] - time_s
        failures.append(
            f"time budget {time_s:g} s exceeded: median {record['time_s']:.3f} s, "
            f"over by {over:.3f} s (+{over / time_s:.1%})"
        )
    return failures


def fits_profile(vram_gb: float, profile_memory_gb: float, margin_gb: float) -> str | None:
    """None if the budget fits; else the skip reason (run nothing into an OOM)."""
    if vram_gb > profile_memory_gb - margin_gb:
        return (
            f"VRAM budget {vram_gb:g} GB does not fit this profile's {profile_memory_gb:g} GB minus the "
            f"{margin_gb:g} GB safety margin"
        )
    return None


# ---------------------------------------------------------------------------- the study file
@dataclass(frozen=True)
class Study:
    defaults: dict[str, Any]
    resolution_sweep: list[str]
    vram_budgets_gb: dict[str, float]
    tradeoffs: dict[str, Any]
    precision: dict[str, Any]
    memory_options: dict[str, Any]
    dynamic_resolution: dict[str, Any]
    # The newer pipelines at their native settings ({case: mark arguments + vram_gb}) and their
    # memory-options suite; optional, so a study file from before pipelines still loads.
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipeline_memory_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Study:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise I2VUsageError(
                f"study file {path} cannot be read ({type(exc).__name__}); fix it or restore it"
            ) from None
        try:
            return cls(
                defaults=dict(data["defaults"]),
                resolution_sweep=list(data["resolution_sweep"]["resolutions"]),
                vram_budgets_gb={
                    str(k): float(v) for k, v in (data.get("vram_budgets_gb") or {}).items()
                },
                tradeoffs=dict(data["tradeoffs"]),
                precision=dict(data["precision"]),
                memory_options=dict(data["memory_options"]),
                dynamic_resolution=dict(data["dynamic_resolution"]),
                pipelines={str(k): dict(v) for k, v in (data.get("pipelines") or {}).items()},
                pipeline_memory_options=dict(data.get("pipeline_memory_options") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise I2VUsageError(f"study file {path}: missing or malformed section {exc}") from None


# ---------------------------------------------------------------------------- recommendation matrix
@dataclass(frozen=True)
class CostModel:
    """y = sum(coef_i * term_i(pixels, frames)) with non-negative coefficients (scipy's NNLS):
    a cost cannot shrink as the work grows. ``error_pct`` = worst relative error on the fitted points."""

    terms: tuple[str, ...]
    coefficients: tuple[float, ...]
    error_pct: float
    points: int

    def __call__(self, pixels: float, frames: float) -> float:
        return float(
            sum(
                c * _TERMS[t](pixels, frames)
                for t, c in zip(self.terms, self.coefficients, strict=True)
            )
        )  # type: ignore[no-untyped-call]  # _TERMS holds lambdas

    def describe(self) -> str:
        return " + ".join(
            f"{c:.3g}*{t}" if t != "1" else f"{c:.3g}"
            for t, c in zip(self.terms, self.coefficients, strict=True)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.describe(),
            "terms": list(self.terms),
            "coefficients": list(self.coefficients),
            "max_error_pct": self.error_pct,
            "points": self.points,
        }


# Work terms: a fixed part, the convolutions and linear layers (pixels * frames), and spatial
# self-attention, quadratic in the tokens of each frame (pixels^2 * frames).
_TERMS = {
    "1": lambda pixels, frames: 1.0,
    "pixels*frames": lambda pixels, frames: pixels * frames,
    "pixels^2*frames": lambda pixels, frames: pixels * pixels * frames,
}


def fit_cost(
    points: Sequence[tuple[float, float]], ys: Sequence[float], terms: Sequence[str]
) -> CostModel:
    from scipy.optimize import nnls

    if len({p for p in points}) < 2:
        raise ValueError("a fit needs at least two different sizes x frames")
    columns = np.array(
        [[float(_TERMS[t](p, f)) for t in terms] for p, f in points], dtype=np.float64
    )  # type: ignore[no-untyped-call]
    scale = columns.max(axis=0)
    scale[scale == 0] = 1.0
    coefficients, _ = nnls(columns / scale, np.asarray(ys, float))
    coefficients = coefficients / scale
    fitted = columns @ coefficients
    error = float(np.max(np.abs(fitted / np.asarray(ys, float) - 1.0)) * 100)
    return CostModel(tuple(terms), tuple(float(c) for c in coefficients), error, len(points))


def _peak_bytes(record: Mapping[str, Any]) -> tuple[float | None, str]:
    peak = record_peak(record)
    return (float(peak.bytes) if peak.bytes is not None else None), peak.key or "none"


@dataclass(frozen=True)
class MatrixCell:
    memory_gb: float
    resolution: str | None
    frames: int | None
    peak_gb: float | None
    time_s: float | None
    latency: str | None
    measured: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(
    records: Iterable[Mapping[str, Any]],
    scaling: Scaling,
    steps: int = 50,
    memory_classes_gb: Sequence[float] = DEFAULT_MEMORY_CLASSES_GB,
    frames_options: Sequence[int] = (8, 16, 24, 32),
    margin_gb: float = DEFAULT_SAFETY_MARGIN_GB,
    thresholds: Sequence[float] = DEFAULT_LATENCY_THRESHOLDS_S,
    min_frames: int = 16,
) -> dict[str, Any]:
    """Fit the peak and the time as cost models of pixels and frames on plain runs (no memory
    options) of one dtype, then, per memory class, the largest resolution that fits
    (class - margin) with at least ``min_frames`` frames (the study's clip length), and the most
    frames it holds; below that, the largest resolution with fewer frames. Each cell carries its
    expected time at ``steps`` steps and whether that exact generation was measured."""
    plain = [
        r
        for r in records
        if r.get("outcome") == "ok" and not r["config"].get("memory") and r.get("time_s")
    ]
    if not plain:
        raise I2VUsageError(
            "no successful plain (no memory options) results to fit; run the resolution sweep first"
        )
    dtypes = sorted(
        {r["config"]["dtype"] for r in plain},
        key=lambda d: -sum(r["config"]["dtype"] == d for r in plain),
    )
    plain = [
        r for r in plain if r["config"]["dtype"] == dtypes[0] and _peak_bytes(r)[0] is not None
    ]
    points = [
        (float(r["config"]["width"] * r["config"]["height"]), float(r["config"]["frames"]))
        for r in plain
    ]
    peaks = [_peak_bytes(r) for r in plain]
    kinds = {kind for _, kind in peaks}
    if len(set(points)) < 2:
        raise I2VUsageError(
            "the results hold fewer than two different sizes x frames; run the resolution sweep"
        )
    memory_fit = fit_cost(points, [(p or 0.0) / 1e9 for p, _ in peaks], ("1", "pixels*frames"))
    step_fit = fit_cost(
        points, [r["stages"]["step_s"] for r in plain], ("1", "pixels*frames", "pixels^2*frames")
    )
    fixed_fit = fit_cost(
        points,
        [r["stages"]["encode_s"] + r["stages"]["decode_s"] for r in plain],
        ("1", "pixels*frames"),
    )
    run_steps = scaling.steps(steps)

    def total(pixels: float, frames: float) -> float:
        return fixed_fit(pixels, frames) + run_steps * step_fit(pixels, frames)

    total_errors = [
        abs(total(*pt) / r["time_s"] - 1) * 100
        for pt, r in zip(points, plain, strict=True)
        if r["config"]["steps"] == run_steps
    ]
    measured = {
        (r["config"].get("resolution"), r["config"]["frames"])
        for r in plain
        if (r["config"].get("study") or {}).get("steps", r["config"]["steps"]) == steps
    }
    order = list(RESOLUTION_PRESETS)
    cells = []
    for memory in memory_classes_gb:
        fitting = []
        for label, size in RESOLUTION_PRESETS.items():
            side = scaling.size(size)
            for frames in frames_options:
                peak = memory_fit(float(side * side), frames)
                if peak <= memory - margin_gb:
                    fitting.append(
                        (
                            frames >= min_frames,
                            order.index(label),
                            frames,
                            label,
                            peak,
                            float(side * side),
                        )
                    )
        if not fitting:
            cells.append(MatrixCell(memory, None, None, None, None, None, False))
            continue
        _, _, frames, label, peak, pixels = max(fitting)
        t = total(pixels, frames)
        cells.append(
            MatrixCell(
                memory,
                label,
                frames,
                round(peak, 2),
                round(t, 3),
                latency_class(t, thresholds),
                (label, frames) in measured,
            )
        )
    return {
        "memory_figure": "/".join(sorted(kinds)),
        "dtype": dtypes[0],
        "steps": steps,
        "run_steps": run_steps,
        "margin_gb": margin_gb,
        "fits": {
            "peak_gb": memory_fit.to_dict(),
            "step_s": step_fit.to_dict(),
            "encode_decode_s": fixed_fit.to_dict(),
            "total_s_max_error_pct": max(total_errors) if total_errors else None,
        },
        "cells": [c.to_dict() for c in cells],
        "note": None
        if plain[0]["config"].get("provenance") != "tiny-random-weights"
        else "fitted on the tiny model (scaled study): shows the method, not what a GPU will do",
    }


def recommend_per_pipeline(
    records: Iterable[Mapping[str, Any]],
    scaling: Scaling,
    steps: int = 50,
    memory_classes_gb: Sequence[float] = DEFAULT_MEMORY_CLASSES_GB,
    margin_gb: float = DEFAULT_SAFETY_MARGIN_GB,
    thresholds: Sequence[float] = DEFAULT_LATENCY_THRESHOLDS_S,
    unfitted: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """One ``recommend`` matrix per pipeline, each fitted on that pipeline's records only (two
    models' costs have nothing in common). A pipeline whose records cannot be fitted (too few
    sizes, no plain runs) is left out, and why goes into ``unfitted`` when one is given."""
    matrices: dict[str, dict[str, Any]] = {}
    for pipeline, group in group_by_pipeline(records).items():
        try:
            matrices[pipeline] = recommend(
                group,
                scaling,
                steps=steps,
                memory_classes_gb=memory_classes_gb,
                margin_gb=margin_gb,
                thresholds=thresholds,
            )
        except (I2VUsageError, ValueError) as exc:
            if unfitted is not None:
                unfitted[pipeline] = str(exc)
    return matrices


def format_recommendation(matrix: Mapping[str, Any]) -> str:
    fits = matrix["fits"]
    lines = [
        f"Recommendation matrix ({matrix['dtype']}, {matrix['steps']} study steps = {matrix['run_steps']} run steps, "
        f"margin {matrix['margin_gb']:g} GB, memory figure: {matrix['memory_figure']})",
        f"  peak GB = {fits['peak_gb']['model']}   "
        f"(max fit error {fits['peak_gb']['max_error_pct']:.1f} % over {fits['peak_gb']['points']} points)",
        f"  step s  = {fits['step_s']['model']}   "
        f"(max fit error {fits['step_s']['max_error_pct']:.1f} % over {fits['step_s']['points']} points)",
    ]
    if fits.get("total_s_max_error_pct") is not None:
        lines.append(
            f"  total time predicted for the measured configs: max error {fits['total_s_max_error_pct']:.1f} %"
        )
    lines.append("")
    lines.append(
        "| GPU memory | resolution | frames | peak (GB) | expected time | latency | cell |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for cell in matrix["cells"]:
        if cell["resolution"] is None:
            lines.append(f"| {cell['memory_gb']:g} GB | nothing fits | - | - | - | - | - |")
            continue
        lines.append(
            f"| {cell['memory_gb']:g} GB | {cell['resolution']} | {cell['frames']} | {cell['peak_gb']:.2f} | "
            f"{cell['time_s']:.1f} s | {cell['latency']} | {'measured' if cell['measured'] else 'extrapolated'} |"
        )
    if matrix.get("note"):
        lines.append("")
        lines.append(f"note: {matrix['note']}")
    return "\n".join(lines)
