"""The A/B decision: paired rounds of base and head processes -> a verdict per test and metric.

Round ``i`` runs one fresh base process and one fresh head process back to back (ABBA order: AB,
BA, AB, ...), so slow drift of the machine cancels within a round. Each process contributes one
figure per test and metric (the median of its repeats). The paired log-ratios

    d_i = log(head_i) - log(base_i)

carry the effect plus the two processes' own offsets; their mean is the log of the geometric-mean
ratio head/base, and a two-sided Student-t interval at ``confidence`` bounds it:

    mean(d) +/- t(1 - (1 - confidence) / 2, df) * s / sqrt(n)

With ``L = log(1 + min_effect)``, the band ``[-L, L]`` is "too small to matter". The rule, in order:

- **unchanged**: the whole interval lies inside ``[-L, L]`` (equivalence shown);
- **regressed**: the whole interval lies above 0 (slower, at the one-sided level
  ``(1 - confidence) / 2``) and its upper end reaches past ``L`` (a change that matters is not
  ruled out);
- **improved**: the mirror image;
- **inconclusive**: the interval straddles 0 and reaches past the band; ``rounds_needed`` is the
  total rounds at which the observed spread would make the interval either clear 0 or fit
  inside the band, whichever comes first.

Why "interval above 0" and not the stricter "interval above L": a true +5 % change sits *on* the
minimum effect, so demanding the whole interval beyond it catches it at most half the time,
however many rounds. The power target (90 % at +5 %, ``benchmarks/ab_power.py``) needs the test
of "slower at all", and the equivalence band keeps a proven-small change (``[+0.5 %, +3 %]``)
from failing anyone. With ``confidence`` 0.999 each direction of each metric errs 0.05 % of the
time; a test's two time metrics (total and per step, strongly correlated) stay within 0.1 %.

A test that ran out of memory is judged on its outcomes, not its figures: out of memory in any
head round and in no base round is **regressed** (a runner would hit it some of the time), the
mirror **improved**; out of memory on both sides in some rounds, or a round that failed
otherwise, is **not-comparable**.

Zero spread (memory figures are usually identical in every process) needs no special case: the
interval is the point itself, so equal figures are unchanged and a constant shift beyond the
minimum effect is regressed or improved. Fewer than two rounds: inconclusive.

The work comes first: round 1's base and head processes each profile one generation per test
(``--i2v-signature on``), and ``work_of_first_round`` compares the two work signatures. They are
exact, so one round decides whether the work changed; a changed work's "work" verdict (its
estimated effect beyond the minimum effect: regressed or improved, within it: unchanged) joins the
test's time verdicts, and the worst decides, as for any metric.

``compare_rounds`` moderates each time metric's spread towards the spread pooled over the job's
other tests (as the baseline gate does over a baseline file), with at most ``PRIOR_MAX_DF``
degrees of freedom: with four rounds a test's own 3 df give t = 12.9 at 0.999, the pool brings
it to about 4.4. Memory is not pooled: one test's noisy host RSS must not borrow another's zero.

Pure: no pytest, no torch, no I/O.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from scipy import stats

from pytest_i2v.ab.sequential import Look
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.parts import OutputComparison, WorkComparison
from pytest_i2v.record.record import CONVERTER
from pytest_i2v.storage import JsonValue
from pytest_i2v.verdict.noise_prior import Noise

DEFAULT_ROUNDS = (
    16  # benchmarks/ab_power.py: meets 0.1 % / 90 % at +5 % with 2 % between-process noise
)
DEFAULT_MIN_EFFECT = 0.05
DEFAULT_CONFIDENCE = 0.999
PRIOR_MAX_DF = 8  # the most the job's pooled spread weighs against a test's own rounds
MAX_LOG_HALF = 5.0  # an early look spends next to nothing: its interval is shown capped at e^5
MAX_ROUNDS_NEEDED = (
    10_000  # "run more rounds: ~K" is capped here (a change this small is not worth it)
)

OUTPUT_METRIC = "output"  # round 1's head output against the base's (ab.output_check)
OUTPUT_CHANGED = "output-changed"  # the output metric's one verdict: faster but different fails
VERDICTS = (OUTPUT_CHANGED, "regressed", "improved", "unchanged", "inconclusive", "not-comparable")
TIME_METRICS = ("time_s", "step_s")
SEVERITY = (  # worst first
    OUTPUT_CHANGED,
    "regressed",
    "not-comparable",
    "inconclusive",
    "improved",
    "unchanged",
)
FAILING = (OUTPUT_CHANGED, "regressed")  # the overall verdicts that make the job exit 1
# work_diff.work_verdict -> the paired verdict of the "work" metric (changed within the minimum
# effect: unchanged)
WORK_VERDICTS = {
    "regressed": "regressed",
    "improved": "improved",
    "changed": "unchanged",
    "identical": "unchanged",
}


@dataclass(frozen=True)
class PairedVerdict:
    # time_s, step_s, the headline peak's key (host_rss_bytes, reserved_bytes, ...) or "outcome"
    metric: str
    verdict: str  # one of VERDICTS
    ratio: float | None  # head / base: the geometric mean of the paired ratios
    low: float | None  # the ratio's confidence interval
    high: float | None
    rounds: int
    rounds_needed: int | None  # inconclusive only: the total rounds that would likely decide it
    reason: str  # one line
    base: float | None = None  # median of base's per-round figures (for the tables)
    head: float | None = None  # median of head's per-round figures

    def to_dict(self) -> dict[str, JsonValue]:
        document: dict[str, JsonValue] = asdict(self)
        return document

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairedVerdict:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class ABTestResult:
    nodeid: str
    pipeline: str
    verdicts: list[PairedVerdict] = field(default_factory=list)
    overall: str = "unchanged"
    work: WorkComparison | None = None  # round 1's work, head against base, with its verdict
    output: OutputComparison | None = None  # round 1's head output against the base's

    @property
    def regressions(self) -> list[PairedVerdict]:
        return [v for v in self.verdicts if v.verdict in FAILING]

    def to_dict(self) -> dict[str, JsonValue]:
        output: JsonValue = CONVERTER.unstructure(self.output) if self.output else None
        return {
            "nodeid": self.nodeid,
            "pipeline": self.pipeline,
            "overall": self.overall,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "work": self.work.to_dict() if self.work else None,
            "output": output,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ABTestResult:
        output = data.get("output")
        return cls(
            data["nodeid"],
            data["pipeline"],
            [PairedVerdict.from_dict(v) for v in data.get("verdicts", [])],
            data["overall"],
            WorkComparison.from_dict(work) if (work := data.get("work")) else None,
            CONVERTER.structure(output, OutputComparison) if output else None,
        )


def overall_verdict(verdicts: Sequence[PairedVerdict]) -> str:
    """The test's verdict: regressed if any metric regressed, else not-comparable, else
    inconclusive, else improved, else unchanged (a regression is never hidden behind another
    metric's gain)."""
    found = {v.verdict for v in verdicts}
    return next((name for name in SEVERITY if name in found), "unchanged")


def t_quantile(confidence: float, df: int) -> float:
    """The two-sided interval's t factor."""
    return float(stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, df))


def decide(
    mean: float, half: float, min_effect: float, equivalence_half: float | None = None
) -> str:
    """The rule on the log scale (module docstring); shared with benchmarks/ab_power.py's numpy
    copy. ``equivalence_half``: the half-width that may call it unchanged, where a sequential look
    tests equivalence at another level than a change (default: ``half``)."""
    band = math.log1p(min_effect)
    low, high = mean - half, mean + half
    within = half if equivalence_half is None else equivalence_half
    if abs(mean) + within <= band:
        return "unchanged"
    if low > 0 and high > band:
        return "regressed"
    if high < 0 and low < -band:
        return "improved"
    return "inconclusive"


@dataclass(frozen=True)
class Decision:
    """The decision settings: the minimum effect that matters (a fraction, > 0) and the fixed
    design's two-sided confidence."""

    min_effect: float = DEFAULT_MIN_EFFECT
    confidence: float = DEFAULT_CONFIDENCE

    def __post_init__(self) -> None:
        validate(self.min_effect, self.confidence)


@dataclass(frozen=True)
class _LogInterval:
    """One metric's paired log-ratios, summed up: their mean and the interval's half-widths."""

    mean: float
    sd: float  # moderated towards the prior, where there is one
    rounds: int
    prior_df: int  # 0: no prior
    half: float  # the change call's half-width
    equivalence_half: float  # the unchanged call's (the same in the fixed design)
    level: str  # how the interval is named in the reason


def _rounds_needed(interval: _LogInterval, decision: Decision) -> int:
    """Total rounds at which an interval of this spread clears 0 or fits inside the band."""
    band = math.log1p(decision.min_effect)
    mean = abs(interval.mean)
    target = max(mean, band - mean)  # either way decides it; the easier one comes first
    for n in range(interval.rounds + 1, MAX_ROUNDS_NEEDED + 1):
        t = t_quantile(decision.confidence, n - 1 + interval.prior_df)
        if t * interval.sd / math.sqrt(n) <= target:
            return n
    return MAX_ROUNDS_NEEDED


def validate(min_effect: float, confidence: float) -> None:
    if not min_effect > 0:
        raise I2VUsageError(f"minimum effect {min_effect} must be > 0 (e.g. 0.05 for 5 %)")
    if not 0 < confidence < 1:
        raise I2VUsageError(
            f"confidence {confidence} must lie strictly between 0 and 1 (e.g. 0.999)"
        )


def _check_figures(metric: str, base: Sequence[float], head: Sequence[float]) -> None:
    if len(base) != len(head):
        raise I2VUsageError(
            f"{metric}: {len(base)} base figures but {len(head)} head figures; pair them by round"
        )
    bad = [v for v in (*base, *head) if not v > 0]
    if bad:
        raise I2VUsageError(f"{metric}: figures must be > 0 to take ratios (got {bad[0]!r})")


def _log_interval(
    diffs: Sequence[float],
    decision: Decision,
    prior: Noise | None,
    look: Look | None,
    prior_cap: int | None,
) -> _LogInterval:
    n = len(diffs)
    variance, df = statistics.variance(diffs), n - 1
    prior_df = 0
    if prior is not None and prior.df > 0:
        prior_df = round(prior.df if prior_cap is None else min(prior.df, prior_cap))
        variance = (variance * df + prior.variance * prior_df) / (df + prior_df)
    sd = math.sqrt(variance)
    if look is None:
        half = t_quantile(decision.confidence, df + prior_df) * sd / math.sqrt(n)
        equivalence_half, level = half, f"{decision.confidence:.1%}"
    else:
        # no spread (memory figures): the point itself, even where a look spends nothing (inf x 0)
        half = look.change_factor(df + prior_df) * sd / math.sqrt(n) if sd > 0 else 0.0
        factor = look.equivalence_factor(df + prior_df)
        equivalence_half = factor * sd / math.sqrt(n) if sd > 0 else 0.0
        level = f"look {n}: {1.0 - look.change_alpha:.4%}"
    mean = statistics.fmean(diffs)
    return _LogInterval(mean, sd, n, prior_df, half, equivalence_half, level)


def _reason(
    verdict: str, interval: _LogInterval, decision: Decision, look: Look | None
) -> tuple[str, int | None]:
    """The verdict's one line, and the rounds needed where more rounds would decide it."""
    mean, half, effect = interval.mean, min(interval.half, MAX_LOG_HALF), decision.min_effect
    low, high = math.exp(mean - half), math.exp(mean + half)
    text = f"{interval.level} interval of head/base {low:.3f}..{high:.3f}"
    past = f"reaches past +/-{effect:.0%}"
    if verdict == "unchanged" and look is not None:
        within = interval.equivalence_half
        return (
            f"{look.equivalence_alpha:.2%}-per-side equivalence interval "
            f"{math.exp(mean - within):.3f}..{math.exp(mean + within):.3f} lies within "
            f"+/-{effect:.0%}",
            None,
        )
    if verdict == "unchanged":
        return f"{text} lies within +/-{effect:.0%}", None
    if verdict == "regressed":
        return f"slower: {text} lies above 1 and reaches past +{effect:.0%}", None
    if verdict == "improved":
        return f"faster/smaller: {text} lies below 1 and reaches past -{effect:.0%}", None
    if look is not None and not look.final:
        return f"{text} straddles 1 and {past}: undecided, the next round looks again", None
    needed = _rounds_needed(interval, decision)
    return f"{text} straddles 1 and {past}: run more rounds (~{needed} in all)", needed


def paired_verdict(
    metric: str,
    base: Sequence[float],
    head: Sequence[float],
    decision: Decision = Decision(),
    prior: Noise | None = None,
    look: Look | None = None,
    prior_cap: int | None = PRIOR_MAX_DF,
) -> PairedVerdict:
    """``base[i]``, ``head[i]``: round i's per-process figures (> 0). ``prior``: a log-ratio spread
    to moderate towards, its df capped at ``prior_cap`` (the job's pooled spread:
    ``PRIOR_MAX_DF``; a calibration: None, its real df). ``look``: a sequential job's levels at
    this round (``ab.sequential``), else the fixed design at ``decision.confidence``."""
    _check_figures(metric, base, head)
    n = len(base)
    middle = {
        "base": float(statistics.median(base)) if n else None,
        "head": float(statistics.median(head)) if n else None,
    }
    if n < 2:
        ratio = head[0] / base[0] if n else None
        reason = f"{n} round{'s' if n != 1 else ''}: at least 2 are needed for an interval"
        at_least = max(DEFAULT_ROUNDS, 2)
        return PairedVerdict(
            metric, "inconclusive", ratio, None, None, n, at_least, reason, **middle
        )
    diffs = [math.log(h) - math.log(b) for b, h in zip(base, head, strict=True)]
    interval = _log_interval(diffs, decision, prior, look, prior_cap)
    mean, half = interval.mean, interval.half
    verdict = decide(mean, half, decision.min_effect, interval.equivalence_half)
    low = math.exp(mean - min(half, MAX_LOG_HALF))
    high = math.exp(mean + min(half, MAX_LOG_HALF))
    reason, needed = _reason(verdict, interval, decision, look)
    if interval.prior_df:
        source = "the calibration" if prior_cap is None else "the job's pooled spread"
        reason += f"; spread moderated with {source} ({interval.prior_df} df)"
    return PairedVerdict(metric, verdict, math.exp(mean), low, high, n, needed, reason, **middle)
