"""One measured generation -> one ``GenerationRecord``: runs the runner, counts FLOPs once per
shape, and adds what the record carries besides the figures (roofline, notes, fingerprint,
latency class, budget). The gate's verdict and the outcome are added by ``gate_loop``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pytest_i2v.generation.fidelity_mark import FidelityRequest
from pytest_i2v.generation.marks import Budget, GenerationSpec
from pytest_i2v.generation.memory_options import no_effect_notes
from pytest_i2v.measure.device import Device
from pytest_i2v.measure.flops import (
    FlopCount,
    count_flops,
    matmul_precision_state,
    roofline,
    roofline_peak,
)
from pytest_i2v.measure.measurement import AdaptiveRepeats, Measurement
from pytest_i2v.measure.memory import free_device_memory
from pytest_i2v.measure.probe import run_probe
from pytest_i2v.measure.profiling import profile_work
from pytest_i2v.measure.runner import (
    GenerationRunner,
    ProgressCallback,
    RoundsDriver,
    oom_form,
)
from pytest_i2v.pipelines.loading import LoadedPipeline
from pytest_i2v.record.parts import AdaptiveRecord, DeclaredBudget, FastMode, SignatureRecord
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.session.pipeline_cache import PipelineCache
from pytest_i2v.session.plan import RunPlan
from pytest_i2v.session.settings import Settings
from pytest_i2v.storage import Environment, JsonValue
from pytest_i2v.study import latency_class
from pytest_i2v.verdict.baseline_records import config_id
from pytest_i2v.verdict.fingerprint import fingerprint_for
from pytest_i2v.verdict.signature import WorkSignature

# torch._dynamo is imported inside _fresh_compile: it loads some 800 modules, and only compiled
# pipelines need it.


@dataclass(frozen=True)
class MeasureRequest:
    """One generation to measure and how: what ``Recorder.measure`` is asked."""

    nodeid: str
    spec: GenerationSpec
    loaded: LoadedPipeline
    image: Any
    progress: ProgressCallback | None = None
    repeats: int | None = None  # None: the plan's
    warmup: int | None = None  # None: the settings'
    study_spec: GenerationSpec | None = None  # the generation before the profile scaled it
    budget: Budget | None = None
    fidelity: FidelityRequest | None = None  # the test's i2v_fidelity mark
    # What runs the rounds (pytest-benchmark's, see ``benchmark_bridge``); None: the plugin's loop.
    drive: RoundsDriver | None = None
    # The work an earlier call profiled (the gate's re-measurement: the work is the same).
    signature: SignatureRecord | None = None


@dataclass(frozen=True)
class SessionProbe:
    """The machine probe's figures at the session's start and end (None: its clock does not
    move, or the end has not run yet)."""

    ran: bool = False
    start: dict[str, float] | None = None
    ended: bool = False
    end: dict[str, float] | None = None

    def document(self) -> dict[str, JsonValue] | None:
        """As the results document's environment holds it (``machine_probe``)."""
        if not self.ran:
            return None
        return {"start": self.start, "end": self.end} if self.ended else {"start": self.start}


class Recorder:
    def __init__(
        self,
        settings: Settings,
        plan: RunPlan,
        device: Device,
        environment: Environment,
        pipelines: PipelineCache,
    ):
        self._settings = settings
        self._plan = plan
        self._device = device
        self._environment = environment
        self._pipelines = pipelines
        self._flop_cache: dict[Any, FlopCount | None] = {}
        # measure.probe before the first test (None: not yet / no clock)
        self.probe = SessionProbe()
        # the last (pipeline, shape) compiled code ran
        self._compiled_shape: tuple[Any, ...] | None = None

    def measure(self, request: MeasureRequest) -> GenerationRecord:
        """Measure ``request``'s generation and return its record, verdict not yet added."""
        spec, loaded = request.spec, request.loaded
        fast, notes = self._fast_mode(spec)
        self._fresh_compile(loaded, spec)
        self._probe_once()
        flops = self._flops(loaded, spec, request.image) if self._plan.roofline else None
        measurement = self._run(request, fast)
        model = model_description(loaded, self._device.name, spec, request.study_spec)
        if measurement.outcome == "oom" and spec.offload:
            # An OOM mid-forward leaves offloaded modules on the GPU: reload rather than trust
            # the placement.
            self._pipelines.evict(loaded.key)
            notes.append(
                f"the {spec.offload} pipeline was reloaded after the OOM: modules could have "
                f"stayed on the GPU"
            )
        record = replace(
            record_of(request.nodeid, measurement, model, loaded.load_s),
            machine_probe=self.probe.start,
        )
        if self._plan.signature and measurement.outcome == "ok":
            signature = request.signature or SignatureRecord.of(
                self._signature(loaded, spec, request.image)
            )
            record = replace(record, signature=signature)
        notes += no_effect_notes(spec.pipeline, spec.memory)
        annotated = self._annotated(record, notes, flops, loaded.key.dtype, request.budget)
        return replace(annotated, fidelity_request=request.fidelity)

    def _fast_mode(self, spec: GenerationSpec) -> tuple[bool, list[str]]:
        """Whether to sample a few steps (``--i2v-fast`` or the mark's), and why not where
        refused."""
        fast = self._settings.fast or spec.fast
        if fast and spec.offload:
            # The first and last steps carry the offload transfers: K sampled steps would not
            # extrapolate.
            return False, [
                f"fast mode refused for {spec.offload}: its first and last steps carry the module "
                f"transfers, so a few sampled steps do not predict the run; measured in full"
            ]
        return fast, []

    def _probe_once(self) -> None:
        """The machine probe, once per session, before the first measurement."""
        if not self.probe.ran:
            self.probe = SessionProbe(ran=True, start=run_probe(self._device))

    def _run(self, request: MeasureRequest, fast: bool) -> Measurement:
        """The warm-up and the timed repeats: a fixed number, or adaptive (``--i2v-target-ci``)
        where the call names none."""
        settings = self._settings
        adaptive = None
        if settings.target_ci_pct is not None and request.repeats is None:
            adaptive = AdaptiveRepeats(
                settings.target_ci_pct, settings.min_repeats, settings.max_repeats
            )
        runner = GenerationRunner(request.loaded.pipe, self._device, request.progress)
        return runner.measure(
            request.spec,
            request.image,
            warmup=settings.warmup if request.warmup is None else request.warmup,
            repeats=self._plan.repeats if request.repeats is None else request.repeats,
            fast_steps=settings.fast_steps if fast else None,
            adaptive=adaptive,
            drive=request.drive,
        )

    def _annotated(
        self,
        record: GenerationRecord,
        notes: list[str],
        flops: FlopCount | None,
        dtype: str,
        budget: Budget | None,
    ) -> GenerationRecord:
        """What the record carries besides the figures: notes, roofline, ids, latency class,
        budget."""
        precision, allow_tf32 = matmul_precision_state()
        peak, peak_kind = roofline_peak(
            self._plan.profile.peak_tflops, dtype, precision, allow_tf32
        )
        return replace(
            record,
            notes=[*record.notes, *notes],
            roofline=roofline(
                flops, record.stages.step_s, record.stages.decode_s, peak, peak_kind=peak_kind
            ),
            config_id=config_id(record.generation_settings()),
            fingerprint=fingerprint_for(self._environment, record.generation_settings()),
            latency_class=latency_class(record.time_s, self._settings.latency_thresholds),
            budget=DeclaredBudget(budget.vram_gb, budget.time_s) if budget else None,
        )

    def probe_end(self) -> None:
        """The probe again at the end of a session that ran one at its start: a machine that
        changed speed under the run (a neighbour, throttling) shows as start and end apart."""
        if self.probe.ran:
            self.probe = replace(self.probe, ended=True, end=run_probe(self._device))

    def _fresh_compile(self, loaded: LoadedPipeline, spec: GenerationSpec) -> None:
        """A compiled pipeline (dynamic=False) keeps one static graph per shape, up to Dynamo's
        recompile limit, past which it silently runs eager. So that no test's kernels depend on
        what ran before it, a test of another shape than the last compiled one starts from an
        empty Dynamo cache; its warm-up pays the compile."""
        if "torch_compile" not in loaded.key.load_options:
            return
        shape = shape_key(loaded, spec)
        if needs_fresh_compile(self._compiled_shape, shape):
            import torch._dynamo

            torch._dynamo.reset()
        self._compiled_shape = shape

    def _signature(self, loaded: LoadedPipeline, spec: GenerationSpec, image: Any) -> WorkSignature:
        """One extra, untimed generation under the profiler, after the measurement (warm)."""
        with self._device.activate():
            return profile_work(loaded.pipe, spec, image, self._device)

    def _flops(self, loaded: LoadedPipeline, spec: GenerationSpec, image: Any) -> FlopCount | None:
        """Counted once per pipeline and generation shape, on an unmeasured one-step generation."""
        key = shape_key(loaded, spec)
        if key not in self._flop_cache:
            failed = False
            try:
                with self._device.activate():
                    self._flop_cache[key] = count_flops(loaded.pipe, spec, image)
            except Exception as exc:
                if oom_form(exc) is None:
                    raise
                self._flop_cache[key] = None  # the measurement will report the OOM itself
                failed = True
            if failed:  # outside the handler, so the traceback's tensors can go
                free_device_memory(self._device)
        return self._flop_cache[key]


def shape_key(loaded: LoadedPipeline, spec: GenerationSpec) -> tuple[Any, ...]:
    """A pipeline and the shape of the work it is given: what FLOPs and compiled graphs depend
    on."""
    return (
        loaded.key,
        spec.width,
        spec.height,
        spec.frames,
        spec.guidance > 1.0,
        spec.toggles,
        spec.attention,
    )


def needs_fresh_compile(last: tuple[Any, ...] | None, shape: tuple[Any, ...]) -> bool:
    """Whether compiled code must be dropped before running ``shape``: compiled code of another
    shape (or pipeline) ran last. The first compiled test compiles from scratch anyway."""
    return last is not None and last != shape


def model_description(
    loaded: LoadedPipeline,
    device_name: str,
    spec: GenerationSpec,
    study_spec: GenerationSpec | None,
) -> dict[str, JsonValue]:
    """The record's ``model``: what was loaded, how and where, and the study's generation where
    the profile scaled the one that ran."""
    model: dict[str, JsonValue] = {
        "source": loaded.key.source,
        "provenance": loaded.provenance,
        "dtype": loaded.key.dtype,
        "device": device_name,
        "loaded_by": loaded.loaded_by,
        "applied_options": [c.to_dict() for c in loaded.applied],
    }
    if loaded.key.pipeline_class:
        model["pipeline_class"] = loaded.key.pipeline_class
    if study_spec is not None and study_spec != spec:
        model["study"] = {
            "width": study_spec.width,
            "height": study_spec.height,
            "frames": study_spec.frames,
            "steps": study_spec.steps,
        }
    return model


def record_of(
    nodeid: str, measurement: Measurement, model: Mapping[str, JsonValue], load_s: float | None
) -> GenerationRecord:
    """The record of one measurement, before its verdict: ``model`` is the model actually used
    (source, provenance, dtype, device)."""
    config: dict[str, JsonValue] = {**measurement.spec.to_dict(), **model}
    return GenerationRecord(
        nodeid=nodeid,
        config=config,
        outcome=measurement.outcome,
        repeats=len(measurement.samples),
        warmup=measurement.warmup,
        time_s=measurement.time_s,
        time_samples_s=measurement.time_samples_s,
        gen_fps=measurement.gen_fps,
        stages=measurement.stages,
        peak_memory=measurement.peak,
        load_s=load_s,
        oom=measurement.oom,
        output=measurement.output,
        output_repeat=measurement.output_repeat,
        notes=[measurement.nvml_note] if measurement.nvml_note else [],
        wall_s=measurement.wall_s,
        mode="fast" if measurement.predicted else "full",
        fast=_fast_mode_of(measurement),
        ci_pct=measurement.ci_pct,
        adaptive=_adaptive_of(measurement),
        memory_start=measurement.start,
        conditions=measurement.conditions,
        nvml_device=measurement.nvml_opened_by,
    )


def _fast_mode_of(measurement: Measurement) -> FastMode | None:
    if not measurement.predicted:
        return None
    return FastMode(
        measured_steps=measurement.measured_steps,
        steps=measurement.spec.steps,
        measured_time_s=measurement.measured_time_s,
        measured_time_samples_s=[s.total_s for s in measurement.samples],
    )


def _adaptive_of(measurement: Measurement) -> AdaptiveRecord | None:
    adaptive = measurement.adaptive
    if adaptive is None:
        return None
    converged = (measurement.ci_pct or 1e9) <= adaptive.target_pct
    return AdaptiveRecord(
        target_ci_pct=adaptive.target_pct,
        min_repeats=adaptive.minimum,
        max_repeats=adaptive.maximum,
        repeats_needed=len(measurement.samples),
        stopped="converged" if converged else "max-repeats",
    )
