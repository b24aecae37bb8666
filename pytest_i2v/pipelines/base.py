"""The adapter interface: what the plugin needs to know to build, load, call and time one pipeline.

One subclass per pipeline, in ``pytest_i2v.pipelines.<module>``; ``adapter_for(name)`` imports it
lazily, so collecting tests never imports a pipeline's code. Defaults here cover the diffusers
conventions the video pipelines share (``transformer`` denoiser, ``callback_on_step_end``,
``enable_group_offload``, ``enable_layerwise_casting``, ``set_attention_backend``)."""

from __future__ import annotations

import abc
import contextlib
import importlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import torch

from pytest_i2v.errors import I2VUsageError, OptionUnavailable
from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.pipelines.registry import PIPELINES, PipelineInfo

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:  # Python 3.10
        from importlib.abc import Traversable

# diffusers is imported inside the methods that need it: adapter_for imports an adapter module
# without loading diffusers until a pipeline is built, loaded or checked.

# Published configs record the checkpoint's dtype, and transformers builds (parts of) a model in
# it whatever the default dtype says; the requested dtype decides, so these keys are dropped.
_DTYPE_KEYS = ("torch_dtype", "dtype")
# Where each pipeline's published component configs live (package data, no weights).
CONFIG_ROOT: Traversable = files("pytest_i2v") / "pipelines" / "configs"
# diffusers' float8 storage for enable_layerwise_casting (compute stays in the run's dtype).
FP8_STORAGE = torch.float8_e4m3fn


def read_config(
    directory: Traversable, component: str, filename: str = "config.json"
) -> dict[str, Any]:
    """A shipped component config without its dtype keys (the JSON document as the library's
    ``from_config`` and config classes take it)."""
    data = json.loads((directory / component / filename).read_text(encoding="utf-8"))
    return {key: value for key, value in data.items() if key not in _DTYPE_KEYS}


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@contextlib.contextmanager
def building(device: str | torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Build modules straight on ``device`` (``meta``: shapes only) in ``dtype``, with fixed
    seeds."""
    torch.manual_seed(0)
    with torch.device(device), default_dtype(dtype):
        yield


def cast_floating(
    modules: dict[str, torch.nn.Module], dtype: torch.dtype
) -> dict[str, torch.nn.Module]:
    """Overrule a library that still picks a dtype of its own for a submodule. Only then: diffusers
    warns on every ``.to(dtype)`` of a model; integer buffers (CLIP's position ids) are not weights
    and keep their dtype either way."""
    for name, module in modules.items():
        if any(
            t.is_floating_point() and t.dtype != dtype
            for t in (*module.parameters(), *module.buffers())
        ):
            modules[name] = module.to(dtype)
    return modules


# diffusers hands a step-end callback the tensors it names in callback_on_step_end_tensor_inputs.
StepEndCallback = Callable[[Any, int, Any, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


class PipelineCallKwargs(TypedDict, total=False):
    """The keyword arguments of one pipeline call; each adapter sets those its pipeline takes."""

    image: Any  # the conditioning image as the caller hands it over (a PIL image or a tensor)
    prompt: str
    height: int
    width: int
    num_frames: int
    num_inference_steps: int
    guidance_scale: float
    guidance_scale_2: float  # Wan 2.2's low-noise expert
    max_guidance_scale: float  # SVD's ramp ends there
    fps: int  # SVD's micro-conditioning
    target_fps: int  # I2VGen-XL
    frame_rate: int  # LTX-Video
    decode_chunk_size: int
    max_sequence_length: int
    generator: torch.Generator
    callback_on_step_end: StepEndCallback


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class PipelineAdapter(abc.ABC):
    """Subclasses set ``name`` and implement ``build_tiny``, ``build_fullsize`` and
    ``call_kwargs``."""

    name: str = ""
    # diffusers' process-wide attention backend before this test's attention= (apply_toggles)
    _saved_backend: Any = None

    @property
    def info(self) -> PipelineInfo:
        return PIPELINES[self.name]

    # ------------------------------------------------------------------ building and loading
    def pipeline_class(self) -> Any:
        import diffusers

        return getattr(diffusers, self.info.pipeline_class)

    @abc.abstractmethod
    def build_tiny(self, work_dir: Path) -> Any:
        """A tiny random pipeline on the CPU (well under 1 s per 64x64, few-frame, 2-step
        generation)."""

    def save_tiny(self, work_dir: Path) -> Path:
        """Build the tiny pipeline and ``save_pretrained`` it; returns the diffusers directory."""
        target = work_dir / f"tiny-{self.name}"
        if not (target / "model_index.json").is_file():
            self.build_tiny(work_dir).save_pretrained(str(target), safe_serialization=True)
        return target

    @abc.abstractmethod
    def build_fullsize(self, device: str | torch.device, dtype: torch.dtype, work_dir: Path) -> Any:
        """The full-size architecture with random weights from the shipped configs
        (``device="meta"``: shapes only, for parameter counts)."""

    def fullsize_denoisers(
        self, device: str | torch.device = "meta", dtype: torch.dtype = torch.bfloat16
    ) -> list[Any]:
        """The full-size denoiser(s) alone (what a model card's parameter count describes)."""
        with tempfile.TemporaryDirectory(
            prefix="pytest-i2v-"
        ) as work_dir:  # the offline tokenizers are written there
            return self.denoisers(self.build_fullsize(device, dtype, Path(work_dir)))

    def after_load(self, pipe: Any) -> None:  # noqa: B027 (optional hook)
        """Guarded compatibility fixes for the installed libraries (none by default)."""

    def tune_tiny(self, pipe: Any) -> None:  # noqa: B027 (optional hook)
        """Runtime switches for the tiny model only, where a real-size default costs the CPU far
        more than it saves (none by default; the full-size and real models keep diffusers'
        defaults)."""

    # ------------------------------------------------------------------ calling and timing
    def denoisers(self, pipe: Any) -> list[Any]:
        """The denoising model(s), in call order (Wan 2.2: the high-noise expert, then the low-noise
        one)."""
        found = [getattr(pipe, attr, None) for attr in ("transformer", "transformer_2", "unet")]
        return [m for m in found if m is not None]

    def vae_decoder(self, pipe: Any) -> Any:
        return pipe.vae.decoder

    @abc.abstractmethod
    def call_kwargs(
        self, spec: GenerationSpec, image: Any, generator: torch.Generator
    ) -> PipelineCallKwargs:
        """The pipeline's own arguments for ``spec`` (never ``output_type`` or callbacks)."""

    def generate(
        self,
        pipe: Any,
        spec: GenerationSpec,
        image: Any,
        step_end: Any = None,
        latents_seen: Callable[[torch.Tensor], None] | None = None,
    ) -> Any:
        """One generation with reproducible inputs; returns frames as (1, F, H, W, 3) numpy.

        ``generator=`` alone is not enough: ``vae.encode(...).latent_dist.sample()`` ignores it in
        some pipelines, so the global torch RNG is seeded too. ``step_end(step)`` is called at the
        end of every denoising step through ``callback_on_step_end`` (one call per step, whatever
        the number of denoiser calls); ``latents_seen(latents)`` there too, so the last call hands
        over the final latents before decode (a reference, no copy: nothing more is timed)."""
        torch.manual_seed(spec.seed)
        generator = torch.Generator("cpu").manual_seed(spec.seed)
        kwargs = self.call_kwargs(spec, image, generator)
        wanted = step_end is not None or latents_seen is not None
        if wanted and self.info.step_callbacks:

            def callback(
                pipeline: Any, step: int, timestep: Any, callback_kwargs: dict[str, torch.Tensor]
            ) -> dict[str, torch.Tensor]:
                latents = callback_kwargs.get("latents")
                if latents_seen is not None and latents is not None:
                    latents_seen(latents)
                if step_end is not None:
                    step_end(step + 1)
                return callback_kwargs

            kwargs["callback_on_step_end"] = callback
        return pipe(**kwargs, output_type="np").frames

    # ------------------------------------------------------------------ memory options
    def place(self, pipe: Any, offload: str | None, device: str) -> None:
        """Offload hooks that move each component to ``device`` when it runs, or the whole pipeline
        on it."""
        if offload == "model_cpu_offload":
            pipe.enable_model_cpu_offload(device=device)
        elif offload == "sequential_cpu_offload":
            pipe.enable_sequential_cpu_offload(device=device)
        elif offload == "group_offload":
            # Leaf-level groups with a CUDA stream: diffusers' recommended trade-off (transfers
            # overlap compute).
            onload = torch.device(device)
            pipe.enable_group_offload(
                onload_device=onload,
                offload_device=torch.device("cpu"),
                offload_type="leaf_level",
                use_stream=onload.type == "cuda",
            )  # streams: CUDA only
        else:
            pipe.to(device)

    def apply_load_options(self, pipe: Any, options: tuple[str, ...], dtype: torch.dtype) -> None:
        """Options that change the loaded weights or modules for good (part of the cache key).

        Layerwise casting first, whatever the mark's order: its hooks build ``nn.Parameter``s inside
        forward, which Dynamo can only step around (a graph break), so compile comes after them and
        without ``fullgraph`` when they are there (with it, each break is fatal)."""
        if "layerwise_fp8" in options:
            for model in self.denoisers(pipe):
                model.enable_layerwise_casting(storage_dtype=FP8_STORAGE, compute_dtype=dtype)
        if "torch_compile" in options:
            fullgraph = "layerwise_fp8" not in options
            for model in self.denoisers(pipe):
                # Regional compilation where the model declares its repeated blocks: the same
                # steady-state speed as whole-model compile, a fraction of the compile time.
                if getattr(model, "_repeated_blocks", None):
                    model.compile_repeated_blocks(fullgraph=fullgraph, dynamic=False)
                else:
                    model.compile(fullgraph=fullgraph, dynamic=False)

    def apply_toggles(self, pipe: Any, toggles: tuple[str, ...], attention: str | None) -> None:
        """Per-test options that ``reset_toggles`` undoes."""
        for toggle in toggles:
            if toggle == "vae_slicing":
                pipe.vae.enable_slicing()
            elif toggle == "vae_tiling":
                pipe.vae.enable_tiling()
            elif toggle == "forward_chunking":
                for model in self.denoisers(pipe):
                    model.enable_forward_chunking(chunk_size=1, dim=1)
        if attention is not None:
            # set_attention_backend also sets diffusers' process-wide active backend, which
            # reset_attention_backend leaves alone: remember it, so that reset_toggles puts it back.
            self._saved_backend = self._saved_backend or _active_attention_backend()
            for model in self.denoisers(pipe):
                try:
                    model.set_attention_backend(attention)
                except (
                    RuntimeError,
                    ImportError,
                ) as exc:  # e.g. flash-attn or sageattention not installed
                    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    raise OptionUnavailable(
                        f"attention={attention!r} is not usable for pipeline {self.name} "
                        f"here: {reason}"
                    ) from None

    def reset_toggles(self, pipe: Any) -> None:
        vae = pipe.vae
        for method in ("disable_slicing", "disable_tiling"):
            if hasattr(vae, method):
                getattr(vae, method)()
        for model in self.denoisers(pipe):
            if "forward_chunking" in self.info.memory_options and hasattr(
                model, "disable_forward_chunking"
            ):
                model.disable_forward_chunking()
            if self.info.attention_backends and hasattr(model, "reset_attention_backend"):
                model.reset_attention_backend()
        if self._saved_backend is not None:
            _restore_attention_backend(self._saved_backend)
            self._saved_backend = None


def _attention_registry() -> Any:
    """diffusers' process-wide attention backend registry (None where this diffusers has none)."""
    try:
        from diffusers.models.attention_dispatch import _AttentionBackendRegistry
    except ImportError:
        return None
    return _AttentionBackendRegistry


def _active_attention_backend() -> Any:
    registry = _attention_registry()
    return registry.get_active_backend()[0] if registry is not None else None


def _restore_attention_backend(backend: Any) -> None:
    registry = _attention_registry()
    if registry is not None:
        registry.set_active_backend(backend)


def check_attention_backend(name: str) -> None:
    """A mark's ``attention=``: one of the installed diffusers' backend names (a usage error
    otherwise)."""
    from diffusers.models.attention_dispatch import AttentionBackendName

    known = [backend.value for backend in AttentionBackendName]
    if name not in known:
        raise I2VUsageError(
            f"attention={name!r} is not a diffusers attention backend; use one of "
            f"{', '.join(known)}"
        )


def adapter_for(name: str) -> PipelineAdapter:
    """The adapter of a registered pipeline (its module is imported on first use)."""
    info = PIPELINES[name]
    module = importlib.import_module(f"pytest_i2v.pipelines.{info.module}")
    adapter: PipelineAdapter = module.ADAPTERS[name]
    return adapter
