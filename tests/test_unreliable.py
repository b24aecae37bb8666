"""The gate's "unreliable" answer: a regression that only the throttled repeats show does not fail
the test, cannot be read as a pass, and every output says so; the reports show the GPU's clock
beside the time."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.profiles import load_profiles
from pytest_i2v.record.baseline_run import run_from_record
from pytest_i2v.record.parts import PeakMemory, Stages
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.html import render_html
from pytest_i2v.report.markdown import md, render_markdown
from pytest_i2v.session.gate_loop import GateLoop
from pytest_i2v.session.plan import RunPlan
from pytest_i2v.session.settings import Settings
from pytest_i2v.verdict.baseline_records import config_id
from pytest_i2v.verdict.baseline_store import (
    AcceptedRun,
    baseline_path,
    update_baseline,
)
from pytest_i2v.verdict.conditions import RepeatConditions, assess
from pytest_i2v.verdict.gate import MEMORY_METRICS, RegressionVerdict
from pytest_i2v.verdict.outcome import (
    OUTCOME_KINDS,
    SEVERITY,
    DecisionInputs,
    Outcome,
    decide,
    headline,
)
from tests import report_fixtures, test_outcomes
from tests.test_outcomes import check_agreement

PROFILE = "h100-sxm"
NODEID = "suite/test_gen.py::test_gen"
CONFIG = {
    "pipeline": "i2vgen-xl",
    "width": 512,
    "height": 512,
    "frames": 16,
    "steps": 10,
    "guidance": 9.0,
    "fps": 8,
    "dtype": "fp16",
    "memory": [],
    "prompt": "p",
    "seed": 0,
    "resolution": "512p",
}
FINGERPRINT = {"gpu_name": "NVIDIA H100 80GB HBM3", "driver": "560.35", "torch": "2.11.0"}
STEPS = 10
GIB = 2**30
THERMAL = RepeatConditions(
    sm_clock_mhz=1410.0, reasons=("thermal",)
)  # the card held back to 1410 MHz
STABLE = RepeatConditions(sm_clock_mhz=1980.0)


def record(totals: Sequence[float], allocated_gib: float = 8.0) -> GenerationRecord:
    """A measured record from its repeats' totals: each repeat's steps and decode
    consistent with its total."""
    steps = [[(total - 0.2) / STEPS] * STEPS for total in totals]
    time_s = float(statistics.median(totals))
    return GenerationRecord(
        nodeid=NODEID,
        config=dict(CONFIG),
        outcome="ok",
        repeats=len(totals),
        warmup=1,
        time_s=time_s,
        time_samples_s=list(totals),
        gen_fps=16 / time_s,
        stages=Stages(
            encode_s=0.1,
            step_s=float(statistics.median(s for run in steps for s in run)),
            step_samples_s=steps,
            decode_s=0.1,
            encode_samples_s=[0.1] * len(totals),
            decode_samples_s=[0.1] * len(totals),
        ),
        peak_memory=PeakMemory(
            allocated_bytes=int(allocated_gib * GIB),
            reserved_bytes=int(allocated_gib * GIB) + GIB,
            device_bytes=None,
            host_rss_bytes=3 * GIB,
        ),
        load_s=None,
        config_id=config_id(CONFIG),
        fingerprint=dict(FINGERPRINT),
    )


def throttled(rec: GenerationRecord, marked: Sequence[int]) -> GenerationRecord:
    """The record as the GPU measured it: the ``marked`` repeats under thermal throttling."""
    conditions = assess([THERMAL if i in marked else STABLE for i in range(rec.repeats)])
    return replace(rec, conditions=conditions)


# Three of five repeats 50 % slower than the baseline's 1 s: the median regresses.
SLOW_MIDDLE = (1.0, 1.5, 1.5, 1.5, 1.01)


@pytest.fixture
def baseline_dir(tmp_path: Path) -> Path:
    runs = [
        AcceptedRun(
            NODEID,
            dict(CONFIG),
            dict(FINGERPRINT),
            run_from_record(record([t] * 5), None),
        )
        for t in (0.99, 1.0, 1.01, 1.0, 1.005)
    ]
    update_baseline(baseline_path(tmp_path, PROFILE), PROFILE, runs)
    return tmp_path


def gate_loop(directory: Path, mode: str = "enforce") -> GateLoop:
    profile = load_profiles()[PROFILE]
    return GateLoop(Settings(gate_mode=mode), RunPlan(profile, "cuda:0", "fp16", "hub"), directory)


def run(loop: GateLoop, rec: GenerationRecord) -> tuple[GenerationRecord, int]:
    """The gate around one test, as the plugin runs it; the number of measurements it took."""
    calls: list[None] = []

    def measure() -> GenerationRecord:
        calls.append(None)
        return rec

    return loop.run(measure, {}), len(calls)


def decision(rec: GenerationRecord) -> Outcome:
    assert rec.decision is not None
    return rec.decision


def verdict(rec: GenerationRecord) -> RegressionVerdict:
    assert rec.verdict is not None
    return rec.verdict


def kind(rec: GenerationRecord) -> str:
    return decision(rec).kind


def test_a_baseline_run_keeps_the_clock_and_says_when_it_ran_throttled() -> None:
    """Accepted all the same (a re-baseline on a hot runner must record), but the stored run says
    so, and the re-baseline PR shows it to the reviewer."""
    stored = run_from_record(throttled(record(list(SLOW_MIDDLE)), marked=(1, 2, 3)), None)
    assert (
        stored["sm_clock_mhz"] == 1410.0
        and stored["conditions"] == "throttled (thermal, 3 of 5 repeats)"
    )
    steady = run_from_record(throttled(record([1.0] * 5), marked=()), None)
    assert steady["sm_clock_mhz"] == 1980.0 and "conditions" not in steady
    assert "sm_clock_mhz" not in run_from_record(record([1.0] * 5), None)  # the CPU: nothing to say


# -- the decision ----------------------------------------------------------------------------------


def test_a_regression_only_in_throttled_repeats_is_unreliable_and_does_not_fail(
    baseline_dir: Path,
) -> None:
    loop = gate_loop(baseline_dir)
    decided, measurements = run(loop, throttled(record(SLOW_MIDDLE), marked=(1, 2, 3)))
    assert measurements == 2  # flagged, so re-measured first, as any regression
    assert verdict(decided).verdict == "regressed"
    assert {m.metric for m in verdict(decided).metrics if m.verdict == "regressed"} == {
        "time_s",
        "step_s",
    }
    outcome = decision(decided)
    assert (outcome.kind, outcome.fails) == ("unreliable", False)
    assert outcome.reason.startswith(
        "the slow repeats ran throttled (thermal, 3 of 5 repeats); "
        "the 2 stable repeats are within the bar (total time median 1.00 s under the bar "
    )
    assert outcome.reason.endswith("re-run on a stable GPU (--i2v-lock-clocks)")
    assert verdict(decided).unreliable in outcome.reason
    fails, line = headline([outcome], PROFILE, "enforce")
    assert not fails
    assert line == (
        "the gate cannot tell: 1 unreliable (slow only in throttled repeats: "
        "re-run on a stable GPU (--i2v-lock-clocks))"
    )


def test_the_explain_section_says_why_and_what_to_do(baseline_dir: Path) -> None:
    loop = gate_loop(baseline_dir)
    decided, _ = run(loop, throttled(record(SLOW_MIDDLE), marked=(1, 2, 3)))
    section = loop.explain(decided)
    assert section.startswith(
        "i2v gate: unreliable (slow only in throttled repeats) (profile h100-sxm"
    )
    assert (
        "  unreliable: the slow repeats ran throttled (thermal, 3 of 5 repeats); "
        "the 2 stable repeats" in section
    )
    assert re.search(r"total time median 1\.00 s under the bar 1\.\d\d s", section)
    assert re.search(r"per-step time median 80\.\d ms under the bar \d+\.\d ms", section)
    assert "re-run on a stable GPU (--i2v-lock-clocks); do not re-baseline from this run" in section
    assert "--i2v-update-baselines" not in section  # a throttled run is no baseline


def test_the_same_slowdown_on_a_stable_gpu_regresses(baseline_dir: Path) -> None:
    decided, _ = run(gate_loop(baseline_dir), throttled(record(SLOW_MIDDLE), marked=()))
    assert (kind(decided), verdict(decided).unreliable) == ("regressed", None)
    assert "unreliable" not in gate_loop(baseline_dir).explain(decided)


def test_slow_stable_repeats_beside_throttled_ones_still_regress(baseline_dir: Path) -> None:
    # Repeats 0, 3 and 4 ran stable and are slow too: the throttling is not why the run is slow.
    decided, _ = run(
        gate_loop(baseline_dir), throttled(record((1.5, 1.6, 1.6, 1.5, 1.0)), marked=(1, 2))
    )
    assert kind(decided) == "regressed" and decision(decided).fails


def test_a_memory_regression_is_never_excused_by_throttling(baseline_dir: Path) -> None:
    decided, _ = run(
        gate_loop(baseline_dir),
        throttled(record(SLOW_MIDDLE, allocated_gib=12.0), marked=(1, 2, 3)),
    )
    regressed = {
        m.metric for m in verdict(decided).metrics if m.verdict == "regressed" and m.gating
    }
    assert regressed & set(MEMORY_METRICS)  # the headline peak (peak.py) gates
    assert kind(decided) == "regressed"


@pytest.mark.parametrize("marked", [range(5), range(4)], ids=["every repeat", "all but one"])
def test_without_two_stable_repeats_a_slowdown_still_regresses(
    baseline_dir: Path, marked: range
) -> None:
    """Nothing stable shows what the change costs: a change that makes every repeat draw more power
    and hit the cap is still the change's, and one stable repeat is not a measurement."""
    decided, _ = run(gate_loop(baseline_dir), throttled(record((1.5,) * 5), marked=marked))
    assert kind(decided) == "regressed" and decision(decided).fails
    assert verdict(decided).unreliable is None


def test_baseline_diff_says_unreliable_where_the_gate_does(baseline_dir: Path) -> None:
    from pytest_i2v.cli_baseline import diff_results
    from pytest_i2v.verdict.baseline_store import read_baseline

    baseline = read_baseline(baseline_path(baseline_dir, PROFILE), PROFILE)
    hot = throttled(record(SLOW_MIDDLE), marked=(1, 2, 3)).to_dict()
    steady_but_slow = throttled(record((1.5, 1.6, 1.6, 1.5, 1.0)), marked=(1, 2)).to_dict()
    assert (
        f"| {NODEID} | unreliable (the slow repeats ran throttled (thermal, 3 of 5 repeats);"
        in diff_results(baseline, {"records": [hot]})
    )
    assert f"| {NODEID} | regressed |" in diff_results(baseline, {"records": [steady_but_slow]})


def test_a_cpu_record_without_conditions_is_judged_as_before(baseline_dir: Path) -> None:
    loop = gate_loop(baseline_dir)
    decided, measurements = run(loop, record(SLOW_MIDDLE))
    assert decided.conditions is None and measurements == 2
    assert verdict(decided).unreliable is None
    assert decided.decision == decide(
        DecisionInputs("ok", [], "regressed", "warn", "enforce", PROFILE, confirmed=True)
    )


def test_report_mode_says_unreliable_not_not_enforced(baseline_dir: Path) -> None:
    loop = gate_loop(baseline_dir, mode="report")
    decided, measurements = run(loop, throttled(record(SLOW_MIDDLE), marked=(1, 2, 3)))
    assert measurements == 1  # report mode never re-measures
    assert kind(decided) == "unreliable"
    assert headline([decision(decided)], PROFILE, "report") == (
        False,
        "not enforced on the h100-sxm profile: 1 unreliable (slow only in throttled repeats: "
        "re-run on a stable GPU (--i2v-lock-clocks))",
    )
    cpu, _ = run(gate_loop(baseline_dir, mode="report"), record(SLOW_MIDDLE))
    assert kind(cpu) == "not-enforced"


def test_decide_only_excuses_a_time_regression() -> None:
    line = "the slow repeats ran throttled (power, 3 of 5 repeats)"
    assert (
        decide(DecisionInputs("ok", [], "regressed", "warn", "enforce", "p", unreliable=line)).kind
        == "unreliable"
    )
    assert (
        decide(DecisionInputs("ok", [], "pass", "warn", "enforce", "p", unreliable=line)).kind
        == "passed"
    )
    assert (
        decide(DecisionInputs("oom", [], None, "warn", "enforce", "p", unreliable=line)).kind
        == "out-of-memory"
    )
    assert (
        decide(
            DecisionInputs(
                "ok",
                ["time budget 1 s exceeded"],
                "regressed",
                "warn",
                "enforce",
                "p",
                unreliable=line,
            )
        ).kind
        == "over-budget"
    )
    assert (
        decide(DecisionInputs("ok", [], "regressed", "warn", "update", "p", unreliable=line)).kind
        == "recorded"
    )
    assert "unreliable" in OUTCOME_KINDS and SEVERITY.index("regressed") < SEVERITY.index(
        "unreliable"
    ) < SEVERITY.index("passed")


def test_the_headline_counts_unreliable_beside_failures_and_would_haves() -> None:
    unreliable = decide(
        DecisionInputs("ok", [], "regressed", "warn", "enforce", "p", unreliable="x")
    )
    regressed = decide(DecisionInputs("ok", [], "regressed", "warn", "enforce", "p"))
    fails, line = headline([regressed, unreliable], "p", "enforce")
    assert fails and line == (
        "the gate fails: 1 regressed; also 1 unreliable (slow only in throttled repeats: "
        "re-run on a stable GPU (--i2v-lock-clocks))"
    )
    would = decide(DecisionInputs("ok", [], "regressed", "warn", "report", "p"))
    assert headline([would, unreliable], "p", "report")[1] == (
        "not enforced on the p profile: 1 would have failed (1 would have regressed); "
        "also 1 unreliable (slow only in throttled repeats: "
        "re-run on a stable GPU (--i2v-lock-clocks))"
    )
    assert (
        "passes"
        not in headline(
            [unreliable, decide(DecisionInputs("ok", [], "pass", "warn", "enforce", "p"))],
            "p",
            "enforce",
        )[1]
    )


# -- the reports: the clock beside the time --------------------------------------------------------


def document_with_conditions() -> tuple[dict[str, Any], dict[str, Any]]:
    """The report fixture with its 256p record measured on a throttled GPU and judged unreliable."""
    document = report_fixtures.document()
    rec = document["records"][0]
    rec["conditions"] = assess([STABLE, THERMAL, THERMAL, THERMAL, STABLE]).to_dict()
    rec["verdict"]["verdict"] = rec["verdict"]["metrics"][0]["verdict"] = "regressed"
    rec["verdict"]["metrics"][0]["delta_pct"] = 30.0
    rec["decision"] = decide(
        DecisionInputs(
            "ok",
            [],
            "regressed",
            "warn",
            "enforce",
            "h100-80gb",
            unreliable="the slow repeats ran throttled (thermal, 3 of 5 repeats)",
        )
    ).to_dict()
    fails, line = headline(
        [Outcome.from_dict(r["decision"]) for r in document["records"]], "h100-80gb", "enforce"
    )
    document["gate"] = {"mode": "enforce", "fails": fails, "headline": line}
    return document, rec


CLOCK = "1410 MHz, throttled (thermal, 3 of 5 repeats)"


def test_markdown_shows_the_clock_beside_the_time() -> None:
    document, rec = document_with_conditions()
    text = render_markdown(document)
    assert (
        "| test | time | Δ time | SM clock | step | Δ step | peak memory | Δ peak | latency "
        "| outcome |" in text
    )
    assert f"| {md(rec['nodeid'])} | 9.10 s | +30.0 % | {md(CLOCK)} | " in text
    # the other records have no conditions: an empty cell, not a made-up clock
    assert f"| {md(document['records'][2]['nodeid'])} | 33.60 s | +0.0 % | - | " in text
    assert "### Unreliable (slow only under throttling)" in text
    assert re.search(rf"\| {re.escape(md(rec['nodeid']))} \|.*\| unreliable \|$", text, re.M)
    assert (
        f"| {md(rec['nodeid'])} | {md(CLOCK)} | {md('total time +30.0 %')} | "
        f"{md('the slow repeats ran throttled')}" in text
    )
    assert md("also 1 unreliable (slow only in throttled repeats") in text  # the headline


def test_html_shows_the_clock_beside_the_time() -> None:
    document, rec = document_with_conditions()
    html = render_html(document)
    assert '<th class="sortable">median time</th><th class="sortable">SM clock</th>' in html
    row = re.search(
        r'<tr class="unreliable" data-verdict="unreliable">\s*'
        rf"<td><code>{re.escape(rec['nodeid'])}</code>.*?</tr>",
        html,
        re.S,
    )
    assert row is not None
    assert re.search(
        rf'>9\.10 s</td>\s*<td class="clock" data-sort="1410\.0">{re.escape(CLOCK)}</td>',
        row.group(0),
    )
    assert 'data-verdict="unreliable">unreliable: 1</span>' in html
    assert '<section id="unreliable">' in html


def test_an_unreliable_run_is_never_shown_as_a_pass() -> None:
    document, rec = document_with_conditions()
    document["records"] = [rec, document["records"][2]]  # unreliable and passed: nothing fails
    fails, line = headline(
        [Outcome.from_dict(r["decision"]) for r in document["records"]], "h100-80gb", "enforce"
    )
    document["gate"] = {"mode": "enforce", "fails": fails, "headline": line}
    assert not fails and line.startswith("the gate cannot tell: 1 unreliable")
    assert render_markdown(document).startswith(f"## pytest-i2v: ⚠️ {md(line)}")
    assert f'<div class="banner warn" id="verdict-line">{line}</div>' in render_html(document)


def test_cpu_only_reports_have_no_clock_column() -> None:
    document = report_fixtures.document()
    assert "SM clock" not in render_markdown(document) and "SM clock" not in render_html(document)
    assert '<section id="unreliable">' not in render_html(document)


# -- end to end: the six outputs agree -------------------------------------------------------------
# A fake GPU: each measurement's repeats get fixed times, and the slow ones the thermal
# throttling measure.device would report on a hot card. The times are fixed, not slept: what is
# tested is the plugin's path from the decision to every output, which must not hang on this
# shared machine's noise.
CONFTEST = """
import dataclasses
import os
import statistics

import pytest

from pytest_i2v.verdict.conditions import RepeatConditions, assess
from pytest_i2v.plugin import RUN_KEY

SLOW = (0, 2, 4)  # of 5 repeats: the median is slow, repeats 1 and 3 are not


def hot_gpu(record, slow):
    steps = record.config["steps"]
    totals = [1.0 if i in slow else 0.1 for i in range(record.repeats)]
    step_samples = [[(total - 0.02) / steps] * steps for total in totals]
    time_s = statistics.median(totals)
    stages = dataclasses.replace(
        record.stages, encode_s=0.01, decode_s=0.01, step_samples_s=step_samples,
        step_s=statistics.median(s for run in step_samples for s in run),
        encode_samples_s=[0.01] * len(totals), decode_samples_s=[0.01] * len(totals))
    hot, cool = RepeatConditions(1410.0, reasons=("thermal",)), RepeatConditions(1980.0)
    repeats = [hot if i in slow else cool for i in range(record.repeats)]
    gen_fps = record.config["frames"] / time_s
    return dataclasses.replace(record, time_s=time_s, time_samples_s=totals, gen_fps=gen_fps,
                               stages=stages, conditions=assess(repeats))


@pytest.fixture(autouse=True)
def fake_gpu(request, monkeypatch):
    run = request.config.stash[RUN_KEY]
    measure = run.recorder.measure
    slow = SLOW if request.node.name in os.environ.get("THROTTLED", "").split(",") else ()
    monkeypatch.setattr(
        run.recorder, "measure", lambda *args, **kwargs: hot_gpu(measure(*args, **kwargs), slow)
    )
    # Made-up times, so a made-up machine speed too, for the whole session (the end probe
    # included): a real probe on a busy machine once called the run "not comparable" and hid the
    # throttled slowdown.
    probe = {"gemm_gflops": 100.0, "copy_gbs": 20.0, "tiny_ops_per_ms": 200.0}
    run.device.simulated_probe = lambda: probe
"""

TESTS = """
import pytest

SMALL = dict(resolution="256p", frames=2, steps=10)

@pytest.mark.i2v(**SMALL, seed=1)
def test_regresses(i2v_run):
    i2v_run()

@pytest.mark.i2v(**SMALL, seed=3)
def test_steady(i2v_run):
    i2v_run()
"""
# test_outcomes' profile and arguments, with one re-measurement of a flagged test and five repeats.
CPU_PROFILE = test_outcomes.CPU_PROFILE.replace("confirm: 0", "confirm: 1")
ARGS = ("--i2v-repeats", "5", *test_outcomes.ARGS[2:])
E2E_CLOCK = "1410 MHz, throttled (thermal, 3 of 5 repeats)"


def test_six_outputs_agree_on_unreliable(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    i2v_project.makeconftest(CONFTEST)
    i2v_project.makepyfile(test_kinds=TESTS)
    (i2v_project.path / "profiles").mkdir()
    (i2v_project.path / "profiles" / "cpu.yaml").write_text(CPU_PROFILE)
    monkeypatch.delenv("THROTTLED", raising=False)
    i2v_project.runpytest(*ARGS, "--i2v-update-baselines").assert_outcomes(passed=2)

    monkeypatch.setenv("THROTTLED", "test_regresses")
    result = i2v_project.runpytest(*ARGS, "--i2v-gate-mode", "enforce")
    check_agreement(i2v_project, result, {"test_regresses": "unreliable", "test_steady": "passed"})
    document = json.loads((i2v_project.path / "r.json").read_text())
    hot = document["records"][0]
    assert hot["conditions"]["summary"] == "throttled (thermal, 3 of 5 repeats)"
    assert any(
        note.startswith("re-measured (1/1, in a fresh process) after a regressed verdict")
        for note in hot["notes"]
    )
    assert document["gate"]["headline"].startswith("the gate cannot tell: 1 unreliable")
    assert f"| {md(E2E_CLOCK)} |" in (i2v_project.path / "r.md").read_text()
    assert E2E_CLOCK in (i2v_project.path / "r.html").read_text()
    result.stdout.fnmatch_lines(
        [f"*test_regresses: * | median * over 5 repeats (*), SM clock {E2E_CLOCK}, *"]
    )  # the terminal

    result = i2v_project.runpytest(*ARGS, "--i2v-gate-mode", "report")
    check_agreement(i2v_project, result, {"test_regresses": "unreliable", "test_steady": "passed"})
