"""``python -m pytest_i2v ab``: refs, worktrees, the ABBA order, cleanup, and the job end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_i2v import ab
from pytest_i2v.ab import processes as ab_processes
from pytest_i2v.ab.collection import COLLECT_ENV
from pytest_i2v.ab.job import OUTPUTS
from pytest_i2v.ab.meta import abba_order
from pytest_i2v.ab.outputs import metric_label
from pytest_i2v.ab.results_doc import RoundResults
from pytest_i2v.cli import main as cli_main
from pytest_i2v.record.document import RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION
from pytest_i2v.record.record import GenerationRecord

ROOT = Path(__file__).resolve().parents[1]
REAL_RUN_LOGGED = ab_processes.run_logged

PYTEST_INI = """\
[pytest]
i2v_gpu_profile = cpu
i2v_allow_profile_mismatch = true
i2v_repeats = 5
i2v_warmup = 1
filterwarnings = ignore::FutureWarning
"""

SUITE = """\
import pytest


@pytest.mark.i2v(width=256, height=256, frames=2, steps=50)
def test_steady(i2v_run):
    assert i2v_run().outcome == "ok"


@pytest.mark.i2v(width=256, height=256, frames=2, steps=50)
def test_slowed(slow_unet, i2v_run):
    assert i2v_run().outcome == "ok"


@pytest.mark.i2v(width=256, height=256, frames=2, steps=50)
def test_extra_op(extra_op, i2v_run):
    assert i2v_run().outcome == "ok"


def test_plain_unit():
    assert 1 + 1 == 2
"""

CONFTEST_BASE = """\
import pytest


@pytest.fixture
def slow_unet():
    yield


@pytest.fixture
def extra_op():
    yield
"""

# The head commit of the done-when test: 20 ms more per UNet call, for test_slowed only. On the
# virtual clock (tests/conftest.py's virtual_time) that is exactly 20 ms per call; in real time it
# is a sleep, whose share of a process depends on the machine's speed that day.
CONFTEST_SLOW = """\
import pytest

from pytest_i2v.simulated_plugin import add_work


@pytest.fixture
def slow_unet(i2v_pipeline):
    handle = i2v_pipeline.unet.register_forward_pre_hook(lambda module, args: add_work(0.02))
    yield
    handle.remove()
"""
# ... and one more matrix product after every UNet call of test_extra_op: on the virtual clock it
# costs no time at all, so only the work signature can see it.
CONFTEST_HEAD = (
    CONFTEST_SLOW
    + """
import torch


@pytest.fixture
def extra_op(i2v_pipeline):
    weight = torch.ones(768, 768)

    def extra(module, args, output):
        torch.mm(weight, weight)

    handle = i2v_pipeline.unet.register_forward_hook(extra)
    yield
    handle.remove()
"""
)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-c",
            "user.name=ab-test",
            "-c",
            "user.email=ab@test",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def worktree_count(repo: Path) -> int:
    return len(git(repo, "worktree", "list").strip().splitlines())


@pytest.fixture
def suite_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway git repository holding the tiny suite, committed; the job's temporary files go to
    tmp_path/tmp (checked empty afterwards), and the children import this checkout's pytest_i2v."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pytest.ini").write_text(PYTEST_INI)
    (repo / "test_suite.py").write_text(SUITE)
    (repo / "conftest.py").write_text(CONFTEST_BASE)
    git(repo, "init", "-q")
    commit_all(repo, "the tiny suite")
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    monkeypatch.setenv(
        "PYTHONPATH",
        str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
    )
    # One torch thread per process: on a shared 2-core machine two threads that wait for each other
    # made each time swing several-fold under load (measured: 7x and 3x spreads), one thread kept
    # 2 %.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(repo)
    return repo


def left_behind(repo: Path) -> list[str]:
    """What a finished job must not leave: extra worktrees, temporary directories."""
    leftovers = [f"{worktree_count(repo) - 1} worktrees"] if worktree_count(repo) != 1 else []
    return leftovers + [p.name for p in Path(tempfile.gettempdir()).iterdir()]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli_main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


# (side, round index) -> the records of that process's results document
Records = Callable[[str, int], list[dict[str, Any]]]


class FakePytest:
    """Stands in for the pytest processes: lists the tests when collecting, writes a results
    document when measuring (``records``: none by default), and records what it was asked to run and
    which "partial" line ``ab.md`` had when it started. ``fail_at``: that measuring call exits 3."""

    def __init__(
        self,
        tests: Mapping[str, list[str]] | None = None,
        interrupt_at: int | None = None,
        records: Records | None = None,
        fail_at: int | None = None,
    ):
        self.tests = tests or {}
        self.interrupt_at = interrupt_at
        self.records = records
        self.fail_at = fail_at
        self.calls: list[dict[str, Any]] = []
        self.partial_seen: list[str | None] = []

    def side_of(self, cwd: Path) -> str:
        return "base" if cwd.name == "base" or cwd.parent.name == "base" else "head"

    def __call__(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> int:
        side = self.side_of(cwd)
        baselines = (
            argv[argv.index("--i2v-baseline-dir") + 1] if "--i2v-baseline-dir" in argv else None
        )
        self.calls.append(
            {
                "argv": list(argv),
                "cwd": cwd,
                "env": dict(env),
                "side": side,
                "log": log,
                "files": sorted(p.name for p in cwd.iterdir()),  # the tree as the process sees it
                "baselines_exist": baselines is not None and Path(baselines).exists(),
            }
        )
        log.write_text(f"fake pytest on the {side} side\n")
        if "--collect-only" in argv:
            Path(env[COLLECT_ENV]).write_text(
                json.dumps(self.tests.get(side, ["test_suite.py::test_steady"]))
            )
            return 0
        if self.interrupt_at is not None and len(self.measuring_calls()) > self.interrupt_at:
            raise KeyboardInterrupt
        results = Path(argv[argv.index("--i2v-json") + 1])
        markdown = results.parent / "ab.md"
        self.partial_seen.append(
            next(
                (
                    line.split("**")[1]
                    for line in markdown.read_text().splitlines()
                    if "partial" in line
                ),
                "no partial line",
            )
            if markdown.is_file()
            else None
        )
        if self.fail_at is not None and len(self.measuring_calls()) > self.fail_at:
            log.write_text("INTERNALERROR> the runner's time ran out\n")
            return 3
        round_index = int(results.stem.split("-")[1])
        records = self.records(side, round_index) if self.records else []
        deselected = {argv[i + 1] for i, arg in enumerate(argv) if arg == "--deselect"}
        records = [r for r in records if r["nodeid"] not in deselected]  # as pytest would: not run
        results.write_text(
            json.dumps(
                {
                    "schema": RESULTS_SCHEMA,
                    "schema_version": RESULTS_SCHEMA_VERSION,
                    "environment": {},
                    "profile": {"name": "cpu"},
                    # complete records, as the plugin writes them
                    "records": [GenerationRecord.from_partial(r).to_dict() for r in records],
                    "run": results.stem,
                }
            )
        )
        return 0

    def measuring_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if "--collect-only" not in c["argv"]]


# --- usage errors: one line, exit 4, nothing left behind ---------------------------------------


def test_a_bad_ref_is_one_line_and_leaves_nothing(
    suite_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["ab", "--base", "no-such-branch", "--rounds", "2"], capsys)
    assert code == 4
    assert err.strip().splitlines() == error_lines(err) and len(error_lines(err)) == 1
    assert "--base 'no-such-branch' is not a commit" in err
    assert left_behind(suite_repo) == []
    assert not (suite_repo / "i2v-ab").exists()


def test_head_with_a_dirty_tree_is_a_usage_error(
    suite_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (suite_repo / "conftest.py").write_text(
        CONFTEST_SLOW
    )  # an edit the user might expect to be measured
    code, _, err = run_cli(["ab", "--base", "HEAD", "--head", "HEAD", "--rounds", "2"], capsys)
    assert code == 4 and len(err.strip().splitlines()) == 1
    assert "uncommitted changes" in err and "drop --head" in err
    assert left_behind(suite_repo) == []


def test_without_head_a_dirty_tree_is_the_head(
    suite_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (suite_repo / "conftest.py").write_text(CONFTEST_SLOW)
    fake = FakePytest()
    monkeypatch.setattr(ab_processes, "run_logged", fake)
    monkeypatch.setattr("pytest_i2v.ab.rounds.compare_rounds", lambda base, head, **kw: [])
    outcome = ab.run_ab(ab.ABOptions(base="HEAD", rounds=2))
    assert outcome.meta["head"] == "working tree (uncommitted changes included)"
    assert {c["cwd"] for c in fake.calls if c["side"] == "head"} == {suite_repo.resolve()}
    assert left_behind(suite_repo) == []


def test_a_test_on_one_side_only_is_named(
    suite_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real collection pass: head adds an i2v test the base lacks (a new plain test does not
    count)."""
    (suite_repo / "test_suite.py").write_text(
        SUITE
        + """

@pytest.mark.i2v(width=256, height=256, frames=2, steps=10)
def test_new_on_head(i2v_run):
    i2v_run()


def test_new_plain():
    pass
"""
    )
    commit_all(suite_repo, "a new test")
    code, _, err = run_cli(["ab", "--base", "HEAD~1", "--head", "HEAD", "--rounds", "2"], capsys)
    assert code == 4
    assert error_lines(err) == err.strip().splitlines() and len(error_lines(err)) == 1
    assert "test_suite.py::test_new_on_head exists on the head side only" in err
    assert "test_new_plain" not in err
    assert left_behind(suite_repo) == []
    assert not (suite_repo / "i2v-ab").exists()  # nothing written before the sides agree


def test_a_repository_without_a_pytest_config_compares_the_same_node_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No pytest.ini / [tool.pytest.ini_options] in the repository, which sits below a directory
    that has one (a user's checkout inside another project): both sides pick the same rootdir, their
    tree, so the real collection pass finds the same node ids and the job runs."""
    outer = tmp_path / "outer"
    repo = outer / "repo"
    repo.mkdir(parents=True)
    (outer / "pytest.ini").write_text(
        "[pytest]\n"
    )  # outside the repository: the head's tree would find it
    (repo / "test_user.py").write_text(SUITE)
    (repo / "conftest.py").write_text(CONFTEST_BASE)
    git(repo, "init", "-q")
    commit_all(repo, "a suite with no pytest configuration file")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(repo)
    fake = FakePytest()

    def real_collection(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> int:
        return (
            REAL_RUN_LOGGED(argv, cwd, env, log)
            if "--collect-only" in argv
            else fake(argv, cwd, env, log)
        )

    monkeypatch.setattr(ab_processes, "run_logged", real_collection)
    code, _, err = run_cli(
        ["ab", "--base", "HEAD", "--rounds", "2", "--", "test_user.py", "--gpu-profile", "cpu"],
        capsys,
    )
    assert code == 0, err
    assert "exists on the" not in err
    for call in fake.measuring_calls():
        argv = call["argv"]
        assert argv[argv.index("--rootdir") + 1] == str(call["cwd"])  # each side's own tree


def test_pytest_args_that_would_touch_baselines_are_refused(
    suite_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["ab", "--base", "HEAD", "--", "--i2v-update-baselines"], capsys)
    assert code == 4 and "--i2v-update-baselines" in err and len(err.strip().splitlines()) == 1
    assert left_behind(suite_repo) == []


def test_a_failing_process_stops_the_job_with_its_log_tail(
    suite_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def internal_error(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> int:
        if "--collect-only" in argv:
            Path(env[COLLECT_ENV]).write_text(json.dumps(["test_suite.py::test_steady"]))
            return 0
        log.write_text("INTERNALERROR> something broke\n")
        return 3

    monkeypatch.setattr(ab_processes, "run_logged", internal_error)
    (suite_repo / "i2v-ab").mkdir()
    for name in OUTPUTS:  # a complete earlier job's: it must not pass for this job's verdict
        (suite_repo / "i2v-ab" / name).write_text("### A/B: 0 regressed, 1 unchanged\n")
    code, _, err = run_cli(["ab", "--base", "HEAD", "--head", "HEAD", "--rounds", "2"], capsys)
    assert code == 3
    assert "INTERNALERROR> something broke" in err
    assert len(error_lines(err)) == 1 and err.strip().splitlines()[-1].startswith(
        "error: round 1 on the base side"
    )
    assert "verdicts" not in err  # no round was complete: no partial files to point at
    assert left_behind(suite_repo) == []
    assert (suite_repo / "i2v-ab" / "logs" / "base-0.log").is_file()
    assert [name for name in OUTPUTS if (suite_repo / "i2v-ab" / name).exists()] == []


STEADY = "test_suite.py::test_steady"
SLOWED = "test_suite.py::test_slowed"
EXTRA_OP = "test_suite.py::test_extra_op"


def steady_records(
    side: str, round_index: int, oom: tuple[str, int] | None = None
) -> list[dict[str, Any]]:
    """test_steady as a results document records it: the same figures on both sides, a little noise
    per round; out of memory instead on the ``oom`` (side, round index)."""
    wobble = [1.0, 0.99, 1.01, 1.0][round_index % 4]
    if (side, round_index) == oom:
        return [
            {
                "nodeid": STEADY,
                "config": {"pipeline": "tiny"},
                "outcome": "oom",
                "time_s": None,
                "stages": {"step_s": None},
                "peak_memory": {"host_rss_bytes": 2**30},
            }
        ]
    return [
        {
            "nodeid": STEADY,
            "config": {"pipeline": "tiny"},
            "outcome": "ok",
            "time_s": 1.0 * wobble,
            "stages": {"step_s": 0.1 * wobble},
            "peak_memory": {"host_rss_bytes": 2**30},
        }
    ]


def test_a_job_stopped_in_its_last_round_leaves_the_verdicts_of_the_rounds_done(
    suite_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A process fails in round 4 of 4 (as a job killed at its time limit would stop): ab.md,
    ab.json and ab.html hold rounds 1-3 and say so; each complete round from the second on had
    rewritten them."""
    fake = FakePytest(
        records=steady_records, fail_at=6
    )  # calls 0-5: rounds 1-3; round 4 starts with head
    monkeypatch.setattr(ab_processes, "run_logged", fake)
    code, _, err = run_cli(
        ["ab", "--base", "HEAD", "--head", "HEAD", "--rounds", "4", "--fixed-rounds"], capsys
    )
    out = suite_repo / "i2v-ab"
    assert code == 3 and "INTERNALERROR> the runner's time ran out" in err
    assert error_lines(err)[-1].startswith("error: round 4 on the head side")
    assert error_lines(err)[-1].endswith(
        f"{out.resolve() / 'ab.md'} has the verdicts of the 3 rounds done"
    )
    assert fake.partial_seen == [None] * 4 + ["partial: 2 of 4 rounds done"] * 2 + [
        "partial: 3 of 4 rounds done"
    ]
    markdown = (out / "ab.md").read_text()
    assert "partial: 3 of 4 rounds done" in markdown and "3 rounds (AB BA AB)" in markdown
    rows = [
        line
        for line in markdown.splitlines()
        if line.startswith("| test\\_suite.py::test\\_steady")
    ]
    assert [row.split(" | ")[1] for row in rows] == [
        metric_label(m) for m in ("time_s", "step_s", "host_rss_bytes")
    ]
    assert all(row.endswith("| unchanged |") for row in rows), markdown
    document = json.loads((out / "ab.json").read_text())
    assert (document["meta"]["rounds"], document["meta"]["rounds_planned"]) == (3, 4)
    assert [r["nodeid"] for r in document["results"]] == [STEADY]
    assert [(r["side"], r["round"]) for r in document["runs"] if r["round"] >= 0] == [
        ("base", 0),
        ("head", 0),
        ("head", 1),
        ("base", 1),
        ("base", 2),
        ("head", 2),
    ]  # the failed one came later
    assert "partial: 3 of 4 rounds done" in (out / "ab.html").read_text()
    assert left_behind(suite_repo) == []


def test_a_complete_job_says_nothing_partial_and_one_oom_round_fails_it(
    suite_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The final write replaces the partial files; head out of memory in 1 of 4 rounds exits 1."""
    fake = FakePytest(records=lambda side, r: steady_records(side, r, oom=("head", 2)))
    monkeypatch.setattr(ab_processes, "run_logged", fake)
    code, printed, _ = run_cli(
        ["ab", "--base", "HEAD", "--head", "HEAD", "--rounds", "4", "--fixed-rounds"], capsys
    )
    out = suite_repo / "i2v-ab"
    assert fake.partial_seen[-1] == "partial: 3 of 4 rounds done"  # the job wrote them on its way
    assert code == 1
    markdown = (out / "ab.md").read_text()
    assert markdown.strip() in printed and markdown.startswith("### A/B: 1 regressed")
    assert "regressed: out of memory in 1 of 4 head rounds, never in base" in markdown
    for name in OUTPUTS:
        assert "partial" not in (out / name).read_text(), name
    document = json.loads((out / "ab.json").read_text())
    assert (document["meta"]["rounds"], document["meta"]["rounds_planned"]) == (4, 4)
    assert left_behind(suite_repo) == []


# --- Ctrl-C ----------------------------------------------------------------------------------


@pytest.mark.parametrize("interrupt_at", [0, 3])
def test_ctrl_c_removes_the_worktrees(
    suite_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    interrupt_at: int,
) -> None:
    fake = FakePytest(interrupt_at=interrupt_at)
    monkeypatch.setattr(ab_processes, "run_logged", fake)
    with pytest.raises(KeyboardInterrupt):
        ab.run_ab(ab.ABOptions(base="HEAD", head="HEAD", rounds=4))
    assert len(fake.measuring_calls()) == interrupt_at + 1  # it was running when interrupted
    assert left_behind(suite_repo) == []
    # the command line says so in one line
    fake = FakePytest(interrupt_at=interrupt_at)
    monkeypatch.setattr(ab_processes, "run_logged", fake)
    code, _, err = run_cli(["ab", "--base", "HEAD", "--head", "HEAD", "--rounds", "4"], capsys)
    assert code == 130 and error_lines(err) == [
        "error: interrupted; the A/B worktrees and temporary files were removed"
    ]
    assert left_behind(suite_repo) == []


# --- the ABBA order, and what each process is given ----------------------------------------------


def test_abba_order() -> None:
    assert abba_order(4) == [("base", "head"), ("head", "base"), ("base", "head"), ("head", "base")]


def test_the_job_runs_abba_each_side_on_its_own_tree(
    suite_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(suite_repo, "tag", "base-tag")
    (suite_repo / "marker.txt").write_text("head\n")
    commit_all(suite_repo, "head")
    fake = FakePytest()
    monkeypatch.setattr(ab_processes, "run_logged", fake)
    compared: dict[str, list[str]] = {}

    def compare_rounds(
        base: list[RoundResults], head: list[RoundResults], **kwargs: Any
    ) -> list[Any]:
        compared.update(
            base=[Path(d.source).stem for d in base], head=[Path(d.source).stem for d in head]
        )
        return []

    monkeypatch.setattr("pytest_i2v.ab.rounds.compare_rounds", compare_rounds)
    outcome = ab.run_ab(
        ab.ABOptions(base="base-tag", head="HEAD", rounds=4, pytest_args=("-k", "steady"))
    )
    runs = [Path(c["argv"][c["argv"].index("--i2v-json") + 1]).stem for c in fake.measuring_calls()]
    assert runs == ["base-0", "head-0", "head-1", "base-1", "base-2", "head-2", "head-3", "base-3"]
    assert outcome.meta["order"] == "AB BA AB BA"
    assert compared == {
        "base": ["base-0", "base-1", "base-2", "base-3"],
        "head": ["head-0", "head-1", "head-2", "head-3"],
    }
    for call in fake.calls:
        tree = call["cwd"]
        # each side imports its own tree first, and its tree is its revision's
        assert call["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(tree)
        assert ("marker.txt" in call["files"]) == (call["side"] == "head")
        assert tree != suite_repo.resolve()  # --head given: a worktree, not the working tree
        argv = call["argv"]
        # fast mode and one repeat per process come first, so that the user's args after them win
        defaults = [] if "--collect-only" in argv else ["--i2v-repeats", "1", "--i2v-fast"]
        assert argv[:3] == [sys.executable, "-m", "pytest"] and argv[3 : 5 + len(defaults)] == [
            *defaults,
            "-k",
            "steady",
        ]
        assert "-p" in argv and "no:cacheprovider" in argv and "--i2v-update-baselines" not in argv
        if "--collect-only" not in argv:
            baselines = Path(argv[argv.index("--i2v-baseline-dir") + 1])
            assert (
                baselines.parent == tree.parent and not call["baselines_exist"]
            )  # the job's own, empty
    assert (outcome.meta["base"], outcome.meta["head"]) == ("base-tag", "HEAD")
    assert outcome.meta["base_commit"] == git(suite_repo, "rev-parse", "base-tag").strip()
    assert outcome.meta["head_commit"] == git(suite_repo, "rev-parse", "HEAD").strip()
    document = json.loads((suite_repo / "i2v-ab" / "ab.json").read_text())
    assert [(r["side"], r["round"]) for r in document["runs"] if r["round"] >= 0] == [
        ("base", 0),
        ("head", 0),
        ("head", 1),
        ("base", 1),
        ("base", 2),
        ("head", 2),
        ("head", 3),
        ("base", 3),
    ]
    assert sorted(p.name for p in (suite_repo / "i2v-ab" / "logs").iterdir()) == sorted(
        [f"{side}-collect.log" for side in ("base", "head")] + [f"{r}.log" for r in runs]
    )
    assert {"ab.json", "ab.md", "ab.html"} <= {p.name for p in (suite_repo / "i2v-ab").iterdir()}
    assert outcome.exit_code == 0
    assert left_behind(suite_repo) == []


# --- done when: the tiny suite end to end ----------------------------------------------------
# Each process measures fewer repeats than the suite's 5: the verdicts here come from the virtual
# clock. The real-time job (the workflow's A/B step) asserts only what does not depend on the
# machine's speed.
QUICK = ("--i2v-repeats", "2", "--i2v-warmup", "0")


def job_views(out: Path, printed: str) -> tuple[dict[str, str], list[str]]:
    """The job's verdict per test as ab.json says it, after checking that ab.md says the same and
    was printed; and the (side, round) order of its measuring processes."""
    document = json.loads((out / "ab.json").read_text())
    overall = {t["nodeid"]: t["overall"] for t in document["results"]}
    markdown = (out / "ab.md").read_text()
    assert markdown.strip() in printed
    unescaped = [line.replace("\\", "") for line in markdown.splitlines()]
    for result in document["results"]:
        rows = [line for line in unescaped if line.startswith(f"| {result['nodeid']} ")]
        assert [row.rstrip(" |").rsplit("| ", 1)[1].split(":")[0] for row in rows] == [
            v["verdict"] for v in result["verdicts"]
        ]
    counts = {
        verdict: sum(1 for v in overall.values() if v == verdict)
        for verdict in set(overall.values())
    }
    assert markdown.startswith(f"### A/B: {counts.get('regressed', 0)} regressed")
    order = [f"{r['side']}-{r['round']}" for r in document["runs"] if r["round"] >= 0]
    return overall, order


def time_verdicts(out: Path) -> dict[str, set[str]]:
    """Per test, the verdicts of its time metrics (total and per step) in ab.json."""
    document = json.loads((out / "ab.json").read_text())
    return {
        t["nodeid"]: {v["verdict"] for v in t["verdicts"] if v["metric"] in ("time_s", "step_s")}
        for t in document["results"]
    }


def test_ab_end_to_end_on_the_tiny_suite(
    suite_repo: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    virtual_time: tuple[str, ...],
) -> None:
    """On the virtual clock, one job: a head commit adds 20 ms to each UNet call of test_slowed and
    one more matrix product after each UNet call of test_extra_op. Exit 1. test_slowed regressed in
    time, by exactly the work added, its work identical; test_extra_op regressed in its work from
    round 1 (the op is named, with its estimate, in ab.md before round 2 starts), although its
    (virtual) time did not move, and left the job; the unchanged test_steady reads unchanged in the
    same job (an A/A comparison), its work identical. Later rounds do not profile. The real-time A/B
    job is the workflow's (tests/test_workflows.py::test_the_ab_step_runs_on_the_cpu)."""
    (suite_repo / "conftest.py").write_text(CONFTEST_HEAD)
    commit_all(
        suite_repo,
        "20 ms more per UNet call in test_slowed, one more matrix product in test_extra_op",
    )
    seen: list[str | None] = []

    def watching(argv: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> int:
        if "--i2v-json" in argv:
            markdown = Path(argv[argv.index("--i2v-json") + 1]).parent / "ab.md"
            seen.append(markdown.read_text() if markdown.is_file() else None)
        return REAL_RUN_LOGGED(argv, cwd, env, log)

    monkeypatch.setattr(ab_processes, "run_logged", watching)
    code, out, err = run_cli(
        [
            "ab",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--rounds",
            "2",
            "--out",
            "slowed",
            "--",
            *virtual_time,
            *QUICK,
        ],
        capsys,
    )
    assert code == 1, out + err[-3000:]
    overall, order = job_views(suite_repo / "slowed", out)
    assert set(overall) == {STEADY, SLOWED, EXTRA_OP}  # the plain test is no i2v test
    assert (
        overall[SLOWED] == "regressed"
        and overall[EXTRA_OP] == "regressed"
        and overall[STEADY] != "regressed"
    ), out
    # the times are exact; the memory figure is the real host RSS, so only the time verdicts are
    # exact. Decided by its work after round 1, test_extra_op left the job: one round of times, no
    # interval.
    assert time_verdicts(suite_repo / "slowed") == {
        STEADY: {"unchanged"},
        SLOWED: {"regressed"},
        EXTRA_OP: {"inconclusive"},
    }, out
    document = json.loads((suite_repo / "slowed" / "ab.json").read_text())
    results = {r["nodeid"]: r for r in document["results"]}
    step = next(v for v in results[SLOWED]["verdicts"] if v["metric"] == "step_s")
    assert step["head"] - step["base"] == pytest.approx(
        0.02, rel=1e-6
    )  # exactly the injected work per step
    assert order == ["base-0", "head-0", "head-1", "base-1"]
    # the work: round 1 decided test_extra_op, and said so before round 2 started
    after_round_1 = seen[2]  # what the third measuring process (round 2's first) found
    assert seen[:2] == [None, None] and after_round_1 is not None
    assert "partial: 1 of 2 rounds done" in after_round_1 and after_round_1.startswith(
        "### A/B: 1 regressed"
    )
    work_row = next(
        line
        for line in after_round_1.splitlines()
        if line.startswith(
            "| test\\_suite.py::test\\_extra\\_op (decided after 1) | work \\(signature, round 1\\)"
        )
    )
    assert work_row.endswith("| regressed |") and "work changed: \\+" in after_round_1
    table = after_round_1.split("### What changed in the work", 1)[1].split("#### Output")[0]
    assert (
        "test\\_extra\\_op" in table
        and "test\\_steady" not in table
        and "test\\_slowed" not in table
    )
    assert "| step | aten::mm" in table
    assert results[EXTRA_OP]["work"]["verdict"] == "regressed"
    assert (
        results[STEADY]["work"]["identical"] is True
        and results[SLOWED]["work"]["identical"] is True
    )
    assert document["meta"]["decided_after"] == {EXTRA_OP: 1}
    assert (
        document["meta"]["rounds"] == 2 and not document["meta"]["all_decided"]
    )  # two tests kept it to its rounds
    round_2 = json.loads((suite_repo / "slowed" / "head-1.json").read_text())["records"]
    assert [r["nodeid"] for r in round_2] == [STEADY, SLOWED]
    assert all(r.get("signature") is None for r in round_2)  # profiled once, in round 1
    assert '<section id="work">' in (suite_repo / "slowed" / "ab.html").read_text()
    assert left_behind(suite_repo) == []


# --- sequential stopping and the calibration ----------------------------------------------------
NOISY = "test_suite.py::test_noisy"
FINGERPRINT = {
    "cpu_model": "AMD EPYC",
    "cpu_isa": "avx2",
    "cpu_threads": 2,
    "torch": "2.13.0",
    "diffusers": "0.42.1",
    "dtype": "fp32",
    "attention": None,
}


def two_tests(
    side: str, round_index: int, torch_version: str = "2.13.0", noise: float = 0.02
) -> list[dict[str, Any]]:
    """test_steady: the same on both sides within 0.5 %; test_noisy: head +2.5 %, +-``noise`` per
    round: too close to the 5 % band to show unchanged, too noisy to show regressed, for many
    rounds."""
    on_head = side == "head"
    wobble = {
        "steady": 1.0 + 0.005 * ((round_index * 7 + on_head) % 3 - 1),
        "noisy": (1.025 * (1.0 + 2 * noise * (round_index % 3 - 1))) if on_head else 1.0,
    }
    return [
        {
            "nodeid": f"test_suite.py::test_{name}",
            "config": {"pipeline": "tiny"},
            "config_id": f"cid-{name}",
            "fingerprint": {**FINGERPRINT, "torch": torch_version},
            "outcome": "ok",
            "time_s": 1.0 * w,
            "stages": {"step_s": 0.1 * w},
            "peak_memory": {"host_rss_bytes": 2**30},
        }
        for name, w in wobble.items()
    ]


def test_a_decided_test_leaves_the_job_and_the_rest_run_on(
    suite_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sequential: test_steady is shown unchanged at a look and is deselected from every later
    process; test_noisy runs all rounds and ends inconclusive; the outputs say when each was
    decided, not "partial"."""
    fake = FakePytest(tests={"base": [STEADY, NOISY], "head": [STEADY, NOISY]}, records=two_tests)
    monkeypatch.setattr(ab_processes, "run_logged", fake)
    code, _, err = run_cli(["ab", "--base", "HEAD", "--head", "HEAD", "--rounds", "10"], capsys)
    assert code == 0, err
    document = json.loads((suite_repo / "i2v-ab" / "ab.json").read_text())
    after = document["meta"]["decided_after"]
    assert set(after) == {STEADY} and 2 <= after[STEADY] < 10, err
    runs = fake.measuring_calls()
    assert len(runs) == 20  # test_noisy kept the job to its 10 rounds
    for number, call in enumerate(runs):
        deselected = [call["argv"][i + 1] for i, a in enumerate(call["argv"]) if a == "--deselect"]
        assert deselected == ([STEADY] if number // 2 >= after[STEADY] else []), number
    overall = {r["nodeid"]: r["overall"] for r in document["results"]}
    assert overall == {STEADY: "unchanged", NOISY: "inconclusive"}
    assert document["meta"]["design"] == "sequential" and not document["meta"]["all_decided"]
    markdown = (suite_repo / "i2v-ab" / "ab.md").read_text()
    assert (
        f"(decided after {after[STEADY]})" in markdown
        and "Lan-DeMets" in markdown
        and "partial" not in markdown
    )


def test_a_job_whose_tests_are_all_decided_ends_early(
    suite_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakePytest(records=lambda side, r: two_tests(side, r)[:1])
    monkeypatch.setattr(ab_processes, "run_logged", fake)
    code, _, err = run_cli(["ab", "--base", "HEAD", "--head", "HEAD", "--rounds", "16"], capsys)
    document = json.loads((suite_repo / "i2v-ab" / "ab.json").read_text())
    done = document["meta"]["rounds"]
    assert (
        code == 0
        and document["meta"]["all_decided"]
        and done < 16
        and len(fake.measuring_calls()) == 2 * done
    )
    assert f"every test decided after {done} of at most 16 rounds" in err
    for name in OUTPUTS:
        assert "partial" not in (suite_repo / "i2v-ab" / name).read_text(), name


def test_a_calibration_is_stored_then_used_until_the_software_changes(
    suite_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ab --calibrate runs base against base and stores each test's spread with its df in the
    profile's baseline file; a job on the same machine and software uses it (its verdicts say so); a
    torch upgrade makes it stale: the job says which key changed and uses its own rounds."""
    processes = iter(
        range(1000)
    )  # A/A: both sides run in the base's tree; the figures move per process

    def a_a(side: str, round_index: int) -> list[dict[str, Any]]:
        return two_tests("head" if next(processes) % 2 else "base", round_index)

    fake = FakePytest(tests={"base": [STEADY, NOISY], "head": [STEADY, NOISY]}, records=a_a)
    monkeypatch.setattr(ab_processes, "run_logged", fake)
    code, _, err = run_cli(["ab", "--base", "HEAD", "--calibrate", "--rounds", "12"], capsys)
    assert code == 0, err
    assert {c["cwd"] for c in fake.measuring_calls()} == {
        fake.measuring_calls()[0]["cwd"]
    }  # A/A: one tree
    stored = __import__("yaml").safe_load((suite_repo / "baselines" / "cpu.yaml").read_text())
    block = stored["ab_calibration"][0]
    assert (
        block["rounds"] == 12
        and block["fingerprint"]["torch"] == "2.13.0"
        and "dtype" not in block["fingerprint"]
    )
    assert (
        block["tests"][NOISY]["time_s"]["df"] == 11 and block["tests"][NOISY]["time_s"]["sd"] > 0.03
    )
    assert block["tests"][STEADY]["config_id"] == "cid-steady"
    assert "calibrated 2 tests over 12 A/A rounds (11 df each" in err

    code, _, err = run_cli(
        ["ab", "--base", "HEAD", "--head", "HEAD", "--rounds", "4", "--fixed-rounds"], capsys
    )
    meta = json.loads((suite_repo / "i2v-ab" / "ab.json").read_text())["meta"]
    assert meta["calibration"].endswith("used as each test's spread (2 of 2 tests, from cpu.yaml)")
    assert "A/B calibration of" in (suite_repo / "i2v-ab" / "ab.md").read_text()
    assert (
        "spread moderated with the calibration (11 df)"
        in (suite_repo / "i2v-ab" / "ab.json").read_text()
    )

    upgraded = FakePytest(
        tests={"base": [STEADY, NOISY], "head": [STEADY, NOISY]},
        records=lambda side, r: two_tests(side, r, torch_version="2.14.0"),
    )
    monkeypatch.setattr(ab_processes, "run_logged", upgraded)
    run_cli(["ab", "--base", "HEAD", "--head", "HEAD", "--rounds", "4", "--fixed-rounds"], capsys)
    meta = json.loads((suite_repo / "i2v-ab" / "ab.json").read_text())["meta"]
    assert (
        "is stale (torch 2.13.0 -> 2.14.0)" in meta["calibration"]
        and "from the job's own rounds" in meta["calibration"]
    )
    assert (
        "the calibration"
        not in (suite_repo / "i2v-ab" / "ab.json").read_text().split('"results"')[1]
    )


def test_calibrate_with_head_is_a_usage_error(
    suite_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["ab", "--base", "HEAD", "--head", "HEAD", "--calibrate"], capsys)
    assert (
        code == 4
        and error_lines(err) == [error_lines(err)[0]]
        and "--calibrate runs the base against itself" in err
    )
    assert not (suite_repo / "baselines").exists() and left_behind(suite_repo) == []


def test_a_job_whose_only_test_changed_its_work_ends_after_round_1(
    suite_repo: Path, capsys: pytest.CaptureFixture[str], virtual_time: tuple[str, ...]
) -> None:
    """The head adds work to the one selected test: round 1's signatures decide it regressed, with
    the table in ab.md; the job ends there (2 processes of at most 8) and fails."""
    (suite_repo / "conftest.py").write_text(CONFTEST_HEAD)
    commit_all(suite_repo, "one more matrix product per UNet call in test_extra_op")
    code, out, err = run_cli(
        [
            "ab",
            "--base",
            "HEAD~1",
            "--head",
            "HEAD",
            "--rounds",
            "8",
            "--",
            *virtual_time,
            *QUICK,
            "-k",
            "extra_op",
        ],
        capsys,
    )
    assert code == 1, out + err[-3000:]
    document = json.loads((suite_repo / "i2v-ab" / "ab.json").read_text())
    assert document["meta"]["rounds"] == 1 and document["meta"]["all_decided"]
    assert [(r["side"], r["round"]) for r in document["runs"] if r["round"] >= 0] == [
        ("base", 0),
        ("head", 0),
    ]
    assert "every test decided after 1 of at most 8 rounds" in err
    markdown = (suite_repo / "i2v-ab" / "ab.md").read_text()
    assert (
        markdown.startswith("### A/B: 1 regressed") and "### What changed in the work" in markdown
    )
    assert "| step | aten::mm" in markdown and "partial" not in markdown


def test_each_process_measures_fast_with_one_repeat_unless_told_otherwise() -> None:
    def defaults(**options: Any) -> list[str]:
        return ab.ABJob(ab.ABOptions(base="HEAD", **options))._process_defaults()

    assert defaults() == ["--i2v-repeats", "1", "--i2v-fast"]
    assert defaults(pytest_args=("--i2v-repeats=3", "suites/")) == ["--i2v-fast"]
    assert defaults(pytest_args=("--i2v-fast",)) == ["--i2v-repeats", "1"]
    assert defaults(full_runs=True) == ["--i2v-repeats", "1"]
