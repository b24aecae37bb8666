"""The history store: every run's results in one database, SQLite by default (one file) or
PostgreSQL (many runners, one history), through SQLAlchemy Core.

Adding a run is all or nothing (one transaction) and idempotent: the run id is a digest of the
document (``history.rows``), unique in ``runs``, inserted with the dialect's ON CONFLICT DO NOTHING,
so the same file added twice, or by two processes at once, is one run. SQLite runs in WAL mode
with a busy timeout and takes its write lock when a transaction begins, so concurrent writers wait
for each other instead of failing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.history.rows import RunRows, run_rows
from pytest_i2v.history.schema import (
    MIGRATIONS,
    SERIES_METRICS,
    Migration,
    migrate,
    results,
    runs,
)
from pytest_i2v.history.series import Series, SeriesPoint

DEFAULT_URL = "sqlite:///i2v-history.sqlite"
BUSY_TIMEOUT_MS = 60_000  # how long a SQLite writer waits for another's lock
URL_FORMS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
# Two processes opening a new PostgreSQL database at once: one migrates, the other waits.
MIGRATION_LOCK = 0x693276  # pg_advisory_xact_lock key ("i2v")


@dataclass(frozen=True)
class AddResult:
    run_id: str
    added: bool  # False: the run was already in the store, nothing was written
    tests: int


@dataclass(frozen=True)
class RunSummary:
    """One row of ``runs``, for listing."""

    run_id: str
    commit: str | None
    created: str
    profile: str | None
    tests: int
    software_digest: str
    added_at: str


class HistoryStore:
    def __init__(self, engine: Engine, shown_url: str):
        self._engine = engine
        self.url = shown_url  # the password masked

    def close(self) -> None:
        self._engine.dispose()

    def add_run(
        self, document: Mapping[str, Any], commit: str | None = None, where: str = "results"
    ) -> AddResult:
        """Add one results document (its schema checked: ``record.document.read_results``)."""
        rows = run_rows(document, commit, where, datetime.now(timezone.utc))
        try:
            added = self._insert(rows)
        except IntegrityError as exc:  # the document's own fault (a test in it twice)
            raise I2VUsageError(
                f"{where} cannot be added to {self.url} ({_first_line(exc)}); nothing was "
                "written: regenerate the results file with this plugin"
            ) from None
        except DBAPIError as exc:  # the database's (the server went away since it was opened)
            raise I2VUsageError(
                f"history database {self.url} failed while adding {where} ({_first_line(exc)}); "
                "nothing was written: add the results file again with history add"
            ) from None
        return AddResult(rows.run_id, added, len(rows.results))

    def _insert(self, rows: RunRows) -> bool:
        """The run and its tests in one transaction: all of it, or nothing."""
        insert = _insert_for(self._engine.dialect.name)
        with self._engine.begin() as connection:
            # RETURNING, not rowcount: a driver may report -1 rows for a statement it cannot count
            statement = (
                insert(runs).values(rows.run).on_conflict_do_nothing(index_elements=["run_id"])
            )
            added = connection.execute(statement.returning(runs.c.seq)).first() is not None
            if added and rows.results:
                connection.execute(results.insert(), list(rows.results))
        return added

    def series(self, nodeid: str, metric: str) -> Series:
        """One test's metric over the runs, oldest first (by the time each run was written, then
        the order the runs were added in); runs where the test has no figure are left out."""
        if metric not in SERIES_METRICS:
            raise I2VUsageError(
                f"metric {metric!r} is not kept in the history; use one of "
                f"{', '.join(SERIES_METRICS)}"
            )
        value = results.c[metric]
        query = (
            select(
                runs.c.run_id,
                runs.c.commit,
                runs.c.created,
                value,
                results.c.work_digest,
                runs.c.software_digest,
            )
            .join(runs, runs.c.run_id == results.c.run_id)
            .where(results.c.nodeid == nodeid, value.is_not(None))
            .order_by(runs.c.created, runs.c.seq)
        )
        with self._engine.connect() as connection:
            points = tuple(
                SeriesPoint(row[0], row[1], row[2], float(row[3]), row[4], row[5])
                for row in connection.execute(query)
            )
        return Series(nodeid, metric, points)

    def tests(self) -> list[tuple[str, tuple[str, ...]]]:
        """Each test in the store, with the metrics it has at least one figure of."""
        counts = [func.count(results.c[m]) for m in SERIES_METRICS]
        query = select(results.c.nodeid, *counts).group_by(results.c.nodeid)
        with self._engine.connect() as connection:
            rows = connection.execute(query.order_by(results.c.nodeid)).all()
        return [
            (row[0], tuple(m for m, n in zip(SERIES_METRICS, row[1:], strict=True) if n))
            for row in rows
        ]

    def runs(self) -> list[RunSummary]:
        """The runs, oldest first."""
        columns = [runs.c[name] for name in RunSummary.__dataclass_fields__]
        query = select(*columns).order_by(runs.c.created, runs.c.seq)
        with self._engine.connect() as connection:
            return [RunSummary(*row) for row in connection.execute(query)]


def open_store(
    url: str | None = None,
    migrations: tuple[Migration, ...] = MIGRATIONS,
    create: bool = True,
) -> HistoryStore:
    """The store at ``url`` (default ``sqlite:///i2v-history.sqlite``), migrated to this code's
    schema version; a bad URL, a database that cannot be reached or a newer schema is one
    ``I2VUsageError`` naming the URL (its password masked) and the fix. ``create=False``: a SQLite
    file that does not exist is an error, not a new empty history (a reader never makes one)."""
    parsed = database_url(url or DEFAULT_URL)
    shown = shown_url(url or DEFAULT_URL)
    path = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if not create and path not in (None, "", ":memory:") and not Path(str(path)).exists():
        raise I2VUsageError(
            f"history database {shown} does not exist; add a run first "
            "(python -m pytest_i2v history add results.json) or pass --db URL"
        )
    engine = _engine(parsed, shown)
    try:
        with engine.begin() as connection:
            found = _migrate(connection, migrations)
    except DBAPIError as exc:
        engine.dispose()
        fix = (
            "check the path, and that its directory exists and may be written"
            if parsed.get_backend_name() == "sqlite"
            else "check the URL, that the server is running and that the role may connect"
        )
        raise I2VUsageError(
            f"history database {shown} cannot be opened ({_first_line(exc)}); {fix}"
        ) from None
    if found > len(migrations):
        engine.dispose()
        raise I2VUsageError(
            f"history database {shown} is at schema version {found}, newer than this pytest-i2v "
            f"writes ({len(migrations)}); upgrade pytest-i2v"
        )
    return HistoryStore(engine, shown)


def database_url(url: str) -> URL:
    """The SQLAlchemy URL of a history URL: ``postgresql://`` gets the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise I2VUsageError(
            f"history database URL {url!r} cannot be read; use {URL_FORMS}"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and parsed.get_driver_name() == "pysqlite":
        return parsed
    raise I2VUsageError(
        f"history database URL {shown_url(url)}: not SQLite or PostgreSQL; use {URL_FORMS}"
    )


def shown_url(url: str) -> str:
    """The URL as the user wrote it, its password masked: the one form errors and lines show."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)


def _engine(url: URL, shown: str) -> Engine:
    try:
        if url.get_backend_name() != "sqlite":
            return create_engine(url, pool_pre_ping=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise I2VUsageError(f"history database URL {shown}: {exc}; use {URL_FORMS}") from None
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (below), not the sqlite3 module, whose deferred BEGIN lets two
    # writers both read and then deadlock on the upgrade to a write lock.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _migrate(connection: Connection, steps: tuple[Migration, ...]) -> int:
    """The version the database was at (it is at the steps' now, unless it was newer)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    return migrate(connection, steps)


def _insert_for(dialect: str) -> Any:
    """The dialect's INSERT, the one with ON CONFLICT DO NOTHING."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _first_line(exc: DBAPIError) -> str:
    return (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
