"""The ``i2v`` marker as a typed function: its signature is the validation and the help text.

A mark describes one generation (the study's knobs). ``GenerationSpec`` is what the runner
measures; ``scaled`` applies a profile's scaling (the CPU profile shrinks the study).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeAlias

from pytest_i2v.errors import I2VUsageError, I2VUsageProblems
from pytest_i2v.generation.memory_options import (
    LOAD_MEMORY_OPTIONS,
    OFFLOAD_MEMORY_OPTIONS,
    TOGGLE_MEMORY_OPTIONS,
    memory_options_of,
    memory_problems,
)
from pytest_i2v.pipelines.constraints import VAE_SCALE, Constraints
from pytest_i2v.pipelines.registry import (
    DEFAULT_PIPELINE,
    PIPELINES,
    Native,
    PipelineInfo,
    cache_problem,
    check_pipeline_name,
)
from pytest_i2v.storage import Scalar

# The study's square presets (the article's 256p/512p/768p/1024p are W = H).
RESOLUTION_PRESETS: dict[str, int] = {"256p": 256, "512p": 512, "768p": 768, "1024p": 1024}
DTYPES = ("fp16", "bf16", "fp32")
# Options that only make sense with a CUDA device (they move weights between host and GPU).
CUDA_ONLY_MEMORY_OPTIONS = frozenset(OFFLOAD_MEMORY_OPTIONS)
DEFAULT_PROMPT = "A person slowly turning head to the right"  # the study's prompt
# A generation setting as a test's config holds it: a size, a count, a word, the memory options.
ConfigValue: TypeAlias = Scalar | list[str]


@dataclass(frozen=True)
class Scaling:
    """How a profile shrinks the study (the ``cpu`` profile: tiny model, small sizes, few steps)."""

    size_divisor: int = 1
    steps_divisor: int = 1
    min_size: int = 8
    frames_divisor: int = 1

    @property
    def is_identity(self) -> bool:
        return self.size_divisor == 1 and self.steps_divisor == 1 and self.frames_divisor == 1

    def size(self, pixels: int, multiple: int = 8) -> int:
        # Keep sizes multiples of the pipeline's size rule (8, the VAE's scale factor, at least)
        # after dividing.
        return max(self.min_size, multiple, (pixels // self.size_divisor) // multiple * multiple)

    def steps(self, steps: int) -> int:
        return max(1, math.ceil(steps / self.steps_divisor))

    def frames(self, frames: int) -> int:
        """Divided, but never below 2 frames (or the marked count when it is smaller), so a frames
        sweep keeps distinct points; the caller rounds up to the pipeline's frame rule."""
        return max(min(frames, 2), math.ceil(frames / self.frames_divisor))

    def describe(self) -> str:
        if self.is_identity:
            return "none (the study's sizes and steps)"
        sizes = ", ".join(
            f"{k}->{self.size(v)}x{self.size(v)}" for k, v in RESOLUTION_PRESETS.items()
        )
        frames = (
            f"; frames /{self.frames_divisor} (16->{self.frames(16)})"
            if self.frames_divisor > 1
            else ""
        )
        steps = f"steps /{self.steps_divisor} (50->{self.steps(50)})"
        return f"sizes /{self.size_divisor} ({sizes}); {steps}{frames}"

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scaling:
        return cls(**{k: int(v) for k, v in data.items()})


@dataclass(frozen=True)
class GenerationSpec:
    """One generation as the study describes it (before or after a profile's scaling)."""

    width: int
    height: int
    frames: int = 16
    steps: int = 50
    guidance: float = 9.0
    fps: int = 8
    dtype: str | None = None
    memory: tuple[str, ...] = ()
    prompt: str = DEFAULT_PROMPT
    seed: int = 0
    resolution: str | None = None
    fast: bool = False  # measure a few steps and predict the total (see measure.runner)
    pipeline: str = DEFAULT_PIPELINE
    attention: str | None = None  # a diffusers attention backend (denoiser.set_attention_backend)
    cache: str | None = None  # a diffusers cache (registry.CACHES), on during the generations

    @property
    def label(self) -> str:
        return self.resolution or f"{self.width}x{self.height}"

    @property
    def offload(self) -> str | None:
        found = [m for m in self.memory if m in OFFLOAD_MEMORY_OPTIONS]
        return found[0] if found else None

    @property
    def toggles(self) -> tuple[str, ...]:
        return tuple(m for m in self.memory if m in TOGGLE_MEMORY_OPTIONS)

    @property
    def load_options(self) -> tuple[str, ...]:
        return tuple(m for m in self.memory if m in LOAD_MEMORY_OPTIONS)

    def scaled(self, scaling: Scaling) -> GenerationSpec:
        if scaling.is_identity:
            return self
        rules = PIPELINES[self.pipeline].constraints
        return replace(
            self,
            width=scaling.size(self.width, rules.size_multiple),
            height=scaling.size(self.height, rules.size_multiple),
            frames=rules.round_up_frames(max(rules.min_frames, scaling.frames(self.frames))),
            steps=rules.round_steps(scaling.steps(self.steps)),
        )

    def to_dict(self) -> dict[str, ConfigValue]:
        data: dict[str, ConfigValue] = asdict(self)
        data["memory"] = list(self.memory)
        if self.cache is None:
            # left out, so a test without a cache keeps the config its baseline stored
            del data["cache"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationSpec:
        fields = dict(data)
        fields["memory"] = tuple(fields.get("memory", ()))
        return cls(**fields)


def _int_problem(name: str, value: Any, generic: int, minimum: int) -> str | None:
    """A value that is no integer, or below ``generic`` (what every pipeline needs); the message
    names ``minimum``, the smallest value the mark's pipeline accepts (values above ``generic``
    are the pipeline's rules to check)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name}={value!r} must be an integer >= {minimum}"
    if value < generic:
        return f"{name}={value!r} must be >= {minimum}"
    return None


def _pipeline_info(pipeline: str | None, problems: list[str]) -> PipelineInfo | None:
    """The mark's pipeline; None, with the problem noted, when it is unknown (the rest is still
    checked, but against no pipeline's rules)."""
    try:
        return check_pipeline_name(DEFAULT_PIPELINE if pipeline is None else pipeline)
    except I2VUsageError as exc:
        problems.append(str(exc))
        return None


def _size(
    resolution: str | None,
    width: int | None,
    height: int | None,
    native: Native,
    problems: list[str],
) -> tuple[str | None, int | None, int | None, bool]:
    """(resolution, width, height, sized): a preset's size, the given one or the native one;
    ``sized`` is False when the mark's size arguments are a problem (noted in ``problems``)."""
    if resolution is not None:
        unsized = []
        if width is not None or height is not None:
            unsized.append(f"give resolution={resolution!r} or width/height, not both")
        if not isinstance(resolution, str) or resolution not in RESOLUTION_PRESETS:
            unsized.append(
                f"resolution={resolution!r} is not a preset; use one of "
                f"{', '.join(RESOLUTION_PRESETS)} or width=/height="
            )
        problems.extend(unsized)
        if unsized:
            return resolution, width, height, False
        return resolution, RESOLUTION_PRESETS[resolution], RESOLUTION_PRESETS[resolution], True
    if width is None and height is None:
        return native.resolution, native.width, native.height, True
    if width is None or height is None:
        problems.append("give both width= and height= (or a resolution preset such as '512p')")
        return resolution, width, height, False
    return resolution, width, height, True


def _setting_problems(
    fps: Any,
    seed: Any,
    guidance: Any,
    dtype: Any,
    fast: Any,
    prompt: Any,
    attention: Any,
) -> list[str]:
    """The problems of the mark's other settings, in signature order."""
    problems: list[str] = []
    for name, value, minimum in (("fps", fps, 1), ("seed", seed, 0)):
        problems.extend(filter(None, [_int_problem(name, value, minimum, minimum)]))
    if (
        isinstance(guidance, bool)
        or not isinstance(guidance, (int, float))
        or not math.isfinite(guidance)
        or guidance < 0
    ):
        problems.append(f"guidance={guidance!r} must be a finite number >= 0")
    if dtype is not None and dtype not in DTYPES:
        problems.append(f"dtype={dtype!r} is unknown; use one of {', '.join(DTYPES)}")
    if not isinstance(fast, bool):
        problems.append(f"fast={fast!r} must be True or False")
    if not isinstance(prompt, str) or not prompt:
        problems.append(f"prompt={prompt!r} must be a non-empty string")
    if attention is not None and (not isinstance(attention, str) or not attention):
        problems.append(
            f"attention={attention!r} must name a diffusers attention backend, "
            f"e.g. 'native' or 'flash'"
        )
    return problems


def i2v(
    resolution: str | None = None,
    width: int | None = None,
    height: int | None = None,
    frames: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    fps: int | None = None,
    dtype: str | None = None,
    memory: tuple[str, ...] | list[str] | str = (),
    prompt: str = DEFAULT_PROMPT,
    seed: int = 0,
    fast: bool = False,
    pipeline: str | None = None,
    attention: str | None = None,
    cache: str | None = None,
) -> GenerationSpec:
    """Describe one generation; unset sizes, frames, steps, guidance and fps are the pipeline's
    native ones (I2VGen-XL: the study's 512p, 16 frames, 50 steps, guidance 9.0, fps 8). ``cache``
    names a diffusers cache at its defaults, on the transformer pipelines that run it.

    A bad mark raises one ``I2VUsageProblems`` naming every problem, each with a fix that keeps all
    of the pipeline's rules (a Wan width of 830: "try 816 or 832", multiples of 16 and of 8)."""
    problems: list[str] = []
    info = _pipeline_info(pipeline, problems)
    native = (info or PIPELINES[DEFAULT_PIPELINE]).native
    resolution, width, height, sized = _size(resolution, width, height, native, problems)
    frames = native.frames if frames is None else frames
    steps = native.steps if steps is None else steps
    guidance = native.guidance if guidance is None else guidance
    fps = native.fps if fps is None else fps
    sizes = {"width": width, "height": height} if sized else {}
    problems.extend(_shape_problems(info, {**sizes, "frames": frames, "steps": steps}))
    problems.extend(_setting_problems(fps, seed, guidance, dtype, fast, prompt, attention))
    problems.extend(memory_problems(memory))
    if info is not None:  # an unknown pipeline's caches are unknown
        problems.extend(filter(None, [cache_problem(info, cache)]))
    if problems:
        raise I2VUsageProblems(problems)
    assert isinstance(width, int) and isinstance(height, int)  # checked above
    return GenerationSpec(
        width=width,
        height=height,
        frames=frames,
        steps=steps,
        guidance=float(guidance),
        fps=fps,
        dtype=dtype,
        memory=memory_options_of(memory),
        prompt=prompt,
        seed=seed,
        resolution=resolution,
        fast=fast,
        pipeline=DEFAULT_PIPELINE if info is None else info.name,
        attention=attention,
        cache=cache,
    )


# What every pipeline needs of these values (the VAE downsamples sizes by 8; one frame, one step).
_GENERIC_MINIMUMS = {"width": VAE_SCALE, "height": VAE_SCALE, "frames": 1, "steps": 1}


def _shape_problems(info: PipelineInfo | None, values: Mapping[str, Any]) -> list[str]:
    """The problems of the sizes, frames and steps given, in that order, each with suggestions that
    keep all of the pipeline's rules and, for a rule of the pipeline's, what the pipeline needs."""
    rules = info.constraints if info is not None else Constraints()
    tail = f": {rules.describe(info.name)}" if info is not None else ""
    smallest = {
        "width": rules.min_size,
        "height": rules.min_size,
        "frames": rules.smallest_frames,
        "steps": rules.min_steps,
    }
    valid: dict[str, int | None] = dict.fromkeys(_GENERIC_MINIMUMS)
    found: dict[str, list[str]] = {name: [] for name in _GENERIC_MINIMUMS}
    for name, value in values.items():
        generic, minimum = _GENERIC_MINIMUMS[name], smallest[name]
        problem = _int_problem(name, value, generic, minimum)
        if problem is None:
            valid[name] = value
        else:
            found[name].append(problem + (tail if minimum > generic else ""))
    if info is not None:  # an unknown pipeline's rules are unknown: no suggestion a rule may break
        broken = rules.problems(valid["width"], valid["height"], valid["frames"], valid["steps"])
        for problem in broken:  # under the value it names ("width=.., height=..": width's)
            found[problem.partition("=")[0]].append(f"{problem}{tail}")
    return [problem for problems in found.values() for problem in problems]


def mark_spec(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], default_pipeline: str
) -> GenerationSpec:
    """The spec of an ``i2v`` mark, with the session's default pipeline where the mark names
    none."""
    if kwargs.get("pipeline") is None:
        kwargs = {**kwargs, "pipeline": default_pipeline}
    spec: GenerationSpec = call_marker(i2v, args, kwargs)
    return spec


def marker_help(func: Any, summary: str) -> str:
    """The ``--markers`` line, generated from the marker function's signature."""
    params = []
    for param in inspect.signature(func).parameters.values():
        text = (
            f"{param.name}: {param.annotation}"
            if param.annotation is not param.empty
            else param.name
        )
        if param.default is not param.empty:
            text += f" = {param.default!r}"
        params.append(text)
    return f"{func.__name__}({', '.join(params)}): {summary}"


def call_marker(func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """Call a marker function with a mark's arguments; a wrong signature is a usage error."""
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError as exc:
        raise I2VUsageError(
            f"@pytest.mark.{func.__name__}: {exc}; see pytest --markers for its arguments"
        ) from None
    return func(*args, **kwargs)


@dataclass(frozen=True)
class Budget:
    """A test's declared limits: peak VRAM in GB (1e9 bytes, as GPUs are sold) and median time."""

    vram_gb: float | None = None
    time_s: float | None = None


def _require_positive_number(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise I2VUsageError(f"{name}({value!r}): the budget must be a positive number")
    return float(value)


def vram_budget(gb: float) -> float:
    """Fail when the peak memory exceeds ``gb`` GB; skip before running when it cannot fit the
    profile."""
    return _require_positive_number("vram_budget", gb)


def time_budget(seconds: float) -> float:
    """Fail when the median generation time exceeds ``seconds``."""
    return _require_positive_number("time_budget", seconds)
