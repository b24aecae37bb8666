"""Sequential A/B: look after every round from the second and let each test go once it is decided.

A fixed number of rounds pays for the hardest test on every test. Here the job looks at its rounds
after each one (from the second: one round has no spread) and a test leaves the job as soon as it
is decided (regressed, improved, or unchanged within the minimum effect); the job ends when every
test is decided or ``max_rounds`` are spent.

Looking often must not buy false alarms. Each look spends part of the error budget, by the
**Lan-DeMets alpha-spending** approach (K. K. G. Lan and D. L. DeMets, "Discrete sequential
boundaries for clinical trials", Biometrika 70(3):659-663, 1983), with information fraction
``t = rounds / max_rounds``:

- **regressed / improved** (the false alarm): the O'Brien-Fleming-type function
  ``alpha(t) = 2 - 2 * Phi(z(1 - alpha / 2) / sqrt(t))``: next to nothing on the early looks,
  most of it on the last, so a job that runs to the end is almost as strict as the fixed design;
- **unchanged** (equivalence: a miss of a real change): the Pocock-type function
  ``gamma(t) = gamma * ln(1 + (e - 1) * t)``, spread evenly, so that an unchanged test can leave
  early.

Each look tests at the increment it spends, ``alpha(t_k) - alpha(t_(k-1))``: by the union bound the
chance of any false alarm over all looks is at most ``alpha`` (a Bonferroni split of the spent
budget; conservative, since the looks are positively correlated). With ``alpha = 0.001`` a test's
false alarms stay within 0.1 % however many looks it gets, and ``benchmarks/ab_power.py`` measures
the rate with the project's own decision code.

Pure: no pytest, no torch, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

DEFAULT_EQUIVALENCE_MISS = (
    0.05  # gamma: the chance of calling a change of exactly the minimum effect unchanged
)
SPENDING_RULE = (
    "Lan-DeMets alpha spending (Biometrika 70(3):659-663, 1983): O'Brien-Fleming-type for "
    "regressed/improved, Pocock-type for unchanged; each look at its increment (union bound)"
)


def obrien_fleming_spent(alpha: float, fraction: float) -> float:
    """The two-sided error spent by information fraction ``fraction`` (0..1)."""
    if fraction <= 0:
        return 0.0
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    return float(
        2.0 * stats.norm.sf(z / math.sqrt(min(fraction, 1.0)))
    )  # sf: the early looks' tiny tails stay exact


def pocock_spent(gamma: float, fraction: float) -> float:
    if fraction <= 0:
        return 0.0
    return gamma * math.log(1.0 + (math.e - 1.0) * min(fraction, 1.0))


@dataclass(frozen=True)
class Look:
    """The levels of one look, as error rates (a confidence of 1 - 1e-20 is 1.0 in a float): the
    two-sided rate of the interval that may call a change (regressed, improved), and the one-sided
    rate of each of the two tests that may call it unchanged."""

    rounds: int
    change_alpha: float
    equivalence_alpha: float
    final: bool

    def change_factor(self, df: int) -> float:
        """The t factor of the change interval (inf when this look spends nothing)."""
        return (
            float(stats.t.isf(self.change_alpha / 2.0, df)) if self.change_alpha > 0 else math.inf
        )

    def equivalence_factor(self, df: int) -> float:
        return (
            float(stats.t.isf(self.equivalence_alpha, df))
            if self.equivalence_alpha > 0
            else math.inf
        )


@dataclass(frozen=True)
class SequentialPlan:
    """``max_rounds`` looks at most; ``alpha``: the two-sided false-alarm budget of one metric over
    every look (1 - the fixed design's confidence); ``gamma``: the one-sided miss budget of the
    equivalence call at the minimum effect."""

    max_rounds: int
    alpha: float
    gamma: float = DEFAULT_EQUIVALENCE_MISS
    first_look: int = 2

    def look(self, rounds: int) -> Look:
        """The levels at ``rounds`` rounds: the budget spent since the previous look (the first look
        spends what every round up to it would have)."""
        rounds = min(rounds, self.max_rounds)
        now, before = rounds / self.max_rounds, (rounds - 1) / self.max_rounds
        if rounds <= self.first_look:
            before = 0.0
        change = obrien_fleming_spent(self.alpha, now) - obrien_fleming_spent(self.alpha, before)
        equivalence = pocock_spent(self.gamma, now) - pocock_spent(self.gamma, before)
        return Look(rounds, max(change, 0.0), max(equivalence, 0.0), rounds >= self.max_rounds)


DECIDED = (
    "output-changed",  # paired.OUTPUT_CHANGED: judged once, from rounds 1 and 2
    "regressed",
    "improved",
    "unchanged",
    "not-comparable",
)  # more rounds would not change these


def is_decided(overall: str) -> bool:
    return overall in DECIDED
