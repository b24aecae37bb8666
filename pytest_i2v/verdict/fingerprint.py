"""The environment a measurement was taken in: the machine (CPU, GPU) and the software on it.

No serial numbers, UUIDs or host names. Extended through the ``pytest_i2v_environment`` hook.

The fingerprint has two halves. MACHINE keys say which machine measured (CPU model, the ISA flags
that pick torch's kernels, cores and threads; GPU name, memory, SM count, power limit, form): a
baseline from another machine is never compared ("no baseline for this machine, recorded as new").
SOFTWARE keys (driver, CUDA, torch, ...) say what ran on it: a change follows the env policy.

Pure: the keys and how two fingerprints compare (the review CLI reads baselines without torch);
reading the environment from the machine is ``measure.environment``'s."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pytest_i2v.generation.marks import ConfigValue
from pytest_i2v.storage import Scalar
from pytest_i2v.verdict.gate import fingerprint_changes

# x86 ISA extensions that change which kernels torch (oneDNN, FBGEMM, its vectorised ops) runs:
# two CPUs that both say "AMD EPYC" can differ here, and their timings do.
KERNEL_ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
NO_KERNEL_ISA = "none"  # a flags line without any of them (as opposed to None: not known)

# Which machine measured. A key unknown on either side (None, or absent from a baseline written
# before the key existed) is not a difference: old baselines keep comparing.
GPU_MACHINE_KEYS = ("gpu_name", "gpu_memory_gib", "gpu_sm_count", "gpu_power_limit_w", "gpu_form")
CPU_MACHINE_KEYS = ("cpu_model", "cpu_isa", "cpu_physical_cores", "cpu_threads")
MACHINE_KEYS = GPU_MACHINE_KEYS + CPU_MACHINE_KEYS
# What ran on it: a change is judged by the env policy (warn | fail | ignore).
SOFTWARE_KEYS = (
    "driver",
    "cuda",
    "cudnn",
    "torch",
    "diffusers",
    "transformers",
    "python",
    "plugin",
)

# --i2v-lock-clocks: "locked <SM clock> MHz". A software key present only when the clocks were
# locked, so a locked run against an unlocked baseline is an environment change, and runs without
# the lock (every baseline written before it existed) compare as before.
GPU_CLOCKS_KEY = "gpu_clocks"

# Keys of the environment that decide whether two runs are comparable.
FINGERPRINT_KEYS = GPU_MACHINE_KEYS + SOFTWARE_KEYS
CPU_FINGERPRINT_KEYS = CPU_MACHINE_KEYS  # added on the CPU, where the processor is the "GPU"


# -- /proc/cpuinfo (pure parsers: the text in, the figure out) --------------------------------
def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    """One ``key: value`` mapping per logical processor (blocks are separated by blank lines)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(key.strip(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def parse_cpu_model(text: str) -> str | None:
    return next(
        (block["model name"] for block in _cpuinfo_blocks(text) if block.get("model name")), None
    )


def parse_cpu_isa(text: str) -> str | None:
    """The kernel-relevant ISA flags of the first processor's ``flags`` line, sorted and
    space-separated ("avx2 avx512f"); ``"none"`` when it has none of them; None without a flags
    line (not x86, or no /proc)."""
    for block in _cpuinfo_blocks(text):
        if "flags" in block:
            present = set(block["flags"].split())
            found = sorted(flag for flag in KERNEL_ISA_FLAGS if flag in present)
            return " ".join(found) or NO_KERNEL_ISA
    return None


def parse_physical_cores(text: str) -> int | None:
    """Distinct (physical id, core id) pairs: hyper-threads share a core. None when the text
    names no cores (some VMs and non-x86 kernels)."""
    cores = {
        (block.get("physical id", "0"), block["core id"])
        for block in _cpuinfo_blocks(text)
        if "core id" in block
    }
    return len(cores) or None


def gpu_form_from_name(name: str | None) -> str | None:
    """PCIe, SXM or NVL from the board name, as NVML and torch report it. NVML has no form-factor
    query for these boards, but the names carry it ("NVIDIA H100 PCIe", "NVIDIA H100 NVL",
    "Tesla V100-SXM2-16GB"); the HGX-only boards whose names say nothing ("NVIDIA H100 80GB HBM3",
    "NVIDIA H200", B100/B200) are SXM, as the GPU profiles assume. Anything else: None (unknown)."""
    if not name:
        return None
    tokens = set(re.split(r"[\s\-_]+", name.upper()))
    if "NVL" in tokens:
        return "NVL"
    if any(token.startswith("PCIE") for token in tokens):
        return "PCIe"
    if any(token.startswith("SXM") for token in tokens):
        return "SXM"
    if re.search(r"\b(H100 80GB HBM3|H200|B100|B200)\b", name.upper()):
        return "SXM"
    return None


# -- machine vs software --------------------------------------------------------------------
def machine_changes(old: Mapping[str, Scalar], new: Mapping[str, Scalar]) -> tuple[str, ...]:
    """Machine keys known on both sides that differ (``cpu_isa avx2 -> avx2 avx512f``). A key
    missing or None on either side is unknown, and unknown is not a difference."""
    return tuple(
        f"{key} {old[key]} -> {new[key]}"
        for key in MACHINE_KEYS
        if old.get(key) is not None and new.get(key) is not None and old[key] != new[key]
    )


def software_changes(old: Mapping[str, Scalar], new: Mapping[str, Scalar]) -> tuple[str, ...]:
    """Every other fingerprint key that differs (libraries, dtype, attention, hook-added keys),
    as today: a key added or removed counts."""
    return fingerprint_changes(
        {k: v for k, v in old.items() if k not in MACHINE_KEYS},
        {k: v for k, v in new.items() if k not in MACHINE_KEYS},
    )


def same_machine(old: Mapping[str, Scalar], new: Mapping[str, Scalar]) -> bool:
    return not machine_changes(old, new)


def attention_backend(memory_options: list[str] | tuple[str, ...]) -> str:
    if "eager_attention" in memory_options:
        return "eager"
    if "attention_slicing" in memory_options:
        return "sliced"
    return "sdpa"


def fingerprint_for(
    environment: Mapping[str, Scalar], config: Mapping[str, ConfigValue]
) -> dict[str, Scalar]:
    """The environment fingerprint of one measured test: the machine and libraries, plus the
    dtype and attention backend it ran with. Keys added through the environment hook count too.
    ``environment``: the document ``measure.environment`` collects (with the probe's figures and
    the hooks' keys), where it becomes fingerprint keys."""
    keys = list(FINGERPRINT_KEYS)
    if environment.get("gpu_name") is None:
        keys += CPU_FINGERPRINT_KEYS  # on the CPU the processor is the "GPU"
    extra = [k for k in environment if k not in _BASE_ENVIRONMENT_KEYS]
    fingerprint = {key: environment.get(key) for key in keys + extra}
    if environment.get(GPU_CLOCKS_KEY) is not None:
        fingerprint[GPU_CLOCKS_KEY] = environment[GPU_CLOCKS_KEY]
    fingerprint["dtype"] = _setting(config.get("dtype"))
    # a diffusers attention backend named by the mark (attention=...), else the one the memory
    # options imply
    memory = config.get("memory") or ()
    fingerprint["attention"] = _setting(config.get("attention")) or attention_backend(
        memory if isinstance(memory, (list, tuple)) else ()
    )
    return fingerprint


def _setting(value: ConfigValue) -> Scalar:
    """A config setting as a fingerprint key holds it: a list is no key's value."""
    return None if isinstance(value, list) else value


# Everything measure.environment.collect_environment reports; other keys come from
# pytest_i2v_environment hooks. Measurements the environment carries that are no fingerprint: the
# machine speed probe's figures move from run to run, so as a key they would make every run an
# environment change.
MEASUREMENT_KEYS = ("machine_probe",)
_BASE_ENVIRONMENT_KEYS = frozenset(
    {
        "device",
        *FINGERPRINT_KEYS,
        *CPU_FINGERPRINT_KEYS,
        GPU_CLOCKS_KEY,
        "machine",
        "profile",
        *MEASUREMENT_KEYS,
    }
)
