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
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from scipy import stats

from pytest_i2v.storage import Scalar
from pytest_i2v.verdict.noise_prior import Noise, entry_noise, is_outlier, moderated
from pytest_i2v.verdict.outcome import NO_MACHINE_BASELINE
from pytest_i2v.verdict.peak import headline_peak
from pytest_i2v.verdict.yaml_shapes import figure

TIME_METRICS = ("time_s", "step_s", "decode_s")
MEMORY_METRICS = ("allocated_bytes", "reserved_bytes", "device_bytes", "host_rss_bytes")
DEVICE_SCOPES = ("process", "device")  # comparable NVML scopes ("mixed" and "unavailable" are not)
METRIC_LABELS = {
    "time_s": "total time",
    "step_s": "per-step time",
    "decode_s": "decode time",
    "allocated_bytes": "peak allocated",
    "reserved_bytes": "peak reserved",
    "device_bytes": "device peak (NVML)",
    "host_rss_bytes": "peak host RSS",
}

Value = TypeVar("Value")


@dataclass(frozen=True)
class GateSettings:
    min_effect: float = 0.05  # smallest change worth failing a PR for (relative)
    tolerance: float = 0.10  # the bar while history is short (relative)
    alpha: float = (
        0.0015  # one-sided false-alarm rate per metric per measurement (a flag is re-measured)
    )
    min_history: int = 3  # runs needed before the interval rule is used
    prior_noise: float = 0.02  # log-scale run-to-run noise assumed before any history is pooled
    prior_df: int = 4  # how much that assumption weighs (degrees of freedom)
    max_pooled_df: int = 200  # cap on the df of the prior fitted over the file's other entries
    memory_rel: float = 0.03  # peak allocated may grow by this much ...
    memory_abs_bytes: int = 64 * 2**20  # ... plus this
    env_policy: str = "warn"
    confirm: int = 1  # re-measurements a flagged test gets before it fails
    enforce: bool = True  # False: verdicts are computed and reported, but never fail a test

    def to_dict(self) -> dict[str, float | int | str | bool]:
        return asdict(self)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], base: GateSettings | None = None
    ) -> GateSettings:
        base = base or cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "memory_abs_mib" in data:
            known["memory_abs_bytes"] = int(float(data["memory_abs_mib"]) * 2**20)
        unknown = set(data) - set(cls.__dataclass_fields__) - {"memory_abs_mib"}
        if unknown:
            raise ValueError(f"unknown gate setting(s): {', '.join(sorted(unknown))}")
        return replace(base, **known)


# What a metric's verdict holds in a results record: words, figures, the pass band, the gating.
MetricField = str | float | list[float] | None
# What a results record's verdict holds: the verdict and notes, the metrics, the lists of changes.
VerdictField = str | list[dict[str, MetricField]] | list[str] | None


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

    def to_dict(self) -> dict[str, MetricField]:
        data = asdict(self)
        data["interval"] = list(self.interval) if self.interval else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricVerdict:
        """A part of ``RegressionVerdict.from_dict``'s document."""
        values = dict(data)
        values["interval"] = tuple(values["interval"]) if values.get("interval") else None
        return cls(**values)


@dataclass(frozen=True)
class RegressionVerdict:
    verdict: str
    metrics: tuple[MetricVerdict, ...] = ()
    env_changes: tuple[str, ...] = ()  # "driver 550.54 -> 560.35"
    notes: tuple[str, ...] = ()
    # set: the baseline is another machine's, so nothing was compared
    machine_changes: tuple[str, ...] = ()
    # set: the regression is only the throttled repeats (throttling_excuse)
    unreliable: str | None = None
    # set: the machine speed probe moved, the times did not gate
    times_not_comparable: str | None = None

    @property
    def regressions(self) -> list[MetricVerdict]:
        return [m for m in self.metrics if m.verdict == "regressed" and m.gating]

    @property
    def improvements(self) -> list[MetricVerdict]:
        return [m for m in self.metrics if m.verdict == "improved"]

    def to_dict(self) -> dict[str, VerdictField]:
        return {
            "verdict": self.verdict,
            "metrics": [m.to_dict() for m in self.metrics],
            "env_changes": list(self.env_changes),
            "notes": list(self.notes),
            "machine_changes": list(self.machine_changes),
            "unreliable": self.unreliable,
            "times_not_comparable": self.times_not_comparable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegressionVerdict:
        return cls(
            verdict=data["verdict"],
            metrics=tuple(MetricVerdict.from_dict(m) for m in data.get("metrics", [])),
            env_changes=tuple(data.get("env_changes", [])),
            notes=tuple(data.get("notes", [])),
            machine_changes=tuple(data.get("machine_changes", [])),
            unreliable=data.get("unreliable"),
            times_not_comparable=data.get("times_not_comparable"),
        )


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


def _not_measured(metric: str, value: float | None, runs: int) -> MetricVerdict:
    """A metric with no usable current figure: shown, never gating (the outcome says why)."""
    why = "not measured"
    if value is not None and not math.isfinite(value):
        why = f"not measured ({'NaN' if math.isnan(value) else 'infinite'})"
    return MetricVerdict(metric, "pass", value, None, runs, None, None, "none", why, False)


def _pct(current: float, baseline: float) -> float:
    return (current / baseline - 1.0) * 100.0


def judge_time(
    metric: str,
    history: Sequence[float | None],
    current: float | None,
    settings: GateSettings,
    pooled: Noise | None = None,
) -> MetricVerdict:
    runs = [h for h in history if h is not None and math.isfinite(h) and h > 0]
    if current is None or not math.isfinite(current) or current <= 0:
        return _not_measured(metric, current, len(runs))
    if not runs:
        return MetricVerdict(
            metric, "new", current, None, 0, None, None, "none", "no baseline yet", True
        )
    baseline = float(statistics.median(runs))
    delta = _pct(current, baseline)
    centre, half_width, rule, threshold = _time_band(runs, settings, pooled)
    up, down = half_width, -half_width
    interval = (math.exp(centre + down), math.exp(centre + up))
    value = math.log(current)
    verdict = (
        "regressed" if value > centre + up else "improved" if value < centre + down else "pass"
    )
    return MetricVerdict(
        metric, verdict, current, baseline, len(runs), interval, delta, rule, threshold, True
    )


def _time_band(
    runs: list[float], settings: GateSettings, pooled: Noise | None
) -> tuple[float, float, str, str]:
    """The pass band around the history in log space: (centre, half-width, rule, threshold)."""
    if len(runs) < settings.min_history:
        plural = "s" if len(runs) != 1 else ""
        threshold = (
            f"+/-{settings.tolerance:.0%} tolerance ({len(runs)} run{plural} < "
            f"{settings.min_history} for the interval rule)"
        )
        return (
            math.log(statistics.median(runs)),
            math.log1p(settings.tolerance),
            "tolerance",
            threshold,
        )
    logs = [math.log(h) for h in runs]
    n = len(logs)
    own = entry_noise(runs)
    noise = moderated(own, prior_for(settings, pooled, own))
    half = stats.t.ppf(1.0 - settings.alpha, noise.df) * math.sqrt(noise.variance * (1.0 + 1.0 / n))
    threshold = (
        f"one-sided {1 - settings.alpha:.1%} prediction interval from {n} runs "
        f"(+{math.expm1(half):.1%}, df {noise.df:.0f}) and the "
        f"{settings.min_effect:.0%} minimum effect"
    )
    return (
        statistics.fmean(logs),
        max(half, math.log1p(settings.min_effect)),
        "prediction-interval",
        threshold,
    )


def judge_memory(
    metric: str,
    history: Sequence[float | None],
    current: float | None,
    settings: GateSettings,
    gating: bool,
) -> MetricVerdict:
    runs = [h for h in history if h is not None and math.isfinite(h)]
    if current is None or not math.isfinite(current):
        return _not_measured(metric, current, len(runs))
    if not runs:
        return MetricVerdict(
            metric, "new", current, None, 0, None, None, "none", "no baseline yet", gating
        )
    baseline = float(statistics.median(runs))
    allowance = baseline * settings.memory_rel + settings.memory_abs_bytes
    interval = (baseline - allowance, baseline + allowance)
    verdict = (
        "regressed" if current > interval[1] else "improved" if current < interval[0] else "pass"
    )
    allowed_mib = settings.memory_abs_bytes / 2**20
    threshold = f"+{settings.memory_rel:.0%} + {allowed_mib:.0f} MiB over the baseline"
    return MetricVerdict(
        metric,
        verdict,
        current,
        baseline,
        len(runs),
        interval,
        _pct(current, baseline) if baseline else None,
        "memory-tolerance" if gating else "report-only",
        threshold,
        gating,
    )


def fingerprint_changes(old: Mapping[str, Value], new: Mapping[str, Value]) -> tuple[str, ...]:
    """What changed between two environment fingerprints, as ``key old -> new`` (any values that
    compare and print: a baseline's scalars, a results document's environment)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            changes.append(f"{key} {old.get(key)} -> {new.get(key)}")
    return tuple(changes)


def judge_metrics(
    history: Sequence[Mapping[str, Scalar]],
    current: Mapping[str, Scalar],
    settings: GateSettings,
    pooled: Mapping[str, Noise | None] | None = None,
    env_changes: Sequence[str] = (),
    machine_changes: Sequence[str] = (),
    times_not_comparable: str | None = None,
) -> RegressionVerdict:
    """``history``: accepted runs of one segment (dicts of metric -> value); ``current``: this
    run's figures; ``env_changes``: software changes since the segment (judged by the env policy);
    ``machine_changes``: the segment is another machine's (``fingerprint.machine_changes``), so it
    is not compared at all; ``times_not_comparable``: why this run's times cannot be judged against
    the segment's (the machine speed probe moved: ``machine_speed``): they are reported, never
    gating; memory is still judged."""
    pooled = pooled or {}
    if machine_changes:
        # Another CPU or GPU measures other numbers: no bar from it is honest, whatever the delta.
        return RegressionVerdict(
            "new",
            machine_changes=tuple(machine_changes),
            notes=(f"{NO_MACHINE_BASELINE} ({'; '.join(machine_changes)}); not compared",),
        )
    if not history:
        return RegressionVerdict(
            "new", notes=("no baseline yet: passes; record one with --i2v-update-baselines",)
        )
    metrics = [
        judge_time(m, _figures(history, m), figure(current.get(m)), settings, pooled.get(m))
        for m in TIME_METRICS
    ]
    notes: list[str] = []
    metrics += _judge_memories(history, current, settings, notes)
    broken = [m for m in metrics if m.current is not None and not math.isfinite(m.current)]
    notes.extend(
        f"{METRIC_LABELS.get(m.metric, m.metric)} was {m.threshold}: not judged" for m in broken
    )
    metrics = [m for m in metrics if m.current is not None and math.isfinite(m.current)]
    if times_not_comparable:
        metrics = [replace(m, gating=False) if m.metric in TIME_METRICS else m for m in metrics]
        notes.append(times_not_comparable)
    verdict = _combined(metrics, bool(env_changes) and settings.env_policy != "ignore")
    return RegressionVerdict(
        verdict,
        tuple(metrics),
        tuple(env_changes),
        notes=tuple(notes),
        times_not_comparable=times_not_comparable,
    )


def _judge_memories(
    history: Sequence[Mapping[str, Scalar]],
    current: Mapping[str, Scalar],
    settings: GateSettings,
    notes: list[str],
) -> list[MetricVerdict]:
    """Each memory metric against the history; only the headline peak gates. Appends to
    ``notes`` the NVML runs left out for their other scope."""
    # Peak allocated gates on a GPU; on the CPU (no allocator figures) the host RSS peak does:
    # the one memory figure that stands for a test (peak.py).
    gate_memory = headline_peak(current).key
    verdicts = []
    for metric in MEMORY_METRICS:
        runs = list(history)
        if metric == "device_bytes" and current.get(metric) is not None:
            # A per-process NVML figure and a device-wide one measure different things.
            scope = current.get("device_scope")
            runs = [h for h in history if h.get("device_scope") == scope and scope in DEVICE_SCOPES]
            if len(runs) < len(history):
                notes.append(
                    f"NVML device memory not compared with {len(history) - len(runs)} "
                    f"baseline run(s) of another scope (this run: {scope or 'unknown'})"
                )
        gating = metric == gate_memory
        value = figure(current.get(metric))
        verdicts.append(judge_memory(metric, _figures(runs, metric), value, settings, gating))
    return verdicts


def _figures(runs: Sequence[Mapping[str, Scalar]], metric: str) -> list[float | None]:
    return [figure(run.get(metric)) for run in runs]


def _combined(metrics: Sequence[MetricVerdict], env_changed: bool) -> str:
    """The test's verdict from its metrics': a changed environment first, then any gating
    regression, then any gating improvement."""
    if env_changed:
        return "env-changed"
    if any(m.verdict == "regressed" and m.gating for m in metrics):
        return "regressed"
    if any(m.verdict == "improved" and m.gating for m in metrics):
        return "improved"
    return "pass"


@dataclass(frozen=True)
class FixedPercentRule:
    """pytest-benchmark's ``--benchmark-compare-fail=mean:5%``: one saved run, a fixed
    percentage."""

    percent: float = 5.0

    def regressed(self, saved: float, current: float) -> bool:
        return current > saved * (1.0 + self.percent / 100.0)
