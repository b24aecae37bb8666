"""GPU profiles: which GPU a run is on, how much memory it has, and how the study runs there.

Profiles are YAML files shipped under ``pytest_i2v/profiles`` (plus a user directory). Each
names how to recognise its device from the NVML/torch device name. ``auto`` picks the profile
matching the detected GPU, or ``cpu`` when there is none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import DTYPES, Scaling
from pytest_i2v.pipelines import PIPELINES
from pytest_i2v.storage import read_yaml, validate_profile_name
from pytest_i2v.verdict.gate import GateSettings

PROFILE_SCHEMA_VERSION = 1
SHIPPED_PROFILE_DIR = Path(__file__).parent
# Marketed GB vs the GiB torch/NVML report, minus driver-reserved memory.
MEMORY_MATCH_TOLERANCE = 0.15
# peak_tflops keys: the dtypes, plus "tf32" (fp32 matmuls on tensor cores; see measure.flops.peak_key_for).
PEAK_KEYS = (*DTYPES, "tf32")


@dataclass(frozen=True)
class GpuProfile:
    name: str
    description: str
    memory_gb: float
    device: str  # "cuda" or "cpu"
    match: tuple[str, ...]  # case-insensitive substrings of the device name
    model: str
    dtype: str
    scaling: Scaling = field(default_factory=Scaling)
    gate: GateSettings = field(default_factory=GateSettings)
    # Published datasheet figures (dense, no sparsity), per dtype, and memory bandwidth.
    peak_tflops: dict[str, float] = field(default_factory=dict)
    memory_bandwidth_gbs: float | None = None
    datasheet: str | None = None
    source: str = ""  # the file it came from
    # Substrings that rule a device out although a match pattern is in its name: "NVIDIA H200"
    # (SXM) is in "NVIDIA H200 NVL", whose peaks are lower.
    exclude: tuple[str, ...] = ()
    aliases: tuple[
        str, ...
    ] = ()  # other names this profile answers to (old names, kept for baselines)
    alias_of: str | None = (
        None  # set on the copy registered under an alias: the profile it stands for
    )
    pipeline: str | None = (
        None  # the pipeline of unmarked tests (None: --i2v-pipeline's default, i2vgen-xl)
    )
    repeats: int = 5  # measured repeats per generation unless --i2v-repeats says (the study's 5)
    signature: bool = True  # profile each test's work (signature.py) unless --i2v-signature says; CPU profiles: off
    roofline: bool = (
        True  # count FLOPs for the roofline unless --i2v-roofline says; CPU profiles: off
    )

    def match_length(self, device_name: str | None, device_memory_gb: float | None = None) -> int:
        """Length of the longest pattern that names this device (0 = no match).

        Memory disambiguates cards that share a name (A100 40 vs 80 GB, L4 vs L40)."""
        if self.device == "cpu":
            return 1 if device_name is None else 0
        if device_name is None:
            return 0
        if (
            device_memory_gb is not None
            and abs(device_memory_gb - self.memory_gb) > MEMORY_MATCH_TOLERANCE * self.memory_gb
        ):
            return 0
        lowered = device_name.lower()
        if any(x.lower() in lowered for x in self.exclude):
            return 0
        return max((len(p) for p in self.match if p.lower() in lowered), default=0)

    def matches(self, device_name: str | None, device_memory_gb: float | None = None) -> bool:
        return self.match_length(device_name, device_memory_gb) > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "memory_gb": self.memory_gb,
            "device": self.device,
            "match": list(self.match),
            "model": self.model,
            "dtype": self.dtype,
            "scaling": self.scaling.to_dict(),
            "gate": self.gate.to_dict(),
            "peak_tflops": self.peak_tflops,
            "memory_bandwidth_gbs": self.memory_bandwidth_gbs,
            "datasheet": self.datasheet,
            "alias_of": self.alias_of,
            "pipeline": self.pipeline,
            "repeats": self.repeats,
        }


def _profile_from_yaml(path: Path) -> GpuProfile:
    data = read_yaml(path, "profile file", "fix the file or remove it")
    if not isinstance(data, dict):
        raise I2VUsageError(
            f"profile file {path} must hold a mapping (name, memory_gb, device, match, model, dtype)"
        )
    version = data.get("schema_version", PROFILE_SCHEMA_VERSION)
    if version != PROFILE_SCHEMA_VERSION:
        raise I2VUsageError(
            f"profile file {path} has schema_version {version!r}; this plugin reads {PROFILE_SCHEMA_VERSION}"
        )
    name = data.get("name", path.stem)
    if not isinstance(name, str) or name != path.stem:
        raise I2VUsageError(
            f"profile file {path}: name {name!r} must equal the file name {path.stem!r}"
        )
    validate_profile_name(name)
    memory = data.get("memory_gb")
    if isinstance(memory, bool) or not isinstance(memory, (int, float)) or memory <= 0:
        raise I2VUsageError(
            f"profile file {path}: memory_gb must be a positive number of GB, got {memory!r}"
        )
    device = data.get("device", "cuda")
    if device not in ("cuda", "cpu"):
        raise I2VUsageError(f"profile file {path}: device must be 'cuda' or 'cpu', got {device!r}")
    match = data.get("match", [])
    if isinstance(match, str):
        match = [match]
    if device == "cuda" and (not match or not all(isinstance(m, str) and m for m in match)):
        raise I2VUsageError(
            f"profile file {path}: match must list device-name substrings such as ['RTX 4090']"
        )
    dtype = data.get("dtype", "fp16")
    if dtype not in DTYPES:
        raise I2VUsageError(
            f"profile file {path}: dtype {dtype!r} is unknown; use one of {', '.join(DTYPES)}"
        )
    model = data.get("model", "ali-vilab/i2vgen-xl")
    if not isinstance(model, str) or not model:
        raise I2VUsageError(f"profile file {path}: model must be a model source string")
    repeats = data.get("repeats", 5)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise I2VUsageError(f"profile file {path}: repeats must be a positive integer")
    signature = data.get(
        "signature", device == "cuda"
    )  # on a CPU the profiled generation costs more than the test
    if not isinstance(signature, bool):
        raise I2VUsageError(f"profile file {path}: signature must be true or false")
    # On a CPU there is no datasheet peak to compare with, and the FLOP counter's generation costs as much as a measured one.
    roofline = data.get("roofline", device == "cuda")
    if not isinstance(roofline, bool):
        raise I2VUsageError(f"profile file {path}: roofline must be true or false")
    pipeline = data.get("pipeline")
    if pipeline is not None and pipeline not in PIPELINES:
        raise I2VUsageError(
            f"profile file {path}: pipeline {pipeline!r} is unknown; use one of {', '.join(PIPELINES)}"
        )
    scaling_data = data.get("scaling") or {}
    try:
        scaling = Scaling.from_dict(scaling_data)
    except (TypeError, ValueError, AttributeError):  # AttributeError: not a mapping
        raise I2VUsageError(
            f"profile file {path}: scaling must map size_divisor/steps_divisor/frames_divisor/min_size to integers"
        ) from None
    if scaling.size_divisor < 1 or scaling.steps_divisor < 1 or scaling.frames_divisor < 1:
        raise I2VUsageError(f"profile file {path}: scaling divisors must be >= 1")
    gate_data = data.get("gate") or {}
    if not isinstance(gate_data, Mapping):
        raise I2VUsageError(
            f"profile file {path}: gate must map gate settings (min_effect, "
            f"tolerance, alpha, ...) to values, got {gate_data!r}"
        )
    try:
        gate = GateSettings.from_mapping(gate_data)
    except (TypeError, ValueError) as exc:  # unknown settings (our text), or a bad memory_abs_mib
        reason = (
            str(exc)
            if str(exc).startswith("unknown gate setting")
            else (
                f"memory_abs_mib must be a number of MiB, got {gate_data.get('memory_abs_mib')!r}"
            )
        )
        raise I2VUsageError(f"profile file {path}: gate: {reason}") from None
    numbers = (gate.min_effect, gate.tolerance, gate.alpha, gate.min_history)
    if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
        raise I2VUsageError(
            f"profile file {path}: gate: min_effect, tolerance, alpha and "
            f"min_history must be numbers, got {', '.join(map(repr, numbers))}"
        )
    if (
        gate.min_effect < 0
        or gate.tolerance < 0
        or not 0 < gate.alpha < 0.5
        or gate.min_history < 2
    ):
        raise I2VUsageError(
            f"profile file {path}: gate needs min_effect, tolerance >= 0, 0 < alpha < 0.5, min_history >= 2"
        )
    peak = data.get("peak_tflops") or {}
    if not isinstance(peak, dict) or any(
        k not in PEAK_KEYS or isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
        for k, v in peak.items()
    ):
        raise I2VUsageError(
            f"profile file {path}: peak_tflops must map fp16/bf16/fp32/tf32 to positive TFLOP/s"
        )
    bandwidth = data.get("memory_bandwidth_gbs")
    if bandwidth is not None and (
        isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)) or bandwidth <= 0
    ):
        raise I2VUsageError(f"profile file {path}: memory_bandwidth_gbs must be a positive number")
    exclude, aliases = data.get("exclude", []), data.get("aliases", [])
    exclude = [exclude] if isinstance(exclude, str) else exclude
    aliases = [aliases] if isinstance(aliases, str) else aliases
    if not isinstance(exclude, list) or not all(isinstance(x, str) and x for x in exclude):
        raise I2VUsageError(
            f"profile file {path}: exclude must list device-name substrings such as ['NVL']"
        )
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise I2VUsageError(f"profile file {path}: aliases must list profile names")
    for alias in aliases:
        validate_profile_name(alias)
    return GpuProfile(
        name=name,
        description=str(data.get("description", name)),
        memory_gb=float(memory),
        device=device,
        match=tuple(match),
        model=model,
        dtype=dtype,
        scaling=scaling,
        gate=gate,
        peak_tflops={k: float(v) for k, v in peak.items()},
        memory_bandwidth_gbs=float(bandwidth) if bandwidth else None,
        datasheet=data.get("datasheet"),
        source=str(path),
        exclude=tuple(exclude),
        aliases=tuple(aliases),
        pipeline=pipeline,
        repeats=repeats,
        signature=signature,
        roofline=roofline,
    )


def load_profiles(extra_dir: Path | None = None) -> dict[str, GpuProfile]:
    """All profiles by name; a user directory's file overrides a shipped one of the same name."""
    directories = [SHIPPED_PROFILE_DIR]
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise I2VUsageError(
                f"--i2v-profile-dir {extra_dir} is not a directory; create it or drop the option"
            )
        directories.append(extra_dir)
    profiles: dict[str, GpuProfile] = {}
    for directory in directories:
        for path in sorted(directory.glob("*.yaml")):
            profile = _profile_from_yaml(path)
            profiles[profile.name] = profile
    # An alias is the profile under its old name (so its baselines file keeps its name); a real
    # file of that name wins. Aliases are never picked by "auto".
    for profile in list(profiles.values()):
        for alias in profile.aliases:
            if alias not in profiles:
                profiles[alias] = replace(
                    profile,
                    name=alias,
                    aliases=(),
                    alias_of=profile.name,
                    description=f"{profile.description} (alias of {profile.name})",
                )
    return profiles


def check_profile_name(requested: str, extra_dir: Path | None = None) -> None:
    """An explicit ``--gpu-profile`` that names no profile is a usage error at configure time. Cheap:
    a file of that name settles it; only an unknown name reads the files (for aliases)."""
    validate_profile_name(requested)
    directories = [SHIPPED_PROFILE_DIR] + (
        [extra_dir] if extra_dir is not None and extra_dir.is_dir() else []
    )
    if any((directory / f"{requested}.yaml").is_file() for directory in directories):
        return
    profiles = load_profiles(extra_dir)
    if requested not in profiles:
        raise I2VUsageError(
            f"unknown GPU profile {requested!r}; known profiles: {', '.join(sorted(profiles))}"
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
            f"match: [{device_name!r}] to --i2v-profile-dir, or pass --gpu-profile NAME --i2v-allow-profile-mismatch"
        )
    validate_profile_name(requested)
    if requested not in profiles:
        raise I2VUsageError(
            f"unknown GPU profile {requested!r}; known profiles: {', '.join(sorted(profiles))}"
        )
    profile = profiles[requested]
    if not allow_mismatch and not profile.matches(device_name, device_memory_gb):
        found = (
            f"GPU {device_name!r} ({device_memory_gb:.0f} GB)"
            if device_name and device_memory_gb
            else (f"GPU {device_name!r}" if device_name else "no GPU")
        )
        wanted = (
            f"a {profile.memory_gb:.0f} GB GPU named like {' or '.join(repr(m) for m in profile.match)}"
            if profile.device == "cuda"
            else "no GPU"
        )
        if profile.device == "cuda" and profile.exclude:
            wanted += f" (without {' or '.join(repr(x) for x in profile.exclude)})"
        raise I2VUsageError(
            f"--gpu-profile {requested} expects {wanted} but this machine has {found}; "
            f"pick the matching profile (or 'auto'), or pass --i2v-allow-profile-mismatch to measure anyway"
        )
    return profile
