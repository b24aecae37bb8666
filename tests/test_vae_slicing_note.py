"""VAE slicing changes nothing for I2VGen-XL (it already decodes one frame at a time): the record
says so, and the report shows "no effect for this pipeline" instead of a saving made of noise."""

from __future__ import annotations

import inspect
import re
from typing import Any

from pytest_i2v.generation.memory_options import NO_EFFECT, no_effect_notes, no_effect_options
from pytest_i2v.report.context import build_context
from pytest_i2v.report.html import render_html
from tests.report_fixtures import document, record

GIB = 2**30
SLICING_ID = "suites/test_memory_options.py::test_memory_option[vae_slicing]"


def test_the_table_names_vae_slicing_for_i2vgen_xl() -> None:
    assert NO_EFFECT[("i2vgen-xl", "vae_slicing")] == (
        "no effect for this pipeline: I2VGen-XL already decodes one frame at a time "
        "(decode_chunk_size=1)"
    )
    assert no_effect_notes("i2vgen-xl", ("vae_slicing",)) == [
        "vae_slicing: no effect for this pipeline: I2VGen-XL already decodes one frame at a time "
        "(decode_chunk_size=1)"
    ]
    assert no_effect_notes("i2vgen-xl", ("vae_tiling", "attention_slicing")) == []
    assert no_effect_notes("i2vgen-xl", ()) == []
    assert no_effect_notes("I2VGen-XL", ("vae_slicing", "vae_tiling")) == no_effect_notes(
        "i2vgen-xl", ("vae_slicing",)
    )


def test_notes_round_trip_to_the_options() -> None:
    notes = ["NVML not available", *no_effect_notes("i2vgen-xl", ("vae_slicing", "vae_tiling"))]
    assert no_effect_options(notes) == ["vae_slicing"]
    assert no_effect_options([]) == []


def test_diffusers_still_decodes_one_frame_at_a_time() -> None:
    """The table's claim, checked against the installed diffusers: if its default changes,
    so must the table."""
    import diffusers

    call = diffusers.I2VGenXLPipeline.__call__
    assert inspect.signature(call).parameters["decode_chunk_size"].default == 1


def slicing_document() -> dict[str, Any]:
    doc = document()
    sliced = record(SLICING_ID, "512p", 512, 16, 18.3, int(7.9 * GIB), memory=["vae_slicing"])
    sliced["notes"] = no_effect_notes("i2vgen-xl", ("vae_slicing",))
    doc["records"].append(sliced)
    return doc


def test_context_reports_no_saving_for_an_option_without_effect() -> None:
    rows = {row["option"]: row for row in build_context(slicing_document())["memory_options"]}
    assert rows["vae_slicing"]["no_effect"].startswith("no effect for this pipeline")
    assert (
        rows["vae_slicing"]["memory_saved_pct"] is None
        and rows["vae_slicing"]["time_added_pct"] is None
    )
    assert (
        rows["vae_tiling"]["no_effect"] is None
        and rows["vae_tiling"]["memory_saved_pct"] is not None
    )


def test_html_report_shows_no_effect_instead_of_a_saving() -> None:
    html = render_html(slicing_document())
    study = html[html.index('<section id="study">') : html.index('id="published"')]
    (row,) = [r for r in re.findall(r"<tr>.*?</tr>", study, re.S) if "<td>vae_slicing</td>" in r]
    assert "no effect for this pipeline" in row
    assert "%" not in row  # neither a memory saving nor a time cost made of noise
    tiling = next(r for r in re.findall(r"<tr>.*?</tr>", study, re.S) if "<td>vae_tiling</td>" in r)
    assert (
        "+11.1 %" in tiling
    )  # a real option keeps its saving (of the headline peak, here reserved)
    charts = html[html.index('<section id="charts">') : html.index('<section id="study">')]
    assert (
        "vae_slicing" not in charts.split('data-chart="Memory options"')[-1].split("</figure>")[0]
    )
    results = html[html.index('<section id="results">') : html.index('<section id="environment">')]
    assert (
        "no effect for this pipeline" in results
    )  # the note travels with the record in the results table


def test_a_combination_keeps_the_saving_of_the_option_that_works() -> None:
    doc = document()
    both = record(
        "suites/t.py::test_both",
        "512p",
        512,
        16,
        20.1,
        7 * GIB,
        memory=["vae_slicing", "vae_tiling"],
    )
    both["notes"] = no_effect_notes("i2vgen-xl", ("vae_slicing", "vae_tiling"))
    doc["records"].append(both)
    (row,) = [
        r for r in build_context(doc)["memory_options"] if r["option"] == "vae_slicing+vae_tiling"
    ]
    assert row["no_effect"] is None and row["no_effect_options"] == ["vae_slicing"]
    assert row["memory_saved_pct"] is not None
    html = render_html(doc)
    study = html[html.index('<section id="study">') : html.index('id="published"')]
    (shown,) = [
        r for r in re.findall(r"<tr>.*?</tr>", study, re.S) if "vae_slicing+vae_tiling" in r
    ]
    assert "+11.1 %" in shown and "(vae_slicing: no effect for this pipeline)" in shown
