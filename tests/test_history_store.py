"""The history store on a real database: SQLite always, PostgreSQL where $I2V_TEST_POSTGRES_URL
names a server (CI must: .ci/run starts one). No mocks: each test has a database of its own."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, func, inspect, select, text

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.history.schema import MIGRATIONS, results, runs
from pytest_i2v.history.store import database_url, open_store
from tests.history_fixtures import (  # noqa: F401
    POSTGRES_ENV,
    postgres_url,
    results_document,
    store_url,
)


def counts(url: str) -> tuple[int, int]:
    """Rows in ``runs`` and ``results``, read past the store."""
    engine = create_engine(database_url(url))
    with engine.connect() as connection:
        found = tuple(
            int(connection.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (runs, results)
        )
    engine.dispose()
    return found[0], found[1]


def test_a_run_is_added_once(store_url: str) -> None:  # noqa: F811
    store = open_store(store_url)
    first = store.add_run(results_document(0), commit="abc123")
    again = store.add_run(results_document(0), commit="other")
    assert first.added and first.tests == 3
    assert not again.added and again.run_id == first.run_id
    assert counts(store_url) == (1, 3)
    (run,) = store.runs()
    assert run.commit == "abc123" and run.tests == 3 and run.profile == "h100-80gb"
    store.close()


def test_runs_that_differ_are_different_runs(store_url: str) -> None:  # noqa: F811
    """Same second, other machine: the environment is in the run's identity."""
    store = open_store(store_url)
    one = results_document(0)
    other = results_document(0)
    other["environment"] = {**other["environment"], "gpu_name": "NVIDIA A100"}
    assert store.add_run(one).added and store.add_run(other).added
    assert counts(store_url) == (2, 6)
    store.close()


def test_series_is_oldest_first_whatever_the_order_added(store_url: str) -> None:  # noqa: F811
    store = open_store(store_url)
    for run in (2, 0, 1):  # added out of order: the series follows the time each was written
        store.add_run(results_document(run), commit=f"c{run}")
    # two runs written in the same second: the order they were added in
    same = "2026-12-09T00:00:00+00:00"
    store.add_run(results_document(7, created=same), commit="c7")
    store.add_run(results_document(5, created=same), commit="c5")
    series = store.series("tests/test_i2v.py::test_case[1]", "time_s")
    assert [p.commit for p in series.points] == ["c0", "c1", "c2", "c7", "c5"]
    assert [p.value for p in series.points] == [1.01, 2.01, 3.01, 8.01, 6.01]
    assert series.metric == "time_s" and series.nodeid == "tests/test_i2v.py::test_case[1]"
    assert len({p.software for p in series.points}) == 1  # one software stack throughout
    assert (
        store.series("tests/test_i2v.py::test_case[1]", "reserved_bytes").points[0].value
        == (results_document(0)["records"][1]["peak_memory"]["reserved_bytes"])
    )
    store.close()


def test_tests_lists_each_test_with_its_metrics(store_url: str) -> None:  # noqa: F811
    store = open_store(store_url)
    document = results_document(0, tests=2)
    document["records"][1]["time_s"] = None  # an OOM: no total time, its peaks still kept
    document["records"][1]["outcome"] = "oom"
    store.add_run(document)
    listed = dict(store.tests())
    assert set(listed) == {"tests/test_i2v.py::test_case[0]", "tests/test_i2v.py::test_case[1]"}
    assert "time_s" in listed["tests/test_i2v.py::test_case[0]"]
    assert "time_s" not in listed["tests/test_i2v.py::test_case[1]"]
    assert "allocated_bytes" in listed["tests/test_i2v.py::test_case[1]"]
    assert store.series("tests/test_i2v.py::test_case[1]", "time_s").points == ()
    with pytest.raises(I2VUsageError, match=r"metric 'fps' is not kept.*use one of time_s"):
        store.series("tests/test_i2v.py::test_case[0]", "fps")
    store.close()


def test_a_run_is_all_or_nothing(store_url: str) -> None:  # noqa: F811
    """The second record's insert fails (the same test twice): the run's row goes too."""
    store = open_store(store_url)
    document = results_document(0, tests=2)
    document["records"][1]["nodeid"] = document["records"][0]["nodeid"]
    with pytest.raises(I2VUsageError, match=r"cannot be added .*nothing was written"):
        store.add_run(document, where="twice.json")
    assert counts(store_url) == (0, 0)
    assert store.add_run(results_document(1)).added  # the store still takes runs
    store.close()


def _add_note_column(connection: Connection) -> None:
    """A version 2 for the test: a column added to ``runs``."""
    connection.execute(text("ALTER TABLE runs ADD COLUMN note VARCHAR(100)"))


def test_an_older_database_is_migrated_forward(store_url: str) -> None:  # noqa: F811
    store = open_store(store_url)  # at version 1: this code's
    store.add_run(results_document(0))
    store.close()
    newer = open_store(store_url, migrations=(*MIGRATIONS, _add_note_column))
    assert newer.runs()[0].tests == 3  # the run kept
    newer.close()
    engine = create_engine(database_url(store_url))
    with engine.connect() as connection:
        assert "note" in {c["name"] for c in inspect(connection).get_columns("runs")}
        assert connection.execute(text("SELECT version FROM schema_version")).scalar_one() == 2
    engine.dispose()


def test_a_newer_database_is_refused_in_one_line(store_url: str) -> None:  # noqa: F811
    open_store(store_url, migrations=(*MIGRATIONS, _add_note_column)).close()
    with pytest.raises(I2VUsageError) as refused:
        open_store(store_url)
    message = str(refused.value)
    assert "schema version 2, newer than this pytest-i2v writes (1); upgrade pytest-i2v" in message
    assert "\n" not in message


def test_an_empty_database_is_built_at_version_1(store_url: str) -> None:  # noqa: F811
    open_store(store_url).close()
    engine = create_engine(database_url(store_url))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version FROM schema_version")).scalar_one() == 1
        assert {"runs", "results", "schema_version"} <= set(inspect(connection).get_table_names())
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:pw@host/db", "history database URL mysql://u:***@host/db: not SQLite or"),
        ("not a url", "history database URL 'not a url' cannot be read; use sqlite:///PATH"),
        (
            "postgresql://i2v:hunter2@127.0.0.1:9/none",
            "history database postgresql://i2v:***@127.0.0.1:9/none cannot be opened (",
        ),
    ],
)
def test_a_bad_url_is_one_line_with_the_password_masked(url: str, expected: str) -> None:
    with pytest.raises(I2VUsageError) as bad:
        open_store(url)
    message = str(bad.value)
    assert message.startswith(expected)
    assert "\n" not in message and "hunter2" not in message and "pw@" not in message


def test_a_sqlite_file_in_a_missing_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'absent' / 'h.sqlite'}"
    with pytest.raises(I2VUsageError, match=r"cannot be opened .*its directory exists"):
        open_store(url)


def _writer(url: str, run_numbers: list[int], start: Any, out: Any) -> None:
    """One process adding its runs, all started together."""
    store = open_store(url)
    start.wait()
    out.put([(n, store.add_run(results_document(n)).added) for n in run_numbers])
    store.close()


def test_concurrent_writers_lose_nothing_and_double_nothing(store_url: str) -> None:  # noqa: F811
    """Four processes at once: each adds two runs of its own and the one run they share."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    shared = 100
    work = [[shared, 2 * i, 2 * i + 1] for i in range(4)]
    open_store(store_url).close()  # the schema first: the writers race on runs, not on tables
    processes = [context.Process(target=_writer, args=(store_url, w, start, out)) for w in work]
    for process in processes:
        process.start()
    start.set()
    reports = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    added = [(n, was_added) for report in reports for n, was_added in report]
    assert sorted(n for n, was_added in added if was_added) == [*range(8), shared]
    assert counts(store_url) == (9, 27)


def test_the_first_open_of_a_database_by_two_processes(store_url: str) -> None:  # noqa: F811
    """Both build the schema at once: one does, the other waits and finds it built."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    processes = [
        context.Process(target=_writer, args=(store_url, [n], start, out)) for n in range(2)
    ]
    for process in processes:
        process.start()
    start.set()
    reports = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert sorted(report[0][1] for report in reports) == [True, True]
    assert counts(store_url) == (2, 6)


def test_a_server_gone_since_the_open_is_one_line(postgres_url: str) -> None:  # noqa: F811
    """The database is dropped under the store: the add fails with the fix, and no traceback."""
    store = open_store(postgres_url)
    name = database_url(postgres_url).database
    admin = create_engine(database_url(os.environ[POSTGRES_ENV]), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()
    with pytest.raises(I2VUsageError) as failed:
        store.add_run(results_document(0), where="r.json")
    message = str(failed.value)
    assert message.startswith(f"history database {store.url} failed while adding r.json (")
    assert message.endswith("nothing was written: add the results file again with history add")
    assert "\n" not in message and "i2v-ci-only" not in message
