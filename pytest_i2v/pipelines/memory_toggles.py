"""The per-test memory options that need no reload (VAE slicing and tiling, forward chunking,
attention slicing and processors, an attention backend): applied to a cached pipeline before a
test and undone after it, through the pipeline's adapter."""

from __future__ import annotations

from typing import Any

from pytest_i2v.pipelines.base import adapter_for
from pytest_i2v.pipelines.registry import DEFAULT_PIPELINE


def apply_toggles(
    pipe: Any,
    toggles: tuple[str, ...],
    pipeline: str = DEFAULT_PIPELINE,
    attention: str | None = None,
) -> None:
    """Per-test memory options that do not need a reload; ``reset_toggles`` undoes them."""
    adapter_for(pipeline).apply_toggles(pipe, toggles, attention)


def reset_toggles(pipe: Any, pipeline: str = DEFAULT_PIPELINE) -> None:
    adapter_for(pipeline).reset_toggles(pipe)
