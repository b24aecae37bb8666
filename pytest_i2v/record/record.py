"""One record per measured test (``GenerationRecord``), typed part by part and serialised
generically by cattrs: the dataclasses' fields are the JSON keys, no field is listed twice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, get_type_hints

import cattrs
from cattrs.strategies import configure_union_passthrough

from pytest_i2v.generation.fidelity_mark import FidelityRequest
from pytest_i2v.generation.marks import ConfigValue
from pytest_i2v.generation.memory_options import LOSSY_MEMORY_OPTIONS
from pytest_i2v.metrics import (
    ALLOCATED_BYTES,
    DEVICE_BYTES,
    HOST_RSS_BYTES,
    RESERVED_BYTES,
    STEP_S,
    TIME_S,
)
from pytest_i2v.record.parts import (
    AdaptiveRecord,
    DeclaredBudget,
    FastMode,
    MemoryLevel,
    OomInfo,
    OutputComparison,
    OutputReference,
    PeakMemory,
    Roofline,
    SignatureRecord,
    Stages,
    WorkComparison,
)
from pytest_i2v.storage import JsonValue, Scalar
from pytest_i2v.verdict.conditions import RunConditions
from pytest_i2v.verdict.fidelity import FidelityFigures
from pytest_i2v.verdict.gate import RegressionVerdict
from pytest_i2v.verdict.outcome import Outcome
from pytest_i2v.verdict.peak import HeadlinePeak, headline_peak


@dataclass(frozen=True)
class GenerationRecord:
    nodeid: str
    # the generation config (GenerationSpec.to_dict) and the model actually used: source,
    # provenance, dtype, device
    config: dict[str, JsonValue]
    outcome: str  # what was measured: "ok" or "oom" (the decision is ``decision``)
    repeats: int
    warmup: int
    time_s: float | None
    time_samples_s: list[float]
    gen_fps: float | None
    stages: Stages
    peak_memory: PeakMemory
    load_s: float | None
    oom: OomInfo | None = None
    notes: list[str] = field(default_factory=list)
    wall_s: float | None = None
    config_id: str | None = None
    fingerprint: dict[str, Scalar] | None = None  # fingerprint.fingerprint_for: machine, software
    verdict: RegressionVerdict | None = None
    latency_class: str | None = None  # good / acceptable / too-slow (the study's thresholds)
    budget: DeclaredBudget | None = None
    baseline_history: list[float] | None = None  # the baseline's last accepted total times
    mode: str = "full"  # "fast": time_s and gen_fps are predicted from measured steps
    fast: FastMode | None = None
    ci_pct: float | None = None  # 95 % CI width of the median time, % of the median
    adaptive: AdaptiveRecord | None = None
    roofline: Roofline | None = None
    memory_start: MemoryLevel | None = None  # where the measurement started
    decision: Outcome | None = None  # what the test comes to, decided once
    conditions: RunConditions | None = None  # the GPU per repeat (None on the CPU)
    # which NVML device the figures are ("UUID GPU-...", "index 0"); None: no NVML
    nvml_device: str | None = None
    signature: SignatureRecord | None = None  # the work of one profiled generation
    work: WorkComparison | None = None  # against the baseline's signature
    # the gate's: the first, plus one per re-measurement (in this process or a fresh one)
    measurements: int = 1
    machine_probe: dict[str, float] | None = None  # this session's machine speed
    output: OutputReference | None = None  # the first measured generation's output, reduced
    # the second measured generation's output against the first's: this code run twice here
    output_repeat: FidelityFigures | None = None
    fidelity_request: FidelityRequest | None = None  # the test's i2v_fidelity mark
    fidelity: OutputComparison | None = None  # the output against its reference's, judged

    def to_dict(self) -> dict[str, JsonValue]:
        document: dict[str, JsonValue] = CONVERTER.unstructure(self)
        return document

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationRecord:
        """A record as ``to_dict`` wrote it; a key it does not know is left out."""
        return CONVERTER.structure(dict(data), cls)

    @classmethod
    def from_partial(cls, data: Mapping[str, Any]) -> GenerationRecord:
        """A record of an older or hand-written results document: the measured fields it leaves
        out take their empty values (the review CLI judges it as the plugin would)."""
        given = {k: v for k, v in data.items() if v is not None}
        return cls.from_dict({**EMPTY_MEASUREMENT, **given})

    def peak(self, metric: str) -> int | None:
        """One peak by its metric name (``pytest_i2v.metrics``)."""
        value: int | None = getattr(self.peak_memory, metric)
        return value

    def headline_peak(self) -> HeadlinePeak:
        """The one memory figure that stands for the test (``verdict.peak``)."""
        return headline_peak(asdict(self.peak_memory))

    def setting(self, name: str) -> Scalar:
        """One generation setting of the config (a size, a count, a word); None where it is absent
        or not a scalar."""
        value = self.config.get(name)
        return value if value is None or isinstance(value, (str, int, float, bool)) else None

    def count(self, name: str) -> int:
        """A size or count of the config (width, height, frames, steps); 0 where absent."""
        value = self.config.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def memory_options(self) -> list[str]:
        """The memory options the mark asked for, in its order."""
        options = self.config.get("memory")
        return [str(o) for o in options] if isinstance(options, (list, tuple)) else []

    def generation_settings(self) -> dict[str, ConfigValue]:
        """The config's settings a baseline keys on (sizes, counts, words, the memory options):
        its scalars and lists of words, without the loader's nested facts."""
        settings: dict[str, ConfigValue] = {}
        for key, value in self.config.items():
            if value is None or isinstance(value, (str, int, float, bool)):
                settings[key] = value
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                settings[key] = [str(v) for v in value]
        return settings

    @property
    def lossy_by_config(self) -> bool:
        """Whether the config changes the output by design: a cache, fp8 weights."""
        lossy_option = any(o in LOSSY_MEMORY_OPTIONS for o in self.memory_options)
        return lossy_option or self.setting("cache") not in (None, "none")

    @property
    def kind(self) -> str:
        """The decision's outcome kind, or what was measured before one was decided."""
        return self.decision.kind if self.decision else self.outcome

    def user_properties(self) -> list[tuple[str, Any]]:
        """The key figures for JUnit XML (``record_property``-style)."""
        props: list[tuple[str, Any]] = [("i2v_outcome", self.kind), ("i2v_measured", self.outcome)]
        if self.verdict:
            props.append(("i2v_verdict", self.verdict.verdict))
        if self.conditions:
            props.append(("i2v_conditions", self.conditions.summary))
        figures: list[tuple[str, float | int | None]] = [
            ("i2v_time_s", self.time_s),
            ("i2v_gen_fps", self.gen_fps),
            (f"i2v_{STEP_S}", self.stages.step_s),
        ]
        for metric in (ALLOCATED_BYTES, RESERVED_BYTES, DEVICE_BYTES, HOST_RSS_BYTES):
            figures.append((f"i2v_peak_{metric}", self.peak(metric)))
        for name, value in figures:
            if value is not None:
                props.append((name, round(value, 6) if isinstance(value, float) else value))
        return props


# What a record of an older results document leaves out of its measurement (``from_partial``).
EMPTY_MEASUREMENT: dict[str, JsonValue] = {
    "config": {},
    "outcome": "ok",
    "repeats": 0,
    "warmup": 0,
    TIME_S: None,
    "time_samples_s": [],
    "gen_fps": None,
    "stages": {},
    "peak_memory": {},
    "load_s": None,
}


def _converter() -> cattrs.Converter:
    """The parts with a JSON form of their own (the verdict's classes) keep it; the rest is
    generic."""
    converter = cattrs.Converter()
    # JSON's scalars pass as they are: a fingerprint's value is a string, a number or null
    configure_union_passthrough(Scalar, converter)
    # the config is JSON as the mark and the loader wrote it (its readers narrow each value)
    config_type = get_type_hints(GenerationRecord, localns={"Sequence": Sequence})["config"]
    converter.register_structure_hook_func(lambda t: t == config_type, lambda data, _: dict(data))
    converter.register_unstructure_hook_func(lambda t: t == config_type, dict)
    for own in (RegressionVerdict, Outcome, RunConditions, WorkComparison):
        converter.register_unstructure_hook(own, lambda value: value.to_dict())
        converter.register_structure_hook(own, lambda data, cls: cls.from_dict(data))
    return converter


CONVERTER = _converter()
