"""A mark's ``cache=``: diffusers' cache config for the name (``pipelines.cache_names``), enabled on
each denoiser before the test's generations and disabled after them.

Every config keeps its documented defaults; the only arguments given are the ones the config
cannot do without (the pipeline's current timestep for the timestep-gated caches, the layout of a
pipeline's latents for FasterCache's frequency split)."""

from __future__ import annotations

from typing import Any

import torch

from pytest_i2v.pipelines.base import PipelineAdapter

# diffusers.hooks is imported inside cache_config: only a test that asks for a cache needs it.

# FasterCache splits latent frames to separate low and high frequencies; its default is BCFHW
# (Wan, HunyuanVideo). CogVideoX's latents are BFCHW, as diffusers' own FasterCache example says.
_TENSOR_FORMAT = {"cogvideox-i2v": "BFCHW"}


def cache_config(name: str, pipe: Any, pipeline: str) -> Any:
    """diffusers' config for the cache ``name`` on ``pipe`` (a fresh one per denoiser: the configs
    hold no state, but PAB fills in a default skip range on the one it is handed)."""
    from diffusers.hooks.faster_cache import FasterCacheConfig
    from diffusers.hooks.first_block_cache import FirstBlockCacheConfig
    from diffusers.hooks.pyramid_attention_broadcast import PyramidAttentionBroadcastConfig
    from diffusers.hooks.taylorseer_cache import TaylorSeerCacheConfig

    def timestep() -> Any:
        return pipe.current_timestep

    if name == "first-block":
        return FirstBlockCacheConfig()
    if name == "pyramid-attention-broadcast":
        # Left unset, diffusers warns and skips every other spatial attention (range 2): the same
        # default given here without the warning.
        return PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2, current_timestep_callback=timestep
        )
    if name == "faster-cache":
        return FasterCacheConfig(
            current_timestep_callback=timestep,
            tensor_format=_TENSOR_FORMAT.get(pipeline, "BCFHW"),
        )
    if name == "taylorseer":
        return TaylorSeerCacheConfig()
    if name == "taylorseer-lite":
        return TaylorSeerCacheConfig(use_lite_mode=True)
    raise ValueError(f"cache {name!r} has no config here")  # marks checked it at collection


def _block_count(model: Any) -> int:
    """The transformer blocks first-block splits into a head and the rest (diffusers' names)."""
    from diffusers.hooks._common import _ALL_TRANSFORMER_BLOCK_IDENTIFIERS

    return sum(
        len(child)
        for name, child in model.named_children()
        if name in _ALL_TRANSFORMER_BLOCK_IDENTIFIERS and isinstance(child, torch.nn.ModuleList)
    )


def enable_cache(adapter: PipelineAdapter, pipe: Any, name: str) -> None:
    """The cache on every denoiser (Wan 2.2: both experts), each with its own config."""
    for model in adapter.denoisers(pipe):
        if name == "first-block" and (blocks := _block_count(model)) < 2:
            # diffusers would fail on an empty list: say what the model lacks instead
            raise ValueError(f"first-block needs 2 transformer blocks or more; it has {blocks}")
        model.enable_cache(cache_config(name, pipe, adapter.name))


def disable_caches(adapter: PipelineAdapter, pipe: Any) -> None:
    """Whatever cache a denoiser has on, off (a model without diffusers' cache support has none)."""
    for model in adapter.denoisers(pipe):
        if getattr(model, "is_cache_enabled", False):
            model.disable_cache()
