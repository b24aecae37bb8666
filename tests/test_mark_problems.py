"""A bad mark costs one run: every problem of every test in one report, each with a fix that keeps
all of the pipeline's rules (issue 34: 830 on Wan is "try 816 or 832", never 824)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from pytest_i2v.errors import I2VUsageError, I2VUsageProblems
from pytest_i2v.generation.marks import i2v
from pytest_i2v.pipelines import PIPELINES, Constraints

WAN = "wan2.1-i2v needs sizes divisible by 16, frames = 4k+1"
LTX = "ltx-video needs sizes divisible by 32, frames = 8k+1 and steps >= 2"


def problems_of(**kwargs: object) -> tuple[str, ...]:
    with pytest.raises(I2VUsageProblems) as caught:
        i2v(**kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def test_a_wan_mark_with_a_bad_width_and_bad_frames_names_both_with_valid_suggestions() -> None:
    assert problems_of(pipeline="wan2.1-i2v", width=830, height=480, frames=80) == (
        f"width=830 is not a multiple of 16 (try 816 or 832): {WAN}",
        f"frames=80 breaks frames = 4k+1 (try 77 or 81): {WAN}",
    )


MEMORY_OPTIONS = (
    "model_cpu_offload, sequential_cpu_offload, group_offload, layerwise_fp8, "
    "torch_compile, vae_slicing, vae_tiling, forward_chunking, attention_slicing, "
    "sdpa, eager_attention"
)
SVD = "svd needs sizes divisible by 8, frames >= 2"
COG = "cogvideox-i2v needs 720x480, frames = 8k+1"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param(
            {"width": 250, "height": 256},
            (
                "width=250 is not a multiple of 8 (try 248 or 256): i2vgen-xl needs sizes "
                "divisible by 8, frames >= 1",
            ),
            id="i2vgen-xl-size",
        ),
        pytest.param(
            {"pipeline": "wan2.1-i2v", "width": 8, "height": 4},
            (f"width=8 is not a multiple of 16 (try 16): {WAN}", f"height=4 must be >= 16: {WAN}"),
            id="wan-below-the-smallest-size",
        ),
        pytest.param(
            {"pipeline": "svd", "frames": 0}, (f"frames=0 must be >= 2: {SVD}",), id="svd-no-frames"
        ),
        pytest.param(
            {"pipeline": "svd", "frames": 1},
            (f"frames=1 breaks frames >= 2 (try 2): {SVD}",),
            id="svd-one-frame",
        ),
        pytest.param(
            {"pipeline": "ltx-video", "width": 768, "height": 500, "steps": 1, "guidance": -1},
            (
                f"height=500 is not a multiple of 32 (try 480 or 512): {LTX}",
                f"steps=1 breaks steps >= 2: {LTX}",
                "guidance=-1 must be a finite number >= 0",
            ),
            id="ltx-three-problems",
        ),
        pytest.param(
            {"pipeline": "cogvideox-i2v", "width": 736, "height": 480, "frames": 10},
            (
                "width=736, height=480 is not the model's only size 720x480 (its learned "
                f"positional embeddings exist for that size alone): {COG}",
                f"frames=10 breaks frames = 8k+1 (try 9 or 17): {COG}",
            ),
            id="cogvideox-size-and-frames",
        ),
        pytest.param(
            {"resolution": "480p", "width": 512},
            (
                "give resolution='480p' or width/height, not both",
                "resolution='480p' is not a preset; use one of 256p, 512p, 768p, 1024p or "
                "width=/height=",
            ),
            id="resolution-twice-wrong",
        ),
        pytest.param(
            {
                "frames": "16",
                "steps": 0,
                "fps": 0,
                "seed": -1,
                "dtype": "fp8",
                "fast": "yes",
                "prompt": "",
            },
            (
                "frames='16' must be an integer >= 1",
                "steps=0 must be >= 1",
                "fps=0 must be >= 1",
                "seed=-1 must be >= 0",
                "dtype='fp8' is unknown; use one of fp16, bf16, fp32",
                "fast='yes' must be True or False",
                "prompt='' must be a non-empty string",
            ),
            id="every-generic-problem",
        ),
        pytest.param(
            {
                "memory": [
                    "gradient_checkpointing",
                    "model_cpu_offload",
                    "group_offload",
                    "torch_compile",
                ]
            },
            (
                f"memory option 'gradient_checkpointing' is unknown; use any of {MEMORY_OPTIONS}",
                "memory options model_cpu_offload and group_offload exclude each other; pick one",
                "memory options torch_compile and group_offload cannot be combined: "
                "group_offload's hooks run inside the compiled blocks, where Dynamo cannot "
                "follow them; measure them in separate tests, or pair torch_compile with "
                "model_cpu_offload",
            ),
            id="memory-options",
        ),
        pytest.param(
            {"memory": 5},
            ("memory=5 must be an option name or a list of them, e.g. ['vae_tiling']",),
            id="memory-not-a-list",
        ),
        pytest.param(
            {"pipeline": "sora", "width": 830, "height": 3},
            (
                "pipeline='sora' is not a known pipeline; use one of i2vgen-xl, svd, "
                "wan2.1-i2v, wan2.2-i2v, ltx-video, cogvideox-i2v, hunyuanvideo-i2v",
                "height=3 must be >= 8",
            ),
            id="unknown-pipeline-no-guessed-rules",
        ),
    ],
)
def test_every_problem_of_a_mark_is_named(
    kwargs: dict[str, object], expected: tuple[str, ...]
) -> None:
    assert problems_of(**kwargs) == expected


def test_the_problems_read_as_one_usage_error_too() -> None:
    with pytest.raises(I2VUsageError) as caught:
        i2v(pipeline="wan2.1-i2v", width=830, height=480, frames=80)
    assert str(caught.value) == "; ".join(caught.value.problems)
    copy = pickle.loads(pickle.dumps(caught.value))  # an xdist worker's error keeps its lines
    assert isinstance(copy, I2VUsageProblems) and copy.problems == caught.value.problems
    assert I2VUsageError("one line").problems == ("one line",)


def test_violation_is_the_first_of_the_problems() -> None:
    wan = PIPELINES["wan2.1-i2v"].constraints
    assert wan.problems(830, 470, 80, 40) == (
        "width=830 is not a multiple of 16 (try 816 or 832)",
        "height=470 is not a multiple of 16 (try 464 or 480)",
        "frames=80 breaks frames = 4k+1 (try 77 or 81)",
    )
    assert wan.violation(830, 470, 80, 40) == wan.problems(830, 470, 80, 40)[0]
    assert wan.problems(None, None, None, None) == ()
    # A pipeline multiple that is not one of 8's: sizes keep both (lcm 24)
    assert Constraints(size_multiple=12).problems(100, 96, 1) == (
        "width=100 is not a multiple of 24 (try 96 or 120)",
    )


@pytest.mark.parametrize("name", list(PIPELINES))
def test_every_suggestion_keeps_every_rule_of_its_pipeline(name: str) -> None:
    rules = PIPELINES[name].constraints
    if rules.fixed_size is not None:
        pytest.skip("one size: its suggestion is the size itself")
    frames, steps = rules.smallest_frames, rules.min_steps
    for size in range(1, 1100, 7):
        for problem in rules.problems(size, rules.min_size, frames, steps):
            for suggestion in map(int, re.findall(r"\d+", problem.partition("(try ")[2])):
                assert rules.problems(suggestion, suggestion, frames, steps) == (), (size, problem)
    for count in range(0, 200):
        for problem in rules.problems(rules.min_size, rules.min_size, count, steps):
            for suggestion in map(int, re.findall(r"\d+", problem.partition("(try ")[2])):
                assert rules.frames_ok(suggestion), (count, problem)


BAD_TESTS = """
import pytest

@pytest.mark.i2v(pipeline="wan2.1-i2v", width=830, height=480, frames=80)
def test_wan(i2v_run):
    i2v_run()

@pytest.mark.i2v(resolution="256p", frames=2, steps=10)
def test_good(i2v_run):
    i2v_run()

@pytest.mark.i2v(pipeline="ltx-video", width=768, height=500, steps=1,
                 memory=["vae_tiling", "gradient_checkpointing"])
@pytest.mark.vram_budget(0)
def test_ltx(i2v_run):
    i2v_run()
"""


def _snapshot(root: Path) -> set[str]:
    ignored = {"__pycache__", ".pytest_cache", ".benchmarks"}
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if not ignored & set(p.relative_to(root).parts)
    }


def test_collection_reports_every_bad_test_of_the_session_at_once(
    i2v_project: pytest.Pytester,
) -> None:
    i2v_project.makepyfile(test_marks_bad=BAD_TESTS)
    before = _snapshot(i2v_project.path)
    result = i2v_project.runpytest(
        "--i2v-json", "out/r.json", "--i2v-baseline-dir", "baselines", "--i2v-update-baselines"
    )
    output = result.stdout.str()[-2000:] + result.stderr.str()[-2000:]
    assert result.ret == pytest.ExitCode.USAGE_ERROR == 4, output
    wan, ltx = "ERROR: test_marks_bad.py::test_wan", "ERROR: test_marks_bad.py::test_ltx"
    assert [line for line in result.stderr.lines if line.startswith("ERROR: ")] == [
        f"{wan}: width=830 is not a multiple of 16 (try 816 or 832): {WAN}",
        f"{wan}: frames=80 breaks frames = 4k+1 (try 77 or 81): {WAN}",
        f"{ltx}: height=500 is not a multiple of 32 (try 480 or 512): {LTX}",
        f"{ltx}: steps=1 breaks steps >= 2: {LTX}",
        f"{ltx}: memory option 'gradient_checkpointing' is unknown; use any of {MEMORY_OPTIONS}",
        f"{ltx}: vram_budget(0): the budget must be a positive number",
    ]
    assert "Traceback" not in result.stderr.str() and "INTERNALERROR" not in result.stdout.str()
    assert not (i2v_project.path / "out" / "r.json").exists()
    assert _snapshot(i2v_project.path) == before, "a usage error must write nothing"
