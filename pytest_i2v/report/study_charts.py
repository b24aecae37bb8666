"""The study's sweep charts as inline SVG: time and peak memory across resolutions and frame
counts, precision at 512p, and what each memory option saves and costs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pytest_i2v.generation.marks import RESOLUTION_PRESETS
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.chart_style import MIN_TEXT_PT, new_chart, peak_gb, to_svg
from pytest_i2v.report.frontier import FrontierPoint
from pytest_i2v.report.rows import MemoryOptionRow


def sweep_records(records: Iterable[GenerationRecord]) -> list[GenerationRecord]:
    """Plain runs at the preset resolutions with the study's clip (one per resolution, first
    wins)."""
    seen: dict[str, GenerationRecord] = {}
    for record in records:
        resolution = str(record.setting("resolution"))
        if (
            record.outcome == "ok"
            and resolution in RESOLUTION_PRESETS
            and not record.memory_options
            and record.count("frames") == 16
            and _study_steps(record) == 50
        ):
            seen.setdefault(resolution, record)
    return [seen[r] for r in RESOLUTION_PRESETS if r in seen]


def _study_steps(record: GenerationRecord) -> int:
    """The steps the study asked for: a profile that scaled the clip keeps them under ``study``."""
    study = record.config.get("study")
    steps = study.get("steps") if isinstance(study, Mapping) else None
    return steps if isinstance(steps, int) else record.count("steps")


def time_vs_resolution(
    records: Sequence[GenerationRecord], thresholds: Sequence[float]
) -> str | None:
    sweep = sweep_records(records)
    if len(sweep) < 2:
        return None
    fig, ax = new_chart(5.2, 3.0)
    labels = [r.config["resolution"] for r in sweep]
    times = [r.time_s for r in sweep]
    ax.plot(labels, times, marker="o", color="#fc8d62", label="median time")
    if (
        max(t or 0.0 for t in times) >= thresholds[0] / 3
    ):  # the patience lines only where they are on the data's scale
        for value, name in zip(thresholds, ("good", "acceptable"), strict=False):
            ax.axhline(value, color="#999", linestyle=":", linewidth=1)
            ax.annotate(
                f"{name} < {value:g} s",
                (0, value),
                textcoords="offset points",
                xytext=(2, 2),
                fontsize=MIN_TEXT_PT,
                color="#666",
            )
    else:
        ax.set_ylim(bottom=0)
        ax.annotate(
            f"latency classes at {thresholds[0]:g} s / {thresholds[1]:g} s are off this scale",
            (0.01, 0.95),
            xycoords="axes fraction",
            fontsize=MIN_TEXT_PT,
            color="#666",
        )
    ax.set_xlabel("resolution (16 frames, study steps)")
    ax.set_ylabel("seconds")
    ax.set_title("Generation time vs resolution")
    return to_svg(fig, "Generation time vs resolution")


def memory_vs_resolution(
    records: Sequence[GenerationRecord], profile_memory_gb: float | None, margin_gb: float
) -> str | None:
    sweep = [r for r in sweep_records(records) if peak_gb(r)[0] is not None]
    if len(sweep) < 2:
        return None
    fig, ax = new_chart(5.2, 3.0)
    labels = [r.config["resolution"] for r in sweep]
    peaks = [peak_gb(r)[0] or 0.0 for r in sweep]
    ax.plot(labels, peaks, marker="s", color="#8da0cb", label=f"peak ({peak_gb(sweep[0])[1]})")
    if profile_memory_gb and max(peaks) >= (profile_memory_gb - margin_gb) / 4:
        ax.axhline(
            profile_memory_gb,
            color="#d62728",
            linewidth=1,
            label=f"profile memory {profile_memory_gb:g} GB",
        )
        ax.axhline(
            profile_memory_gb - margin_gb,
            color="#d62728",
            linestyle="--",
            linewidth=1,
            label=f"minus {margin_gb:g} GB safety margin",
        )
    elif profile_memory_gb:
        ax.set_ylim(bottom=0, top=max(peaks) * 1.3)
        ax.annotate(
            f"profile memory {profile_memory_gb:g} GB (- {margin_gb:g} GB margin) "
            "is off this scale",
            (0.01, 0.95),
            xycoords="axes fraction",
            fontsize=MIN_TEXT_PT,
            color="#d62728",
        )
    ax.set_xlabel("resolution (16 frames)")
    ax.set_ylabel("GB")
    ax.set_title("Peak memory vs resolution")
    ax.legend(fontsize=MIN_TEXT_PT, loc="best")
    return to_svg(fig, "Peak memory vs resolution")


def frames_tradeoff(records: Sequence[GenerationRecord]) -> str | None:
    """Time and peak memory against the number of frames at one resolution (the frames sweep)."""
    groups: dict[tuple[int, int], list[GenerationRecord]] = {}
    for record in records:
        if record.outcome == "ok" and not record.memory_options:
            groups.setdefault((record.count("width"), record.count("steps")), []).append(record)
    best = max(groups.values(), key=lambda g: len({r.count("frames") for r in g}), default=[])
    by_frames: dict[int, GenerationRecord] = {r.count("frames"): r for r in best}
    if len(by_frames) < 3:
        return None
    frames = sorted(by_frames)
    fig, ax = new_chart(5.2, 3.0)
    ax.plot(
        frames,
        [by_frames[f].time_s for f in frames],
        marker="o",
        color="#fc8d62",
        label="median time (s)",
    )
    ax.set_xlabel("frames")
    ax.set_ylabel("seconds")
    peaks = [peak_gb(by_frames[f])[0] or 0.0 for f in frames]
    if all(peak_gb(by_frames[f])[0] is not None for f in frames):
        twin = ax.twinx()
        twin.plot(frames, peaks, marker="s", color="#8da0cb", label="peak (GB)")
        twin.set_ylabel("GB")
    first = by_frames[frames[0]]
    label = first.setting("resolution") or f"{first.count('width')}px"
    ax.set_title(f"Frames trade-off at {label}")
    return to_svg(fig, "Frames trade-off")


def precision_chart(records: Sequence[GenerationRecord]) -> str | None:
    by_dtype: dict[str, GenerationRecord] = {}
    for record in records:
        if (
            record.outcome == "ok"
            and record.setting("resolution") == "512p"
            and not record.memory_options
        ):
            by_dtype.setdefault(str(record.setting("dtype")), record)
    if len(by_dtype) < 2:
        return None
    dtypes = [d for d in ("fp32", "bf16", "fp16") if d in by_dtype]
    fig, ax = new_chart(4.5, 2.6)
    ax.bar(
        dtypes,
        [by_dtype[d].time_s for d in dtypes],
        color=["#8da0cb", "#66c2a5", "#fc8d62"][: len(dtypes)],
    )
    ax.set_ylabel("median seconds")
    ax.set_title("Precision at 512p")
    return to_svg(fig, "Precision at 512p")


def memory_options_chart(rows: Sequence[MemoryOptionRow]) -> str | None:
    """Memory saved vs time added, each option against the plain run."""
    points = [
        (row["option"], row["time_added_pct"], row["memory_saved_pct"])
        for row in rows
        if row["memory_saved_pct"] is not None and row["time_added_pct"] is not None
    ]
    if not points:
        return None
    fig, ax = new_chart(5.2, 3.2)
    for option, time_added_pct, memory_saved_pct in points:
        ax.scatter(time_added_pct, memory_saved_pct, color="#1f77b4")
        ax.annotate(
            option,
            (time_added_pct, memory_saved_pct),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=MIN_TEXT_PT,
        )
    ax.axhline(0, color="#999", linewidth=0.8)
    ax.axvline(0, color="#999", linewidth=0.8)
    ax.set_xlabel("time added vs plain run (%)")
    ax.set_ylabel("memory saved vs plain run (%)")
    ax.set_title("Memory options: memory saved vs time added")
    return to_svg(fig, "Memory options")


# Where an identical output is drawn: above any PSNR a changed output reaches (8-bit frames: one
# level in one value is about 89 dB at 64 px).
IDENTICAL_PSNR_DB = 100.0


def frontier_chart(points: Sequence[FrontierPoint]) -> str | None:
    """Speed-up against PSNR, one point per variant (cache) and pipeline, each against its native
    sibling; the lossy bar dashed. Top right is the frontier: faster and still faithful."""
    if not points:
        return None
    fig, ax = new_chart(5.6, 3.4)
    pipelines = sorted({p.pipeline for p in points})
    colours = dict(
        zip(pipelines, ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"), strict=False)
    )
    for point in points:
        psnr = IDENTICAL_PSNR_DB if point.psnr_db is None else point.psnr_db
        ax.scatter(
            point.speedup,
            psnr,
            color=colours.get(point.pipeline, "#555"),
            marker="o" if point.held else "x",
            label=point.pipeline,
        )
        ax.annotate(
            point.variant,
            (point.speedup, psnr),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=MIN_TEXT_PT,
        )
    for bar in sorted({p.bar_psnr_db for p in points}):
        ax.axhline(bar, color="#c62828", linewidth=0.8, linestyle="--")
    ax.axvline(1.0, color="#999", linewidth=0.8)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    ax.legend(unique.values(), unique.keys(), fontsize=MIN_TEXT_PT, loc="lower left")
    ax.set_xlabel("speed-up over the native sibling (x)")
    ax.set_ylabel(f"PSNR, worst frame (dB; identical at {IDENTICAL_PSNR_DB:g})")
    ax.set_title("Speed against fidelity (x: breaks its bar)")
    return to_svg(fig, "Speed against fidelity")
