"""Databases for the history store's tests: a SQLite file, and a fresh PostgreSQL database per test
made on the server $I2V_TEST_POSTGRES_URL names (.ci/run provides one; CI without it fails)."""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from pytest_i2v.history.store import database_url
from tests.report_fixtures import document

POSTGRES_ENV = "I2V_TEST_POSTGRES_URL"


def results_document(run: int, tests: int = 3, created: str | None = None) -> dict[str, Any]:
    """A results document of its own: run ``run``'s created time and times (run + 1 seconds)."""
    base = document()
    records = []
    for index in range(tests):
        record = copy.deepcopy(base["records"][index % len(base["records"])])
        record["nodeid"] = f"tests/test_i2v.py::test_case[{index}]"
        record["time_s"] = float(run + 1) + index / 100
        record["time_samples_s"] = [record["time_s"]] * 3
        record["outcome"] = "ok"
        record["oom"] = None
        records.append(record)
    base["records"] = records
    base["created"] = (
        created or f"2026-12-{1 + run // 1440:02d}T{run // 60 % 24:02d}:{run % 60:02d}:00+00:00"
    )
    return base


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped after it."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        if os.environ.get("CI"):
            pytest.fail(f"CI must set ${POSTGRES_ENV}: .ci/run starts PostgreSQL and exports it")
        pytest.skip(f"needs PostgreSQL: set ${POSTGRES_ENV} (.ci/run starts a server and sets it)")
    name = f"i2v_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(database_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            database_url(server)
            .set(drivername="postgresql", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Each store test runs against both back-ends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
