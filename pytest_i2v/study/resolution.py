"""The study's dynamic-resolution rule: which preset an input image gets, stepped down by memory."""

from __future__ import annotations

from collections.abc import Mapping

from pytest_i2v.generation.marks import RESOLUTION_PRESETS

DEFAULT_SAFETY_MARGIN_GB = 2.0  # the study: keep 2-3 GB free


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
