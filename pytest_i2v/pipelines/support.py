"""Whether a generation can run on a pipeline here: the installed diffusers, the memory options
the pipeline supports and its attention backends (a skip reason that names the pipeline)."""

from __future__ import annotations

from pytest_i2v.pipelines.registry import PipelineInfo


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def unsupported_reason(
    info: PipelineInfo,
    memory: tuple[str, ...],
    attention: str | None,
    diffusers_version: str | None,
    has_class: bool,
) -> str | None:
    """Why a generation cannot run on this pipeline here (a skip reason that names the pipeline), or
    None."""
    if (
        diffusers_version is None
        or not has_class
        or _version_tuple(diffusers_version) < _version_tuple(info.min_diffusers)
    ):
        installed = (
            f"installed: {diffusers_version}" if diffusers_version else "diffusers is not installed"
        )
        return (
            f"pipeline {info.name} needs diffusers >= {info.min_diffusers} with "
            f"{info.pipeline_class} ({installed}); "
            f"pip install -U diffusers"
        )
    missing = [m for m in memory if m not in info.memory_options]
    if missing:
        return f"memory option {', '.join(missing)} is not supported by pipeline {info.name}"
    if attention is not None and not info.attention_backends:
        return (
            f"attention={attention!r}: pipeline {info.name}'s denoiser has no "
            f"set_attention_backend (use memory sdpa/eager_attention)"
        )
    return None
