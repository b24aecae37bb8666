"""The noise prior the gate borrows: each baseline entry's log-scale spread, and the prior fitted
over the file's other entries (empirical Bayes, limma's ``fitFDist``, Smyth 2004) that an entry
with few runs is moderated towards. ``gate.prior_for`` picks it (or the profile's declared one).

Pure: no pytest, no I/O."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy import optimize, special, stats


@dataclass(frozen=True)
class Noise:
    """A log-scale spread with its degrees of freedom."""

    variance: float
    df: float  # a fitted prior's df need not be whole


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
    logs = [
        math.log(n.variance) - float(special.digamma(h)) + math.log(h)
        for n, h in zip(noises, half, strict=True)
    ]
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


def moderated(history_noise: Noise | None, prior: Noise) -> Noise:
    if history_noise is None:
        return prior
    df = prior.df + history_noise.df
    return Noise((prior.variance * prior.df + history_noise.variance * history_noise.df) / df, df)
