"""The plugin at work: built and registered only once an i2v test is collected (pytest-xdist's
``DSession`` is the model), so a run without i2v tests imports no torch and reads no baseline.

``I2VRun`` composes the parts, each with one job: the plan, the device, the pipeline cache, the
recorder, the gate loop and the outputs; its hooks report what they decided."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.inputs import load_input_image, synthetic_portrait
from pytest_i2v.measure.clocks import LockedClocks, lock_clocks
from pytest_i2v.measure.device import Device, DeviceRuntime
from pytest_i2v.measure.environment import collect_environment
from pytest_i2v.measure.memory import release_traceback
from pytest_i2v.profiles import load_profiles
from pytest_i2v.record.document import write_json_atomic
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.session import fresh_process
from pytest_i2v.session.fresh_process import HELD_CLOCKS_ENV, ChildProcess
from pytest_i2v.session.gate_loop import GateLoop
from pytest_i2v.session.gpus import check_workers, worker_device
from pytest_i2v.session.outputs import Outputs
from pytest_i2v.session.pipeline_cache import PipelineCache
from pytest_i2v.session.plan import RunPlan, plan_run
from pytest_i2v.session.recording import Recorder
from pytest_i2v.session.settings import Settings
from pytest_i2v.session.stash import RECORD_KEY, uses_i2v
from pytest_i2v.storage import Environment, JsonValue, unwritable_reason
from pytest_i2v.verdict.conditions import clock_label
from pytest_i2v.verdict.explain import short_deltas, work_note
from pytest_i2v.verdict.outcome import Outcome


class I2VRun:
    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        plan: RunPlan,
        device: Device,
        environment: Environment,
        baseline_dir: Path,
        locked_clocks: LockedClocks | None = None,
    ):
        self.config = config
        self.locked_clocks = locked_clocks  # what a fresh-process child is told this process holds
        self.settings = settings
        self.plan = plan
        self.device = device
        self.work_dir = Path(tempfile.mkdtemp(prefix="pytest-i2v-"))
        self.pipelines = PipelineCache(
            lambda key, path: config.hook.pytest_i2v_load_pipeline(
                key=key, work_dir=path, allow_pickle=settings.allow_pickle, wrap=self._wrap
            ),
            device,
            plan.source_for,
            plan.dtype,
            self.work_dir,
            plan.pipeline_class_for,
        )
        self.recorder = Recorder(settings, plan, device, environment, self.pipelines)
        self.gate = GateLoop(settings, plan, baseline_dir)
        self.outputs = Outputs(
            settings, plan, environment, self.gate.gate, self.gate.mode, self.gate.baseline_path
        )
        self.outputs.loads = self.pipelines.loads
        # A bad image file is a usage error before any test runs.
        self._image: Any = (
            load_input_image(settings.input_image) if settings.input_image is not None else None
        )

    def remeasure_in_fresh_process(self, nodeid: str, config_id: str | None) -> GenerationRecord:
        """This test again in a new pytest process with this run's options (``fresh_process``); a
        child that measured nothing raises ``FreshProcessFailed`` (the gate then re-measures
        here)."""
        params = self.config.invocation_params
        child = ChildProcess(
            params.args,
            [str(a) for a in self.config.args],
            params.dir,
            str(self.config.rootpath / nodeid),
            self.plan.device,
        )
        # Looked up on the module at each call: benchmarks/main_job_split.py patches it to time it.
        return fresh_process.remeasure(
            child,
            nodeid,
            config_id,
            held_clocks=self.locked_clocks.encoded() if self.locked_clocks else None,
        )

    def _wrap(self, pipe: Any, key: Any) -> Any:
        """The conftest's ``pytest_i2v_wrap_pipeline``, else the pipeline as loaded."""
        wrapped = self.config.hook.pytest_i2v_wrap_pipeline(pipe=pipe, key=key)
        return pipe if wrapped is None else wrapped

    def input_image(self) -> Any:
        if self._image is None:
            self._image = synthetic_portrait()
        return self._image

    # -- hooks ------------------------------------------------------------------------------
    def pytest_report_collectionfinish(self) -> list[str]:
        """Say which profile, device, model and scaling this run uses."""
        return self.plan.describe()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, Any]:
        """Fail the test whose outcome fails (never the summary); queue recorded runs for the
        baseline."""
        report = yield
        if call.excinfo is not None and uses_i2v(item):
            # The report holds the formatted text; the frames would keep the failed test's
            # tensors alive.
            release_traceback(call.excinfo.tb)
        if report.skipped and item.get_closest_marker("i2v") is not None:
            reason = (
                report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            )
            self.outputs.skipped.append(
                {"nodeid": item.nodeid, "reason": reason.removeprefix("Skipped: ")}
            )
        record = item.stash.get(RECORD_KEY, None)
        if record is None or report.when != "call" or record.decision is None:
            return report
        outcome = record.decision
        report.sections.append(("i2v", f"{describe(record)} -> {outcome.kind}: {outcome.reason}"))
        section = self.gate.explain(record)
        if section:
            report.sections.append(("i2v gate", section))
        if report.passed and outcome.fails:
            report.outcome = "failed"
            report.longrepr = failure_text(record, outcome, section)
        if report.passed and outcome.kind == "recorded":
            self.gate.accept(record)
        return report

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the baselines and the results documents (on xdist, workers hand theirs over)."""
        if exitstatus == pytest.ExitCode.USAGE_ERROR:
            return
        config = session.config
        if hasattr(config, "workerinput"):
            worker_output = config.workeroutput  # type: ignore[attr-defined]
            worker_output["i2v_records"] = [r.to_dict() for r in self.outputs.records.values()]
            worker_output["i2v_loads"] = self.pipelines.loads
            worker_output["i2v_accepted"] = [a.nodeid for a in self.gate.accepted]
            worker_output["i2v_skipped"] = self.outputs.skipped
            return
        if self.settings.remeasure_into is not None:
            # A fresh-process re-measurement: its records, nothing else.
            write_json_atomic(
                self.settings.remeasure_into,
                {"records": [r.to_dict() for r in self.outputs.records.values()]},
            )
            return
        self.recorder.probe_end()
        self.outputs.probe = self.recorder.probe
        self.outputs.left_out = self.gate.leave_out(self.outputs.probe_moved())
        # The measurements first: whatever happens to the baselines, the run's results are kept.
        self.outputs.write(config.rootpath)
        # After Ctrl-C too: only passed tests were queued, so the interrupted one is never recorded.
        self.gate.write_baselines(config.rootpath, self.outputs.probe_moved())

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Generator[None, Any, Any]:
        """A short table of the measured generations, the baselines and files written, and the
        verdict: after every other summary (pytest's own, pytest-benchmark's tables), so the verdict
        is the last thing printed before pytest's closing line. Never raises."""
        try:
            return (yield)
        finally:
            self._write_summary(terminalreporter)

    def _write_summary(self, terminalreporter: Any) -> None:
        if not self.outputs.records:
            return
        try:
            terminalreporter.write_sep("-", f"i2v results (profile {self.plan.profile.name})")
            for record in self.outputs.records.values():
                kind = record.decision.kind if record.decision else "-"
                time_delta, memory_delta = short_deltas(record.verdict, record.headline_peak().key)
                work = record.work
                notes = (
                    work_note(
                        work.diff if work else None,
                        work.verdict if work else None,
                        self.gate.gate.min_effect * 100.0,
                    ),
                    record.fidelity.note() if record.fidelity else "",
                )
                terminalreporter.write_line(
                    f"{record.nodeid}: {describe(record)} | time {time_delta}, "
                    f"memory {memory_delta} | {kind}"
                    + "".join(f" | {note}" for note in notes if note)
                )
            for line in self.gate.baseline_lines():
                terminalreporter.write_line(line)
            for path in self.outputs.written:
                terminalreporter.write_line(f"i2v results written to {path}")
            for line in self.outputs.history_lines:
                terminalreporter.write_line(line)
            terminalreporter.write_line(f"i2v: {self.outputs.headline()[1]}")
        except Exception as exc:  # a summary must never turn a run red
            terminalreporter.write_line(f"i2v summary unavailable: {type(exc).__name__}: {exc}")

    def pytest_unconfigure(self) -> None:
        """Remove the temporary model directory."""
        shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- xdist: the controller merges what the workers measured --------------------------------
    def merge_worker(self, output: dict[str, Any]) -> None:
        for data in output.get("i2v_records", []):
            self.outputs.add(GenerationRecord.from_dict(data))
        self.pipelines.loads.extend(output.get("i2v_loads", []))
        self.outputs.skipped.extend(output.get("i2v_skipped", []))
        for nodeid in output.get("i2v_accepted", []):
            self.gate.accept(self.outputs.records[nodeid])


def build_run(config: pytest.Config, settings: Settings) -> I2VRun:
    """Resolve the plan, open the device, read the baseline: the first time torch is imported."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # the plugin never phones home
    runtime: DeviceRuntime = config.hook.pytest_i2v_device_runtime()
    try:
        plan = plan_run(
            settings,
            load_profiles(settings.profile_dir),
            runtime,
            _worker_device(config, settings, runtime),
        )
        device = runtime.open(plan.device)
        locked = _lock_clocks(config, settings, device)
        environment = collect_environment(
            plan.device, plan.gpu, gpu_clocks=locked.label if locked else None
        )
        environment["profile"] = plan.profile.name
        config.hook.pytest_i2v_environment(environment=environment)
        _check_environment(environment)
        inipath = config.inipath
        baseline_dir = (
            settings.baseline_dir or (inipath.parent if inipath else config.rootpath) / "baselines"
        )
        _check_baselines_writable(settings, baseline_dir)
        return I2VRun(config, settings, plan, device, environment, baseline_dir, locked)
    except I2VUsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def _check_baselines_writable(settings: Settings, baseline_dir: Path) -> None:
    """Updating baselines into a directory that cannot be written: found before anything is
    measured, not after the whole run at its end."""
    if not settings.update_baselines or settings.remeasure_into is not None:
        return
    reason = unwritable_reason(baseline_dir)
    if reason is not None:
        raise I2VUsageError(
            f"--i2v-update-baselines: cannot write the baselines directory "
            f"{baseline_dir} ({reason}); make it writable or pass "
            f"--i2v-baseline-dir DIR (nothing was measured)"
        )


def _lock_clocks(config: pytest.Config, settings: Settings, device: Device) -> LockedClocks | None:
    """--i2v-lock-clocks, in the process that measures (an xdist worker, not the controller): lock
    the device's clocks and restore them when pytest unconfigures, which it does after a failure or
    Ctrl-C too. A fresh-process child adopts what its parent holds and never locks or restores."""
    if settings.remeasure_into is not None:
        held = os.environ.get(HELD_CLOCKS_ENV)
        return LockedClocks.decoded(held) if held else None
    if not settings.lock_clocks or _is_xdist_controller(config):
        return None
    clocks = lock_clocks(device)
    if clocks is None:
        return None
    config.add_cleanup(clocks.restore)
    return clocks.locked


def _is_xdist_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


def _worker_device(config: pytest.Config, settings: Settings, runtime: DeviceRuntime) -> str | None:
    """Under pytest-xdist on CUDA: each worker gets its own GPU; too many workers is refused."""
    if settings.device == "cpu":
        return None
    if runtime.cuda_count() == 0:
        return None
    gpus = settings.gpus or tuple(range(runtime.cuda_count()))
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return worker_device(workerinput["workerid"], gpus, settings.allow_shared_gpu)
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 0:
        check_workers(workers, gpus, settings.allow_shared_gpu)
    return None


def _check_environment(environment: Environment) -> None:
    """A key a pytest_i2v_environment hook set to a list or a mapping would be stored in every
    baseline's fingerprint, where only scalars compare."""
    for key, value in environment.items():
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise I2VUsageError(
                f"pytest_i2v_environment: environment[{key!r}] is a {type(value).__name__}; "
                "set a string, a number, a boolean or None (it is a fingerprint key)"
            )


def ran_size(config: Mapping[str, JsonValue]) -> str:
    """What a generation ran, and what its mark asked for where the profile scaled it:
    ``96x48, 21 frames, 8 steps (marked 832x480, 81 frames, 40 steps)``."""

    def size(c: Mapping[str, JsonValue]) -> str:
        frames = f", {c['frames']} frames" if c.get("frames") is not None else ""
        return f"{c.get('width')}x{c.get('height')}{frames}, {c.get('steps')} steps"

    study = config.get("study")
    ran = size(config)
    if not study or not isinstance(study, Mapping):
        return ran
    marked = size(study)  # a record from before the study's frames were kept: no frames
    return ran if marked == ran else f"{ran} (marked {marked})"


def describe(record: GenerationRecord) -> str:
    size = ran_size(record.config)
    if record.outcome != "ok" or record.time_s is None:
        return f"{size} | outcome {record.outcome}"
    peak = record.headline_peak()
    memory = f"{peak.bytes / 2**20:.0f} MiB" if peak.bytes is not None else "-"
    predicted = (
        f" predicted from {record.fast.measured_steps} of {record.fast.steps} steps"
        if record.fast
        else ""
    )
    step_ms = (record.stages.step_s or 0) * 1000
    clock = clock_label(record.conditions.to_dict() if record.conditions else None)
    return (
        f"{size} | median {record.time_s:.3f} s{predicted} over {record.repeats} repeats "
        f"({record.latency_class})"
        f"{f', SM clock {clock}' if clock else ''}, "
        f"{record.gen_fps or 0:.2f} frames/s, step {step_ms:.1f} ms, peak {memory} ({peak.label})"
    )


def failure_text(record: GenerationRecord, outcome: Outcome, section: str) -> str:
    if outcome.kind == "out-of-memory":
        oom = record.oom
        assert oom is not None  # an out-of-memory outcome is decided from the record's error
        where = f"step {oom.step}" if oom.step else oom.stage
        allocated = oom.allocated_bytes
        memory = f", {allocated / 2**30:.2f} GiB allocated" if allocated else ""
        config = record.config
        return (
            f"i2v: out of memory during {where} ({config['width']}x{config['height']}, "
            f"{config['frames']} frames{memory}): {oom.message}. "
            "Memory was freed; the session goes on."
        )
    if outcome.kind == "output-changed":
        return f"i2v: {outcome.reason}" + (f"\n{section}" if section else "")
    if outcome.kind == "over-budget":
        return "\n".join(f"i2v: {line}" for line in outcome.reason.split("; "))
    return section or f"i2v: {outcome.kind}: {outcome.reason}"
