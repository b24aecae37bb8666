"""The study file (``suites/study.yaml``): the article's generations, sweeps, budgets and memory
options, as the suites parametrise their tests from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, cast

import yaml

from pytest_i2v.errors import I2VUsageError


class MarkArguments(TypedDict, total=False):
    """Arguments of an ``i2v`` mark, as the study file spells them (see ``generation.marks.i2v``);
    the mark checks them when the suites apply it."""

    resolution: str
    width: int
    height: int
    frames: int
    steps: int
    guidance: float
    fps: int
    dtype: str
    memory: list[str] | str
    prompt: str
    seed: int
    fast: bool
    pipeline: str
    attention: str


class PipelineCase(MarkArguments, total=False):
    """A pipeline at its native settings: its mark arguments and its declared VRAM budget."""

    vram_gb: float


class TradeoffsSection(TypedDict):
    resolution: str
    combos: list[MarkArguments]  # frames and steps, over the defaults
    frames_sweep: list[int]


class PrecisionSection(TypedDict):
    resolution: str
    dtypes: list[str]


class MemoryOptionsSection(TypedDict):
    resolution: str
    options: list[str]  # "none" is the plain run


class InputImage(TypedDict):
    name: str
    width: int
    height: int


class DynamicResolutionSection(TypedDict):
    inputs: list[InputImage]


class PipelineMemoryOptionsSection(TypedDict, total=False):
    pipelines: list[str]
    options: list[str]


class SpeedFidelitySection(TypedDict, total=False):
    pipelines: list[str]  # each runs natively, then with each cache it supports (the registry's)


@dataclass(frozen=True)
class Study:
    # The sections hold what the file says: the suites read them, and the marks they build check
    # every value, so the types below describe the file rather than vouch for it.
    defaults: MarkArguments
    resolution_sweep: list[str]
    vram_budgets_gb: dict[str, float]
    tradeoffs: TradeoffsSection
    precision: PrecisionSection
    memory_options: MemoryOptionsSection
    dynamic_resolution: DynamicResolutionSection
    # The newer pipelines at their native settings ({case: mark arguments + vram_gb}) and their
    # memory-options suite; optional, so a study file from before pipelines still loads.
    pipelines: dict[str, PipelineCase] = field(default_factory=dict)
    pipeline_memory_options: PipelineMemoryOptionsSection = field(
        default_factory=PipelineMemoryOptionsSection
    )
    speed_fidelity: SpeedFidelitySection = field(default_factory=SpeedFidelitySection)

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
                defaults=cast(MarkArguments, dict(data["defaults"])),
                resolution_sweep=list(data["resolution_sweep"]["resolutions"]),
                vram_budgets_gb={
                    str(k): float(v) for k, v in (data.get("vram_budgets_gb") or {}).items()
                },
                tradeoffs=cast(TradeoffsSection, dict(data["tradeoffs"])),
                precision=cast(PrecisionSection, dict(data["precision"])),
                memory_options=cast(MemoryOptionsSection, dict(data["memory_options"])),
                dynamic_resolution=cast(DynamicResolutionSection, dict(data["dynamic_resolution"])),
                pipelines={
                    str(k): cast(PipelineCase, dict(v))
                    for k, v in (data.get("pipelines") or {}).items()
                },
                pipeline_memory_options=cast(
                    PipelineMemoryOptionsSection, dict(data.get("pipeline_memory_options") or {})
                ),
                speed_fidelity=cast(SpeedFidelitySection, dict(data.get("speed_fidelity") or {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise I2VUsageError(f"study file {path}: missing or malformed section {exc}") from None
