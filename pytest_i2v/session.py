"""The run-time state of one pytest session: the resolved plan, cached pipelines, records."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from pytest_i2v.baseline_store import (AcceptedRun, UpdateSummary, baseline_path, config_id, read_baseline,
                                      run_from_record, update_baseline)
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.fingerprint import fingerprint_for
from pytest_i2v.explain import verdict_section
from pytest_i2v.gate import RegressionVerdict, fails, fingerprint_changes, judge
from pytest_i2v.inputs import load_input_image, synthetic_portrait
from pytest_i2v.marks import Budget, GenerationSpec
from pytest_i2v.measure.device import Device, DeviceInfo, DeviceRuntime, TorchRuntime, parse_device
from pytest_i2v.measure.memory import free_device_memory
from pytest_i2v.measure.flops import FlopCount, count_flops, matmul_precision_state, roofline, roofline_peak
from pytest_i2v.memory_options import no_effect_notes
from pytest_i2v.measure.runner import AdaptiveRepeats, GenerationRunner, ProgressCallback, oom_form
from pytest_i2v.models.sources import LoadedPipeline, PipelineKey, apply_toggles, check_model_source, reset_toggles
from pytest_i2v.profiles import GpuProfile, pick_profile
from pytest_i2v.results import GenerationRecord, build_document, write_json_atomic
from pytest_i2v.settings import Settings
from pytest_i2v.study import budget_failures, fits_profile, latency_class, recommend


@dataclass(frozen=True)
class RunPlan:
    """What this session measures with: the profile, device, default dtype and model source."""

    profile: GpuProfile
    device: str  # "cpu" or "cuda:N", always with its index
    dtype: str
    model: str
    gpu: DeviceInfo | None = None  # the device measured on, as it describes itself

    def describe(self) -> list[str]:
        gpu = f" ({self.gpu.name}, {self.gpu.total_bytes / 2**30:.1f} GiB)" if self.gpu else ""
        lines = [
            f"i2v: profile {self.profile.name} ({self.profile.description}), device {self.device}{gpu}, "
            f"model {self.model}, dtype {self.dtype}"
        ]
        if not self.profile.scaling.is_identity:
            lines.append(f"i2v: {self.profile.name} profile scales the study down: {self.profile.scaling.describe()}")
        return lines


def plan_run(settings: Settings, profiles: dict[str, GpuProfile], runtime: DeviceRuntime,
             worker_device: str | None = None) -> RunPlan:
    """Resolve the device first (a bad ``cuda:N`` is a usage error), then detect the profile from
    that device, not from GPU 0. ``worker_device``: an xdist worker's own GPU, used whenever the run
    is on CUDA."""
    cuda_count = runtime.cuda_count()
    if settings.device is not None:
        parse_device(settings.device, cuda_count)
    if settings.device == "cpu":
        detect_on = None
    else:
        detect_on = worker_device or settings.device or ("cuda" if cuda_count else None)
    info = runtime.open(detect_on).info() if detect_on else None
    gpu_name, gpu_memory_gib = (info.name, info.total_bytes / 2**30) if info else (None, None)
    profile = pick_profile(settings.gpu_profile, profiles, gpu_name, gpu_memory_gib, settings.allow_profile_mismatch)
    device = settings.device or ("cuda" if profile.device == "cuda" and cuda_count else "cpu")
    if device != "cpu" and worker_device is not None:
        device = worker_device
    kind, index = parse_device(device, cuda_count)
    device = f"cuda:{index}" if kind == "cuda" else "cpu"
    dtype = settings.dtype or profile.dtype
    if dtype == "fp16" and device == "cpu" and not settings.dtype:
        dtype = "fp32"  # a GPU profile forced onto the CPU: its fp16 default is impractical there
    if dtype == "fp16" and device == "cpu":
        raise I2VUsageError("--i2v-dtype fp16 on the CPU: many fp16 kernels are missing or very slow there; use fp32 or bf16")
    model = check_model_source(settings.model or profile.model, settings.allow_pickle)
    if settings.fast and settings.update_baselines:
        raise I2VUsageError("--i2v-update-baselines with --i2v-fast: baselines hold measured runs, and fast mode predicts "
                            "the total; re-baseline without --i2v-fast")
    if settings.target_ci_pct is not None and settings.min_repeats > settings.max_repeats:
        raise I2VUsageError(f"--i2v-min-repeats {settings.min_repeats} is more than --i2v-max-repeats {settings.max_repeats}")
    return RunPlan(profile=profile, device=device, dtype=dtype, model=model, gpu=info if device != "cpu" else None)


Loader = Callable[[PipelineKey, Path], LoadedPipeline]


class I2VSession:
    def __init__(self, settings: Settings, plan: RunPlan, environment: dict[str, Any], work_dir: Path, loader: Loader,
                 baseline_dir: Path, device: Device | None = None):
        self.settings = settings
        self.plan = plan
        self.device: Device = device if device is not None else TorchRuntime().open(plan.device)
        self.environment = environment
        self.work_dir = work_dir
        self._loader = loader
        self._pipelines: dict[PipelineKey, LoadedPipeline] = {}
        # A bad image file is a usage error before any test runs.
        self._image: Any = load_input_image(settings.input_image) if settings.input_image is not None else None
        self.loads: list[dict[str, Any]] = []
        self.records: dict[str, GenerationRecord] = {}
        self.written: list[Path] = []
        self.skipped: list[dict[str, str]] = []
        self._flop_cache: dict[Any, FlopCount | None] = {}
        gate = plan.profile.gate
        if settings.env_policy:
            gate = replace(gate, env_policy=settings.env_policy)
        if settings.confirm is not None:
            gate = replace(gate, confirm=settings.confirm)
        if settings.gate_mode is not None:
            gate = replace(gate, enforce=settings.gate_mode == "enforce")
        self.gate = gate
        self.baseline_path = baseline_path(baseline_dir, plan.profile.name)
        self.baseline = read_baseline(self.baseline_path, plan.profile.name)  # bad files fail at configure
        self._pooled = self.baseline.pooled()
        self.accepted: list[AcceptedRun] = []
        self.baseline_updates: list[UpdateSummary] = []

    # -- specs and pipelines -------------------------------------------------------------
    def resolve_spec(self, spec: GenerationSpec) -> GenerationSpec:
        """The generation this session actually runs: scaled by the profile (the mark stays the study's)."""
        return spec.scaled(self.plan.profile.scaling)

    def key_for(self, spec: GenerationSpec) -> PipelineKey:
        dtype = spec.dtype or self.plan.dtype
        return PipelineKey(source=self.plan.model, dtype=dtype, device=self.device.placement, offload=spec.offload)

    def pipeline(self, key: PipelineKey) -> LoadedPipeline:
        if key not in self._pipelines:
            if self.device.is_cuda:
                # One full-size pipeline fills a consumer GPU: drop the others before loading.
                self._pipelines.clear()
                free_device_memory(self.device)
            with self.device.activate():
                loaded = self._loader(key, self.work_dir)
            self._pipelines[key] = loaded
            self.loads.append({"key": key.describe(), "load_s": loaded.load_s, "provenance": loaded.provenance})
        return self._pipelines[key]

    def prepare(self, spec: GenerationSpec) -> LoadedPipeline:
        loaded = self.pipeline(self.key_for(spec))
        reset_toggles(loaded.pipe)
        apply_toggles(loaded.pipe, spec.toggles)
        return loaded

    def release(self, loaded: LoadedPipeline) -> None:
        reset_toggles(loaded.pipe)

    def evict(self, key: PipelineKey) -> None:
        """Drop a cached pipeline (reloaded when a test needs it again) and free its memory."""
        self._pipelines.pop(key, None)
        free_device_memory(self.device)

    def input_image(self) -> Any:
        if self._image is None:  # no user image (that one is loaded at configure): the synthetic portrait
            self._image = synthetic_portrait()
        return self._image

    # -- measuring ---------------------------------------------------------------------
    def measure(self, nodeid: str, spec: GenerationSpec, loaded: LoadedPipeline, image: Any,
                progress: ProgressCallback | None = None, repeats: int | None = None,
                warmup: int | None = None, study_spec: GenerationSpec | None = None,
                budget: Budget | None = None) -> GenerationRecord:
        runner = GenerationRunner(loaded.pipe, self.device, progress)
        fast = self.settings.fast or spec.fast
        notes: list[str] = []
        if fast and spec.offload:
            # The first and last steps carry the offload transfers: K sampled steps would not extrapolate.
            fast = False
            notes.append(f"fast mode refused for {spec.offload}: its first and last steps carry the module transfers, "
                         f"so a few sampled steps do not predict the run; measured in full")
        adaptive = None
        if self.settings.target_ci_pct is not None and repeats is None:
            adaptive = AdaptiveRepeats(self.settings.target_ci_pct, self.settings.min_repeats, self.settings.max_repeats)
        flops = self._flops(loaded, spec, image)
        measurement = runner.measure(
            spec, image,
            warmup=self.settings.warmup if warmup is None else warmup,
            repeats=self.settings.repeats if repeats is None else repeats,
            fast_steps=self.settings.fast_steps if fast else None,
            adaptive=adaptive,
        )
        model: dict[str, Any] = {"source": loaded.key.source, "provenance": loaded.provenance,
                                 "dtype": loaded.key.dtype, "device": self.device.name}
        if study_spec is not None and study_spec != spec:
            model["study"] = {"width": study_spec.width, "height": study_spec.height, "steps": study_spec.steps}
        if measurement.outcome == "oom" and spec.offload:
            # An OOM mid-forward leaves offloaded modules on the GPU: reload rather than trust the placement.
            self.evict(loaded.key)
            notes.append(f"the {spec.offload} pipeline was reloaded after the OOM: modules could have stayed on the GPU")
        record = GenerationRecord.from_measurement(nodeid, measurement, model, loaded.load_s)
        notes += no_effect_notes("i2vgen-xl", spec.memory)
        if notes:
            record = replace(record, notes=[*record.notes, *notes])
        precision, allow_tf32 = matmul_precision_state()
        peak, peak_kind = roofline_peak(self.plan.profile.peak_tflops, loaded.key.dtype, precision, allow_tf32)
        record = replace(record, roofline=roofline(flops, record.stages.get("step_s"), record.stages.get("decode_s"), peak,
                                                   peak_kind=peak_kind))
        record = replace(record, config_id=config_id(record.config),
                         fingerprint=fingerprint_for(self.environment, record.config),
                         latency_class=latency_class(record.time_s, self.settings.latency_thresholds),
                         budget={"vram_gb": budget.vram_gb, "time_s": budget.time_s} if budget else None)
        record = replace(record, verdict=self.judge(record).to_dict(), baseline_history=self._history(record))
        self.records[nodeid] = record
        return record

    def _flops(self, loaded: LoadedPipeline, spec: GenerationSpec, image: Any) -> FlopCount | None:
        """Counted once per pipeline and generation shape, on an unmeasured one-step generation."""
        key = (loaded.key, spec.width, spec.height, spec.frames, spec.guidance > 1.0, spec.toggles)
        if key not in self._flop_cache:
            failed = False
            try:
                with self.device.activate():
                    self._flop_cache[key] = count_flops(loaded.pipe, spec, image)
            except Exception as exc:
                if oom_form(exc) is None:
                    raise
                self._flop_cache[key] = None  # the measurement will report the OOM itself
                failed = True
            if failed:  # outside the handler, so the traceback's tensors can go
                free_device_memory(self.device)
        return self._flop_cache[key]

    # -- the gate ----------------------------------------------------------------------
    def _history(self, record: GenerationRecord) -> list[float] | None:
        entry = self.baseline.entries.get(record.nodeid)
        if entry is None or entry.current is None or entry.config_id != record.config_id:
            return None
        return [r["time_s"] for r in entry.current.runs[-10:] if r.get("time_s")] or None

    def judge(self, record: GenerationRecord) -> RegressionVerdict:
        if record.outcome == "oom":
            return RegressionVerdict("oom")
        entry = self.baseline.entries.get(record.nodeid)
        where = self.baseline_path.name
        if entry is None:
            same_config = [n for n in self.baseline.find_by_config(record.config_id or "") if n not in self.records]
            note = f"no baseline for this test in {where}; record one with --i2v-update-baselines"
            if same_config:
                note = (f"no baseline under this test id, but {where} has the same generation config under "
                        f"{same_config[0]} (renamed test?); re-baseline to carry it over")
            return RegressionVerdict("new", notes=(note,))
        if entry.config_id != record.config_id:
            changed = sorted(k for k in entry.config if entry.config.get(k) != record.config.get(k))
            return RegressionVerdict("new", notes=(
                f"the generation config changed since the baseline ({', '.join(changed) or 'config'}); "
                f"not compared: re-baseline with --i2v-update-baselines",))
        segment = entry.current
        if segment is None or not segment.runs:
            return RegressionVerdict("new", notes=(f"{where} has no accepted runs for this test yet",))
        changes = fingerprint_changes(segment.fingerprint, record.fingerprint or {})
        current = {"time_s": record.time_s, "step_s": record.stages.get("step_s"),
                   "decode_s": record.stages.get("decode_s"), **record.peak_memory}
        return judge(segment.runs, current, self.gate, self._pooled, env_changes=changes)

    def gate_fails(self, record: GenerationRecord) -> bool:
        """Whether the gate fails this record's test (never while updating baselines)."""
        if record.verdict is None or self.settings.update_baselines:
            return False
        return fails(RegressionVerdict.from_dict(record.verdict), self.gate)

    def note(self, record: GenerationRecord, text: str) -> GenerationRecord:
        noted = replace(record, notes=[*record.notes, text])
        self.records[record.nodeid] = noted
        return noted

    def explain(self, record: GenerationRecord) -> str:
        if record.verdict is None or record.outcome != "ok":
            return ""
        notes = list(record.notes)
        if not self.gate.enforce and record.verdict.get("verdict") in ("regressed", "env-changed"):
            notes.append(f"profile {self.plan.profile.name} reports only (--i2v-gate-mode enforce to fail on it)")
        return verdict_section(RegressionVerdict.from_dict(record.verdict), record.nodeid, self.plan.profile.name,
                               str(self.baseline_path), notes)

    def unfit_budget(self, budget: Budget | None) -> str | None:
        if budget is None or budget.vram_gb is None:
            return None
        return fits_profile(budget.vram_gb, self.plan.profile.memory_gb, self.settings.safety_margin_gb)

    @staticmethod
    def budget_failures(record: GenerationRecord) -> list[str]:
        if not record.budget or record.outcome != "ok":
            return []
        return budget_failures(record.to_dict(), record.budget.get("vram_gb"), record.budget.get("time_s"))

    def accept(self, record: GenerationRecord) -> None:
        """Queue a passing run for the baseline (written once, at the end of the session).
        Fast-mode runs are predicted, not measured: never a baseline."""
        if record.outcome == "ok" and record.fingerprint is not None and record.mode == "full":
            self.accepted.append(AcceptedRun(record.nodeid, record.config, record.fingerprint, run_from_record(record.to_dict(), None)))

    def write_baselines(self, root: Path) -> UpdateSummary | None:
        if not self.accepted or not self.settings.update_baselines:
            return None
        commit = git_commit(root)
        runs = [replace(a, run={**a.run, "commit": commit}) for a in self.accepted]
        summary = update_baseline(self.baseline_path, self.plan.profile.name, runs, mode=self.settings.update_baselines)
        self.baseline_updates.append(summary)
        return summary

    def write_outputs(self) -> None:
        """The JSON, HTML and Markdown outputs that were asked for, each written atomically."""
        document = self.document()
        if self.settings.json_path is not None:
            write_json_atomic(self.settings.json_path, document)
            self.written.append(self.settings.json_path)
        if self.settings.report_path is not None:
            from pytest_i2v.report.html import write_html

            write_html(self.settings.report_path, document)
            self.written.append(self.settings.report_path)
        if self.settings.markdown_path is not None:
            from pytest_i2v.storage import write_text_atomic
            from pytest_i2v.report.markdown import render_markdown

            if self.settings.markdown_path.exists() and self.settings.markdown_path.stat().st_size and \
                    str(self.settings.markdown_path) == os.environ.get("GITHUB_STEP_SUMMARY"):
                with open(self.settings.markdown_path, "a", encoding="utf-8") as handle:  # the step summary is shared
                    handle.write(render_markdown(document))
            else:
                write_text_atomic(self.settings.markdown_path, render_markdown(document))
            self.written.append(self.settings.markdown_path)

    def document(self, extra_records: list[GenerationRecord] | None = None,
                 extra_loads: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        records = list(self.records.values()) + list(extra_records or [])
        profile = self.plan.profile.to_dict()
        return build_document(self.environment, profile, self.settings.to_dict(), records,
                              self.loads + list(extra_loads or []),
                              extra={"baseline": {"path": str(self.baseline_path), "gate": self.gate.to_dict()},
                                     "published_reference": self._published([r.to_dict() for r in records]),
                                     "recommendation": self.recommendation([r.to_dict() for r in records]),
                                     "skipped": self.skipped})

    def recommendation(self, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The matrix from this run's own measurements, when they span at least two sizes."""
        try:
            return recommend(records, self.plan.profile.scaling, margin_gb=self.settings.safety_margin_gb,
                             thresholds=self.settings.latency_thresholds)
        except (I2VUsageError, ValueError):
            return None

    @staticmethod
    def _published(records: list[dict[str, Any]]) -> dict[str, Any] | None:
        from pytest_i2v.reference import SHIPPED_REFERENCE, compare_published, load_reference

        if not SHIPPED_REFERENCE.is_file():  # an installed wheel without the repository's baselines/
            return None
        return compare_published(records, load_reference(SHIPPED_REFERENCE))


def git_commit(root: Path) -> str | None:
    """The commit being measured: $GITHUB_SHA in Actions, else git's HEAD, else None."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"][:12]
    try:
        completed = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                   text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None
