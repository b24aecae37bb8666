"""Does the gate's bar keep its stated false-alarm rate for every test, whatever its own noise?

Drives ``pytest_i2v.verdict.gate.judge_time`` with the prior the plugin gives a test (fitted over
the baseline file's *other* entries, ``noise_prior.prior_from``), under the null (no change), one
measurement per trial and no re-measurement, with the minimum effect off so that the interval
alone is measured. Side by side, the rule before issue 35: the noise pooled over every entry,
the judged one included, weighing its summed df (capped at 200).

1. a one-entry file (D4: the entry's own runs were its prior too), 3 % noise, n = 3, 5, 10;
2. a test of each noise level among 40 tests at 1 % (D5: one variance for every test), n = 5.

    python benchmarks/gate_calibration.py [--trials 20000] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from pathlib import Path

from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_i2v.verdict.gate import GateSettings, judge_time
from pytest_i2v.verdict.noise_prior import Noise, entry_noise, prior_from

QUIET = 0.01
QUIET_ENTRIES = 40
LEVELS = (0.005, 0.01, 0.02, 0.04, 0.08)


def old_pooled(histories: list[list[float]]) -> Noise | None:
    """The rule before: every entry's variance weighted by its df, the judged one included."""
    noises = [n for n in (entry_noise(h) for h in histories) if n is not None]
    df = sum(n.df for n in noises)
    return Noise(sum(n.variance * n.df for n in noises) / df, df) if df else None


def old_flags(
    history: list[float], current: float, settings: GateSettings, pooled: Noise | None
) -> bool:
    """The old bar (a one-sided prediction interval, its prior the pooled noise capped at 200
    df)."""
    logs = [math.log(h) for h in history]
    own = entry_noise(history)
    if pooled is not None and pooled.df >= settings.prior_df:
        prior = Noise(pooled.variance, min(pooled.df, settings.max_pooled_df))
    else:
        prior = Noise(settings.prior_noise**2, settings.prior_df)
    df = prior.df + (own.df if own else 0)
    variance = (prior.variance * prior.df + (own.variance * own.df if own else 0.0)) / df
    half = stats.t.ppf(1 - settings.alpha, df) * math.sqrt(variance * (1 + 1 / len(logs)))
    return math.log(current) > statistics.fmean(logs) + half


def draw(rng: random.Random, sd: float, n: int) -> list[float]:
    return [math.exp(rng.gauss(0.0, sd)) for _ in range(n)]


def one_entry(rng: random.Random, trials: int, settings: GateSettings) -> None:
    print(
        "1. a one-entry file at 3 % noise: false alarms per measurement "
        f"(alpha {settings.alpha:.2%}, minimum effect off)"
    )
    print(f"   {'runs':>4}  {'now':>8}  {'before':>8}")
    for n in (3, 5, 10):
        now = before = 0
        for _ in range(trials):
            history, current = draw(rng, 0.03, n), math.exp(rng.gauss(0.0, 0.03))
            now += (
                judge_time("time_s", history, current, settings, prior_from([])).verdict
                == "regressed"
            )
            before += old_flags(history, current, settings, old_pooled([history]))
        print(f"   {n:>4}  {now / trials:>8.3%}  {before / trials:>8.3%}")


def among_quiet(rng: random.Random, trials: int, settings: GateSettings) -> None:
    print(
        f"2. one test among {QUIET_ENTRIES} at {QUIET:.0%} noise, 5 runs each: false alarms per "
        f"measurement (alpha {settings.alpha:.2%}, minimum effect off); files redrawn every 500"
    )
    print(f"   {'noise':>5}  {'now':>8}  {'before':>8}  {'median bar now':>14}")
    for level in LEVELS:
        now = before = 0
        bars: list[float] = []
        quiet: list[list[float]] = []
        prior: Noise | None = None
        for trial in range(trials):
            if trial % 500 == 0:
                quiet = [draw(rng, QUIET, 5) for _ in range(QUIET_ENTRIES)]
                prior = prior_from(quiet)
            history, current = draw(rng, level, 5), math.exp(rng.gauss(0.0, level))
            verdict = judge_time("time_s", history, current, settings, prior)
            now += verdict.verdict == "regressed"
            if verdict.interval is not None and verdict.baseline:
                bars.append(
                    verdict.interval[1] / math.exp(statistics.fmean(map(math.log, history)))
                )
            before += old_flags(history, current, settings, old_pooled([*quiet, history]))
        bar = statistics.median(bars) - 1.0
        print(f"   {level:>5.1%}  {now / trials:>8.3%}  {before / trials:>8.3%}  {bar:>+14.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    settings = GateSettings(min_effect=0.0)
    one_entry(rng, args.trials, settings)
    among_quiet(rng, args.trials, settings)


if __name__ == "__main__":
    main()
