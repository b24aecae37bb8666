"""pytest hooks and fixtures for pytest-i2v. Thin and dormant: importing it registers options, ini
keys and markers; the work starts (``runtime.I2VRun``) only when an i2v test is collected."""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_i2v import hookspecs
from pytest_i2v.errors import I2VUsageError, ModelSourceError, OptionUnavailable
from pytest_i2v.generation.fidelity_mark import i2v_fidelity
from pytest_i2v.generation.marks import (
    CUDA_ONLY_MEMORY_OPTIONS,
    Budget,
    GenerationSpec,
    call_marker,
    i2v,
    mark_spec,
    marker_help,
    time_budget,
    vram_budget,
)
from pytest_i2v.pipelines import DEFAULT_PIPELINE, marker_help_line
from pytest_i2v.session.options import OPTIONS
from pytest_i2v.session.settings import resolve_settings
from pytest_i2v.session.stash import (
    BUDGET_KEY,
    FIDELITY_KEY,
    RECORD_KEY,
    SETTINGS_KEY,
    SPEC_KEY,
    uses_i2v,
)

if TYPE_CHECKING:
    from pytest_i2v.record.parts import SignatureRecord
    from pytest_i2v.record.record import GenerationRecord
    from pytest_i2v.session.benchmark_bridge import BenchmarkRounds
    from pytest_i2v.session.runtime import I2VRun

# The run at work, once an i2v test is collected (defined here, where it is made: the runtime
# never reads it).
RUN_KEY = pytest.StashKey["I2VRun"]()

# Dormant: every pytest run imports this module, i2v tests or not, so the session's machinery
# (torch, diffusers, the runtime, pytest-benchmark's bridge) is imported inside the hook or fixture
# that first needs it; tests/test_dormant.py keeps a run without i2v tests free of them.

MARKER_HELP = (
    marker_help(
        i2v,
        "describe a generation measured by the i2v_run fixture; unset sizes, frames, steps, "
        "guidance and "
        "fps are the pipeline's native ones; " + marker_help_line() + ".",
    ),
    marker_help(
        vram_budget,
        "fail when the peak memory exceeds gb GB; skip when it cannot fit the profile minus the "
        "safety margin.",
    ),
    marker_help(time_budget, "fail when the median generation time exceeds seconds."),
    marker_help(
        i2v_fidelity,
        "judge the output against the sibling test `against` instead of the baseline's, with the "
        "profile's lossy bar when lossy, or with these PSNR/SSIM figures.",
    ),
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register pytest-i2v's own hooks."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the --i2v-* options, each with a matching ini key and the same help text."""
    group = parser.getgroup("i2v", "image-to-video performance (pytest-i2v)")
    for spec in OPTIONS:
        text = spec.help.replace("%", "%%")  # argparse formats help strings with %
        if spec.is_flag:
            group.addoption(spec.flag, action="store_true", default=None, dest=spec.dest, help=text)
            parser.addini(spec.ini, spec.help, type="bool", default=False)
        elif spec.const is not None:
            group.addoption(
                spec.flag,
                action="store",
                nargs="?",
                const=spec.const,
                default=None,
                dest=spec.dest,
                metavar=spec.metavar,
                help=text,
            )
            parser.addini(spec.ini, spec.help, default=None)
        else:
            group.addoption(
                spec.flag,
                action="store",
                default=None,
                dest=spec.dest,
                metavar=spec.metavar,
                help=text,
            )
            parser.addini(spec.ini, spec.help, default=None)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and resolve the settings (pure and cheap: bad values are usage
    errors)."""
    for line in MARKER_HELP:
        config.addinivalue_line("markers", line)
    if getattr(config.option, "help", False) or getattr(config.option, "markers", False):
        return  # --help and --markers must work whatever the machine or the ini says
    inipath = config.inipath
    try:
        settings = resolve_settings(
            lambda dest: config.getoption(dest),
            lambda key: config.getini(key),
            invocation_dir=config.invocation_params.dir,
            ini_dir=inipath.parent if inipath else config.rootpath,
        )
        if settings.gpu_profile != "auto":
            from pytest_i2v.profiles import check_profile_name

            check_profile_name(settings.gpu_profile, settings.profile_dir)
    except I2VUsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(XdistController(config), "i2v-xdist")


@pytest.hookimpl(trylast=True)
def pytest_i2v_load_pipeline(key: Any, work_dir: Path, allow_pickle: bool, wrap: Any) -> Any:
    """Default pipeline factory: the model source named in the key."""
    from pytest_i2v.pipelines.loading import load_pipeline

    return load_pipeline(key, work_dir, allow_pickle=allow_pickle, wrap=wrap)


@pytest.hookimpl(trylast=True)
def pytest_i2v_device_runtime() -> Any:
    """Default device runtime: the real machine, through torch.cuda."""
    from pytest_i2v.measure.device import TorchRuntime

    return TorchRuntime()


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark's, which reads the fixtures a test uses
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Wake up if any test uses i2v, then validate every i2v mark against its pipeline: the bad ones
    of the whole session are one usage error, a line per problem naming the test, the value, the
    rule and the fix."""
    if (
        any(uses_i2v(item) for item in items)
        and SETTINGS_KEY in config.stash
        and RUN_KEY not in config.stash
    ):
        activate(config)
        from pytest_i2v.session.benchmark_bridge import bridge_active, request_benchmark

        if bridge_active(
            config, adaptive_repeats=config.stash[SETTINGS_KEY].target_ci_pct is not None
        ):
            request_benchmark(items, config, config.stash[SETTINGS_KEY].benchmark_tables)
    run = config.stash.get(RUN_KEY, None)
    default_pipeline = run.plan.pipeline if run is not None else DEFAULT_PIPELINE
    problems: list[str] = []
    for item in items:
        problems.extend(f"{item.nodeid}: {line}" for line in _mark_problems(item, default_pipeline))
    if problems:
        raise pytest.UsageError(*problems)  # pytest prints "ERROR: " before each


def _mark_problems(item: pytest.Item, default_pipeline: str) -> list[str]:
    """Check an item's i2v and budget marks and stash what they say; returns the problems found."""
    problems: list[str] = []
    mark = item.get_closest_marker("i2v")  # the closest wins: function over class over module
    if mark is not None:
        try:
            spec = item.stash[SPEC_KEY] = mark_spec(mark.args, mark.kwargs, default_pipeline)
            if spec.attention is not None:
                from pytest_i2v.pipelines.base import check_attention_backend

                check_attention_backend(spec.attention)
        except I2VUsageError as exc:
            problems.extend(exc.problems)
    limits: dict[str, float | None] = {}
    for name, check in (("vram_budget", vram_budget), ("time_budget", time_budget)):
        budget = item.get_closest_marker(name)
        try:
            limits[name] = call_marker(check, budget.args, budget.kwargs) if budget else None
        except I2VUsageError as exc:
            problems.extend(exc.problems)
    if not problems and any(value is not None for value in limits.values()):
        item.stash[BUDGET_KEY] = Budget(vram_gb=limits["vram_budget"], time_s=limits["time_budget"])
    if (fidelity := item.get_closest_marker("i2v_fidelity")) is not None:
        try:
            item.stash[FIDELITY_KEY] = call_marker(i2v_fidelity, fidelity.args, fidelity.kwargs)
        except I2VUsageError as exc:
            problems.extend(exc.problems)
    return problems


def activate(config: pytest.Config) -> I2VRun:
    """Build the run (torch, the device, profiles, the baseline) and register its hooks."""
    from pytest_i2v.session.runtime import build_run

    settings = config.stash[SETTINGS_KEY]
    run = build_run(config, settings)
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(run, "i2v-run")
    return run


def _run(request: pytest.FixtureRequest) -> I2VRun:
    run = request.config.stash.get(RUN_KEY, None)
    if run is None:
        if SETTINGS_KEY not in request.config.stash:
            pytest.skip("pytest-i2v is not configured in this run")
        run = activate(request.config)  # a fixture requested dynamically (getfixturevalue)
    return run


@pytest.fixture(scope="session")
def i2v_profile(request: pytest.FixtureRequest) -> Any:
    """The GpuProfile this session measures against."""
    return _run(request).plan.profile


@pytest.fixture
def i2v_spec(request: pytest.FixtureRequest) -> GenerationSpec:
    """This test's generation as it will run (its i2v mark, scaled by the profile)."""
    run = _run(request)
    return (request.node.stash.get(SPEC_KEY, None) or i2v(pipeline=run.plan.pipeline)).scaled(
        run.plan.profile.scaling
    )


@pytest.fixture
def i2v_input_image(request: pytest.FixtureRequest) -> Any:
    """The conditioning image (deterministic synthetic portrait, or i2v_input_image from the
    ini)."""
    return _run(request).input_image()


@pytest.fixture
def _i2v_loaded(
    request: pytest.FixtureRequest, i2v_spec: GenerationSpec
) -> Generator[Any, None, None]:
    run = _run(request)
    needs_cuda = sorted(set(i2v_spec.memory) & CUDA_ONLY_MEMORY_OPTIONS)
    if needs_cuda and not run.device.is_cuda:
        pytest.skip(
            f"memory option {', '.join(needs_cuda)} needs a CUDA device (this run is on "
            f"{run.plan.device})"
        )
    if i2v_spec.dtype == "fp16" and run.plan.device == "cpu":
        pytest.skip(
            "fp16 on the CPU: many fp16 kernels are missing or very slow there, so its time would "
            "say nothing"
        )
    unsupported = run.pipelines.unsupported(i2v_spec)
    if unsupported:
        pytest.skip(unsupported)
    unfit = run.gate.unfit_budget(request.node.stash.get(BUDGET_KEY, None))
    if unfit:
        pytest.skip(unfit)
    failure: str | None = None
    unavailable: str | None = None
    try:
        loaded = run.pipelines.prepare(i2v_spec)
    except ModelSourceError as exc:
        failure = str(exc)  # failed outside the except: a chained copy would print the line twice
    except OptionUnavailable as exc:
        unavailable = str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    if unavailable is not None:
        pytest.skip(unavailable)
    yield loaded
    run.pipelines.release(loaded)


@pytest.fixture
def i2v_pipeline(_i2v_loaded: Any) -> Any:
    """The loaded diffusers pipeline for this test's config (loaded once per session per pipeline,
    source, dtype, placement and load-time options)."""
    return _i2v_loaded.pipe


@pytest.fixture
def i2v_run(
    request: pytest.FixtureRequest, _i2v_loaded: Any, i2v_spec: GenerationSpec, i2v_input_image: Any
) -> Callable[..., GenerationRecord]:
    """Call it to warm up, then measure the repeats; returns the GenerationRecord. With
    pytest-benchmark active, the measured generations are its ``benchmark`` fixture's rounds
    (``benchmark_bridge``)."""
    from pytest_i2v.session.benchmark_info import benchmark_group
    from pytest_i2v.session.progress import ProgressLine
    from pytest_i2v.session.recording import MeasureRequest

    run = _run(request)
    node = request.node
    bench = _benchmark_rounds(request)

    def measure_run(
        repeats: int | None = None,
        warmup: int | None = None,
        *,
        spec: GenerationSpec | None = None,
        image: Any = None,
    ) -> GenerationRecord:
        """``spec``: a generation decided at run time (e.g. from the input image), instead of the
        mark's; it must share the mark's dtype and offload mode (the loaded pipeline)."""
        run_spec, study = i2v_spec, node.stash.get(SPEC_KEY, None)
        if spec is not None:
            run_spec, study = _run_time_spec(run, spec, _i2v_loaded.key), spec
        progress = ProgressLine(request.config, node.nodeid)
        # The first measurement's work signature, reused when the gate re-measures.
        profiled: list[SignatureRecord] = []

        def once() -> GenerationRecord:
            try:
                record = run.recorder.measure(
                    MeasureRequest(
                        node.nodeid,
                        run_spec,
                        _i2v_loaded,
                        i2v_input_image if image is None else image,
                        progress=progress if progress.enabled else None,
                        repeats=repeats,
                        warmup=warmup,
                        study_spec=study,
                        budget=node.stash.get(BUDGET_KEY, None),
                        fidelity=node.stash.get(FIDELITY_KEY, None),
                        drive=bench.driver(benchmark_group(run_spec.to_dict())) if bench else None,
                        signature=profiled[0] if profiled else None,
                    )
                )
            finally:
                progress.clear()
            if record.signature and not profiled:
                profiled.append(record.signature)
            return record

        record = run.gate.run(once, run.outputs.records, fresh=run.remeasure_in_fresh_process)
        if bench is not None:
            bench.describe(record)
        _publish(run, node, record)
        return record

    return measure_run


def _benchmark_rounds(request: pytest.FixtureRequest) -> BenchmarkRounds | None:
    """pytest-benchmark's fixture as the measured rounds, when the test asks for it."""
    from pytest_i2v.session.benchmark_bridge import FIXTURE, BenchmarkRounds

    if FIXTURE not in request.node.fixturenames:
        return None
    return BenchmarkRounds(request.getfixturevalue(FIXTURE))


def _run_time_spec(run: I2VRun, spec: GenerationSpec, loaded_key: Any) -> GenerationSpec:
    """A spec passed to ``i2v_run`` at run time, scaled to the profile; it must fit the pipeline
    already loaded for the test's mark."""
    run_spec = spec.scaled(run.plan.profile.scaling)
    if run.pipelines.key_for(run_spec) != loaded_key:
        raise ValueError(
            "i2v_run(spec=...) needs the same dtype and offload mode as the test's i2v mark"
        )
    return run_spec


def _publish(run: I2VRun, node: pytest.Item, record: GenerationRecord) -> None:
    """The record goes to the run's outputs, the node's stash and its JUnit properties."""
    run.outputs.add(record)
    node.stash[RECORD_KEY] = record
    for name, value in record.user_properties():
        node.user_properties.append((name, value))


class XdistController:
    """Registered on the xdist controller: merges the workers' records, building the run when the
    first worker that measured something finishes (the controller collects no tests)."""

    def __init__(self, config: pytest.Config):
        self._config = config

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Collect a finished worker's records."""
        output = getattr(node, "workeroutput", {}) or {}
        if not output.get("i2v_records") and not output.get("i2v_skipped"):
            return
        run = self._config.stash.get(RUN_KEY, None) or activate(self._config)
        run.merge_worker(output)
