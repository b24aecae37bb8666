from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.cli import main
from pytest_i2v.generation.marks import Scaling
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report import chart_style, per_test_charts
from pytest_i2v.report.compare import compare_documents, compare_markdown, render_compare_html
from pytest_i2v.report.context import build_context, outcome_of
from pytest_i2v.report.grouping import pipeline_of
from pytest_i2v.report.html import render_html
from pytest_i2v.report.markdown import md, render_markdown
from pytest_i2v.report.overview import overview
from pytest_i2v.study import recommend, recommend_per_pipeline
from tests.picture_fixtures import document_with_outputs
from tests.report_fixtures import XSS, document, two_pipeline_document
from tests.test_frontier import family

GOLDEN_MD = Path(__file__).parent / "golden" / "summary.md"


class Structure(HTMLParser):
    """Collects ids, table rows, scripts and external references of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.rows: dict[str, int] = {}
        self.scripts: list[str] = []
        self.external: list[str] = []
        self.svgs = 0
        self._table: list[str] = []
        self._in_script = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag == "table":
            self._table.append(values.get("id") or "")
        if tag == "tr" and self._table and values.get("data-verdict"):
            self.rows[self._table[-1]] = self.rows.get(self._table[-1], 0) + 1
        if tag == "script":
            self._in_script = True
        if tag == "svg":
            self.svgs += 1
        for name in ("src", "href"):
            if values.get(name) and "://" in (values[name] or ""):
                self.external.append(values[name] or "")
        if tag == "link":
            self.external.append(str(values))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._table:
            self._table.pop()
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
        else:
            self.text.append(data)


def parse(html: str) -> Structure:
    parser = Structure()
    parser.feed(html)
    return parser


def test_html_report_structure_and_self_containment() -> None:
    html = render_html(document())
    page = parse(html)
    for section in (
        "verdict-line",
        "counts",
        "environment",
        "regressions",
        "results",
        "charts",
        "study",
        "published",
        "recommendation",
        "provenance",
        "results-table",
    ):
        assert section in page.ids, section
    assert page.rows["results-table"] == 6
    assert page.external == [], "no CDN, no network"
    assert page.svgs >= 6  # time, memory, stages, step trace, history, memory options
    assert len(page.scripts) == 1 and "sort" in page.scripts[0]
    text = " ".join(page.text)
    assert "the gate fails: 1 out-of-memory, 1 regressed" in text
    assert (
        "regressed: 1" in text
        and "out-of-memory: 1" in text
        and "passed: 4" in text
        and "skipped: 1" in text
    )
    assert (
        "python -m pytest 'suites/test_resolution_sweep.py::test_resolution_sweep[512p]' "
        "--gpu-profile h100-80gb --i2v-update-baselines" in text
    )
    assert "published, not measured here" in text and "36.5 s" in text
    assert "full-size-random-weights" in text  # provenance in the footer
    # the page leads with the picture: headline, overview, regressions (folded), charts, study, then
    # the full results and the environment, both folded
    order = [
        html.index(f'<section id="{s}">')
        for s in ("overview", "regressions", "charts", "study", "results", "environment")
    ]
    assert order == sorted(order) and html.index("verdict-line") < order[0] < html.index("<table")
    assert '<details id="results-details">' in html and '<details id="environment-details">' in html
    assert html.count('<details class="regression">') == 2


def _metric(
    metric: str,
    baseline: float,
    current: float,
    band: tuple[float, float] | None,
    gating: bool = True,
) -> dict[str, Any]:
    return {
        "metric": metric,
        "baseline": baseline,
        "current": current,
        "delta_pct": (current / baseline - 1) * 100,
        "interval": list(band) if band else None,
        "gating": gating,
        "verdict": "pass",
        "runs": 5,
        "rule": "prediction-interval",
        "threshold": "-",
    }


def test_the_overview_puts_every_compared_test_in_one_picture_worst_first() -> None:
    def record(
        name: str, kind: str, *metrics: dict[str, Any], peak: dict[str, Any] | None = None
    ) -> GenerationRecord:
        return GenerationRecord.from_partial(
            {
                "nodeid": f"suites/t.py::{name}",
                "decision": {"kind": kind, "fails": False},
                "verdict": {"verdict": "pass", "metrics": list(metrics)},
                "peak_memory": peak or {"reserved_bytes": 2_000},
            }
        )

    records = [
        record(
            "fine",
            "passed",
            _metric("time_s", 10.0, 10.5, (9.0, 11.0)),
            _metric("reserved_bytes", 2000, 2000, (1900, 2100)),
        ),
        record("slow", "regressed", _metric("time_s", 10.0, 12.0, (9.0, 11.0))),
        record("slower_but_fine", "passed", _metric("time_s", 10.0, 10.9, (9.0, 11.0))),
        record("other_machine", "passed", _metric("time_s", 10.0, 25.0, None, gating=False)),
        record(
            "hungry",
            "regressed",
            _metric("time_s", 10.0, 10.0, (9.0, 11.0)),
            _metric("reserved_bytes", 2000, 3000, (1900, 2100)),
        ),
        record("new", "recorded"),
        GenerationRecord.from_partial(
            {"nodeid": "suites/t.py::oom", "decision": {"kind": "out-of-memory", "fails": True}}
        ),
    ]
    picture = overview(records, outcome_of)
    assert [r.nodeid.split("::")[1] for r in picture.rows] == [
        "hungry",
        "slow",
        "other_machine",
        "slower_but_fine",
        "fine",
    ]
    hungry, slow = picture.rows[0], picture.rows[1]
    assert hungry.memory is not None and hungry.memory.pct == pytest.approx(
        50.0
    )  # the headline peak's metric
    assert (
        slow.time.pct == pytest.approx(20.0)
        and slow.time.band == pytest.approx((-10.0, 10.0))
        and slow.memory is None
    )
    assert picture.rows[2].time.gating is False and picture.rows[2].time.band is None
    assert picture.not_drawn == (("out-of-memory", 1), ("recorded", 1))
    assert (
        picture.caption
        == "5 tests against their baseline, worst first; not drawn (nothing to compare): "
        "1 out-of-memory, 1 recorded"
    )
    svg = per_test_charts.overview_chart(picture)
    assert svg is not None
    labels = re.findall(r">(hungry|slow|other_machine|slower_but_fine|fine)<", svg)
    assert labels == [
        "hungry",
        "slow",
        "other_machine",
        "slower_but_fine",
        "fine",
    ]  # worst at the top
    assert chart_style.DECISION_COLOURS["regressed"] in svg and chart_style.PASSED_COLOUR in svg
    assert "time not judged" in svg and "peak memory" in svg
    assert (
        per_test_charts.overview_chart(overview([records[-1]], outcome_of)) is None
    )  # nothing compared: no picture


def test_html_escapes_hostile_strings() -> None:
    html = render_html(document())
    assert XSS not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    page = parse(html)
    assert all("alert" not in script for script in page.scripts)
    assert any(XSS in chunk for chunk in page.text)  # shown as text


def test_markdown_golden() -> None:
    text = render_markdown(document())
    if os.environ.get("I2V_REGOLD"):
        GOLDEN_MD.write_text(text)
    assert text == GOLDEN_MD.read_text()


def test_markdown_cannot_break_tables_or_inject_html() -> None:
    assert md("a|b") == "a\\|b"
    assert md("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert\\(1\\)&gt;"
    assert md("line\nbreak") == "line break"
    text = render_markdown(document())
    evil = next(
        line for line in text.splitlines() if "test\\_evil" in line and line.startswith("| suites")
    )
    assert evil.count(" | ") == 8  # nine cells: the payload's | did not add one
    assert "<script>" not in text


def test_report_and_compare_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = tmp_path / "a.json"
    a.write_text(json.dumps(document()))
    slower = document()
    for record in slower["records"]:
        record["time_s"] *= 1.5
    slower["environment"]["driver"] = "570.10"
    b = tmp_path / "b.json"
    b.write_text(json.dumps(slower))
    assert (
        main(
            ["report", str(a), "-o", str(tmp_path / "r.html"), "--markdown", str(tmp_path / "r.md")]
        )
        == 0
    )
    assert parse((tmp_path / "r.html").read_text()).rows["results-table"] == 6
    assert (tmp_path / "r.md").read_text() == render_markdown(document())
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "-o", str(tmp_path / "c.html")]) == 0
    out = capsys.readouterr().out
    assert "+50.0 %" in out and "driver 560.35 -&gt; 570.10" in out  # Markdown: renders as ->
    html = (tmp_path / "c.html").read_text()
    assert "driver 560.35 -&gt; 570.10" in html and XSS not in html


def _typed(records: list[dict[str, Any]]) -> list[GenerationRecord]:
    return [GenerationRecord.from_partial(r) for r in records]


def _with_recommendations(doc: dict[str, Any]) -> dict[str, Any]:
    doc["recommendations"] = recommend_per_pipeline(_typed(doc["records"]), Scaling())
    return doc


def _section(html: str, section: str) -> str:
    start = html.index(f'<section id="{section}">')
    return html[start : html.index("</section>", start)]


def test_a_single_pipeline_report_names_its_pipeline_once() -> None:
    text = render_markdown(document())
    assert (
        text.count("i2vgen-xl") == 1 and "### Results (i2vgen-xl)\n" in text and "####" not in text
    )
    html = render_html(document())
    assert "<h2>All results (i2vgen-xl)</h2>" in html and 'class="pipeline-group"' not in html


def test_two_pipelines_render_a_group_each_in_markdown() -> None:
    text = render_markdown(_with_recommendations(two_pipeline_document()))
    assert "### Results\n" in text and "(i2vgen-xl)\n\n|" not in text
    i2vgen, svd = text.index("#### i2vgen-xl\n"), text.index("#### svd\n")
    assert i2vgen < svd  # the registry's order
    first, second = text[i2vgen:svd], text[svd : text.index("### Recommendation matrix")]
    assert "test\\_resolution\\_sweep\\[256p\\]" in first and "test\\_svd" not in first
    assert (
        second.count("| suites/test\\_svd.py::") == 4 and "test\\_resolution\\_sweep" not in second
    )
    assert all(
        line.count(" | ") == 8
        for line in (first + second).splitlines()
        if line.startswith("| suites")
    )  # no pipeline column
    assert text.index("### Recommendation matrix (i2vgen-xl)") < text.index(
        "### Recommendation matrix (svd)"
    )


def test_two_pipelines_render_a_group_each_in_html() -> None:
    html = render_html(_with_recommendations(two_pipeline_document()))
    page = parse(html)
    assert page.rows == {"results-table-i2vgen-xl": 6, "results-table-svd": 4}
    results = _section(html, "results")
    assert results.index("<h3>i2vgen-xl</h3>") < results.index("<h3>svd</h3>")
    svd_table = results[results.index("<h3>svd</h3>") :]
    assert "test_svd.py" in svd_table and "test_resolution_sweep" not in svd_table
    charts = _section(html, "charts")
    groups = re.findall(r'data-pipeline="([^"]+)"( open)?>\s*<summary><h3>([^<]+)</h3>', charts)
    assert groups == [
        ("i2vgen-xl", " open", "i2vgen-xl"),
        ("svd", "", "svd"),
    ]  # each folds; the first is open
    svd_charts = charts[charts.index('data-pipeline="svd"') :]
    assert (
        "Time vs resolution" in svd_charts and svd_charts.count("<svg") >= 4
    )  # its own sweep, not the other model's
    study = _section(html, "study")
    assert re.findall(r"<h4>([^<]+)</h4>", study) == ["i2vgen-xl", "svd"]
    assert XSS not in html  # autoescape still on in the per-pipeline sections


def test_memory_options_compare_with_the_plain_run_of_their_own_pipeline() -> None:
    rows = {row["option"]: row for row in build_context(two_pipeline_document())["memory_options"]}
    # svd's forward_chunking ran at 768 where only I2VGen-XL has a plain run: no base, no row.
    assert set(rows) == {"vae_tiling", "model_cpu_offload"}
    assert rows["model_cpu_offload"]["pipeline"] == "svd"
    # 1 GiB + 1 GiB reserved vs svd's plain 4 + 1 GiB: 60 % saved (I2VGen-XL's plain
    # 512 would say 78 %).
    assert rows["model_cpu_offload"]["memory_saved_pct"] == pytest.approx(60.0)
    assert rows["model_cpu_offload"]["time_added_pct"] == pytest.approx(50.0)
    # I2VGen-XL's vae_tiling keeps its own base although svd has a plain run of the same shape.
    assert rows["vae_tiling"]["pipeline"] == "i2vgen-xl" and rows["vae_tiling"][
        "memory_saved_pct"
    ] == pytest.approx(100 / 9)


def test_a_document_from_before_pipelines_reads_as_i2vgen_xl() -> None:
    doc = document()
    for record in doc["records"]:
        del record["config"]["pipeline"]
    del doc["recommendations"]
    doc["recommendation"] = recommend(
        _typed(doc["records"]), Scaling()
    )  # the old single-matrix key
    assert {pipeline_of(r) for r in _typed(doc["records"])} == {"i2vgen-xl"}
    context = build_context(doc)
    assert [g["name"] for g in context["pipeline_groups"]] == ["i2vgen-xl"] and not context[
        "multi_pipeline"
    ]
    assert context["recommendations"] == {"i2vgen-xl": doc["recommendation"]}
    text = render_markdown(doc)
    assert "### Results (i2vgen-xl)\n" in text and "### Recommendation matrix\n" in text
    html = render_html(doc)
    assert "All results (i2vgen-xl)" in html and parse(html).rows["results-table"] == 6
    assert "Not enough plain results" not in html and "max fit error" in html
    # Paired with a new document's I2VGen-XL records, an old one compares as before.
    comparison = compare_documents(doc, document())
    assert not any(row["not_comparable"] for row in comparison["rows"])
    assert all(row.get("time_pct") == 0 for row in comparison["rows"])


def test_compare_refuses_to_diff_across_pipelines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = document()
    b = document()
    moved = b["records"][0]
    moved["config"]["pipeline"] = "svd"
    moved["time_s"] *= 1.5
    comparison = compare_documents(a, b)
    row = next(r for r in comparison["rows"] if r["nodeid"] == moved["nodeid"])
    assert row["not_comparable"] == "not comparable (pipeline i2vgen-xl vs svd)"
    assert row["only"] is None and "time_pct" not in row
    assert len(comparison["rows"]) == 6  # one row for the test, not "only in A" plus "only in B"
    text = compare_markdown(comparison)
    line = next(line for line in text.splitlines() if "test\\_resolution\\_sweep\\[256p\\]" in line)
    assert "not comparable (pipeline i2vgen-xl vs svd)" in line and "%" not in line
    html = render_compare_html(comparison, "a.json", "b.json")
    assert "not comparable (pipeline i2vgen-xl vs svd)" in html and "+50.0 %" not in html
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "not comparable (pipeline i2vgen-xl vs svd)" in out and "+50.0 %" not in out


def test_compare_pairs_a_test_run_on_two_pipelines_with_its_own_pipeline() -> None:
    """The same nodeid on two pipelines in both documents: each pairs with its own, never across."""
    a, b = two_pipeline_document(), two_pipeline_document()
    for doc in (a, b):
        twin = dict(
            doc["records"][0],
            config=dict(doc["records"][0]["config"], pipeline="svd"),
            time_s=100.0,
        )
        doc["records"].append(twin)
    b["records"][-1]["time_s"] = 200.0
    rows = [r for r in compare_documents(a, b)["rows"] if r["nodeid"] == a["records"][0]["nodeid"]]
    assert [(r["pipeline"], r["time_pct"]) for r in rows] == [
        ("i2vgen-xl", 0.0),
        ("svd", pytest.approx(100.0)),
    ]


def test_report_of_a_missing_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "none.json")]) == 4
    assert capsys.readouterr().err.count("\n") == 1


def test_plugin_writes_html_and_markdown(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize(
            "r",
            [
                pytest.param(r, marks=pytest.mark.i2v(resolution=r, frames=2, steps=10))
                for r in ("256p", "512p")
            ],
        )
        def test_gen(r, i2v_run):
            i2v_run()
        """
    )
    result = i2v_project.runpytest("--i2v-report", "out/r.html", "--i2v-markdown", "out/s.md")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["i2v results written to */out/r.html", "i2v results written to */out/s.md"]
    )
    page = parse((i2v_project.path / "out/r.html").read_text())
    assert (
        page.rows["results-table"] == 2 and page.svgs >= 2
    )  # stage breakdown, step trace (no 16-frame sweep here)
    assert (
        "not enforced on the cpu profile: nothing would have failed"
        in (i2v_project.path / "out/r.html").read_text()
    )
    assert (
        "| test\\_plugin\\_writes\\_html\\_and\\_markdown.py::test\\_gen\\[256p\\] |"
        in (i2v_project.path / "out/s.md").read_text()
    )


def test_render_time_of_a_large_report_is_reported(tmp_path: Path) -> None:
    """Not a timed test (CI machines are noisy): it proves 200 results render;
    benchmarks/report_render.py times it."""
    doc = document()
    doc["records"] = [
        dict(r, nodeid=f"{r['nodeid']}-{i}") for i in range(34) for r in doc["records"]
    ][:200]
    html = render_html(doc)
    assert parse(html).rows["results-table"] == 200


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def document_with_frontier() -> dict[str, Any]:
    """The report fixture plus a speed-against-fidelity family (two pipelines, four variants)."""
    doc = document()
    doc["records"] = [*doc["records"], *family()]
    return doc


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="needs Chromium (Debian package 'chromium'); .ci/run installs it",
)
def test_report_in_a_real_browser(tmp_path: Path) -> None:
    """The first screen answers "did anything get worse": the overview chart sits above every
    table, the tables are folded, chart text is legible at 100 % zoom, and the page needs nothing
    from the network. The screenshots (first screen, whole page) go to $I2V_SCREENSHOT_DIR for a
    person to look at."""
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="playwright is in the test extra"
    )
    assert CHROMIUM, "CI must have Chromium: .ci/run installs the Debian package"
    path = tmp_path / "report.html"
    path.write_text(render_html(document_with_outputs()))
    shots = Path(os.environ.get("I2V_SCREENSHOT_DIR", tmp_path))
    messages: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console",
            lambda m: (
                messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
            ),
        )
        page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        page.screenshot(path=str(shots / "report-first-screen.png"))
        overview = page.eval_on_selector(
            "#overview svg.chart", "e => e.getBoundingClientRect().bottom"
        )
        tables = page.eval_on_selector_all(
            "table",
            """els => els.map(e => ({top: e.getBoundingClientRect().top,
            shown: e.checkVisibility(),
            after: !!(document.querySelector('#overview svg').compareDocumentPosition(e)
              & Node.DOCUMENT_POSITION_FOLLOWING)}))""",
        )
        # every output picture decoded at the size the page states, the open test's drawn at it
        pictures = page.eval_on_selector_all(
            "#outputs img",
            """els => els.map(e => ({natural: [e.naturalWidth, e.naturalHeight],
            stated: [+e.getAttribute('width'), +e.getAttribute('height')],
            drawn: e.checkVisibility() ? [e.getBoundingClientRect().width,
              e.getBoundingClientRect().height] : null,
            inline: e.src.startsWith('data:image/png;base64,')}))""",
        )
        folded_height = page.evaluate("document.documentElement.scrollHeight")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        open_height = page.evaluate("document.documentElement.scrollHeight")
        small_text = page.evaluate("""() => { const small = [];
            document.querySelectorAll('svg.chart').forEach(svg => {
              const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
              svg.querySelectorAll('text').forEach(t => {
                const px = parseFloat(getComputedStyle(t).fontSize) * scale;
                if (px < 10) {
                  const label = svg.getAttribute('aria-label');
                  small.push(`${label}: "${t.textContent}" ${px.toFixed(1)} px`);
                } }); });
            return small; }""")
        sizes = page.eval_on_selector_all(
            "svg.chart",
            "els => els.map(e => [e.getBoundingClientRect().width, "
            "e.getBoundingClientRect().height])",
        )
        page.click("#results-table th:nth-child(4)")  # sort by median time
        first = page.eval_on_selector("#results-table tbody tr td code", "e => e.textContent")
        shot = shots / "report-screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        # the speed-against-fidelity family's frontier chart, drawn from inline SVG alone
        frontier_page = tmp_path / "frontier.html"
        frontier_page.write_text(render_html(document_with_frontier()))
        page.goto(frontier_page.as_uri())
        frontier_chart = page.eval_on_selector(
            "#frontier svg.chart",
            "e => [e.checkVisibility(), e.getBoundingClientRect().width, "
            "e.getBoundingClientRect().height, e.querySelectorAll('circle, path').length]",
        )
        browser.close()
    assert messages == []
    assert [r for r in requests if not r.startswith("file://")] == []
    assert requests == [path.as_uri(), frontier_page.as_uri()]  # nothing else: all inline
    shown_chart, width, height, marks = frontier_chart
    assert shown_chart and width > 300 and height > 200 and marks >= 4  # one mark per variant
    # the fixture's outputs: the heat maps' legend, a changed test (9 frames, an animation), a
    # held (9), an identical (3)
    assert len(pictures) == 1 + 10 + 9 + 3 and all(p["inline"] for p in pictures)
    assert all(p["natural"] == p["stated"] and p["natural"][0] > 0 for p in pictures)
    drawn = [p for p in pictures if p["drawn"]]
    assert len(drawn) == 1 + 10  # the legend, the changed test's open; the rest folded
    assert all(p["drawn"] == p["stated"] for p in drawn)
    assert tables and all(t["after"] for t in tables)  # the overview comes before every table ...
    shown = [t["top"] for t in tables if t["shown"]]
    assert all(top >= overview for top in shown)  # ... and above every table on the page
    assert not any(t["shown"] for t in tables[-2:])  # the results and the environment start folded
    # Folding is what keeps the page short (this fixture: 2,655 px as it opens, 4,186 px unfolded,
    # 2026-12-03; the main job's report: see docs/guide/report.md).
    assert folded_height < 0.7 * open_height
    assert small_text == []
    assert len(sizes) >= 7 and all(w > 100 and h > 100 for w, h in sizes)
    assert first.endswith("[256p]")  # the fastest first
    assert (
        shot.stat().st_size > 10_000 and (shots / "report-first-screen.png").stat().st_size > 10_000
    )


def test_fast_mode_and_roofline_render() -> None:
    doc = document()
    fast = doc["records"][0]
    fast["mode"] = "fast"
    fast["fast"] = {
        "predicted": True,
        "measured_steps": 5,
        "steps": 50,
        "measured_time_s": 1.0,
        "measured_time_samples_s": [1.0],
    }
    fast["roofline"] = {
        "unet_step_tflop": 4.1,
        "decode_tflop": 2.0,
        "denoise_tflops": 412.3,
        "decode_tflops": 100.0,
        "peak_tflops": 989.4,
        "efficiency": 0.4167,
        "peak_kind": "fp16",
        "excludes_attention": False,
    }
    html = render_html(doc)
    results = _section(html, "results")
    row = next(
        r
        for r in re.findall(r"<tr class.*?</tr>", results, re.S)
        if "test_resolution_sweep[256p]" in r
    )
    assert "(predicted)" in row
    assert "412 (42 % of the fp16 peak)" in row
    others = [
        r
        for r in re.findall(r"<tr class.*?</tr>", results, re.S)
        if "test_resolution_sweep[256p]" not in r
    ]
    assert not any("(predicted)" in r for r in others)


def test_a_roofline_without_attention_says_so_in_the_report() -> None:
    doc = document()
    doc["records"][0]["roofline"] = {
        "unet_step_tflop": 4.1,
        "decode_tflop": 2.0,
        "denoise_tflops": 412.3,
        "decode_tflops": 100.0,
        "peak_tflops": 989.4,
        "efficiency": 0.4167,
        "peak_kind": "fp16",
        "excludes_attention": True,
    }
    html = render_html(doc)
    results = _section(html, "results")
    rows = re.findall(r"<tr class.*?</tr>", results, re.S)
    row = next(r for r in rows if "test_resolution_sweep[256p]" in r)
    assert "412 (42 % of the fp16 peak), excluding attention (its backend is not counted)" in row
    assert sum("excluding attention" in r for r in rows) == 1


def test_the_pills_count_what_the_banner_says() -> None:
    """ "not enforced" is the run's mode, the not-enforced outcome is "would have
    failed"; a run whose machine speed moved is unreliable as a whole, which a pill says
    beside the banner's clause."""
    doc = document()
    moved = "the machine's speed moved during the run (end against start: matrix products 0.60x)"
    doc["gate"] = {
        "mode": "report",
        "fails": False,
        "unreliable_run": moved,
        "headline": f"not enforced on the cpu profile: nothing would have failed; also "
        f"unreliable: {moved}",
    }
    context = build_context(doc)
    pills = {p.kind: p for p in context["pills"]}
    assert pills["not-enforced"].text == "would have failed: 0"
    assert pills["unreliable-run"].text == "whole run unreliable: machine speed moved"
    assert pills["unreliable-run"].title == moved
    assert context["banner"] == "warn"
    text = " ".join(parse(render_html(doc)).text)
    assert "would have failed: 0" in text and "whole run unreliable: machine speed moved" in text
    assert "not-enforced: 0" not in text
    quiet = document()
    assert "unreliable-run" not in {p.kind for p in build_context(quiet)["pills"]}
