"""The GPU's clocks through NVML: read the conditions of a repeat (clocks, temperature, power, the
throttle reasons) and, for ``--i2v-lock-clocks``, lock the clocks for the session and restore them.

``NvmlClocks`` takes the NVML module and a device handle, so a fake module tests it on the CPU (the
simulated device hands it one too). A failing NVML call is a missing figure, never an error: reading
the conditions must not break a measurement. What the readings come to is
``pytest_i2v.verdict.conditions``'s to decide; this module only reads and reduces them. No torch
here."""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_i2v.verdict.conditions import RepeatConditions, throttle_reasons


class ClockedDevice(Protocol):
    """What ``lock_clocks`` needs of a ``measure.device.Device`` (named here, so this module does
    not import the device module that imports it)."""

    name: str
    is_cuda: bool

    def nvml_clocks(self) -> NvmlClocks | None: ...


# NVML's enums (nvmlClockType_t, nvmlTemperatureSensors_t): stable across NVML versions, named here
# so a stand-in module need not define them.
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
# The reasons query was renamed in NVML 12.x ("clocks event"); older drivers have only the old name.
REASONS_QUERIES = (
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
)


class ClockLockWarning(UserWarning):
    """--i2v-lock-clocks could not lock the GPU clocks (no permission, not supported, no GPU): the
    run goes on unlocked."""


@dataclass(frozen=True)
class ConditionsReading:
    """One NVML sample; a field NVML could not give is None."""

    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    reasons_mask: int | None = None


@dataclass(frozen=True)
class LockedClocks:
    """The clocks --i2v-lock-clocks holds the GPU at; ``mem_clock_mhz`` None: the memory clock could
    not be locked (most HBM boards do not support it) and runs as the driver sets it."""

    sm_clock_mhz: float
    mem_clock_mhz: float | None = None

    @property
    def label(self) -> str:
        """How the fingerprint names the lock: ``locked <SM clock> MHz``, with the memory clock when
        it is locked too."""
        memory = f", memory {self.mem_clock_mhz:.0f} MHz" if self.mem_clock_mhz is not None else ""
        return f"locked {self.sm_clock_mhz:.0f} MHz{memory}"

    def encoded(self) -> str:
        """``SM,MEM`` in MHz (MEM empty when unlocked): how a parent tells its child what it
        holds."""
        memory = f"{self.mem_clock_mhz:g}" if self.mem_clock_mhz is not None else ""
        return f"{self.sm_clock_mhz:g},{memory}"

    @classmethod
    def decoded(cls, text: str) -> LockedClocks | None:
        """``encoded``'s inverse; None for text it did not write."""
        sm, _, memory = text.partition(",")
        try:
            return cls(float(sm), float(memory) if memory else None)
        except ValueError:
            return None


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _largest(values: list[float]) -> float | None:
    return max(values) if values else None


def repeat_conditions(readings: Sequence[ConditionsReading]) -> RepeatConditions:
    """One repeat's samples -> its conditions: the median SM and memory clocks, the hottest
    temperature, the highest draw, the power limit, and every throttle reason seen in any sample."""

    def present(name: str) -> list[float]:
        return [float(v) for r in readings if (v := getattr(r, name)) is not None]

    mask = 0
    for reading in readings:
        mask |= reading.reasons_mask or 0
    return RepeatConditions(
        sm_clock_mhz=_median(present("sm_clock_mhz")),
        mem_clock_mhz=_median(present("mem_clock_mhz")),
        temperature_c=_largest(present("temperature_c")),
        power_w=_largest(present("power_w")),
        power_limit_w=_largest(present("power_limit_w")),
        reasons=throttle_reasons(mask),
    )


class NvmlClocks:
    """Clock and conditions calls on one GPU, through ``nvml`` (pynvml or a stand-in) and its
    handle."""

    def __init__(self, nvml: Any, handle: Any, name: str = "the GPU"):
        self._nvml = nvml
        self._handle = handle
        self.name = name  # "cuda:0": how warnings name the device
        self.locked: LockedClocks | None = None

    def _query(self, function: str, *args: Any) -> Any:
        """NVML's answer, or None when the call fails or the library lacks the function."""
        try:
            return getattr(self._nvml, function)(self._handle, *args)
        except Exception:  # not supported on this board, a driver without the symbol, a lost GPU
            return None

    def read(self) -> ConditionsReading:
        """A sample of the conditions now. Never raises."""

        def number(value: Any, scale: float = 1.0) -> float | None:
            return float(value) / scale if value is not None else None

        mask = None
        for query in REASONS_QUERIES:
            mask = self._query(query)
            if mask is not None:
                break
        return ConditionsReading(
            sm_clock_mhz=number(self._query("nvmlDeviceGetClockInfo", NVML_CLOCK_SM)),
            mem_clock_mhz=number(self._query("nvmlDeviceGetClockInfo", NVML_CLOCK_MEM)),
            temperature_c=number(self._query("nvmlDeviceGetTemperature", NVML_TEMPERATURE_GPU)),
            power_w=number(
                self._query("nvmlDeviceGetPowerUsage"), 1000.0
            ),  # NVML reports milliwatts
            power_limit_w=number(self._query("nvmlDeviceGetEnforcedPowerLimit"), 1000.0),
            reasons_mask=int(mask) if mask is not None else None,
        )

    def base_sm_clock_mhz(self) -> float | None:
        """The board's base clock (NVML's default applications clock), None where NVML cannot
        say."""
        value = self._query("nvmlDeviceGetDefaultApplicationsClock", NVML_CLOCK_GRAPHICS)
        return float(value) if value else None

    def lock(self) -> LockedClocks:
        """Lock the SM clock at the board's default applications clock: its base clock, which it
        holds under sustained load without boost variance (a boost clock would throttle back under
        load). The memory clock likewise where the board supports it. Raises the NVML error when the
        SM clock cannot be locked (no permission, not supported)."""
        nvml, handle = self._nvml, self._handle
        sm = int(nvml.nvmlDeviceGetDefaultApplicationsClock(handle, NVML_CLOCK_GRAPHICS))
        nvml.nvmlDeviceSetGpuLockedClocks(handle, sm, sm)
        self.locked = LockedClocks(float(sm))  # from here on, restore() has something to undo
        memory: float | None = None
        try:
            mem = int(nvml.nvmlDeviceGetDefaultApplicationsClock(handle, NVML_CLOCK_MEM))
            nvml.nvmlDeviceSetMemoryLockedClocks(handle, mem, mem)
            memory = float(mem)
        except Exception:
            pass  # memory locking is not supported on many boards: the SM lock stands alone
        self.locked = LockedClocks(float(sm), memory)
        return self.locked

    def restore(self) -> None:
        """Hand the clocks back to the driver (a no-op when nothing was locked); a reset that fails
        is one warning with the command that does it by hand."""
        locked, self.locked = self.locked, None
        if locked is None:
            return
        resets = ["nvmlDeviceResetGpuLockedClocks"]
        if locked.mem_clock_mhz is not None:
            resets.append("nvmlDeviceResetMemoryLockedClocks")
        for reset in resets:
            try:
                getattr(self._nvml, reset)(self._handle)
            except Exception as exc:
                flag = "-rgc" if reset == "nvmlDeviceResetGpuLockedClocks" else "-rmc"
                warnings.warn(
                    ClockLockWarning(
                        f"pytest-i2v: --i2v-lock-clocks: could not restore the clocks of "
                        f"{self.name} ({type(exc).__name__}); reset them with "
                        f"`sudo nvidia-smi {flag}`"
                    ),
                    stacklevel=2,
                )


def lock_clocks(device: ClockedDevice) -> NvmlClocks | None:
    """``--i2v-lock-clocks``: lock ``device``'s clocks; returns what to restore at the end of the
    session (None: nothing was locked, and one ``ClockLockWarning`` said why)."""
    if not device.is_cuda:
        warnings.warn(
            ClockLockWarning(
                f"pytest-i2v: --i2v-lock-clocks: {device.name} has no GPU clock to lock; "
                f"ignored (use --i2v-device cuda)"
            ),
            stacklevel=2,
        )
        return None
    clocks = device.nvml_clocks()
    if clocks is None:
        warnings.warn(
            ClockLockWarning(
                f"pytest-i2v: --i2v-lock-clocks: NVML is unavailable on {device.name}, so its "
                f"clocks run unlocked; lock them beforehand with `sudo nvidia-smi -lgc`"
            ),
            stacklevel=2,
        )
        return None
    try:
        clocks.lock()
    except Exception as exc:
        clocks.restore()  # nothing is held, or at most a half-made lock
        kind = type(exc).__name__
        # NotSupported: no default applications clock to lock at (GeForce boards): root cannot help.
        fix = (
            "this board reports no default applications clock; lock them beforehand at a clock of "
            "your choice with `sudo nvidia-smi -lgc MHZ,MHZ`"
            if "NotSupported" in kind
            else "run as root, or lock them beforehand with `sudo nvidia-smi -lgc`"
        )
        warnings.warn(
            ClockLockWarning(
                f"pytest-i2v: --i2v-lock-clocks: NVML refused to lock the clocks of {device.name} "
                f"({kind}), so they run unlocked; {fix}"
            ),
            stacklevel=2,
        )
        return None
    return clocks
