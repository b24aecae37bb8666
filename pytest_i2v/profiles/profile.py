"""A GPU profile: the GPU a run is on (how to recognise it, how much memory it has), its datasheet
figures, and how the study runs there."""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_i2v.generation.marks import Scaling
from pytest_i2v.storage import JsonValue
from pytest_i2v.verdict.fidelity import FidelitySettings
from pytest_i2v.verdict.gate import GateSettings

# Marketed GB vs the GiB torch/NVML report, minus driver-reserved memory.
MEMORY_MATCH_TOLERANCE = 0.15


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
    # the bars an output is held to against its reference's (profile key ``fidelity:``)
    fidelity: FidelitySettings = field(default_factory=FidelitySettings)
    # Published datasheet figures (dense, no sparsity), per dtype, and memory bandwidth.
    peak_tflops: dict[str, float] = field(default_factory=dict)
    memory_bandwidth_gbs: float | None = None
    datasheet: str | None = None
    source: str = ""  # the file it came from
    # Substrings that rule a device out although a match pattern is in its name: "NVIDIA H200"
    # (SXM) is in "NVIDIA H200 NVL", whose peaks are lower.
    exclude: tuple[str, ...] = ()
    # Other names this profile answers to (old names, kept for baselines).
    aliases: tuple[str, ...] = ()
    # Set on the copy registered under an alias: the profile it stands for.
    alias_of: str | None = None
    # The pipeline of unmarked tests (None: --i2v-pipeline's default, i2vgen-xl).
    pipeline: str | None = None
    repeats: int = 5  # measured repeats per generation unless --i2v-repeats says (the study's 5)
    # Profile each test's work (signature.py) unless --i2v-signature says; CPU profiles: off.
    signature: bool = True
    # Count FLOPs for the roofline unless --i2v-roofline says; CPU profiles: off.
    roofline: bool = True

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

    def to_dict(self) -> dict[str, JsonValue]:
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
            "fidelity": self.fidelity.to_dict(),
            "peak_tflops": self.peak_tflops,
            "memory_bandwidth_gbs": self.memory_bandwidth_gbs,
            "datasheet": self.datasheet,
            "alias_of": self.alias_of,
            "pipeline": self.pipeline,
            "repeats": self.repeats,
        }
