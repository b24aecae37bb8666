"""The simulated card's memory: torch's caching allocator, simplified, and the OOM forms it raises.

Activations and weights are ``Block``s owned by Python objects, so a traceback that keeps frames
alive keeps their memory allocated, as real tensors do. The limit and who owns which block are the
device's (``measure.simulated.SimulatedCudaDevice``); here only the allocator's arithmetic."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

# torch is imported inside simulated_oom: the simulated machine is built without torch (the
# simulated plugin and the tests' fixtures import it cheaply); only an induced OOM needs it.
MiB = 2**20
GiB = 2**30
SEGMENT_BYTES = 2 * MiB


def segment(size: int) -> int:
    """The reserved segment a block of ``size`` bytes gets: rounded up to ``SEGMENT_BYTES``."""
    return -(-size // SEGMENT_BYTES) * SEGMENT_BYTES


def simulated_oom(form: str, wanted: int) -> BaseException:
    """The exception a real card raises for an allocation that does not fit, in one of its forms."""
    import torch

    if form == "cublas":
        return RuntimeError(
            "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"
        )
    if form == "cudnn":
        return RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED")
    return torch.cuda.OutOfMemoryError(
        f"CUDA out of memory. Tried to allocate {wanted / MiB:.2f} MiB (simulated)"
    )


class Block:
    """Simulated device memory owned by a Python object: freed when the object is collected.
    ``release``: what frees its ``size`` bytes (the device's allocator)."""

    def __init__(self, release: Callable[[int], None], size: int):
        self.size = size
        self._finalizer = weakref.finalize(self, release, size)

    def free(self) -> None:
        self._finalizer()


@dataclass
class SimulatedAllocator:
    """torch's caching allocator, simplified: each block gets a segment rounded up to
    ``SEGMENT_BYTES``; a freed block's segment stays reserved (cached) for reuse until
    ``empty_cache`` returns it, and a segment that holds a live block is never returned, so
    reserved stays at or above allocated."""

    allocated: int = 0
    reserved: int = 0
    cached: int = 0  # reserved segments with no live block
    peak_allocated: int = 0
    peak_reserved: int = 0

    def take(self, size: int) -> None:
        """Allocate ``size`` bytes (the caller checked the limit)."""
        self.allocated += size
        needed = segment(size)
        # a cached segment first (the cache keeps freed blocks' memory)
        reused = min(self.cached, needed)
        self.cached -= reused
        self.reserved += needed - reused
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        self.peak_reserved = max(self.peak_reserved, self.reserved)

    def give_back(self, size: int) -> None:
        """A block of ``size`` bytes was freed: its segment stays reserved, cached."""
        self.allocated -= size
        self.cached += segment(size)

    def empty_cache(self) -> None:
        """Cached segments go back; a segment that holds a live block stays reserved."""
        self.reserved -= self.cached
        self.cached = 0

    def reset_peaks(self) -> None:
        self.peak_allocated = self.allocated
        self.peak_reserved = self.reserved
