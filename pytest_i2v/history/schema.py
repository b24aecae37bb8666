"""The history database's tables (SQLAlchemy Core) and the ordered migrations that build them.

``runs``: one row per results document added, ``results``: one row per test of a run, its figures
in columns named by ``pytest_i2v.metrics`` (one wide row, not a row per figure: 60 tests a run stay
60 rows, and a series reads one column). ``schema_version``: the number of migration steps applied.

A database is migrated forward when it is opened; one of a newer version than this code knows is
refused. A later step may add a column or a table; the steps already released never change, so
every database, whatever version it was left at, ends in the same schema."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
)

from pytest_i2v.metrics import (
    ALLOCATED_BYTES,
    DECODE_S,
    DENOISE_S,
    DEVICE_BYTES,
    ENCODE_S,
    HOST_RSS_BYTES,
    RESERVED_BYTES,
    STEP_S,
    TIME_S,
)

METADATA = MetaData()

schema_version = Table(
    "schema_version",
    METADATA,
    Column("version", Integer, nullable=False),
)

runs = Table(
    "runs",
    METADATA,
    # The order runs were added in, for runs created in the same second (the run id is a digest,
    # with no order of its own).
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False, unique=True),
    Column("commit", String(64)),
    Column("created", String(40), nullable=False),  # ISO 8601, UTC: sorts as text
    Column("machine", Text, nullable=False),  # JSON: the fingerprint's machine keys
    Column("software_digest", String(32), nullable=False),
    Column("software", Text, nullable=False),  # JSON: the fingerprint's software keys
    Column("profile", String(100)),
    Column("probe", Text),  # JSON: the machine-speed probe at the start and end; None: not run
    Column("tests", Integer, nullable=False),
    Column("added_at", String(40), nullable=False),
)

# The figures a series can be read of: each is a column of ``results`` of the metric's name.
TIME_COLUMNS = (TIME_S, ENCODE_S, DENOISE_S, STEP_S, DECODE_S)
BYTES_COLUMNS = (ALLOCATED_BYTES, RESERVED_BYTES, DEVICE_BYTES, HOST_RSS_BYTES)
SERIES_METRICS = TIME_COLUMNS + BYTES_COLUMNS

results = Table(
    "results",
    METADATA,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("nodeid", String(1000), primary_key=True),
    Column("config_id", String(64)),
    Column("config", Text, nullable=False),  # JSON: the generation config
    Column("outcome", String(20), nullable=False),  # "ok" or "oom" (what was measured)
    Column("decision", String(40)),  # what the test came to (the gate's outcome kind)
    *(Column(name, Float) for name in TIME_COLUMNS),
    *(Column(name, BigInteger) for name in BYTES_COLUMNS),
    Column("peak_metric", String(40)),  # the headline peak's metric (verdict.peak)
    Column("peak_bytes", BigInteger),
    Column("work_digest", String(64)),  # the work signature's digest; None: not profiled
    Column("fidelity_verdict", String(40)),
    Column("psnr_db", Float),  # the output's worst-frame PSNR against its reference
)
Index("results_by_test", results.c.nodeid)


def _version_1(connection: Connection) -> None:
    """The first schema: runs, results and the version. (It creates the tables as defined above;
    the step that first changes one gives this step a frozen copy of the version 1 table.)"""
    for table in (schema_version, runs, results):
        table.create(connection)  # with its indexes


# In order: step N takes a database from version N-1 to N. Append, never edit a released step.
Migration = Callable[[Connection], None]
MIGRATIONS: tuple[Migration, ...] = (_version_1,)


def current_version(connection: Connection) -> int:
    """The version a database is at: 0 for an empty one."""
    if not inspect(connection).has_table("schema_version"):
        return 0
    found = connection.execute(select(schema_version.c.version)).scalar()
    return int(found or 0)


def migrate(connection: Connection, steps: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply the steps a database lacks, inside the caller's transaction; returns the version it
    was at. A database newer than ``steps`` is left as it is (the caller refuses it)."""
    found = current_version(connection)
    for step in steps[found:]:
        step(connection)
    if found < len(steps):
        connection.execute(schema_version.delete())
        connection.execute(schema_version.insert().values(version=len(steps)))
    return found
