from __future__ import annotations

import pytest

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.session.gpus import check_workers, parse_gpu_list, worker_device


def test_each_worker_gets_its_own_gpu() -> None:
    gpus = parse_gpu_list("0,1,2,3")
    assert [worker_device(f"gw{i}", gpus, False) for i in range(4)] == [
        "cuda:0",
        "cuda:1",
        "cuda:2",
        "cuda:3",
    ]
    assert worker_device("gw1", parse_gpu_list("2,5"), False) == "cuda:5"


def test_two_workers_on_one_gpu_are_refused_unless_forced() -> None:
    with pytest.raises(
        I2VUsageError, match=r"5 xdist workers for 4 GPU\(s\).*use -n 4.*--i2v-allow-shared-gpu"
    ):
        check_workers(5, (0, 1, 2, 3), False)
    with pytest.raises(I2VUsageError):
        worker_device("gw4", (0, 1, 2, 3), False)
    assert worker_device("gw4", (0, 1, 2, 3), True) == "cuda:0"
    check_workers(4, (0, 1, 2, 3), False)


@pytest.mark.parametrize("text", ["", "a,b", "0,0", "-1"])
def test_bad_gpu_lists(text: str) -> None:
    with pytest.raises(ValueError):
        parse_gpu_list(text)


def test_a_bad_gpu_list_is_a_usage_error(i2v_project: pytest.Pytester) -> None:
    """One usage line. (That the workers given a valid list share the CPU is asserted by
    tests/test_end_to_end.py's pytest-xdist run, which passes --i2v-gpus 0,1.)"""
    i2v_project.makepyfile("def test_a(i2v_profile):\n    assert i2v_profile.name == 'cpu'\n")
    result = i2v_project.runpytest("--i2v-gpus", "x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --i2v-gpus = 'x': use comma-separated CUDA device indices*"]
    )
