"""A simulated CUDA device for the CPU: the CUDA code paths without a GPU.

The model computes on the CPU; memory is modelled like torch's caching allocator (allocated,
reserved that only ``empty_cache`` returns, peaks reset by ``reset_peak_stats``) plus what NVML
adds (the CUDA context, other processes). Activations are blocks owned by Python objects, so a
traceback that keeps frames alive keeps their memory allocated, as real tensors do. An allocation
past the limit raises one of the real OOM forms. NVML's clocks, temperature, power and throttle
reasons come from a ``SimulatedNvml`` that the real reading and locking code (``measure.clocks``)
calls; a throttled generation reads throttled and runs slower. Used by the tests and
``gpu-check --dry-run``; a measurement run never uses it.

Virtual time (deterministic seconds instead of the CPU's): ``measure.virtual_time``."""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_i2v.measure.device import CpuDevice, CudaDevice, parse_device
from pytest_i2v.measure.simulated_libs import SimulatedKernels, SimulatedPynvml, SimulatedTorchCuda
from pytest_i2v.measure.virtual_time import (
    VirtualCpuDevice,
    VirtualTime,
    VirtualWork,
    VirtualWorkHooks,
    input_elements,
)

MiB = 2**20
GiB = 2**30


def simulated_oom(form: str, wanted: int) -> BaseException:
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


@dataclass(frozen=True)
class SimulatedThrottle:
    """How a throttled generation runs: NVML's reasons bitmask (0x20: SW thermal slowdown, 0x4: SW power
    cap; see ``conditions.THROTTLE_BITS``), the SM clock it drops to, and what NVML reads meanwhile. Its
    denoiser and decoder forwards take ``card clock / sm_clock_mhz`` times as long."""

    reasons_mask: int = 0x20
    sm_clock_mhz: float = 990.0
    temperature_c: float | None = 90.0  # None: the card's nominal reading
    power_w: float | None = None


@dataclass
class SimulatedGpu:
    """The card being simulated and how its NVML behaves.

    Clocks, temperature and power are a simulated card's figures, not a datasheet's. Unthrottled, the
    card boosts between ``boost_clocks_mhz`` (one per generation, in turn) above its base clock and sits
    at its software power cap (``reasons_mask``), as a datacenter board does under sustained load.
    ``throttled`` drives throttling: generation number -> ``SimulatedThrottle``, where generations are
    counted per device from 1, each warm-up and repeat the runner measures being one (a test with
    ``warmup=1`` and five repeats throttles its 2nd and 4th repeats with ``{3: ..., 5: ...}``).
    ``clock_lock`` says what NVML answers to a clock lock: "allowed", "no-permission" (not root) or
    "not-supported"."""

    name: str = "NVIDIA H200"
    total_bytes: int = 141 * 10**9
    sm_count: int = 132
    power_limit_w: float | None = 700.0  # the H200 SXM board's default limit; None: NVML cannot say
    context_bytes: int = 512 * MiB  # the CUDA context: NVML counts it, the allocator does not
    other_process_bytes: int = 0  # neighbours: only a device-wide NVML figure sees them
    nvml: str = "process"  # "process", "device" (no per-process figures), "unavailable", "mismatch"
    oom_form: str = "allocator"
    bytes_per_element: int = 4096  # scales the tiny model's activations to GPU-like sizes
    weight_scale: int = (
        4  # scales the tiny model's weights likewise (activations dominate, as at 1024p)
    )
    sm_clock_mhz: float = 1980.0  # the reference clock: the CPU's compute stands for work at it
    boost_clocks_mhz: tuple[float, ...] = (
        1980.0,
        1965.0,
        1950.0,
        1965.0,
    )  # unthrottled, generation by generation
    reasons_mask: int = 0x4  # unthrottled: at the software power cap (normal above the base clock)
    # GPU time each denoiser/decoder forward adds at that clock: 0 keeps the tests quick; a test of timing
    # under throttling sets it, so that the clock and not the CPU's noise decides the slow repeats.
    forward_kernel_s: float = 0.0
    base_clock_mhz: float = (
        1590.0  # NVML's default applications clock: what --i2v-lock-clocks locks at
    )
    mem_clock_mhz: float = 2619.0
    temperature_c: float = 45.0
    power_w: float = 350.0
    throttled: dict[int, SimulatedThrottle] = field(default_factory=dict)
    clock_lock: str = "allowed"
    memory_clock_lock: bool = (
        True  # whether NVML can lock the memory clock (NotSupported otherwise)
    )
    # How NVML finds it: a MIG instance has a MIG- UUID; nvml_index is its physical index (NVML ignores
    # CUDA_VISIBLE_DEVICES; None: the CUDA index); container_pid: the PID NVML reports for this process
    # (a container's PID namespace; None: os.getpid()); process_memory_unknown: usedGpuMemory is None.
    mig: bool = False
    nvml_index: int | None = None
    container_pid: int | None = None
    process_memory_unknown: bool = False
    reasons_query: str = (
        "event"  # "throttle": a driver that has only the older throttle-reasons query
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulatedGpu:
        """From JSON (``PYTEST_I2V_SIMULATED_GPUS``): ``throttled`` maps generation numbers (as strings)
        to ``SimulatedThrottle`` fields."""
        throttled = {
            int(k): SimulatedThrottle(**v) for k, v in (data.get("throttled") or {}).items()
        }
        boost = (
            tuple(data["boost_clocks_mhz"]) if "boost_clocks_mhz" in data else cls.boost_clocks_mhz
        )
        return cls(**{**data, "throttled": throttled, "boost_clocks_mhz": boost})


class Block:
    """Simulated device memory owned by a Python object: freed when the object is collected."""

    def __init__(self, device: SimulatedCudaDevice, size: int):
        self.size = size
        self._finalizer = weakref.finalize(self, device._release, size)

    def free(self) -> None:
        self._finalizer()


@dataclass
class _Allocator:
    """torch's caching allocator, simplified: each block gets a segment rounded up to ``SEGMENT_BYTES``;
    a freed block's segment stays reserved (cached) for reuse until ``empty_cache`` returns it, and a
    segment that holds a live block is never returned, so reserved stays at or above allocated."""

    allocated: int = 0
    reserved: int = 0
    cached: int = 0  # reserved segments with no live block
    peak_allocated: int = 0
    peak_reserved: int = 0


SEGMENT_BYTES = 2 * MiB
# The pipeline components whose weights a GPU would hold.
WEIGHT_COMPONENTS = (
    "unet",
    "transformer",
    "transformer_2",
    "vae",
    "text_encoder",
    "text_encoder_2",
    "image_encoder",
)


def segment(size: int) -> int:
    return -(-size // SEGMENT_BYTES) * SEGMENT_BYTES


class SimulatedCudaDevice(CudaDevice):
    """One simulated card: the project's own ``CudaDevice`` over the stand-in ``torch.cuda`` and
    ``pynvml`` (``measure.simulated_libs``), plus the card's state they answer from: the allocator
    (driven by the workload's forwards), the clocks and events, and NVML's view of it."""

    def __init__(
        self,
        index: int,
        gpu: SimulatedGpu,
        runtime: SimulatedRuntime,
        work: VirtualWork | None = None,
    ):
        super().__init__(
            index,
            nvml=runtime.nvml,
            cuda=runtime.cuda,
            placement="cpu",  # it computes on the CPU
            kernels=SimulatedKernels(),
        )
        self.gpu = gpu
        self.calls = runtime.calls
        self.time = (
            VirtualTime(work.machine_speed) if work is not None else None
        )  # None: real time (the CPU's)
        self._virtual = (
            VirtualWorkHooks(self.time, work, self._slowdown)
            if self.time is not None and work
            else None
        )
        self.memory = _Allocator()
        self.limit_bytes = gpu.total_bytes - gpu.context_bytes
        self.weights: dict[str, Block] = {}
        self._live: list[Block] = []
        self._started: list[
            float
        ] = []  # when each forward under way began (to slow it down when throttled)
        self.pending_events: list[Any] = []  # recorded, not yet completed by a synchronise
        self.generation = 0  # generations run so far (see SimulatedGpu.throttled)
        self._next_generation = False  # peaks were reset: the next forward starts a generation
        self.locked_sm_clock_mhz: float | None = None
        self.locked_mem_clock_mhz: float | None = None
        uuid = f"{index:08x}-5eed-4000-8000-{0x1200 + index:012x}"
        self.cuda_uuid = uuid  # torch prints it bare
        self.nvml_uuid = f"{'MIG' if gpu.mig else 'GPU'}-{uuid}"
        self.nvml_index = gpu.nvml_index if gpu.nvml_index is not None else index

    # -- the simulated clocks -----------------------------------------------------------

    @property
    def simulated_probe(self) -> Any:
        """On the virtual clock, the simulated machine's probe figures; in real time None (the real probe runs)."""
        return self.time.probe if self.time is not None else None

    def throttle_now(self) -> SimulatedThrottle | None:
        """The throttle of the generation under way, or of the one about to start (the runner resets
        the peaks, then starts sampling NVML, then generates)."""
        return self.gpu.throttled.get(self._generation_now())

    def _generation_now(self) -> int:
        return self.generation + (1 if self._next_generation else 0)

    def _slowdown(self) -> float:
        return self.gpu.sm_clock_mhz / self.sm_clock_now()

    def now(self) -> float:
        return self.time.now if self.time is not None else time.perf_counter()

    def add_work(self, seconds: float) -> None:
        """Work a test injects (as if it ran on this device at its clock now)."""
        if self.time is not None:
            self.time.advance(seconds * self._slowdown())
        else:
            time.sleep(seconds)

    def sm_clock_now(self) -> float:
        throttle = self.throttle_now()
        if throttle is not None:
            return throttle.sm_clock_mhz
        if self.locked_sm_clock_mhz:
            return self.locked_sm_clock_mhz
        boost = self.gpu.boost_clocks_mhz or (self.gpu.sm_clock_mhz,)
        return boost[max(self._generation_now() - 1, 0) % len(boost)]

    def reasons_now(self) -> int:
        throttle = self.throttle_now()
        return throttle.reasons_mask if throttle is not None else self.gpu.reasons_mask

    def complete_events(self) -> None:
        """A synchronise returned: every event recorded before it has completed."""
        for event in self.pending_events:
            event.completed = True
        self.pending_events.clear()

    # -- the simulated allocator ------------------------------------------------------
    def _release(self, size: int) -> None:
        self.memory.allocated -= size
        self.memory.cached += segment(size)

    def allocate(self, size: int) -> Block:
        memory = self.memory
        if memory.allocated + size > self.limit_bytes:
            # The frames of this call hold the blocks that were live: as with real tensors, they stay
            # allocated until the traceback is dropped.
            pending = list(self._live)  # noqa: F841 (kept alive by this frame, as tensors are)
            self._live.clear()
            self._started.clear()
            raise simulated_oom(self.gpu.oom_form, size)
        memory.allocated += size
        needed = segment(size)
        reused = min(
            memory.cached, needed
        )  # a cached segment first (the cache keeps freed blocks' memory)
        memory.cached -= reused
        memory.reserved += needed - reused
        memory.peak_allocated = max(memory.peak_allocated, memory.allocated)
        memory.peak_reserved = max(memory.peak_reserved, memory.reserved)
        return Block(self, size)

    def release_cache(self) -> None:
        """``empty_cache``: cached segments go back; a segment that holds a live block stays reserved."""
        self.memory.reserved -= self.memory.cached
        self.memory.cached = 0

    def reset_peaks(self) -> None:
        self._next_generation = True
        self.memory.peak_allocated = self.memory.allocated
        self.memory.peak_reserved = self.memory.reserved

    def set_memory_fraction(self, fraction: float) -> None:
        """``torch.cuda.set_per_process_memory_fraction``: allocations past it fail."""
        self.limit_bytes = int(self.gpu.total_bytes * fraction)

    def attach(self, pipe: Any, models: list[Any] | None = None) -> list[Any]:
        """From now on, each forward of ``models`` (default: the UNet and the VAE decoder; a pipeline's
        adapter names its denoisers) holds activations sized by its input; returns the hook handles
        (``handle.remove()`` detaches)."""
        handles = []
        listed = models if models is not None else [pipe.unet, pipe.vae.decoder]
        for model in listed:
            # Inside the forward (its first layer), as a real allocation fails after the model's own hooks ran.
            module = getattr(model, "conv_in", model)
            handles.append(module.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
            handles.append(model.register_forward_hook(self._post_hook))
        if self._virtual is not None:
            handles += self._virtual.attach(pipe, listed[:-1], listed[-1])
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
        elements = input_elements(args, kwargs)
        if self._next_generation:
            self.generation += 1
            self._next_generation = False
        self._live.append(self.allocate(elements * self.gpu.bytes_per_element))
        self._started.append(time.perf_counter())

    def _post_hook(self, module: Any, args: Any, output: Any) -> None:
        if self._live:
            self._live.pop().free()
        if self._started and self.time is None:
            # A forward's work is its CPU time plus the simulated kernel time, both at the card's clock; at a
            # lower clock the same work takes proportionally longer.
            elapsed = time.perf_counter() - self._started.pop()
            work = elapsed + self.gpu.forward_kernel_s
            time.sleep(max(work * self.gpu.sm_clock_mhz / self.sm_clock_now() - elapsed, 0.0))

    def place_weights(self, pipe: Any, components: tuple[str, ...] | None = None) -> None:
        """Count the named components' weights (default: every one) as resident on the device."""
        for name in components or WEIGHT_COMPONENTS:
            module = getattr(pipe, name, None)
            if module is not None and name not in self.weights:
                size = (
                    sum(p.numel() * p.element_size() for p in module.parameters())
                    * self.gpu.weight_scale
                )
                self.weights[name] = self.allocate(size)

    def place_pipeline(self, pipe: Any, offload: str | None) -> list[Any]:
        """Count the weights as resident the way the placement the real call installed keeps them: all of
        them without offload; with ``model_cpu_offload``, a hooked component from its forward until
        another one runs; with sequential or group offload, a hooked leaf during its own forward. Only
        modules that carry the real call's hooks (accelerate's ``_hf_hook``, diffusers'
        ``_diffusers_hook``) are offloaded: a placement call that was skipped leaves every weight
        resident, as it would on a GPU. Returns the hook handles."""
        if offload is None:
            self.place_weights(pipe)
            return []
        handles: list[Any] = []
        for name in WEIGHT_COMPONENTS:
            module = getattr(pipe, name, None)
            if module is None:
                continue
            if offload == "model_cpu_offload" and getattr(module, "_hf_hook", None) is not None:
                observed = [module.encoder, module.decoder] if name == "vae" else [module]
                for part in observed:  # the VAE runs through encode/decode, not forward
                    handles.append(
                        part.register_forward_pre_hook(self._onload_component(name, module))
                    )
            elif offload in ("sequential_cpu_offload", "group_offload"):
                handles += self._offload_leaves(name, module)
            else:
                self.place_weights(pipe, (name,))
        return handles

    def _weight_bytes(self, module: Any, recurse: bool = True) -> int:
        return int(
            sum(p.numel() * p.element_size() for p in module.parameters(recurse=recurse))
            * self.gpu.weight_scale
        )

    def _onload_component(self, name: str, module: Any) -> Any:
        def onload(*_: Any) -> None:
            for other in [n for n in self.weights if n != name and n.startswith("offloaded:")]:
                self.remove_weights(
                    (other,)
                )  # accelerate's hook chain moves the previous model back
            if f"offloaded:{name}" not in self.weights:
                self.weights[f"offloaded:{name}"] = self.allocate(self._weight_bytes(module))

        return onload

    def _offload_leaves(self, name: str, module: Any) -> list[Any]:
        handles: list[Any] = []
        resident = 0
        for leaf in module.modules():
            size = self._weight_bytes(leaf, recurse=False)
            if not size:
                continue
            if (
                getattr(leaf, "_hf_hook", None) is None
                and getattr(leaf, "_diffusers_hook", None) is None
            ):
                resident += size  # not offloaded by the real call: on the device for good
                continue
            held: list[Block] = []
            handles.append(
                leaf.register_forward_pre_hook(
                    lambda *_, size=size, held=held: held.append(self.allocate(size))
                )
            )
            handles.append(
                leaf.register_forward_hook(
                    lambda *_, held=held: held.pop().free() if held else None
                )
            )
        if resident:
            self.weights[name] = self.allocate(resident)
        return handles

    def remove_weights(self, components: tuple[str, ...] | None = None) -> None:
        for name in list(self.weights) if components is None else components:
            block = self.weights.pop(name, None)
            if block is not None:
                block.free()


@dataclass
class SimulatedRuntime:
    """A machine with simulated GPUs; ``open`` returns the same device object for the same index."""

    gpus: list[SimulatedGpu] = field(default_factory=lambda: [SimulatedGpu()])
    calls: list[tuple[str, int]] = field(default_factory=list)
    devices: dict[int, SimulatedCudaDevice] = field(default_factory=dict)
    last_opened: SimulatedCudaDevice | VirtualCpuDevice | None = None
    work: VirtualWork | None = (
        None  # set: every device it opens, the CPU too, times on the virtual clock
    )
    cpu: VirtualCpuDevice | None = None
    cuda: SimulatedTorchCuda = field(init=False)  # the torch.cuda the devices call
    nvml: SimulatedPynvml = field(init=False)  # the pynvml they call

    def __post_init__(self) -> None:
        self.cuda = SimulatedTorchCuda(self)
        self.nvml = SimulatedPynvml(self)

    def cuda_count(self) -> int:
        return len(self.gpus)

    def open(self, name: str) -> Any:
        kind, index = parse_device(name, self.cuda_count())
        if kind == "cpu" or index is None:
            if self.work is None:
                return CpuDevice()
            self.cpu = self.cpu or VirtualCpuDevice(self.work)
            self.last_opened = self.cpu
            return self.cpu
        if index not in self.devices:
            self.devices[index] = SimulatedCudaDevice(index, self.gpus[index], self, self.work)
        self.last_opened = self.devices[index]
        return self.last_opened
