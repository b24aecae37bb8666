"""FLOPs of one UNet step and of the VAE decode, counted once per generation config with
``torch.utils.flop_counter.FlopCounterMode`` on an unmeasured one-step generation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.record.parts import Roofline

# torch and the pipelines (diffusers) are imported where FLOPs are counted: only a run with a
# profile's peak TFLOPS counts them.


@dataclass(frozen=True)
class FlopCount:
    unet_step: (
        int  # one denoising step: every denoiser call in it (I2VGen-XL batches guidance into one)
    )
    decode: int  # the VAE decoder over all frames
    attention_counted: bool = (
        True  # False: the attention backend is no aten op FlopCounterMode knows
    )


# diffusers' backends that run through aten's SDPA ops, which FlopCounterMode has formulas for; the
# others (flash-attn, sage, xformers, flex, hub kernels) call kernels it cannot see.
ATEN_ATTENTION_BACKENDS = frozenset(
    {"native", "_native_math", "_native_flash", "_native_efficient", "_native_cudnn"}
)


def attention_is_counted(backend: str | None) -> bool:
    """Whether FlopCounterMode counts the attention of a denoiser run on ``backend`` (None: the
    default, torch's SDPA)."""
    return backend is None or backend in ATEN_ATTENTION_BACKENDS


def _cpu_attention_formulas() -> dict[Any, Any]:
    """torch counts SDPA's CUDA kernels but not its CPU kernel: add that one (same formula:
    Q K^T and A V, 2 * batch * heads * queries * keys * head dim each)."""
    import torch
    from torch.utils import flop_counter

    def cpu_sdpa(
        query_shape: Any,
        key_shape: Any,
        value_shape: Any,
        *args: Any,
        out_shape: Any = None,
        **kwargs: Any,
    ) -> int:
        return int(flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape))

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in flop_counter.flop_registry:
        return {}
    return {op: cpu_sdpa}


def count_flops(pipe: Any, spec: GenerationSpec, image: Any) -> FlopCount:
    """Counted on an unmeasured generation of as few steps as the pipeline allows (one, or
    LTX-Video's two), divided per step."""
    from torch.utils.flop_counter import FlopCounterMode

    from pytest_i2v.measure.runner import generate
    from pytest_i2v.pipelines import PIPELINES
    from pytest_i2v.pipelines.base import adapter_for

    steps = PIPELINES[spec.pipeline].constraints.min_steps
    counter = FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas())
    with counter:
        generate(pipe, replace(spec, steps=steps), image)
    by_module = counter.get_flop_counts()
    adapter = adapter_for(spec.pipeline)
    # Every denoiser call of a step (guidance may make two; Wan 2.2's experts share one
    # architecture).
    denoise = sum(
        sum(by_module.get(name, {}).values())
        for name in {type(m).__name__ for m in adapter.denoisers(pipe)}
    )
    decode = sum(by_module.get(type(adapter.vae_decoder(pipe)).__name__, {}).values())
    return FlopCount(
        unet_step=int(denoise) // steps,
        decode=int(decode),
        attention_counted=attention_is_counted(spec.attention),
    )


# fp32 matmuls run on TF32 tensor cores under these precisions (the default, "highest", keeps fp32).
TF32_MATMUL_PRECISIONS = ("high", "medium")


def peak_key_for(dtype: str, float32_matmul_precision: str, allow_tf32: bool) -> str:
    """The ``peak_tflops`` key that bounds a run: "tf32" for fp32 with TF32 matmuls on, else the
    dtype."""
    if dtype == "fp32" and (allow_tf32 or float32_matmul_precision in TF32_MATMUL_PRECISIONS):
        return "tf32"
    return dtype


def matmul_precision_state() -> tuple[str, bool]:
    """(``torch.get_float32_matmul_precision()``, TF32 allowed for CUDA matmuls), read without
    raising: an odd build or a renamed API must not fail a measurement ("highest", False = IEEE)."""
    import torch

    try:
        precision = str(torch.get_float32_matmul_precision())
    except Exception:
        precision = "highest"
    try:
        matmul = torch.backends.cuda.matmul
        # allow_tf32 is the older switch; fp32_precision ("tf32"/"ieee") the newer one.
        allow = bool(matmul.allow_tf32) or getattr(matmul, "fp32_precision", None) == "tf32"
    except Exception:
        allow = False
    return precision, allow


def roofline_peak(
    peak_tflops: Mapping[str, float], dtype: str, float32_matmul_precision: str, allow_tf32: bool
) -> tuple[float | None, str]:
    """(peak, its key) for a run: the TF32 peak for fp32 with TF32 on, falling back to the plain
    fp32 figure where a profile publishes none."""
    key = peak_key_for(dtype, float32_matmul_precision, allow_tf32)
    if key == "tf32" and key not in peak_tflops:
        key = dtype
    return peak_tflops.get(key), key


def roofline(
    flops: FlopCount | None,
    step_s: float | None,
    decode_s: float | None,
    peak_tflops: float | None,
    peak_kind: str | None = None,
) -> Roofline | None:
    """Achieved throughput of the denoising loop (and the decode) against the GPU's datasheet peak;
    ``peak_kind``: the ``peak_tflops`` key it came from (fp16, bf16, fp32 or tf32)."""
    if flops is None or not step_s:
        return None
    achieved = flops.unet_step / step_s / 1e12
    return Roofline(
        unet_step_tflop=flops.unet_step / 1e12,
        decode_tflop=flops.decode / 1e12,
        denoise_tflops=achieved,
        decode_tflops=flops.decode / decode_s / 1e12 if decode_s else None,
        peak_tflops=peak_tflops,
        peak_kind=peak_kind,
        efficiency=achieved / peak_tflops if peak_tflops else None,
        excludes_attention=not flops.attention_counted,
    )
