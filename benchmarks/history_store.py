"""The history store at size: N runs of M tests added one by one into SQLite, and into PostgreSQL
where a URL is given, side by side.

Each run is a results document of its own (its time, its figures), added with ``add_run`` as the
plugin adds it: parsed into typed records, one transaction. Measured: the time to add a run (its
median, 95th percentile, and the median of the first and the last 100, to show whether it grows
with the store), the database's size, and the time to read one test's series, ``tests()`` and
``runs()`` at the end.

    python benchmarks/history_store.py [--runs 10000] [--tests 60] [--postgres URL]
        [--json FILE] [--txt FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from pytest_i2v.history.store import HistoryStore, database_url, open_store
from pytest_i2v.record.document import RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION
from pytest_i2v.record.record import GenerationRecord

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
ENVIRONMENT = {
    "device": "cuda",
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "gpu_memory_gib": 79.2,
    "driver": "560.35",
    "cuda": "12.8",
    "torch": "2.13.0",
    "diffusers": "0.42.1",
    "transformers": "5.5.4",
    "python": "3.11.7",
    "plugin": "0.1.0",
    "profile": "h100-80gb",
}


def template_record() -> dict[str, Any]:
    """One measured test, as the plugin writes it (every field, of its type)."""
    return GenerationRecord.from_partial(
        {
            "nodeid": "suites/test_sweep.py::test_sweep[0]",
            "config": {"width": 512, "height": 512, "frames": 16, "steps": 50, "dtype": "fp16"},
            "config_id": "a228b144d386",
            "repeats": 5,
            "warmup": 1,
            "time_s": 10.0,
            "time_samples_s": [10.0] * 5,
            "stages": {"encode_s": 0.4, "denoise_s": 9.0, "step_s": 0.18, "decode_s": 0.6},
            "peak_memory": {"allocated_bytes": 9 * 2**30, "reserved_bytes": 10 * 2**30},
        }
    ).to_dict()


def run_document(run: int, tests: int, template: dict[str, Any], rng: random.Random) -> Any:
    records = []
    for index in range(tests):
        record = copy.deepcopy(template)
        total = (5.0 + index) * rng.uniform(0.98, 1.02)
        record["nodeid"] = f"suites/test_sweep.py::test_sweep[{index}]"
        record["time_s"] = total
        record["time_samples_s"] = [total] * 5
        record["stages"]["step_s"] = total / 55
        records.append(record)
    return {
        "schema": RESULTS_SCHEMA,
        "schema_version": RESULTS_SCHEMA_VERSION,
        "created": (START + timedelta(minutes=run)).isoformat(timespec="seconds"),
        "environment": ENVIRONMENT,
        "profile": {"name": "h100-80gb"},
        "settings": {},
        "pipelines": [],
        "records": records,
    }


def measure(store: HistoryStore, runs: int, tests: int, size: Callable[[], int]) -> dict[str, Any]:
    template = template_record()
    rng = random.Random(0)
    add_s: list[float] = []
    for run in range(runs):
        document = run_document(run, tests, template, rng)
        started = time.perf_counter()
        added = store.add_run(document, commit=f"{run:012x}")
        add_s.append(time.perf_counter() - started)
        assert added.added, f"run {run} was not added"
    again = time.perf_counter()
    assert not store.add_run(run_document(0, tests, template, random.Random(0))).added
    readd_s = time.perf_counter() - again
    nodeid = f"suites/test_sweep.py::test_sweep[{tests // 2}]"
    series_s = timed(lambda: store.series(nodeid, "time_s"), 20)
    points = len(store.series(nodeid, "time_s").points)
    assert points == runs, f"the series has {points} points, not {runs}"
    head, tail = add_s[: min(100, runs)], add_s[-min(100, runs) :]
    return {
        "runs": runs,
        "tests_per_run": tests,
        "add_ms_median": statistics.median(add_s) * 1e3,
        "add_ms_p95": sorted(add_s)[int(0.95 * (len(add_s) - 1))] * 1e3,
        "add_ms_first_100": statistics.median(head) * 1e3,
        "add_ms_last_100": statistics.median(tail) * 1e3,
        "add_s_total": sum(add_s),
        "readd_ms": readd_s * 1e3,
        "size_mb": size() / 1e6,
        "series_ms_median": series_s * 1e3,
        "series_points": points,
        "tests_ms": timed(store.tests, 5) * 1e3,
        "runs_ms": timed(store.runs, 5) * 1e3,
    }


def timed(call: Callable[[], object], times: int) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


def sqlite_size(path: Path) -> Callable[[], int]:
    def size() -> int:
        engine = create_engine(f"sqlite:///{path}")
        with engine.connect() as connection:  # the WAL folded into the file first
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))

    return size


def postgres_size(url: str) -> Callable[[], int]:
    def size() -> int:
        engine = create_engine(database_url(url))
        with engine.connect() as connection:
            found = connection.execute(text("SELECT pg_database_size(current_database())"))
            value = int(found.scalar_one())
        engine.dispose()
        return value

    return size


def fresh_postgres(server: str, name: str) -> str:
    """A new empty database on the server (dropped first if a previous run left it)."""
    admin = create_engine(database_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    fresh: str = database_url(server).set(database=name).render_as_string(hide_password=False)
    return fresh


ROWS = (
    ("add a run, median (ms)", "add_ms_median"),
    ("add a run, 95th percentile (ms)", "add_ms_p95"),
    ("add a run, first 100 (ms)", "add_ms_first_100"),
    ("add a run, last 100 (ms)", "add_ms_last_100"),
    ("all adds (s)", "add_s_total"),
    ("the same run again (ms)", "readd_ms"),
    ("database size (MB)", "size_mb"),
    ("one test's series (ms)", "series_ms_median"),
    ("tests() (ms)", "tests_ms"),
    ("runs() (ms)", "runs_ms"),
)


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    lines = [f"{'':34}" + "".join(f"{n:>14}" for n in names)]
    for label, key in ROWS:
        lines.append(f"{label:34}" + "".join(f"{results[n][key]:>14.2f}" for n in names))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs to add (default 10000)")
    parser.add_argument("--tests", type=int, default=60, help="tests per run (default 60)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also a PostgreSQL server (postgresql://USER:PASSWORD@HOST/DB); the benchmark "
        "makes and keeps a database i2v_history_benchmark on it",
    )
    today = date.today().isoformat()
    default = ROOT / "benchmarks" / "results" / f"history_store-{today}"
    parser.add_argument("--json", type=Path, default=default.with_suffix(".json"))
    parser.add_argument("--txt", type=Path, default=default.with_suffix(".txt"))
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "history.sqlite"
        store = open_store(f"sqlite:///{path}")
        results["SQLite"] = measure(store, args.runs, args.tests, sqlite_size(path))
        store.close()
    if args.postgres:
        url = fresh_postgres(args.postgres, "i2v_history_benchmark")
        store = open_store(url)
        results["PostgreSQL"] = measure(store, args.runs, args.tests, postgres_size(url))
        store.close()
    header = (
        f"history store, {args.runs} runs of {args.tests} tests, {today}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    text_out = f"{header}\n\n{table(results)}\n"
    print(text_out, end="")
    args.txt.write_text(text_out)
    args.json.write_text(json.dumps({"date": today, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
