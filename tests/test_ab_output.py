"""A/B reads the video (``ab.output_check``): round 1's head output is judged against round 1's
base output, with the base's own second process as the noise. A head that gets faster by reusing
every other denoiser output fails as output-changed; an unchanged test's output is identical."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pytest_i2v.ab.output_check import PENDING, output_text
from pytest_i2v.ab.outputs import ab_document, render_ab_html, render_ab_markdown
from pytest_i2v.ab.paired import ABTestResult
from pytest_i2v.ab.results_doc import RoundResults
from pytest_i2v.ab.rounds import compare_rounds
from pytest_i2v.measure.output import reduce_output
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.fidelity import FidelityBar, FidelitySettings
from tests.test_ab import commit_all, left_behind, run_cli, suite_repo  # noqa: F401
from tests.test_unreliable import record as measured_record

RNG = np.random.default_rng(7)
VIDEO = RNG.random((1, 4, 32, 32, 3)).astype(np.float32)
OTHER = np.clip(VIDEO + RNG.normal(0, 0.05, VIDEO.shape), 0, 1).astype(np.float32)
NODEID = "test_suite.py::test_cached"


def _record(video: np.ndarray, time_s: float) -> GenerationRecord:
    return replace(measured_record([time_s] * 3), nodeid=NODEID, output=reduce_output(video))


def _rounds(videos: list[np.ndarray], time_s: float, **doc: object) -> list[RoundResults]:
    return [RoundResults([_record(v, time_s)], **doc) for v in videos]  # type: ignore[arg-type]


def test_a_faster_head_with_another_video_is_output_changed_worst_of_all() -> None:
    base = _rounds([VIDEO, VIDEO], 1.0)
    head = _rounds([OTHER, OTHER], 0.6)  # 40 % faster
    [result] = compare_rounds(base, head)
    assert result.overall == "output-changed"
    verdicts = {v.metric: v.verdict for v in result.verdicts}
    assert verdicts["output"] == "output-changed" and verdicts["time_s"] == "improved"
    assert result.output is not None and result.output.verdict == "changed"
    text = output_text(result)
    assert text.startswith("output changed: PSNR ") and "against base's output, 4 frames" in text


def test_the_same_video_is_identical_and_the_time_decides() -> None:
    [result] = compare_rounds(_rounds([VIDEO, VIDEO], 1.0), _rounds([VIDEO, VIDEO], 0.6))
    assert result.overall == "improved" and "output" not in {v.metric for v in result.verdicts}
    assert output_text(result) == "identical to the base's output, 4 frames"


def test_a_base_that_differs_from_itself_makes_the_change_nondeterministic() -> None:
    base = _rounds([VIDEO, OTHER], 1.0)  # the base's own two processes differ as much
    [result] = compare_rounds(base, _rounds([OTHER, OTHER], 1.0))
    assert result.output is not None and result.output.verdict == "nondeterministic"
    assert result.overall != "output-changed" and output_text(result).startswith("nondeterministic")


def test_after_one_round_the_output_waits_and_no_test_is_decided_improved() -> None:
    [result] = compare_rounds(_rounds([VIDEO], 1.0), _rounds([OTHER], 0.6))
    assert result.output is None and output_text(result) == PENDING
    assert {v.verdict for v in result.verdicts if v.metric == "output"} == {"inconclusive"}
    assert result.overall == "inconclusive"


def test_the_profiles_bar_from_the_document_decides() -> None:
    loose = FidelitySettings(lossless=FidelityBar(min_psnr_db=5.0, min_ssim=0.0))
    base = _rounds([VIDEO, VIDEO], 1.0, fidelity=loose)
    [result] = compare_rounds(base, _rounds([OTHER, OTHER], 1.0))
    assert result.output is not None and result.output.verdict == "held"
    assert result.output.bar.min_psnr_db == 5.0


def test_the_output_is_in_ab_json_md_and_html_and_reads_back() -> None:
    [result] = compare_rounds(_rounds([VIDEO, VIDEO], 1.0), _rounds([OTHER, OTHER], 0.6))
    meta = {"base": "HEAD~1", "head": "HEAD", "rounds": 2, "min_effect": 0.05, "confidence": 0.999}
    document = json.loads(json.dumps(ab_document([result], meta)))  # type: ignore[arg-type]
    assert document["summary"]["output-changed"] == 1
    assert ABTestResult.from_dict(document["results"][0]) == result
    markdown = render_ab_markdown([result], meta)  # type: ignore[arg-type]
    assert markdown.startswith("### A/B: 1 output-changed, 0 regressed")
    assert "#### Output: round 1's head against round 1's base" in markdown
    assert "output changed: PSNR" in markdown
    html = render_ab_html([result], meta)  # type: ignore[arg-type]
    assert '<table id="ab-output">' in html and "output changed: PSNR" in html


CONFTEST_BASE = """\
import pytest

from pytest_i2v.simulated_plugin import add_work


@pytest.fixture
def step_cache(i2v_pipeline):
    # every UNet call costs 20 ms more: the cost a cache would save
    handle = i2v_pipeline.unet.register_forward_pre_hook(lambda module, args: add_work(0.02))
    yield
    handle.remove()
"""
# The head: a naive step cache. Every other UNet call returns the previous call's output and
# skips the 20 ms, so test_cached gets about a third faster on the virtual clock, with another
# video.
CONFTEST_HEAD = """\
import pytest

from pytest_i2v.simulated_plugin import add_work


@pytest.fixture
def step_cache(i2v_pipeline):
    calls = []

    def before(module, args):
        if len(calls) % 2 == 0:
            add_work(0.02)

    def after(module, args, output):
        calls.append(output)
        return calls[-2] if len(calls) % 2 == 0 else output

    handles = [
        i2v_pipeline.unet.register_forward_pre_hook(before),
        i2v_pipeline.unet.register_forward_hook(after),
    ]
    yield
    for handle in handles:
        handle.remove()
"""
SUITE = """\
import pytest


@pytest.mark.i2v(width=256, height=256, frames=2, steps=50)
def test_steady(i2v_run):
    assert i2v_run().outcome == "ok"


@pytest.mark.i2v(width=256, height=256, frames=2, steps=50)
def test_cached(step_cache, i2v_run):
    assert i2v_run().outcome == "ok"
"""


def test_ab_fails_a_faster_head_whose_output_changed(
    suite_repo: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    virtual_time: tuple[str, ...],
) -> None:
    """Done when, through ab: the head makes test_cached faster and its video different; one job
    of two rounds exits 1 with test_cached output-changed (its figures in ab.md, ab.json and the
    HTML) and test_steady, unchanged code in the same job, identical and not failed."""
    (suite_repo / "test_suite.py").write_text(SUITE)
    (suite_repo / "conftest.py").write_text(CONFTEST_BASE)
    commit_all(suite_repo, "test_cached pays 20 ms per UNet call")
    (suite_repo / "conftest.py").write_text(CONFTEST_HEAD)
    commit_all(suite_repo, "a naive step cache in test_cached")
    argv = ["ab", "--base", "HEAD~1", "--head", "HEAD", "--rounds", "2", "--out", "out"]
    code, out, err = run_cli([*argv, "--", *virtual_time, "--i2v-warmup", "0"], capsys)
    assert code == 1, out + err[-3000:]
    document = json.loads((suite_repo / "out" / "ab.json").read_text())
    results = {r["nodeid"]: r for r in document["results"]}
    cached, steady = results[NODEID], results["test_suite.py::test_steady"]
    assert cached["overall"] == "output-changed", out
    times = {v["metric"]: v["verdict"] for v in cached["verdicts"]}
    assert times["time_s"] == "improved", out  # faster, and still failed
    assert cached["output"]["verdict"] == "changed"
    assert steady["overall"] not in ("output-changed", "regressed"), out
    assert steady["output"]["figures"]["identical"], out
    markdown = (suite_repo / "out" / "ab.md").read_text()
    assert "test\\_cached: output changed: PSNR" in markdown, markdown
    assert "test\\_steady: identical to the base's output" in markdown, markdown
    assert "output changed: PSNR" in (suite_repo / "out" / "ab.html").read_text()
    assert left_behind(suite_repo) == []
