"""Budget marks through pytest: skip before an OOM, fail over budget, usage errors at collection."""

from __future__ import annotations

import json

import pytest

SMALL = 'resolution="256p", frames=2, steps=10'


def test_tight_budgets_fail_with_the_figures(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.i2v({SMALL})
        @pytest.mark.vram_budget(0.01)
        def test_vram(i2v_run):
            i2v_run()

        @pytest.mark.i2v({SMALL})
        @pytest.mark.time_budget(0.000001)
        def test_time(i2v_run):
            i2v_run()

        @pytest.mark.i2v({SMALL})
        @pytest.mark.vram_budget(20)
        @pytest.mark.time_budget(600)
        def test_roomy(i2v_run):
            i2v_run()
        """
    )
    result = i2v_project.runpytest("--i2v-json", "r.json")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*i2v: VRAM budget 0.01 GB exceeded: measured * GB (peak host RSS), "
            "over by * GB (+*%)*",
            "*i2v: time budget 1e-06 s exceeded: median * s, over by * s (+*%)*",
        ]
    )
    records = {
        r["nodeid"].split("::")[1]: r
        for r in json.loads((i2v_project.path / "r.json").read_text())["records"]
    }
    assert records["test_roomy"]["budget"] == {"vram_gb": 20.0, "time_s": 600.0}
    assert records["test_roomy"]["latency_class"] == "good"


def test_budget_that_cannot_fit_the_profile_is_skipped_before_running(
    i2v_project: pytest.Pytester,
) -> None:
    # A profile that runs the generation as marked (no scaling): there the budget's size decides.
    i2v_project.mkdir("profiles")
    i2v_project.path.joinpath("profiles", "cpu-unscaled.yaml").write_text(
        "schema_version: 1\nname: cpu-unscaled\ndescription: the CPU, sizes as marked\n"
        "memory_gb: 24\ndevice: cpu\nmatch: []\nmodel: tiny\ndtype: fp32\n",
        encoding="utf-8",
    )
    i2v_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.i2v({SMALL})
        @pytest.mark.vram_budget(23)
        def test_too_big(i2v_run, i2v_profile):
            i2v_run()  # runs only where 23 GB fits the profile's memory minus the margin
        """
    )
    unscaled = ("--i2v-profile-dir", "profiles", "--gpu-profile", "cpu-unscaled")
    result = i2v_project.runpytest("-rs", *unscaled)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["*VRAM budget 23 GB does not fit this profile's 24 GB minus the 2 GB safety margin*"]
    )
    result = i2v_project.runpytest(
        "-rs", *unscaled, "--i2v-safety-margin", "0.5", "--i2v-repeats", "1"
    )
    result.assert_outcomes(passed=1)
    # The cpu profile scales the study down: the marked size is not what it measures, so no skip.
    result = i2v_project.runpytest("-rs", "--i2v-repeats", "1")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ("vram_budget(0)", "vram_budget(0): the budget must be a positive number"),
        ('time_budget("fast")', "time_budget('fast'): the budget must be a positive number"),
        ("vram_budget()", "@pytest.mark.vram_budget: missing a required argument: 'gb'"),
    ],
)
def test_bad_budgets_are_usage_errors_naming_the_test(
    i2v_project: pytest.Pytester, mark: str, message: str
) -> None:
    i2v_project.makepyfile(
        test_b=f"""
        import pytest

        @pytest.mark.{mark}
        def test_bad(i2v_run):
            pass
        """
    )
    result = i2v_project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: test_b.py::test_bad: {message}*"])


def test_markers_list_the_budget_marks(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.vram_budget(gb: *float*): fail when the peak memory exceeds gb GB*",
            "@pytest.mark.time_budget(seconds: *float*): fail when the median generation time*",
        ]
    )
