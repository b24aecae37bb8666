"""Choosing the profile of a run: ``--gpu-profile auto`` finds the profile that names the detected
GPU; an explicit name must match the machine unless the mismatch is allowed."""

from __future__ import annotations

from collections.abc import Mapping

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.profiles.profile import GpuProfile
from pytest_i2v.storage import validate_profile_name


def _pick_for_device(
    profiles: Mapping[str, GpuProfile], device_name: str | None, device_memory_gb: float | None
) -> GpuProfile:
    """``auto``: the profile whose longest pattern names the device (never an alias)."""
    if device_name is None:
        return profiles["cpu"]
    ranked = sorted(
        (p.match_length(device_name, device_memory_gb), p.name)
        for p in profiles.values()
        if p.device == "cuda" and p.alias_of is None
    )
    if ranked and ranked[-1][0] > 0:
        return profiles[ranked[-1][1]]
    raise I2VUsageError(
        f"no GPU profile matches the detected GPU {device_name!r}; add a profile file with "
        f"match: [{device_name!r}] to --i2v-profile-dir, "
        "or pass --gpu-profile NAME --i2v-allow-profile-mismatch"
    )


def _mismatch(
    requested: str, profile: GpuProfile, device_name: str | None, device_memory_gb: float | None
) -> I2VUsageError:
    """What the profile expects against what this machine has."""
    found = (
        f"GPU {device_name!r} ({device_memory_gb:.0f} GB)"
        if device_name and device_memory_gb
        else (f"GPU {device_name!r}" if device_name else "no GPU")
    )
    if profile.device == "cuda":
        named_like = " or ".join(repr(m) for m in profile.match)
        wanted = f"a {profile.memory_gb:.0f} GB GPU named like {named_like}"
        if profile.exclude:
            wanted += f" (without {' or '.join(repr(x) for x in profile.exclude)})"
    else:
        wanted = "no GPU"
    return I2VUsageError(
        f"--gpu-profile {requested} expects {wanted} but this machine has {found}; "
        "pick the matching profile (or 'auto'), "
        "or pass --i2v-allow-profile-mismatch to measure anyway"
    )


def pick_profile(
    requested: str,
    profiles: Mapping[str, GpuProfile],
    device_name: str | None,
    device_memory_gb: float | None = None,
    allow_mismatch: bool = False,
) -> GpuProfile:
    """Resolve ``--gpu-profile`` against the detected device (``None`` = no GPU)."""
    if requested == "auto":
        return _pick_for_device(profiles, device_name, device_memory_gb)
    validate_profile_name(requested)
    if requested not in profiles:
        raise I2VUsageError(
            f"unknown GPU profile {requested!r}; known profiles: {', '.join(sorted(profiles))}"
        )
    profile = profiles[requested]
    if not allow_mismatch and not profile.matches(device_name, device_memory_gb):
        raise _mismatch(requested, profile, device_name, device_memory_gb)
    return profile
