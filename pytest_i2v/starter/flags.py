"""``init``'s flags: each parsed and checked against the registry (pipelines, GPU profiles) and
the i2v mark's own validation, so that a bad one is one usage error naming the flag."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_i2v import __version__
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import i2v, time_budget, vram_budget
from pytest_i2v.pipelines import (
    BUILTIN_SOURCES,
    PIPELINES,
    PipelineInfo,
    pipeline_of_directory,
    pipeline_of_hub_id,
)
from pytest_i2v.profiles import load_profiles

DEFAULT_OWNER = "OWNER"  # a placeholder the printed next steps ask to replace
GPU_RUNNER = ["self-hosted", "linux", "gpu-{0}"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_CLASS = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_REF = re.compile(r"^([A-Za-z0-9][\w.-]*)/([A-Za-z0-9][\w.-]*)@([\w./-]+)$")
_MARK_FLAGS = (
    ("width=", "--size"),
    ("height=", "--size"),
    ("frames=", "--frames"),
    ("steps=", "--steps"),
    ("memory option", "--memory"),
)


@dataclass(frozen=True)
class InitOptions:
    """``init``'s flags as given (strings: each is parsed here, so a bad one is one usage error)."""

    pipeline: str | None
    model: str | None = None
    pipeline_class: str | None = None
    size: str | None = None
    frames: str | None = None
    steps: str | None = None
    memory: str | None = None
    profiles: str = "cpu"
    vram_budget: str | None = None
    time_budget: str | None = None
    directory: Path = Path(".")
    workflow_ref: str | None = None
    torch_index_url: str | None = None
    runner_labels: str | None = None


def _integer(flag: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise I2VUsageError(f"{flag} {text!r}: not an integer; e.g. {flag} 16") from None
    if value < 1:
        raise I2VUsageError(f"{flag} {text}: must be >= 1")
    return value


def _number(flag: str, text: str | None, check: Callable[[float], float]) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise I2VUsageError(f"{flag} {text!r}: not a number; e.g. {flag} 24") from None
    try:
        return check(value)
    except I2VUsageError as exc:
        raise I2VUsageError(f"{flag} {text}: {exc}") from None


def _pipeline(name: str | None) -> PipelineInfo:
    if name is None or name not in PIPELINES:
        given = "is required" if name is None else f"{name!r} is not a known pipeline"
        raise I2VUsageError(f"--pipeline {given}; use one of {', '.join(PIPELINES)}")
    return PIPELINES[name]


def _size(text: str | None, info: PipelineInfo) -> tuple[int, int]:
    if text is None:
        return info.native.width, info.native.height
    found = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not found:
        raise I2VUsageError(
            f"--size {text!r}: use WxH, e.g. --size {info.native.width}x{info.native.height} "
            f"({info.name}'s native size)"
        )
    return int(found.group(1)), int(found.group(2))


def _model(source: str | None, info: PipelineInfo) -> str | None:
    """The ``--model`` source as the plugin will read it (its rules, checked without torch)."""
    if source is None or source in BUILTIN_SOURCES:
        return source
    path = Path(source).expanduser()
    if source.startswith((".", "/", "~")) or path.exists():
        if not (path / "model_index.json").is_file():
            what = (
                "no such directory"
                if not path.is_dir()
                else "not a diffusers directory (no model_index.json)"
            )
            raise I2VUsageError(
                f"--model {source}: {what}; point it at the folder that holds model_index.json "
                f"(huggingface-cli download {info.hub_id} --local-dir DIR), or use tiny / random"
            )
        owner = pipeline_of_directory(path)
        if owner is not None and owner != info.name:
            raise I2VUsageError(
                f"--model {source}: its model_index.json is a {owner} checkpoint, not {info.name}; "
                f"pass --pipeline {owner} or another directory"
            )
        return source
    if not _HUB_ID.match(source):
        raise I2VUsageError(
            f"--model {source!r} is neither a local directory, a hub id (owner/name), "
            f"tiny nor random"
        )
    owner = pipeline_of_hub_id(source)
    if owner is not None and owner != info.name:
        raise I2VUsageError(
            f"--model {source}: that is {owner}'s checkpoint, not {info.name}'s; "
            f"pass --pipeline {owner}, or --model {info.hub_id}"
        )
    return source


def _profiles(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(","))
    known = load_profiles()
    for name in names:
        if name not in known:
            raise I2VUsageError(
                f"--profiles: {name!r} is not a GPU profile; use any of {', '.join(sorted(known))} "
                f"(comma-separated)"
            )
    return tuple(dict.fromkeys(names))


def _workflow(ref: str | None) -> tuple[str, str, str]:
    """(owner, repository, ref) of the pytest-i2v repository whose reusable workflow is called."""
    text = ref or f"{DEFAULT_OWNER}/pytest-i2v@v{__version__}"
    found = _REF.match(text)
    if not found:
        raise I2VUsageError(
            f"--workflow-ref {text!r}: use OWNER/REPO@REF, e.g. acme/pytest-i2v@v{__version__}"
        )
    return found.group(1), found.group(2), found.group(3)


def _labels(text: str | None, profiles: tuple[str, ...]) -> str:
    if text is None:
        return json.dumps(["ubuntu-latest"] if profiles == ("cpu",) else GPU_RUNNER)
    try:
        labels = json.loads(text)
    except ValueError:
        labels = None
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(x, str) and x for x in labels)
    ):
        raise I2VUsageError(
            f"--runner-labels {text!r}: give a JSON list of labels, e.g. "
            f'\'["self-hosted", "gpu-{{0}}"]\' ({{0}} becomes the profile)'
        )
    return json.dumps(labels)


def _mark_error(exc: I2VUsageError, info: PipelineInfo) -> I2VUsageError:
    """The mark's own message, led by the flag that set the value it names."""
    message = str(exc)
    flag = next((f for token, f in _MARK_FLAGS if message.startswith(token)), "the i2v mark")
    return I2VUsageError(
        f"{flag}: {message} (native {info.name}: --size {info.native.width}x{info.native.height} "
        f"--frames {info.native.frames} --steps {info.native.steps})"
    )


@dataclass(frozen=True)
class CheckedFlags:
    """``init``'s flags, each parsed and checked against the registry and the i2v mark."""

    info: PipelineInfo
    width: int
    height: int
    frames: int
    steps: int
    memory: tuple[str, ...]
    model: str | None
    vram_budget: float | None
    time_budget: float | None
    profiles: tuple[str, ...]
    owner: str
    repository: str
    ref: str
    labels: str


def check_flags(options: InitOptions) -> CheckedFlags:
    info = _pipeline(options.pipeline)
    width, height = _size(options.size, info)
    frames = _integer("--frames", options.frames) or info.native.frames
    steps = _integer("--steps", options.steps) or info.native.steps
    memory = tuple(m.strip() for m in options.memory.split(",")) if options.memory else ()
    try:
        i2v(
            pipeline=info.name,
            width=width,
            height=height,
            frames=frames,
            steps=steps,
            memory=memory,
        )
    except I2VUsageError as exc:
        raise _mark_error(exc, info) from None
    model = _model(options.model, info)
    if options.pipeline_class is not None and not _CLASS.match(options.pipeline_class):
        raise I2VUsageError(
            f"--pipeline-class {options.pipeline_class!r}: use module:Class, "
            f"e.g. acme.pipelines:AcmeWanPipeline (importable where the tests run)"
        )
    vram = _number("--vram-budget", options.vram_budget, vram_budget)
    seconds = _number("--time-budget", options.time_budget, time_budget)
    profiles = _profiles(options.profiles)
    owner, repository, ref = _workflow(options.workflow_ref)
    labels = _labels(options.runner_labels, profiles)
    return CheckedFlags(
        info=info,
        width=width,
        height=height,
        frames=frames,
        steps=steps,
        memory=memory,
        model=model,
        vram_budget=vram,
        time_budget=seconds,
        profiles=profiles,
        owner=owner,
        repository=repository,
        ref=ref,
        labels=labels,
    )
