"""A/B reads the video: round 1's head output judged against round 1's base output.

The two sides run the same tests on the same machine with the same weights and seeds, so the
base's output is the exact reference the head's must keep (``record.judgement.compare_with``, the
gate's own comparison and bars). The noise allowed is the base's own: its round-2 process
against its round-1 process (a fresh process each, as the head's are). Until a second base round
exists the output is not judged; a job of one round never is.

- **held**: nothing changes; the time and the work decide.
- **changed**: the test's verdict is **output-changed** (worst of all: a faster different video is
  not an improvement) and the job exits 1, with the figures as the reason.
- **nondeterministic**: the base's own two processes differ beyond the bar too: reported, never
  failed (dynamo's ``eager_two_runs_differ``).

Pure: no pytest, no torch."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_i2v.ab.paired import OUTPUT_CHANGED, OUTPUT_METRIC, ABTestResult, PairedVerdict
from pytest_i2v.record.judgement import compare_with
from pytest_i2v.record.output import compare_outputs
from pytest_i2v.record.parts import OutputComparison
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.verdict.fidelity import FidelityFigures, FidelitySettings

AGAINST_BASE = "base's output"
PENDING = "judged after round 2 (the base's second process gives the noise)"


def _base_repeat(base: Sequence[GenerationRecord]) -> FidelityFigures | None:
    """The base's round-2 output against its round-1 output: this code run twice."""
    if len(base) < 2 or base[0].output is None or base[1].output is None:
        return None
    if base[1].outcome != "ok":
        return None
    return compare_outputs(base[0].output, base[1].output)


def output_of_rounds(
    base: Sequence[GenerationRecord],
    head: Sequence[GenerationRecord],
    settings: FidelitySettings,
) -> OutputComparison | None:
    """Round 1's head output against round 1's base output, once a second base round gives the
    noise; None before, or where either side kept no output (a failed run, an old plugin)."""
    first_base, first_head = base[0], head[0]
    if first_base.outcome != "ok" or first_head.outcome != "ok" or first_base.output is None:
        return None
    repeat = _base_repeat(base)
    if first_head.output is None or repeat is None:
        return None
    return compare_with(first_base.output, first_head, settings, AGAINST_BASE, repeat)


def _pending(base: Sequence[GenerationRecord], head: Sequence[GenerationRecord]) -> bool:
    """Both sides kept an output in round 1, but no second base round gives the noise yet."""
    ran = base[0].outcome == "ok" and head[0].outcome == "ok"
    return ran and base[0].output is not None and head[0].output is not None and len(base) < 2


def output_verdict(
    base: Sequence[GenerationRecord],
    head: Sequence[GenerationRecord],
    comparison: OutputComparison | None,
) -> PairedVerdict | None:
    """The "output" metric's verdict: output-changed where it changed; inconclusive while it
    waits for round 2 (so that a test whose work improved in round 1 cannot leave the job
    "improved" before its video is judged); None where it held or is nondeterministic (both
    reported beside the verdicts, never in them) or was not compared."""
    if comparison is not None and comparison.verdict == "changed":
        reason = comparison.line()
        return PairedVerdict(OUTPUT_METRIC, OUTPUT_CHANGED, None, None, None, 1, None, reason)
    if comparison is None and _pending(base, head):
        return PairedVerdict(OUTPUT_METRIC, "inconclusive", None, None, None, 1, None, PENDING)
    return None


def output_text(result: ABTestResult) -> str:
    """One line per test for ab.md and the HTML: the verdict's word and the figures."""
    comparison = result.output
    if comparison is None:
        waiting = any(v.metric == OUTPUT_METRIC for v in result.verdicts)
        return PENDING if waiting else "not compared (no output on both sides in rounds 1 and 2)"
    if comparison.verdict == "held" and comparison.figures.identical:
        return f"identical to the {AGAINST_BASE}, {comparison.figures.frames} frames"
    words = {
        "held": "held",
        "changed": "output changed",
        "nondeterministic": "nondeterministic (the base's own two processes differ; not judged)",
    }
    return f"{words[comparison.verdict]}: {comparison.line()}"
