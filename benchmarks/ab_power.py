"""How often the A/B mode cries wolf, and how often it catches a real slowdown, next to the baseline gate.

The decision rules are the project's own: ``pytest_i2v.ab_stats`` (paired log-ratios, Student-t
interval, equivalence band; moderated by the job's pooled spread when a job holds several tests)
and ``pytest_i2v.gate.judge`` (prediction interval over a stored history, spread pooled over a
50-test file, one confirming re-measurement). They are computed here with numpy on whole arrays
of simulated trials, and a sample of trials is run through ``paired_verdict``, ``compare_rounds``
and ``judge`` themselves to assert that the numpy copies decide exactly the same.

Noise model (log scale, per test; the two time metrics, total and per step, share it):

- within a process: each repeat N(0, --within); a process's figure is the median of --repeats;
- between processes: a fresh offset N(0, --between) per process (measured ~7 % on the 2-core CPU
  machine; GPU runners "share the problem at a smaller scale": 2 % is the assumption that
  benchmarks/gate_power.py also uses);
- slow drift across a job: a linear trend whose size over the job is N(0, --drift), plus a
  random walk reaching N(0, --drift / 2) by its end. A/B rounds run ABBA (AB, BA, AB, ...).
  The baseline gate's runs come from other days: each of them, and today's job, sits at its own
  drift level N(0, --drift); the confirming re-measurement shares today's process and level.

A test is flagged when either time metric is (memory is exactly repeatable and never false-alarms).

    python benchmarks/ab_power.py [--trials 20000] [--seed 0] [--between 0.07 0.02] [--rounds 4 8 16 ...]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_i2v.ab_stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_EFFECT,
    DEFAULT_ROUNDS,
    PRIOR_MAX_DF,
    compare_rounds,
    paired_verdict,
)
from pytest_i2v.gate import GateSettings, Noise, judge

EFFECTS = (0.0, 0.05, 0.10)
TARGET_FALSE, TARGET_POWER = 0.001, 0.90  # per test; power at +5 %
GATE_FILE_TESTS = 50  # tests in a baseline file: the gate pools its spread over them
POOLED_JOB_TESTS = 8  # tests in an A/B job for the pooled-spread design
CHUNK = 4000  # trials per numpy batch (keeps memory under ~200 MB at 128 rounds)
CHECK_SAMPLE = 60  # trials per cell re-decided by the project's own functions


@dataclass(frozen=True)
class Noise3:
    within: float
    between: float
    drift: float
    repeats: int


def process_figures(rng: np.random.Generator, shape: tuple[int, ...], noise: Noise3) -> np.ndarray:
    """Within-process part of a process's figure per metric: log of the median of its repeats,
    shape + (2,) for the two time metrics."""
    samples = rng.normal(0.0, noise.within, (*shape, 2, noise.repeats))
    return np.sort(samples, axis=-1)[..., noise.repeats // 2] if noise.repeats % 2 else np.median(samples, axis=-1)


def drift_path(rng: np.random.Generator, jobs: int, processes: int, drift: float) -> np.ndarray:
    """(jobs, processes): the machine's slow drift at each process of a job."""
    position = np.linspace(0.0, 1.0, processes)
    trend = rng.normal(0.0, drift, (jobs, 1)) * position
    walk = np.cumsum(rng.normal(0.0, drift / 2 / math.sqrt(processes), (jobs, processes)), axis=1)
    return np.asarray(trend + walk)


def ab_logs(rng: np.random.Generator, jobs: int, tests: int, rounds: int, noise: Noise3,
            effect: float) -> tuple[np.ndarray, np.ndarray]:
    """log figures (jobs, tests, rounds, 2 metrics) of base and head; tests of one job share its drift."""
    drift = drift_path(rng, jobs, 2 * rounds, noise.drift)[:, None, :, None]  # (jobs, 1, processes, 1)
    offsets = rng.normal(0.0, noise.between, (jobs, tests, 2 * rounds, 1))
    logs = offsets + drift + process_figures(rng, (jobs, tests, 2 * rounds), noise)
    first, second = logs[:, :, 0::2], logs[:, :, 1::2]
    base_first = (np.arange(rounds) % 2 == 0)[None, None, :, None]  # ABBA: AB, BA, AB, ...
    base = np.where(base_first, first, second)
    head = np.where(base_first, second, first) + math.log1p(effect)
    return base, head


def ab_decide(diffs: np.ndarray, min_effect: float, confidence: float, pooled: bool) -> np.ndarray:
    """The numpy copy of ab_stats.paired_verdict's rule: "regressed" flags of (jobs, tests, metrics)
    from log-ratios (jobs, tests, rounds, metrics); with ``pooled`` the spread is moderated with the
    job's other tests (leave-one-out, df capped at PRIOR_MAX_DF) as compare_rounds does."""
    rounds = diffs.shape[2]
    mean = diffs.mean(axis=2)
    variance = diffs.var(axis=2, ddof=1)
    df = rounds - 1
    prior_df = 0
    if pooled:
        tests = diffs.shape[1]
        others = (variance.sum(axis=1, keepdims=True) - variance) / (tests - 1)
        prior_df = min((tests - 1) * df, PRIOR_MAX_DF)
        variance = (variance * df + others * prior_df) / (df + prior_df)
    half = stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, df + prior_df) * np.sqrt(variance / rounds)
    band = math.log1p(min_effect)
    return np.asarray((mean - half > 0) & (mean + half > band))


def check_ab_sample(base: np.ndarray, head: np.ndarray, flags: np.ndarray, min_effect: float, confidence: float,
                    pooled: bool) -> None:
    """The numpy rule decides as the project's functions do, on the first trials of a cell."""
    if pooled:
        for job in range(min(CHECK_SAMPLE // base.shape[1] + 1, base.shape[0])):
            docs = [[{"records": [{"nodeid": f"t{test}", "config": {"pipeline": "sim"}, "outcome": "ok",
                                   "time_s": float(math.exp(logs[job, test, r, 0])),
                                   "stages": {"step_s": float(math.exp(logs[job, test, r, 1]))},
                                   "peak_memory": {"host_rss_bytes": 2**30}} for test in range(base.shape[1])]}
                     for r in range(base.shape[2])] for logs in (base, head)]
            results = compare_rounds(docs[0], docs[1], min_effect, confidence)
            for test, result in enumerate(results):
                mine = [v.verdict == "regressed" for v in result.verdicts if v.metric in ("time_s", "step_s")]
                assert mine == list(flags[job, test]), (job, test, result, flags[job, test])
        return
    for job in range(min(CHECK_SAMPLE, base.shape[0])):
        for metric, name in enumerate(("time_s", "step_s")):
            verdict = paired_verdict(name, np.exp(base[job, 0, :, metric]).tolist(),
                                     np.exp(head[job, 0, :, metric]).tolist(), min_effect, confidence)
            assert (verdict.verdict == "regressed") == bool(flags[job, 0, metric]), (job, metric, verdict)


def ab_rates(rng: np.random.Generator, trials: int, rounds: int, noise: Noise3, min_effect: float, confidence: float,
             tests_per_job: int = 1) -> dict[float, float]:
    """Share of tests flagged regressed, per true effect."""
    pooled = tests_per_job > 1
    rates = {}
    for effect in EFFECTS:
        flagged = done = 0
        checked = False
        while done < trials:
            jobs = max(1, min(CHUNK, trials - done) // tests_per_job)
            base, head = ab_logs(rng, jobs, tests_per_job, rounds, noise, effect)
            flags = ab_decide(head - base, min_effect, confidence, pooled)
            if not checked:
                check_ab_sample(base, head, flags, min_effect, confidence, pooled)
                checked = True
            flagged += int(flags.any(axis=-1).sum())
            done += jobs * tests_per_job
        rates[effect] = flagged / done
    return rates


def gate_flags(history: np.ndarray, current: np.ndarray, settings: GateSettings) -> np.ndarray:
    """The numpy copy of gate.judge_time's interval rule (history >= min_history runs) for every metric:
    history (files, tests, runs, metrics) of logs, current (files, tests, metrics) -> regressed flags.
    The spread is pooled over the file's tests, as the plugin pools it over a baseline file."""
    runs = history.shape[2]
    own = history.var(axis=2, ddof=1)  # (files, tests, metrics)
    pooled_var = own.mean(axis=1, keepdims=True)
    pooled_df = min(history.shape[1] * (runs - 1), settings.max_pooled_df)
    if history.shape[1] * (runs - 1) < settings.prior_df:
        pooled_var, pooled_df = np.full_like(pooled_var, settings.prior_noise**2), settings.prior_df
    df = pooled_df + runs - 1
    variance = (pooled_var * pooled_df + own * (runs - 1)) / df
    half = stats.t.ppf(1.0 - settings.alpha, df) * np.sqrt(variance * (1.0 + 1.0 / runs))
    up = np.maximum(half, math.log1p(settings.min_effect))
    return np.asarray(current > history.mean(axis=2) + up)


def gate_rates(rng: np.random.Generator, trials: int, history_runs: int, noise: Noise3,
               settings: GateSettings) -> dict[float, float]:
    """Share of tests the baseline gate fails (flagged, then flagged again on re-measurement)."""
    assert history_runs >= settings.min_history, "the simulation covers the interval rule only"
    rates = {}
    for effect in EFFECTS:
        flagged = done = 0
        checked = False
        while done < trials:
            files = max(1, min(CHUNK, trials - done) // GATE_FILE_TESTS)
            shape = (files, GATE_FILE_TESTS)
            day = rng.normal(0.0, noise.drift, (*shape, history_runs, 1)) + rng.normal(0.0, noise.between, (*shape, history_runs, 1))
            history = day + process_figures(rng, (*shape, history_runs), noise)
            today = rng.normal(0.0, noise.drift, (*shape, 1)) + rng.normal(0.0, noise.between, (*shape, 1)) + math.log1p(effect)
            first = gate_flags(history, today + process_figures(rng, shape, noise), settings)
            again = gate_flags(history, today + process_figures(rng, shape, noise), settings)
            if not checked:
                check_gate_sample(history, today + process_figures(rng, shape, noise), settings)
                checked = True
            test_flags = first.any(axis=-1) & again.any(axis=-1)
            flagged += int(test_flags.sum())
            done += files * GATE_FILE_TESTS
        rates[effect] = flagged / done
    return rates


def check_gate_sample(history: np.ndarray, current: np.ndarray, settings: GateSettings) -> None:
    flags = gate_flags(history, current, settings)
    metrics = ("time_s", "step_s")
    pooled: dict[str, Noise | None] = {}
    for m, name in enumerate(metrics):
        own = history[0, :, :, m].var(axis=1, ddof=1)
        pooled[name] = Noise(float(own.mean()), history.shape[1] * (history.shape[2] - 1))
    for test in range(min(CHECK_SAMPLE, history.shape[1])):
        runs: list[dict[str, Any]] = [{name: float(math.exp(history[0, test, r, m])) for m, name in enumerate(metrics)}
                                      for r in range(history.shape[2])]
        now = {name: float(math.exp(current[0, test, m])) for m, name in enumerate(metrics)}
        verdict = judge(runs, now, settings, pooled)
        assert (verdict.verdict == "regressed") == bool(flags[0, test].any()), (test, verdict, flags[0, test])


def process_seconds(args: argparse.Namespace) -> float:
    return float(args.load_s + (args.warmup + args.repeats) * args.generation_s)


def fmt_time(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="false alarms and power of the A/B mode and the baseline gate")
    parser.add_argument("--trials", type=int, default=20_000, help="simulated tests per cell (20,000 resolves 0.1 %%)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, nargs="+", default=[4, 8, 12, DEFAULT_ROUNDS, 24, 32, 64, 96],
                        help="A/B round counts to simulate")
    parser.add_argument("--history", type=int, nargs="+", default=[3, 20], help="baseline gate history lengths")
    parser.add_argument("--within", type=float, default=0.02, help="log sd of one repeat inside a process")
    parser.add_argument("--between", type=float, nargs="+", default=[0.07, 0.02],
                        help="log sd of a process's offset (0.07 measured on the CPU; 0.02 assumed for a GPU)")
    parser.add_argument("--drift", type=float, default=0.05, help="log sd of the slow drift over a job / between days")
    parser.add_argument("--repeats", type=int, default=5, help="measured repeats per process (the study's 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up generations per process")
    parser.add_argument("--generation-s", type=float, default=36.5,
                        help="GPU seconds per generation (default: the article's I2VGen-XL 512p, 16 frames, 50 steps "
                             "on an RTX 4090)")
    parser.add_argument("--load-s", type=float, default=0.0, help="model load seconds per process (add your measured one)")
    parser.add_argument("--min-effect", type=float, default=DEFAULT_MIN_EFFECT)
    parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    settings = GateSettings()
    per_process = process_seconds(args)
    started = time.perf_counter()
    print(f"{args.trials} simulated tests per cell, seed {args.seed}; within {args.within:.0%} per repeat, median of "
          f"{args.repeats}; drift {args.drift:.0%}; A/B: confidence {args.confidence}, min effect {args.min_effect:.0%}, "
          f"ABBA, default rounds {DEFAULT_ROUNDS}; gate: alpha {settings.alpha}, confirm {settings.confirm}")
    print(f"GPU time per test = processes x (load {args.load_s:g} s + (warmup {args.warmup} + repeats {args.repeats}) "
          f"x {args.generation_s:g} s) = processes x {per_process:g} s; A/B: processes = 2 x rounds, gate: 1")
    header = (f"{'between':>8}  {'design':<36}{'GPU time/test':>14}{'false alarm/test':>18}"
              f"{'power +5%':>11}{'power +10%':>12}  target")
    print(header)
    print("-" * len(header))
    for between in args.between:
        noise = Noise3(args.within, between, args.drift, args.repeats)
        rows: list[tuple[str, float, dict[float, float]]] = []
        for rounds in args.rounds:
            rates = ab_rates(rng, args.trials, rounds, noise, args.min_effect, args.confidence)
            rows.append((f"A/B, {rounds} rounds", 2 * rounds * per_process, rates))
            if rounds == DEFAULT_ROUNDS:
                rates = ab_rates(rng, args.trials, rounds, noise, args.min_effect, args.confidence, POOLED_JOB_TESTS)
                rows.append((f"A/B, {rounds} rounds, pooled {POOLED_JOB_TESTS}-test job", 2 * rounds * per_process, rates))
        for history in args.history:
            rows.append((f"baseline gate, {history}-run history", per_process, gate_rates(rng, args.trials, history, noise, settings)))
        met = []
        for name, cost, rates in rows:
            meets = rates[0.0] <= TARGET_FALSE and rates[0.05] >= TARGET_POWER
            if meets and name.startswith("A/B"):
                met.append(name)
            print(f"{between:>8.0%}  {name:<36}{fmt_time(cost):>14}{rates[0.0]:>18.3%}{rates[0.05]:>11.1%}"
                  f"{rates[0.10]:>12.1%}  {'meets' if meets else '-'}")
        print(f"{'':>8}  -> at {between:.0%} between-process noise the target is met by: "
              f"{', '.join(met) if met else 'none of the simulated A/B designs'}")
    print(f"target per test: false alarm <= {TARGET_FALSE:.1%}, power >= {TARGET_POWER:.0%} at +5 %; "
          f"numpy rules checked against paired_verdict/compare_rounds/judge on {CHECK_SAMPLE} trials per cell; "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
