"""What an A/B job costs a pull request, and what it catches: whole jobs simulated with the
project's own decision code, next to the baseline gate.

The suite is the PR suite of ``.github/workflows/gpu-gate.yml``: ``-m "sweep or precision"
--i2v-fast``, i.e. the resolution sweep (256p, 512p, 768p, 1024p; the profile's fp16) and the
precision suite (512p in fp32, fp16, bf16), 16 frames, 50 steps, each measured on
``--fast-steps`` denoising steps. The cost model, per process:

- model loading: ``--load-s`` per pipeline the remaining tests need (fp16, fp32, bf16): an
  ASSUMPTION (no GPU has loaded I2VGen-XL for this project);
- per test: one unmeasured one-step generation (the FLOP count), ``--warmup`` + ``--repeats`` fast
  generations, and in round 1 one profiled fast generation (the work signature; ``--profile-cost``
  times a fast generation, an ASSUMPTION);
- a fast generation of a configuration whose full run takes T seconds (the article's RTX 4090
  figures, PUBLISHED: 256p 18.2 s, 512p 36.5 s, 768p 67.3 s, 1024p 112.6 s, 512p fp16 31.2 s; fp32
  and bf16 at 512p are taken as 36.5 s) costs T x (f + (1 - f) x K / 50), where f, the share of
  encode and decode in a full run, is ``--fixed-share`` (an ASSUMPTION).

Noise, on the log scale, per test and time metric (total and per step share the process offset):
within a process N(0, within) per repeat (a process's figure is the median of its repeats);
between processes N(0, between) per process; a slow drift across a job (linear plus a random walk
of ``--job-drift``), which ABBA cancels; and between days N(0, day drift), which only designs
that compare with figures from other days pay: the baseline gate (its history). A/B compares
within one job; its calibration comes from another day, but it stores a spread, not a level, so a
day's offset does not enter it. The within and between values for the CPU come from
``benchmarks/noise_components.py`` (raw figures in ``benchmarks/results/``); the GPU values (1 %,
2 %, 4 % between processes; 0, 2 %, 5 % between days) are ASSUMPTIONS, and the table shows how the
conclusions move across them.

Designs (the A/B ones with the decision code of ``pytest_i2v.ab.paired``, ``ab.rounds`` and
``ab.sequential``; a sample of jobs is re-decided by ``compare_rounds`` itself, look by look as
``ab.ABJob`` does, and must agree exactly):

- ``A/B fixed N``: every test runs N rounds, decided once at the end (the design before sequential
  stopping), spread moderated by the job's pooled spread;
- ``A/B sequential <= N``: a look after every round from the second (Lan-DeMets spending), decided
  tests leave, the job's pooled spread;
- ``A/B sequential <= N, calibrated``: the same with each test's spread from the nightly 16-round
  A/A calibration (15 df; the calibration's own estimate is simulated, not taken as exact);
- ``baseline gate, 20-run history``: ``gate.judge_metrics`` against a stored history from other
  days.

A test is flagged when either time metric is; power is the share of +5 % (+10 %) tests called
regressed; the false alarm rate, the share of unchanged tests called regressed. A work change is
seen by round 1's signature whatever the noise (``benchmarks/work_signature_gate.py``); the powers
here are for time-only changes (a driver, a library, host overhead), the case the timed rounds
exist for.

    python benchmarks/ab_power.py [--trials 20000] [--seed 0] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
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

from pytest_i2v.ab.paired import DEFAULT_CONFIDENCE, DEFAULT_MIN_EFFECT, PRIOR_MAX_DF
from pytest_i2v.ab.results_doc import RoundResults
from pytest_i2v.ab.rounds import compare_rounds
from pytest_i2v.ab.sequential import SequentialPlan, is_decided
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.gate import GateSettings, judge_metrics
from pytest_i2v.verdict.noise_prior import Noise

TARGET_FALSE, TARGET_POWER = 0.001, 0.90
TARGET_MINUTES = {
    0.01: 10.0,
    0.02: 30.0,
}  # the budgets per job at 1 % and 2 % between-process noise
CALIBRATION_ROUNDS = (
    16  # the nightly workflow's A/A rounds (I2V_CALIBRATION_ROUNDS): 15 df per test
)
GATE_FILE_TESTS = 50
CHECK_JOBS = 6  # jobs per cell re-decided by compare_rounds itself
STEPS = 50
# (test, published full-run seconds on an RTX 4090, the pipeline it loads)
PR_SUITE = (
    ("sweep 256p", 18.2, "fp16"),
    ("sweep 512p", 36.5, "fp16"),
    ("sweep 768p", 67.3, "fp16"),
    ("sweep 1024p", 112.6, "fp16"),
    ("precision fp32", 36.5, "fp32"),
    ("precision fp16", 31.2, "fp16"),
    ("precision bf16", 36.5, "bf16"),
)


@dataclass(frozen=True)
class NoiseModel:
    within: float
    between: float
    job_drift: float
    day_drift: float
    repeats: int


@dataclass(frozen=True)
class Costs:
    load_s: float
    warmup: int
    repeats: int
    fast_steps: int
    fixed_share: float
    profile_cost: float

    def generation_s(self, full_s: float, steps: int) -> float:
        return full_s * (self.fixed_share + (1.0 - self.fixed_share) * steps / STEPS)

    def test_s(self, full_s: float, first_round: bool) -> float:
        fast = self.generation_s(full_s, self.fast_steps)
        profiled = self.profile_cost * fast if first_round else 0.0
        return self.generation_s(full_s, 1) + (self.warmup + self.repeats) * fast + profiled

    def process_s(self, running: np.ndarray, first_round: bool) -> np.ndarray:
        """Seconds of one process per job, from the mask (jobs, tests) of the tests it runs."""
        tests = np.array([self.test_s(full, first_round) for _, full, _ in PR_SUITE])
        pipelines = sorted({p for _, _, p in PR_SUITE})
        needs = np.stack(
            [
                running[:, [i for i, (_, _, p) in enumerate(PR_SUITE) if p == name]].any(axis=1)
                for name in pipelines
            ],
            axis=1,
        )
        return np.asarray(running @ tests + self.load_s * needs.sum(axis=1))


def process_figures(
    rng: np.random.Generator, shape: tuple[int, ...], noise: NoiseModel
) -> np.ndarray:
    """The within-process part of a process's figure per time metric: log of the median of its
    repeats."""
    samples = rng.normal(0.0, noise.within, (*shape, 2, noise.repeats))
    return np.asarray(np.median(samples, axis=-1))


def job_logs(
    rng: np.random.Generator,
    jobs: int,
    tests: int,
    rounds: int,
    noise: NoiseModel,
    effects: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """log figures (jobs, tests, rounds, 2) of base and head, ABBA, the job's drift shared by its
    tests."""
    position = np.linspace(0.0, 1.0, 2 * rounds)
    drift = rng.normal(0.0, noise.job_drift, (jobs, 1)) * position + np.cumsum(
        rng.normal(0.0, noise.job_drift / 2 / math.sqrt(2 * rounds), (jobs, 2 * rounds)), axis=1
    )
    offsets = rng.normal(0.0, noise.between, (jobs, tests, 2 * rounds, 1))
    logs = (
        offsets + drift[:, None, :, None] + process_figures(rng, (jobs, tests, 2 * rounds), noise)
    )
    first, second = logs[:, :, 0::2], logs[:, :, 1::2]
    base_first = (np.arange(rounds) % 2 == 0)[None, None, :, None]
    base = np.where(base_first, first, second)
    head = np.where(base_first, second, first) + np.log1p(effects)[None, :, None, None]
    return base, head


@dataclass(frozen=True)
class Design:
    name: str
    max_rounds: int
    sequential: bool
    calibrated: bool


def decide_look(
    diffs: np.ndarray,
    k: int,
    design: Design,
    running: np.ndarray,
    prior_var: np.ndarray | None,
    min_effect: float,
    confidence: float,
) -> np.ndarray:
    """The numpy copy of compare_rounds at ``k`` rounds: each test's overall verdict code
    (0 unchanged, 1 regressed, 2 improved, 3 inconclusive) from its two time metrics. ``running``:
    the tests still in the job (the pooled spread comes from them, as compare_rounds pools its
    pending tests); ``prior_var``: (jobs, tests, 2) calibrated variances with CALIBRATION_ROUNDS - 1
    df."""
    d = diffs[:, :, :k]
    mean, df = d.mean(axis=2), k - 1
    variance = d.var(axis=2, ddof=1) if k > 1 else np.zeros_like(mean)
    if prior_var is not None:
        prior_df = CALIBRATION_ROUNDS - 1
        variance = (variance * df + prior_var * prior_df) / (df + prior_df)
        total_df: Any = df + prior_df
    else:  # leave-one-out pool over the other running tests, capped at PRIOR_MAX_DF
        weights = running[:, :, None] * df
        others_df = weights.sum(axis=1, keepdims=True) - weights
        others_var = np.divide(
            (variance * weights).sum(axis=1, keepdims=True) - variance * weights,
            others_df,
            out=np.zeros_like(variance),
            where=others_df > 0,
        )
        prior_df = np.minimum(others_df, PRIOR_MAX_DF)
        variance = np.divide(
            variance * df + others_var * prior_df,
            df + prior_df,
            out=variance.copy(),
            where=(df + prior_df) > 0,
        )
        total_df = df + prior_df
    se = np.sqrt(variance / k)
    band = math.log1p(min_effect)
    if design.sequential:
        look = SequentialPlan(design.max_rounds, 1.0 - confidence).look(k)
        change_t = (
            stats.t.isf(look.change_alpha / 2.0, total_df) if look.change_alpha > 0 else np.inf
        )
        equivalence_t = (
            stats.t.isf(look.equivalence_alpha, total_df) if look.equivalence_alpha > 0 else np.inf
        )
    else:
        change_t = equivalence_t = stats.t.isf((1.0 - confidence) / 2.0, total_df)
    half, equivalence_half = change_t * se, equivalence_t * se
    with np.errstate(invalid="ignore"):
        unchanged = np.abs(mean) + equivalence_half <= band
        regressed = ~unchanged & (mean - half > 0) & (mean + half > band)
        improved = ~unchanged & (mean + half < 0) & (mean - half < -band)
    metric = np.where(unchanged, 0, np.where(regressed, 1, np.where(improved, 2, 3)))
    if k < 2:
        metric = np.full_like(metric, 3)
    # overall: regressed if any, else inconclusive if any, else improved if any, else unchanged
    return np.where(
        (metric == 1).any(-1),
        1,
        np.where((metric == 3).any(-1), 3, np.where((metric == 2).any(-1), 2, 0)),
    )


def simulate_jobs(
    rng: np.random.Generator,
    jobs: int,
    design: Design,
    noise: NoiseModel,
    costs: Costs,
    effects: np.ndarray,
    min_effect: float,
    confidence: float,
    check: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verdict codes (jobs, tests), GPU seconds per job and rounds per job."""
    tests = len(PR_SUITE)
    base, head = job_logs(rng, jobs, tests, design.max_rounds, noise, effects)
    diffs = head - base
    prior = None
    if design.calibrated:  # the calibration's own estimate: sigma_d^2 x chi2(29) / 29
        true_var = diffs_variance(noise)
        prior = (
            true_var
            * rng.chisquare(CALIBRATION_ROUNDS - 1, (jobs, tests, 2))
            / (CALIBRATION_ROUNDS - 1)
        )
    running = np.ones((jobs, tests), dtype=bool)
    final = np.full((jobs, tests), 3)
    seconds = np.zeros(jobs)
    rounds = np.zeros(jobs)
    for k in range(1, design.max_rounds + 1):
        seconds += 2 * costs.process_s(running, first_round=k == 1)
        rounds += running.any(axis=1)
        verdict = decide_look(diffs, k, design, running, prior, min_effect, confidence)
        if design.sequential or k == design.max_rounds:
            decided = running & ((verdict != 3) if design.sequential else True)
            final = np.where(decided, verdict, final)
            running = running & ~decided
        if not running.any():
            break
    if check:
        check_against_project(base, head, design, prior, final, min_effect, confidence)
    return final, seconds, rounds


def diffs_variance(noise: NoiseModel) -> float:
    """The variance of one round's log-ratio: two process offsets and two medians of the within
    noise."""
    samples = np.median(
        np.random.default_rng(1).normal(0.0, noise.within, (200_000, noise.repeats)), axis=1
    )
    return float(2 * noise.between**2 + 2 * samples.var())


def check_against_project(
    base: np.ndarray,
    head: np.ndarray,
    design: Design,
    prior: np.ndarray | None,
    final: np.ndarray,
    min_effect: float,
    confidence: float,
) -> None:
    """The first jobs, re-decided with compare_rounds as ab.ABJob runs it: look after each round,
    decided tests frozen and dropped from the later rounds' documents. Must agree with the numpy
    copy."""
    names = {0: "unchanged", 1: "regressed", 2: "improved", 3: "inconclusive"}
    plan = SequentialPlan(design.max_rounds, 1.0 - confidence) if design.sequential else None
    for job in range(min(CHECK_JOBS, base.shape[0])):
        calibration = (
            None
            if prior is None
            else {
                f"t{t}": {
                    m: Noise(float(prior[job, t, i]), CALIBRATION_ROUNDS - 1)
                    for i, m in enumerate(("time_s", "step_s"))
                }
                for t in range(base.shape[1])
            }
        )
        decided: dict[str, Any] = {}
        docs: dict[str, list[RoundResults]] = {"base": [], "head": []}
        results = []
        for k in range(design.max_rounds):
            for side, logs in (("base", base), ("head", head)):
                docs[side].append(
                    RoundResults(
                        [
                            GenerationRecord.from_partial(
                                {
                                    "nodeid": f"t{t}",
                                    "config": {"pipeline": "sim"},
                                    "outcome": "ok",
                                    "time_s": float(math.exp(logs[job, t, k, 0])),
                                    "stages": {"step_s": float(math.exp(logs[job, t, k, 1]))},
                                    "peak_memory": {"host_rss_bytes": 2**30},
                                }
                            )
                            for t in range(base.shape[1])
                            if f"t{t}" not in decided
                        ]
                    )
                )
            if k + 1 < design.max_rounds and plan is None:
                continue
            results = compare_rounds(
                docs["base"],
                docs["head"],
                min_effect,
                confidence,
                plan=plan,
                calibration=calibration,
                decided=decided,
            )
            if plan is not None:
                decided.update(
                    {
                        r.nodeid: r
                        for r in results
                        if is_decided(r.overall) and r.nodeid not in decided
                    }
                )
                if len(decided) == base.shape[1]:
                    break
        mine = [names[int(v)] for v in final[job]]
        theirs = [r.overall for r in sorted(results, key=lambda r: int(r.nodeid[1:]))]
        assert mine == theirs, (design, job, mine, theirs)


def gate_rates(
    rng: np.random.Generator,
    trials: int,
    noise: NoiseModel,
    settings: GateSettings,
    history_runs: int = 20,
) -> dict[float, float]:
    """Share of tests the baseline gate fails (flagged, then flagged again on a fresh
    re-measurement), the history from other days (day drift), today's run at today's level."""
    rates = {}
    for effect in (0.0, 0.05, 0.10):
        files = max(1, trials // GATE_FILE_TESTS)
        shape = (files, GATE_FILE_TESTS)
        history = (
            rng.normal(0.0, noise.day_drift, (*shape, history_runs, 1))
            + rng.normal(0.0, noise.between, (*shape, history_runs, 1))
            + process_figures(rng, (*shape, history_runs), noise)
        )
        today = rng.normal(0.0, noise.day_drift, (*shape, 1)) + math.log1p(effect)
        first = gate_flags(
            history,
            today
            + rng.normal(0.0, noise.between, (*shape, 1))
            + process_figures(rng, shape, noise),
            settings,
        )
        again = gate_flags(
            history,
            today
            + rng.normal(0.0, noise.between, (*shape, 1))
            + process_figures(rng, shape, noise),
            settings,
        )
        check_gate_sample(history, today + process_figures(rng, shape, noise), settings)
        rates[effect] = float((first.any(axis=-1) & again.any(axis=-1)).mean())
    return rates


def gate_flags(history: np.ndarray, current: np.ndarray, settings: GateSettings) -> np.ndarray:
    """The numpy copy of gate.judge_time's interval rule, the spread pooled over the file's
    tests."""
    runs = history.shape[2]
    own = history.var(axis=2, ddof=1)
    pooled_var = own.mean(axis=1, keepdims=True)
    pooled_df = min(history.shape[1] * (runs - 1), settings.max_pooled_df)
    df = pooled_df + runs - 1
    variance = (pooled_var * pooled_df + own * (runs - 1)) / df
    half = stats.t.ppf(1.0 - settings.alpha, df) * np.sqrt(variance * (1.0 + 1.0 / runs))
    return np.asarray(
        current > history.mean(axis=2) + np.maximum(half, math.log1p(settings.min_effect))
    )


def check_gate_sample(history: np.ndarray, current: np.ndarray, settings: GateSettings) -> None:
    flags = gate_flags(history, current, settings)
    metrics = ("time_s", "step_s")
    pooled = {
        name: Noise(
            float(history[0, :, :, m].var(axis=1, ddof=1).mean()),
            history.shape[1] * (history.shape[2] - 1),
        )
        for m, name in enumerate(metrics)
    }
    for test in range(min(30, history.shape[1])):
        runs: list[dict[str, Any]] = [
            {name: float(math.exp(history[0, test, r, m])) for m, name in enumerate(metrics)}
            for r in range(history.shape[2])
        ]
        now = {name: float(math.exp(current[0, test, m])) for m, name in enumerate(metrics)}
        assert (judge_metrics(runs, now, settings, pooled).verdict == "regressed") == bool(
            flags[0, test].any()
        ), test


def ab_row(
    rng: np.random.Generator,
    trials: int,
    design: Design,
    noise: NoiseModel,
    costs: Costs,
    min_effect: float,
    confidence: float,
) -> dict[str, float]:
    """False alarms and power per test, and GPU minutes of an unchanged job and of a job with one
    +5 % test."""
    jobs = max(1, trials // len(PR_SUITE))
    tests = len(PR_SUITE)
    null, null_s, null_rounds = simulate_jobs(
        rng, jobs, design, noise, costs, np.zeros(tests), min_effect, confidence, check=True
    )
    one = np.zeros(tests)
    one[1] = 0.05  # the 512p sweep test regressed by 5 %
    _, one_s, _ = simulate_jobs(
        rng, max(1, jobs // 10), design, noise, costs, one, min_effect, confidence, check=False
    )
    powers = {}
    for effect in (0.05, 0.10):
        verdicts, _, _ = simulate_jobs(
            rng,
            jobs,
            design,
            noise,
            costs,
            np.full(tests, effect),
            min_effect,
            confidence,
            check=False,
        )
        powers[effect] = float((verdicts == 1).mean())
    return {
        "false_alarm": float((null == 1).mean()),
        "power_5": powers[0.05],
        "power_10": powers[0.10],
        "gpu_minutes_unchanged": float(np.mean(null_s)) / 60,
        "gpu_minutes_regressed": float(np.mean(one_s)) / 60,
        "rounds_unchanged": float(null_rounds.mean()),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="the A/B mode's cost, false alarms and power on the PR suite"
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=20_000,
        help="simulated tests per cell (20,000 resolves 0.1 %%)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--between",
        type=float,
        nargs="+",
        default=[0.01, 0.02, 0.04, 0.07],
        help="log sd of a process's offset (GPU: assumptions; 0.07: the CPU, measured)",
    )
    parser.add_argument(
        "--day-drift",
        type=float,
        nargs="+",
        default=[0.0, 0.02, 0.05],
        help="log sd between days (the baseline gate's history): assumptions",
    )
    parser.add_argument(
        "--within",
        type=float,
        default=0.01,
        help="log sd of one repeat in a process (GPU: assumption)",
    )
    parser.add_argument(
        "--job-drift", type=float, default=0.02, help="slow drift over one job (ABBA cancels it)"
    )
    parser.add_argument(
        "--repeats", type=int, nargs="+", default=[1, 3], help="measured repeats per A/B process"
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--rounds", type=int, nargs="+", default=[8, 12, 16, 24], help="the most rounds per job"
    )
    parser.add_argument("--fast-steps", type=int, default=5)
    parser.add_argument(
        "--load-s", type=float, default=30.0, help="seconds to load one pipeline (ASSUMPTION)"
    )
    parser.add_argument(
        "--fixed-share",
        type=float,
        default=0.10,
        help="encode + decode share of a full run (ASSUMPTION)",
    )
    parser.add_argument(
        "--profile-cost",
        type=float,
        default=2.0,
        help=(
            "a profiled fast generation in fast generations "
            "(ASSUMPTION; measured ~1.8-2x on the CPU)"
        ),
    )
    parser.add_argument("--min-effect", type=float, default=DEFAULT_MIN_EFFECT)
    parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE)
    parser.add_argument("--json", type=Path, help="write one object per row here")
    parser.add_argument(
        "--quick", action="store_true", help="2,000 trials, 2 %% noise, 1 repeat: a smoke run"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.between, args.repeats, args.rounds, args.day_drift = (
            2_000,
            [0.02],
            [1],
            [12],
            [0.02],
        )
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    print(
        f"PR suite: {len(PR_SUITE)} tests in fast mode (K = {args.fast_steps}); "
        f"{args.trials} simulated tests per "
        f"cell, seed {args.seed}; within {args.within:.0%} per repeat, "
        f"job drift {args.job_drift:.0%}; load "
        f"{args.load_s:g} s per pipeline, encode+decode {args.fixed_share:.0%} of a run, "
        f"profiling {args.profile_cost:g}x "
        f"(assumptions); RTX 4090 generation times published"
    )
    header = (
        f"{'between':>7} {'day':>5}  {'design':<44}{'GPU min (unchanged)':>20}{'(one +5 %)':>11}"
        f"{'false alarm':>13}{'power +5%':>10}{'power +10%':>11}  target"
    )
    print(header)
    print("-" * len(header))
    for between in args.between:
        for repeats in args.repeats:
            noise = NoiseModel(args.within, between, args.job_drift, 0.0, repeats)
            costs = Costs(
                args.load_s,
                args.warmup,
                repeats,
                args.fast_steps,
                args.fixed_share,
                args.profile_cost,
            )
            designs = [
                Design(f"A/B fixed {n}, {repeats} repeat(s)", n, False, False)
                for n in args.rounds[-1:]
            ]
            designs += [
                Design(f"A/B sequential <= {n}, {repeats} repeat(s)", n, True, False)
                for n in args.rounds
            ]
            designs += [
                Design(f"A/B sequential <= {n}, calibrated, {repeats} repeat(s)", n, True, True)
                for n in args.rounds
            ]
            for design in designs:
                found = ab_row(
                    rng, args.trials, design, noise, costs, args.min_effect, args.confidence
                )
                rows.append(
                    {
                        "design": design.name,
                        "suite": "pr",
                        "between_noise": between,
                        "day_drift": None,
                        "repeats": repeats,
                        **found,
                    }
                )
                _print(rows[-1])
        for day in args.day_drift:
            noise = NoiseModel(args.within, between, args.job_drift, day, 5)
            rates = gate_rates(rng, args.trials, noise, GateSettings())
            costs = Costs(args.load_s, args.warmup, 5, args.fast_steps, args.fixed_share, 0.0)
            minutes = float(costs.process_s(np.ones((1, len(PR_SUITE)), dtype=bool), False)[0]) / 60
            rows.append(
                {
                    "design": "baseline gate, 20-run history, 5 repeats",
                    "suite": "pr",
                    "between_noise": between,
                    "day_drift": day,
                    "repeats": 5,
                    "false_alarm": rates[0.0],
                    "power_5": rates[0.05],
                    "power_10": rates[0.10],
                    "gpu_minutes_unchanged": minutes,
                    "gpu_minutes_regressed": minutes,
                }
            )
            _print(rows[-1])
        best = [
            r
            for r in rows
            if r["between_noise"] == between and r["design"].startswith("A/B") and _meets(r)
        ]
        budget = TARGET_MINUTES.get(between)
        within = [r for r in best if budget is None or r["gpu_minutes_unchanged"] <= budget]
        cheapest = min(best, key=lambda r: r["gpu_minutes_unchanged"]) if best else None
        verdict = (
            f"cheapest design meeting 0.1 % / 90 %: {cheapest['design']} "
            f"at {cheapest['gpu_minutes_unchanged']:.0f} "
            f"GPU min per unchanged job"
            if cheapest
            else "no simulated A/B design meets 0.1 % / 90 %"
        )
        if budget is not None:
            verdict += f"; the {budget:g}-minute budget is {'met' if within else 'NOT met'}"
            if (
                cheapest and not within
            ):  # what it would take: the process cost at which that design fits
                per_process = budget / (2 * cheapest["rounds_unchanged"])
                today = (
                    float(
                        Costs(
                            args.load_s,
                            args.warmup,
                            cheapest["repeats"],
                            args.fast_steps,
                            args.fixed_share,
                            0.0,
                        ).process_s(np.ones((1, len(PR_SUITE)), dtype=bool), False)[0]
                    )
                    / 60
                )
                verdict += (
                    f"; it runs {cheapest['rounds_unchanged']:.1f} rounds on average: "
                    f"a process would have to "
                    f"cost <= {per_process:.1f} GPU min (the model's: {today:.1f})"
                )
        print(f"{'':>14}-> {between:.0%}: {verdict}")
    print(
        f"targets per test: false alarm <= {TARGET_FALSE:.1%}, "
        f"power >= {TARGET_POWER:.0%} at +5 %; A/B decisions "
        f"checked against compare_rounds on {CHECK_JOBS} jobs per cell, the gate against judge; "
        f"{time.perf_counter() - started:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


def _meets(row: dict[str, Any]) -> bool:
    return bool(row["false_alarm"] <= TARGET_FALSE and row["power_5"] >= TARGET_POWER)


def _print(row: dict[str, Any]) -> None:
    day = f"{row['day_drift']:.0%}" if row["day_drift"] is not None else "-"
    print(
        f"{row['between_noise']:>7.0%} {day:>5}  {row['design']:<44}"
        f"{row['gpu_minutes_unchanged']:>20.1f}"
        f"{row['gpu_minutes_regressed']:>11.1f}{row['false_alarm']:>13.3%}{row['power_5']:>10.1%}"
        f"{row['power_10']:>11.1%}  {'meets' if _meets(row) else '-'}"
    )


if __name__ == "__main__":
    main()
