"""Reading profile files: the shipped YAML files plus a user directory, each checked field by field
so that a wrong value is a usage error naming the file and the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import DTYPES, Scaling
from pytest_i2v.pipelines import PIPELINES
from pytest_i2v.profiles.profile import GpuProfile
from pytest_i2v.storage import read_yaml, validate_profile_name
from pytest_i2v.verdict.fidelity import FidelitySettings
from pytest_i2v.verdict.gate import GateSettings

PROFILE_SCHEMA_VERSION = 1
SHIPPED_PROFILE_DIR = Path(__file__).parent
# peak_tflops keys: the dtypes, plus "tf32" (fp32 matmuls on tensor cores; see
# measure.flops.peak_key_for).
PEAK_KEYS = (*DTYPES, "tf32")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class _Generation:
    """How tests run on a GPU by default (a profile's generation fields)."""

    dtype: str
    model: str
    repeats: int
    signature: bool  # whether the work signature is measured
    roofline: bool  # whether the roofline is measured
    pipeline: str | None  # the pipeline of unmarked tests


@dataclass(frozen=True)
class _ProfileFile:
    """One profile file's YAML mapping, checked field by field: each ``check_*`` returns its fields
    typed, and the first wrong one is a usage error that names the file and the field."""

    path: Path
    data: Mapping[str, Any]  # as loaded, unchecked

    def check_identity(self) -> str:
        """The profile's name, after its schema version: the file name, a valid profile name."""
        path, data = self.path, self.data
        version = data.get("schema_version", PROFILE_SCHEMA_VERSION)
        if version != PROFILE_SCHEMA_VERSION:
            raise I2VUsageError(
                f"profile file {path} has schema_version {version!r}; "
                f"this plugin reads {PROFILE_SCHEMA_VERSION}"
            )
        name = data.get("name", path.stem)
        if not isinstance(name, str) or name != path.stem:
            raise I2VUsageError(
                f"profile file {path}: name {name!r} must equal the file name {path.stem!r}"
            )
        validate_profile_name(name)
        return name

    def check_hardware(self) -> tuple[float, str, list[str]]:
        """memory_gb, device and the match patterns that recognise the device."""
        path, data = self.path, self.data
        memory: Any = data.get("memory_gb")  # any YAML value until checked
        if not _is_number(memory) or memory <= 0:
            raise I2VUsageError(
                f"profile file {path}: memory_gb must be a positive number of GB, got {memory!r}"
            )
        device = data.get("device", "cuda")
        if device not in ("cuda", "cpu"):
            raise I2VUsageError(
                f"profile file {path}: device must be 'cuda' or 'cpu', got {device!r}"
            )
        match = data.get("match", [])
        if isinstance(match, str):
            match = [match]
        if device == "cuda" and (not match or not all(isinstance(m, str) and m for m in match)):
            raise I2VUsageError(
                f"profile file {path}: match must list device-name substrings such as ['RTX 4090']"
            )
        return float(memory), device, match

    def check_flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise I2VUsageError(f"profile file {self.path}: {key} must be true or false")
        return value

    def check_generation(self, device: str) -> _Generation:
        """How tests run on this GPU by default: dtype, model, repeats, whether the work signature
        and the roofline are measured, the pipeline of unmarked tests."""
        path, data = self.path, self.data
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
        # On a CPU the profiled generation costs more than the test.
        signature = self.check_flag("signature", device == "cuda")
        # On a CPU there is no datasheet peak to compare with, and the FLOP counter's generation
        # costs as much as a measured one.
        roofline = self.check_flag("roofline", device == "cuda")
        pipeline = data.get("pipeline")
        if pipeline is not None and pipeline not in PIPELINES:
            raise I2VUsageError(
                f"profile file {path}: pipeline {pipeline!r} is unknown; "
                f"use one of {', '.join(PIPELINES)}"
            )
        return _Generation(dtype, model, repeats, signature, roofline, pipeline)

    def check_scaling(self) -> Scaling:
        try:
            scaling = Scaling.from_dict(self.data.get("scaling") or {})
        except (TypeError, ValueError, AttributeError):  # AttributeError: not a mapping
            raise I2VUsageError(
                f"profile file {self.path}: scaling must map "
                "size_divisor/steps_divisor/frames_divisor/min_size to integers"
            ) from None
        if scaling.size_divisor < 1 or scaling.steps_divisor < 1 or scaling.frames_divisor < 1:
            raise I2VUsageError(f"profile file {self.path}: scaling divisors must be >= 1")
        return scaling

    def check_fidelity(self) -> FidelitySettings:
        data = self.data.get("fidelity") or {}
        problem = "" if isinstance(data, Mapping) else "it must map lossless and lossy to bars"
        if not problem:
            try:
                return FidelitySettings.from_mapping(data)
            except ValueError as exc:
                problem = str(exc)
        raise I2VUsageError(
            f"profile file {self.path}: fidelity: {problem}; e.g. fidelity: {{lossless: "
            "{min_psnr_db: 80, min_ssim: 0.999}, lossy: {min_psnr_db: 30, min_ssim: 0.9}}"
        )

    def check_gate(self) -> GateSettings:
        path = self.path
        gate_data = self.data.get("gate") or {}
        if not isinstance(gate_data, Mapping):
            raise I2VUsageError(
                f"profile file {path}: gate must map gate settings (min_effect, "
                f"tolerance, alpha, ...) to values, got {gate_data!r}"
            )
        try:
            gate = GateSettings.from_mapping(gate_data)
        except (TypeError, ValueError) as exc:
            # Unknown settings (our text), or a bad memory_abs_mib.
            reason = (
                str(exc)
                if str(exc).startswith("unknown gate setting")
                else "memory_abs_mib must be a number of MiB, "
                f"got {gate_data.get('memory_abs_mib')!r}"
            )
            raise I2VUsageError(f"profile file {path}: gate: {reason}") from None
        numbers = (gate.min_effect, gate.tolerance, gate.alpha, gate.min_history)
        if not all(_is_number(n) for n in numbers):
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
                f"profile file {path}: gate needs min_effect, tolerance >= 0, 0 < alpha < 0.5, "
                "min_history >= 2"
            )
        return gate

    def check_datasheet(self) -> tuple[dict[str, float], float | None]:
        """The published peaks (TFLOP/s per dtype) and memory bandwidth (GB/s), where given."""
        path, data = self.path, self.data
        peak = data.get("peak_tflops") or {}
        if not isinstance(peak, dict) or any(
            k not in PEAK_KEYS or not _is_number(v) or v <= 0 for k, v in peak.items()
        ):
            raise I2VUsageError(
                f"profile file {path}: peak_tflops must map fp16/bf16/fp32/tf32 to positive TFLOP/s"
            )
        bandwidth = data.get("memory_bandwidth_gbs")
        if bandwidth is not None and (not _is_number(bandwidth) or bandwidth <= 0):
            raise I2VUsageError(
                f"profile file {path}: memory_bandwidth_gbs must be a positive number"
            )
        return {k: float(v) for k, v in peak.items()}, float(bandwidth) if bandwidth else None

    def check_other_names(self) -> tuple[list[str], list[str]]:
        """exclude (device names this profile is not, although a pattern matches) and aliases."""
        path, data = self.path, self.data
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
        return exclude, aliases

    def profile(self) -> GpuProfile:
        """The profile, its fields checked in the file's order of concerns."""
        name = self.check_identity()
        memory_gb, device, match = self.check_hardware()
        generation = self.check_generation(device)
        scaling = self.check_scaling()
        gate = self.check_gate()
        fidelity = self.check_fidelity()
        peak_tflops, bandwidth = self.check_datasheet()
        exclude, aliases = self.check_other_names()
        return GpuProfile(
            name=name,
            description=str(self.data.get("description", name)),
            memory_gb=memory_gb,
            device=device,
            match=tuple(match),
            scaling=scaling,
            gate=gate,
            fidelity=fidelity,
            peak_tflops=peak_tflops,
            memory_bandwidth_gbs=bandwidth,
            datasheet=self.data.get("datasheet"),
            source=str(self.path),
            exclude=tuple(exclude),
            aliases=tuple(aliases),
            dtype=generation.dtype,
            model=generation.model,
            repeats=generation.repeats,
            signature=generation.signature,
            roofline=generation.roofline,
            pipeline=generation.pipeline,
        )


def _profile_from_yaml(path: Path) -> GpuProfile:
    """One profile file, checked; the first wrong field is a usage error that names it."""
    data = read_yaml(path, "profile file", "fix the file or remove it")
    if not isinstance(data, dict):
        raise I2VUsageError(
            f"profile file {path} must hold a mapping "
            "(name, memory_gb, device, match, model, dtype)"
        )
    return _ProfileFile(path, data).profile()


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
    """An explicit ``--gpu-profile`` that names no profile is a usage error at configure time.
    Cheap: a file of that name settles it; only an unknown name reads the files (for aliases)."""
    validate_profile_name(requested)
    directories = [SHIPPED_PROFILE_DIR]
    if extra_dir is not None and extra_dir.is_dir():
        directories.append(extra_dir)
    if any((directory / f"{requested}.yaml").is_file() for directory in directories):
        return
    profiles = load_profiles(extra_dir)
    if requested not in profiles:
        raise I2VUsageError(
            f"unknown GPU profile {requested!r}; known profiles: {', '.join(sorted(profiles))}"
        )
