"""Load the pipeline a key names: hub id / local directory (the real ``from_pretrained`` path),
``random`` (full-size, random weights) or ``tiny`` (built, saved, loaded back through
``from_pretrained``); then check what the load applied, whoever loaded it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from pytest_i2v.errors import ModelSourceError
from pytest_i2v.generation.memory_options import OFFLOAD_MEMORY_OPTIONS
from pytest_i2v.pipelines.applied_options import (
    AppliedOption,
    OptionNotApplied,
    refusal,
    verify_load,
)
from pytest_i2v.pipelines.base import adapter_for
from pytest_i2v.pipelines.pipeline_class import import_pipeline_class
from pytest_i2v.pipelines.registry import DEFAULT_PIPELINE, PIPELINES

# diffusers is imported inside load_from_pretrained: the session imports this module for its key
# and record types, which need no diffusers.

TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
# What the numbers mean, recorded with every result.
PROVENANCE = {"tiny": "tiny-random-weights", "random": "full-size-random-weights"}
# save_tiny_model's file in the directory it writes: loaded from there, it is still tiny and random.
TINY_MARKER = "pytest-i2v-tiny-model.txt"


@dataclass(frozen=True)
class PipelineKey:
    """One loaded pipeline is shared by every test with the same key."""

    source: str
    dtype: str
    device: str
    offload: str | None = None
    pipeline: str = DEFAULT_PIPELINE
    # layerwise_fp8, torch_compile: applied at load, not undoable
    load_options: tuple[str, ...] = ()
    pipeline_class: str | None = None  # a user's own "module:Class" (None: the diffusers class)

    def describe(self) -> str:
        options = "".join(f", {o}" for o in (self.offload, *self.load_options) if o)
        own = f" as {self.pipeline_class}" if self.pipeline_class else ""
        return f"{self.pipeline}: {self.source}{own} ({self.dtype}, {self.device}{options})"


HOOK_LOADER = "the pytest_i2v_load_pipeline hook"
PLUGIN_LOADER = "pytest-i2v's loader"


@dataclass
class LoadedPipeline:
    """What a load returns (the ``pytest_i2v_load_pipeline`` hook builds one too)."""

    key: PipelineKey
    pipe: Any
    load_s: float
    provenance: str
    loaded_by: str = HOOK_LOADER
    applied: tuple[AppliedOption, ...] = ()  # the key's options as read off the modules


# ``pytest_i2v_wrap_pipeline``: the loaded pipeline, wrapped or replaced (before any option).
Wrap = Callable[[Any, PipelineKey], Any]


def _has_fp16_variant(source: str) -> bool:
    path = Path(source)
    if path.is_dir():
        return any(".fp16." in p.name for p in path.glob("*/*"))
    return True  # the hub checkpoint ships an fp16 variant; a missing one falls back below


def load_from_pretrained(
    source: str,
    dtype: str,
    device: str,
    allow_pickle: bool = False,
    pipeline: str = DEFAULT_PIPELINE,
    own_class: str | None = None,
) -> Any:
    """The real loading path: ``<PipelineClass>.from_pretrained`` (safetensors, fp16 variant where
    present); ``own_class``: a user's ``module:Class`` instead of the diffusers class."""
    from diffusers.pipelines import pipeline_utils

    pipeline_class = (
        import_pipeline_class(own_class) if own_class else adapter_for(pipeline).pipeline_class()
    )
    info = PIPELINES[pipeline]

    # diffusers >= 0.41 renamed torch_dtype to dtype (the old name warns); older ones know only
    # torch_dtype.
    dtype_kwarg = "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"
    # safetensors only; with the opt-in, safetensors where present and pickle otherwise (None)
    kwargs: dict[str, torch.dtype | bool | None] = {
        dtype_kwarg: TORCH_DTYPES[dtype],
        "use_safetensors": None if allow_pickle else True,
    }
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or Path(source).is_dir()
    if offline:
        kwargs["local_files_only"] = True
    variant = "fp16" if dtype == "fp16" and _has_fp16_variant(source) else None
    try:
        try:
            pipe = pipeline_class.from_pretrained(source, variant=variant, **kwargs)
        except (OSError, ValueError):
            if variant is None:
                raise
            pipe = pipeline_class.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        where = (
            f"the local directory {source}"
            if Path(source).is_dir()
            else (
                f"the hub id {source} in the local cache "
                f"(HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')})"
                + (" with HF_HUB_OFFLINE set" if offline else "")
            )
        )
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        download = source if not Path(source).is_dir() else info.hub_id
        raise ModelSourceError(
            f"could not load {info.pipeline_class} ({info.name}) from {where}: {first_line}. "
            f"Download it once (huggingface-cli download {download} --local-dir DIR) "
            "and pass --i2v-model DIR, or use --i2v-model random for the full-size architecture "
            "with random weights"
        ) from None
    return pipe


def build_device_for(key: PipelineKey) -> str:
    """Where the weights are first built: offload configs exist for cards that cannot hold the
    model, so an offload key builds on the CPU and lets the offload hooks move it; otherwise
    the weights are built straight on the device (no host copy of 2.5 B parameters)."""
    return "cpu" if key.offload in OFFLOAD_MEMORY_OPTIONS else key.device


def load_pipeline(
    key: PipelineKey, work_dir: Path, allow_pickle: bool = False, wrap: Wrap | None = None
) -> LoadedPipeline:
    """Load through the key's class, let ``wrap`` wrap it, then apply the options and placement."""
    start = time.perf_counter()
    adapter = adapter_for(key.pipeline)
    own = key.pipeline_class
    if key.source == "tiny":
        pipe = load_from_pretrained(
            str(adapter.save_tiny(work_dir)),
            key.dtype,
            key.device,
            pipeline=key.pipeline,
            own_class=own,
        )
        adapter.tune_tiny(pipe)
        provenance = PROVENANCE["tiny"]
    elif key.source == "random":
        pipe = adapter.build_fullsize(build_device_for(key), TORCH_DTYPES[key.dtype], work_dir)
        if own:  # the same random modules, in the user's class
            pipe = import_pipeline_class(own)(**pipe.components)
        provenance = PROVENANCE["random"]
    else:
        pipe = load_from_pretrained(
            key.source,
            key.dtype,
            key.device,
            allow_pickle=allow_pickle,
            pipeline=key.pipeline,
            own_class=own,
        )
        provenance = "real-weights"
        if (Path(key.source) / TINY_MARKER).is_file():
            adapter.tune_tiny(pipe)
            provenance = PROVENANCE["tiny"]
    if wrap is not None:
        pipe = wrap(pipe, key)
    adapter.after_load(pipe)
    pipe.set_progress_bar_config(disable=True)
    adapter.apply_load_options(pipe, key.load_options, TORCH_DTYPES[key.dtype])
    adapter.place(pipe, key.offload, key.device)
    # Only a CUDA build can synchronise (CPU-only torch raises even for a "cuda:N" key).
    if key.device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize(key.device)
    return LoadedPipeline(
        key=key,
        pipe=pipe,
        load_s=time.perf_counter() - start,
        provenance=provenance,
        loaded_by=PLUGIN_LOADER,
    )


def checked_load(loaded: LoadedPipeline) -> LoadedPipeline:
    """Every load, whoever loaded it: the progress bar off (harmless to repeat), then each option
    the key asks for read off the modules; one that is not there raises ``OptionNotApplied``."""
    key = loaded.key
    if callable(getattr(loaded.pipe, "set_progress_bar_config", None)):
        loaded.pipe.set_progress_bar_config(disable=True)
    checks = verify_load(
        loaded.pipe, adapter_for(key.pipeline), key.load_options, key.offload, key.device
    )
    problem = refusal(checks, loaded.loaded_by)
    if problem is not None:
        raise OptionNotApplied(problem)
    return replace(loaded, applied=checks)
