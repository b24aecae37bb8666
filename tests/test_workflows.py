"""The GitHub workflows: actionlint-clean, every command they run exists and accepts its options,
and the gate and re-baseline steps run end to end on the CPU."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_i2v.ab.workspace import TEMP_PREFIX
from pytest_i2v.cli import build_parser
from tests.test_ab import job_views  # the A/B files agree with each other and with what was printed

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("tests.yml", "gpu-gate.yml", "rebaseline.yml", "nightly.yml", "i2v-gate.yml")
NUMERIC_VARIABLES = {
    "AB_ROUNDS",
    "RUNS",
    "ROUNDS",
}  # shell variables the commands pass to integer options


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(name: str) -> list[dict[str, Any]]:
    return [step for job in load(name)["jobs"].values() for step in job["steps"]]


def step(name: str, title: str) -> dict[str, Any]:
    return next(s for s in steps(name) if s.get("name") == title)


def commands(script: str) -> list[list[str]]:
    """The python -m pytest / pytest_i2v command lines of a run script, as argument lists."""
    joined = re.sub(r"\\\n\s*", " ", script)
    found = []
    for line in joined.splitlines():
        line = line.split(" || ")[0].split(" | ")[0].split(" > ")[0].strip()
        if re.search(r"python -m (pytest|pytest_i2v)\b", line) and not line.startswith(
            ("#", "echo")
        ):
            line = re.sub(
                r'"\$(\w+)"',
                lambda m: '"1"' if m.group(1) in NUMERIC_VARIABLES else f'"X{m.group(1)}"',
                line,
            )
            found.append(shlex.split(line.replace('"$', '"X').replace("$(", "(")))
    return found


def test_all_workflows_exist() -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == sorted(NAMES)


def test_workflows_pass_actionlint() -> None:
    actionlint = shutil.which("actionlint") or str(Path(sys.executable).with_name("actionlint"))
    assert Path(actionlint).exists(), (
        "actionlint comes with the test extra (pip install -e '.[test]')"
    )
    completed = subprocess.run(
        [actionlint, *sorted(str(p) for p in WORKFLOWS.glob("*.yml"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.fixture(scope="module")
def pytest_help() -> str:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout


@pytest.mark.parametrize("name", NAMES)
def test_every_pytest_option_in_the_workflows_exists(name: str, pytest_help: str) -> None:
    runs = [s["run"] for s in steps(name) if "run" in s]
    lines = [c for script in runs for c in commands(script)]
    assert lines, f"{name} runs no python -m pytest / pytest_i2v command"
    for argv in lines:
        module = argv[argv.index("-m") + 1]
        rest = argv[argv.index("-m") + 2 :]
        if module == "pytest_i2v":
            build_parser().parse_args(
                rest
            )  # exits (and fails the test) on an unknown command or option
            continue
        for token in rest:
            if token.startswith("--"):
                flag = token.split("=", 1)[0]
                assert re.search(rf"(^|[\s,]){re.escape(flag)}([=\s,]|$)", pytest_help, re.M), (
                    f"{name}: unknown option {flag}"
                )


def test_tests_workflow_runs_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    scripts = " ".join(s.get("run", "") for s in steps("tests.yml"))
    for command in ("python -m pytest tests/ -q", "python -m pytest suites/"):
        assert command in scripts and command in readme
    matrix = load("tests.yml")["jobs"]["tests"]["strategy"]["matrix"]["include"]
    assert {"diffusers": "0.42.1", "transformers": "5.5.4"} in matrix
    assert {"diffusers": "0.39.0", "transformers": "4.57.6"} in matrix


def test_gate_runs_one_job_per_profile_on_gpu_runners() -> None:
    job = load("gpu-gate.yml")["jobs"]["gate"]
    assert job["runs-on"] == ["self-hosted", "linux", "gpu-${{ matrix.profile }}"]
    assert set(job["strategy"]["matrix"]["profile"]) >= {"rtx4090", "a100-80gb", "h100-80gb"}
    assert (
        step("gpu-gate.yml", "Run the gate")["timeout-minutes"] <= 60
        and job["env"]["HF_HUB_OFFLINE"] == "1"
    )
    ab = step("gpu-gate.yml", "Run A/B against the target branch")
    assert ab["timeout-minutes"] < job["timeout-minutes"] <= 180
    assert load("gpu-gate.yml")["concurrency"]["cancel-in-progress"] is True


def test_gate_has_a_mode_input_and_runs_one_of_the_two() -> None:
    workflow: dict[Any, Any] = load("gpu-gate.yml")
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads "on" as true
    mode = triggers["workflow_dispatch"]["inputs"]["mode"]
    assert mode["options"] == ["auto", "baseline", "ab"] and mode["default"] == "auto"
    assert "pull_request" in triggers
    assert step("gpu-gate.yml", "Run the gate")["if"] == "steps.mode.outputs.mode == 'baseline'"
    assert (
        step("gpu-gate.yml", "Run A/B against the target branch")["if"]
        == "steps.mode.outputs.mode == 'ab'"
    )
    from pytest_i2v.ab.paired import DEFAULT_ROUNDS

    assert f"'{DEFAULT_ROUNDS}'" in load("gpu-gate.yml")["jobs"]["gate"]["env"]["AB_ROUNDS"]


def _this_machines_baseline(path: Path, isa: str | None = None) -> None:
    """A one-test baseline for ``path``'s profile with this machine's fingerprint (``isa``:
    another CPU's flags)."""
    from pytest_i2v.measure.environment import collect_environment
    from pytest_i2v.verdict.baseline_store import AcceptedRun, update_baseline

    environment = collect_environment("cpu")
    if isa is not None:
        environment["cpu_isa"] = isa
    update_baseline(
        path,
        path.stem,
        [
            AcceptedRun(
                "suites/t.py::test_a", {"width": 64}, environment, {"time_s": 1.0, "commit": None}
            )
        ],
    )


@pytest.mark.parametrize(
    ("requested", "baseline", "expected"),
    [
        ("auto", "this machine", "baseline"),
        ("auto", "another cpu", "ab"),
        ("auto", "none", "ab"),
        ("ab", "this machine", "ab"),
        ("baseline", "none", "baseline"),
    ],
)
def test_the_gate_chooses_its_mode_per_runner(
    tmp_path: Path, requested: str, baseline: str, expected: str
) -> None:
    work = _sandbox(tmp_path)
    path = work / "baselines" / "cpu.yaml"
    path.unlink()
    if baseline != "none":
        _this_machines_baseline(
            path, None if baseline == "this machine" else "avx512_bf16 amx_tile"
        )
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    completed = _run(
        step("gpu-gate.yml", "Choose the mode")["run"],
        work,
        {
            "PROFILE": "cpu",
            "REQUESTED": requested,
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
        },
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert output.read_text() == f"mode={expected}\n"
    assert summary.read_text() == f"pytest-i2v gate mode on cpu: {expected}\n"
    if requested == "auto":  # the one line saying why
        assert (
            "all 1 tests have runs from this machine: gate on the baseline"
            if expected == "baseline"
            else "python -m pytest_i2v ab instead"
        ) in completed.stdout
    if baseline == "another cpu":
        assert "cpu_isa" in completed.stdout


@pytest.mark.parametrize(("break_it", "code"), [("unreadable", 4), ("crash", 1)])
def test_the_mode_step_stops_on_an_error_rather_than_choosing_ab(
    tmp_path: Path, break_it: str, code: int
) -> None:
    work = _sandbox(tmp_path)
    env = {
        "PROFILE": "cpu",
        "REQUESTED": "auto",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "s"),
    }
    if break_it == "unreadable":
        (work / "baselines" / "cpu.yaml").write_text(
            "schema: something-else\n"
        )  # a usage error: exit 4
    else:  # torch or NVML failing while the machine is read: a traceback, exit 1
        (work / "sitecustomize.py").write_text(
            "import pytest_i2v.cli_baseline\n"
            "def _broken(device):\n    raise RuntimeError('NVML: GPU is lost')\n"
            "pytest_i2v.cli_baseline._this_machine = _broken\n"
        )
        env["PYTHONPATH"] = str(work)
    completed = _run(step("gpu-gate.yml", "Choose the mode")["run"], work, env)
    assert completed.returncode == code and not (tmp_path / "output").exists(), (
        completed.stdout + completed.stderr
    )
    assert (
        "RuntimeError: NVML: GPU is lost" if break_it == "crash" else "error: "
    ) in completed.stderr


def test_a_baseline_that_covers_some_tests_only_is_no_match(tmp_path: Path) -> None:
    from pytest_i2v.cli_baseline import match
    from pytest_i2v.measure.environment import collect_environment
    from pytest_i2v.verdict.baseline_store import AcceptedRun, read_baseline, update_baseline

    path = tmp_path / "cpu.yaml"
    here = collect_environment("cpu")
    other = {**here, "cpu_isa": "avx512_bf16 amx_tile"}
    update_baseline(
        path,
        "cpu",
        [
            AcceptedRun("t.py::test_a", {"width": 64}, here, {"time_s": 1.0, "commit": None}),
            AcceptedRun("t.py::test_b", {"width": 96}, other, {"time_s": 1.0, "commit": None}),
        ],
    )
    matched, line = match(read_baseline(path, "cpu"), "cpu.yaml", here)
    assert not matched and line.startswith(
        "cpu.yaml: only 1 of 2 tests have runs from this machine;"
    )


def _sandbox(tmp_path: Path) -> Path:
    """A copy of what the workflow steps touch, with .venv/bin/python running this interpreter."""
    work = tmp_path / "repo"
    for part in ("suites", "baselines"):
        shutil.copytree(
            ROOT / part, work / part, ignore=shutil.ignore_patterns("__pycache__", "*.lock")
        )
    shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
    python = work / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return work


def _run(
    script: str, cwd: Path, env: dict[str, str], machine_threads: bool = False
) -> subprocess.CompletedProcess[str]:
    """``machine_threads``: the step runs with the machine's own torch thread count, as the
    shipped cpu baseline was recorded (its fingerprint has it), not the one thread a pytest-xdist
    worker gives the processes it starts (tests/conftest.py); a baseline written by this process
    has the worker's."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not (machine_threads and name == "OMP_NUM_THREADS")
    }
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**inherited, "HF_HUB_OFFLINE": "1", **env},
        timeout=900,
        check=False,
    )


def test_gate_step_runs_on_the_cpu(tmp_path: Path) -> None:
    work = _sandbox(tmp_path)
    # One cold repeat is no measurement to gate on: start without a baseline (verdicts "new"); the
    # regression path itself is covered by test_gate_loop.py.
    (work / "baselines" / "cpu.yaml").unlink()
    summary = tmp_path / "step-summary.md"
    summary.write_text("")
    completed = _run(
        step("gpu-gate.yml", "Run the gate")["run"],
        work,
        {
            "PROFILE": "cpu",
            "I2V_MODEL": "tiny",
            "GITHUB_STEP_SUMMARY": str(summary),
            "PYTEST_ADDOPTS": "-k 256p --i2v-repeats 1 --i2v-warmup 0",
        },
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    for produced in ("results.json", "report.html", "junit.xml", "summary.md"):
        assert (work / "out" / produced).stat().st_size > 0
    assert summary.read_text() == ""  # the summary step says it, also after a failing gate
    summarise = step("gpu-gate.yml", "Summarise the gate")
    assert summarise["if"] == "always() && steps.mode.outputs.mode == 'baseline'"
    assert _run(summarise["run"], work, {"GITHUB_STEP_SUMMARY": str(summary)}).returncode == 0
    # the cpu profile reports only: its headline says so, never "passes"
    assert (
        "pytest-i2v: ⚠️ not enforced on the cpu profile: nothing would have failed"
        in summary.read_text()
    )


def test_the_verdict_is_one_comment_updated_in_place_or_the_summary_for_a_fork(
    tmp_path: Path,
) -> None:
    """The comment job gathers every profile's verdict (baseline summary, A/B table, or none)
    into one comment that the sticky-comment action edits on each push; a fork's run writes
    it to the summary."""
    job = load("gpu-gate.yml")["jobs"]["comment"]
    assert job["needs"] == "gate" and job["if"] == "always() && github.event_name == 'pull_request'"
    assert job["permissions"] == {"pull-requests": "write"} and job["runs-on"] == "ubuntu-latest"
    titles = [s.get("name") for s in job["steps"]]
    post = job["steps"][titles.index("Post the verdict on the pull request")]
    assert post["uses"].startswith("marocchino/sticky-pull-request-comment@")
    assert post["with"] == {
        "header": "pytest-i2v-gpu-gate",
        "path": "verdict.md",
    }  # one comment, found by its header
    assert (
        "recreate" not in post["with"] and "append" not in post["with"]
    )  # edited, never a new one
    fork = job["steps"][titles.index("Fork pull request, verdict in the job summary")]
    assert post["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert fork["if"] == "github.event.pull_request.head.repo.full_name != github.repository"
    download = job["steps"][0]
    assert download["with"]["pattern"] == "i2v-gate-*"
    assert (
        step("gpu-gate.yml", "Upload the report")["with"]["name"]
        == "i2v-gate-${{ matrix.profile }}"
    )

    gate = tmp_path / "gate"
    (gate / "i2v-gate-rtx4090").mkdir(parents=True)
    (gate / "i2v-gate-rtx4090" / "summary.md").write_text(
        "**pytest-i2v: the gate fails: 1 regressed**\n"
    )
    (gate / "i2v-gate-h100-80gb" / "ab").mkdir(parents=True)
    (gate / "i2v-gate-h100-80gb" / "ab" / "ab.md").write_text("### A/B: 0 regressed\n")
    (gate / "i2v-gate-a100-80gb").mkdir()
    env = {"HEAD_SHA": "0123456789abcdef", "RUN_URL": "https://example.invalid/run/1"}
    assert (
        _run(job["steps"][titles.index("Assemble the verdict")]["run"], tmp_path, env).returncode
        == 0
    )
    verdict = (tmp_path / "verdict.md").read_text()
    assert verdict.startswith("## pytest-i2v GPU gate") and "Head 0123456789ab" in verdict
    sections = re.split(r"^### Profile ", verdict, flags=re.M)[1:]
    assert [s.splitlines()[0] for s in sections] == ["a100-80gb", "h100-80gb", "rtx4090"]
    assert "No verdict: the job stopped before writing one" in sections[0]
    assert "### A/B: 0 regressed" in verdict and "the gate fails: 1 regressed" in sections[2]
    summary = tmp_path / "summary.md"
    summary.write_text("")
    assert _run(fork["run"], tmp_path, {"GITHUB_STEP_SUMMARY": str(summary)}).returncode == 0
    written = summary.read_text()
    assert written.startswith("> This pull request comes from a fork") and verdict in written


def test_rebaseline_steps_run_on_the_cpu(tmp_path: Path) -> None:
    work = _sandbox(tmp_path)
    summary = tmp_path / "step-summary.md"
    summary.write_text("")
    env = {
        "PROFILE": "cpu",
        "I2V_MODEL": "tiny",
        "RUNS": "2",
        "MODE": "append",
        "REASON": "driver 550 -> 560",
        "GITHUB_RUN_ID": "1",
        "GITHUB_STEP_SUMMARY": str(summary),
        # forced: a neighbour's load on this shared CPU would leave the runs out as doubtful, which
        # tests/test_failure_paths.py checks; here the steps' files are the point
        "PYTEST_ADDOPTS": (
            "-k 'sweep and 256p' --i2v-repeats 1 --i2v-warmup 0 --i2v-force-baselines"
        ),
    }
    for title in ("Record new baseline runs", "Describe the change"):
        completed = _run(step("rebaseline.yml", title)["run"], work, env, machine_threads=True)
        assert completed.returncode == 0, (
            title + completed.stdout[-3000:] + completed.stderr[-2000:]
        )
    body = (work / "out" / "pr-body.md").read_text()
    assert body.startswith("Re-baseline `cpu`: driver 550 -> 560")
    # Two runs recorded: appended to the shipped cpu baseline's N on the machine that measured
    # it, or a new segment of 2 runs on any other; `baseline diff` then says "another machine"
    # (it never subtracts two machines' figures: tests/test_machine_fingerprint.py) and
    # `baseline show` the counts.
    from pytest_i2v.verdict.baseline_store import read_baseline

    nodeid = "suites/test_resolution_sweep.py::test_resolution_sweep[256p]"
    shipped = read_baseline(ROOT / "baselines" / "cpu.yaml", "cpu").entries[nodeid]
    recorded = read_baseline(work / "baselines" / "cpu.yaml", "cpu").entries[nodeid]
    assert shipped.current is not None and recorded.current is not None
    before, row = len(shipped.current.runs), re.escape(f"| {nodeid} |")
    assert before >= 3
    if len(recorded.segments) == len(shipped.segments):  # this machine measured the shipped one
        assert len(recorded.current.runs) == before + 2
        assert re.search(rf"{row} {before} -> {before + 2} runs \|", body), body
    else:
        assert len(recorded.segments) == len(shipped.segments) + 1
        assert len(recorded.current.runs) == 2
        assert re.search(rf"{row} another machine \|", body), body
        assert re.search(rf"{row} [^|]+ \| {len(recorded.segments)} \| 2 \|", body), body


def test_the_ab_step_runs_on_the_cpu(tmp_path: Path) -> None:
    """The A/B step as a pull request runs it: the checkout is the merge commit, its first parent
    the base (origin/main has moved on since), the target's baselines copied in (then put back),
    two ABBA rounds of one sweep test. It is also the suite's A/B job in real processes on the
    real clock, so it asserts nothing that depends on the machine's speed beyond the A/A verdict:
    the processes ran in ABBA order, the files agree with each other and with what was printed,
    nothing is left behind."""
    work = _sandbox(tmp_path)
    temp = tmp_path / "tmp"  # where the job keeps its worktrees: none is left afterwards
    temp.mkdir()
    git = [
        "git",
        "-c",
        "user.email=ci@example.com",
        "-c",
        "user.name=ci",
        "-c",
        "commit.gpgsign=false",
    ]

    def run_git(*argv: str) -> str:
        return subprocess.run(
            [*git, *argv], cwd=work, check=True, capture_output=True, text=True
        ).stdout.strip()

    run_git("init", "-q", "-b", "main")
    run_git("add", "-A")
    run_git("commit", "-qm", "base")
    base = run_git("rev-parse", "HEAD")
    run_git("checkout", "-qb", "pr")
    (work / "CHANGES").write_text("the pull request\n")
    run_git("add", "-A")
    run_git("commit", "-qm", "the change")
    run_git("checkout", "-q", "--detach", base)
    run_git(
        "merge", "-q", "--no-ff", "-m", "merge pr", "pr"
    )  # the merge commit actions/checkout gives
    run_git("commit", "-q", "--allow-empty", "-m", "main moved on")
    run_git("update-ref", "refs/remotes/origin/main", "HEAD")
    run_git("reset", "-q", "--hard", "HEAD~1")
    (work / "baselines" / "cpu.yaml").write_text(
        "copied from the target branch\n"
    )  # dirty, as after that step
    summary = tmp_path / "step-summary.md"
    summary.write_text("")
    completed = _run(
        step("gpu-gate.yml", "Run A/B against the target branch")["run"],
        work,
        {
            "PROFILE": "cpu",
            "I2V_MODEL": "tiny",
            "BASE_REF": "main",
            "AB_ROUNDS": "2",
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_EVENT_NAME": "pull_request",
            "PYTEST_ADDOPTS": "-k 'sweep and 256p' --i2v-repeats 1 --i2v-warmup 0",
            "OMP_NUM_THREADS": "1",
            "TMPDIR": str(temp),
        },
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    overall, order = job_views(
        work / "out" / "ab", completed.stdout
    )  # ab.json, ab.md and stdout agree
    assert order == ["base-0", "head-0", "head-1", "base-1"]
    assert set(overall) == {
        "suites/test_resolution_sweep.py::test_resolution_sweep[256p]"
    }  # what -k selected
    assert set(overall.values()) <= {
        "unchanged",
        "improved",
        "inconclusive",
    }  # the exit code 0 says it too
    assert [
        p.name for p in temp.iterdir() if p.name.startswith(TEMP_PREFIX)
    ] == []  # (torch keeps a cache there too)
    assert (
        summary.read_text() == ""
    )  # the summary step says it, also after a step stopped at its limit
    assert (
        _run(
            step("gpu-gate.yml", "Summarise A/B")["run"],
            work,
            {"GITHUB_STEP_SUMMARY": str(summary)},
        ).returncode
        == 0
    )
    assert (
        step("gpu-gate.yml", "Summarise A/B")["if"] == "always() && steps.mode.outputs.mode == 'ab'"
    )
    written = (work / "out" / "ab" / "ab.md").read_text()
    assert (
        "### A/B: 0 regressed" in written and r"resolution\_sweep\[256p\]" in written
    )  # Markdown-escaped
    assert "partial" not in written  # the final write replaced the rounds' partial files
    assert written in summary.read_text()
    meta = json.loads((work / "out" / "ab" / "ab.json").read_text())["meta"]
    assert meta["base_commit"] == base  # the merge's first parent, not origin/main
    assert (
        work / "baselines" / "cpu.yaml"
    ).read_text() != "copied from the target branch\n"  # put back
    assert len(run_git("worktree", "list").splitlines()) == 1  # the A/B worktrees are gone


def test_the_nightly_calibration_measures_what_the_gate_compares() -> None:
    """A calibration applies only to the same generation measured the same way: the nightly A/A
    rounds run gpu-gate.yml's A/B selection with the same options, on the runner after the study."""
    calibrate = commands(step("nightly.yml", "Calibrate A/B on this runner")["run"])[0]
    compare = commands(step("gpu-gate.yml", "Run A/B against the target branch")["run"])[0]
    assert "--calibrate" in calibrate and "--head" not in calibrate
    assert calibrate[calibrate.index("--") + 1 :] == compare[compare.index("--") + 1 :]
    assert load("nightly.yml")["jobs"]["calibrate"]["needs"] == "study"


# -- the reusable gate for a user's repository (i2v-gate.yml) ---------------------------------
GATE_ENV = {
    "PROFILE",
    "TEST_PATH",
    "I2V_MODEL",
    "PYTEST_ARGS",
    "BASELINE_DIR",
    "BASE_REF",
    "REQUESTED",
    "AB_ROUNDS",
    "ENFORCE",
}
# the runner's environment: the one kind of step not run here
INSTALL_STEPS_IN_ORDER = ("Install torch", "Install the project and pytest-i2v")


def test_the_reusable_gate_wires_in_nothing_of_this_repository() -> None:
    text = (WORKFLOWS / "i2v-gate.yml").read_text()
    workflow: dict[Any, Any] = load("i2v-gate.yml")
    triggers = workflow[True] if True in workflow else workflow["on"]
    assert list(triggers) == ["workflow_call"]
    for wired in (
        "suites/",
        "sweep or precision",
        "ali-vilab",
        "rtx4090",
        "a100-80gb",
        "h100-80gb",
        "[test]",
        "/opt/hf-cache",
    ):
        assert wired not in text.split("\njobs:")[1], wired
    job = workflow["jobs"]["gate"]
    assert set(job["env"]) == GATE_ENV
    assert job["runs-on"] == "${{ fromJSON(format(inputs.runner_labels, matrix.profile)) }}"
    assert job["strategy"]["matrix"]["profile"] == "${{ fromJSON(inputs.profiles) }}"


def _new_repository(tmp_path: Path, base_has_tests: bool) -> Path:
    """A user's repository as python -m pytest_i2v init leaves it: no baselines/ anywhere; the base
    commit on main (with or without the test path), the pull request's head checked out on top."""
    work = tmp_path / "repo"
    work.mkdir()
    init = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_i2v",
            "init",
            "--pipeline",
            "i2vgen-xl",
            "--model",
            "tiny",
            "--size",
            "256x256",
            "--frames",
            "8",
            "--steps",
            "10",
            "--dir",
            str(work),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    (work / ".gitignore").write_text(".venv/\nout/\ni2v-results/\n")
    python = work / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    git = [
        "git",
        "-c",
        "user.email=ci@example.com",
        "-c",
        "user.name=ci",
        "-c",
        "commit.gpgsign=false",
    ]

    def run_git(*argv: str) -> None:
        subprocess.run([*git, *argv], cwd=work, check=True, capture_output=True, text=True)

    (work / "README.md").write_text("a user's project\n")
    run_git("init", "-q", "-b", "main")
    run_git("add", *(["-A"] if base_has_tests else ["README.md", ".gitignore"]))
    run_git("commit", "-qm", "base")
    run_git("update-ref", "refs/remotes/origin/main", "HEAD")
    run_git("checkout", "-qb", "pr")
    (work / "README.md").write_text("a user's project, with an i2v gate\n")
    run_git("add", "-A")
    run_git("commit", "-qm", "the pull request")
    assert not (work / "baselines").exists()
    return work


@pytest.mark.parametrize("base_has_tests", [False, True], ids=["record-only", "ab"])
def test_the_reusable_gate_takes_the_first_pull_request_path(
    tmp_path: Path, base_has_tests: bool
) -> None:
    """The gate job's steps (all but the installs) on a new repository written by init: the base
    has no baselines/, so the job compares with A/B where the base has the tests, else records
    only; it goes green and its summary says which path and why."""
    work = _new_repository(tmp_path, base_has_tests)
    job = load("i2v-gate.yml")["jobs"]["gate"]
    runs = [s for s in job["steps"] if "run" in s]
    assert [s["name"] for s in runs] == [
        "Use the model cache",
        *INSTALL_STEPS_IN_ORDER,
        "Choose the path",
        "Run the tests",
        "Run A/B against the base",
        "Summarise",
    ]
    temp = tmp_path / "tmp"
    temp.mkdir()
    summary, output, github_env = tmp_path / "summary.md", tmp_path / "output", tmp_path / "env"
    for path in (summary, output, github_env):
        path.write_text("")
    env = {
        "PROFILE": "cpu",
        "TEST_PATH": "tests/",
        "I2V_MODEL": "",
        "BASELINE_DIR": "baselines",
        "BASE_REF": "main",
        "REQUESTED": "auto",
        "AB_ROUNDS": "2",
        "ENFORCE": "true",
        "PYTEST_ARGS": "--i2v-repeats 1 --i2v-warmup 0",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_ENV": str(github_env),
        "IN_HF_HOME": "",
        "OFFLINE": "false",
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(temp),
    }
    assert set(job["env"]) <= set(env)
    completed = _run(step("i2v-gate.yml", "Use the model cache")["run"], work, env)
    assert completed.returncode == 0 and github_env.read_text() == "", completed.stderr
    completed = _run(step("i2v-gate.yml", "Choose the path")["run"], work, env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    expected = "ab" if base_has_tests else "record"
    assert outputs["mode"] == expected
    path_line = summary.read_text()
    assert path_line.startswith("**pytest-i2v on `cpu`: ")
    assert "first pull request: `main` has no `baselines/` yet" in path_line
    assert ("A/B: the base" if base_has_tests else "record only: every test is new") in path_line
    if base_has_tests:
        gate = step("i2v-gate.yml", "Run A/B against the base")
        completed = _run(gate["run"], work, {**env, "BASE": outputs["base"]})
    else:
        gate = step("i2v-gate.yml", "Run the tests")
        completed = _run(gate["run"], work, {**env, "BASELINES": outputs["baselines"]})
    assert gate["if"].count(f"steps.plan.outputs.mode == '{expected}'") == 1
    assert gate["continue-on-error"] == "${{ !inputs.enforce }}"
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert _run(step("i2v-gate.yml", "Summarise")["run"], work, env).returncode == 0
    written = summary.read_text()
    assert written.startswith(path_line) and written.count(path_line.strip()) == 1
    verdict = (work / "out" / "verdict.md").read_text()
    assert verdict.startswith(path_line.strip())
    nodeid = "tests/test_i2v.py::test_i2v"
    if base_has_tests:
        overall, _order = job_views(work / "out" / "ab", completed.stdout)
        assert set(overall) == {nodeid}
        assert set(overall.values()) <= {"unchanged", "improved", "inconclusive"}
        assert "### A/B: 0 regressed" in written
    else:
        records = json.loads((work / "out" / "results.json").read_text())["records"]
        assert [(r["nodeid"], r["outcome"]) for r in records] == [(nodeid, "ok")]
        assert (work / "out" / "summary.md").read_text() in written
    assert not (work / "baselines").exists()  # the gate records nothing in the checkout
