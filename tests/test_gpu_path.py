"""The CUDA code paths, driven on the CPU through the simulated device (``measure.simulated``).

Each test names the defect of the GPU-truth issue it guards; on the code before the device seam
each of them failed (peaks carried over, GPU 0 read for cuda:1, frames pinned by tracebacks, NVML
scope lost, profile detected from GPU 0, cuBLAS/cuDNN OOMs not recorded, fast mode extrapolated
offload runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import i2v
from pytest_i2v.measure.device_name import parse_device
from pytest_i2v.measure.nvml import NvmlHandle, NvmlWarning
from pytest_i2v.measure.runner import GenerationRunner, oom_form
from pytest_i2v.measure.simulated import SimulatedCudaDevice, SimulatedRuntime
from pytest_i2v.measure.simulated_gpu import SimulatedGpu
from pytest_i2v.measure.simulated_memory import GiB, segment
from pytest_i2v.measure.virtual_time import VirtualWork
from pytest_i2v.profiles import load_profiles
from pytest_i2v.session.plan import plan_run
from pytest_i2v.session.settings import Settings
from pytest_i2v.verdict.gate import GateSettings, judge_metrics

SMALL = i2v(width=32, height=32, frames=2, steps=2)
LARGE = i2v(width=96, height=96, frames=2, steps=2)
IMAGE = synthetic_portrait(64, 64)


def runtime_of(device: SimulatedCudaDevice) -> SimulatedRuntime:
    return RUNTIMES[id(device)]


RUNTIMES: dict[int, SimulatedRuntime] = {}


def gpu_device(
    tiny_pipe: Any, gpu: SimulatedGpu | None = None, index: int = 0, work: VirtualWork | None = None
) -> SimulatedCudaDevice:
    """``work``: time on the virtual clock (exact times), else the real one."""
    runtime = SimulatedRuntime(gpus=[gpu or SimulatedGpu()] * (index + 1), work=work)
    device: SimulatedCudaDevice = runtime.open(f"cuda:{index}")
    device.place_weights(tiny_pipe)
    RUNTIMES[id(device)] = runtime
    return device


def measure(
    tiny_pipe: Any, device: SimulatedCudaDevice, spec: Any = SMALL, repeats: int = 1
) -> Any:
    with device.workload(tiny_pipe):
        return GenerationRunner(tiny_pipe, device).measure(spec, IMAGE, warmup=1, repeats=repeats)


# -- defect 1: peaks carried over between tests ---------------------------------------------------
def test_the_simulated_allocator_carries_a_cached_peak_over_a_plain_reset(tiny_pipe: Any) -> None:
    """The simulation is faithful to the bug: resetting the peak counters alone keeps the cache."""
    device = gpu_device(tiny_pipe)
    measure(tiny_pipe, device, LARGE)
    large_reserved = device.memory.reserved
    device.reset_peak_stats()
    assert (
        device.peak_reserved_bytes() == large_reserved
    )  # what the old code reported for the next test
    assert device.peak_reserved_bytes() > device.memory.allocated


def test_a_small_test_after_a_large_one_reports_its_own_peaks(tiny_pipe: Any) -> None:
    fresh = measure(tiny_pipe, gpu_device(tiny_pipe))
    device = gpu_device(tiny_pipe)
    large = measure(tiny_pipe, device, LARGE)
    after = measure(tiny_pipe, device)
    assert large.peak.reserved_bytes > fresh.peak.reserved_bytes * 1.5  # the sizes really differ
    for field in ("allocated_bytes", "reserved_bytes", "device_bytes"):
        assert getattr(after.peak, field) == pytest.approx(getattr(fresh.peak, field), rel=0.01), (
            field
        )
    # the level the test started from is recorded, and it is the weights alone (the cache was
    # freed): their segments stay reserved, each rounded up as the caching allocator rounds it
    weights = sum(block.size for block in device.weights.values())
    segments = sum(segment(block.size) for block in device.weights.values())
    assert (
        after.start is not None
        and after.start.allocated_bytes == weights
        and after.start.reserved_bytes == segments
    )
    assert (
        after.start.device_bytes == segments + device.gpu.context_bytes
        and after.start.device_scope == "process"
    )
    calls = [name for name, _ in device.calls]
    assert calls.index("empty_cache") < calls.index("reset_peak_memory_stats")


# -- defect 2 and 5: the run's device, never GPU 0 ---------------------------------------------
def test_every_call_names_the_runs_device(tiny_pipe: Any) -> None:
    """Two cards open; the project's CudaDevice, CudaEventClock and NvmlHandle measure on cuda:1,
    and every torch.cuda and pynvml call is logged with the index it was given."""
    device = gpu_device(tiny_pipe, index=1)
    runtime_of(device).open("cuda:0").place_weights(tiny_pipe)  # the card a wrong index would read
    device.calls.clear()
    measure(tiny_pipe, device)
    assert device.calls, "the runner made no device call"
    assert {index for _, index in device.calls} == {1}
    names = {name for name, _ in device.calls}
    assert {
        "device",
        "synchronize",
        "current_stream",
        "Event.record",
        "empty_cache",
        "reset_peak_memory_stats",
        "max_memory_allocated",
        "max_memory_reserved",
        "nvmlDeviceGetHandleByUUID",
    } <= names


def two_gpu_runtime() -> SimulatedRuntime:
    return SimulatedRuntime(
        gpus=[
            SimulatedGpu(name="NVIDIA H200", total_bytes=int(139.8 * GiB)),
            SimulatedGpu(name="NVIDIA GeForce RTX 4090", total_bytes=int(23.6 * GiB)),
        ]
    )


def test_auto_profile_comes_from_the_device_used() -> None:
    profiles = load_profiles()
    runtime = two_gpu_runtime()
    assert (
        plan_run(Settings(device="cuda:1", model="tiny"), profiles, runtime).profile.name
        == "rtx4090"
    )
    plan = plan_run(Settings(model="tiny"), profiles, runtime, worker_device="cuda:1")
    assert plan.profile.name == "rtx4090" and plan.device == "cuda:1"
    assert (
        plan_run(Settings(model="tiny"), profiles, runtime).device == "cuda:0"
    )  # "cuda" gets its index
    assert plan_run(Settings(model="tiny", dtype="fp32"), profiles, runtime).profile.name == "h200"


@pytest.mark.parametrize(
    ("name", "count", "message"),
    [
        (
            "cuda:2",
            2,
            r"--i2v-device cuda:2: this machine has 2 CUDA device\(s\) \(cuda:0 to cuda:1\); "
            r"pick one of those",
        ),
        ("cuda:0", 0, r"--i2v-device cuda:0: CUDA is not available here; use --i2v-device cpu"),
    ],
)
def test_a_bad_device_index_is_one_usage_line(name: str, count: int, message: str) -> None:
    with pytest.raises(I2VUsageError, match=message):
        parse_device(name, count)


def test_a_bad_device_index_exits_4(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_I2V_SIMULATED_GPUS", json.dumps([{"name": "NVIDIA H200"}]))
    i2v_project.makepyfile("def test_x(i2v_spec):\n    pass\n")
    result = i2v_project.runpytest(
        "-p", "pytest_i2v.simulated_plugin", "--i2v-device", "cuda:3", "--i2v-model", "tiny"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "this machine has 1 CUDA device(s)" in result.stderr.str()


# -- defect 3: a failed test pins its tensors --------------------------------------------------
PINNING_TESTS = """
import pytest
from pytest_i2v.simulated_plugin import RUNTIME

SPEC = dict(width=32, height=32, frames=2, steps=2)

@pytest.mark.i2v(**SPEC)
def test_1_first(i2v_run):
    assert i2v_run().outcome == "ok"

@pytest.mark.i2v(**SPEC, seed=1)
def test_2_fails_holding_memory(i2v_run):
    i2v_run()
    held = RUNTIME.last_opened.allocate(3 * 2**30)  # a tensor its frame keeps alive
    assert held is None, "this test fails with memory in its frame"

@pytest.fixture
def level_at_setup():
    # pytest keeps the last failure (sys.last_value) until the next test's call phase: a pipeline
    # loaded in setup, or a fixture measuring, would see the failed test's memory.
    return RUNTIME.last_opened.memory.allocated

@pytest.mark.i2v(**SPEC, seed=2)
def test_3_after_the_failure(level_at_setup, i2v_run):
    assert level_at_setup < 2**30, f"{level_at_setup / 2**30:.1f} GiB still held at setup"
    assert i2v_run().outcome == "ok"
"""


def test_a_failed_test_does_not_inflate_the_next(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_I2V_SIMULATED_GPUS", json.dumps([{"name": "NVIDIA H200"}]))
    i2v_project.makepyfile(test_pin=PINNING_TESTS)
    result = i2v_project.runpytest_subprocess(
        "-p",
        "pytest_i2v.simulated_plugin",
        "--i2v-model",
        "tiny",
        "--i2v-dtype",
        "fp32",
        "--i2v-json",
        "out.json",
    )
    result.assert_outcomes(passed=2, failed=1)
    records = {
        r["nodeid"].split("::")[1]: r
        for r in json.loads(Path(i2v_project.path, "out.json").read_text())["records"]
    }
    first, after = records["test_1_first"], records["test_3_after_the_failure"]
    assert after["memory_start"]["allocated_bytes"] == first["memory_start"]["allocated_bytes"]
    assert after["peak_memory"]["allocated_bytes"] == pytest.approx(
        first["peak_memory"]["allocated_bytes"], rel=0.01
    )
    assert first["nvml_device"].startswith(
        "UUID GPU-"
    )  # the record says which NVML device its figures are


# -- defect 4: NVML scope ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "scope"),
    [("process", "process"), ("device", "device"), ("unavailable", "unavailable")],
)
def test_the_nvml_scope_is_recorded(tiny_pipe: Any, mode: str, scope: str) -> None:
    gpu = SimulatedGpu(nvml=mode, other_process_bytes=5 * GiB)
    measurement = measure(tiny_pipe, gpu_device(tiny_pipe, gpu))
    assert measurement.peak.device_scope == scope
    if mode == "device":  # the device-wide figure includes the neighbours
        assert measurement.peak.device_bytes > 5 * GiB
    if mode == "unavailable":
        assert measurement.peak.device_bytes is None


def test_the_gate_never_compares_nvml_figures_of_different_scopes() -> None:
    history = [
        {"time_s": 1.0, "device_bytes": 10 * GiB, "device_scope": "process"} for _ in range(5)
    ]
    current = {"time_s": 1.0, "device_bytes": 20 * GiB, "device_scope": "device"}
    verdict = judge_metrics(history, current, GateSettings())
    device = next(m for m in verdict.metrics if m.metric == "device_bytes")
    assert device.verdict == "new" and verdict.verdict == "pass"
    assert any("another scope" in note for note in verdict.notes)
    same = judge_metrics(
        history, {**current, "device_scope": "process"}, GateSettings(memory_abs_bytes=0)
    )
    assert next(m for m in same.metrics if m.metric == "device_bytes").verdict == "regressed"


class MismatchedNvml:
    """nvmlInit fails as pynvml itself fails on a driver older than the library: its own error
    class."""

    def nvmlInit(self) -> None:
        import pynvml

        raise pynvml.NVMLError(
            pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH
        )  # pynvml picks the subclass


def test_a_driver_library_mismatch_is_one_warning() -> None:
    with pytest.warns(
        NvmlWarning,
        match=r"NVML driver/library version mismatch \(NVMLError_LibRmVersionMismatch\)",
    ) as caught:
        handle = NvmlHandle(MismatchedNvml(), "GPU-123", 0)
    assert len(caught) == 1
    assert handle.read().scope == "unavailable"


# -- defect 6: OOM forms, freeing after the handler, the next test -----------------------------
@pytest.mark.parametrize(
    ("message", "form"),
    [
        ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", "cublas"),
        ("cuDNN error: CUDNN_STATUS_ALLOC_FAILED", "cudnn"),
        ("cuDNN error: CUDNN_STATUS_NOT_ENOUGH_WORKSPACE", "cudnn"),
        (
            "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported",
            "cuda-driver",
        ),
    ],
)
def test_every_oom_form_is_classified(message: str, form: str) -> None:
    assert oom_form(RuntimeError(message)) == form
    assert (
        oom_form(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
        == "allocator"
    )
    assert oom_form(MemoryError()) == "host"
    assert oom_form(RuntimeError("shape mismatch")) is None


@pytest.mark.parametrize("form", ["allocator", "cublas", "cudnn"])
def test_after_an_oom_the_next_test_measures_as_in_a_fresh_process(
    tiny_pipe: Any, form: str
) -> None:
    fresh = measure(tiny_pipe, gpu_device(tiny_pipe))
    device = gpu_device(tiny_pipe, SimulatedGpu(oom_form=form))
    weights = device.memory.allocated
    device.limit_bytes = (
        weights + fresh.peak.allocated_bytes - weights + 1
    )  # the small one fits, the large one not
    oom = measure(tiny_pipe, device, LARGE)
    assert oom.outcome == "oom" and oom.oom is not None and oom.oom.form == form
    assert oom.oom.stage == "denoise" and oom.oom.step == 1
    assert oom.oom.after_free_bytes == weights  # freed once the handler was left: nothing pinned
    after = measure(tiny_pipe, device)
    assert after.outcome == "ok"
    for field in ("allocated_bytes", "reserved_bytes", "device_bytes"):
        assert getattr(after.peak, field) == pytest.approx(getattr(fresh.peak, field), rel=0.01), (
            field
        )


def test_other_runtime_errors_still_propagate(tiny_pipe: Any) -> None:
    device = gpu_device(tiny_pipe)

    def explode(*_: object) -> None:
        raise RuntimeError("Expected all tensors to be on the same device")

    handle = tiny_pipe.unet.register_forward_pre_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="same device"):
            measure(tiny_pipe, device)
    finally:
        handle.remove()


OFFLOAD_TESTS = """
import pytest
from pytest_i2v.simulated_plugin import RUNTIME

@pytest.mark.i2v(width=96, height=96, frames=2, steps=4, memory=("model_cpu_offload",))
def test_1_offload_oom(i2v_run):
    RUNTIME.last_opened.limit_bytes = RUNTIME.last_opened.memory.allocated + 1
    try:
        assert i2v_run().outcome == "oom"
    finally:
        RUNTIME.last_opened.limit_bytes = RUNTIME.last_opened.gpu.total_bytes

@pytest.mark.i2v(width=32, height=32, frames=2, steps=4, memory=("model_cpu_offload",), fast=True)
def test_2_offload_fast(i2v_run):
    record = i2v_run()
    assert record.outcome == "ok"
"""


def test_offload_oom_reloads_and_fast_mode_is_refused(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_I2V_SIMULATED_GPUS", json.dumps([{"name": "NVIDIA H200"}]))
    i2v_project.makepyfile(test_offload=OFFLOAD_TESTS)
    result = i2v_project.runpytest(
        "-p",
        "pytest_i2v.simulated_plugin",
        "--i2v-model",
        "tiny",
        "--i2v-dtype",
        "fp32",
        "--i2v-json",
        "out.json",
        "--i2v-fast-steps",
        "2",
    )
    result.assert_outcomes(passed=1, failed=1)  # the OOM fails its test; the session goes on
    document = json.loads(Path(i2v_project.path, "out.json").read_text())
    records = {r["nodeid"].split("::")[1]: r for r in document["records"]}
    oom, fast = records["test_1_offload_oom"], records["test_2_offload_fast"]
    assert oom["outcome"] == "oom" and any("reloaded after the OOM" in n for n in oom["notes"])
    assert (
        len(document["pipelines"]) == 2
    )  # the offload pipeline was loaded again for the next test
    # defect 7: fast mode is refused for offload, with the reason, and the run is measured in full
    assert fast["mode"] == "full" and len(fast["stages"]["step_samples_s"][0]) == 4
    assert any("fast mode refused for model_cpu_offload" in n for n in fast["notes"])


def test_the_report_shows_the_nvml_scope() -> None:
    from pytest_i2v.report.html import render_html
    from tests.report_fixtures import document

    doc = document()
    doc["records"][0]["peak_memory"]["device_scope"] = "device"
    doc["records"][1]["peak_memory"]["device_scope"] = "process"
    html = render_html(doc)
    assert "(whole device)" in html and "(this process)" in html


# -- issue 21: the offload paths run their real placement calls on the simulated device ------------
def offload_peak(
    tmp_path: Path, offload: str | None, pipeline: str = "i2vgen-xl"
) -> tuple[int, int]:
    """The allocated peak of one measured generation and the weights resident before it, through
    load_pipeline (the adapter's real placement call) and the simulated card's residency rule."""
    from dataclasses import replace as replace_spec

    from pytest_i2v.pipelines.base import adapter_for
    from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline

    loaded = load_pipeline(
        PipelineKey("tiny", "fp32", "cpu", offload=offload, pipeline=pipeline),
        tmp_path / str(offload),
    )
    device: SimulatedCudaDevice = SimulatedRuntime().open("cuda:0")
    device.place_pipeline(loaded.pipe, offload)
    adapter = adapter_for(pipeline)
    device.attach(loaded.pipe, [*adapter.denoisers(loaded.pipe), adapter.vae_decoder(loaded.pipe)])
    resident = device.memory.allocated
    spec = replace_spec(
        i2v(pipeline=pipeline),
        width=64,
        height=64,
        frames=4 if pipeline == "i2vgen-xl" else 5,
        steps=2,
    )
    measurement = GenerationRunner(loaded.pipe, device).measure(spec, IMAGE, warmup=1, repeats=1)
    assert measurement.outcome == "ok"
    return int(measurement.peak.allocated_bytes or 0), resident


SEQUENTIAL_ON_THE_CPU = pytest.mark.xfail(
    strict=True,
    raises=TypeError,
    reason="accelerate 1.15's post_forward (set_module_tensor_to_device to 'meta') raises "
    "TypeError under torch 2.13 on the CPU; strict: this test says so when an upgrade fixes it",
)


@pytest.mark.parametrize(
    ("offload", "pipeline"),
    [
        ("model_cpu_offload", "wan2.1-i2v"),
        ("group_offload", "wan2.1-i2v"),
        ("model_cpu_offload", "i2vgen-xl"),
        pytest.param("sequential_cpu_offload", "i2vgen-xl", marks=SEQUENTIAL_ON_THE_CPU),
    ],
)
def test_offload_runs_the_real_placement_call_and_lowers_the_peak(
    tmp_path: Path, offload: str, pipeline: str
) -> None:
    """gpu-check (g)'s premise on the simulated card: the weights stay off the device only because
    the real enable_* call hooked the modules (skip the call and every weight is resident again)."""
    plain_peak, plain_resident = offload_peak(tmp_path, None, pipeline)
    peak, resident = offload_peak(tmp_path, offload, pipeline)
    assert resident < plain_resident  # nothing, or only unhooked leaves, before the first forward
    assert peak < plain_peak, (peak, plain_peak)
