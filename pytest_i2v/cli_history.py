"""``python -m pytest_i2v history``: the history store from the command line.

history add results.json [--db URL] [--commit SHA]   add one run (idempotent)
history list [--db URL]                              the runs, oldest first"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pytest_i2v.history.store import DEFAULT_URL, HistoryStore, open_store
from pytest_i2v.record.commit import git_commit
from pytest_i2v.record.document import read_results

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
