"""The bad-input catalogue: each case is one clear line naming the culprit and the fix, exit
code 4, and nothing written (no results, report, summary or baseline)."""

from __future__ import annotations

from pathlib import Path

import pytest

GOOD_TEST = """
import pytest

@pytest.mark.i2v(resolution="256p", frames=2, steps=10)
def test_gen(i2v_run):
    i2v_run()
"""


def mark_test(mark: str) -> str:
    return f"""
import pytest

@pytest.mark.{mark}
def test_gen(i2v_run):
    i2v_run()
"""


BASELINE_HEADER = (
    "schema: pytest-i2v/baseline\nschema_version: {version}\nprofile: {profile}\nentries: {{}}\n"
)
PROFILE = (
    "name: {name}\nmemory_gb: {memory}\ndevice: cuda\nmatch: ['X']\n"
    "model: ali-vilab/i2vgen-xl\ndtype: fp16\n"
)

# (id, files to create {relative path: text}, test file text, command-line args, expected message)
CASES = [
    (
        "environment-hook-sets-a-mapping",
        {
            "conftest.py": "def pytest_i2v_environment(environment):\n"
            "    environment['image'] = {'tag': 'v1'}\n"
        },
        GOOD_TEST,
        [],
        "pytest_i2v_environment: environment['image'] is a dict; set a string, a number, a "
        "boolean or None (it is a fingerprint key)",
    ),
    (
        "corrupt-baseline-yaml",
        {"baselines/cpu.yaml": "entries: [unclosed\n"},
        GOOD_TEST,
        [],
        "*/baselines/cpu.yaml:2:1: baseline file is not valid YAML: expected ',' or ']', but got "
        "'<stream end>' (while parsing a flow sequence at 1:10); fix the file (or restore it from "
        "version control), or delete it to re-record",
    ),
    (
        "baseline-newer-schema",
        {"baselines/cpu.yaml": BASELINE_HEADER.format(version=9, profile="cpu")},
        GOOD_TEST,
        [],
        "*baseline schema_version 9, newer than this plugin reads (1); upgrade pytest-i2v",
    ),
    (
        "baseline-other-profile",
        {"baselines/cpu.yaml": BASELINE_HEADER.format(version=1, profile="rtx4090")},
        GOOD_TEST,
        [],
        "*holds baselines for profile 'rtx4090', not 'cpu'*",
    ),
    (
        "baseline-not-ours",
        {"baselines/cpu.yaml": "just: a mapping\n"},
        GOOD_TEST,
        [],
        "*is not a pytest-i2v baseline file*",
    ),
    (
        "unknown-profile",
        {},
        GOOD_TEST,
        ["--gpu-profile", "rtx9090"],
        "unknown GPU profile 'rtx9090'; known profiles: *",
    ),
    (
        "profile-with-slash",
        {},
        GOOD_TEST,
        ["--gpu-profile", "a/b"],
        "profile name 'a/b' is not allowed*",
    ),
    (
        "profile-with-dotdot",
        {},
        GOOD_TEST,
        ["--gpu-profile", "..x"],
        "profile name '..x' is not allowed*",
    ),
    (
        "profile-missing-memory",
        {"profiles/mine.yaml": "name: mine\nmatch: ['X']\n"},
        GOOD_TEST,
        ["--i2v-profile-dir", "profiles"],
        "profile file */mine.yaml: memory_gb must be a positive number of GB, got None",
    ),
    (
        "profile-negative-memory",
        {"profiles/mine.yaml": PROFILE.format(name="mine", memory=-8)},
        GOOD_TEST,
        ["--i2v-profile-dir", "profiles"],
        "profile file */mine.yaml: memory_gb must be a positive number of GB, got -8",
    ),
    (
        "profile-fidelity-bar-out-of-range",
        {
            "profiles/mine.yaml": PROFILE.format(name="mine", memory=24)
            + "fidelity: {lossy: {min_psnr_db: 30, min_ssim: 9}}\n"
        },
        GOOD_TEST,
        ["--i2v-profile-dir", "profiles"],
        "profile file */mine.yaml: fidelity: lossy: min_psnr_db must be a positive number of dB "
        "and min_ssim a number in ?0, 1?, got 30 and 9; e.g. fidelity: {lossless: *",
    ),
    (
        "profile-fidelity-unknown-part",
        {"profiles/mine.yaml": PROFILE.format(name="mine", memory=24) + "fidelity: {exact: {}}\n"},
        GOOD_TEST,
        ["--i2v-profile-dir", "profiles"],
        "profile file */mine.yaml: fidelity: unknown fidelity part(s) exact (lossless, lossy)*",
    ),
    (
        "profile-corrupt-yaml",
        {"profiles/mine.yaml": "name: [mine\n"},
        GOOD_TEST,
        ["--i2v-profile-dir", "profiles"],
        "*/profiles/mine.yaml:2:1: profile file is not valid YAML: expected ',' or ']', but got "
        "'<stream end>' (while parsing a flow sequence at 1:7); fix the file or remove it",
    ),
    (
        "profile-dir-missing",
        {},
        GOOD_TEST,
        ["--i2v-profile-dir", "nope"],
        "--i2v-profile-dir */nope is not a directory*",
    ),
    (
        "profile-mismatch",
        {},
        GOOD_TEST,
        ["--gpu-profile", "a100-80gb"],
        "--gpu-profile a100-80gb expects a 80 GB GPU named like 'A100' "
        "but this machine has no GPU*",
    ),
    (
        "mark-frames-wrong-type",
        {},
        mark_test('i2v(resolution="256p", frames="16")'),
        [],
        "test_case.py::test_gen: frames='16' must be an integer >= 1",
    ),
    (
        "mark-size-not-multiple-of-8",
        {},
        mark_test("i2v(width=250, height=256)"),
        [],
        "test_case.py::test_gen: width=250 is not a multiple of 8 (try 248 or 256): "
        "i2vgen-xl needs sizes divisible by 8, frames >= 1",
    ),
    (
        "mark-zero-frames",
        {},
        mark_test("i2v(frames=0)"),
        [],
        "test_case.py::test_gen: frames=0 must be >= 1",
    ),
    (
        "mark-negative-steps",
        {},
        mark_test("i2v(steps=-5)"),
        [],
        "test_case.py::test_gen: steps=-5 must be >= 1",
    ),
    (
        "mark-unknown-memory-option",
        {},
        mark_test('i2v(memory=["gradient_checkpointing"])'),
        [],
        "test_case.py::test_gen: memory option 'gradient_checkpointing' is unknown; use any of *",
    ),
    (
        "mark-unknown-dtype",
        {},
        mark_test('i2v(dtype="fp8")'),
        [],
        "test_case.py::test_gen: dtype='fp8' is unknown*",
    ),
    (
        "mark-unknown-resolution",
        {},
        mark_test('i2v(resolution="480p")'),
        [],
        "test_case.py::test_gen: resolution='480p' is not a preset*",
    ),
    (
        "mark-unknown-argument",
        {},
        mark_test("i2v(frame=16)"),
        [],
        "*@pytest.mark.i2v: got an unexpected keyword argument 'frame'*",
    ),
    (
        "mark-fast-not-bool",
        {},
        mark_test('i2v(fast="yes")'),
        [],
        "test_case.py::test_gen: fast='yes' must be True or False",
    ),
    (
        "fidelity-mark-ssim-out-of-range",
        {},
        mark_test("i2v_fidelity(min_ssim=2)"),
        [],
        "test_case.py::test_gen: i2v_fidelity(min_ssim=2): a number in ?0, 1?",
    ),
    (
        "fidelity-mark-unknown-argument",
        {},
        mark_test("i2v_fidelity(psnr=30)"),
        [],
        "*@pytest.mark.i2v_fidelity: got an unexpected keyword argument 'psnr'*",
    ),
    (
        "vram-budget-zero",
        {},
        mark_test("vram_budget(0)"),
        [],
        "test_case.py::test_gen: vram_budget(0): the budget must be a positive number",
    ),
    (
        "time-budget-text",
        {},
        mark_test('time_budget("1m")'),
        [],
        "test_case.py::test_gen: time_budget('1m'): the budget must be a positive number",
    ),
    (
        "option-dtype-unknown",
        {},
        GOOD_TEST,
        ["--i2v-dtype", "fp8"],
        "--i2v-dtype = 'fp8': use one of fp16, bf16, fp32",
    ),
    (
        "option-fp16-on-cpu",
        {},
        GOOD_TEST,
        ["--i2v-dtype", "fp16"],
        "--i2v-dtype fp16 on the CPU: many fp16 kernels are missing*use fp32 or bf16",
    ),
    (
        "model-dir-missing",
        {},
        GOOD_TEST,
        ["--i2v-model", "./models/none"],
        "--i2v-model ./models/none: no such directory*",
    ),
    (
        "model-dir-not-diffusers",
        {"models/empty/readme.txt": "x"},
        GOOD_TEST,
        ["--i2v-model", "./models/empty"],
        "--i2v-model ./models/empty: not a diffusers pipeline directory (no model_index.json)*",
    ),
    (
        "model-pickle-weights",
        {
            "models/pickled/model_index.json": "{}",
            "models/pickled/unet/diffusion_pytorch_model.bin": "x",
        },
        GOOD_TEST,
        ["--i2v-model", "./models/pickled"],
        "--i2v-model ./models/pickled: only pickle weights*--i2v-allow-pickle*",
    ),
    (
        "model-not-a-source",
        {},
        GOOD_TEST,
        ["--i2v-model", "justaname"],
        "--i2v-model 'justaname' is neither a local directory*",
    ),
    (
        "input-image-not-an-image",
        {"in.png": "not a png"},
        GOOD_TEST,
        ["--i2v-input-image", "in.png"],
        "i2v_input_image */in.png: not an image Pillow can read*give a PNG or JPEG",
    ),
    (
        "input-image-missing",
        {},
        GOOD_TEST,
        ["--i2v-input-image", "none.png"],
        "i2v_input_image */none.png: no such file*",
    ),
    ("repeats-zero", {}, GOOD_TEST, ["--i2v-repeats", "0"], "--i2v-repeats = '0': must be >= 1"),
    (
        "repeats-text",
        {},
        GOOD_TEST,
        ["--i2v-repeats", "five"],
        "--i2v-repeats = 'five': must be an integer",
    ),
    ("warmup-negative", {}, GOOD_TEST, ["--i2v-warmup", "-1"], "--i2v-warmup = '-1': must be >= 0"),
    (
        "device-unknown",
        {},
        GOOD_TEST,
        ["--i2v-device", "tpu"],
        "--i2v-device = 'tpu': use cpu, cuda or cuda:N",
    ),
    (
        "device-cuda-without-cuda",
        {},
        GOOD_TEST,
        ["--i2v-device", "cuda"],
        "--i2v-device cuda: CUDA is not available here*",
    ),
    (
        "update-with-fast",
        {},
        GOOD_TEST,
        ["--i2v-fast", "--i2v-update-baselines"],
        "--i2v-update-baselines with --i2v-fast: baselines hold measured runs"
        "*re-baseline without --i2v-fast",
    ),
    (
        "update-mode-unknown",
        {},
        GOOD_TEST,
        ["--i2v-update-baselines=replace"],
        "--i2v-update-baselines = 'replace': use append*or reset*",
    ),
    (
        "gate-mode-unknown",
        {},
        GOOD_TEST,
        ["--i2v-gate-mode", "strict"],
        "--i2v-gate-mode = 'strict': use enforce*or report*",
    ),
    (
        "env-policy-unknown",
        {},
        GOOD_TEST,
        ["--i2v-env-policy", "panic"],
        "--i2v-env-policy = 'panic': use warn*fail, or ignore",
    ),
    (
        "latency-thresholds-reversed",
        {},
        GOOD_TEST,
        ["--i2v-latency-thresholds", "60,30"],
        "--i2v-latency-thresholds = '60,30': use two increasing positive numbers of seconds*",
    ),
    (
        "safety-margin-negative",
        {},
        GOOD_TEST,
        ["--i2v-safety-margin", "-1"],
        "--i2v-safety-margin = '-1': must be a number >= 0",
    ),
    (
        "gpus-not-indices",
        {},
        GOOD_TEST,
        ["--i2v-gpus", "first"],
        "--i2v-gpus = 'first': use comma-separated CUDA device indices*",
    ),
    (
        "min-above-max-repeats",
        {},
        GOOD_TEST,
        ["--i2v-target-ci", "2", "--i2v-min-repeats", "9", "--i2v-max-repeats", "4"],
        "--i2v-min-repeats 9 is more than --i2v-max-repeats 4",
    ),
    (
        "target-ci-zero",
        {},
        GOOD_TEST,
        ["--i2v-target-ci", "0"],
        "--i2v-target-ci = '0': must be a number > 0",
    ),
    (
        "ini-repeats-bad",
        {"pytest.ini": "[pytest]\ni2v_repeats = lots\n"},
        GOOD_TEST,
        [],
        "ini i2v_repeats = 'lots': must be an integer",
    ),
]


def _snapshot(root: Path) -> set[str]:
    # pytest's cache is its own, made at startup (and pytest-benchmark's .benchmarks, where
    # installed)
    ignored = {"__pycache__", ".pytest_cache", ".benchmarks"}
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if not ignored & set(p.relative_to(root).parts)
    }


@pytest.mark.parametrize(
    ("files", "test", "args", "message"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_bad_input_is_one_clear_line_and_writes_nothing(
    i2v_project: pytest.Pytester, files: dict[str, str], test: str, args: list[str], message: str
) -> None:
    for relative, text in files.items():
        path = i2v_project.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    i2v_project.makepyfile(test_case=test)
    before = _snapshot(i2v_project.path)
    result = i2v_project.runpytest(
        "--i2v-json",
        "out/r.json",
        "--i2v-report",
        "out/r.html",
        "--i2v-markdown",
        "out/s.md",
        "--i2v-baseline-dir",
        "baselines",
        "--i2v-update-baselines",
        *args,
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR, (
        result.stdout.str()[-2000:] + result.stderr.str()[-2000:]
    )
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert len(errors) == 1, result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() and "INTERNALERROR" not in result.stdout.str()
    assert _snapshot(i2v_project.path) == before, "a usage error must write nothing"


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)
