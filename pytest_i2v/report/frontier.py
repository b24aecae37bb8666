"""Speed against fidelity: each variant judged against its native sibling (the ``i2v_fidelity``
mark's ``against``), as one point of a frontier — its speed-up over the sibling and its output's
figures — and the fastest variant per pipeline that keeps its bar (``recommend_caches``).

Computed from the records alone (the times and the judged comparisons), so the report and the
``recommend`` command read the same points."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pytest_i2v.record.record import GenerationRecord

NATIVE = "native"  # the sibling's label: no cache


@dataclass(frozen=True)
class FrontierPoint:
    """One variant against its sibling: how much faster, and how close its output stayed."""

    pipeline: str
    variant: str  # the cache's name, else the test's name
    nodeid: str
    sibling: str  # the sibling's node id
    speedup: float  # the sibling's median time / the variant's
    psnr_db: float | None  # the worst frame's PSNR; None: identical to the sibling's
    ssim: float | None
    held: bool  # within its bar (the lossy one for a cache)
    bar_psnr_db: float

    def line(self) -> str:
        quality = "identical" if self.psnr_db is None else f"PSNR {self.psnr_db:.1f} dB"
        ssim = f", SSIM {self.ssim:.3f}" if self.ssim is not None else ""
        keeps = "keeps" if self.held else "breaks"
        return (
            f"{self.variant}: {self.speedup:.2f}x, {quality}{ssim} "
            f"({keeps} the {self.bar_psnr_db:g} dB bar)"
        )


def frontier(records: Iterable[GenerationRecord]) -> list[FrontierPoint]:
    """A point for each measured variant whose output was judged against a sibling of the same
    run that was measured too, in the records' order."""
    records = list(records)
    by_nodeid = {r.nodeid: r for r in records}
    points = []
    for record in records:
        comparison, request = record.fidelity, record.fidelity_request
        sibling_id = request.sibling_nodeid(record.nodeid) if request else None
        sibling = by_nodeid.get(sibling_id) if sibling_id else None
        if comparison is None or sibling is None or sibling_id is None:
            continue
        if not record.time_s or not sibling.time_s:
            continue
        cache = record.setting("cache")
        figures = comparison.figures
        points.append(
            FrontierPoint(
                pipeline=str(record.setting("pipeline") or "?"),
                variant=str(cache) if cache else record.nodeid.rsplit("::", 1)[-1],
                nodeid=record.nodeid,
                sibling=sibling_id,
                speedup=sibling.time_s / record.time_s,
                psnr_db=None if figures.identical else figures.min_psnr_db,
                ssim=None if figures.identical else figures.mean_ssim,
                held=comparison.verdict == "held",
                bar_psnr_db=comparison.bar.min_psnr_db,
            )
        )
    return points


def recommend_caches(points: Sequence[FrontierPoint]) -> dict[str, FrontierPoint | None]:
    """Per pipeline, the fastest variant that keeps its bar and is faster than its sibling; None
    where none does (the native run is the recommendation)."""
    best: dict[str, FrontierPoint | None] = {}
    for point in points:
        best.setdefault(point.pipeline, None)
        current = best[point.pipeline]
        if (
            point.held
            and point.speedup > 1.0
            and (current is None or point.speedup > current.speedup)
        ):
            best[point.pipeline] = point
    return best


def format_frontier(points: Sequence[FrontierPoint]) -> str:
    """The frontier as text: each pipeline's variants, then the recommendation."""
    lines = []
    for pipeline, best in recommend_caches(points).items():
        lines.append(f"{pipeline}: speed against fidelity, each against its {NATIVE} sibling")
        lines += [f"  {p.line()}" for p in points if p.pipeline == pipeline]
        lines.append(
            f"  recommended: {best.variant} ({best.speedup:.2f}x, within its bar)"
            if best
            else f"  recommended: {NATIVE} (no variant is faster within its bar)"
        )
    return "\n".join(lines)
