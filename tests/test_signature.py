"""The work signature: the digest covers the work and never a time, the diff names what changed and
estimates its effect from the changed rows alone, the trace conversion attributes self time and
kernels, and a real profiled generation gives the same digest in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_i2v.measure.trace import trace_events
from pytest_i2v.verdict.signature import (
    KERNEL,
    OP,
    SYNC,
    StageWork,
    WorkRow,
    WorkSignature,
)
from pytest_i2v.verdict.work_diff import diff, locate_excess, work_verdict
from tests.test_outcomes import CPU_PROFILE


def _step(*rows: WorkRow, span: float = 0.1) -> StageWork:
    return StageWork(tuple(rows), span, (span, span, span))


def _sig(*rows: WorkRow, span: float = 0.1, kind: str = "cpu") -> WorkSignature:
    return WorkSignature(
        {
            "encode": StageWork((WorkRow(OP, "aten::conv", "[[1]]", "float", 2, 0.01),), 0.02),
            "step": _step(*rows, span=span),
        },
        kind,
        profiled_steps=3,
    )


CONV = WorkRow(
    OP, "aten::mkldnn_convolution", "[[2,4,8,8]]", "float", 4, 0.060, (0.060, 0.061, 0.059)
)
NORM = WorkRow(
    OP, "aten::native_layer_norm", "[[8,64,4]]", "float", 2, 0.020, (0.020, 0.020, 0.020)
)


def test_the_digest_covers_the_work_and_never_a_time() -> None:
    base = _sig(CONV, NORM)
    slower = _sig(replace(CONV, time_s=0.090, samples_s=(0.09, 0.09, 0.09)), NORM, span=0.13)
    assert slower.digest == base.digest  # the same work, slower: identical
    assert diff(base, slower).identical and work_verdict(diff(base, slower), 5.0) == "identical"
    for changed in (
        replace(NORM, count=3),
        replace(NORM, dtypes="double"),
        replace(NORM, shapes="[[8,64,8]]"),
    ):
        assert _sig(CONV, changed).digest != base.digest
    assert WorkSignature.from_dict(json.loads(json.dumps(base.to_dict()))) == base


def test_an_added_op_is_named_and_its_effect_estimated_from_it_alone() -> None:
    base = _sig(CONV, NORM)
    extra = WorkRow(OP, "aten::mul", "[[2,4,8,8],[]]", "float", 1, 0.006, (0.0059, 0.0061, 0.006))
    # the unchanged conv ran 20 % slower in this process: noise that must cancel, not count
    head = _sig(
        replace(CONV, time_s=0.072, samples_s=(0.072, 0.072, 0.072)), NORM, extra, span=0.118
    )
    work = diff(base, head)
    assert not work.identical and [r.row.name for r in work.rows] == [
        "aten::mul",
        "(host gap)",
    ]  # the gap: shown last
    assert (work.rows[1].time_base_s, work.rows[1].time_head_s) == pytest.approx((0.020, 0.020))
    assert work.rows[0].count_base == 0 and work.rows[0].count_head == 1
    assert work.effect_pct == pytest.approx(
        6.0
    )  # 6 ms of the base's 100 ms step, whatever the conv did
    assert (
        work.interval_pct is not None
        and 5.0 < work.interval_pct[0] < 6.0 < work.interval_pct[1] < 7.0
    )
    assert work_verdict(work, 5.0) == "regressed" and work_verdict(work, 10.0) == "changed"
    assert "work changed: +6.0 % of the step est." in work.summary()
    removed = diff(head, base)
    assert (
        removed.effect_pct is not None
        and removed.effect_pct < 0
        and work_verdict(removed, 1.0) == "improved"
    )


def test_a_retyped_op_is_one_row_out_and_one_in_sorted_by_effect() -> None:
    upcast = replace(NORM, dtypes="double", time_s=0.035, samples_s=(0.035, 0.034, 0.036))
    work = diff(_sig(CONV, NORM), _sig(CONV, upcast))
    assert [(r.row.dtypes, r.count_base, r.count_head) for r in work.rows] == [
        ("double", 0, 2),
        ("float", 2, 0),
        ("", 1, 1),
    ]
    assert work.effect_pct == pytest.approx(15.0)
    assert work.rows[0].share_of_step == pytest.approx(
        35.0
    )  # the head's row, in % of the base step
    assert type(work).from_dict(json.loads(json.dumps(work.to_dict()))).summary() == work.summary()


def test_the_excess_of_identical_work_is_located_in_the_machine_a_few_ops_or_the_host_gap() -> None:
    base = _sig(CONV, NORM, span=0.1)  # 80 ms in ops, 20 ms host gap
    everything = _sig(replace(CONV, time_s=0.084), replace(NORM, time_s=0.028), span=0.14)
    assert locate_excess(base, everything) == (
        "(+40.0 % per step) is spread over every op (the median op +40 %): "
        "the machine, not the code"
    )
    one_op = _sig(CONV, replace(NORM, time_s=0.050), span=0.13)
    assert locate_excess(base, one_op) == (
        "(+30.0 % per step) sits in a few ops: aten::native_layer_norm ([[8,64,4]], "
        "float) +30.000 ms (the median op +75 %)"
    )
    gap = _sig(CONV, NORM, span=0.13)
    assert locate_excess(base, gap) == (
        "(+30.0 % per step) is in the host gap: +30.000 ms per step outside every op "
        "(Python, the scheduler, waits)"
    )
    assert locate_excess(base, _sig(CONV, NORM, span=0.09)) is None  # not slower: nothing to locate
    unrelated = WorkRow(OP, "aten::add", "[[1]]", "float", 1, 0.001)
    three = _sig(CONV, NORM, unrelated, span=0.1)
    few = _sig(CONV, replace(NORM, time_s=0.040), replace(unrelated, time_s=0.001), span=0.12)
    assert "sits in a few ops: aten::native_layer_norm" in (locate_excess(three, few) or "")


def test_on_cuda_the_kernels_and_syncs_make_the_time() -> None:
    kernel = WorkRow(
        KERNEL, "sim_kernel<addmm>", count=4, time_s=0.050, samples_s=(0.05, 0.05, 0.05)
    )
    launch = WorkRow(OP, "aten::addmm", "[[4]]", "float", 4, 0.002, (0.002, 0.002, 0.002))
    sync = WorkRow(
        SYNC, "cudaDeviceSynchronize", count=1, time_s=0.004, samples_s=(0.004, 0.004, 0.004)
    )
    work = diff(_sig(launch, kernel, kind="cuda"), _sig(launch, kernel, sync, kind="cuda"))
    assert [r.row.kind for r in work.rows] == [SYNC, "gap"] and work.effect_pct == pytest.approx(
        4.0
    )


# -- the trace conversion, on recorded stand-ins for the profiler's raw events ---------------------
@dataclass
class Raw:
    _name: str
    start: int
    duration: int
    thread: int = 1
    device: str = "CPU"
    corr: int = 0
    linked: int = 0
    annotation: bool = False
    _shapes: list[Any] = field(default_factory=list)
    _dtypes: list[str] = field(default_factory=list)

    def name(self) -> str:
        return self._name

    def start_ns(self) -> int:
        return self.start

    def duration_ns(self) -> int:
        return self.duration

    def start_thread_id(self) -> int:
        return self.thread

    def device_type(self) -> str:
        return self.device

    def correlation_id(self) -> int:
        return self.corr

    def linked_correlation_id(self) -> int:
        return self.linked

    def is_user_annotation(self) -> bool:
        return self.annotation

    def shapes(self) -> list[Any]:
        return self._shapes

    def dtypes(self) -> list[str]:
        return self._dtypes


def test_self_time_nesting_and_kernels_linked_to_the_op_that_launched_them() -> None:
    raw = [
        Raw("aten::linear", 0, 1000, _shapes=[[2, 8], [8, 8]], _dtypes=["float", "float"]),
        Raw("aten::addmm", 100, 700, _shapes=[[8], [2, 8]], _dtypes=["float", "float"]),
        Raw("cudaLaunchKernel", 200, 50, corr=7),
        Raw("gemm_kernel", 300, 400, device="CUDA", linked=7),
        Raw("aten::copy_", 2000, 100, _shapes=[[2, 8]], _dtypes=["c10::Half"]),
    ]
    events = {e.name: e for e in trace_events(raw)}
    assert (
        events["aten::linear"].self_s == pytest.approx(300e-9)
        and events["aten::linear"].nested_ops == 1
    )
    assert (
        events["aten::addmm"].self_s == pytest.approx(650e-9)
        and events["aten::addmm"].nested_ops == 0
    )
    assert events["aten::addmm"].kernels == (
        ("gemm_kernel", 400e-9),
    )  # the innermost op around the launch
    assert events["aten::linear"].kernels == () and events["aten::copy_"].nbytes == 2 * 8 * 2
    assert (
        events["aten::linear"].shapes == "[[2,8],[8,8]]"
        and events["aten::linear"].dtypes == "float,float"
    )


# -- a real profiled generation ------------------------------------------------------------------
DIGEST = """
import json, sys
from pathlib import Path
from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import i2v
from pytest_i2v.measure.profiling import profile_work
from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline
import pytest_i2v.simulated_plugin as simulated

source = Path(sys.argv[1])
key = PipelineKey(source=str(source), dtype="fp32", device="cpu")
pipe = load_pipeline(key, source.parent).pipe
spec = i2v(width=32, height=32, frames=2, steps=5)
for name in sys.argv[2:]:
    signature = profile_work(pipe, spec, synthetic_portrait(64, 64), simulated.RUNTIME.open(name))
    kinds = sorted({r.kind for s in signature.stages.values() for r in s.rows})
    print(json.dumps({"device": name, "digest": signature.digest, "steps": signature.profiled_steps,
                      "kinds": kinds}))
"""


def test_unchanged_code_has_one_digest_in_fresh_processes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Fresh processes profile the same generation: one digest per device, on the CPU and on
    the simulated card (with kernel and sync records); the two devices' digests differ. Each
    process profiles both."""
    script = tmp_path / "digest.py"
    script.write_text(DIGEST)
    seen: dict[str, list[dict[str, Any]]] = {"cpu": [], "cuda:0": []}
    for _ in range(2):
        completed = subprocess.run(
            [sys.executable, str(script), str(tiny_model_dir), *seen],
            capture_output=True,
            text=True,
            check=False,
            env={**__import__("os").environ, "PYTEST_I2V_SIMULATED_GPUS": ""},
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        for line in completed.stdout.strip().splitlines()[-2:]:
            found = json.loads(line)
            seen[found["device"]].append(found)
    for device, expected in (("cpu", {"op"}), ("cuda:0", {"op", "kernel", "memcpy"})):
        assert len(seen[device]) == 2 and len({s["digest"] for s in seen[device]}) == 1, device
        assert seen[device][0]["steps"] == 3 and expected <= set(seen[device][0]["kinds"]), device
    assert seen["cpu"][0]["digest"] != seen["cuda:0"][0]["digest"]


# -- the gate reads the work -----------------------------------------------------------------------
WORK_CONFTEST = """
import os

import time

import pytest
import torch

from pytest_i2v.simulated_plugin import add_work


@pytest.fixture(autouse=True)
def host_wait(request):
    '''The same work, and a host-side wait before every UNet call (real, so the profile sees it;
    virtual, so the timed verdict does). The real wait is 0.2 s and only under the profiler: an
    unchanged step on a loaded 2-core CI machine was once measured 43 ms slower than its baseline,
    so a 10 ms wait could hide.'''
    if os.environ.get("HOST_WAIT") != request.node.name:
        yield
        return

    def wait(module, args):
        if torch.autograd._profiler_enabled():
            time.sleep(0.2)
        add_work(0.05)

    handle = request.getfixturevalue("i2v_pipeline").unet.register_forward_pre_hook(wait)
    yield
    handle.remove()


@pytest.fixture(autouse=True)
def head_change(request):
    '''The "head" of a pull request: one more matrix product after every UNet call of one test.'''
    if os.environ.get("ADD_OP") != request.node.name:
        yield
        return
    pipe = request.getfixturevalue("i2v_pipeline")
    weight = torch.ones(768, 768)

    def extra(module, args, output):
        torch.mm(weight, weight)  # returns None: the UNet's output stays its own

    handle = pipe.unet.register_forward_hook(extra)
    yield
    handle.remove()
"""
WORK_TESTS = """
import pytest

@pytest.mark.i2v(resolution="256p", frames=2, steps=50, seed=1)
def test_a(i2v_run):
    i2v_run()

@pytest.mark.i2v(resolution="256p", frames=2, steps=50, seed=2)
def test_b(i2v_run):
    i2v_run()
"""
# Enforced, with a 5 % minimum effect; the time runs on the virtual clock and the memory bar (host
# RSS, which grows over in-process runs) is wide, so only the work can move.
WORK_PROFILE = CPU_PROFILE.replace(
    "gate: {min_effect: 1.0, tolerance: 1.0, prior_noise: 0.08, memory_rel: 0.05, "
    "memory_abs_mib: 96, confirm: 0}",
    "gate: {enforce: true, min_effect: 0.05, tolerance: 1.0, prior_noise: 0.08, memory_rel: 0.05, "
    "memory_abs_mib: 2048}",
)


def test_an_added_op_fails_its_test_in_one_run_and_names_the_op(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, virtual_time: tuple[str, ...]
) -> None:
    i2v_project.makeconftest(WORK_CONFTEST)
    i2v_project.makepyfile(test_work=WORK_TESTS)
    (i2v_project.path / "profiles").mkdir()
    (i2v_project.path / "profiles" / "cpu.yaml").write_text(WORK_PROFILE)
    args = (
        "--i2v-repeats",
        "2",
        "--i2v-warmup",
        "1",
        "--i2v-baseline-dir",
        "bl",
        "--i2v-profile-dir",
        "profiles",
        "--i2v-json",
        "r.json",
        "-p",
        "no:randomly",
        "--i2v-signature",
        "on",
        *virtual_time,
    )
    monkeypatch.delenv("ADD_OP", raising=False)
    i2v_project.runpytest(*args, "--i2v-update-baselines").assert_outcomes(passed=2)
    (i2v_project.path / "r.json").rename(i2v_project.path / "base.json")
    stored = yaml.safe_load((i2v_project.path / "bl" / "cpu.yaml").read_text())
    segments = [e["segments"][0] for e in stored["entries"].values()]
    assert all(
        s["runs"][0]["work"] == s["signature"] for s in segments
    )  # each run names its work's digest
    tables = sorted(p.name for p in (i2v_project.path / "bl" / "cpu.signatures").iterdir())
    assert tables == sorted(
        {f"{s['signature']}.json.gz" for s in segments}
    )  # one table per digest, beside the YAML

    monkeypatch.setenv("ADD_OP", "test_b")
    result = i2v_project.runpytest(*args, "--i2v-markdown", "r.md", "--i2v-report", "r.html")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*i2v work: work changed: +* % of the step est.*",
            "FAILED test_work.py::test_b - i2v work: work changed*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["test_work.py::test_b: * | regressed | work changed +* % est. (beyond 5 %): aten::mm +1*"]
    )  # the results table names it too
    assert (
        "  step: aten::mm ([[768,768],[768,768]], float,float): count 0 -> 1, time 0.000 -> "
        in result.stdout.str()
    )
    records = {
        r["nodeid"].split("::")[1]: r
        for r in json.loads((i2v_project.path / "r.json").read_text())["records"]
    }
    assert (
        records["test_b"]["decision"]["kind"] == "regressed"
        and records["test_b"]["work"]["verdict"] == "regressed"
    )
    assert (
        records["test_b"]["verdict"]["verdict"] == "pass"
    )  # the time alone saw nothing (virtual clock)
    assert (
        records["test_a"]["work"]["identical"] is True
        and records["test_a"]["decision"]["kind"] == "passed"
    )
    compared = subprocess.run(
        [sys.executable, "-m", "pytest_i2v", "compare", "base.json", "r.json"],
        cwd=i2v_project.path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        "### What changed in the work" in compared
        and "aten::mm" in compared.split("What changed", 1)[1]
    )
    gate_view = subprocess.run(
        [sys.executable, "-m", "pytest_i2v", "baseline", "diff", "bl/cpu.yaml", "r.json"],
        cwd=i2v_project.path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row_b = next(line for line in gate_view.splitlines() if "test_b" in line)
    assert "work changed: +" in row_b and "aten::mm" in row_b and "0 -> 1" in row_b
    assert "work identical" in next(line for line in gate_view.splitlines() if "test_a" in line)
    html = (i2v_project.path / "r.html").read_text()
    assert (
        '<section id="work">' in html
        and "<code>aten::mm ([[768,768],[768,768]], float,float)</code>" in html
    )
    markdown = (
        i2v_project.path / "r.md"
    ).read_text()  # the pull request's comment carries the table
    section = markdown.split("### What changed in the work", 1)[1].split("\n### ", 1)[0]
    assert "test\\_work.py::test\\_b" in section and "test\\_a" not in section
    assert (
        "| step | aten::mm \\(\\[\\[768,768\\],\\[768,768\\]\\], float,float\\) | 0 → 1 |"
        in section
    )

    monkeypatch.delenv("ADD_OP")
    for _ in range(3):  # unchanged code: the same work in every fresh run
        result = i2v_project.runpytest(*args)
        result.assert_outcomes(passed=2)
        records = json.loads((i2v_project.path / "r.json").read_text())["records"]
        assert all(r["work"]["identical"] for r in records)

    # the same work, slower in time: the timing rule decides, after a fresh process confirms, and
    # the reason says where the excess sits
    monkeypatch.setenv("HOST_WAIT", "test_a")
    result = i2v_project.runpytest(*args)
    result.assert_outcomes(passed=1, failed=1)
    waited = next(
        r
        for r in json.loads((i2v_project.path / "r.json").read_text())["records"]
        if r["nodeid"].endswith("test_a")
    )
    assert waited["work"]["identical"] and waited["decision"]["kind"] == "regressed"
    assert "re-measured (1/1, in a fresh process)" in waited["notes"][-1] and waited["notes"][
        -1
    ].endswith(": confirmed")
    assert "work identical; the excess (+" in waited["decision"]["reason"]
    assert "% per step) is in the host gap: +" in waited["decision"]["reason"]


def test_the_count_and_the_estimate_are_the_changed_work_alone() -> None:
    """The host gap's row is shown, not counted; the estimate is the difference of the per-step
    means its interval is centred on (a median estimate could sit outside its own interval)."""
    skewed = WorkRow(OP, "aten::mul", "[[2,4,8,8],[]]", "float", 1, 0.004, (0.004, 0.004, 0.010))
    work = diff(_sig(CONV, NORM), _sig(CONV, NORM, skewed, span=0.106))
    assert work.count == 1 and work.summary().endswith(", 1 row(s)")
    assert type(work).from_dict(json.loads(json.dumps(work.to_dict()))).count == 1
    assert work.effect_pct == pytest.approx(6.0)  # the mean of 4, 4 and 10 ms in a 100 ms step
    assert work.interval_pct is not None
    assert sum(work.interval_pct) / 2 == pytest.approx(work.effect_pct)


def test_a_copy_that_moves_more_bytes_is_changed_work() -> None:
    copy = WorkRow(
        OP, "aten::copy_", "[[2,4,8,8],[2,4,8,8]]", "float", 2, 0.004, (0.004,) * 3, 2048
    )
    work = diff(_sig(CONV, copy), _sig(CONV, replace(copy, bytes=4096)))
    rows = [(r.row.name, r.row.bytes) for r in work.rows]
    assert not work.identical and rows[0] == ("aten::copy_", 4096)


def test_the_interval_counts_the_spread_of_both_sides() -> None:
    """Welch: var(head)/n + var(base)/m. A removed op whose base steps vary gives an interval as
    wide as the base's spread, though the head (without it) has none."""
    varied = WorkRow(OP, "aten::mul", "[[2,4,8,8],[]]", "float", 1, 0.006, (0.004, 0.006, 0.008))
    work = diff(_sig(CONV, NORM, varied), _sig(CONV, NORM, span=0.094))
    half = (
        4.303 * (0.002**2 / 3) ** 0.5 / 0.1 * 100
    )  # t(0.975, 2 df) * sd / sqrt(3), in % of the step
    assert work.interval_pct == pytest.approx((-6.0 - half, -6.0 + half))


def test_the_terminal_line_says_the_work_changed_even_when_the_test_passed() -> None:
    from pytest_i2v.verdict.explain import work_note

    tanh = WorkRow(OP, "aten::tanh", "[[2,4,8,8]]", "float", 100, 0.002, (0.002,) * 3)
    mm = WorkRow(OP, "aten::mm", "[[8,8],[8,8]]", "float", 100, 0.006, (0.006,) * 3)
    work = diff(_sig(CONV, NORM), _sig(CONV, NORM, mm, tanh, span=0.108))
    assert (
        work_note(work, work_verdict(work, 10.0), 10.0)
        == "work changed +8.0 % est. (within 10 %): aten::mm +100, aten::tanh +100"
    )
    assert work_note(work, work_verdict(work, 5.0), 5.0).startswith(
        "work changed +8.0 % est. (beyond 5 %): aten::mm +100"
    )
    assert (
        work_note(diff(_sig(CONV), _sig(CONV)), None, 5.0) == ""
    )  # identical work: nothing to say
    assert work_note(None, None, 5.0) == ""
    upcast = diff(_sig(CONV, NORM), _sig(CONV, replace(NORM, dtypes="double")))
    assert work_note(upcast, None, 5.0).endswith(
        ": aten::native_layer_norm (double) +2, aten::native_layer_norm (float) -2"
    )
