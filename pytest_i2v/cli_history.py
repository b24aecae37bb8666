"""``python -m pytest_i2v history``: the history store from the command line.

history add results.json [--db URL] [--commit SHA]   add one run (idempotent)
history list [--db URL]                              the runs, oldest first
history changes [--db URL] [--test TEXT] [--metric NAME] [--otava DIR]
                                                     change points and exact events
history site OUT/ [--db URL]                         the static site, one page per suite file
bisect --good A --bad B [--rounds N] [-- pytest args] the first commit whose run differs"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_i2v.ab.bisect import BisectOptions, run_bisect
from pytest_i2v.ab.processes import ABProcessFailed
from pytest_i2v.history.changes import SeriesChanges
from pytest_i2v.history.findings import collect, format_findings, search
from pytest_i2v.history.otava import OTAVA_CONFIG, otava_files
from pytest_i2v.history.series import Series
from pytest_i2v.history.site import build_site
from pytest_i2v.history.store import DEFAULT_URL, HistoryStore, open_store
from pytest_i2v.record.commit import git_commit
from pytest_i2v.record.document import read_results
from pytest_i2v.storage import write_text_atomic

DB_HELP = (
    f"the history database: sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB "
    f"(default {DEFAULT_URL}, in the current directory)"
)


def add_history_command(commands: Any) -> None:
    history = commands.add_parser("history", help="keep every run's results in a database")
    actions = history.add_subparsers(dest="history_action", required=True)
    add = actions.add_parser(
        "add", help="add a results JSON as one run (added once, however often)"
    )
    add.add_argument("results", help="a results JSON written by --i2v-json")
    add.add_argument("--db", default=DEFAULT_URL, metavar="URL", help=DB_HELP)
    add.add_argument(
        "--commit",
        metavar="SHA",
        help="the commit the run measured (default: the document's, else git's HEAD here)",
    )
    add.set_defaults(handler=_cmd_add)
    listing = actions.add_parser("list", help="the runs in the history, oldest first")
    listing.add_argument("--db", default=DEFAULT_URL, metavar="URL", help=DB_HELP)
    listing.set_defaults(handler=_cmd_list)
    changes = actions.add_parser(
        "changes", help="where each test's figures moved their level, and the exact events"
    )
    changes.add_argument("--db", default=DEFAULT_URL, metavar="URL", help=DB_HELP)
    changes.add_argument("--test", metavar="TEXT", help="only the tests whose node id has TEXT")
    changes.add_argument("--metric", metavar="NAME", help="only this metric (e.g. time_s)")
    changes.add_argument(
        "--otava", metavar="DIR", help="also write Apache Otava's CSV input and otava.yaml here"
    )
    changes.set_defaults(handler=_cmd_changes)
    site = actions.add_parser("site", help="the history as a static site (no network)")
    site.add_argument("out", metavar="OUT", help="the directory to write index.html and pages to")
    site.add_argument("--db", default=DEFAULT_URL, metavar="URL", help=DB_HELP)
    site.set_defaults(handler=_cmd_site)


def _cmd_add(args: argparse.Namespace) -> str:
    # The document first: a file that cannot be read leaves no database behind.
    document = read_results(Path(args.results))
    commit = args.commit or document.get("commit") or git_commit(Path.cwd())
    store = open_store(args.db)
    try:
        added = store.add_run(document, commit, where=args.results)
    finally:
        store.close()
    if added.added:
        return f"added run {added.run_id} ({added.tests} tests) to {store.url}"
    return f"run {added.run_id} is already in {store.url}: nothing added"


def _cmd_list(args: argparse.Namespace) -> str:
    store = open_store(args.db, create=False)
    try:
        return format_runs(store)
    finally:
        store.close()


def _findings(args: argparse.Namespace) -> tuple[list[list[Series]], list[SeriesChanges]]:
    store = open_store(args.db, create=False)
    try:
        tests = collect(store, getattr(args, "test", None), getattr(args, "metric", None))
    finally:
        store.close()
    return tests, search(tests)


def _write_all(out: Path, files: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_text_atomic(out / name, text)


def _cmd_changes(args: argparse.Namespace) -> str:
    tests, found = _findings(args)
    if args.otava:
        files = otava_files(tests)
        _write_all(Path(args.otava), files)
        return (
            format_findings(found)
            + f"\nOtava's input: {len(files) - 1} CSV file(s) and "
            + (f"{OTAVA_CONFIG} in {args.otava}")
        )
    return format_findings(found)


def _cmd_site(args: argparse.Namespace) -> str:
    _, found = _findings(args)
    files = build_site(found)
    _write_all(Path(args.out), files)
    return f"wrote the history site: {len(files)} page(s) in {args.out}/ (open index.html)"


def format_runs(store: HistoryStore) -> str:
    rows = store.runs()
    if not rows:
        return f"no runs in {store.url}"
    header = ("run", "created", "commit", "profile", "tests", "software")
    table = [header] + [
        (r.run_id, r.created, r.commit or "-", r.profile or "-", str(r.tests), r.software_digest)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    return "\n".join([*lines, f"{len(rows)} run(s) in {store.url}"])


def _cmd_bisect(args: argparse.Namespace) -> str:
    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:  # argparse keeps the separator on some Python versions
        pytest_args = pytest_args[1:]
    options = BisectOptions(args.good, args.bad, tuple(pytest_args), args.rounds, args.min_effect)
    try:
        result = run_bisect(options, Path.cwd())
    except ABProcessFailed as exc:  # the failed probe's log tail, then the one error line
        print(exc.log_tail, file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    return result.text()


def add_bisect_command(commands: Any) -> None:
    bisect = commands.add_parser(
        "bisect", help="the first commit between --good and --bad whose run differs"
    )
    bisect.add_argument("--good", required=True, metavar="REF", help="a commit that runs as before")
    bisect.add_argument("--bad", required=True, metavar="REF", help="a later commit that differs")
    bisect.add_argument(
        "--rounds",
        type=int,
        default=4,
        metavar="N",
        help="the most A/B rounds per probe when only the time changed (default 4)",
    )
    bisect.add_argument(
        "--min-effect",
        type=float,
        metavar="PCT",
        help="the A/B jobs' minimum effect in per cent (default: ab's)",
    )
    bisect.add_argument(
        "pytest_args", nargs="*", metavar="-- pytest args", help="passed to every probe"
    )
    bisect.set_defaults(handler=_cmd_bisect)
