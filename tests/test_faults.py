"""The fault matrix: OOM at each stage, a killed writer (see test_baseline_store), Ctrl-C,
concurrent writers (see test_baseline_store), NVML missing or failing, a failing step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_i2v.measure.device import CpuDevice
from pytest_i2v.measure.memory import NvmlSampler
from pytest_i2v.measure.nvml import NvmlHandle, NvmlReading, NvmlWarning

ROOT = Path(__file__).resolve().parents[1]

OOM_CONFTEST = """
import os
import pytest
import torch

TARGETS = {
    "encode": lambda p: p.text_encoder,
    "denoise": lambda p: p.unet.conv_in,
    "decode": lambda p: p.vae.decoder.conv_in,
}


@pytest.fixture
def oom_in(i2v_pipeline, request):
    stage = request.param
    # the CPU profile counts no FLOPs (roofline: false), so the first call is already the
    # measured generation's
    def explode(*_):
        block = torch.ones(50_000_000)  # 200 MB held at the moment of the error, like a real OOM
        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory during {stage} (injected)")
    handle = TARGETS[stage](i2v_pipeline).register_forward_pre_hook(explode)
    yield stage
    handle.remove()
"""

OOM_TESTS = """
import pytest

@pytest.mark.i2v(resolution="512p", frames=4, steps=10)
@pytest.mark.parametrize("oom_in", ["encode", "denoise", "decode"], indirect=True)
def test_oom(oom_in, i2v_run):
    i2v_run()

@pytest.mark.i2v(resolution="512p", frames=4, steps=10, seed=9)
def test_zz_next(i2v_run):
    assert i2v_run().outcome == "ok"
"""


def test_oom_at_each_stage_then_the_next_test_passes_with_memory_back(
    i2v_project: pytest.Pytester,
) -> None:
    i2v_project.makeconftest(OOM_CONFTEST)
    i2v_project.makepyfile(test_oom=OOM_TESTS)
    result = i2v_project.runpytest("--i2v-json", "r.json", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=3)
    records = {
        r["nodeid"].split("::")[1]: r
        for r in json.loads((i2v_project.path / "r.json").read_text())["records"]
    }
    for stage in ("encode", "denoise", "decode"):
        oom = records[f"test_oom[{stage}]"]["oom"]
        assert records[f"test_oom[{stage}]"]["outcome"] == "oom" and oom["stage"] == stage
        # host memory after freeing is back near its level before the measurement (the 200 MB block
        # is gone)
        assert oom["after_free_bytes"] - oom["before_bytes"] < 64 * 2**20, oom
    assert records["test_zz_next"]["outcome"] == "ok"
    result.stdout.fnmatch_lines(
        [
            "*out of memory during encode*",
            "*out of memory during step *",
            "*out of memory during decode*",
        ]
    )


def test_a_failing_step_fails_that_test_with_the_original_exception(
    i2v_project: pytest.Pytester,
) -> None:
    i2v_project.makepyfile(
        """
        import pytest

        class StepBroke(Exception):
            pass

        @pytest.fixture
        def broken_step(i2v_pipeline):
            def explode(*_):
                raise StepBroke("the scheduler returned NaN")
            handle = i2v_pipeline.unet.register_forward_hook(explode)
            yield
            handle.remove()

        @pytest.mark.i2v(resolution="256p", frames=2, steps=10)
        def test_broken(broken_step, i2v_run):
            i2v_run()

        @pytest.mark.i2v(resolution="256p", frames=2, steps=10, seed=3)
        def test_next(i2v_run):
            assert i2v_run().outcome == "ok"
        """
    )
    result = i2v_project.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*StepBroke: the scheduler returned NaN*"])


class FakeNvml:
    """A pynvml stand-in that works for ``fail_after`` samples, then fails (a driver reset
    mid-run)."""

    class NVMLError(Exception):
        pass

    def __init__(self, fail_after: int | None = None, missing: bool = False):
        self.fail_after, self.missing, self.samples = fail_after, missing, 0

    def nvmlInit(self) -> None:
        if self.missing:
            raise self.NVMLError("NVML Shared Library Not Found")

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return "gpu0"

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        return "gpu0"

    def nvmlDeviceGetComputeRunningProcesses(self, handle: str) -> list:
        raise self.NVMLError("not supported in this container")

    def nvmlDeviceGetMemoryInfo(self, handle: str):  # type: ignore[no-untyped-def]
        self.samples += 1
        if self.fail_after is not None and self.samples > self.fail_after:
            raise self.NVMLError("GPU is lost")
        return type("Info", (), {"used": 1000 * self.samples})()


class NvmlOnlyDevice(CpuDevice):
    """A device whose only CUDA part is NVML, through a given pynvml stand-in."""

    is_cuda = True

    def __init__(self, nvml: FakeNvml):
        self.handle = NvmlHandle(nvml, "GPU-0123", 0)  # found by its UUID: no index fallback note

    def nvml_memory(self) -> NvmlReading:
        return self.handle.read()


def test_nvml_failing_mid_run_keeps_what_was_sampled() -> None:
    import time

    device = NvmlOnlyDevice(FakeNvml(fail_after=3))
    assert device.handle.available
    sampler = NvmlSampler(device)
    sampler.start()
    deadline = time.monotonic() + 30.0  # a loaded machine samples less often than every 10 ms
    while device.handle.note is None and time.monotonic() < deadline:
        time.sleep(0.01)
    peak, scope = sampler.stop()
    assert (
        peak == 3000 and scope == "device"
    )  # the samples before the failure; no per-process figures here
    assert device.handle.note == "NVML failed mid-run (NVMLError): later samples are missing"
    sampler.start()  # later repeats go on without NVML
    assert sampler.stop() == (None, "unavailable")


def test_nvml_missing_is_a_warning_not_an_error() -> None:
    with pytest.warns(
        NvmlWarning, match=r"NVML unavailable \(NVMLError\): device memory not measured"
    ):
        device = NvmlOnlyDevice(FakeNvml(missing=True))
    assert not device.handle.available
    sampler = NvmlSampler(device)
    sampler.start()
    assert sampler.stop() == (None, "unavailable")


INTERRUPT_TESTS = """
import os
import signal

import pytest

# A process started in the background by a non-interactive shell inherits SIGINT ignored, and Python
# then never raises KeyboardInterrupt: give this one Python's own handler, as a terminal would.
signal.signal(signal.SIGINT, signal.default_int_handler)

@pytest.mark.i2v(resolution="256p", frames=2, steps=10)
def test_1_done(i2v_run):
    assert i2v_run().outcome == "ok"

@pytest.mark.i2v(resolution="256p", frames=2, steps=10, seed=2)
def test_2_interrupted(i2v_pipeline, i2v_run):
    calls = {"n": 0}
    def ctrl_c(*_):
        calls["n"] += 1
        if calls["n"] == 4:  # mid-generation, inside a measured repeat
            os.kill(os.getpid(), signal.SIGINT)
    i2v_pipeline.unet.register_forward_pre_hook(ctrl_c)
    i2v_run()

@pytest.mark.i2v(resolution="256p", frames=2, steps=10, seed=3)
def test_3_never_runs(i2v_run):
    i2v_run()
"""


def test_ctrl_c_keeps_results_so_far_and_records_no_interrupted_baseline(tmp_path: Path) -> None:
    (tmp_path / "test_interrupt.py").write_text(INTERRUPT_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\ni2v_repeats = 2\ni2v_warmup = 0\n")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "test_interrupt.py",
            "-p",
            "no:cacheprovider",
            "--i2v-baseline-dir",
            "bl",
            "--i2v-update-baselines",
            # the point is which runs an interrupted session records; a loaded machine's probe
            # may see its speed move and leave them all out (test_failure_paths covers that)
            "--i2v-force-baselines",
            "--i2v-json",
            "r.json",
            "--i2v-report",
            "r.html",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert completed.returncode == pytest.ExitCode.INTERRUPTED, (
        completed.stdout[-2000:] + completed.stderr[-2000:]
    )
    assert "KeyboardInterrupt" in completed.stdout and "INTERNALERROR" not in completed.stdout
    records = json.loads((tmp_path / "r.json").read_text())["records"]
    assert [r["nodeid"] for r in records] == ["test_interrupt.py::test_1_done"]
    assert (tmp_path / "r.html").stat().st_size > 0
    baseline = yaml.safe_load((tmp_path / "bl" / "cpu.yaml").read_text())
    assert list(baseline["entries"]) == ["test_interrupt.py::test_1_done"]


def test_package_never_uses_unsafe_loaders() -> None:
    """YAML only through safe_load, no pickle anywhere in the package."""
    for path in (ROOT / "pytest_i2v").rglob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "torch.load(" not in text, path
        assert (
            "yaml.load(" not in text and "yaml.unsafe_load" not in text and "FullLoader" not in text
        ), path


def test_pickle_weights_need_an_explicit_opt_in(tmp_path: Path) -> None:
    from pytest_i2v.errors import I2VUsageError
    from pytest_i2v.pipelines.i2vgen_xl_tiny import build_tiny_pipeline
    from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline
    from pytest_i2v.pipelines.source_check import check_model_source

    directory = tmp_path / "pickled"
    build_tiny_pipeline(tmp_path).save_pretrained(str(directory), safe_serialization=False)
    assert list(directory.glob("unet/*.bin")) and not list(directory.glob("unet/*.safetensors"))
    with pytest.raises(
        I2VUsageError, match=r"only pickle weights for \w+ \(.*\.bin\).*--i2v-allow-pickle"
    ):
        check_model_source(str(directory))
    assert check_model_source(str(directory), allow_pickle=True) == str(directory)
    loaded = load_pipeline(PipelineKey(str(directory), "fp32", "cpu"), tmp_path, allow_pickle=True)
    assert loaded.provenance == "real-weights"


def test_the_socket_guard_blocks_the_network() -> None:
    import socket

    from tests.conftest import NetworkAccessError

    with pytest.raises(NetworkAccessError):
        socket.create_connection(("192.0.2.1", 443), timeout=1)


def test_kill_during_write_benchmark_runs(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "kill_during_write.py"),
            "--trials",
            "5",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "5 trials: 0 corrupt" in completed.stdout
