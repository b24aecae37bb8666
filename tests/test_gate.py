from __future__ import annotations

import math

import pytest

from pytest_i2v.verdict.gate import (
    FixedPercentRule,
    GateSettings,
    RegressionVerdict,
    fingerprint_changes,
    judge_memory,
    judge_metrics,
    judge_time,
    prior_for,
)
from pytest_i2v.verdict.noise_prior import MIN_PRIOR_ENTRIES, Noise, fit_prior, prior_from
from pytest_i2v.verdict.outcome import DecisionInputs, decide

SETTINGS = GateSettings()


def fails(verdict: RegressionVerdict, settings: GateSettings) -> bool:
    """Whether the one decision fails a test on ``verdict`` alone (measured, within its budgets)."""
    mode = "enforce" if settings.enforce else "report"
    inputs = DecisionInputs("ok", (), verdict.verdict, settings.env_policy, mode, "test-profile")
    return decide(inputs).fails


HISTORY = [10.0, 10.2, 9.9, 10.1, 10.0]


def test_no_history_is_new() -> None:
    assert judge_metrics([], {"time_s": 1.0}, SETTINGS).verdict == "new"
    assert judge_time("time_s", [], 1.0, SETTINGS).verdict == "new"


def test_unchanged_run_passes_and_reports_the_interval() -> None:
    m = judge_time("time_s", HISTORY, 10.05, SETTINGS)
    assert m.verdict == "pass" and m.rule == "prediction-interval" and m.runs == 5
    low, high = m.interval
    assert low < 10.0 < high
    assert m.baseline == 10.0 and m.delta_pct == pytest.approx(0.5)


def test_clear_slowdown_regresses_and_speedup_improves() -> None:
    assert judge_time("time_s", HISTORY, 12.0, SETTINGS).verdict == "regressed"
    assert judge_time("time_s", HISTORY, 8.0, SETTINGS).verdict == "improved"


def test_zero_variance_history_still_needs_the_minimum_effect() -> None:
    flat = [10.0] * 6
    assert judge_time("time_s", flat, 10.3, SETTINGS).verdict == "pass"  # +3 % < 5 % minimum effect
    assert (
        judge_time("time_s", flat, 10.8, SETTINGS).verdict == "regressed"
    )  # +8 %: past the band the prior noise allows


def test_one_run_uses_the_profile_tolerance() -> None:
    m = judge_time("time_s", [10.0], 10.9, SETTINGS)
    assert m.rule == "tolerance" and m.verdict == "pass" and "tolerance" in m.threshold
    assert judge_time("time_s", [10.0], 11.2, SETTINGS).verdict == "regressed"
    # asv's Mann-Whitney rule cannot flag anything with <= 6 samples; this rule flags with 1 history
    # run
    assert judge_time("time_s", [10.0, 10.1], 13.0, SETTINGS).verdict == "regressed"


def test_huge_outlier_in_history_widens_the_band_instead_of_failing() -> None:
    noisy = [10.0, 10.1, 9.9, 10.0, 30.0]
    m = judge_time("time_s", noisy, 10.4, SETTINGS)
    assert m.verdict == "pass"
    assert m.interval[1] > 12.0


def test_interval_matches_the_formula() -> None:
    settings = GateSettings(prior_df=4, prior_noise=0.02, min_effect=0.0)
    logs = [math.log(v) for v in HISTORY]
    mean = sum(logs) / len(logs)
    own = sum((x - mean) ** 2 for x in logs) / (len(logs) - 1)
    variance = (0.02**2 * 4 + own * 4) / 8
    from scipy import stats

    half = stats.t.ppf(1 - settings.alpha, 8) * math.sqrt(variance * (1 + 1 / 5))
    m = judge_time("time_s", HISTORY, 10.0, settings)
    assert m.interval[1] == pytest.approx(math.exp(mean + half))


def test_the_prior_is_fitted_from_the_spread_of_the_entries_variances() -> None:
    """limma's fitFDist: alike variances give the cap's df; spread ones a small df; fewer than
    MIN_PRIOR_ENTRIES entries no prior at all (the declared one is used)."""
    alike = fit_prior([Noise(0.0001, 4)] * 10, 200)
    # its variance is the log variances' mean corrected for chi-square's skew (E log s2 < log s0^2)
    assert alike is not None and alike.df == 200 and 0.0001 < alike.variance < 0.00015
    spread = fit_prior([Noise(v, 4) for v in (0.00001, 0.0001, 0.001, 0.00003, 0.0003)], 200)
    assert spread is not None and spread.df < 4
    assert fit_prior([Noise(0.0001, 4)] * (MIN_PRIOR_ENTRIES - 1), 200) is None
    assert prior_from([[1.0]] * 10) is None  # one run each: no spread to fit
    assert prior_for(SETTINGS, Noise(0.001, 10_000)).df == SETTINGS.max_pooled_df
    assert prior_for(SETTINGS, None) == Noise(SETTINGS.prior_noise**2, SETTINGS.prior_df)
    # an entry far noisier than the fitted prior keeps its own noise, borrowing no df
    assert prior_for(SETTINGS, Noise(0.0001, 200), Noise(0.01, 4)) == Noise(0.01, 0)
    assert prior_for(SETTINGS, Noise(0.0001, 200), Noise(0.00012, 4)) == Noise(0.0001, 200)


def test_memory_tolerance() -> None:
    base = [8 * 2**30] * 3
    ok = judge_memory("allocated_bytes", base, 8 * 2**30 * 1.02, SETTINGS, gating=True)
    bad = judge_memory("allocated_bytes", base, 8 * 2**30 * 1.05, SETTINGS, gating=True)
    assert ok.verdict == "pass" and bad.verdict == "regressed" and bad.rule == "memory-tolerance"
    # small models: the 64 MiB absolute part dominates
    assert (
        judge_memory("allocated_bytes", [100 * 2**20], 150 * 2**20, SETTINGS, gating=True).verdict
        == "pass"
    )
    assert (
        judge_memory("reserved_bytes", base, 10 * 2**30, SETTINGS, gating=False).rule
        == "report-only"
    )


def test_test_verdict_combines_metrics_and_gates_only_gating_memory() -> None:
    history = [
        {
            "time_s": 10.0,
            "step_s": 0.2,
            "decode_s": 1.0,
            "allocated_bytes": 2**30,
            "reserved_bytes": 2**30,
        }
    ] * 4
    current = {
        "time_s": 10.0,
        "step_s": 0.2,
        "decode_s": 1.0,
        "allocated_bytes": 3 * 2**30,
        "reserved_bytes": 2**30,
    }
    verdict = judge_metrics(history, current, SETTINGS)
    assert (
        verdict.verdict == "pass"
    )  # allocated grew, but only the headline peak (here reserved) gates
    hungry = judge_metrics(history, {**current, "reserved_bytes": 3 * 2**30}, SETTINGS)
    assert hungry.verdict == "regressed" and [m.metric for m in hungry.regressions] == [
        "reserved_bytes"
    ]
    assert {m.metric for m in verdict.metrics} == {
        "time_s",
        "step_s",
        "decode_s",
        "allocated_bytes",
        "reserved_bytes",
    }
    slow = judge_metrics(history, {**current, "step_s": 0.3}, SETTINGS)
    assert slow.verdict == "regressed" and [m.metric for m in slow.regressions] == ["step_s"]
    assert fails(slow, SETTINGS)
    assert RegressionVerdict.from_dict(slow.to_dict()) == slow


def test_cpu_gates_on_host_rss_when_there_is_no_allocator() -> None:
    history = [{"time_s": 1.0, "host_rss_bytes": 500 * 2**20}] * 3
    verdict = judge_metrics(history, {"time_s": 1.0, "host_rss_bytes": 800 * 2**20}, SETTINGS)
    assert verdict.verdict == "regressed" and verdict.regressions[0].metric == "host_rss_bytes"


@pytest.mark.parametrize(
    ("policy", "verdict", "fail"),
    [("warn", "env-changed", False), ("fail", "env-changed", True), ("ignore", "regressed", True)],
)
def test_environment_policy(policy: str, verdict: str, fail: bool) -> None:
    settings = GateSettings(env_policy=policy)
    history = [{"time_s": 10.0}] * 5
    result = judge_metrics(
        history, {"time_s": 20.0}, settings, env_changes=("driver 550.54 -> 560.35",)
    )
    assert result.verdict == verdict and fails(result, settings) is fail
    assert result.env_changes == ("driver 550.54 -> 560.35",)


def test_fingerprint_changes_name_old_and_new() -> None:
    assert fingerprint_changes(
        {"driver": "550.54", "torch": "2.4"}, {"driver": "560.35", "torch": "2.4"}
    ) == ("driver 550.54 -> 560.35",)


def test_gate_settings_from_profile_mapping() -> None:
    settings = GateSettings.from_mapping({"min_effect": 0.1, "memory_abs_mib": 32})
    assert settings.min_effect == 0.1 and settings.memory_abs_bytes == 32 * 2**20
    with pytest.raises(ValueError, match="unknown gate setting"):
        GateSettings.from_mapping({"min_efect": 0.1})


def test_fixed_percent_rule_is_what_pytest_benchmark_does() -> None:
    assert FixedPercentRule(5).regressed(1.0, 1.051) and not FixedPercentRule(5).regressed(
        1.0, 1.049
    )


def test_report_only_profiles_never_fail() -> None:
    settings = GateSettings(enforce=False)
    verdict = judge_metrics([{"time_s": 1.0}] * 5, {"time_s": 9.0}, settings)
    assert verdict.verdict == "regressed" and not fails(verdict, settings)


def test_the_minimum_effect_floors_a_bar_the_noise_makes_narrow() -> None:
    """A quiet history with a confident prior puts the interval's bar under 1 %; a +3 % change is
    still within the 5 % minimum effect, and +6 % is past it."""
    quiet = [10.0, 10.001, 9.999, 10.0, 10.0]
    confident = Noise(1e-6, 200)
    assert judge_time("time_s", quiet, 10.3, SETTINGS, confident).verdict == "pass"
    assert judge_time("time_s", quiet, 9.7, SETTINGS, confident).verdict == "pass"
    assert judge_time("time_s", quiet, 10.6, SETTINGS, confident).verdict == "regressed"


def test_a_nan_figure_is_not_measured_and_a_nan_in_history_is_left_out() -> None:
    nan = float("nan")
    for verdict in (
        judge_time("time_s", HISTORY, nan, SETTINGS),
        judge_memory("host_rss_bytes", [2e9] * 3, nan, SETTINGS, gating=True),
    ):
        assert (
            verdict.verdict == "pass"
            and not verdict.gating
            and verdict.threshold == "not measured (NaN)"
        )
    with_nan = judge_time("time_s", [*HISTORY, nan], 12.0, SETTINGS)
    assert with_nan.verdict == "regressed" and with_nan.runs == 5 and with_nan.baseline == 10.0
    hungry = judge_memory("host_rss_bytes", [2e9, nan, 2e9], 4e9, SETTINGS, gating=True)
    assert hungry.verdict == "regressed" and hungry.baseline == 2e9 and hungry.runs == 2
    history = [{"time_s": t, "host_rss_bytes": 2e9} for t in HISTORY]
    verdict = judge_metrics(history, {"time_s": nan, "host_rss_bytes": 2e9}, SETTINGS)
    assert verdict.verdict == "pass" and any(
        "total time was not measured (NaN)" in n for n in verdict.notes
    )
    assert RegressionVerdict.from_dict(verdict.to_dict()).notes == verdict.notes
