"""The output as the gate's third input: the bar a test is held to (the profile's ``fidelity:``,
the ``i2v_fidelity`` mark, lossy by config), nondeterminism, and a sibling test's output as the
reference (``verdict.fidelity``, ``record.judgement``)."""

from __future__ import annotations

import json

import pytest

from pytest_i2v.generation.fidelity_mark import FidelityRequest, i2v_fidelity
from pytest_i2v.verdict.fidelity import (
    FidelityBar,
    FidelityFigures,
    FidelitySettings,
    bar_for,
    fidelity_verdict,
)

SETTINGS = FidelitySettings(FidelityBar(80.0, 0.999), FidelityBar(30.0, 0.9))
CACHE_LIKE = FidelityFigures(8, False, 41.9, 0.97, 0.999)  # tiny I2VGen-XL's naive cache
ONE_THREAD = FidelityFigures(8, False, 89.0, 1.0, 1.0)  # one thread instead of two


def test_lossless_code_is_held_to_the_lossless_bar_and_a_cache_to_the_lossy_one() -> None:
    bar, lossy = bar_for(SETTINGS, None, lossy_config=False)
    assert (bar, lossy) == (SETTINGS.lossless, False)
    assert fidelity_verdict(CACHE_LIKE, bar, None) == "changed"
    assert fidelity_verdict(ONE_THREAD, bar, None) == "held"
    bar, lossy = bar_for(SETTINGS, None, lossy_config=True)  # a cache or fp8 in the config
    assert lossy and fidelity_verdict(CACHE_LIKE, bar, None) == "held"
    marked, lossy = bar_for(SETTINGS, FidelityRequest(lossy=True), lossy_config=False)
    assert lossy and marked == SETTINGS.lossy


def test_the_mark_overrides_the_profiles_figures() -> None:
    bar, _ = bar_for(SETTINGS, i2v_fidelity(min_psnr_db=40.0), lossy_config=False)
    assert bar == FidelityBar(40.0, 0.999)
    assert fidelity_verdict(CACHE_LIKE, bar, None) == "changed"  # 0.97 < 0.999
    bar, _ = bar_for(SETTINGS, i2v_fidelity(min_psnr_db=40.0, min_ssim=0.95), False)
    assert fidelity_verdict(CACHE_LIKE, bar, None) == "held"


def test_code_whose_own_two_runs_differ_beyond_the_bar_is_nondeterministic_not_changed() -> None:
    bar = SETTINGS.lossless
    assert fidelity_verdict(CACHE_LIKE, bar, CACHE_LIKE) == "nondeterministic"
    # the two runs differ, but within the bar: a change beyond it is the code's
    assert fidelity_verdict(CACHE_LIKE, bar, ONE_THREAD) == "changed"


def test_a_profiles_fidelity_reads_back_and_names_what_is_wrong() -> None:
    settings = FidelitySettings.from_mapping({"lossy": {"min_psnr_db": 25}})
    assert settings.lossy == FidelityBar(25.0, 0.9, latents_rule=False)
    assert settings.lossless.min_psnr_db == 80.0
    assert FidelitySettings.from_mapping(settings.to_dict()) == settings
    with pytest.raises(ValueError, match="lossless: unknown key"):
        FidelitySettings.from_mapping({"lossless": {"psnr": 1}})


def test_a_sibling_is_named_in_its_module_or_by_node_id() -> None:
    request = FidelityRequest(against="test_native[wan]")
    assert (
        request.sibling_nodeid("suites/t.py::test_cached[wan]") == "suites/t.py::test_native[wan]"
    )
    whole = FidelityRequest(against="other.py::test_x")
    assert whole.sibling_nodeid("suites/t.py::test_y") == "other.py::test_x"
    assert FidelityRequest().sibling_nodeid("t.py::test_y") is None


CONFTEST = """
import os

import pytest


@pytest.fixture(autouse=True)
def inject(request):
    if request.node.name not in os.environ.get("DRIFT", "").split(","):
        yield
        return
    pipe = request.getfixturevalue("i2v_pipeline")

    def drift(module, args, output):  # the prediction off by 20 %: another video
        return (output[0] * 0.8, *output[1:]) if isinstance(output, tuple) else output * 0.8

    handle = pipe.unet.register_forward_hook(drift)
    yield
    handle.remove()
"""

SIBLINGS = """
import pytest

SMALL = dict(resolution="256p", frames=2, steps=10, seed=3)

@pytest.mark.i2v(**SMALL)
def test_native(i2v_run):
    i2v_run()

@pytest.mark.i2v_fidelity(against="test_native")
@pytest.mark.i2v(**SMALL)
def test_variant(i2v_run):
    i2v_run()

@pytest.mark.i2v_fidelity(against="test_native", lossy=True)
@pytest.mark.i2v(**SMALL)
def test_lossy_variant(i2v_run):
    i2v_run()
"""


def test_a_variant_is_judged_against_its_siblings_output_in_the_same_session(
    i2v_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No baseline at all: the reference is the native sibling's output of this session."""
    i2v_project.makeconftest(CONFTEST)
    i2v_project.makepyfile(test_siblings=SIBLINGS)
    args = ("--i2v-json", "r.json", "--i2v-gate-mode", "enforce", "-p", "no:randomly")
    same = i2v_project.runpytest(*args)
    same.assert_outcomes(passed=3)
    records = json.loads((i2v_project.path / "r.json").read_text())["records"]
    assert records[0]["fidelity"] is None  # no baseline, no sibling: nothing to compare
    for record in records[1:]:
        assert record["fidelity"]["against"] == "test_native's output"
        assert record["fidelity"]["figures"]["identical"]
    monkeypatch.setenv("DRIFT", "test_variant,test_lossy_variant")
    drifted = i2v_project.runpytest(*args)
    drifted.assert_outcomes(passed=2, failed=1)
    drifted.stdout.fnmatch_lines(
        [
            "*_ test_variant _*",
            "i2v: output changed: PSNR * dB < 80.0 dB, SSIM * against test_native's output, "
            "2 frames",
            "FAILED test_siblings.py::test_variant - i2v: output changed*",
        ]
    )
    records = json.loads((i2v_project.path / "r.json").read_text())["records"]
    lossy = records[2]["fidelity"]
    # the same drift, held to the lossy bar: within it
    assert lossy["lossy"] and lossy["verdict"] == "held" and lossy["bar"]["min_psnr_db"] == 30.0
    assert records[2]["fidelity"]["figures"]["min_psnr_db"] == pytest.approx(
        records[1]["fidelity"]["figures"]["min_psnr_db"]
    )

    # the sibling deselected: the variant says its output was not judged, and passes
    alone = i2v_project.runpytest(*args, "-k", "test_variant and not lossy")
    alone.assert_outcomes(passed=1)
    record = json.loads((i2v_project.path / "r.json").read_text())["records"][0]
    assert record["fidelity"] is None
    assert any(
        "names test_siblings.py::test_native, which did not run" in n for n in record["notes"]
    )
