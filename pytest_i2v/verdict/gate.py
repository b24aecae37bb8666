"""The regression rule: history of accepted runs + the current run -> a verdict per metric and test.

Time metrics (total, per step, decode) are judged on the log scale, because timing noise is
multiplicative. With at least ``min_history`` accepted runs the bar is a one-sided prediction
interval for one new run (it contains run-to-run noise, not only the noise inside this run):

    upper = mean(log history) + t(1 - alpha, df) * s * sqrt(1 + 1/n)

where ``s`` is the entry's own spread moderated towards a prior fitted over the file's other
entries (empirical Bayes, limma's ``fitFDist``: its df says how alike their spreads are): a test
with three runs borrows the machine's noise level instead of trusting three numbers, never its
own runs twice, and a test far noisier than the others keeps its own. A change must also exceed
the minimum effect size (default 5 %), so a very quiet history cannot flag a 1 % blip. With less
history the profile's fixed tolerance applies. Memory is nearly deterministic: peak allocated
may exceed the baseline by ``memory_rel`` + ``memory_abs`` at most.

Pure: no pytest, no I/O. ``benchmarks/gate_power.py`` simulates this code's error rates.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from scipy import optimize, special, stats

from pytest_i2v.verdict.conditions import RunConditions, stable_values, throttled_explain_slowness
from pytest_i2v.verdict.outcome import NO_MACHINE_BASELINE
from pytest_i2v.verdict.peak import headline_peak

TIME_METRICS = ("time_s", "step_s", "decode_s")
MEMORY_METRICS = ("allocated_bytes", "reserved_bytes", "device_bytes", "host_rss_bytes")
DEVICE_SCOPES = ("process", "device")  # comparable NVML scopes ("mixed" and "unavailable" are not)
METRIC_LABELS = {
    "time_s": "total time", "step_s": "per-step time", "decode_s": "decode time",
    "allocated_bytes": "peak allocated", "reserved_bytes": "peak reserved", "device_bytes": "device peak (NVML)",
    "host_rss_bytes": "peak host RSS",
}


@dataclass(frozen=True)
class GateSettings:
    min_effect: float = 0.05  # smallest change worth failing a PR for (relative)
    tolerance: float = 0.10  # the bar while history is short (relative)
    alpha: float = 0.0015  # one-sided false-alarm rate per metric per measurement (a flag is re-measured)
    min_history: int = 3  # runs needed before the interval rule is used
    prior_noise: float = 0.02  # log-scale run-to-run noise assumed before any history is pooled
    prior_df: int = 4  # how much that assumption weighs (degrees of freedom)
    max_pooled_df: int = 200  # cap on the df of the prior fitted over the file's other entries
    memory_rel: float = 0.03  # peak allocated may grow by this much ...
    memory_abs_bytes: int = 64 * 2**20  # ... plus this
    env_policy: str = "warn"
    confirm: int = 1  # re-measurements a flagged test gets before it fails
    enforce: bool = True  # False: verdicts are computed and reported, but never fail a test

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: GateSettings | None = None) -> GateSettings:
        base = base or cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "memory_abs_mib" in data:
            known["memory_abs_bytes"] = int(float(data["memory_abs_mib"]) * 2**20)
        unknown = set(data) - set(cls.__dataclass_fields__) - {"memory_abs_mib"}
        if unknown:
            raise ValueError(f"unknown gate setting(s): {', '.join(sorted(unknown))}")
        return replace(base, **known)


@dataclass(frozen=True)
class Noise:
    """A log-scale spread with its degrees of freedom."""

    variance: float
    df: float  # a fitted prior's df need not be whole


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    verdict: str  # pass / regressed / improved / new
    current: float | None
    baseline: float | None  # median of the history
    runs: int
    interval: tuple[float, float] | None  # pass band in the metric's units
    delta_pct: float | None
    rule: str  # "prediction-interval", "tolerance", "memory-tolerance", "report-only", "none"
    threshold: str  # the bar that was (or would have been) crossed, in words
    gating: bool  # whether this metric can fail the test

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["interval"] = list(self.interval) if self.interval else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricVerdict:
        values = dict(data)
        values["interval"] = tuple(values["interval"]) if values.get("interval") else None
        return cls(**values)


@dataclass(frozen=True)
class RegressionVerdict:
    verdict: str
    metrics: tuple[MetricVerdict, ...] = ()
    env_changes: tuple[str, ...] = ()  # "driver 550.54 -> 560.35"
    notes: tuple[str, ...] = ()
    machine_changes: tuple[str, ...] = ()  # set: the baseline is another machine's, so nothing was compared
    unreliable: str | None = None  # set: the regression is only the throttled repeats (throttling_excuse)
    times_not_comparable: str | None = None  # set: the machine speed probe moved, the times did not gate

    @property
    def regressions(self) -> list[MetricVerdict]:
        return [m for m in self.metrics if m.verdict == "regressed" and m.gating]

    @property
    def improvements(self) -> list[MetricVerdict]:
        return [m for m in self.metrics if m.verdict == "improved"]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "metrics": [m.to_dict() for m in self.metrics],
                "env_changes": list(self.env_changes), "notes": list(self.notes),
                "machine_changes": list(self.machine_changes), "unreliable": self.unreliable,
                "times_not_comparable": self.times_not_comparable}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegressionVerdict:
        return cls(verdict=data["verdict"], metrics=tuple(MetricVerdict.from_dict(m) for m in data.get("metrics", [])),
                   env_changes=tuple(data.get("env_changes", [])), notes=tuple(data.get("notes", [])),
                   machine_changes=tuple(data.get("machine_changes", [])), unreliable=data.get("unreliable"),
                   times_not_comparable=data.get("times_not_comparable"))


def entry_noise(values: Sequence[float | None]) -> Noise | None:
    """One entry's log-scale spread (finite, positive values only), None under two values."""
    logs = [math.log(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if len(logs) < 2:
        return None
    return Noise(statistics.variance(logs), len(logs) - 1)


MIN_PRIOR_ENTRIES = 3  # other entries needed for a fitted prior (fewer: the declared one)
REFIT_P = 0.01  # the fit leaves out entries this improbable under it (limma's robust fit)
OUTLIER_P = 0.2  # a judged entry this improbable under the prior keeps its own noise
PRIOR_DF_LIMIT = 1e6  # the fit's df when the variances spread no more than their own df explain


def fit_prior(noises: Sequence[Noise], max_df: float) -> Noise | None:
    """The entries' variances' prior, as limma's ``fitFDist`` (Smyth 2004): the log variances'
    mean gives its variance, their spread beyond their own df gives its df (unlike entries: small,
    so each keeps its own; alike: large, capped at ``max_df``). Entries far noisier than the fit
    (``is_outlier`` at REFIT_P) are left out and the fit repeated, as limma's robust fit does: one
    noisy test must not take the others' tight bars. None under MIN_PRIOR_ENTRIES."""
    usable = [n for n in noises if n.df > 0 and n.variance > 0]
    prior = _fit_f(usable)
    for _ in range(3):
        if prior is None:
            return None
        kept = [n for n in usable if not is_outlier(n, prior, REFIT_P)]
        if len(kept) == len(usable):
            break
        usable, prior = kept, _fit_f(kept)
    return None if prior is None else Noise(prior.variance, min(prior.df, max_df))


def is_outlier(own: Noise, prior: Noise, p: float = OUTLIER_P) -> bool:
    """Whether an entry's spread is beyond the prior's upper ``p`` tail (an F test)."""
    return bool(stats.f.sf(own.variance / prior.variance, own.df, prior.df) < p)


def _fit_f(noises: Sequence[Noise]) -> Noise | None:
    if len(noises) < MIN_PRIOR_ENTRIES:
        return None
    half = [n.df / 2.0 for n in noises]
    logs = [math.log(n.variance) - float(special.digamma(h)) + math.log(h)
            for n, h in zip(noises, half, strict=True)]
    centre = statistics.fmean(logs)
    excess = statistics.variance(logs) - float(special.polygamma(1, half).mean())
    if excess <= float(special.polygamma(1, PRIOR_DF_LIMIT / 2.0)):
        return Noise(math.exp(centre), PRIOR_DF_LIMIT)  # alike: as good as known
    d0 = 2.0 * _trigamma_inverse(excess)
    return Noise(math.exp(centre + float(special.digamma(d0 / 2.0)) - math.log(d0 / 2.0)), d0)


def _trigamma_inverse(value: float) -> float:
    """x with trigamma(x) = value (trigamma falls from +inf to 0 on x > 0)."""
    return float(optimize.brentq(lambda x: float(special.polygamma(1, x)) - value, 1e-8, 1e9))


def prior_from(histories: Iterable[Sequence[float | None]], max_df: float = 200.0) -> Noise | None:
    """The prior fitted over other entries' histories of one metric (``fit_prior``)."""
    return fit_prior([n for n in (entry_noise(h) for h in histories) if n is not None], max_df)


def _moderated(history_noise: Noise | None, prior: Noise) -> Noise:
    if history_noise is None:
        return prior
    df = prior.df + history_noise.df
    return Noise((prior.variance * prior.df + history_noise.variance * history_noise.df) / df, df)


def prior_for(settings: GateSettings, fitted: Noise | None, own: Noise | None = None) -> Noise:
    """The prior fitted over the file's other entries (none: the profile's declared one). An entry
    beyond it (F test at OUTLIER_P) keeps its own noise alone: borrowing the quiet tests' spread
    gave a noisy test a bar it broke 5-24 % of the time."""
    if fitted is None:
        return Noise(settings.prior_noise**2, settings.prior_df)
    prior = Noise(fitted.variance, min(fitted.df, settings.max_pooled_df))
    if own is not None and own.variance > 0 and is_outlier(own, prior):
        return Noise(own.variance, 0)
    return prior


def _not_measured(value: float | None) -> str:
    if value is None or math.isfinite(value):
        return "not measured"
    return f"not measured ({'NaN' if math.isnan(value) else 'infinite'})"


def _pct(current: float, baseline: float) -> float:
    return (current / baseline - 1.0) * 100.0


def judge_time(metric: str, history: Sequence[float | None], current: float | None, settings: GateSettings,
               pooled: Noise | None = None) -> MetricVerdict:
    runs = [h for h in history if h is not None and math.isfinite(h) and h > 0]
    if current is None or not math.isfinite(current) or current <= 0:
        return MetricVerdict(metric, "pass", current, None, len(runs), None, None, "none",
                             _not_measured(current), False)
    if not runs:
        return MetricVerdict(metric, "new", current, None, 0, None, None, "none", "no baseline yet", True)
    baseline = float(statistics.median(runs))
    delta = _pct(current, baseline)
    effect = math.log1p(settings.min_effect)
    if len(runs) < settings.min_history:
        up, down = math.log1p(settings.tolerance), -math.log1p(settings.tolerance)
        centre = math.log(baseline)
        rule = "tolerance"
        threshold = f"+/-{settings.tolerance:.0%} tolerance ({len(runs)} run{'s' if len(runs) != 1 else ''} < {settings.min_history} for the interval rule)"
    else:
        logs = [math.log(h) for h in runs]
        n = len(logs)
        centre = statistics.fmean(logs)
        own = entry_noise(runs)
        noise = _moderated(own, prior_for(settings, pooled, own))
        half = stats.t.ppf(1.0 - settings.alpha, noise.df) * math.sqrt(noise.variance * (1.0 + 1.0 / n))
        up, down = max(half, effect), -max(half, effect)
        rule = "prediction-interval"
        threshold = (f"one-sided {1 - settings.alpha:.1%} prediction interval from {n} runs "
                     f"(+{math.expm1(half):.1%}, df {noise.df:.0f}) and the {settings.min_effect:.0%} minimum effect")
    interval = (math.exp(centre + down), math.exp(centre + up))
    value = math.log(current)
    verdict = "regressed" if value > centre + up else "improved" if value < centre + down else "pass"
    return MetricVerdict(metric, verdict, current, baseline, len(runs), interval, delta, rule, threshold, True)


def judge_memory(metric: str, history: Sequence[float | None], current: float | None, settings: GateSettings,
                 gating: bool) -> MetricVerdict:
    runs = [h for h in history if h is not None and math.isfinite(h)]
    if current is None or not math.isfinite(current):
        return MetricVerdict(metric, "pass", current, None, len(runs), None, None, "none",
                             _not_measured(current), False)
    if not runs:
        return MetricVerdict(metric, "new", current, None, 0, None, None, "none", "no baseline yet", gating)
    baseline = float(statistics.median(runs))
    allowance = baseline * settings.memory_rel + settings.memory_abs_bytes
    interval = (baseline - allowance, baseline + allowance)
    verdict = "regressed" if current > interval[1] else "improved" if current < interval[0] else "pass"
    threshold = f"+{settings.memory_rel:.0%} + {settings.memory_abs_bytes / 2**20:.0f} MiB over the baseline"
    return MetricVerdict(metric, verdict, current, baseline, len(runs), interval,
                         _pct(current, baseline) if baseline else None,
                         "memory-tolerance" if gating else "report-only", threshold, gating)


def fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """What changed between two environment fingerprints, as ``key old -> new``."""
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            changes.append(f"{key} {old.get(key)} -> {new.get(key)}")
    return tuple(changes)


def judge_metrics(history: Sequence[Mapping[str, Any]], current: Mapping[str, Any], settings: GateSettings,
          pooled: Mapping[str, Noise | None] | None = None, env_changes: Sequence[str] = (),
          machine_changes: Sequence[str] = (), times_not_comparable: str | None = None) -> RegressionVerdict:
    """``history``: accepted runs of one segment (dicts of metric -> value); ``current``: this run's figures;
    ``env_changes``: software changes since the segment (judged by the env policy); ``machine_changes``:
    the segment is another machine's (``fingerprint.machine_changes``), so it is not compared at all;
    ``times_not_comparable``: why this run's times cannot be judged against the segment's (the machine
    speed probe moved: ``machine_speed``): they are reported, never gating; memory is still judged."""
    pooled = pooled or {}
    if machine_changes:
        # Another CPU or GPU measures other numbers: no bar from it is honest, whatever the delta.
        return RegressionVerdict("new", machine_changes=tuple(machine_changes), notes=(
            f"{NO_MACHINE_BASELINE} ({'; '.join(machine_changes)}); not compared",))
    if not history:
        return RegressionVerdict("new", notes=("no baseline yet: passes; record one with --i2v-update-baselines",))
    metrics: list[MetricVerdict] = []
    for metric in TIME_METRICS:
        metrics.append(judge_time(metric, [h.get(metric) for h in history], current.get(metric), settings, pooled.get(metric)))
    # Peak allocated gates on a GPU; on the CPU (no allocator figures) the host RSS peak does.
    gate_memory = headline_peak(current).key  # the one memory figure that stands for a test (peak.py)
    notes: list[str] = []
    for metric in MEMORY_METRICS:
        runs = list(history)
        if metric == "device_bytes" and current.get(metric) is not None:
            # A per-process NVML figure and a device-wide one measure different things.
            scope = current.get("device_scope")
            runs = [h for h in history if h.get("device_scope") == scope and scope in DEVICE_SCOPES]
            if len(runs) < len(history):
                notes.append(f"NVML device memory not compared with {len(history) - len(runs)} baseline run(s) "
                             f"of another scope (this run: {scope or 'unknown'})")
        metrics.append(judge_memory(metric, [h.get(metric) for h in runs], current.get(metric), settings,
                                    gating=metric == gate_memory))
    broken = [m for m in metrics if m.current is not None and not math.isfinite(m.current)]
    notes.extend(f"{METRIC_LABELS.get(m.metric, m.metric)} was {m.threshold}: not judged" for m in broken)
    metrics = [m for m in metrics if m.current is not None and math.isfinite(m.current)]
    if times_not_comparable:
        metrics = [replace(m, gating=False) if m.metric in TIME_METRICS else m for m in metrics]
        notes.append(times_not_comparable)
    regressed = any(m.verdict == "regressed" and m.gating for m in metrics)
    if env_changes and settings.env_policy != "ignore":
        verdict = "env-changed"
    elif regressed:
        verdict = "regressed"
    elif any(m.verdict == "improved" and m.gating for m in metrics):
        verdict = "improved"
    else:
        verdict = "pass"
    return RegressionVerdict(verdict, tuple(metrics), tuple(env_changes), notes=tuple(notes),
                             times_not_comparable=times_not_comparable)


@dataclass(frozen=True)
class ThrottlingExcuse:
    """A regression that is only its throttled repeats being slow (worded by ``explain.unreliable_line``)."""

    summary: str  # RunConditions.summary: "throttled (thermal, 2 of 5 repeats)"
    stable_repeats: int  # the unmarked repeats (0: every repeat was marked)
    within: tuple[tuple[str, float, float], ...]  # per regressed metric: (metric, stable repeats' median, bar)


def per_repeat(record: Mapping[str, Any]) -> dict[str, list[float | None]]:
    """Each time metric per repeat of a results record, as the gate judges it over the run: the total,
    the median step (step_s is the median of the steps), the decode."""
    stages = record.get("stages") or {}
    return {"time_s": list(record.get("time_samples_s") or []),
            "step_s": [float(statistics.median(s)) if s else None for s in stages.get("step_samples_s") or []],
            "decode_s": list(stages.get("decode_samples_s") or [])}


def throttling_excuse(verdict: RegressionVerdict, per_repeat: Mapping[str, Sequence[float | None]],
                      conditions: RunConditions | None) -> ThrottlingExcuse | None:
    """Whether a "regressed" verdict is only the throttled repeats being slow; None when it is not.

    ``per_repeat``: each time metric's value per repeat (aligned with ``conditions.repeats``). Every
    gating regression must be a time metric (throttling slows the clock, it never adds bytes) whose
    unmarked repeats, judged alone, are under that metric's upper bar."""
    regressions = verdict.regressions
    if conditions is None or verdict.verdict != "regressed" or not regressions:
        return None
    marked = conditions.marked
    within: list[tuple[str, float, float]] = []
    for m in regressions:
        values = per_repeat.get(m.metric)
        if m.metric not in TIME_METRICS or m.interval is None or values is None:
            return None
        if not throttled_explain_slowness(values, marked, m.interval[1]):
            return None
        within.append((m.metric, float(statistics.median(stable_values(values, marked))), m.interval[1]))
    return ThrottlingExcuse(conditions.summary, len(marked) - sum(marked), tuple(within))


@dataclass(frozen=True)
class FixedPercentRule:
    """pytest-benchmark's ``--benchmark-compare-fail=mean:5%``: one saved run, a fixed percentage."""

    percent: float = 5.0

    def regressed(self, saved: float, current: float) -> bool:
        return current > saved * (1.0 + self.percent / 100.0)

