"""``python -m pytest_i2v history add|list`` on a SQLite file, and ``--i2v-history`` at the end of a
real pytest session."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pytest_i2v.cli import USAGE_ERROR, main
from pytest_i2v.history.store import open_store
from tests.history_fixtures import results_document
from tests.test_plugin import SMALL


def write(path: Path, document: dict[str, object]) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory that is no git checkout, outside Actions: no commit to find."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    return tmp_path


def test_add_then_add_again_then_list(
    outside_git: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = write(outside_git / "r.json", results_document(0))
    url = f"sqlite:///{outside_git / 'h.sqlite'}"
    assert main(["history", "add", str(results), "--db", url, "--commit", "abc123"]) == 0
    run_id = open_store(url).runs()[0].run_id
    assert capsys.readouterr().out == f"added run {run_id} (3 tests) to {url}\n"
    assert main(["history", "add", str(results), "--db", url]) == 0
    assert capsys.readouterr().out == f"run {run_id} is already in {url}: nothing added\n"
    assert main(["history", "list", "--db", url]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["run", "created", "commit", "profile", "tests", "software"]
    assert listing[1].split()[:5] == [
        run_id,
        "2026-12-01T00:00:00+00:00",
        "abc123",
        "h100-80gb",
        "3",
    ]
    assert listing[-1] == f"1 run(s) in {url}"


def test_the_default_database_is_a_file_here(outside_git: Path) -> None:
    results = write(outside_git / "r.json", results_document(0))
    assert main(["history", "add", str(results)]) == 0
    (run,) = open_store(f"sqlite:///{outside_git / 'i2v-history.sqlite'}").runs()
    assert run.commit is None  # no --commit, no commit in the document, no git here


def test_the_commit_is_git_head_where_there_is_one(outside_git: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=outside_git, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        cwd=outside_git,
        check=True,
    )
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=outside_git, capture_output=True, text=True
    ).stdout.strip()
    results = write(outside_git / "r.json", results_document(0))
    assert main(["history", "add", str(results)]) == 0
    assert open_store("sqlite:///i2v-history.sqlite").runs()[0].commit == head


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "results file r.json does not exist"),
        (
            {"schema": "pytest-i2v/baseline", "schema_version": 1},
            "is not a pytest-i2v results file",
        ),
        ({"schema": "pytest-i2v/results", "schema_version": 99}, "newer than this plugin reads"),
    ],
)
def test_a_bad_results_file_writes_nothing(
    outside_git: Path,
    capsys: pytest.CaptureFixture[str],
    content: dict[str, object] | None,
    expected: str,
) -> None:
    if content is not None:
        write(outside_git / "r.json", content)
    assert main(["history", "add", "r.json", "--db", "sqlite:///h.sqlite"]) == USAGE_ERROR
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert list(outside_git.glob("h.sqlite*")) == []  # not even an empty database


def test_list_of_a_missing_file_creates_none(
    outside_git: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "list", "--db", "sqlite:///none.sqlite"]) == USAGE_ERROR
    assert "history database sqlite:///none.sqlite does not exist" in capsys.readouterr().err
    assert not (outside_git / "none.sqlite").exists()


def test_a_bad_db_url_is_exit_4(outside_git: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = write(outside_git / "r.json", results_document(0))
    assert main(["history", "add", str(results), "--db", "mysql://u:pw@h/d"]) == USAGE_ERROR
    assert "error: history database URL mysql://u:***@h/d: not SQLite" in capsys.readouterr().err


TWO_TESTS = f"""
import pytest

@pytest.mark.i2v({SMALL}, seed=1)
def test_one(i2v_run):
    i2v_run()

@pytest.mark.i2v({SMALL}, seed=2)
def test_two(i2v_run):
    i2v_run()
"""


def test_each_session_is_added_as_a_run(i2v_project: pytest.Pytester) -> None:
    """The first session names the database on the command line, the second in the ini file."""
    i2v_project.makepyfile(test_two=TWO_TESTS)
    ini = next(i2v_project.path.glob("tox.ini"))
    for args in (("--i2v-history", "sqlite:///h.sqlite"), ()):
        result = i2v_project.runpytest(*args, "--i2v-json", "r.json", "-p", "no:xdist")
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(["i2v history: added run * (2 tests) to sqlite:///h.sqlite"])
        ini.write_text(ini.read_text() + "\ni2v_history = sqlite:///h.sqlite\n")
    url = f"sqlite:///{i2v_project.path / 'h.sqlite'}"
    store = open_store(url)
    assert [run.tests for run in store.runs()] == [2, 2]
    assert len(store.series("test_two.py::test_one", "time_s").points) == 2
    # the session's results file is the run the session added: adding it again adds nothing
    assert main(["history", "add", str(i2v_project.path / "r.json"), "--db", url]) == 0
    assert [run.tests for run in store.runs()] == [2, 2]


def test_a_bad_url_stops_the_session_before_the_tests(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(test_two=TWO_TESTS)
    result = i2v_project.runpytest("--i2v-history", "mysql://u:pw@h/d", "-p", "no:xdist")
    assert result.ret == USAGE_ERROR
    assert "passed" not in result.stdout.str()
    result.stderr.fnmatch_lines(["*history database URL mysql://u:***@h/d: not SQLite*"])
    assert not list(i2v_project.path.glob("*.sqlite"))


def test_under_xdist_the_controller_adds_one_run(i2v_project: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is in the test extra")
    i2v_project.makepyfile(test_two=TWO_TESTS)
    result = i2v_project.runpytest("-n", "2", "--i2v-history", "sqlite:///h.sqlite")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["i2v history: added run * (2 tests) to sqlite:///h.sqlite"])
    (run,) = open_store(f"sqlite:///{i2v_project.path / 'h.sqlite'}").runs()
    assert run.tests == 2  # both workers' records, in one run


def test_a_database_that_fails_at_the_end_is_a_line_not_a_red_run(
    i2v_project: pytest.Pytester,
) -> None:
    """The test itself puts a directory where the SQLite file was: the session still passes and
    writes its results file, and says the history was not written."""
    i2v_project.makepyfile(
        f"""
        import os, shutil
        import pytest

        @pytest.mark.i2v({SMALL})
        def test_one(i2v_run):
            i2v_run()
            for name in ("h.sqlite", "h.sqlite-wal", "h.sqlite-shm"):
                if os.path.exists(name):
                    os.remove(name)
            os.mkdir("h.sqlite")
        """
    )
    result = i2v_project.runpytest(
        "--i2v-history", "sqlite:///h.sqlite", "--i2v-json", "r.json", "-p", "no:xdist"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["i2v history NOT written: history database sqlite:///h.sqlite *"])
    assert json.loads((i2v_project.path / "r.json").read_text())["records"]
