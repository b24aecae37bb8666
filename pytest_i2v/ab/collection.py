"""The collection pass: a quick ``pytest --collect-only`` per side lists the i2v tests the user's
pytest args select; an i2v test that only one side has is a usage error that names it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from pytest_i2v.ab.processes import (
    RAN_EXIT_CODES,
    ProcessRun,
    config_args,
    process_failed,
    pytest_argv,
    side_env,
)
from pytest_i2v.ab.workspace import Revision
from pytest_i2v.errors import I2VUsageError

COLLECT_NOTHING = 5  # pytest: no tests collected
COLLECT_ENV = "PYTEST_I2V_AB_COLLECT_OUT"
# Written into the temporary directory for the collection pass: the base may predate this module,
# so the plugin that lists the i2v tests cannot live in the package under test.
COLLECT_PLUGIN = '''"""pytest-i2v ab: lists the collected i2v tests (written by pytest_i2v.ab)."""
import json
import os


def _is_i2v(item):
    return item.get_closest_marker("i2v") is not None or "i2v_run" in getattr(
        item, "fixturenames", ()
    )


def pytest_collection_finish(session):
    nodeids = [item.nodeid for item in session.items if _is_i2v(item)]
    with open(os.environ["{env}"], "w", encoding="utf-8") as handle:
        json.dump(nodeids, handle)
'''.replace("{env}", COLLECT_ENV)
COLLECT_PLUGIN_NAME = "_pytest_i2v_ab_collect"


class RunProcess(Protocol):
    """The job's way to run one pytest process (it keeps every run for the outputs)."""

    def __call__(
        self,
        side: str,
        round_index: int,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        log: Path,
    ) -> ProcessRun: ...


def _only_on_one_side(selected: Mapping[str, list[str]], revisions: Mapping[str, Revision]) -> None:
    for side, other in (("head", "base"), ("base", "head")):
        only = [n for n in selected[side] if n not in set(selected[other])]
        if only:
            more = f" (and {len(only) - 1} more)" if len(only) > 1 else ""
            raise I2VUsageError(
                f"test {only[0]}{more} exists on the {side} side only "
                f"({revisions[side].label}); deselect it after -- (e.g. "
                f"--deselect {only[0]}) so that both sides run the same tests"
            )


def collect_tests(
    revisions: Mapping[str, Revision],
    subdir: Path,
    tmp: Path,
    pytest_args: Sequence[str],
    run_process: RunProcess,
) -> list[str]:
    """The i2v tests each side selects with the user's args; both must have the same ones."""
    plugin_dir = tmp / "collect-plugin"
    plugin_dir.mkdir()
    (plugin_dir / f"{COLLECT_PLUGIN_NAME}.py").write_text(COLLECT_PLUGIN, encoding="utf-8")
    selected: dict[str, list[str]] = {}
    for side, revision in revisions.items():
        listing = tmp / f"collect-{side}.json"
        collect_only = ["--collect-only", "-q", "-p", COLLECT_PLUGIN_NAME]
        argv = pytest_argv([*pytest_args, *config_args(revision.root, subdir, tmp), *collect_only])
        env = side_env(revision.root, [plugin_dir], {COLLECT_ENV: str(listing)})
        log = tmp / "logs" / f"{side}-collect.log"
        run = run_process(side, -1, argv, revision.root / subdir, env, log)
        if run.exit_code not in (*RAN_EXIT_CODES, COLLECT_NOTHING):
            raise process_failed(run, f"collecting the tests on the {side} side ({revision.label})")
        found = json.loads(listing.read_text(encoding="utf-8")) if listing.is_file() else []
        selected[side] = found
    if not selected["base"] and not selected["head"]:
        raise I2VUsageError(
            "the pytest args select no i2v test on either side; pass the tests to compare after --"
        )
    _only_on_one_side(selected, revisions)
    return selected["base"]
