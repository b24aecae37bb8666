"""Cost models of pixels and frames, fitted with non-negative coefficients: how the
recommendation matrix predicts a peak or a time it did not measure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pytest_i2v.report.results import CostFit

# scipy is imported inside fit_cost: only the recommendation fits need it, and it is slow to load.

# Work terms: a fixed part, the convolutions and linear layers (pixels * frames), and spatial
# self-attention, quadratic in the tokens of each frame (pixels^2 * frames).
_TERMS: dict[str, Callable[[float, float], float]] = {
    "1": lambda pixels, frames: 1.0,
    "pixels*frames": lambda pixels, frames: pixels * frames,
    "pixels^2*frames": lambda pixels, frames: pixels * pixels * frames,
}


@dataclass(frozen=True)
class CostModel:
    """y = sum(coef_i * term_i(pixels, frames)) with non-negative coefficients (scipy's NNLS):
    a cost cannot shrink as the work grows. ``error_pct`` = worst relative error on the fitted
    points."""

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
        )

    def describe(self) -> str:
        return " + ".join(
            f"{c:.3g}*{t}" if t != "1" else f"{c:.3g}"
            for t, c in zip(self.terms, self.coefficients, strict=True)
        )

    def to_dict(self) -> CostFit:
        return {
            "model": self.describe(),
            "terms": list(self.terms),
            "coefficients": list(self.coefficients),
            "max_error_pct": self.error_pct,
            "points": self.points,
        }


def fit_cost(
    points: Sequence[tuple[float, float]], ys: Sequence[float], terms: Sequence[str]
) -> CostModel:
    from scipy.optimize import nnls

    if len({p for p in points}) < 2:
        raise ValueError("a fit needs at least two different sizes x frames")
    columns = np.array(
        [[float(_TERMS[t](p, f)) for t in terms] for p, f in points], dtype=np.float64
    )
    scale = columns.max(axis=0)
    scale[scale == 0] = 1.0
    coefficients, _ = nnls(columns / scale, np.asarray(ys, float))
    coefficients = coefficients / scale
    fitted = columns @ coefficients
    error = float(np.max(np.abs(fitted / np.asarray(ys, float) - 1.0)) * 100)
    return CostModel(tuple(terms), tuple(float(c) for c in coefficients), error, len(points))
