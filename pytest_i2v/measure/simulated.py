"""A simulated CUDA device for the CPU: the CUDA code paths without a GPU.

The model computes on the CPU; memory is modelled like torch's caching allocator (allocated,
reserved that only ``empty_cache`` returns, peaks reset by ``reset_peak_stats``) plus what NVML
adds (the CUDA context, other processes). Activations are blocks owned by Python objects, so a
traceback that keeps frames alive keeps their memory allocated, as real tensors do. An allocation
past the limit raises one of the real OOM forms. NVML's clocks, temperature, power and throttle
reasons come from a ``SimulatedNvml`` that the real reading and locking code (``measure.clocks``)
calls; a throttled generation reads throttled and runs slower. Used by the tests and
``gpu-check --dry-run``; a measurement run never uses it.

The card's description: ``measure.simulated_gpu``; the allocator's arithmetic:
``measure.simulated_memory``; the stand-in libraries: ``measure.simulated_libs``; virtual time
(deterministic seconds instead of the CPU's): ``measure.virtual_time``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pytest_i2v.measure.device import CpuDevice, CudaDevice
from pytest_i2v.measure.device_name import parse_device
from pytest_i2v.measure.simulated_gpu import SimulatedGpu, SimulatedThrottle
from pytest_i2v.measure.simulated_libs import SimulatedKernels, SimulatedPynvml, SimulatedTorchCuda
from pytest_i2v.measure.simulated_memory import Block, SimulatedAllocator, simulated_oom
from pytest_i2v.measure.virtual_time import (
    VirtualCpuDevice,
    VirtualTime,
    VirtualWork,
    VirtualWorkHooks,
    input_elements,
)

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
        # None: real time (the CPU's)
        self.time = VirtualTime(work.machine_speed) if work is not None else None
        self._virtual = (
            VirtualWorkHooks(self.time, work, self._slowdown)
            if self.time is not None and work
            else None
        )
        self.memory = SimulatedAllocator()
        self.limit_bytes = gpu.total_bytes - gpu.context_bytes
        self.weights: dict[str, Block] = {}
        self._live: list[Block] = []
        # when each forward under way began (to slow it down when throttled)
        self._started: list[float] = []
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
        """On the virtual clock, the simulated machine's probe figures; in real time None (the real
        probe runs)."""
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
        self.memory.give_back(size)

    def allocate(self, size: int) -> Block:
        if self.memory.allocated + size > self.limit_bytes:
            # The frames of this call hold the blocks that were live: as with real tensors, they
            # stay allocated until the traceback is dropped.
            pending = list(self._live)  # noqa: F841 (kept alive by this frame, as tensors are)
            self._live.clear()
            self._started.clear()
            raise simulated_oom(self.gpu.oom_form, size)
        self.memory.take(size)
        return Block(self._release, size)

    def release_cache(self) -> None:
        """``empty_cache``: cached segments go back; a segment that holds a live block stays."""
        self.memory.empty_cache()

    def reset_peaks(self) -> None:
        self._next_generation = True
        self.memory.reset_peaks()

    def set_memory_fraction(self, fraction: float) -> None:
        """``torch.cuda.set_per_process_memory_fraction``: allocations past it fail."""
        self.limit_bytes = int(self.gpu.total_bytes * fraction)

    def attach(self, pipe: Any, models: list[Any] | None = None) -> list[Any]:
        """From now on, each forward of ``models`` (default: the UNet and the VAE decoder; a
        pipeline's adapter names its denoisers) holds activations sized by its input; returns the
        hook handles (``handle.remove()`` detaches)."""
        handles = []
        listed = models if models is not None else [pipe.unet, pipe.vae.decoder]
        for model in listed:
            # Inside the forward (its first layer), as a real allocation fails after the model's own
            # hooks ran.
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
            # A forward's work is its CPU time plus the simulated kernel time, both at the card's
            # clock; at a lower clock the same work takes proportionally longer.
            elapsed = time.perf_counter() - self._started.pop()
            work = elapsed + self.gpu.forward_kernel_s
            time.sleep(max(work * self.gpu.sm_clock_mhz / self.sm_clock_now() - elapsed, 0.0))

    def place_weights(self, pipe: Any, components: tuple[str, ...] | None = None) -> None:
        """Count the named components' weights (default: every one) as resident on the device."""
        for name in components or WEIGHT_COMPONENTS:
            module = getattr(pipe, name, None)
            if module is not None and name not in self.weights:
                self.weights[name] = self.allocate(self._weight_bytes(module))

    def place_pipeline(self, pipe: Any, offload: str | None) -> list[Any]:
        """Count the weights as resident the way the placement the real call installed keeps them:
        all of them without offload; with ``model_cpu_offload``, a hooked component from its forward
        until another one runs; with sequential or group offload, a hooked leaf during its own
        forward. Only modules that carry the real call's hooks (accelerate's ``_hf_hook``,
        diffusers' ``_diffusers_hook``) are offloaded: a placement call that was skipped leaves
        every weight resident, as it would on a GPU. Returns the hook handles."""
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
                # accelerate's hook chain moves the previous model back
                self.remove_weights((other,))
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
    # set: every device it opens, the CPU too, times on the virtual clock
    work: VirtualWork | None = None
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
