"""Check (j), a pure function over two result records: the work signature is the same in a
fresh process, and its timed rows account for the step."""

from __future__ import annotations

from pytest_i2v.gpu_check.plan import CheckResult
from pytest_i2v.gpu_check.records import FAIL, NOT_APPLICABLE, PASS
from pytest_i2v.record.record import GenerationRecord

SIGNATURE_TITLE = "the work signature agrees in a fresh process and accounts for the step"


def check_signature(
    main: GenerationRecord | None,
    fresh: GenerationRecord | None,
    attribution_pct: float | None,
    key: str = "j",
) -> CheckResult:
    """(j) the same test's work signature in this process and in a fresh one: one digest (the gate's
    work verdict rests on it), and the step's timed rows (kernels on a GPU) add up to the step's
    span within ``attribution_pct`` (None: shown, not judged)."""
    for record, what in ((main, "the main run"), (fresh, "the fresh-process run")):
        if record is None or record.outcome != "ok":
            return CheckResult(key, SIGNATURE_TITLE, FAIL, f"no measured record in {what}")
        if not record.signature:
            return CheckResult(
                key, SIGNATURE_TITLE, NOT_APPLICABLE, "no work signature (--i2v-signature off)"
            )
    assert main is not None and fresh is not None
    assert main.signature and fresh.signature  # both there, from the loop above
    a, b = main.signature.work(), fresh.signature.work()
    same = a.digest == b.digest
    step = a.stages.get("step")
    share = (
        step.timed(a.device_kind) / step.span_s if step is not None and step.span_s > 0 else None
    )
    parts = [f"digest {a.digest} vs fresh {b.digest} ({'equal' if same else 'DIFFERENT'})"]
    if a.noise:
        parts.append("noise named: " + "; ".join(a.noise))
    attributed_ok = True
    if share is not None:
        judged = attribution_pct is not None
        attributed_ok = not judged or abs(share - 1.0) * 100.0 <= (attribution_pct or 0.0)
        parts.append(
            f"the step's timed rows are {share:.1%} of its span"
            + ("" if judged else " (shown, not judged)")
        )
    return CheckResult(
        key, SIGNATURE_TITLE, PASS if same and attributed_ok else FAIL, "; ".join(parts)
    )
