"""``python -m pytest_i2v bisect --good A --bad B [--rounds N] [--min-effect PCT] -- <pytest
args>``: the first commit whose run differs (``pytest_i2v.bisect``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_i2v.ab.processes import ABProcessFailed
from pytest_i2v.bisect import BisectOptions, run_bisect


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
