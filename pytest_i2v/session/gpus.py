"""One GPU per pytest-xdist worker: which CUDA device a worker measures on."""

from __future__ import annotations

from pytest_i2v.errors import I2VUsageError


def parse_gpu_list(text: str) -> tuple[int, ...]:
    try:
        gpus = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError("use comma-separated CUDA device indices, e.g. 0,1,2,3") from None
    if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise ValueError("use distinct non-negative CUDA device indices, e.g. 0,1,2,3")
    return gpus


def check_workers(workers: int, gpus: tuple[int, ...], allow_shared: bool) -> None:
    """Two generations on one GPU add up their VRAM (the study saw it crash): refuse unless
    forced."""
    if workers > len(gpus) and not allow_shared:
        listed = ",".join(map(str, gpus))
        raise I2VUsageError(
            f"{workers} xdist workers for {len(gpus)} GPU(s) ({listed}): two workers on one GPU "
            f"add up their VRAM and skew each other's times; use -n {len(gpus)}, list more GPUs "
            f"with --i2v-gpus, or pass --i2v-allow-shared-gpu"
        )


def worker_device(worker_id: str, gpus: tuple[int, ...], allow_shared: bool) -> str:
    """``gw3`` -> ``cuda:<the 4th listed GPU>``."""
    index = int(worker_id.removeprefix("gw"))
    if index >= len(gpus):
        check_workers(index + 1, gpus, allow_shared)
    return f"cuda:{gpus[index % len(gpus)]}"
