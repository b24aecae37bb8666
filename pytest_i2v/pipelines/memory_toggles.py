"""The per-test memory options that need no reload (VAE slicing and tiling, forward chunking,
attention slicing and processors, an attention backend, a diffusers cache): applied to a cached
pipeline before a test and undone after it, through the pipeline's adapter."""

from __future__ import annotations

from typing import Any

from pytest_i2v.errors import OptionUnavailable
from pytest_i2v.pipelines.base import adapter_for
from pytest_i2v.pipelines.caches import disable_caches, enable_cache
from pytest_i2v.pipelines.registry import DEFAULT_PIPELINE


def apply_toggles(
    pipe: Any,
    toggles: tuple[str, ...],
    pipeline: str = DEFAULT_PIPELINE,
    attention: str | None = None,
    cache: str | None = None,
) -> None:
    """Per-test memory options and the cache, which need no reload; ``reset_toggles`` undoes
    them."""
    adapter = adapter_for(pipeline)
    adapter.apply_toggles(pipe, toggles, attention)
    if cache is None:
        return
    try:
        enable_cache(adapter, pipe, cache)
    except (ValueError, IndexError, RuntimeError) as exc:
        # what a model of this pipeline cannot take (the tiny LTX-Video's one block leaves
        # first-block no tail): the test is skipped with the reason, the pipeline left clean
        disable_caches(adapter, pipe)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OptionUnavailable(
            f"cache={cache!r} does not apply to this {pipeline} model: "
            f"{type(exc).__name__}: {reason}"
        ) from None


def reset_toggles(pipe: Any, pipeline: str = DEFAULT_PIPELINE) -> None:
    adapter = adapter_for(pipeline)
    disable_caches(adapter, pipe)
    adapter.reset_toggles(pipe)
