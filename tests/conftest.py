from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# Two workers on two cores: one torch thread each. torch's OpenMP threads spin while they wait, and
# four of them on two cores ran one test three times slower (178 s against 59 s alone). Set before
# any test module imports torch; the processes the tests start inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# The tests never reach a model hub: everything they load is built here.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


# Two workers (pytest-xdist) on a machine with two cores or more, unless the command line says
# otherwise: `-n 0` runs every test in this process. No test bets on the real clock beside a
# neighbour: a verdict runs on the virtual clock, and a real-time assertion has a margin a loaded
# core cannot close.
WORKERS = 2


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Distribute over ``WORKERS`` processes by default (before pytest-xdist reads its options)."""
    option = config.option
    if (
        getattr(option, "numprocesses", 0) is not None
        or hasattr(config, "workerinput")
        or option.usepdb
    ):
        return  # no pytest-xdist, an explicit -n, a worker, or --pdb
    if (os.cpu_count() or 1) >= WORKERS and not option.collectonly:
        option.numprocesses = WORKERS
        if option.dist == "no":
            # the long end-to-end tests vary 1-70 s: idle workers take from busy ones
            option.dist = "worksteal"


class NetworkAccessError(RuntimeError):
    """A test tried to reach beyond this machine."""


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) and address else ""
    return str(host) in ("localhost", "::1", "0.0.0.0") or str(host).startswith("127.")


@pytest.fixture(autouse=True, scope="session")
def no_network() -> object:
    """No test reaches the network (the plugin must work offline): non-loopback connects raise."""
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> object:
        if not _is_local(address):
            raise NetworkAccessError(f"test tried to connect to {address!r}")
        return original_connect(self, address)  # type: ignore[arg-type]

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if not _is_local(address):
            raise NetworkAccessError(f"test tried to connect to {address!r}")
        return original_connect_ex(self, address)  # type: ignore[arg-type]

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect, socket.socket.connect_ex = original_connect, original_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny I2VGen-XL saved with save_pretrained, built once for the test session."""
    from pytest_i2v.pipelines.i2vgen_xl_tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_pipe(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline

    return load_pipeline(
        PipelineKey(source=str(tiny_model_dir), dtype="fp32", device="cpu"), tiny_model_dir.parent
    ).pipe


@pytest.fixture(scope="session")
def warm_imports(tiny_pipe) -> None:  # type: ignore[no-untyped-def]
    """Run one generation in this process first: pytester's in-process runs drop the modules a run
    imported, and torch refuses to import some of its operator libraries twice."""
    from pytest_i2v.generation.inputs import synthetic_portrait
    from pytest_i2v.generation.marks import i2v
    from pytest_i2v.measure.runner import GenerationRunner

    GenerationRunner(tiny_pipe, "cpu").measure(
        i2v(width=32, height=32, frames=2, steps=2), synthetic_portrait(64, 64), 0, 1
    )
    # matplotlib cannot be imported twice in one process either (the report's charts)
    import pytest_i2v.report.chart_style
    import pytest_i2v.report.html  # noqa: F401


@pytest.fixture(autouse=True)
def not_an_xdist_worker_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pytest run that a test starts (pytester, a subprocess) is a session of its own, not a
    pytest-xdist worker: pytest-benchmark (and anything else that reads the environment) must not
    see the worker's variables."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def i2v_project(pytester: pytest.Pytester, warm_imports: None) -> pytest.Pytester:
    """A pytester project whose runs are quick: one repeat, no warm-up, the cpu profile."""
    pytester.makeini(
        """
        [pytest]
        i2v_repeats = 1
        i2v_warmup = 0
        # The second pytest-xdist worker's load on a 2-core machine moves the speed probe during
        # a run, which leaves a baseline run out as doubtful; tests that record a baseline to
        # gate on next record it. tests/test_failure_paths.py turns this off to test the rule.
        i2v_force_baselines = true
        filterwarnings = ignore::FutureWarning
        """
    )
    return pytester


# The pytest arguments and environment of a run timed on the virtual clock (``measure.simulated``):
# a CPU machine with no GPU whose generations take deterministic times, so a verdict test decides
# exactly what it injects (``pytest_i2v.simulated_plugin.add_work``) and never the machine's noise.
VIRTUAL_TIME_ARGS = ("-p", "pytest_i2v.simulated_plugin")


@pytest.fixture
def virtual_time(monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """Runs started from this test time on the virtual clock; returns the arguments that say so."""
    monkeypatch.setenv("PYTEST_I2V_SIMULATED_GPUS", "[]")
    monkeypatch.setenv("PYTEST_I2V_VIRTUAL_TIME", "1")
    return VIRTUAL_TIME_ARGS
