"""A bad YAML file of ours is one line that points at the place: ``path:line:column`` for syntax,
``path: entries['t::a'].segments[0]`` for a malformed part, never a Python exception's text; the
run (pytest or ``python -m pytest_i2v``) exits 4 and writes nothing (issue 34)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_i2v.cli import main
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.profiles import load_profiles
from pytest_i2v.storage import read_yaml
from pytest_i2v.verdict.baseline_store import read_baseline

HEADER = "schema: pytest-i2v/baseline\nschema_version: 1\nprofile: cpu\n"
YAML_FIX = "fix the file (or restore it from version control), or delete it to re-record"
FIX = "fix it or restore the file from version control"
CALIBRATION_FIX = "delete the block and run python -m pytest_i2v ab --calibrate again"
ENTRY = "a mapping with config_id, config and segments"


def _message(path: Path, text: str | bytes, profile: str | None = "cpu") -> str:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(I2VUsageError) as caught:
        read_baseline(path, profile)
    message = str(caught.value)
    assert "\n" not in message and "Error" not in message and "Traceback" not in message
    return message


NOT_YAML = "baseline file is not valid YAML"
UNCLOSED = (
    "2:1: baseline file is not valid YAML: expected ',' or ']', but got '<stream end>' "
    "(while parsing a flow sequence at 1:10)"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("entries: [unclosed\n", UNCLOSED, id="unclosed-list"),
        pytest.param(
            HEADER + "entries:\n  t::a: {config_id: abc\n  t::b: 1\n",
            f"6:7: {NOT_YAML}: expected ',' or '}}', but got ':' "
            "(while parsing a flow mapping at 5:9)",
            id="unclosed-mapping",
        ),
        pytest.param(
            "!!python/object/apply:os.system ['echo pwned']\n",
            f"1:1: {NOT_YAML}: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'",
            id="python-tag",
        ),
        pytest.param(
            HEADER + "\tentries: {}\n",
            f"4:1: {NOT_YAML}: found character '\\t' that cannot start any token",
            id="tab",
        ),
        pytest.param(
            HEADER + "entries: {}\nnote: a\x07b\n",
            f"5:8: {NOT_YAML}: character '\\x07': special characters are not allowed",
            id="control-character",
        ),
        pytest.param(
            HEADER.encode() + b"entries: {}\nnote: \xff\n",
            "5:7: baseline file is not UTF-8 text (byte 0xff)",
            id="not-utf-8",
        ),
        pytest.param(
            HEADER + "---\nentries: {}\n",
            f"4:1: {NOT_YAML}: but found another document (expected a single document in the "
            "stream at 1:1)",
            id="two-documents",
        ),
    ],
)
def test_yaml_errors_name_file_line_and_column(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    path = tmp_path / "cpu.yaml"
    assert _message(path, text) == f"{path}:{expected}; {YAML_FIX}"


def test_an_unreadable_file_is_one_line_too(tmp_path: Path) -> None:
    with pytest.raises(I2VUsageError) as caught:
        read_yaml(tmp_path, "baseline file", "fix it")
    assert str(caught.value) == f"{tmp_path}: baseline file cannot be read (Is a directory); fix it"


ENTRIES = "entries: expected a mapping of test node ids to entries"
A = "entries['t::a']"
CONFIG_ID = "expected the test's config id (12 hex digits)"
SEGMENT = "a mapping with fingerprint, runs and signature"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("entries: [1, 2]\n", f"{ENTRIES}; got [1, 2]", id="entries-a-list"),
        pytest.param(
            "entries: {5: {config_id: abc}}\n",
            f"{ENTRIES} (keys such as 'tests/test_x.py::test_a'); got 5",
            id="key-not-a-node-id",
        ),
        pytest.param("entries: {t::a: 1}\n", f"{A}: expected {ENTRY}; got 1", id="entry-a-number"),
        pytest.param(
            "entries: {t::a: [1, 2]}\n", f"{A}: expected {ENTRY}; got [1, 2]", id="entry-a-list"
        ),
        pytest.param(
            "entries:\n  t::a: {segments: []}\n",
            f"{A}.config_id: {CONFIG_ID}; got None",
            id="no-config-id",
        ),
        pytest.param(
            "entries:\n  t::a: {config_id: [1], segments: []}\n",
            f"{A}.config_id: {CONFIG_ID}; got [1]",
            id="config-id-a-list",
        ),
        pytest.param(
            "entries:\n  t::a: {config_id: abc, config: 7}\n",
            f"{A}.config: expected a mapping of generation settings; got 7",
            id="config",
        ),
        pytest.param(
            "entries:\n  t::a: {config_id: abc, segments: {a: 1}}\n",
            f"{A}.segments: expected a list of segments, each {SEGMENT}; got {{'a': 1}}",
            id="segments-a-mapping",
        ),
        pytest.param(
            "entries:\n  t::a: {config_id: abc, segments: [3]}\n",
            f"{A}.segments[0]: expected {SEGMENT}; got 3",
            id="segment-a-number",
        ),
        pytest.param(
            "entries:\n  t::a: {config_id: abc, segments: [{fingerprint: [x]}]}\n",
            f"{A}.segments[0].fingerprint: expected a mapping of environment keys; got ['x']",
            id="fingerprint",
        ),
        pytest.param(
            "entries:\n  t::a: {config_id: abc, segments: [{runs: {a: 1}}]}\n",
            f"{A}.segments[0].runs: expected a list of runs; got {{'a': 1}}",
            id="runs",
        ),
        pytest.param(
            "entries:\n  t::a: {config_id: abc, segments: [{runs: [{time_s: 1.0}, oops]}]}\n",
            f"{A}.segments[0].runs[1]: expected a mapping of a run's figures; got 'oops'",
            id="run",
        ),
        pytest.param(
            "entries:\n  t::a: {config_id: abc, segments: [{signature: [1]}]}\n",
            f"{A}.segments[0].signature: expected a work-signature digest; got [1]",
            id="signature",
        ),
    ],
)
def test_malformed_entries_are_named_by_their_place(
    tmp_path: Path, body: str, expected: str
) -> None:
    path = tmp_path / "cpu.yaml"
    assert _message(path, HEADER + body) == f"{path}: {expected}; {FIX}"


def test_a_long_value_is_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    body = f"entries:\n  t::a: {{config_id: abc, config: {'x' * 100}}}\n"
    message = _message(path, HEADER + body)
    assert message == (
        f"{path}: {A}.config: expected a mapping of generation settings; got '{'x' * 56}...; {FIX}"
    )


BLOCK = "ab_calibration[0]"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "ab_calibration: {a: 1}\n",
            f"ab_calibration: expected a list of calibration blocks; got {{'a': 1}}; {FIX}",
            id="not-a-list",
        ),
        pytest.param(
            "ab_calibration: [1]\n",
            f"{BLOCK}: expected a mapping with fingerprint, date, "
            f"rounds and tests; got 1; {CALIBRATION_FIX}",
            id="block-a-number",
        ),
        pytest.param(
            "ab_calibration: [{date: '2025-01-01'}]\n",
            f"{BLOCK}.rounds: expected a whole number of rounds; got None; {CALIBRATION_FIX}",
            id="no-rounds",
        ),
        pytest.param(
            "ab_calibration: [{rounds: 30}]\n",
            f"{BLOCK}.date: expected the calibration's date; got None; {CALIBRATION_FIX}",
            id="no-date",
        ),
        pytest.param(
            "ab_calibration: [{date: x, rounds: 30, tests: {t::a: 1}}]\n",
            f"{BLOCK}.tests: expected a mapping of test node ids to their figures; "
            f"got {{'t::a': 1}}; {CALIBRATION_FIX}",
            id="tests",
        ),
    ],
)
def test_malformed_calibration_blocks_are_named_by_their_place(
    tmp_path: Path, body: str, expected: str
) -> None:
    path = tmp_path / "cpu.yaml"
    assert _message(path, HEADER + "entries: {}\n" + body) == f"{path}: {expected}"


def test_a_well_formed_file_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    path.write_text(
        HEADER + "entries:\n  t::a:\n    config_id: abc\n    config: {steps: 2}\n"
        "    segments:\n    - fingerprint: {torch: '2.5'}\n      runs:\n"
        "      - {date: '2025-01-01', time_s: 1.5}\n"
        "ab_calibration:\n"
        "- {date: '2025-01-01', commit: null, rounds: 30, tests: {t::a: {}}}\n"
    )
    baseline = read_baseline(path, "cpu")
    entry = baseline.entries["t::a"]
    assert (entry.config_id, entry.config) == ("abc", {"steps": 2})
    assert entry.segments[0].runs == [{"date": "2025-01-01", "time_s": 1.5}]
    assert baseline.calibrations[0].rounds == 30


PROFILE = "name: mine\nmemory_gb: 8\ndevice: cuda\nmatch: ['X']\n"
IN_PROFILE = "profile file {path}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "name: mine\nmemory_gb: [8\n",
            "{path}:3:1: profile file is not valid YAML: expected ',' or ']', but got "
            "'<stream end>' (while parsing a flow sequence at 2:12); fix the file or "
            "remove it",
            id="syntax",
        ),
        pytest.param(
            PROFILE + "gate: [1]\n",
            f"{IN_PROFILE}: gate must map gate settings (min_effect, "
            "tolerance, alpha, ...) to values, got [1]",
            id="gate-a-list",
        ),
        pytest.param(
            PROFILE + "gate: {alpha: x}\n",
            f"{IN_PROFILE}: gate: min_effect, tolerance, "
            "alpha and min_history must be numbers, got 0.05, 0.1, 'x', 3",
            id="gate-alpha-text",
        ),
        pytest.param(
            PROFILE + "gate: {memory_abs_mib: lots}\n",
            f"{IN_PROFILE}: gate: memory_abs_mib must be a number of MiB, got 'lots'",
            id="gate-memory-text",
        ),
        pytest.param(
            PROFILE + "gate: {speed: 1}\n",
            f"{IN_PROFILE}: gate: unknown gate setting(s): speed",
            id="gate-unknown",
        ),
        pytest.param(
            PROFILE + "scaling: [1]\n",
            f"{IN_PROFILE}: scaling must map size_divisor/"
            "steps_divisor/frames_divisor/min_size to integers",
            id="scaling-a-list",
        ),
    ],
)
def test_profile_files_get_the_same_treatment(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(I2VUsageError) as caught:
        load_profiles(tmp_path)
    assert str(caught.value) == expected.format(path=path)


def _snapshot(root: Path) -> set[str]:
    ignored = {"__pycache__", ".pytest_cache", ".benchmarks"}
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if not ignored & set(p.relative_to(root).parts)
    }


GOOD_TEST = """
import pytest

@pytest.mark.i2v(resolution="256p", frames=2, steps=10)
def test_gen(i2v_run):
    i2v_run()
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("entries: [unclosed\n", f"{{path}}:{UNCLOSED}; {YAML_FIX}", id="syntax"),
        pytest.param(
            HEADER + "entries: [1, 2]\n",
            f"{{path}}: {ENTRIES}; got [1, 2]; {FIX}",
            id="entries-a-list",
        ),
    ],
)
def test_a_bad_baseline_stops_the_run_at_collection_with_one_line(
    i2v_project: pytest.Pytester, text: str, expected: str
) -> None:
    """Read when the first i2v test is collected (the run is built there), not at configure time:
    a session without i2v tests never reads it (test_plugin)."""
    baselines = i2v_project.path / "baselines"
    baselines.mkdir()
    (baselines / "cpu.yaml").write_text(text)
    i2v_project.makepyfile(test_case=GOOD_TEST)
    before = _snapshot(i2v_project.path)
    result = i2v_project.runpytest(
        "--i2v-json", "out/r.json", "--i2v-baseline-dir", "baselines", "--i2v-update-baselines"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR == 4, result.stderr.str()[-2000:]
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert errors == ["ERROR: " + expected.format(path=(baselines / "cpu.yaml").resolve())]
    assert "Traceback" not in result.stderr.str() and "INTERNALERROR" not in result.stdout.str()
    assert _snapshot(i2v_project.path) == before, "a usage error must write nothing"


@pytest.mark.parametrize("command", [["show", "cpu"], ["match", "cpu"], ["diff", "cpu", "cpu"]])
def test_the_cli_prints_one_line_and_exits_4(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cpu.yaml"
    path.write_text(HEADER + "entries: [1, 2]\n")
    before = _snapshot(tmp_path)
    assert main(["baseline", *command, "--dir", str(tmp_path)]) == 4
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: {path.resolve()}: {ENTRIES}; got [1, 2]; {FIX}\n"
    assert _snapshot(tmp_path) == before


def test_python_m_pytest_i2v_baseline_exits_4_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cpu.yaml"
    path.write_text("entries: [unclosed\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_i2v", "baseline", "show", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4
    assert done.stdout == ""
    assert done.stderr == f"error: {path}:{UNCLOSED}; {YAML_FIX}\n"
