"""The temporary test module gpu-check writes and the pytest subprocesses that run it (a fresh
process is part of check (d); an induced OOM must not take the checking process down)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.gpu_check.plan import CheckPlan
from pytest_i2v.gpu_check.records import (
    AFTER_LARGEST,
    AFTER_OOM,
    DRY_RUN_PROFILE,
    FULL,
    OFFLOAD,
    OOM,
    PROFILE_DIR,
    SIMULATED_H200,
    SUITE_FILE,
    USAGE_ERROR,
    GiB,
    RunResult,
    SimulatedGpu,
    last_error,
    sweep_id,
)
from pytest_i2v.profiles import load_profiles, pick_profile

# -- the temporary test module and the pytest subprocesses ------------------------------------
SUITE_TEMPLATE = '''"""Written by `python -m pytest_i2v gpu-check`; each of its runs selects tests
by node id."""

import contextlib
import json

import pytest

CONFIG = json.loads({config!r})
SIZES = {{label: (width, height) for label, width, height in CONFIG["sizes"]}}
SMALLEST, MIDDLE, LARGEST = CONFIG["smallest"], CONFIG["middle"], CONFIG["largest"]


def spec(label, **extra):
    """The mark's arguments: the study's preset (I2VGen-XL on a GPU), else explicit pixels."""
    width, height = SIZES[label]
    size = {{"resolution": label}} if CONFIG["presets"] else {{"width": width, "height": height}}
    args = dict(pipeline=CONFIG["pipeline"], frames=CONFIG["frames"], steps=CONFIG["steps"],
                guidance=CONFIG["guidance"], fast=True)
    args.update(extra)
    return {{**size, **args}}


@contextlib.contextmanager
def memory_limit(headroom):
    """Cap the device at what is allocated now (the loaded pipeline) plus ``headroom``."""
    if CONFIG["simulated"]:
        from pytest_i2v.simulated_plugin import RUNTIME

        device = RUNTIME.last_opened
        saved = device.limit_bytes  # its default keeps the CUDA context out; restored as it was
        device.set_memory_fraction((device.memory.allocated + headroom) / device.gpu.total_bytes)
        try:
            yield
        finally:
            device.limit_bytes = saved
        return
    import torch

    index = CONFIG["device_index"]
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(index).total_memory
    limit = (torch.cuda.memory_allocated(index) + headroom) / total
    torch.cuda.set_per_process_memory_fraction(min(1.0, limit), index)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, index)


@pytest.mark.parametrize(
    "label",
    [pytest.param(label, marks=pytest.mark.i2v(**spec(label)), id=label) for label in SIZES],
)
def test_sweep(label, i2v_run):
    assert i2v_run().outcome == "ok"


@pytest.mark.i2v(**spec(SMALLEST, fast=False))
def test_full_smallest(i2v_run):
    # Runs right after the fast twin of the same generation, so its shapes are warm.
    assert i2v_run(warmup=0).outcome == "ok"


if CONFIG["after_largest"]:  # (d) only where the pipeline generates at more than one size
    @pytest.mark.i2v(**spec(MIDDLE))
    def test_after_largest(i2v_run):
        assert i2v_run().outcome == "ok"


if CONFIG["offload"]:  # (g) only where the pipeline supports model_cpu_offload
    @pytest.mark.i2v(
        **spec(MIDDLE, fast=False, steps=CONFIG["offload_steps"], memory=("model_cpu_offload",))
    )
    def test_offload(i2v_run):
        assert i2v_run(repeats=1, warmup=0).outcome == "ok"


@pytest.mark.i2v(**spec(LARGEST))
def test_oom_largest(i2v_pipeline, i2v_run):
    # i2v_pipeline first: the limit is set with the weights already on the device.
    with memory_limit(CONFIG["oom_headroom_bytes"]):
        record = i2v_run(repeats=1, warmup=0)
    assert record.outcome == "oom", (
        f"{{LARGEST}} fitted under the memory limit ({{record.outcome}})"
    )


@pytest.mark.i2v(**spec(SMALLEST))
def test_after_oom(i2v_run):
    assert i2v_run().outcome == "ok"
'''


def suite_source(plan: CheckPlan) -> str:
    config = {
        "sizes": [list(s) for s in plan.dimensions],
        "presets": plan.uses_presets,
        "simulated": plan.dry_run,
        "pipeline": plan.pipeline,
        "offload": plan.offload_supported,
        "after_largest": not plan.fixed_size,
        "smallest": plan.smallest,
        "middle": plan.middle,
        "largest": plan.largest,
        "frames": plan.frames,
        "steps": plan.steps,
        "guidance": plan.guidance,
        "offload_steps": plan.offload_steps,
        "oom_headroom_bytes": plan.oom_headroom_bytes,
        "device_index": plan.device_index,
    }
    return SUITE_TEMPLATE.format(config=json.dumps(config))


def run_selections(plan: CheckPlan) -> dict[str, tuple[str, list[str]]]:
    """Run name -> (device, tests in the order they run)."""
    sweep = [sweep_id(label) for label in plan.labels]
    main = [sweep[0], FULL, *sweep[1:]]
    if not plan.fixed_size:
        main.append(AFTER_LARGEST)  # (d): right after the largest
    if plan.offload_supported:
        main.append(OFFLOAD)
    runs = {"main": (plan.device, main)}
    if not plan.fixed_size:
        runs["fresh"] = (plan.device, [sweep_id(plan.middle)])  # (d) only
    runs["oom"] = (plan.device, [OOM, AFTER_OOM])
    if plan.other_device:
        runs["second"] = (plan.other_device, sweep)  # (a)-(c) need the sweep only
    return runs


def plugin_args() -> list[str]:
    """``-p pytest_i2v.plugin`` only when the entry point does not load it (passing it twice is an
    error)."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return ["-p", "pytest_i2v.plugin"]
    registered = any(
        ep.value == "pytest_i2v.plugin" for ep in importlib.metadata.entry_points(group="pytest11")
    )
    return [] if registered else ["-p", "pytest_i2v.plugin"]


def dry_run_profile_yaml(plan: CheckPlan) -> str:
    """The profile a scaled dry run selects: the one ``auto`` picks for the simulated GPU, renamed,
    with the marks' sizes divided by ``plan.size_divisor`` (steps unscaled: the plan's are few
    already)."""
    gpu: SimulatedGpu = (
        plan.simulated_gpus[plan.device_index] if plan.simulated_gpus else SIMULATED_H200
    )
    picked = pick_profile(
        "auto", load_profiles(), str(gpu["name"]), float(gpu["total_bytes"]) / GiB
    )
    data = yaml.safe_load(Path(picked.source).read_text(encoding="utf-8"))
    data.pop("aliases", None)
    data.update(
        name=DRY_RUN_PROFILE,
        scaling={"size_divisor": plan.size_divisor, "steps_divisor": 1},
        description=(
            f"{picked.description}, sizes /{plan.size_divisor} (written by gpu-check --dry-run)"
        ),
    )
    return str(yaml.safe_dump(data, sort_keys=False))


def pytest_command(
    plan: CheckPlan, workdir: Path, name: str, device: str, tests: Sequence[str]
) -> list[str]:
    command = [sys.executable, "-m", "pytest", *plugin_args()]
    if plan.dry_run:
        command += ["-p", "pytest_i2v.simulated_plugin"]
    profile = ["--gpu-profile", "auto"]
    if plan.size_divisor > 1:
        profile = [
            "--i2v-profile-dir",
            str(workdir / PROFILE_DIR),
            "--gpu-profile",
            DRY_RUN_PROFILE,
        ]
    command += [
        "-c",
        str(workdir / "pytest.ini"),
        "--rootdir",
        str(workdir),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:benchmark",
        "-q",
        "-rA",
        "--i2v-json",
        str(workdir / f"{name}.json"),
        *profile,
        "--i2v-allow-profile-mismatch",
        "--i2v-device",
        device,
        "--i2v-pipeline",
        plan.pipeline,
        "--i2v-model",
        plan.model,
        "--i2v-dtype",
        plan.dtype,
        "--i2v-repeats",
        str(plan.repeats),
        "--i2v-warmup",
        str(plan.warmup),
        "--i2v-fast-steps",
        str(plan.fast_steps),
        "--i2v-baseline-dir",
        str(workdir / "baselines"),  # never the user's baselines: every verdict is "new"
    ]
    if name == "main":
        command += ["--i2v-report", str(workdir / "main.html")]
    return command + [f"{SUITE_FILE}::{test}" for test in tests]


def child_environment(plan: CheckPlan) -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "PYTEST_ADDOPTS",
        "PYTEST_I2V_SIMULATED_MEMORY_FRACTION",
        "PYTEST_I2V_SIMULATED_GPUS",
    ):
        env.pop(name, None)  # the runs are configured here, not by the caller's environment
    if plan.dry_run:
        env["PYTEST_I2V_SIMULATED_GPUS"] = json.dumps(list(plan.simulated_gpus))
        # One thread: the tiny model gains nothing from two, and on a busy 2-core machine torch's
        # threads wait on each other (several times slower).
        env["OMP_NUM_THREADS"] = "1"
    # The children import the same pytest_i2v as this process, installed or not.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    return env


def run_pytest(
    plan: CheckPlan, workdir: Path, name: str, device: str, tests: Sequence[str]
) -> RunResult:
    command = pytest_command(plan, workdir, name, device, tests)
    started = time.perf_counter()
    returncode: int | None
    try:
        completed = subprocess.run(
            command,
            cwd=workdir,
            env=child_environment(plan),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=plan.timeout_s,
            check=False,
        )
        returncode, log = completed.returncode, completed.stdout
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout
        returncode, log = (
            None,
            output.decode(errors="replace") if isinstance(output, bytes) else (output or ""),
        )
    seconds = time.perf_counter() - started
    if returncode == USAGE_ERROR and name == "main":
        # Nothing ran (an unknown GPU, a model directory diffusers cannot read): the user's to fix.
        # Later runs report it as their failure instead, so the main run's results are kept.
        raise I2VUsageError(f"the {name} pytest run refused its arguments: {last_error(log)}")
    path = workdir / f"{name}.json"
    document = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    # The temporary directory is gone once the check ends: show where it stood, not its name.
    shown = [a.replace(str(workdir), "<tmp>") for a in command]
    return RunResult(
        name=name,
        command=tuple(shown),
        returncode=returncode,
        seconds=seconds,
        document=document,
        log=log,
    )
