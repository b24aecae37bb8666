"""The pipelines the plugin measures, as pure data: names, diffusers classes, the real models'
native settings and constraints, and the memory options each supports.

No torch and no diffusers here (marks are validated at collection with this table); the code
that builds, loads and calls a pipeline lives in one adapter module per pipeline
(``pytest_i2v.pipelines.<module>``, see ``base.PipelineAdapter``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.pipelines.constraints import Constraints

DEFAULT_PIPELINE = "i2vgen-xl"
# Model sources every pipeline has: no directory or hub id, so they belong to no pipeline.
BUILTIN_SOURCES = ("tiny", "random")


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
# Applied at load time and not undoable (weights recast, modules compiled): part of the pipeline's
# cache key.
LOAD_OPTIONS = ("layerwise_fp8", "torch_compile")

# diffusers' caches (``diffusers.hooks``) a mark's ``cache=`` names, each at its config's defaults
# (``pipelines.caches`` maps a name to its config). Only transformers with diffusers' CacheMixin
# take one; each pipeline lists those that run with its pipeline loop (diffusers 0.42.1's source).
CACHES = ("first-block", "pyramid-attention-broadcast", "faster-cache", "taylorseer-lite")
# Configs of diffusers.hooks left out, and why: a mark naming one gets this line.
UNSHIPPED_CACHES = {
    "mag-cache": (
        "MagCacheConfig needs the checkpoint's mag_ratios (its calibrate=True mode skips nothing, "
        "it only measures them)"
    ),
    "sea-cache": (
        "SeaCacheConfig needs the pipeline to pass step_index and sigma in cache_context; the I2V "
        "pipelines pass only a name, so it would run every block (diffusers 0.42.1)"
    ),
    "taylorseer": (
        "TaylorSeerCacheConfig's default patterns fullmatch '...attn' and hook none of these "
        "transformers' attn1/attn2, so it caches nothing; use 'taylorseer-lite'"
    ),
}
# Wan runs its cond and uncond calls apart and LTX packs its latents (B, S, C): FasterCache splits
# a batched CFG of 5-D latents only. HunyuanVideo-I2V's loop sets no cache_context, which the
# first-block and TaylorSeer hooks read.
_TRANSFORMER_CACHES = frozenset(CACHES) - {"faster-cache"}


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
    # model_index.json keys that tell pipelines of one class apart: component -> its class name
    # (None: the component is absent)
    model_index_hint: dict[str, str | None] = field(default_factory=dict)
    # Other pipeline classes whose checkpoints this pipeline loads (LTX-Video's hub repo names
    # LTXPipeline).
    also_loads: tuple[str, ...] = ()
    description: str = ""
    caches: frozenset[str] = frozenset()  # the mark's cache= names this pipeline runs


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
            # The pipeline checks multiples of 8; the UNet forwards skip sizes to its upsamplers, so
            # odd latents work. One frame fails: its guidance ramp is [min_guidance_scale] = 1.0,
            # which turns guidance off after the image latents were already doubled for it.
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
            caches=_TRANSFORMER_CACHES,
            description=(
                "Wan 2.1 I2V 14B (480P; the transformer is 16.4 B with its image cross-attention)"
            ),
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
            caches=_TRANSFORMER_CACHES,
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
            caches=_TRANSFORMER_CACHES,
            description="LTX-Video 0.9.1 (transformer 1.9 B)",
        ),
        PipelineInfo(
            name="cogvideox-i2v",
            pipeline_class="CogVideoXImageToVideoPipeline",
            module="cogvideox",
            hub_id="THUDM/CogVideoX-5b-I2V",
            # Frames 8k+1: the VAE decodes latent frames in pairs (after a first odd one), so an
            # even number of latent frames L comes back as 4L frames, not the 4(L-1)+1 asked for (5
            # frames -> 8). Its learned positional embeddings fix the size at 720x480 (on marks
            # here; on the loaded model at generation, see cogvideox.py); its attention processor
            # calls SDPA itself, so set_attention_backend would change nothing.
            native=Native(720, 480, 49, 50, 6.0, 8),
            constraints=Constraints(
                size_multiple=16, frames_step=8, frames_offset=1, fixed_size=(720, 480)
            ),
            memory_options=_COMMON,
            min_diffusers="0.30.3",
            attention_backends=False,
            caches=frozenset(CACHES),
            description="CogVideoX-5B-I2V (transformer 5.6 B; 720x480 only)",
        ),
        PipelineInfo(
            name="hunyuanvideo-i2v",
            pipeline_class="HunyuanVideoImageToVideoPipeline",
            module="hunyuan_video",
            hub_id="hunyuanvideo-community/HunyuanVideo-I2V",
            # guidance 6.0 is the checkpoint's embedded guidance (README --embedded-cfg-scale 6.0;
            # diffusers example)
            native=Native(1280, 720, 129, 50, 6.0, 24),
            constraints=Constraints(size_multiple=16, frames_step=4, frames_offset=1),
            memory_options=_COMMON,
            min_diffusers="0.33.0",
            caches=frozenset({"pyramid-attention-broadcast"}),
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


def cache_names(pipeline: str) -> tuple[str, ...]:
    """The caches ``pipeline`` runs, in ``CACHES``' order (none for an unknown name)."""
    info = PIPELINES.get(pipeline)
    return tuple(c for c in CACHES if info is not None and c in info.caches)


def cache_problem(info: PipelineInfo, cache: object) -> str | None:
    """What is wrong with a mark's ``cache=`` on this pipeline (one line with the fix), or None."""
    if cache is None:
        return None
    if isinstance(cache, str) and cache in UNSHIPPED_CACHES:
        return f"cache={cache!r} is not shipped: {UNSHIPPED_CACHES[cache]}"
    if not isinstance(cache, str) or cache not in CACHES:
        return f"cache={cache!r} is not a known cache; use one of {', '.join(CACHES)} or None"
    if cache in info.caches:
        return None
    if not info.caches:
        hosts = ", ".join(p.name for p in PIPELINES.values() if cache in p.caches)
        return (
            f"cache={cache!r}: pipeline {info.name}'s denoiser has no diffusers cache support "
            f"(a UNet, not a CacheMixin transformer); drop cache= or use a pipeline of {hosts}"
        )
    return (
        f"cache={cache!r} does not run on pipeline {info.name}; use one of "
        f"{', '.join(cache_names(info.name))} or None"
    )


def marker_help_line() -> str:
    return (
        f"pipeline names: {', '.join(PIPELINES)} "
        f"(default {DEFAULT_PIPELINE}; --i2v-pipeline / ini i2v_pipeline)"
    )
