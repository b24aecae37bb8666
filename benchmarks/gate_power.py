"""How often the gate cries wolf, and how often it catches a real slowdown.

Drives the project's own decision code (pytest_i2v.verdict.gate.judge_time, with the noise prior
fitted over a PR's metrics as the plugin fits it over a baseline file, and the one re-measurement
of a flagged test) with simulated runs: log-normal noise inside a run (each run's figure is the
median of its repeats) and between runs (machine state, clocks, co-tenants). The re-measurement
happens in the same job, so it shares that job's between-run offset: the conservative model.

Side by side: a fixed-percentage rule against one saved run, which is what
pytest-benchmark's --benchmark-compare-fail=mean:5% does.

    python benchmarks/gate_power.py [--prs 400] [--history 5 10 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_i2v.verdict.gate import FixedPercentRule, GateSettings, judge_time
from pytest_i2v.verdict.noise_prior import prior_from

METRICS_PER_PR = 50
EFFECTS = (0.05, 0.10, 0.20)
POWER_TRIALS_PER_PR = 5


def run_figure(
    rng: np.random.Generator, offset: float, within: float, repeats: int, effect: float
) -> float:
    """One run's figure: the median of its repeats, around a true time of 1.0."""
    samples = np.exp(offset + rng.normal(0.0, within, repeats) + math.log1p(effect))
    return float(np.median(samples))


def simulate(
    rng: np.random.Generator,
    within: float,
    between: float,
    history_runs: int,
    prs: int,
    repeats: int,
    settings: GateSettings,
) -> dict[str, float]:
    fixed = FixedPercentRule(5.0)
    gate_false = fixed_false = 0
    gate_pr_false = fixed_pr_false = 0
    caught = {e: 0 for e in EFFECTS}
    fixed_caught = {e: 0 for e in EFFECTS}
    decisions = 0
    for _ in range(prs):
        histories = [
            [
                run_figure(rng, rng.normal(0, between), within, repeats, 0.0)
                for _ in range(history_runs)
            ]
            for _ in range(METRICS_PER_PR)
        ]
        pooled = prior_from(histories)

        def gate_flags(history: list[float], effect: float) -> bool:
            offset = rng.normal(0, between)  # this PR's job
            first = judge_time(
                "time_s",
                history,
                run_figure(rng, offset, within, repeats, effect),
                settings,
                pooled,  # noqa: B023 (called only in this iteration)
            )
            if first.verdict != "regressed":
                return False
            again = judge_time(
                "time_s",
                history,
                run_figure(rng, offset, within, repeats, effect),
                settings,
                pooled,  # noqa: B023 (called only in this iteration)
            )
            return again.verdict == "regressed"

        def fixed_flags(history: list[float], effect: float) -> bool:
            return fixed.regressed(
                history[-1], run_figure(rng, rng.normal(0, between), within, repeats, effect)
            )

        pr_gate = pr_fixed = False
        for history in histories:
            decisions += 1
            if gate_flags(history, 0.0):
                gate_false += 1
                pr_gate = True
            if fixed_flags(history, 0.0):
                fixed_false += 1
                pr_fixed = True
        gate_pr_false += pr_gate
        fixed_pr_false += pr_fixed
        for effect in EFFECTS:
            for history in histories[:POWER_TRIALS_PER_PR]:
                caught[effect] += gate_flags(history, effect)
                fixed_caught[effect] += fixed_flags(history, effect)
    result = {
        "gate_metric": gate_false / decisions,
        "fixed_metric": fixed_false / decisions,
        "gate_pr": gate_pr_false / prs,
        "fixed_pr": fixed_pr_false / prs,
    }
    for effect in EFFECTS:
        result[f"gate_{effect}"] = caught[effect] / (prs * POWER_TRIALS_PER_PR)
        result[f"fixed_{effect}"] = fixed_caught[effect] / (prs * POWER_TRIALS_PER_PR)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="false failures and power of the regression gate")
    parser.add_argument(
        "--prs", type=int, default=400, help="simulated pull requests per noise level"
    )
    parser.add_argument(
        "--history",
        type=int,
        nargs="+",
        default=[5, 10, 20],
        help="accepted runs in each baseline entry",
    )
    parser.add_argument("--repeats", type=int, default=5, help="repeats per run (the study's 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    settings = GateSettings()
    print(
        f"{args.prs} simulated PRs x {METRICS_PER_PR} time metrics per noise level, "
        f"{args.repeats} repeats per run; gate defaults: alpha {settings.alpha}, "
        f"min effect {settings.min_effect:.0%}, "
        f"confirm {settings.confirm}"
    )
    header = (
        f"{'noise within/between':<22}{'history':>8}  {'rule':<26}"
        f"{'false fail/metric':>18}{'false fail/PR':>15}"
        + "".join(f"{'power +' + format(e, '.0%'):>12}" for e in EFFECTS)
    )
    print(header)
    print("-" * len(header))
    for within, between in ((0.01, 0.02), (0.02, 0.03)):
        label = f"{within:.0%} / {between:.0%}"
        for history in args.history:
            r = simulate(rng, within, between, history, args.prs, args.repeats, settings)
            rows = [("pytest-i2v gate", "gate")] + (
                [("fixed 5 % vs one saved run", "fixed")] if history == args.history[-1] else []
            )
            for name, key in rows:
                shown = history if key == "gate" else 1
                print(
                    f"{label:<22}{shown:>8}  {name:<26}"
                    f"{r[key + '_metric']:>18.3%}{r[key + '_pr']:>15.1%}"
                    + "".join(f"{r[f'{key}_{e}']:>12.1%}" for e in EFFECTS)
                )
    print(
        "targets: <= 0.1 % false failures per metric; "
        ">= 90 % power at +10 % with 2 % between-run noise"
    )


if __name__ == "__main__":
    main()
