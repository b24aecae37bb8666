"""The ``i2v_fidelity`` marker as a typed function: what a test asks of its output (the bar's
figures, lossy by design, a sibling test as the reference). Pure: no torch, no pytest."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pytest_i2v.errors import I2VUsageProblems


@dataclass(frozen=True)
class FidelityRequest:
    """What a test's ``i2v_fidelity`` mark asks of its output: the bar's figures (None: the
    profile's), whether the test is lossy by design (held to the profile's lossy bar), and the
    sibling test of this session whose output it is judged against instead of the baseline's (a
    name in the same module, ``test_native[wan2.1-i2v]``, or a whole node id)."""

    min_psnr_db: float | None = None
    min_ssim: float | None = None
    lossy: bool = False
    against: str | None = None

    def sibling_nodeid(self, nodeid: str) -> str | None:
        """The node id of the test ``against`` names, for the test ``nodeid``."""
        if self.against is None:
            return None
        if "::" in self.against:
            return self.against
        return f"{nodeid.rsplit('::', 1)[0]}::{self.against}"


def i2v_fidelity(
    min_psnr_db: float | None = None,
    min_ssim: float | None = None,
    lossy: bool = False,
    against: str | None = None,
) -> FidelityRequest:
    """Judge the output against ``against`` (a test of this session) instead of the baseline's,
    with the lossy bar when ``lossy``, or with these figures."""
    problems = []
    if min_psnr_db is not None and not _positive(min_psnr_db):
        problems.append(f"i2v_fidelity(min_psnr_db={min_psnr_db!r}): a positive number of dB")
    if min_ssim is not None and not (_number(min_ssim) and 0 <= min_ssim <= 1):
        problems.append(f"i2v_fidelity(min_ssim={min_ssim!r}): a number in [0, 1]")
    if not isinstance(lossy, bool):
        problems.append(f"i2v_fidelity(lossy={lossy!r}): True or False")
    if against is not None and (not isinstance(against, str) or not against.strip()):
        problems.append(f"i2v_fidelity(against={against!r}): a test's name, e.g. 'test_native'")
    if problems:
        raise I2VUsageProblems(problems)
    return FidelityRequest(
        None if min_psnr_db is None else float(min_psnr_db),
        None if min_ssim is None else float(min_ssim),
        lossy,
        against,
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _number(value) and value > 0
