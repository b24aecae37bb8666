"""pytest hooks and fixtures for pytest-i2v. Thin: the work happens in the pure modules."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Generator

import pytest

from pytest_i2v import hookspecs
from pytest_i2v.errors import I2VUsageError, ModelSourceError
from pytest_i2v.marks import (CUDA_ONLY_MEMORY_OPTIONS, Budget, GenerationSpec, call_marker, i2v, marker_help,
                              time_budget, vram_budget)
from pytest_i2v.results import GenerationRecord
from pytest_i2v.settings import OPTIONS, resolve_settings

SESSION_KEY = pytest.StashKey["I2VSession"]()
SPEC_KEY = pytest.StashKey[GenerationSpec]()
RECORD_KEY = pytest.StashKey[GenerationRecord]()
BUDGET_KEY = pytest.StashKey[Budget]()
MARKER_HELP = (
    marker_help(i2v, "describe an I2VGen-XL generation measured by the i2v_run fixture."),
    marker_help(vram_budget, "fail when the peak memory exceeds gb GB; skip when it cannot fit the profile minus the safety margin."),
    marker_help(time_budget, "fail when the median generation time exceeds seconds."),
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register pytest-i2v's own hooks."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the --i2v-* options, each with a matching ini key and the same help text."""
    group = parser.getgroup("i2v", "image-to-video performance (pytest-i2v)")
    for spec in OPTIONS:
        if spec.is_flag:
            group.addoption(spec.flag, action="store_true", default=None, dest=spec.dest, help=_argparse_help(spec.help))
            parser.addini(spec.ini, spec.help, type="bool", default=False)
        elif spec.const is not None:
            group.addoption(spec.flag, action="store", nargs="?", const=spec.const, default=None, dest=spec.dest,
                            metavar=spec.metavar, help=_argparse_help(spec.help))
            parser.addini(spec.ini, spec.help, default=None)
        else:
            group.addoption(spec.flag, action="store", default=None, dest=spec.dest, metavar=spec.metavar,
                            help=_argparse_help(spec.help))
            parser.addini(spec.ini, spec.help, default=None)


def _argparse_help(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help strings with %


def _usage_error(exc: I2VUsageError) -> pytest.UsageError:
    return pytest.UsageError(str(exc))


def pytest_configure(config: pytest.Config) -> None:
    """Resolve settings and the GPU profile once; keep the session object in config.stash."""
    for line in MARKER_HELP:
        config.addinivalue_line("markers", line)
    if getattr(config.option, "help", False) or getattr(config.option, "markers", False):
        return  # --help and --markers must work whatever the machine or the ini says
    import os

    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # the plugin never phones home
    from pytest_i2v.fingerprint import collect_environment
    from pytest_i2v.profiles import load_profiles
    from pytest_i2v.session import I2VSession, plan_run

    inipath = config.inipath
    try:
        settings = resolve_settings(
            lambda dest: config.getoption(dest),
            lambda key: config.getini(key),
            invocation_dir=config.invocation_params.dir,
            ini_dir=inipath.parent if inipath else config.rootpath,
        )
        profiles = load_profiles(settings.profile_dir)
        runtime = config.hook.pytest_i2v_device_runtime()
        plan = plan_run(settings, profiles, runtime, _worker_device(config, settings, runtime))
        device = runtime.open(plan.device)
        environment = collect_environment(plan.device, plan.gpu)
        environment["profile"] = plan.profile.name
        config.hook.pytest_i2v_environment(environment=environment)
        baseline_dir = settings.baseline_dir or (inipath.parent if inipath else config.rootpath) / "baselines"
        session = I2VSession(settings, plan, environment, Path(tempfile.mkdtemp(prefix="pytest-i2v-")),
                             loader=lambda key, path: config.hook.pytest_i2v_load_pipeline(
                                 key=key, work_dir=path, allow_pickle=settings.allow_pickle),
                             baseline_dir=baseline_dir, device=device)
    except I2VUsageError as exc:
        raise _usage_error(exc) from None
    config.stash[SESSION_KEY] = session
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(session), "i2v-xdist")


def _worker_device(config: pytest.Config, settings: Any, runtime: Any) -> str | None:
    """Under pytest-xdist on CUDA: each worker gets its own GPU; too many workers is refused."""
    from pytest_i2v.gpus import check_workers, worker_device

    if settings.device == "cpu" or runtime.cuda_count() == 0:
        return None  # (a cpu profile on a GPU machine ignores the worker's GPU in plan_run)
    gpus = settings.gpus or tuple(range(runtime.cuda_count()))
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return worker_device(workerinput["workerid"], gpus, settings.allow_shared_gpu)
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 0:
        check_workers(workers, gpus, settings.allow_shared_gpu)
    return None


@pytest.hookimpl(trylast=True)
def pytest_i2v_device_runtime() -> Any:
    """Default device runtime: the real machine, through torch.cuda."""
    from pytest_i2v.measure.device import TorchRuntime

    return TorchRuntime()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's temporary model directory."""
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        import shutil

        shutil.rmtree(session.work_dir, ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_i2v_load_pipeline(key: Any, work_dir: Path, allow_pickle: bool) -> Any:
    """Default pipeline factory: the model source named in the key."""
    from pytest_i2v.models.sources import load_pipeline

    return load_pipeline(key, work_dir, allow_pickle=allow_pickle)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which profile, device, model and scaling this run uses."""
    session = config.stash.get(SESSION_KEY, None)
    return session.plan.describe() if session else []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Validate every i2v mark at collection: a bad one is a usage error naming the test."""
    for item in items:
        try:
            # The closest mark wins (function over class over module).
            mark = item.get_closest_marker("i2v")
            if mark is not None:
                item.stash[SPEC_KEY] = call_marker(i2v, mark.args, mark.kwargs)
            vram, seconds = item.get_closest_marker("vram_budget"), item.get_closest_marker("time_budget")
            if vram is not None or seconds is not None:
                item.stash[BUDGET_KEY] = Budget(
                    vram_gb=call_marker(vram_budget, vram.args, vram.kwargs) if vram else None,
                    time_s=call_marker(time_budget, seconds.args, seconds.kwargs) if seconds else None,
                )
        except I2VUsageError as exc:
            raise pytest.UsageError(f"{item.nodeid}: {exc}") from None


def _session(request: pytest.FixtureRequest) -> Any:
    session = request.config.stash.get(SESSION_KEY, None)
    if session is None:
        pytest.skip("pytest-i2v is not configured in this run")
    return session


@pytest.fixture(scope="session")
def i2v_profile(request: pytest.FixtureRequest) -> Any:
    """The GpuProfile this session measures against."""
    return _session(request).plan.profile


@pytest.fixture
def i2v_spec(request: pytest.FixtureRequest) -> GenerationSpec:
    """This test's generation as it will run (its i2v mark, scaled by the profile)."""
    session = _session(request)
    return session.resolve_spec(request.node.stash.get(SPEC_KEY, None) or i2v())


@pytest.fixture
def i2v_input_image(request: pytest.FixtureRequest) -> Any:
    """The conditioning image (deterministic synthetic portrait, or i2v_input_image from the ini)."""
    return _session(request).input_image()


@pytest.fixture
def _i2v_loaded(request: pytest.FixtureRequest, i2v_spec: GenerationSpec) -> Generator[Any, None, None]:
    session = _session(request)
    needs_cuda = sorted(set(i2v_spec.memory) & CUDA_ONLY_MEMORY_OPTIONS)
    if needs_cuda and not session.plan.device.startswith("cuda"):
        pytest.skip(f"memory option {', '.join(needs_cuda)} needs a CUDA device (this run is on {session.plan.device})")
    if i2v_spec.dtype == "fp16" and session.plan.device == "cpu":
        pytest.skip("fp16 on the CPU: many fp16 kernels are missing or very slow there, so its time would say nothing")
    unfit = session.unfit_budget(request.node.stash.get(BUDGET_KEY, None))
    if unfit:
        pytest.skip(unfit)
    try:
        loaded = session.prepare(i2v_spec)
    except ModelSourceError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield loaded
    session.release(loaded)


@pytest.fixture
def i2v_pipeline(_i2v_loaded: Any) -> Any:
    """The loaded diffusers I2VGenXLPipeline for this test's config (loaded once per session)."""
    return _i2v_loaded.pipe


@pytest.fixture
def i2v_run(request: pytest.FixtureRequest, _i2v_loaded: Any, i2v_spec: GenerationSpec,
            i2v_input_image: Any) -> Callable[..., GenerationRecord]:
    """Call it to warm up, then measure the repeats; returns the GenerationRecord."""
    session = _session(request)
    progress = ProgressLine(request.config, request.node.nodeid)
    study_spec = request.node.stash.get(SPEC_KEY, None)

    def measure(spec: GenerationSpec, study: GenerationSpec | None, image: Any,
                repeats: int | None, warmup: int | None) -> GenerationRecord:
        try:
            return session.measure(request.node.nodeid, spec, _i2v_loaded, image,
                                   progress=progress if progress.enabled else None,
                                   repeats=repeats, warmup=warmup, study_spec=study,
                                   budget=request.node.stash.get(BUDGET_KEY, None))
        finally:
            progress.clear()

    def run(repeats: int | None = None, warmup: int | None = None, *, spec: GenerationSpec | None = None,
            image: Any = None) -> GenerationRecord:
        """``spec``: a generation decided at run time (e.g. from the input image), instead of the mark's;
        it must share the mark's dtype and offload mode (the loaded pipeline)."""
        run_spec, study = i2v_spec, study_spec
        if spec is not None:
            run_spec, study = session.resolve_spec(spec), spec
            if session.key_for(run_spec) != _i2v_loaded.key:
                raise ValueError("i2v_run(spec=...) needs the same dtype and offload mode as the test's i2v mark")
        image = i2v_input_image if image is None else image
        record = measure(run_spec, study, image, repeats, warmup)
        # A flagged test is measured again before it fails: a one-off stall should not block a PR.
        for attempt in range(session.gate.confirm):
            if not session.gate_fails(record):
                break
            first = record
            record = measure(run_spec, study, image, repeats, warmup)
            confirmed = "confirmed" if session.gate_fails(record) else "not confirmed"
            record = session.note(record, f"re-measured ({attempt + 1}/{session.gate.confirm}) after a "
                                          f"{first.verdict['verdict']} verdict with median {first.time_s:.4g} s: {confirmed}")
        request.node.stash[RECORD_KEY] = record
        record_in_pytest_benchmark(request, record, session)
        for name, value in record.user_properties():
            request.node.user_properties.append((name, value))
        return record

    return run


def record_in_pytest_benchmark(request: pytest.FixtureRequest, record: GenerationRecord, session: Any) -> None:
    """When pytest-benchmark is active, hand it the same numbers, so --benchmark-json,
    --benchmark-autosave, pytest-benchmark compare and the services that read its JSON see them."""
    benchmark_session = getattr(request.config, "_benchmarksession", None)  # where pytest-benchmark keeps it
    if benchmark_session is None or benchmark_session.disabled or benchmark_session.skip or not record.time_samples_s:
        return
    fixture = request.getfixturevalue("benchmark")
    if fixture._mode:  # the test itself used the benchmark fixture: leave it alone
        return
    fixture._mode = "pytest-i2v"  # marks the fixture as used
    stats = fixture._make_stats(1)
    for seconds in record.time_samples_s:  # the synchronised repeat times are the samples
        stats.update(seconds)
    verdict = (record.verdict or {}).get("verdict")
    fixture.extra_info.update({
        "i2v_profile": session.plan.profile.name, "i2v_config": record.config, "i2v_outcome": record.outcome,
        "i2v_verdict": verdict, "i2v_gen_fps": record.gen_fps, "i2v_step_s": record.stages.get("step_s"),
        "i2v_encode_s": record.stages.get("encode_s"), "i2v_decode_s": record.stages.get("decode_s"),
        "i2v_peak_memory": record.peak_memory, "i2v_latency_class": record.latency_class,
    })


class ProgressLine:
    """One rewritten terminal line (repeat r/R, step i/N, elapsed) while a generation runs."""

    MIN_INTERVAL_S = 0.5

    def __init__(self, config: pytest.Config, nodeid: str):
        self._reporter = config.pluginmanager.get_plugin("terminalreporter")
        self._capture = config.pluginmanager.get_plugin("capturemanager")
        self._nodeid = nodeid
        self._started = time.perf_counter()
        self._last = 0.0
        self._shown = False
        self.enabled = bool(self._reporter and self._reporter.isatty and config.get_verbosity() >= 0
                            and not hasattr(config, "workerinput"))

    def __call__(self, phase: str, repeat: int, repeats: int, step: int, steps: int) -> None:
        now = time.perf_counter()
        if now - self._last < self.MIN_INTERVAL_S and step != steps:
            return
        self._last = now
        line = f"i2v {self._nodeid}: {phase} {repeat}/{repeats}, step {step}/{steps}, {now - self._started:.0f}s"
        with self._capture.global_and_fixture_disabled():
            self._reporter.rewrite(line, erase=True)
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            with self._capture.global_and_fixture_disabled():
                self._reporter.rewrite("", erase=True)
            self._shown = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Fail the test that regressed or hit OOM (never the summary); queue passing runs for the baseline."""
    report = yield
    if call.excinfo is not None and SPEC_KEY in item.stash:
        # The report holds the formatted text; the frames would keep the failed test's tensors alive.
        from pytest_i2v.measure.memory import release_traceback

        release_traceback(call.excinfo.tb)
    record = item.stash.get(RECORD_KEY, None)
    if report.skipped and SPEC_KEY in item.stash and item.config.stash.get(SESSION_KEY, None) is not None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        item.config.stash[SESSION_KEY].skipped.append({"nodeid": item.nodeid, "reason": reason.removeprefix("Skipped: ")})
    if record is None or report.when != "call":
        return report
    session = item.config.stash[SESSION_KEY]
    report.sections.append(("i2v", _describe_record(record)))
    section = session.explain(record)
    if section:
        report.sections.append(("i2v gate", section))
    over_budget = session.budget_failures(record)
    if record.outcome == "ok" and report.passed and over_budget:
        report.outcome = "failed"
        report.longrepr = "\n".join(f"i2v: {line}" for line in over_budget)
    elif record.outcome == "ok" and report.passed and session.gate_fails(record):
        report.outcome = "failed"
        report.longrepr = section
    elif record.outcome == "ok" and report.passed and session.settings.update_baselines:
        session.accept(record)
    if record.outcome == "oom" and report.passed:
        oom = record.oom or {}
        where = f"step {oom.get('step')}" if oom.get("step") else oom.get("stage")
        allocated = oom.get("allocated_bytes")
        memory = f", {allocated / 2**30:.2f} GiB allocated" if allocated else ""
        report.outcome = "failed"
        report.longrepr = (
            f"i2v: out of memory during {where} ({record.config['width']}x{record.config['height']}, "
            f"{record.config['frames']} frames{memory}): {oom.get('message')}. Memory was freed; the session goes on."
        )
    return report


def _describe_record(record: GenerationRecord) -> str:
    if record.outcome != "ok":
        return f"outcome {record.outcome}"
    peak = record.peak_memory
    memory = peak.get("allocated_bytes") or peak.get("host_rss_bytes")
    kind = "allocated" if peak.get("allocated_bytes") else "host RSS"
    predicted = ""
    if record.fast:
        predicted = f" predicted from {record.fast['measured_steps']} of {record.fast['steps']} steps"
    return (f"median {record.time_s:.3f} s{predicted} over {record.repeats} repeats ({record.latency_class}), "
            f"{record.gen_fps:.2f} frames/s, step {record.stages['step_s'] * 1000:.1f} ms, peak {kind} {memory / 2**20:.0f} MiB")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the results document (on xdist, workers hand theirs to the controller)."""
    config = session.config
    i2v_session = config.stash.get(SESSION_KEY, None)
    if i2v_session is None or exitstatus == pytest.ExitCode.USAGE_ERROR:
        return
    if hasattr(config, "workerinput"):
        config.workeroutput["i2v_records"] = [r.to_dict() for r in i2v_session.records.values()]
        config.workeroutput["i2v_loads"] = i2v_session.loads
        config.workeroutput["i2v_accepted"] = [r.nodeid for r in i2v_session.accepted]
        config.workeroutput["i2v_skipped"] = i2v_session.skipped
        return
    # Once, on the controller, under a file lock. After Ctrl-C too: only tests that passed were
    # queued, so the interrupted one is never recorded.
    i2v_session.write_baselines(config.rootpath)
    if i2v_session.records or i2v_session.skipped:
        i2v_session.write_outputs()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """A short table of the measured generations and the files written. Never raises."""
    i2v_session = config.stash.get(SESSION_KEY, None)
    if i2v_session is None or not i2v_session.records:
        return
    try:
        from pytest_i2v.explain import short_verdict

        terminalreporter.write_sep("-", f"i2v results (profile {i2v_session.plan.profile.name})")
        for record in i2v_session.records.values():
            verdict, time_delta, memory_delta = short_verdict(record.to_dict())
            terminalreporter.write_line(
                f"{record.nodeid}: {_describe_record(record)} | time {time_delta}, memory {memory_delta} | {verdict}")
        for summary in i2v_session.baseline_updates:
            terminalreporter.write_line(f"i2v baselines written: {summary.describe()}")
        for path in i2v_session.written:
            terminalreporter.write_line(f"i2v results written to {path}")
    except Exception as exc:  # a summary must never turn a run red
        terminalreporter.write_line(f"i2v summary unavailable: {type(exc).__name__}: {exc}")


class XdistHooks:
    """Registered only when pytest-xdist is installed: merge the workers' records on the controller."""

    def __init__(self, session: Any):
        self._session = session

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Collect a finished worker's records."""
        output = getattr(node, "workeroutput", {}) or {}
        for data in output.get("i2v_records", []):
            record = GenerationRecord.from_dict(data)
            self._session.records[record.nodeid] = record
        self._session.loads.extend(output.get("i2v_loads", []))
        self._session.skipped.extend(output.get("i2v_skipped", []))
        for nodeid in output.get("i2v_accepted", []):
            self._session.accept(self._session.records[nodeid])
