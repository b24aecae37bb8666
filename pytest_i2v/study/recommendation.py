"""The recommendation matrix, computed from measurements (never written by hand): per GPU memory
class, the largest resolution and the most frames that fit, with the expected time and latency
class, from cost models fitted on the plain runs."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import RESOLUTION_PRESETS, Scaling
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.grouping import group_by_pipeline
from pytest_i2v.report.results import CostFit, Recommendation
from pytest_i2v.report.results import MatrixCell as MatrixCellDoc
from pytest_i2v.storage import Scalar
from pytest_i2v.study.cost_model import CostModel, fit_cost
from pytest_i2v.study.latency import DEFAULT_LATENCY_THRESHOLDS_S, latency_class
from pytest_i2v.study.resolution import DEFAULT_SAFETY_MARGIN_GB

DEFAULT_MEMORY_CLASSES_GB = (8, 12, 16, 24, 40, 48, 80)
FRAMES_OPTIONS = (8, 16, 24, 32)  # the frame counts a cell may recommend
CLIP_FRAMES = 16  # the study's clip length: a cell holds at least this many frames where it can


@dataclass(frozen=True)
class MatrixCell:
    memory_gb: float
    resolution: str | None
    frames: int | None
    peak_gb: float | None
    time_s: float | None
    latency: str | None
    measured: bool

    def to_dict(self) -> MatrixCellDoc:
        return {
            "memory_gb": self.memory_gb,
            "resolution": self.resolution,
            "frames": self.frames,
            "peak_gb": self.peak_gb,
            "time_s": self.time_s,
            "latency": self.latency,
            "measured": self.measured,
        }


@dataclass(frozen=True)
class _Fits:
    """The fitted cost models, and the total time of a generation at the run's steps."""

    peak_gb: CostModel
    step_s: CostModel
    encode_decode_s: CostModel
    run_steps: int

    def total_s(self, pixels: float, frames: float) -> float:
        return self.encode_decode_s(pixels, frames) + self.run_steps * self.step_s(pixels, frames)


@dataclass(frozen=True)
class _PlainRun:
    """A successful run without memory options, with a peak: what the fits read of its record."""

    point: tuple[float, float]  # pixels, frames: where the cost models are fitted
    steps: int  # the steps it ran
    study_steps: int  # the study's steps it stands for (``config.study.steps``)
    resolution: str | None
    time_s: float
    step_s: float
    encode_decode_s: float
    peak_bytes: float
    peak_key: str  # the peak_memory field of the headline peak
    tiny: bool  # the tiny model's run: shows the method only


def _plain_run(
    record: GenerationRecord, peak_bytes: float, peak_key: str, point: tuple[float, float]
) -> _PlainRun:
    stages = record.stages
    if record.time_s is None or None in (stages.step_s, stages.encode_s, stages.decode_s):
        raise ValueError(f"{record.nodeid}: no stage times to fit (an older or partial record)")
    assert stages.step_s is not None and stages.encode_s is not None  # checked just above
    assert stages.decode_s is not None
    study = record.config.get("study")
    study_steps = study.get("steps") if isinstance(study, Mapping) else None
    return _PlainRun(
        point=point,
        steps=record.count("steps"),
        study_steps=study_steps if isinstance(study_steps, int) else record.count("steps"),
        resolution=_text(record.setting("resolution")),
        time_s=record.time_s,
        step_s=stages.step_s,
        encode_decode_s=stages.encode_s + stages.decode_s,
        peak_bytes=peak_bytes,
        peak_key=peak_key,
        tiny=record.setting("provenance") == "tiny-random-weights",
    )


def _text(value: Scalar) -> str | None:
    return None if value is None else str(value)


def _plain_runs(records: Iterable[GenerationRecord]) -> tuple[list[_PlainRun], str]:
    """The successful runs without memory options, of the most common dtype and with a peak, read
    from their records; at least two different sizes x frames, or nothing can be fitted."""
    plain = [r for r in records if r.outcome == "ok" and not r.memory_options and r.time_s]
    if not plain:
        raise I2VUsageError(
            "no successful plain (no memory options) results to fit; run the resolution sweep first"
        )
    dtypes = sorted(
        {str(r.setting("dtype")) for r in plain},
        key=lambda d: -sum(str(r.setting("dtype")) == d for r in plain),
    )
    peaks = [(r, r.headline_peak()) for r in plain if str(r.setting("dtype")) == dtypes[0]]
    kept = [(r, float(p.bytes), p.key or "none") for r, p in peaks if p.bytes is not None]
    points = [
        (float(r.count("width") * r.count("height")), float(r.count("frames"))) for r, _, _ in kept
    ]
    # Checked before the stages are read: too few sizes is the reason, whatever else is missing.
    if len(set(points)) < 2:
        raise I2VUsageError(
            "the results hold fewer than two different sizes x frames; run the resolution sweep"
        )
    runs = [
        _plain_run(record, peak_bytes, peak_key, point)
        for (record, peak_bytes, peak_key), point in zip(kept, points, strict=True)
    ]
    return runs, dtypes[0]


def _fit(plain: Sequence[_PlainRun], run_steps: int) -> _Fits:
    points = [run.point for run in plain]
    return _Fits(
        peak_gb=fit_cost(points, [run.peak_bytes / 1e9 for run in plain], ("1", "pixels*frames")),
        step_s=fit_cost(
            points,
            [run.step_s for run in plain],
            ("1", "pixels*frames", "pixels^2*frames"),
        ),
        encode_decode_s=fit_cost(
            points, [run.encode_decode_s for run in plain], ("1", "pixels*frames")
        ),
        run_steps=run_steps,
    )


def _cell(
    memory: float,
    fits: _Fits,
    scaling: Scaling,
    margin_gb: float,
    thresholds: Sequence[float],
    measured: Collection[tuple[str | None, float]],
) -> MatrixCell:
    """The largest resolution that fits ``memory - margin`` with at least ``CLIP_FRAMES``
    frames, and the most frames it holds; below that, the largest with fewer frames."""
    order = list(RESOLUTION_PRESETS)
    fitting = []
    for label, size in RESOLUTION_PRESETS.items():
        side = scaling.size(size)
        for frames in FRAMES_OPTIONS:
            peak = fits.peak_gb(float(side * side), frames)
            if peak <= memory - margin_gb:
                at_least_a_clip = frames >= CLIP_FRAMES
                fitting.append(
                    (at_least_a_clip, order.index(label), frames, label, peak, float(side * side))
                )
    if not fitting:
        return MatrixCell(memory, None, None, None, None, None, False)
    _, _, frames, label, peak, pixels = max(fitting)
    t = fits.total_s(pixels, frames)
    return MatrixCell(
        memory,
        label,
        frames,
        round(peak, 2),
        round(t, 3),
        latency_class(t, thresholds),
        (label, frames) in measured,
    )


def recommend(
    records: Iterable[GenerationRecord],
    scaling: Scaling,
    steps: int = 50,
    memory_classes_gb: Sequence[float] = DEFAULT_MEMORY_CLASSES_GB,
    margin_gb: float = DEFAULT_SAFETY_MARGIN_GB,
    thresholds: Sequence[float] = DEFAULT_LATENCY_THRESHOLDS_S,
) -> Recommendation:
    """Fit the peak and the time as cost models of pixels and frames on plain runs (no memory
    options) of one dtype, then, per memory class, the largest resolution that fits
    (class - margin) with at least ``CLIP_FRAMES`` frames (the study's clip length), and the most
    frames it holds; below that, the largest resolution with fewer frames. Each cell carries its
    expected time at ``steps`` steps and whether that exact generation was measured."""
    plain, dtype = _plain_runs(records)
    fits = _fit(plain, scaling.steps(steps))
    total_errors = [
        abs(fits.total_s(*run.point) / run.time_s - 1) * 100
        for run in plain
        if run.steps == fits.run_steps
    ]
    measured = {(run.resolution, run.point[1]) for run in plain if run.study_steps == steps}
    cells = [
        _cell(memory, fits, scaling, margin_gb, thresholds, measured)
        for memory in memory_classes_gb
    ]
    return {
        "memory_figure": "/".join(sorted({run.peak_key for run in plain})),
        "dtype": dtype,
        "steps": steps,
        "run_steps": fits.run_steps,
        "margin_gb": margin_gb,
        "fits": {
            "peak_gb": fits.peak_gb.to_dict(),
            "step_s": fits.step_s.to_dict(),
            "encode_decode_s": fits.encode_decode_s.to_dict(),
            "total_s_max_error_pct": max(total_errors) if total_errors else None,
        },
        "cells": [c.to_dict() for c in cells],
        "note": "fitted on the tiny model (scaled study): shows the method, not what a GPU will do"
        if plain[0].tiny
        else None,
    }


def recommend_per_pipeline(
    records: Iterable[GenerationRecord],
    scaling: Scaling,
    steps: int = 50,
    memory_classes_gb: Sequence[float] = DEFAULT_MEMORY_CLASSES_GB,
    margin_gb: float = DEFAULT_SAFETY_MARGIN_GB,
    thresholds: Sequence[float] = DEFAULT_LATENCY_THRESHOLDS_S,
    unfitted: dict[str, str] | None = None,
) -> dict[str, Recommendation]:
    """One ``recommend`` matrix per pipeline, each fitted on that pipeline's records only (two
    models' costs have nothing in common). A pipeline whose records cannot be fitted (too few
    sizes, no plain runs) is left out, and why goes into ``unfitted`` when one is given.

    TypedDicts of the results document's shape: they go into it as they are."""
    matrices: dict[str, Recommendation] = {}
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


def _fit_line(name: str, fit: CostFit) -> str:
    return (
        f"  {name} = {fit['model']}   "
        f"(max fit error {fit['max_error_pct']:.1f} % over {fit['points']} points)"
    )


def _cell_row(cell: MatrixCellDoc) -> str:
    if cell["resolution"] is None:
        return f"| {cell['memory_gb']:g} GB | nothing fits | - | - | - | - | - |"
    how = "measured" if cell["measured"] else "extrapolated"
    return (
        f"| {cell['memory_gb']:g} GB | {cell['resolution']} | {cell['frames']} | "
        f"{cell['peak_gb']:.2f} | {cell['time_s']:.1f} s | {cell['latency']} | {how} |"
    )


def format_recommendation(matrix: Recommendation) -> str:
    """The matrix as text: one from ``recommend`` or read back from a results document."""
    fits = matrix["fits"]
    lines = [
        f"Recommendation matrix ({matrix['dtype']}, {matrix['steps']} study steps = "
        f"{matrix['run_steps']} run steps, margin {matrix['margin_gb']:g} GB, "
        f"memory figure: {matrix['memory_figure']})",
        _fit_line("peak GB", fits["peak_gb"]),
        _fit_line("step s ", fits["step_s"]),
    ]
    if fits.get("total_s_max_error_pct") is not None:
        lines.append(
            "  total time predicted for the measured configs: "
            f"max error {fits['total_s_max_error_pct']:.1f} %"
        )
    lines.append("")
    lines.append(
        "| GPU memory | resolution | frames | peak (GB) | expected time | latency | cell |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    lines.extend(_cell_row(cell) for cell in matrix["cells"])
    if matrix.get("note"):
        lines.append("")
        lines.append(f"note: {matrix['note']}")
    return "\n".join(lines)
