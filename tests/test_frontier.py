"""Speed against fidelity (``report.frontier``): each variant against its native sibling, the
fastest that keeps its bar, the report's chart and table, and ``recommend``'s section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.cli import main
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.frontier import format_frontier, frontier, recommend_caches
from pytest_i2v.report.html import render_html
from tests.report_fixtures import document, record

MODULE = "suites/test_speed_fidelity.py"


def variant(
    name: str, time_s: float, psnr: float | None, verdict: str, pipeline: str = "wan2.1-i2v"
) -> dict[str, Any]:
    """A cached test's record judged against ``test_speed_fidelity[<pipeline>-native]``."""
    data = record(f"{MODULE}::test_speed_fidelity[{pipeline}-{name}]", None, 64, 5, time_s, 2**30)
    data["config"] = {**data["config"], "pipeline": pipeline, "cache": name}
    data["fidelity_request"] = {
        "min_psnr_db": None,
        "min_ssim": None,
        "lossy": False,
        "against": f"test_speed_fidelity[{pipeline}-native]",
    }
    data["fidelity"] = {
        "figures": {
            "frames": 5,
            "identical": psnr is None,
            "min_psnr_db": psnr,
            "mean_ssim": None if psnr is None else 0.95,
            "cosine": 0.99,
            "shape_changed": False,
        },
        "bar": {"min_psnr_db": 30.0, "min_ssim": 0.9},
        "lossy": True,
        "against": f"test_speed_fidelity[{pipeline}-native]'s output",
        "verdict": verdict,
        "reference": None,
    }
    return data


def native(time_s: float, pipeline: str = "wan2.1-i2v") -> dict[str, Any]:
    data = record(f"{MODULE}::test_speed_fidelity[{pipeline}-native]", None, 64, 5, time_s, 2**30)
    data["config"] = {**data["config"], "pipeline": pipeline}
    return data


def family() -> list[dict[str, Any]]:
    return [
        native(2.0),
        variant("first-block", 1.25, 34.0, "held"),  # 1.6x, keeps the bar
        variant("faster-cache", 1.0, 22.0, "changed"),  # 2x, but breaks it
        variant("taylorseer", 2.5, None, "held"),  # slower, identical
        native(3.0, "ltx-video"),
        variant("first-block", 2.9, 20.0, "changed", "ltx-video"),
    ]


def test_each_variant_is_a_point_against_its_sibling_and_the_fastest_faithful_one_wins() -> None:
    records = [GenerationRecord.from_dict(r) for r in family()]
    points = frontier(records)
    assert [(p.pipeline, p.variant) for p in points] == [
        ("wan2.1-i2v", "first-block"),
        ("wan2.1-i2v", "faster-cache"),
        ("wan2.1-i2v", "taylorseer"),
        ("ltx-video", "first-block"),
    ]
    assert points[0].speedup == pytest.approx(1.6) and points[1].speedup == pytest.approx(2.0)
    best = recommend_caches(points)
    wan = best["wan2.1-i2v"]
    assert wan is not None and wan.variant == "first-block"  # faster-cache is faster, not faithful
    assert best["ltx-video"] is None
    text = format_frontier(points)
    assert "recommended: first-block (1.60x, within its bar)" in text
    assert "faster-cache: 2.00x, PSNR 22.0 dB, SSIM 0.950 (breaks the 30 dB bar)" in text
    assert "recommended: native (no variant is faster within its bar)" in text


def test_a_variant_whose_sibling_did_not_run_is_no_point() -> None:
    records = [GenerationRecord.from_dict(r) for r in family()[1:4]]  # no native
    assert frontier(records) == []


def test_the_report_draws_the_frontier_and_names_the_recommendation() -> None:
    doc = document()
    doc["records"] = [*doc["records"], *family()]
    html = render_html(doc)
    assert 'data-chart="Speed against fidelity"' in html and "<svg" in html
    section = html.split('id="frontier"', 1)[1].split("</details>", 1)[0]
    assert section.count("<tr data-variant=") == 4
    assert "wan2.1-i2v: recommended first-block (1.60x, within its bar)" in section
    assert "ltx-video: recommended native" in section
    assert 'id="frontier"' not in render_html(document())  # no variants, no section


def test_recommend_names_the_fastest_cache_that_keeps_its_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = document()
    doc["records"] = [*doc["records"], *family()]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    assert main(["recommend", str(path)]) == 0
    out = capsys.readouterr().out
    assert "## speed against fidelity" in out
    assert "recommended: first-block (1.60x, within its bar)" in out


def test_recommend_prints_the_frontier_of_a_run_without_a_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `pytest suites/ -m speed_fidelity` alone: one size per pipeline, so nothing to fit
    doc = document()
    doc["records"] = family()
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    assert main(["recommend", str(path)]) == 0
    out = capsys.readouterr().out
    assert "## wan2.1-i2v\n\nnot fitted: " in out
    assert "recommended: first-block (1.60x, within its bar)" in out
    doc["records"] = [native(2.0)]  # neither a fit nor a point: still the usage error
    path.write_text(json.dumps(doc))
    assert main(["recommend", str(path)]) == 4
