"""FLOPs of one UNet step and of the VAE decode, counted once per generation config with
``torch.utils.flop_counter.FlopCounterMode`` on an unmeasured one-step generation."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pytest_i2v.marks import GenerationSpec


@dataclass(frozen=True)
class FlopCount:
    unet_step: int  # one denoising step (the UNet call; classifier-free guidance is batched into it)
    decode: int  # the VAE decoder over all frames


def _cpu_attention_formulas() -> dict[Any, Any]:
    """torch counts SDPA's CUDA kernels but not its CPU kernel: add that one (same formula:
    Q K^T and A V, 2 * batch * heads * queries * keys * head dim each)."""
    import torch
    from torch.utils import flop_counter

    def cpu_sdpa(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return int(flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape))

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in flop_counter.flop_registry:
        return {}
    return {op: cpu_sdpa}


def count_flops(pipe: Any, spec: GenerationSpec, image: Any) -> FlopCount:
    from torch.utils.flop_counter import FlopCounterMode

    from pytest_i2v.measure.runner import generate

    counter = FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas())
    with counter:
        generate(pipe, replace(spec, steps=1), image)
    by_module = counter.get_flop_counts()
    unet = sum(by_module.get(type(pipe.unet).__name__, {}).values())
    decode = sum(by_module.get(type(pipe.vae.decoder).__name__, {}).values())
    return FlopCount(unet_step=int(unet), decode=int(decode))


def roofline(flops: FlopCount | None, step_s: float | None, decode_s: float | None,
             peak_tflops: float | None) -> dict[str, Any] | None:
    """Achieved throughput of the denoising loop (and the decode) against the GPU's datasheet peak."""
    if flops is None or not step_s:
        return None
    achieved = flops.unet_step / step_s / 1e12
    return {
        "unet_step_tflop": flops.unet_step / 1e12,
        "decode_tflop": flops.decode / 1e12,
        "denoise_tflops": achieved,
        "decode_tflops": flops.decode / decode_s / 1e12 if decode_s else None,
        "peak_tflops": peak_tflops,
        "efficiency": achieved / peak_tflops if peak_tflops else None,
    }
