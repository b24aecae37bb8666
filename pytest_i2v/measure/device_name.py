"""Device strings (``cpu``, ``cuda``, ``cuda:N``) parsed in one place. Pure: gpu_check's planner
and the simulated libraries read device strings without importing torch."""

from __future__ import annotations

from typing import Literal, NamedTuple

from pytest_i2v.errors import I2VUsageError


class DeviceName(NamedTuple):
    """A device string split: ``kind`` "cpu" or "cuda", ``cuda_index`` None on the CPU. A tuple, so
    ``kind, index = parse_device(...)`` reads both (a field named ``index`` would hide
    ``tuple.index``)."""

    kind: Literal["cpu", "cuda"]
    cuda_index: int | None


def split_device(name: str) -> DeviceName | None:
    """``cpu``, ``cuda`` (index 0) or ``cuda:N`` as kind and index; None for any other string.
    The one parser of device strings: each caller words its own error for None."""
    if name == "cpu":
        return DeviceName("cpu", None)
    if name == "cuda":
        return DeviceName("cuda", 0)
    if name.startswith("cuda:") and name[5:].isdigit():
        return DeviceName("cuda", int(name[5:]))
    return None


def parse_device(name: str, cuda_count: int) -> DeviceName:
    """``--i2v-device``: ``cpu`` / ``cuda`` / ``cuda:N`` -> (kind, index); a missing GPU or an index
    out of range is a usage error in one line."""
    device = split_device(name)
    if device is None:
        raise I2VUsageError(f"--i2v-device {name!r}: use cpu, cuda or cuda:N")
    if device.cuda_index is None:
        return device
    if cuda_count == 0:
        raise I2VUsageError(
            f"--i2v-device {name}: CUDA is not available here; use --i2v-device cpu"
        )
    if device.cuda_index >= cuda_count:
        raise I2VUsageError(
            f"--i2v-device {name}: this machine has {cuda_count} CUDA device(s) "
            f"(cuda:0 to cuda:{cuda_count - 1}); pick one of those"
        )
    return device
