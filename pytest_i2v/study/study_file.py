"""The study file (``suites/study.yaml``): the article's generations, sweeps, budgets and memory
options, as the suites parametrise their tests from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_i2v.errors import I2VUsageError


@dataclass(frozen=True)
class Study:
    defaults: dict[str, Any]
    resolution_sweep: list[str]
    vram_budgets_gb: dict[str, float]
    tradeoffs: dict[str, Any]
    precision: dict[str, Any]
    memory_options: dict[str, Any]
    dynamic_resolution: dict[str, Any]
    # The newer pipelines at their native settings ({case: mark arguments + vram_gb}) and their
    # memory-options suite; optional, so a study file from before pipelines still loads.
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipeline_memory_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Study:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise I2VUsageError(
                f"study file {path} cannot be read ({type(exc).__name__}); fix it or restore it"
            ) from None
        try:
            return cls(
                defaults=dict(data["defaults"]),
                resolution_sweep=list(data["resolution_sweep"]["resolutions"]),
                vram_budgets_gb={
                    str(k): float(v) for k, v in (data.get("vram_budgets_gb") or {}).items()
                },
                tradeoffs=dict(data["tradeoffs"]),
                precision=dict(data["precision"]),
                memory_options=dict(data["memory_options"]),
                dynamic_resolution=dict(data["dynamic_resolution"]),
                pipelines={str(k): dict(v) for k, v in (data.get("pipelines") or {}).items()},
                pipeline_memory_options=dict(data.get("pipeline_memory_options") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise I2VUsageError(f"study file {path}: missing or malformed section {exc}") from None
