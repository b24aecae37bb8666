"""What a measured test comes to: decided once, here, and read by every output.

The terminal summary, JUnit properties, the JSON, the Markdown, the HTML and the exit code
(through the test's pass/fail in ``pytest_runtest_makereport``) all read ``Outcome``; none of them
decides again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

OutcomeKind = Literal[
    "passed",
    "output-changed",
    "regressed",
    "unreliable",
    "improved",
    "over-budget",
    "out-of-memory",
    "env-changed",
    "not-enforced",
    "recorded",
]
GateMode = Literal["enforce", "report", "update"]
GATE_MODES: tuple[GateMode, ...] = get_args(GateMode)
OUTCOME_KINDS: tuple[OutcomeKind, ...] = get_args(OutcomeKind)
# Worst first: the order of the report's and the summary's lists.
SEVERITY: tuple[OutcomeKind, ...] = (
    "out-of-memory",
    "over-budget",
    "output-changed",
    "regressed",
    "unreliable",
    "env-changed",
    "not-enforced",
    "improved",
    "recorded",
    "passed",
)
# A baseline measured on another machine (fingerprint.MACHINE_KEYS differ) is never compared.
NO_MACHINE_BASELINE = "no baseline for this machine, recorded as new"
# What to do about an "unreliable" outcome: a slowdown seen only under throttling says nothing
# of the PR.
# How the headline names what a report-only run would have failed on.
WOULD_HAVE_WORDS = {"regressed": "would have regressed", "output-changed": "output changed"}
STABLE_GPU_ADVICE = "re-run on a stable GPU (--i2v-lock-clocks)"
UNRELIABLE_MEANING = "slow only in throttled repeats"


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    fails: bool  # the test fails (and so pytest exits 1)
    reason: str  # one line: why
    would_have: str | None = None  # not enforced: the gate verdict it would have failed on
    times_not_comparable: str | None = (
        None  # the machine speed probe moved: why the times were not judged
    )

    def to_dict(self) -> dict[str, str | bool | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(
            kind=data["kind"],
            fails=bool(data["fails"]),
            reason=str(data.get("reason", "")),
            would_have=data.get("would_have"),
            times_not_comparable=data.get("times_not_comparable"),
        )


@dataclass(frozen=True)
class DecisionInputs:
    """Everything the one decision reads, named (``record.judgement`` builds it for a test).

    ``measured``: the record's "ok" or "oom"; ``verdict``: the gate's (after any re-measurement);
    ``confirmed``: whether re-measuring confirmed a flag (None: nothing was re-measured);
    ``machine_changes``: the baseline is another machine's (then the verdict is "new", never
    compared); ``unreliable``: why a "regressed" verdict is only the throttled repeats being slow
    (``throttling.throttling_excuse``; None: it is not); ``work``: what the work signature says
    against the baseline (``work_diff.work_verdict``: "regressed"/"improved" beyond the minimum
    effect, "changed" within it, "identical"; None: not compared), ``work_summary`` its one line
    (for identical work, where the excess time sits); ``times_not_comparable``: the machine speed
    probe says this machine is not the baseline's speed (``machine_speed``)."""

    measured: str
    budget_failures: Sequence[str]
    verdict: str | None
    env_policy: str
    mode: GateMode
    profile: str
    confirmed: bool | None = None
    machine_changes: Sequence[str] = ()
    unreliable: str | None = None
    work: str | None = None
    work_summary: str = ""
    times_not_comparable: str | None = None
    # The output against its reference (``verdict.fidelity``): "held", "changed" or
    # "nondeterministic" (None: not compared), and the comparison's words.
    fidelity: str | None = None
    fidelity_line: str = ""


def needs_confirmation(inputs: DecisionInputs) -> bool:
    """Whether the gate would fail this test before budgets and modes: what re-measuring is for.
    A work regression fails on its own (re-measuring the time adds nothing to it); changed or
    improved work does not excuse a slow time, so that time is re-measured like any other."""
    if inputs.mode != "enforce" or inputs.work == "regressed" or inputs.fidelity == "changed":
        return False  # a changed output fails on its own: its time changes nothing
    return inputs.verdict == "regressed" or (
        inputs.verdict == "env-changed" and inputs.env_policy == "fail"
    )


def decide(inputs: DecisionInputs) -> Outcome:
    """What the test comes to. A work regression fails on its own; a gating time or memory
    regression fails whatever the work says (changed work is named beside it, it explains a time
    but excuses nothing); improved work with no regression is "improved"; changed work within the
    minimum effect leaves the decision to the time. When the times were not comparable the gate
    did not let them fail (memory still could): the outcome says so."""
    outcome = _decide(inputs)
    not_comparable = inputs.times_not_comparable
    if (
        not_comparable
        and outcome.kind == "passed"
        and inputs.work not in ("regressed", "improved", "changed")
    ):
        # Only a pass is explained by the probe: memory is judged whatever it says, so a leaner
        # peak stays "improved".
        return Outcome("passed", False, not_comparable, times_not_comparable=not_comparable)
    return replace(outcome, times_not_comparable=not_comparable)


def _decide(inputs: DecisionInputs) -> Outcome:
    verdict, work, mode, profile = inputs.verdict, inputs.work, inputs.mode, inputs.profile
    if inputs.measured == "oom":
        return Outcome("out-of-memory", True, "out of memory")
    if inputs.budget_failures:
        return Outcome("over-budget", True, "; ".join(inputs.budget_failures))
    if mode == "update":
        return Outcome(
            "recorded", False, "recorded as a baseline run (the gate does not fail while updating)"
        )
    if inputs.machine_changes:
        # Checked before the verdict: another machine's numbers never make a regression or an env
        # change.
        changes = "; ".join(inputs.machine_changes)
        return Outcome("passed", False, f"{NO_MACHINE_BASELINE}: {changes}")
    if inputs.fidelity == "changed":
        # Faster but different is not faster: whatever the time did, the video is another one.
        return _output_changed(inputs)
    again = " (confirmed by re-measuring)" if inputs.confirmed else ""
    if verdict == "regressed" and inputs.unreliable and work != "regressed":
        # Not the PR's fault, so it does not fail; not a pass either: the headline counts it.
        # Report mode says the same, since enforcing would not have failed it either.
        return Outcome("unreliable", False, f"{inputs.unreliable}: {STABLE_GPU_ADVICE}")
    if work == "regressed" or verdict == "regressed":
        # Any gating regression fails, whatever the work says: changed work explains a time, it
        # never excuses one (the timing rule and its re-measurement decided it) nor a memory peak.
        return _regressed(work, inputs.work_summary, mode, profile, again)
    if verdict == "env-changed":
        return _env_changed(inputs.env_policy, mode, profile)
    return _not_failing(inputs)


def _env_changed(env_policy: str, mode: GateMode, profile: str) -> Outcome:
    if env_policy == "fail" and mode == "report":
        return Outcome(
            "not-enforced",
            False,
            f"the environment changed; the {profile} profile reports only",
            would_have="env-changed",
        )
    fails = env_policy == "fail"
    policy = (
        "fails under --i2v-env-policy fail"
        if fails
        else f"not compared for a verdict (--i2v-env-policy {env_policy})"
    )
    return Outcome("env-changed", fails, f"the environment differs from the baseline's: {policy}")


def _output_changed(inputs: DecisionInputs) -> Outcome:
    time = {"regressed": "slower or hungrier", "improved": "faster or leaner"}.get(
        inputs.verdict or "", ""
    )
    beside = f"; the time: {time} than the baseline" if time else ""
    reason = f"output changed: {inputs.fidelity_line}{beside}"
    if inputs.mode == "report":
        return Outcome(
            "not-enforced",
            False,
            f"would have failed, {reason}; the {inputs.profile} profile reports only",
            would_have="output-changed",
        )
    return Outcome("output-changed", True, reason)


def _not_failing(inputs: DecisionInputs) -> Outcome:
    """Improved, or passed: nothing regressed and the environment is the baseline's. "Improved"
    only where the output held (or was not compared)."""
    verdict, work, summary = inputs.verdict, inputs.work, inputs.work_summary
    if inputs.fidelity == "nondeterministic":
        return Outcome(
            "passed",
            False,
            f"output not judged, nondeterministic: this code's own two runs here differ beyond the "
            f"bar; {inputs.fidelity_line}",
        )
    if work == "improved":
        return Outcome(
            "improved", False, f"the work improved: {summary}; re-baseline to keep the gain"
        )
    if verdict == "improved":
        changed = f"; {summary}" if work == "changed" else ""
        return Outcome(
            "improved",
            False,
            f"faster or leaner than the baseline{changed}: re-baseline to keep the gain",
        )
    if work == "changed":
        return Outcome("passed", False, f"{summary}, within the minimum effect")
    if inputs.confirmed is False:
        return Outcome("passed", False, "flagged once, not confirmed by re-measuring")
    return Outcome(
        "passed", False, "no baseline yet" if verdict == "new" else "within the baseline's bar"
    )


def headline(
    outcomes: Sequence[Outcome], profile: str, mode: GateMode, left_out: int = 0
) -> tuple[bool, str]:
    """(fails, one line) for a whole run, worded so that neither a report-only run nor one with
    unreliable (throttled) measurements can be read as a pass. ``left_out``: the recorded runs
    the baseline will not get (their timings doubtful)."""
    counts = {kind: sum(1 for o in outcomes if o.kind == kind) for kind in OUTCOME_KINDS}
    failing = sum(1 for o in outcomes if o.fails)
    would = sum(1 for o in outcomes if o.kind == "not-enforced")
    unsure = (
        f"{counts['unreliable']} unreliable ({UNRELIABLE_MEANING}: {STABLE_GPU_ADVICE})"
        if counts["unreliable"]
        else ""
    )
    if failing:
        parts = [
            f"{counts[k]} {k}"
            for k in SEVERITY
            if counts[k] and any(o.fails for o in outcomes if o.kind == k)
        ]
        return True, f"the gate fails: {', '.join(parts)}" + (f"; also {unsure}" if unsure else "")
    if would:
        return False, (
            f"not enforced on the {profile} profile: {would} would have failed ({_would(outcomes)})"
            + (f"; also {unsure}" if unsure else "")
        )
    if mode == "update":
        recorded = counts["recorded"]
        runs = (
            f"{recorded - left_out} of {recorded} runs: {left_out} left out, timings doubtful"
            if left_out
            else f"{recorded} runs"
        )
        return False, f"baselines recorded ({runs}); the gate was not applied"
    if not outcomes:
        return False, "no measured generations"
    if unsure:
        where = (
            f"not enforced on the {profile} profile" if mode == "report" else "the gate cannot tell"
        )
        return False, f"{where}: {unsure}"
    slower = [o.times_not_comparable for o in outcomes if o.times_not_comparable]
    if slower:
        # A newcomer's first run on a machine of another speed: the machine, not the code (one
        # line, the first test's).
        where = f"not enforced on the {profile} profile" if mode == "report" else "the gate passes"
        return False, (
            f"{where}: {slower[0].split(':')[0]} on {len(slower)} test(s): timings not comparable "
            f"with the baseline, memory judged; record this machine's runs with "
            f"--i2v-update-baselines=reset to compare times from now on"
        )
    if mode == "report":
        return False, f"not enforced on the {profile} profile: nothing would have failed"
    return False, "the gate passes"


def _would(outcomes: Sequence[Outcome]) -> str:
    kinds = [o.would_have for o in outcomes if o.kind == "not-enforced" and o.would_have]
    return ", ".join(f"{kinds.count(k)} {WOULD_HAVE_WORDS.get(k, k)}" for k in sorted(set(kinds)))


def _regressed(
    work: str | None, work_summary: str, mode: GateMode, profile: str, again: str
) -> Outcome:
    """A work regression, or a gating time or memory regression (with the work's line beside it)."""
    detail = f": {work_summary}" if work == "regressed" else ""
    if mode == "report":
        return Outcome(
            "not-enforced",
            False,
            f"would have regressed{detail}; the {profile} profile reports only",
            would_have="regressed",
        )
    if detail:
        return Outcome("regressed", True, f"the work regressed{detail}")
    beside = f"; {work_summary}" if work_summary and work != "regressed" else ""
    return Outcome("regressed", True, f"slower or hungrier than the baseline{again}{beside}")
