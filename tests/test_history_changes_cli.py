"""Done when: a user's history that holds a step finds it with ``history changes`` (dated to its
commit range), draws it with ``history site`` and exports it for Otava, on SQLite and on a real
PostgreSQL server; a database that does not exist is one line and exit 4."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pytest_i2v.cli import USAGE_ERROR, main
from tests.history_fixtures import postgres_url, results_document, store_url  # noqa: F401
from tests.test_history_changes import noisy

RUNS, STEP_AT = 40, 20
STEPPED = "tests/test_i2v.py::test_case[0]"


def add_history(tmp_path: Path, url: str) -> None:
    """40 nightly runs; test_case[0] gets 25 % slower from commit c020, the others only noise."""
    slow, quiet = noisy(RUNS, seed=5), noisy(RUNS, seed=6)
    for run in range(RUNS):
        document = results_document(run, tests=2)
        for record, figure in zip(document["records"], (slow[run], quiet[run]), strict=True):
            record["time_s"] = float(figure) * (
                1.25 if record["nodeid"] == STEPPED and run >= STEP_AT else 1.0
            )
            record["time_samples_s"] = [record["time_s"]] * 3
        path = tmp_path / f"r{run}.json"
        path.write_text(json.dumps(document))
        assert main(["history", "add", str(path), "--db", url, "--commit", f"c{run:03d}"]) == 0


def test_history_changes_finds_the_step_and_the_site_shows_it(
    tmp_path: Path,
    store_url: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_history(tmp_path, store_url)
    capsys.readouterr()
    assert main(["history", "changes", "--db", store_url, "--otava", str(tmp_path / "otava")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("### History: 1 open change point(s), 0 earlier"), text
    [line] = [line for line in text.splitlines() if line.startswith(f"- {STEPPED}: time_s +")]
    # dated to the step's commit range, or one run off where a heavy-tail run sits beside it
    assert any(f"between c{at - 1:03d}..c{at:03d}" in line for at in (19, 20, 21)), line
    assert "test_case[1]" not in text.split("Exact events")[0]
    rows = list(csv.DictReader((tmp_path / "otava" / "test_i2v.test_case-0.csv").open()))
    assert len(rows) == RUNS and rows[STEP_AT]["commit"] == f"c{STEP_AT:03d}"
    assert (tmp_path / "otava" / "otava.yaml").is_file()
    assert main(["history", "site", str(tmp_path / "site"), "--db", store_url]) == 0
    index = (tmp_path / "site" / "index.html").read_text()
    assert '<tr class="open">' in index and "test_case[0]" in index
    page = (tmp_path / "site" / "tests-test_i2v.html").read_text()
    points = page.count('<circle class="run"')  # one per run, per test and metric
    assert points >= 2 * RUNS and points % RUNS == 0


def test_changes_of_a_history_that_does_not_exist_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'missing.sqlite'}"
    assert main(["history", "changes", "--db", url]) == USAGE_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err
    assert not (tmp_path / "missing.sqlite").exists()
