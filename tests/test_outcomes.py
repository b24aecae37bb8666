"""One outcome decision (``outcome.decide``), read by every output: the terminal summary, JUnit
properties, the JSON, the Markdown, the HTML and the exit code agree in every outcome kind."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from pytest_i2v.report.markdown import md
from pytest_i2v.verdict.outcome import OUTCOME_KINDS, DecisionInputs, Outcome, decide, headline

# -- the decision itself (plain unit tests) ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kind", "fails"),
    [
        (("ok", [], "pass", "warn", "enforce"), "passed", False),
        (("ok", [], "new", "warn", "enforce"), "passed", False),
        (("ok", [], "regressed", "warn", "enforce"), "regressed", True),
        (("ok", [], "improved", "warn", "enforce"), "improved", False),
        (("ok", ["time budget 1 s exceeded"], "pass", "warn", "enforce"), "over-budget", True),
        (("ok", ["time budget 1 s exceeded"], "pass", "warn", "update"), "over-budget", True),
        (("oom", [], None, "warn", "report"), "out-of-memory", True),
        (("ok", [], "env-changed", "fail", "enforce"), "env-changed", True),
        (("ok", [], "env-changed", "warn", "enforce"), "env-changed", False),
        (("ok", [], "regressed", "warn", "report"), "not-enforced", False),
        (("ok", [], "env-changed", "fail", "report"), "not-enforced", False),
        (("ok", [], "regressed", "warn", "update"), "recorded", False),
    ],
)
def test_decide(args: tuple, kind: str, fails: bool) -> None:  # type: ignore[type-arg]
    outcome = decide(DecisionInputs(*args, profile="cpu"))
    assert (outcome.kind, outcome.fails) == (kind, fails)
    assert Outcome.from_dict(outcome.to_dict()) == outcome


def test_every_kind_is_reachable() -> None:
    reached = {
        decide(DecisionInputs("oom", [], None, "warn", "enforce", "p")).kind,
        decide(DecisionInputs("ok", ["x"], None, "warn", "enforce", "p")).kind,
    }
    for verdict in ("pass", "regressed", "improved", "env-changed"):
        for mode in ("enforce", "report", "update"):
            reached.add(decide(DecisionInputs("ok", [], verdict, "fail", mode, "p")).kind)  # type: ignore[arg-type]
    # a regression that only the throttled repeats show (throttling.throttling_excuse)
    reached.add(
        decide(
            DecisionInputs(
                "ok",
                [],
                "regressed",
                "warn",
                "enforce",
                "p",
                unreliable="the slow repeats ran throttled",
            )
        ).kind
    )
    # an output beyond its bar (verdict.fidelity)
    reached.add(
        decide(
            DecisionInputs("ok", [], "improved", "warn", "enforce", "p", fidelity="changed")
        ).kind
    )
    assert reached == set(OUTCOME_KINDS)


def test_a_report_only_headline_cannot_be_read_as_a_pass() -> None:
    outcomes = [decide(DecisionInputs("ok", [], "regressed", "warn", "report", "cpu"))] * 2 + [
        decide(DecisionInputs("ok", [], "pass", "warn", "report", "cpu"))
    ]
    fails, line = headline(outcomes, "cpu", "report")
    assert (
        not fails
        and line == "not enforced on the cpu profile: 2 would have failed (2 would have regressed)"
    )
    assert "pass" not in line
    assert headline(
        [decide(DecisionInputs("oom", [], None, "warn", "enforce", "cpu"))], "cpu", "enforce"
    ) == (True, "the gate fails: 1 out-of-memory")


# -- the six outputs, through the plugin ----------------------------------------------------------
CONFTEST = """
import os

import pytest
import torch

from pytest_i2v.simulated_plugin import add_work


def pytest_i2v_environment(environment):
    environment["driver"] = os.environ.get("FAKE_DRIVER", "550.54")


@pytest.fixture(autouse=True)
def inject(request):
    if request.node.name in os.environ.get("DRIFT", "").split(","):
        pipe = request.getfixturevalue("i2v_pipeline")

        def drift(module, args, output):  # the prediction off by 20 %: another video
            return (output[0] * 0.8, *output[1:]) if isinstance(output, tuple) else output * 0.8

        handle = pipe.unet.register_forward_hook(drift)
        yield
        handle.remove()
        return
    slow = os.environ.get("SLOW", "").split(",")
    if request.node.name not in slow and request.node.name != "test_oom":
        yield
        return
    pipe = request.getfixturevalue("i2v_pipeline")

    def hook(module, args):
        if request.node.name == "test_oom":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        add_work(0.08)  # virtual seconds: the verdict follows the injection, not the machine

    handle = pipe.unet.register_forward_pre_hook(hook)
    yield
    handle.remove()
"""

TESTS = """
import pytest

SMALL = dict(resolution="256p", frames=2, steps=10)

@pytest.mark.i2v(**SMALL, seed=1)
def test_regresses(i2v_run):
    i2v_run()

@pytest.mark.i2v(**SMALL, seed=2)
def test_improves(i2v_run):
    i2v_run()

@pytest.mark.i2v(**SMALL, seed=3)
def test_steady(i2v_run):
    i2v_run()

@pytest.mark.time_budget(0.000001)
@pytest.mark.i2v(**SMALL, seed=4)
def test_over_budget(i2v_run):
    i2v_run()

@pytest.mark.i2v(**SMALL, seed=5)
def test_oom(i2v_run):
    i2v_run()

@pytest.mark.i2v(**SMALL, seed=6)
def test_drifts(i2v_run):
    i2v_run()
"""

CPU_PROFILE = """
name: cpu
memory_gb: 24
device: cpu
model: tiny
dtype: fp32
scaling: {size_divisor: 8, steps_divisor: 5}
gate: {min_effect: 1.0, tolerance: 1.0, prior_noise: 0.08, memory_rel: 0.05, memory_abs_mib: 96, \
confirm: 0}
"""
ARGS = (
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
    "--i2v-markdown",
    "r.md",
    "--i2v-report",
    "r.html",
    "--junitxml",
    "junit.xml",
    "-p",
    "no:randomly",
)


def outputs(project: pytest.Pytester, result: pytest.RunResult) -> dict[str, dict[str, str]]:
    """Each output's view: test name -> outcome kind."""
    path = project.path
    names = (
        "test_regresses",
        "test_improves",
        "test_steady",
        "test_over_budget",
        "test_oom",
        "test_drifts",
    )
    document = json.loads((path / "r.json").read_text())
    views: dict[str, dict[str, str]] = {
        "json": {r["nodeid"].split("::")[1]: r["decision"]["kind"] for r in document["records"]}
    }
    views["terminal"] = {
        m.group(1): m.group(2)
        for m in re.finditer(
            r"::(test_\w+): .* \| ([a-z-]+)(?: \| output .*)?$", result.stdout.str(), re.M
        )
    }
    junit = ET.parse(path / "junit.xml")
    views["junit"] = {
        case.get("name", ""): prop.get("value", "")
        for case in junit.iter("testcase")
        for prop in case.iter("property")
        if prop.get("name") == "i2v_outcome"
    }
    markdown = (path / "r.md").read_text().split("### Results", 1)[1]
    views["markdown"] = {
        n: m.group(1)
        for n in names  # Markdown escapes the underscores
        if (
            m := re.search(
                rf"{re.escape(n.replace('_', chr(92) + '_'))} \|.*\| ([a-z-]+) \|$", markdown, re.M
            )
        )
    }
    html = (path / "r.html").read_text()
    views["html"] = {
        n: m.group(1)
        for n in names
        if (
            m := re.search(
                rf'<tr class="[a-z-]+" data-verdict="([a-z-]+)">\s*<td><code>[^<]*::{n}</code>',
                html,
            )
        )
    }
    return views


def check_agreement(
    project: pytest.Pytester, result: pytest.RunResult, expected: dict[str, str]
) -> None:
    views = outputs(project, result)
    for name, view in views.items():
        assert view == expected, f"{name} disagrees: {view}"
    fails = any(decide_fails(kind) for kind in expected.values())
    assert result.ret == (1 if fails else 0)
    document = json.loads((project.path / "r.json").read_text())
    assert document["gate"]["fails"] is fails
    line = document["gate"]["headline"]
    assert (
        md(line) in (project.path / "r.md").read_text()
        and line in (project.path / "r.html").read_text()
    )
    assert f"i2v: {line}" in result.stdout.str()
    outcomes = result.parseoutcomes()
    failed = sum(1 for kind in expected.values() if decide_fails(kind))
    assert (
        outcomes.get("failed", 0) == failed and outcomes.get("passed", 0) == len(expected) - failed
    )


def decide_fails(kind: str) -> bool:
    return kind in (
        "regressed",
        "over-budget",
        "out-of-memory",
        "env-changed",
        "output-changed",
    )  # env-changed: under policy fail here


def test_six_outputs_agree_with_the_exit_code_in_every_kind(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, virtual_time: tuple[str, ...]
) -> None:
    """On the virtual clock: the regression and the improvement are exactly what was injected."""
    i2v_project.makeconftest(CONFTEST)
    i2v_project.makepyfile(test_kinds=TESTS)
    (i2v_project.path / "profiles").mkdir()
    (i2v_project.path / "profiles" / "cpu.yaml").write_text(CPU_PROFILE)
    monkeypatch.setenv(
        "SLOW", "test_improves"
    )  # recorded slow: a normal run later is an improvement
    result = i2v_project.runpytest(*ARGS, *virtual_time, "--i2v-update-baselines")
    check_agreement(
        i2v_project,
        result,
        {
            "test_regresses": "recorded",
            "test_improves": "recorded",
            "test_steady": "recorded",
            "test_over_budget": "over-budget",
            "test_oom": "out-of-memory",
            "test_drifts": "recorded",
        },
    )

    monkeypatch.setenv("SLOW", "test_regresses")
    monkeypatch.setenv("DRIFT", "test_drifts")
    result = i2v_project.runpytest(*ARGS, *virtual_time, "--i2v-gate-mode", "enforce")
    check_agreement(
        i2v_project,
        result,
        {
            "test_regresses": "regressed",
            "test_improves": "improved",
            "test_steady": "passed",
            "test_over_budget": "over-budget",
            "test_oom": "out-of-memory",
            "test_drifts": "output-changed",
        },
    )

    result = i2v_project.runpytest(
        *ARGS, *virtual_time, "--i2v-gate-mode", "report", "-k", "regresses or steady or drifts"
    )
    check_agreement(
        i2v_project,
        result,
        {"test_regresses": "not-enforced", "test_steady": "passed", "test_drifts": "not-enforced"},
    )
    assert json.loads((i2v_project.path / "r.json").read_text())["gate"]["headline"] == (
        "not enforced on the cpu profile: 2 would have failed (1 output changed, 1 would have "
        "regressed)"
    )

    monkeypatch.setenv("SLOW", "")
    monkeypatch.setenv("DRIFT", "")
    monkeypatch.setenv("FAKE_DRIVER", "560.35")
    result = i2v_project.runpytest(
        *ARGS,
        *virtual_time,
        "--i2v-gate-mode",
        "enforce",
        "--i2v-env-policy",
        "fail",
        "-k",
        "steady",
    )
    check_agreement(i2v_project, result, {"test_steady": "env-changed"})


# -- the output as the decision's third input ----------------------------------------------------
CHANGED_LINE = "PSNR 35.0 dB < 80.0 dB against the baseline's output, 2 frames"


@pytest.mark.parametrize(
    ("verdict", "mode", "fidelity", "kind", "fails"),
    [
        ("improved", "enforce", "changed", "output-changed", True),  # faster but different
        ("regressed", "enforce", "changed", "output-changed", True),
        ("pass", "enforce", "changed", "output-changed", True),
        ("pass", "report", "changed", "not-enforced", False),
        ("pass", "update", "changed", "recorded", False),
        ("improved", "enforce", "held", "improved", False),
        ("improved", "enforce", "nondeterministic", "passed", False),  # improved only if held
        ("regressed", "enforce", "nondeterministic", "regressed", True),
        ("pass", "enforce", None, "passed", False),
    ],
)
def test_the_output_is_judged_whatever_the_time_did(
    verdict: str, mode: str, fidelity: str | None, kind: str, fails: bool
) -> None:
    inputs = DecisionInputs(
        "ok",
        [],
        verdict,
        "warn",
        mode,
        "cpu",
        fidelity=fidelity,
        fidelity_line=CHANGED_LINE,  # type: ignore[arg-type]
    )
    outcome = decide(inputs)
    assert (outcome.kind, outcome.fails) == (kind, fails)
    if fidelity == "changed" and mode != "update":
        assert CHANGED_LINE in outcome.reason
        assert ("faster" in outcome.reason) == (verdict == "improved")
    if fidelity == "nondeterministic" and kind == "passed":
        assert "nondeterministic" in outcome.reason and "improved" not in outcome.reason
    if mode == "report":
        assert outcome.would_have == "output-changed"
    # a changed output is never re-measured: its time changes nothing
    from pytest_i2v.verdict.outcome import needs_confirmation

    assert not needs_confirmation(inputs) or fidelity != "changed"
