"""A simulated CUDA device for the CPU: the CUDA code paths without a GPU.

The model computes on the CPU; memory is modelled like torch's caching allocator (allocated,
reserved that only ``empty_cache`` returns, peaks reset by ``reset_peak_stats``) plus what NVML
adds (the CUDA context, other processes). Activations are blocks owned by Python objects, so a
traceback that keeps frames alive keeps their memory allocated, as real tensors do. An allocation
past the limit raises one of the real OOM forms. Used by the tests and ``gpu-check --dry-run``;
a measurement run never uses it."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_i2v.measure.device import Clock, DeviceInfo, HostClock, NvmlReading, parse_device

MiB = 2**20
GiB = 2**30



def simulated_oom(form: str, wanted: int) -> BaseException:
    import torch

    if form == "cublas":
        return RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")
    if form == "cudnn":
        return RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED")
    return torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {wanted / MiB:.2f} MiB (simulated)")


@dataclass
class SimulatedGpu:
    """The card being simulated and how its NVML behaves."""

    name: str = "NVIDIA H200"
    total_bytes: int = 141 * 10**9
    sm_count: int = 132
    power_limit_w: float | None = 700.0  # the H200 SXM board's default limit; None: NVML cannot say
    form: str | None = None  # "PCIe", "SXM", "NVL"; None: read from the name, as on a real card
    context_bytes: int = 512 * MiB  # the CUDA context: NVML counts it, the allocator does not
    other_process_bytes: int = 0  # neighbours: only a device-wide NVML figure sees them
    nvml: str = "process"  # "process", "device" (no per-process figures), "unavailable", "mismatch"
    oom_form: str = "allocator"
    bytes_per_element: int = 4096  # scales the tiny model's activations to GPU-like sizes
    weight_scale: int = 4  # scales the tiny model's weights likewise (activations dominate, as at 1024p)


class Block:
    """Simulated device memory owned by a Python object: freed when the object is collected."""

    def __init__(self, device: SimulatedCudaDevice, size: int):
        self.size = size
        self._finalizer = weakref.finalize(self, device._release, size)

    def free(self) -> None:
        self._finalizer()


@dataclass
class _Allocator:
    allocated: int = 0
    reserved: int = 0
    peak_allocated: int = 0
    peak_reserved: int = 0


class SimulatedCudaDevice:
    """A ``Device`` whose memory the tests drive; every call is logged with the index it named."""

    is_cuda = True
    placement = "cpu"

    def __init__(self, index: int, gpu: SimulatedGpu, log: list[tuple[str, int]]):
        self.index = index
        self.name = f"cuda:{index}"
        self.gpu = gpu
        self.calls = log
        self.memory = _Allocator()
        self.limit_bytes = gpu.total_bytes - gpu.context_bytes
        self.weights: dict[str, Block] = {}
        self._live: list[Block] = []

    # -- the simulated allocator ------------------------------------------------------
    def _release(self, size: int) -> None:
        self.memory.allocated -= size

    def allocate(self, size: int) -> Block:
        memory = self.memory
        if memory.allocated + size > self.limit_bytes:
            # The frames of this call hold the blocks that were live: as with real tensors, they stay
            # allocated until the traceback is dropped.
            pending = list(self._live)  # noqa: F841 (kept alive by this frame, as tensors are)
            self._live.clear()
            raise simulated_oom(self.gpu.oom_form, size)
        memory.allocated += size
        memory.reserved = max(memory.reserved, memory.allocated)  # the cache grows and keeps its blocks
        memory.peak_allocated = max(memory.peak_allocated, memory.allocated)
        memory.peak_reserved = max(memory.peak_reserved, memory.reserved)
        return Block(self, size)

    def set_memory_fraction(self, fraction: float) -> None:
        """``torch.cuda.set_per_process_memory_fraction``: allocations past it fail."""
        self.limit_bytes = int(self.gpu.total_bytes * fraction)

    def attach(self, pipe: Any, models: list[Any] | None = None) -> list[Any]:
        """From now on, each forward of ``models`` (default: the UNet and the VAE decoder; a pipeline's
        adapter names its denoisers) holds activations sized by its input; returns the hook handles
        (``handle.remove()`` detaches)."""
        handles = []
        for model in models if models is not None else [pipe.unet, pipe.vae.decoder]:
            # Inside the forward (its first layer), as a real allocation fails after the model's own hooks ran.
            module = getattr(model, "conv_in", model)
            handles.append(module.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
            handles.append(model.register_forward_hook(self._post_hook))
        return handles

    @contextlib.contextmanager
    def workload(self, pipe: Any) -> Iterator[None]:
        handles = self.attach(pipe)
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _pre_hook(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        # Transformers are called with keywords only (hidden_states=...), UNets positionally.
        sample: Any = args[0] if args else kwargs.get("hidden_states", kwargs.get("sample"))
        elements = int(sample.numel()) if hasattr(sample, "numel") else 1
        self._live.append(self.allocate(elements * self.gpu.bytes_per_element))

    def _post_hook(self, module: Any, args: Any, output: Any) -> None:
        if self._live:
            self._live.pop().free()

    def place_weights(self, pipe: Any, components: tuple[str, ...] = (
            "unet", "transformer", "transformer_2", "vae", "text_encoder", "text_encoder_2", "image_encoder")) -> None:
        """Count the named components' weights as resident on the device."""
        for name in components:
            module = getattr(pipe, name, None)
            if module is not None and name not in self.weights:
                size = sum(p.numel() * p.element_size() for p in module.parameters()) * self.gpu.weight_scale
                self.weights[name] = self.allocate(size)

    def remove_weights(self, components: tuple[str, ...] | None = None) -> None:
        for name in list(self.weights) if components is None else components:
            block = self.weights.pop(name, None)
            if block is not None:
                block.free()

    # -- the Device protocol ----------------------------------------------------------
    def _log(self, call: str) -> None:
        self.calls.append((call, self.index))

    def activate(self) -> contextlib.AbstractContextManager[None]:
        self._log("activate")
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        self._log("synchronize")

    def clock(self) -> Clock:
        self._log("clock")
        return HostClock()  # the work runs synchronously on the CPU

    def empty_cache(self) -> None:
        self._log("empty_cache")
        self.memory.reserved = self.memory.allocated

    def reset_peak_stats(self) -> None:
        self._log("reset_peak_stats")
        self.memory.peak_allocated = self.memory.allocated
        self.memory.peak_reserved = self.memory.reserved

    def allocated_bytes(self) -> int | None:
        self._log("allocated_bytes")
        return self.memory.allocated

    def reserved_bytes(self) -> int | None:
        self._log("reserved_bytes")
        return self.memory.reserved

    def peak_allocated_bytes(self) -> int | None:
        self._log("peak_allocated_bytes")
        return self.memory.peak_allocated

    def peak_reserved_bytes(self) -> int | None:
        self._log("peak_reserved_bytes")
        return self.memory.peak_reserved

    def info(self) -> DeviceInfo | None:
        self._log("info")
        return DeviceInfo(name=self.gpu.name, total_bytes=self.gpu.total_bytes, index=self.index, sm_count=self.gpu.sm_count,
                          # the power limit comes from NVML: without it, unknown (as on a real card)
                          power_limit_w=self.gpu.power_limit_w if self.gpu.nvml in ("process", "device") else None,
                          form=self.gpu.form)

    def nvml_memory(self) -> NvmlReading:
        mode = self.gpu.nvml
        process = self.gpu.context_bytes + self.memory.reserved
        if mode == "process":
            return NvmlReading(process, "process")
        if mode == "device":
            return NvmlReading(process + self.gpu.other_process_bytes, "device")
        return NvmlReading(None, "unavailable")

    @property
    def nvml_note(self) -> str | None:
        if self.gpu.nvml == "mismatch":
            return "NVML driver/library version mismatch (NVMLError_LibraryVersionMismatch): device memory not measured"
        if self.gpu.nvml == "unavailable":
            return "NVML unavailable (NVMLError_LibraryNotFound): device memory not measured"
        return None


@dataclass
class SimulatedRuntime:
    """A machine with simulated GPUs; ``open`` returns the same device object for the same index."""

    gpus: list[SimulatedGpu] = field(default_factory=lambda: [SimulatedGpu()])
    calls: list[tuple[str, int]] = field(default_factory=list)
    devices: dict[int, SimulatedCudaDevice] = field(default_factory=dict)
    last_opened: SimulatedCudaDevice | None = None

    def cuda_count(self) -> int:
        return len(self.gpus)

    def open(self, name: str) -> Any:
        from pytest_i2v.measure.device import CpuDevice

        kind, index = parse_device(name, self.cuda_count())
        if kind == "cpu" or index is None:
            return CpuDevice()
        if index not in self.devices:
            self.devices[index] = SimulatedCudaDevice(index, self.gpus[index], self.calls)
        self.last_opened = self.devices[index]
        return self.last_opened

