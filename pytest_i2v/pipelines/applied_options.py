"""What a loaded pipeline really has of the options its key asks for, read off the modules.

The plugin's loader applies the load-time options (layerwise fp8, torch.compile), the placement
(an offload or the device) and the progress-bar switch-off; a conftest's own loader may not. So
every load is checked the same way, after it returns: fp8 by the denoisers' weight dtypes, compile
by the compiled modules, an offload by its hooks, the placement by where the weights are. The
record lists each check with its evidence; an option asked for and not found fails the test at
setup with one line (``OptionNotApplied``), never a measurement labelled with what did not run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from pytest_i2v.errors import ModelSourceError
from pytest_i2v.pipelines.base import FP8_STORAGE, PipelineAdapter

# diffusers' group offloading is imported where it is checked: a diffusers without it cannot have
# applied it.

# diffusers' group-offload hooks are looked up inside _group_offloaded: a diffusers without them
# cannot have applied that offload, and reading the others needs no diffusers at all.

PROGRESS_BAR_OFF = "progress_bar_off"
PLACEMENT = "placement"


class OptionNotApplied(ModelSourceError):
    """A load-time option or placement the loaded pipeline does not have (fails at setup)."""


@dataclass(frozen=True)
class AppliedOption:
    """One option the key asks for, and what the loaded modules show of it."""

    option: str  # layerwise_fp8, torch_compile, an offload, placement or progress_bar_off
    verified: bool
    evidence: str  # what was read, e.g. "transformer weights float32, float8_e4m3fn"

    def to_dict(self) -> dict[str, str | bool]:
        return {"option": self.option, "verified": self.verified, "evidence": self.evidence}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _named_denoisers(pipe: Any, adapter: PipelineAdapter) -> list[tuple[str, Any]]:
    found = adapter.denoisers(pipe)
    names = {id(getattr(pipe, a, None)): a for a in ("transformer", "transformer_2", "unet")}
    return [(names.get(id(model), type(model).__name__), model) for model in found]


def _check_fp8(denoisers: list[tuple[str, Any]]) -> AppliedOption:
    parts, verified = [], bool(denoisers)
    for name, model in denoisers:
        dtypes = {p.dtype for p in model.parameters()}
        verified = verified and FP8_STORAGE in dtypes
        parts.append(f"{name} weights {', '.join(sorted(_dtype_name(d) for d in dtypes))}")
    return AppliedOption("layerwise_fp8", verified, "; ".join(parts) or "no denoiser found")


def _compiled_modules(model: Any) -> int:
    return sum(1 for m in model.modules() if getattr(m, "_compiled_call_impl", None) is not None)


def _check_compile(denoisers: list[tuple[str, Any]]) -> AppliedOption:
    counts = [(name, _compiled_modules(model)) for name, model in denoisers]
    verified = bool(counts) and all(count > 0 for _, count in counts)
    evidence = "; ".join(f"{name}: {count} compiled modules" for name, count in counts)
    return AppliedOption("torch_compile", verified, evidence or "no denoiser found")


def _has_accelerate_hook(module: Any) -> bool:
    return hasattr(module, "_hf_hook")


def _group_offloaded(module: Any) -> bool:
    try:
        from diffusers.hooks.group_offloading import _is_group_offload_enabled
    except ImportError:  # a diffusers without group offload cannot have applied it
        return False
    return bool(_is_group_offload_enabled(module))


def _check_offload(offload: str, denoisers: list[tuple[str, Any]]) -> AppliedOption:
    if offload == "model_cpu_offload":
        hooked = [name for name, model in denoisers if _has_accelerate_hook(model)]
        what = "accelerate offload hook"
    elif offload == "sequential_cpu_offload":
        hooked = [
            name
            for name, model in denoisers
            if any(_has_accelerate_hook(m) for m in model.modules())
        ]
        what = "accelerate hooks on its layers"
    else:
        hooked = [name for name, model in denoisers if _group_offloaded(model)]
        what = "diffusers group-offload hooks"
    names = [name for name, _ in denoisers]
    verified = bool(names) and len(hooked) == len(names)
    missing = [n for n in names if n not in hooked]
    evidence = (
        f"{', '.join(hooked)}: {what}"
        if verified
        else f"no {what} on {', '.join(missing) or 'any denoiser'}"
    )
    return AppliedOption(offload, verified, evidence)


def _check_placement(device: str, denoisers: list[tuple[str, Any]]) -> AppliedOption:
    want = torch.device(device).type
    parts, verified = [], bool(denoisers)
    for name, model in denoisers:
        types = sorted({p.device.type for p in model.parameters()})
        verified = verified and types == [want]
        parts.append(f"{name} on {', '.join(types) or 'no weights'}")
    return AppliedOption(PLACEMENT, verified, f"{'; '.join(parts)} (asked: {want})")


def _check_progress_bar(pipe: Any) -> AppliedOption:
    config = getattr(pipe, "_progress_bar_config", None) or {}
    verified = bool(config.get("disable"))
    return AppliedOption(PROGRESS_BAR_OFF, verified, f"progress bar config {config}")


def verify_load(
    pipe: Any,
    adapter: PipelineAdapter,
    load_options: Iterable[str],
    offload: str | None,
    device: str,
) -> tuple[AppliedOption, ...]:
    """Each option the key asks for, checked on the loaded modules (placement: the device, or the
    offload's hooks; never both, an offload moves weights between the two)."""
    denoisers = _named_denoisers(pipe, adapter)
    checks = []
    options = tuple(load_options)
    if "layerwise_fp8" in options:
        checks.append(_check_fp8(denoisers))
    if "torch_compile" in options:
        checks.append(_check_compile(denoisers))
    if offload is not None:
        checks.append(_check_offload(offload, denoisers))
    else:
        checks.append(_check_placement(device, denoisers))
    checks.append(_check_progress_bar(pipe))
    return tuple(checks)


def refusal(checks: Iterable[AppliedOption], loaded_by: str) -> str | None:
    """One line naming the first option the load did not apply and the fix; None: all hold."""
    missing = [c for c in checks if not c.verified]
    if not missing:
        return None
    first = missing[0]
    others = (
        f" (also not applied: {', '.join(c.option for c in missing[1:])})" if missing[1:] else ""
    )
    return (
        f"{first.option} was asked for but not applied by {loaded_by} ({first.evidence}){others}; "
        f"let the plugin load and apply it: set ini i2v_pipeline_class = NAME=module:Class for "
        f"your class, or wrap the loaded pipeline in pytest_i2v_wrap_pipeline(pipe, key) "
        f"instead of replacing the loader"
    )
