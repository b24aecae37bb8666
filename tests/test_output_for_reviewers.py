"""Output a reviewer reads (issue 34, item 5): the i2v verdict is the last thing the terminal
prints, after pytest-benchmark's tables, which ``--i2v-benchmark-tables`` shows or leaves out
(JSON and storage keep every test); each test's line names the size, frames and steps it ran and
what its mark asked for; the Markdown summary has the change against the baseline per metric;
the per-step trace names every line in its legend."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report import per_test_charts
from pytest_i2v.report.markdown import NO_CHANGE, change_vs_baseline, render_markdown
from pytest_i2v.session.runtime import ran_size
from tests.report_fixtures import document, record

SUITE = """
import pytest

SMALL = dict(resolution="256p", frames=2, steps=10)

@pytest.mark.i2v(**SMALL, seed=1)
def test_bridged(i2v_run):
    assert i2v_run().outcome == "ok"

@pytest.mark.i2v(**SMALL, seed=2)
def test_names_benchmark(i2v_run, benchmark):
    assert i2v_run().outcome == "ok"

def test_plain_benchmark(benchmark):
    benchmark(sum, range(10))
"""
ARGS = ("--i2v-repeats", "2", "--i2v-warmup", "0", "-p", "no:randomly", "-p", "no:cacheprovider")
TABLE = re.compile(r"^-+ benchmark")  # a pytest-benchmark table's heading line


@pytest.fixture
def suite(i2v_project: pytest.Pytester) -> pytest.Pytester:
    i2v_project.makepyfile(test_suite=SUITE)
    return i2v_project


def tabled(lines: list[str]) -> set[str]:
    """The tests that have a row in a pytest-benchmark table."""
    rows = (re.match(r"^(test_\w+)\s+[0-9][0-9,.]*", line) for line in lines)
    return {row.group(1) for row in rows if row}


def test_the_i2v_verdict_is_the_last_thing_printed_after_the_benchmark_tables(
    suite: pytest.Pytester, virtual_time: tuple[str, ...]
) -> None:
    result = suite.runpytest(
        *ARGS, *virtual_time, "--i2v-benchmark-tables", "on", "--i2v-json", "r.json"
    )
    result.assert_outcomes(passed=3)
    lines = result.outlines
    tables = [i for i, line in enumerate(lines) if TABLE.match(line)]
    section = next(i for i, line in enumerate(lines) if "i2v results (profile cpu)" in line)
    assert tables and max(tables) < section  # the tables first, then the i2v section
    assert tabled(lines) == {"test_bridged", "test_names_benchmark", "test_plain_benchmark"}
    closing = max(i for i, line in enumerate(lines) if re.match(r"^=+ .*passed", line))
    assert lines[closing - 1].startswith("i2v: ")  # the verdict, right before pytest's closing line
    written = [i for i, line in enumerate(lines) if line.startswith("i2v results written to ")]
    assert written and section < min(written) and max(written) < closing - 1


def test_the_verdict_follows_pytests_short_summary_of_a_failure(
    i2v_project: pytest.Pytester, virtual_time: tuple[str, ...]
) -> None:
    i2v_project.makepyfile(
        test_fails="""
        import pytest

        @pytest.mark.i2v(resolution="256p", frames=2, steps=10)
        def test_measured(i2v_run):
            i2v_run()

        def test_broken():
            assert False
        """
    )
    result = i2v_project.runpytest(*ARGS, *virtual_time)
    result.assert_outcomes(passed=1, failed=1)
    lines = result.outlines
    short = next(i for i, line in enumerate(lines) if "short test summary info" in line)
    section = next(i for i, line in enumerate(lines) if "i2v results (profile cpu)" in line)
    assert short < section and lines[-2].startswith("i2v: ") and "failed" in lines[-1]


def test_tables_are_left_out_for_bridged_tests_by_default(
    suite: pytest.Pytester, virtual_time: tuple[str, ...]
) -> None:
    """auto: the test the bridge gave a benchmark has no table; one that names ``benchmark`` itself,
    and a plain pytest-benchmark test, keep theirs."""
    result = suite.runpytest(*ARGS, *virtual_time)
    result.assert_outcomes(passed=3)
    assert tabled(result.outlines) == {"test_names_benchmark", "test_plain_benchmark"}
    result.stdout.fnmatch_lines(
        [
            "*::test_bridged: 32x32, 2 frames, 2 steps (marked 256x256, 2 frames, 10 steps) "
            "| median * over 2 repeats *| passed"
        ]
    )


def test_off_leaves_every_i2v_table_out_and_json_and_storage_keep_them(
    suite: pytest.Pytester, virtual_time: tuple[str, ...]
) -> None:
    result = suite.runpytest(
        *ARGS,
        *virtual_time,
        "--i2v-benchmark-tables",
        "off",
        "--benchmark-json",
        "b.json",
        "--benchmark-autosave",
        "--benchmark-storage",
        "store",
    )
    result.assert_outcomes(passed=3)
    assert tabled(result.outlines) == {"test_plain_benchmark"}  # not an i2v test: its table stays
    names = {b["name"] for b in json.loads((suite.path / "b.json").read_text())["benchmarks"]}
    assert names == {"test_bridged", "test_names_benchmark", "test_plain_benchmark"}
    (saved,) = (suite.path / "store").rglob("*.json")
    assert {b["name"] for b in json.loads(saved.read_text())["benchmarks"]} == names


def test_a_benchmark_option_shows_the_tables_under_auto(
    suite: pytest.Pytester, virtual_time: tuple[str, ...]
) -> None:
    """A --benchmark-* option (here the JSON) is a pytest-benchmark user asking for its output."""
    result = suite.runpytest(*ARGS, *virtual_time, "--benchmark-json", "b.json")
    result.assert_outcomes(passed=3)
    assert tabled(result.outlines) == {
        "test_bridged",
        "test_names_benchmark",
        "test_plain_benchmark",
    }


def test_the_ini_key_and_a_bad_value(suite: pytest.Pytester, virtual_time: tuple[str, ...]) -> None:
    suite.makeini("[pytest]\ni2v_repeats = 1\ni2v_warmup = 0\ni2v_benchmark_tables = on\n")
    result = suite.runpytest(*ARGS, *virtual_time)
    assert "test_bridged" in tabled(result.outlines)
    bad = suite.runpytest(*ARGS, *virtual_time, "--i2v-benchmark-tables", "sometimes")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--i2v-benchmark-tables = 'sometimes': use on, off or auto*"])


def test_the_line_names_the_size_it_ran_and_the_size_marked() -> None:
    scaled = {
        "width": 96,
        "height": 48,
        "frames": 21,
        "steps": 8,
        "study": {"width": 832, "height": 480, "frames": 81, "steps": 40},
    }
    assert ran_size(scaled) == "96x48, 21 frames, 8 steps (marked 832x480, 81 frames, 40 steps)"
    assert (
        ran_size({"width": 832, "height": 480, "frames": 81, "steps": 40})
        == "832x480, 81 frames, 40 steps"
    )
    older = {
        "width": 32,
        "height": 32,
        "frames": 2,
        "steps": 2,
        "study": {"width": 256, "height": 256, "steps": 10},
    }
    assert (
        ran_size(older) == "32x32, 2 frames, 2 steps (marked 256x256, 10 steps)"
    )  # no study frames kept then


def _metric(
    metric: str, baseline: float | None, current: float, delta: float | None, gating: bool = True
) -> dict[str, Any]:
    return {
        "metric": metric,
        "verdict": "pass",
        "baseline": baseline,
        "current": current,
        "delta_pct": delta,
        "runs": 5,
        "rule": "tolerance",
        "threshold": "-",
        "gating": gating,
    }


def test_the_markdown_results_have_the_change_against_the_baseline_per_metric() -> None:
    doc = document()
    judged, new = doc["records"][0], doc["records"][2]
    judged["verdict"]["metrics"] = [
        _metric("time_s", 10.0, 9.1, -9.0),
        _metric("step_s", 0.15, 0.152, 1.33),
        _metric("reserved_bytes", 7 * 2**30, 7 * 2**30, 0.0),
        _metric("host_rss_bytes", 2**30, 3 * 2**30, 200.0, gating=False),
    ]
    new["verdict"] = {
        "verdict": "new",
        "metrics": [_metric("time_s", None, 33.6, None)],
        "env_changes": [],
        "notes": [],
    }
    judged_record, new_record = (
        GenerationRecord.from_partial(judged),
        GenerationRecord.from_partial(new),
    )
    assert change_vs_baseline(judged_record, "host_rss_bytes") == "+200.0 % (not judged)"
    assert (
        change_vs_baseline(new_record, "time_s")
        == change_vs_baseline(new_record, "step_s")
        == NO_CHANGE
        == "n/a"
    )
    text = render_markdown(doc)
    assert (
        "| test | time | Δ time | step | Δ step | peak memory | Δ peak | latency | outcome |"
        in text
    )
    rows = {
        line.split(" | ")[0]: line.split(" | ")
        for line in text.splitlines()
        if line.startswith("| suites/")
    }
    judged_row = rows["| suites/test\\_resolution\\_sweep.py::test\\_resolution\\_sweep\\[256p\\]"]
    assert judged_row[1:8] == [
        "9.10 s",
        "-9.0 %",
        "152.0 ms",
        "+1.3 %",
        "7,168 MiB (peak reserved)",
        "+0.0 %",
        "good",
    ]
    new_row = rows["| suites/test\\_resolution\\_sweep.py::test\\_resolution\\_sweep\\[768p\\]"]
    assert (new_row[2], new_row[4], new_row[6]) == ("n/a", "n/a", "n/a")
    oom_row = rows["| suites/test\\_resolution\\_sweep.py::test\\_resolution\\_sweep\\[1024p\\]"]
    assert oom_row[2] == "n/a"  # no verdict at all
    assert "Δ: the change of the median against the baseline's; n/a: no baseline" in text


def test_the_per_step_trace_names_every_line_in_its_legend() -> None:
    records = [
        record(f"suites/test_t.py::test_trace[{i}]", "256p", 256, 16, 5.0 + i, 2**30)
        for i in range(21)
    ]
    svg = per_test_charts.step_traces([GenerationRecord.from_partial(r) for r in records])
    assert svg is not None
    labels = re.findall(r">(test_trace\[\d+\]) \(([0-9.]+) ms\)<", svg)
    assert sorted(name for name, _ in labels) == sorted(f"test_trace[{i}]" for i in range(21))
    assert [float(ms) for _, ms in labels] == sorted(
        (float(ms) for _, ms in labels), reverse=True
    )  # slowest first
    assert ">test (median step)<" in svg
    styles = [per_test_charts.trace_style(i) for i in range(40)]
    assert len(set(styles)) == 40  # no two of the drawn lines alike


def test_the_per_step_trace_says_when_it_draws_a_selection() -> None:
    records = [
        record(f"suites/test_t.py::test_trace[{i}]", "256p", 256, 16, 5.0 + i, 2**30)
        for i in range(45)
    ]
    svg = per_test_charts.step_traces([GenerationRecord.from_partial(r) for r in records])
    assert svg is not None and "Per-step time trace (40 of 45: changed and slowest first)" in svg
    assert len(re.findall(r">test_trace\[\d+\] \(", svg)) == 40


def test_golden_summary_has_the_change_columns() -> None:
    golden = (Path(__file__).parent / "golden" / "summary.md").read_text()
    assert golden == render_markdown(document()) and "| Δ time |" in golden


class _Config:
    """What ``hidden_tables`` reads of a config: the invocation's arguments, addopts and options."""

    def __init__(self, args: tuple[str, ...], compare_fail: object = None):
        self.invocation_params = type("Params", (), {"args": args})()
        self._compare_fail = compare_fail

    def getini(self, name: str) -> list[str]:
        return []

    def getoption(self, name: str, default: object = None) -> object:
        return self._compare_fail if name == "benchmark_compare_fail" else default


@pytest.mark.parametrize(
    ("tables", "args", "compare_fail", "hidden"),
    [
        ("auto", (), None, {"bridged"}),
        ("auto", ("--benchmark-json", "b.json"), None, set()),
        ("auto", ("--benchmark-autosave",), None, set()),
        ("off", ("--benchmark-json", "b.json"), None, {"bridged", "own"}),
        (
            "off",
            (),
            ["mean:5%"],
            set(),
        ),  # pytest-benchmark judges the comparison only while it displays
        ("on", (), None, set()),
    ],
)
def test_which_tables_are_left_out(
    monkeypatch: pytest.MonkeyPatch,
    tables: str,
    args: tuple[str, ...],
    compare_fail: object,
    hidden: set[str],
) -> None:
    from pytest_i2v.session.benchmark_bridge import hidden_tables

    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    config: Any = _Config(args, compare_fail)
    assert hidden_tables(config, tables, {"bridged", "own"}, {"bridged"}) == hidden
    monkeypatch.setenv("PYTEST_ADDOPTS", "--benchmark-columns=min")
    assert (
        hidden_tables(config, "auto", {"bridged", "own"}, {"bridged"}) == set()
    )  # an option from the environment
