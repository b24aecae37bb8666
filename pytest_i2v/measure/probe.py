"""The machine speed probe: fixed work on the run's device, timed, so that a slower machine can be
told from slower code (``pytest_i2v.verdict.machine_speed`` compares the figures).

Three figures, each from ``REPEATS`` timed repeats after one untimed one, synchronised (the median
of the fastest ``FASTEST``):

- ``gemm_gflops``: matrix products (compute), float32 on the CPU, float16 on CUDA;
- ``copy_gbs``: a large tensor copy (memory bandwidth), bytes read plus written per second;
- ``tiny_ops_per_ms``: a burst of one-element additions (launch and host overhead).

About 0.6 s on the 2-core CPU default once torch is loaded (``benchmarks/machine_probe.py``), less
on a GPU. A simulated device on the virtual clock reads its simulated machine's figures
(``measure.simulated``: real work would not move its clock), so verdicts there never depend on the
real machine; a device whose clock does not move gives None."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch

from pytest_i2v.measure.device import Device

REPEATS = 15
FASTEST = 5  # the figure: the median of the fastest five
# Each repeat about 10-20 ms on the 2-core CPU (gemm: `inner` products of n x n): long enough that a
# timer tick or a context switch is a small part of it, short enough for the whole probe to stay
# under 1 s.
CPU_SIZES = {"gemm": 512, "inner": 6, "copy_mib": 64, "tiny_ops": 4000}
CUDA_SIZES = {"gemm": 4096, "inner": 4, "copy_mib": 1024, "tiny_ops": 4000}


def _timed(device: Device, work: Callable[[], object]) -> float | None:
    work()  # untimed: first-call paths, allocation
    device.synchronize()
    seconds = []
    for _ in range(REPEATS):
        start = device.now()
        work()
        device.synchronize()
        seconds.append(device.now() - start)
    # The fastest repeats: what the machine does when nothing interrupts it. A neighbour or a slow
    # clock that lasts slows them all; a blip (a context switch, a page fault) only some.
    fastest = statistics.median(sorted(seconds)[:FASTEST])
    return fastest if fastest > 0 else None


def run_probe(device: Device) -> dict[str, float] | None:
    """The probe's figures on ``device`` (higher is faster), or None where its clock does not
    move."""
    simulated = getattr(device, "simulated_probe", None)
    if callable(
        simulated
    ):  # a simulated device on the virtual clock: its machine's figures (measure.simulated)
        figures: dict[str, float] = simulated()
        return figures
    on_gpu = device.is_cuda and device.placement != "cpu"  # the simulated card computes on the CPU
    sizes = CUDA_SIZES if on_gpu else CPU_SIZES
    dtype = torch.float16 if on_gpu else torch.float32
    with device.activate(), torch.inference_mode():
        n = sizes["gemm"]
        a = torch.ones(n, n, dtype=dtype, device=device.placement)
        b = torch.ones(n, n, dtype=dtype, device=device.placement)
        product = torch.empty(n, n, dtype=dtype, device=device.placement)
        inner = sizes["inner"]

        def products() -> None:
            for _ in range(inner):
                torch.mm(a, b, out=product)

        gemm = _timed(device, products)
        elements = sizes["copy_mib"] * 2**20 // 4
        source = torch.ones(elements, dtype=torch.float32, device=device.placement)
        target = torch.empty_like(source)
        copy = _timed(device, lambda: target.copy_(source))
        one = torch.ones(1, device=device.placement)

        def burst() -> None:
            value: Any = one
            for _ in range(sizes["tiny_ops"]):
                value = value + 1

        tiny = _timed(device, burst)
    if gemm is None or copy is None or tiny is None:
        return None
    return {
        "gemm_gflops": 2 * n**3 * inner / gemm / 1e9,
        "copy_gbs": 2 * elements * 4 / copy / 1e9,
        "tiny_ops_per_ms": sizes["tiny_ops"] / tiny / 1e3,
    }
