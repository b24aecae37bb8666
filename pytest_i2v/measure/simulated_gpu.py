"""The card a simulated CUDA device stands for (``SimulatedGpu``: its memory, clocks and NVML's
behaviour) and how a throttled generation runs on it (``SimulatedThrottle``). Plain data: JSON in
``PYTEST_I2V_SIMULATED_GPUS``; the device that acts on it is ``measure.simulated``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_i2v.measure.simulated_memory import MiB


@dataclass(frozen=True)
class SimulatedThrottle:
    """How a throttled generation runs: NVML's reasons bitmask (0x20: SW thermal slowdown, 0x4: SW
    power cap; see ``conditions.THROTTLE_BITS``), the SM clock it drops to, and what NVML reads
    meanwhile. Its denoiser and decoder forwards take ``card clock / sm_clock_mhz`` times as
    long."""

    reasons_mask: int = 0x20
    sm_clock_mhz: float = 990.0
    temperature_c: float | None = 90.0  # None: the card's nominal reading
    power_w: float | None = None


@dataclass
class SimulatedGpu:
    """The card being simulated and how its NVML behaves.

    Clocks, temperature and power are a simulated card's figures, not a datasheet's. Unthrottled,
    the card boosts between ``boost_clocks_mhz`` (one per generation, in turn) above its base clock
    and sits at its software power cap (``reasons_mask``), as a datacenter board does under
    sustained load. ``throttled`` drives throttling: generation number -> ``SimulatedThrottle``,
    where generations are counted per device from 1, each warm-up and repeat the runner measures
    being one (a test with ``warmup=1`` and five repeats throttles its 2nd and 4th repeats with
    ``{3: ..., 5: ...}``). ``clock_lock`` says what NVML answers to a clock lock: "allowed",
    "no-permission" (not root) or "not-supported"."""

    name: str = "NVIDIA H200"
    total_bytes: int = 141 * 10**9
    sm_count: int = 132
    power_limit_w: float | None = 700.0  # the H200 SXM board's default limit; None: NVML cannot say
    context_bytes: int = 512 * MiB  # the CUDA context: NVML counts it, the allocator does not
    other_process_bytes: int = 0  # neighbours: only a device-wide NVML figure sees them
    # "process", "device" (no per-process figures), "unavailable" or "mismatch"
    nvml: str = "process"
    oom_form: str = "allocator"
    bytes_per_element: int = 4096  # scales the tiny model's activations to GPU-like sizes
    # scales the tiny model's weights likewise (activations dominate, as at 1024p)
    weight_scale: int = 4
    sm_clock_mhz: float = 1980.0  # the reference clock: the CPU's compute stands for work at it
    # unthrottled, generation by generation
    boost_clocks_mhz: tuple[float, ...] = (1980.0, 1965.0, 1950.0, 1965.0)
    reasons_mask: int = 0x4  # unthrottled: at the software power cap (normal above the base clock)
    # GPU time each denoiser/decoder forward adds at that clock: 0 keeps the tests quick; a test of
    # timing under throttling sets it, so that the clock and not the CPU's noise decides the slow
    # repeats.
    forward_kernel_s: float = 0.0
    base_clock_mhz: float = 1590.0  # NVML's default applications clock: --i2v-lock-clocks locks it
    mem_clock_mhz: float = 2619.0
    temperature_c: float = 45.0
    power_w: float = 350.0
    throttled: dict[int, SimulatedThrottle] = field(default_factory=dict)
    clock_lock: str = "allowed"
    memory_clock_lock: bool = True  # whether NVML can lock the memory clock (else NotSupported)
    # How NVML finds it: a MIG instance has a MIG- UUID; nvml_index is its physical index (NVML
    # ignores CUDA_VISIBLE_DEVICES; None: the CUDA index); container_pid: the PID NVML reports for
    # this process (a container's PID namespace; None: os.getpid()); process_memory_unknown:
    # usedGpuMemory is None.
    mig: bool = False
    nvml_index: int | None = None
    container_pid: int | None = None
    process_memory_unknown: bool = False
    # "throttle": a driver that has only the older throttle-reasons query
    reasons_query: str = "event"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulatedGpu:
        """From JSON (``PYTEST_I2V_SIMULATED_GPUS``): ``throttled`` maps generation numbers (as
        strings) to ``SimulatedThrottle`` fields."""
        throttled = {
            int(k): SimulatedThrottle(**v) for k, v in (data.get("throttled") or {}).items()
        }
        boost = (
            tuple(data["boost_clocks_mhz"]) if "boost_clocks_mhz" in data else cls.boost_clocks_mhz
        )
        return cls(**{**data, "throttled": throttled, "boost_clocks_mhz": boost})
