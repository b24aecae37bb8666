"""Virtual time: the tests whose assertion is a verdict must not bet on the CPU's
speed, so a simulated device (and ``VirtualCpuDevice``, the host under the same rule) can time
generations on a deterministic clock instead: each encoder, denoiser and decoder forward advances
it by a fixed cost (scaled by the clock ratio when throttled), and ``add_work`` stands for work a
test injects. Two processes that run the same work read the same times, to the last digit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pytest_i2v.measure.device import Clock, CpuDevice


@dataclass(frozen=True)
class VirtualWork:
    """What each forward costs on the virtual clock, in seconds (sizes matter: a forward also costs
    ``per_element_s`` per element of its input, so a larger generation takes longer)."""

    encoder_s: float = 0.002  # each text/image encoder and VAE encoder forward
    denoiser_s: float = 0.010  # each UNet/transformer forward
    decoder_s: float = 0.005  # each VAE decoder forward
    per_element_s: float = 1e-9
    # The simulated machine's speed (1: the reference): every virtual second of work takes 1 /
    # speed, and the machine speed probe reads PROBE_AT_SPEED_1 x speed, so "a slower machine" and
    # "slower code" can be told apart on the virtual clock (machine_speed).
    machine_speed: float = 1.0

    @classmethod
    def from_env(cls, raw: str) -> VirtualWork | None:
        """``PYTEST_I2V_VIRTUAL_TIME``: empty or "0" for real time, "1" for the defaults, or a JSON
        object of these fields."""
        raw = raw.strip()
        if raw in ("", "0"):
            return None
        if raw == "1":
            return cls()
        return cls(**json.loads(raw))


PROBE_AT_SPEED_1 = {"gemm_gflops": 100.0, "copy_gbs": 20.0, "tiny_ops_per_ms": 200.0}


class VirtualTime:
    """The deterministic seconds of one device: they move only when simulated work is done (at the
    simulated machine's ``speed``)."""

    def __init__(self, speed: float = 1.0) -> None:
        self.now = 0.0
        self.speed = speed

    def advance(self, seconds: float) -> None:
        self.now += max(seconds, 0.0) / self.speed

    def probe(self) -> dict[str, float]:
        """What ``measure.probe`` reads on this machine (its real work would not move the virtual
        clock)."""
        return {name: value * self.speed for name, value in PROBE_AT_SPEED_1.items()}


class VirtualClock:
    """A ``Clock`` whose marks are virtual seconds: the work is synchronous, as on the CPU."""

    def __init__(self, time: VirtualTime):
        self._time = time

    def mark(self) -> float:
        return self._time.now

    def seconds_between(self, start: Any, end: Any) -> float:
        return float(end - start)


def input_elements(args: Any, kwargs: dict[str, Any]) -> int:
    # Transformers are called with keywords only (hidden_states=...), UNets positionally.
    sample: Any = args[0] if args else kwargs.get("hidden_states", kwargs.get("sample"))
    return int(sample.numel()) if hasattr(sample, "numel") else 1


def _encoders(pipe: Any) -> list[Any]:
    """The modules that encode a prompt or an image, whichever the pipeline has."""
    vae = getattr(pipe, "vae", None)
    found = [
        getattr(pipe, name, None) for name in ("text_encoder", "text_encoder_2", "image_encoder")
    ]
    found.append(getattr(vae, "encoder", None))
    return [
        module
        for module in found
        if module is not None and hasattr(module, "register_forward_hook")
    ]


class VirtualWorkHooks:
    """Advances a ``VirtualTime`` on each forward of a pipeline's encoders, denoisers and
    decoder."""

    def __init__(self, time: VirtualTime, work: VirtualWork, slowdown: Any = lambda: 1.0):
        self.time = time
        self.work = work
        self._slowdown = (
            slowdown  # the clock ratio now (a throttled card does the same work slower)
        )

    def attach(self, pipe: Any, denoisers: list[Any], decoder: Any) -> list[Any]:
        handles = []
        for model in _encoders(pipe):
            handles.append(
                model.register_forward_hook(self._cost(self.work.encoder_s), with_kwargs=True)
            )
        for model in denoisers:
            handles.append(
                model.register_forward_hook(self._cost(self.work.denoiser_s), with_kwargs=True)
            )
        handles.append(
            decoder.register_forward_hook(self._cost(self.work.decoder_s), with_kwargs=True)
        )
        return handles

    def _cost(self, fixed_s: float) -> Any:
        # After the forward: the stage recorder's pre-hook has marked where this call's stage began.
        def advance(module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
            seconds = fixed_s + input_elements(args, kwargs) * self.work.per_element_s
            self.time.advance(seconds * self._slowdown())

        return advance


class VirtualCpuDevice(CpuDevice):
    """The host, timed on the virtual clock (see the module docstring): memory stays the real
    RSS."""

    def __init__(self, work: VirtualWork):
        self.time = VirtualTime(work.machine_speed)
        self._hooks = VirtualWorkHooks(self.time, work)

    def simulated_probe(self) -> dict[str, float]:
        return self.time.probe()

    def clock(self) -> Clock:
        return VirtualClock(self.time)

    def now(self) -> float:
        return self.time.now

    def add_work(self, seconds: float) -> None:
        self.time.advance(seconds)

    def attach(self, pipe: Any, models: list[Any]) -> list[Any]:
        """``models``: the denoisers, then the decoder (as the adapter names them)."""
        return self._hooks.attach(pipe, models[:-1], models[-1])
