"""``python -m pytest_i2v bisect`` (``pytest_i2v.ab.bisect``): the first commit whose run differs,
by its work in about log2(n) profiled probes, or by sequential A/B jobs when only the time
changed; the user's checkout untouched, bad refs one line and exit 4."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pytest_i2v.ab.bisect import first_bad
from tests.test_ab import commit_all, git, left_behind, run_cli, suite_repo  # noqa: F401

SUITE = """\
import pytest


@pytest.mark.i2v(width=256, height=256, frames=2, steps=50)
def test_one(changed, i2v_run):
    assert i2v_run().outcome == "ok"
"""
PLAIN = """\
import pytest


@pytest.fixture
def changed():
    yield
"""
# one more matrix product after every UNet call: only the work sees it on the virtual clock
EXTRA_OP = """\
import pytest
import torch


@pytest.fixture
def changed(i2v_pipeline):
    weight = torch.ones(768, 768)

    def extra(module, args, output):
        torch.mm(weight, weight)

    handle = i2v_pipeline.unet.register_forward_hook(extra)
    yield
    handle.remove()
"""
# 20 ms more per UNet call (virtual seconds): the same work, only the time
DELAY = """\
import pytest

from pytest_i2v.simulated_plugin import add_work


@pytest.fixture
def changed(i2v_pipeline):
    handle = i2v_pipeline.unet.register_forward_pre_hook(lambda m, a: add_work(0.02))
    yield
    handle.remove()
"""


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 32, 33])
def test_the_search_finds_every_position_in_about_log2_n_probes(count: int) -> None:
    for bad_from in range(count):
        asked: list[int] = []

        def is_bad(index: int, bad_from: int = bad_from, asked: list[int] = asked) -> bool:
            asked.append(index)
            return index >= bad_from

        assert first_bad(count, is_bad) == bad_from
        assert len(asked) <= math.ceil(math.log2(count)) if count > 1 else asked == []


def history(repo: Path, conftests: list[str]) -> list[str]:
    """One commit per conftest after the suite's first; their SHAs, oldest first."""
    (repo / "test_suite.py").write_text(SUITE)
    shas = []
    for number, conftest in enumerate(conftests):
        (repo / "conftest.py").write_text(conftest)
        (repo / "NOTES").write_text(f"commit {number}\n")
        commit_all(repo, f"commit {number}")
        shas.append(git(repo, "rev-parse", "HEAD").strip())
    return shas


def test_a_work_change_is_bisected_to_its_commit(
    suite_repo: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    virtual_time: tuple[str, ...],
) -> None:
    shas = history(suite_repo, [PLAIN, PLAIN, PLAIN, EXTRA_OP, EXTRA_OP, EXTRA_OP, EXTRA_OP])
    status_before = git(suite_repo, "status", "--porcelain")
    code, out, err = run_cli(
        ["bisect", "--good", shas[0], "--bad", shas[-1], "--", *virtual_time], capsys
    )
    assert code == 0, out + err[-3000:]
    assert out.startswith(f"bisect: the first work change is {shas[3][:12]} 'commit 3' ")
    assert "(commit 3 of 6 after --good)" in out
    probes = int(out.split("found with ", 1)[1].split()[0])
    assert probes <= 2 + math.ceil(math.log2(6))  # both ends, then the search
    assert "changed: test_suite.py::test_one" in out and "aten::mm" in out
    assert git(suite_repo, "status", "--porcelain") == status_before  # the checkout untouched
    assert left_behind(suite_repo) == []


def test_a_timing_only_change_falls_back_to_ab_and_says_so(
    suite_repo: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    virtual_time: tuple[str, ...],
) -> None:
    shas = history(suite_repo, [PLAIN, DELAY, DELAY])
    argv = ["bisect", "--good", shas[0], "--bad", shas[-1], "--rounds", "2"]
    code, out, err = run_cli([*argv, "--", *virtual_time, "--i2v-warmup", "0"], capsys)
    assert code == 0, out + err[-3000:]
    assert out.startswith(f"bisect: the first time change is {shas[1][:12]} 'commit 1' ")
    assert "sequential A/B jobs (timing only: the work was identical)" in out
    assert "changed: test_suite.py::test_one" in out
    assert left_behind(suite_repo) == []


@pytest.mark.parametrize(
    ("good", "bad", "line"),
    [
        ("nosuchref", "HEAD", "error: --good 'nosuchref' is not a commit in "),
        ("HEAD", "HEAD~1", "is not an ancestor of --bad"),
        ("HEAD", "HEAD", "error: --good and --bad are the same commit: nothing to bisect"),
    ],
)
def test_bad_refs_are_one_line_and_exit_4(
    suite_repo: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    good: str,
    bad: str,
    line: str,
) -> None:
    history(suite_repo, [PLAIN, PLAIN])
    code, _, err = run_cli(["bisect", "--good", good, "--bad", bad], capsys)
    assert code == 4 and len(err.strip().splitlines()) == 1 and line in err, err
    assert left_behind(suite_repo) == []
