"""The pipelines the plugin measures, as pure data: names, diffusers classes, the real models'
constraints, native settings and the memory options each supports.

No torch and no diffusers here (marks are validated at collection with this table); the code
that builds, loads and calls a pipeline lives in one adapter module per pipeline
(``pytest_i2v.pipelines.<module>``, see ``base.PipelineAdapter``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_i2v.errors import I2VUsageError

DEFAULT_PIPELINE = "i2vgen-xl"
VAE_SCALE = 8  # every pipeline's VAE downsamples sizes by 8: a size is a multiple of 8 at least


@dataclass(frozen=True)
class Constraints:
    """What the real model accepts: ``frames = frames_step * k + frames_offset`` and sizes that are
    multiples of ``size_multiple`` (the VAE's downsampling times the denoiser's patch or depth)."""

    size_multiple: int = 8
    frames_step: int = 1
    frames_offset: int = 0
    min_frames: int = 1
    min_steps: int = 1  # LTX-Video's flow-match schedule fails with a single step
    # The only (width, height) the real model accepts: CogVideoX-5B-I2V 1.0's learned positional
    # embeddings exist for 720x480 alone. Checked on marks; a profile's scaled, tiny run may differ.
    fixed_size: tuple[int, int] | None = None

    def frames_rule(self) -> str:
        if self.frames_step == 1:
            return f"frames >= {self.min_frames}"
        return f"frames = {self.frames_step}k+{self.frames_offset}"

    def frames_ok(self, frames: int) -> bool:
        return frames >= self.min_frames and (frames - self.frames_offset) % self.frames_step == 0

    def nearest_frames(self, frames: int) -> tuple[int, ...]:
        """The valid frame counts around ``frames``: at or just below it and just above it (only the
        smallest valid count when ``frames`` is below it)."""
        smallest = self.round_up_frames(self.min_frames)
        below = (
            frames - self.frames_offset
        ) // self.frames_step * self.frames_step + self.frames_offset
        if below < smallest:
            return (smallest,)
        return below, below + self.frames_step

    def round_up_frames(self, frames: int) -> int:
        k = -(-(frames - self.frames_offset) // self.frames_step)
        return max(k, 0) * self.frames_step + self.frames_offset

    @property
    def min_size(self) -> int:
        """What every size must be a multiple of: the VAE's 8 and the pipeline's own multiple."""
        return math.lcm(VAE_SCALE, self.size_multiple)

    @property
    def smallest_frames(self) -> int:
        return self.round_up_frames(self.min_frames)

    def nearest_sizes(self, pixels: int) -> tuple[int, ...]:
        """The valid sizes around ``pixels`` (multiples of ``min_size``): at or just below it and
        just above it (only the smallest valid size when ``pixels`` is below it)."""
        below = pixels // self.min_size * self.min_size
        if below < self.min_size:
            return (self.min_size,)
        return below, below + self.min_size

    def round_size(self, pixels: int) -> int:
        """Down to a multiple (never below one multiple): how a profile's scaling keeps sizes valid."""
        return max(self.size_multiple, pixels // self.size_multiple * self.size_multiple)

    def round_frames(self, frames: int) -> int:
        """Down to the nearest valid frame count (never below the smallest)."""
        return self.nearest_frames(frames)[0]

    def round_steps(self, steps: int) -> int:
        return max(self.min_steps, steps)

    def problems(
        self, width: int | None, height: int | None, frames: int | None, steps: int | None = 50
    ) -> tuple[str, ...]:
        """Every rule a generation breaks, each as "value: rule (try ...)" whose suggestions keep
        every other rule too (sizes: multiples of ``min_size``); a value of None is not checked."""
        found: list[str] = []
        fixed = self.fixed_size
        if fixed is not None and None not in (width, height) and (width, height) != fixed:
            found.append(
                f"width={width}, height={height} is not the model's only size "
                f"{fixed[0]}x{fixed[1]} (its learned positional embeddings exist for that "
                f"size alone)"
            )
        elif fixed is None:
            for name, size in (("width", width), ("height", height)):
                if size is not None and (size < self.min_size or size % self.min_size):
                    suggestions = " or ".join(str(n) for n in self.nearest_sizes(size))
                    found.append(
                        f"{name}={size} is not a multiple of {self.min_size} (try {suggestions})"
                    )
        if frames is not None and not self.frames_ok(frames):
            suggestions = " or ".join(str(n) for n in self.nearest_frames(frames))
            found.append(f"frames={frames} breaks {self.frames_rule()} (try {suggestions})")
        if steps is not None and steps < self.min_steps:
            found.append(f"steps={steps} breaks steps >= {self.min_steps}")
        return tuple(found)

    def violation(self, width: int, height: int, frames: int, steps: int = 50) -> str | None:
        """The first rule a generation breaks (see ``problems``), or None."""
        found = self.problems(width, height, frames, steps)
        return found[0] if found else None

    def describe(self, name: str) -> str:
        """What the pipeline ``name`` needs, the tail of a mark's problem: "wan2.1-i2v needs sizes
        divisible by 16, frames = 4k+1"."""
        steps_rule = f" and steps >= {self.min_steps}" if self.min_steps > 1 else ""
        sizes = (
            f"{self.fixed_size[0]}x{self.fixed_size[1]}"
            if self.fixed_size
            else f"sizes divisible by {self.min_size}"
        )
        return f"{name} needs {sizes}, {self.frames_rule()}{steps_rule}"


@dataclass(frozen=True)
class Native:
    """The model's own generation settings (its model card / pipeline defaults)."""

    width: int
    height: int
    frames: int
    steps: int
    guidance: float
    fps: int
    resolution: str | None = None  # a preset label for i2vgen-xl's square sizes


# Options every adapter understands; each adapter lists the subset its pipeline supports.
TOGGLE_OPTIONS = (
    "vae_slicing",
    "vae_tiling",
    "forward_chunking",
    "attention_slicing",
    "sdpa",
    "eager_attention",
)
OFFLOAD_OPTIONS = ("model_cpu_offload", "sequential_cpu_offload", "group_offload")
# Applied at load time and not undoable (weights recast, modules compiled): part of the pipeline's cache key.
LOAD_OPTIONS = ("layerwise_fp8", "torch_compile")


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    pipeline_class: str  # the diffusers class, as model_index.json names it
    module: str  # adapter module under pytest_i2v.pipelines
    hub_id: str  # the published checkpoint (the source on GPU profiles)
    native: Native
    constraints: Constraints
    memory_options: frozenset[str]
    min_diffusers: str = "0.30.0"
    step_callbacks: bool = True  # callback_on_step_end (I2VGen-XL predates it)
    attention_backends: bool = True  # denoiser.set_attention_backend(...)
    uses_prompt: bool = True
    uses_fps: bool = False
    model_index_hint: dict[str, Any] = field(
        default_factory=dict
    )  # model_index.json keys that tell pipelines of one class apart
    # Other pipeline classes whose checkpoints this pipeline loads (LTX-Video's hub repo names LTXPipeline).
    also_loads: tuple[str, ...] = ()
    description: str = ""


_COMMON = frozenset(
    {
        "model_cpu_offload",
        "sequential_cpu_offload",
        "group_offload",
        "layerwise_fp8",
        "torch_compile",
        "vae_slicing",
        "vae_tiling",
    }
)

PIPELINES: dict[str, PipelineInfo] = {
    p.name: p
    for p in (
        PipelineInfo(
            name="i2vgen-xl",
            pipeline_class="I2VGenXLPipeline",
            module="i2vgen_xl",
            hub_id="ali-vilab/i2vgen-xl",
            native=Native(512, 512, 16, 50, 9.0, 8, resolution="512p"),
            constraints=Constraints(size_multiple=8),
            memory_options=frozenset(
                {
                    "model_cpu_offload",
                    "sequential_cpu_offload",
                    "group_offload",
                    "layerwise_fp8",
                    "torch_compile",
                    *TOGGLE_OPTIONS,
                }
            ),
            min_diffusers="0.26.0",
            step_callbacks=False,
            attention_backends=False,
            uses_fps=True,
            description="I2VGen-XL (deprecated upstream; UNet 1.4 B)",
        ),
        PipelineInfo(
            name="svd",
            pipeline_class="StableVideoDiffusionPipeline",
            module="svd",
            hub_id="stabilityai/stable-video-diffusion-img2vid-xt",
            native=Native(1024, 576, 25, 25, 3.0, 7),
            # The pipeline checks multiples of 8; the UNet forwards skip sizes to its upsamplers, so odd latents work.
            # One frame fails: its guidance ramp is [min_guidance_scale] = 1.0, which turns guidance off after the
            # image latents were already doubled for it.
            constraints=Constraints(size_multiple=8, min_frames=2),
            memory_options=(_COMMON - {"vae_tiling", "vae_slicing"}) | {"forward_chunking"},
            min_diffusers="0.24.0",
            attention_backends=False,
            uses_prompt=False,
            uses_fps=True,
            description="Stable Video Diffusion img2vid-xt (UNet 1.5 B)",
        ),
        PipelineInfo(
            name="wan2.1-i2v",
            pipeline_class="WanImageToVideoPipeline",
            module="wan",
            hub_id="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            native=Native(832, 480, 81, 40, 5.0, 16),
            constraints=Constraints(size_multiple=16, frames_step=4, frames_offset=1),
            memory_options=_COMMON,
            min_diffusers="0.33.0",
            model_index_hint={"transformer_2": None},
            description="Wan 2.1 I2V 14B (480P; the transformer is 16.4 B with its image cross-attention)",
        ),
        PipelineInfo(
            name="wan2.2-i2v",
            pipeline_class="WanImageToVideoPipeline",
            module="wan",
            hub_id="Wan-AI/Wan2.2-I2V-A14B-Diffusers",
            native=Native(832, 480, 81, 40, 3.5, 16),
            constraints=Constraints(size_multiple=16, frames_step=4, frames_offset=1),
            memory_options=_COMMON,
            min_diffusers="0.35.0",
            model_index_hint={"transformer_2": "WanTransformer3DModel"},
            description="Wan 2.2 I2V A14B (two 14.3 B experts)",
        ),
        PipelineInfo(
            name="ltx-video",
            pipeline_class="LTXImageToVideoPipeline",
            module="ltx_video",
            hub_id="Lightricks/LTX-Video",
            native=Native(768, 512, 121, 50, 3.0, 24),
            constraints=Constraints(size_multiple=32, frames_step=8, frames_offset=1, min_steps=2),
            memory_options=_COMMON,
            min_diffusers="0.32.0",
            uses_fps=True,
            also_loads=("LTXPipeline",),
            description="LTX-Video 0.9.1 (transformer 1.9 B)",
        ),
        PipelineInfo(
            name="cogvideox-i2v",
            pipeline_class="CogVideoXImageToVideoPipeline",
            module="cogvideox",
            hub_id="THUDM/CogVideoX-5b-I2V",
            # Frames 8k+1: the VAE decodes latent frames in pairs (after a first odd one), so an even number
            # of latent frames L comes back as 4L frames, not the 4(L-1)+1 asked for (5 frames -> 8).
            # Its learned positional embeddings fix the size at 720x480 (on marks here; on the loaded model at
            # generation, see cogvideox.py); its attention processor calls SDPA itself, so set_attention_backend
            # would change nothing.
            native=Native(720, 480, 49, 50, 6.0, 8),
            constraints=Constraints(
                size_multiple=16, frames_step=8, frames_offset=1, fixed_size=(720, 480)
            ),
            memory_options=_COMMON,
            min_diffusers="0.30.3",
            attention_backends=False,
            description="CogVideoX-5B-I2V (transformer 5.6 B; 720x480 only)",
        ),
        PipelineInfo(
            name="hunyuanvideo-i2v",
            pipeline_class="HunyuanVideoImageToVideoPipeline",
            module="hunyuan_video",
            hub_id="hunyuanvideo-community/HunyuanVideo-I2V",
            # guidance 6.0 is the checkpoint's embedded guidance (README --embedded-cfg-scale 6.0; diffusers example)
            native=Native(1280, 720, 129, 50, 6.0, 24),
            constraints=Constraints(size_multiple=16, frames_step=4, frames_offset=1),
            memory_options=_COMMON,
            min_diffusers="0.33.0",
            description="HunyuanVideo-I2V (13 B, token_replace, embedded guidance)",
        ),
    )
}


def pipeline_names() -> list[str]:
    return list(PIPELINES)


def check_pipeline_name(name: str, origin: str = "pipeline") -> PipelineInfo:
    if not isinstance(name, str) or name not in PIPELINES:
        raise I2VUsageError(
            f"{origin}={name!r} is not a known pipeline; use one of {', '.join(PIPELINES)}"
        )
    return PIPELINES[name]


def pipeline_from_model_index(index: dict[str, Any]) -> str | None:
    """The pipeline a diffusers ``model_index.json`` describes (its ``_class_name``, then the hint
    keys that tell pipelines of one class apart, e.g. Wan 2.2's second expert), or None."""
    class_name = index.get("_class_name")
    candidates = [
        p
        for p in PIPELINES.values()
        if class_name == p.pipeline_class or class_name in p.also_loads
    ]
    for info in candidates:
        matches = all(
            _component_class(index.get(key)) == want for key, want in info.model_index_hint.items()
        )
        if matches:
            return info.name
    return candidates[0].name if candidates else None


def _component_class(entry: Any) -> str | None:
    """model_index.json lists a component as [library, class] or [null, null] when absent."""
    if isinstance(entry, list) and len(entry) == 2:
        return entry[1] if isinstance(entry[1], str) else None
    return None


def pipeline_of_directory(path: Path) -> str | None:
    index_file = path / "model_index.json"
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return pipeline_from_model_index(index) if isinstance(index, dict) else None


def pipeline_of_hub_id(source: str) -> str | None:
    return next((p.name for p in PIPELINES.values() if p.hub_id.lower() == source.lower()), None)


def marker_help_line() -> str:
    return f"pipeline names: {', '.join(PIPELINES)} (default {DEFAULT_PIPELINE}; --i2v-pipeline / ini i2v_pipeline)"


BUILTIN_SOURCES = ("tiny", "random")


def parse_model_sources(text: str) -> tuple[str | None, dict[str, str]]:
    """``--i2v-model``: one source (``tiny``, ``random``, a directory or a hub id), or per-pipeline
    ``NAME=SOURCE`` entries separated by commas, optionally after a bare default:
    ``random,svd=/models/svd``. Returns (the bare source or None, {pipeline: source})."""
    default: str | None = None
    per_pipeline: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise I2VUsageError(
                f"--i2v-model {text!r}: an empty entry; separate NAME=SOURCE entries with single commas"
            )
        name, sep, source = part.partition("=")
        if not sep:
            if default is not None:
                raise I2VUsageError(
                    f"--i2v-model {text!r}: two sources without a pipeline name ({default}, {part}); "
                    f"name the second one, e.g. svd={part}"
                )
            default = part
            continue
        check_pipeline_name(name.strip(), origin="--i2v-model entry")
        if not source.strip():
            raise I2VUsageError(f"--i2v-model {part!r}: no source after '='")
        per_pipeline[name.strip()] = source.strip()
    return default, per_pipeline


def parse_pipeline_classes(text: str) -> tuple[str | None, dict[str, str]]:
    """``i2v_pipeline_class``: a user's own pipeline class as ``module:Class``, per pipeline as
    ``NAME=module:Class`` entries separated by commas, optionally after one bare class (whose
    pipeline is the supported class it derives from). Returns (the bare class or None, {pipeline:
    class})."""
    origin = "i2v_pipeline_class"
    bare: str | None = None
    per_pipeline: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, target = part.rpartition("=")
        target = target.strip()
        module, colon, attribute = target.partition(":")
        if not module.strip() or not colon or not attribute.strip():
            raise I2VUsageError(
                f"{part!r} is not [NAME=]module:Class; write e.g. "
                f"wan2.1-i2v=acme.pipelines:AcmeWanI2VPipeline"
            )
        if not sep:
            if bare is not None:
                raise I2VUsageError(
                    f"{origin} {text!r}: two classes without a pipeline name; "
                    f"name the second one, e.g. svd={part}"
                )
            bare = target
            continue
        check_pipeline_name(name.strip(), origin=f"{origin} entry")
        per_pipeline[name.strip()] = target
    return bare, per_pipeline


def class_of_directory(path: Path) -> str | None:
    """The ``_class_name`` a diffusers directory's model_index.json names (None when unreadable)."""
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = index.get("_class_name") if isinstance(index, dict) else None
    return name if isinstance(name, str) else None


def pipeline_of_class_names(names: list[str], index: dict[str, Any] | None = None) -> str | None:
    """The pipeline of the first of ``names`` (a class and its bases, in MRO order) that the
    registry knows; the model_index hints tell pipelines of one class apart."""
    for name in names:
        found = pipeline_from_model_index({**(index or {}), "_class_name": name})
        if found is not None:
            return found
    return None


def pipeline_of_source(source: str) -> str | None:
    """The pipeline a directory's model_index.json or a known hub id belongs to (None for builtins)."""
    if source in BUILTIN_SOURCES:
        return None
    path = Path(source).expanduser()
    if path.is_dir():
        return pipeline_of_directory(path)
    return pipeline_of_hub_id(source)


def session_pipeline(
    option: str | None, default_source: str | None, profile_pipeline: str | None
) -> str:
    """The pipeline of unmarked tests: ``--i2v-pipeline``/ini, else the one a ``--i2v-model``
    directory or known hub id is, else the profile's, else I2VGen-XL."""
    if option is not None:
        return option
    owner = pipeline_of_source(default_source) if default_source else None
    return owner or profile_pipeline or DEFAULT_PIPELINE


def source_for(
    pipeline: str,
    session: str,
    default: str | None,
    per_pipeline: dict[str, str],
    profile_model: str,
    profile_pipeline: str | None = None,
) -> str:
    """The model source a pipeline loads from: its own ``NAME=SOURCE`` entry; else the bare source
    when it is a builtin or belongs to this pipeline (a source we cannot place belongs to the
    session's pipeline); else the profile's model likewise (a profile's model is its own pipeline's,
    I2VGen-XL's unless it says); else the pipeline's published hub id."""
    if pipeline in per_pipeline:
        return per_pipeline[pipeline]
    for candidate, unknown_owner in (
        (default, session),
        (profile_model, profile_pipeline or DEFAULT_PIPELINE),
    ):
        if candidate is None:
            continue
        owner = pipeline_of_source(candidate) or unknown_owner
        if candidate in BUILTIN_SOURCES or owner == pipeline:
            return candidate
    return PIPELINES[pipeline].hub_id


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
    """Why a generation cannot run on this pipeline here (a skip reason that names the pipeline), or None."""
    if (
        diffusers_version is None
        or not has_class
        or _version_tuple(diffusers_version) < _version_tuple(info.min_diffusers)
    ):
        installed = (
            f"installed: {diffusers_version}" if diffusers_version else "diffusers is not installed"
        )
        return (
            f"pipeline {info.name} needs diffusers >= {info.min_diffusers} with {info.pipeline_class} ({installed}); "
            f"pip install -U diffusers"
        )
    missing = [m for m in memory if m not in info.memory_options]
    if missing:
        return f"memory option {', '.join(missing)} is not supported by pipeline {info.name}"
    if attention is not None and not info.attention_backends:
        return f"attention={attention!r}: pipeline {info.name}'s denoiser has no set_attention_backend (use memory sdpa/eager_attention)"
    return None
