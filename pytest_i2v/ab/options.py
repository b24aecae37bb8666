"""What the user asked the A/B job for (``ABOptions``) and the checks that refuse a comparison
that could not mean anything."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.verdict.ab_calibration import DEFAULT_CALIBRATION_ROUNDS, MIN_CALIBRATION_ROUNDS

DEFAULT_OUT = "i2v-ab"
# pytest args the A/B job sets itself (or forbids): the user's would break the comparison
FORBIDDEN_ARGS = {
    "--i2v-update-baselines": (
        "A/B runs never write baselines; record them with a normal pytest run"
    ),
    "--i2v-json": "ab writes each run's results into --out itself",
    "--i2v-baseline-dir": "A/B runs never read baselines; they compare base with head",
}


@dataclass(frozen=True)
class ABOptions:
    base: str
    head: str | None = None  # None: the working tree as it is
    rounds: int | None = None  # None: paired.DEFAULT_ROUNDS
    min_effect_pct: float | None = None  # None: paired.DEFAULT_MIN_EFFECT
    out: Path = Path(DEFAULT_OUT)
    pytest_args: tuple[str, ...] = ()
    # each test leaves once decided (ab.sequential); False: every test runs every round
    sequential: bool = True
    # False: each process measures in fast mode (processes.PROCESS_FAST); True: full generations
    full_runs: bool = False
    # base against itself: store each test's spread (verdict.ab_calibration), compare nothing
    calibrate: bool = False
    # where the calibration is read and written (None: <repository>/baselines)
    baseline_dir: Path | None = None


def _calibration_rounds(options: ABOptions) -> int:
    if options.head is not None:
        raise I2VUsageError(
            "--calibrate runs the base against itself; drop --head (or name the revision to "
            "calibrate with --base)"
        )
    rounds = DEFAULT_CALIBRATION_ROUNDS if options.rounds is None else options.rounds
    if rounds < MIN_CALIBRATION_ROUNDS:
        raise I2VUsageError(
            f"--rounds {rounds}: a calibration needs at least {MIN_CALIBRATION_ROUNDS} A/A "
            f"rounds (the default {DEFAULT_CALIBRATION_ROUNDS} gives "
            f"{DEFAULT_CALIBRATION_ROUNDS - 1} df)"
        )
    return rounds


def check_options(options: ABOptions, default_rounds: int) -> tuple[int, float | None]:
    """The rounds to run and the minimum effect in per cent (None: the default), or a usage
    error."""
    if options.calibrate:
        default_rounds = _calibration_rounds(options)
    rounds = default_rounds if options.rounds is None else options.rounds
    if rounds < 2:
        raise I2VUsageError(
            f"--rounds {rounds}: an A/B comparison needs at least 2 rounds (one ABBA pair); "
            f"the default is {default_rounds}"
        )
    if options.min_effect_pct is not None and not 0 < options.min_effect_pct < 100:
        raise I2VUsageError(
            f"--min-effect {options.min_effect_pct}: use a percentage between 0 and 100, e.g. 3"
        )
    for arg in options.pytest_args:
        flag = arg.split("=", 1)[0]
        if flag in FORBIDDEN_ARGS:
            raise I2VUsageError(f"pytest arg {flag}: {FORBIDDEN_ARGS[flag]}; drop it")
    return rounds, options.min_effect_pct
