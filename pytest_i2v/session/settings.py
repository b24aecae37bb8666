"""Command-line options and ini keys (the table in ``options``) -> one frozen ``Settings``.

Precedence: command line > ini file > default. A bad value is an ``I2VUsageError`` that says
where it came from (``--i2v-repeats 0`` or ``ini i2v_repeats = 0``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.session.options import OPTIONS
from pytest_i2v.storage import JsonValue


@dataclass(frozen=True)
class Settings:
    gpu_profile: str = "auto"
    model: str | None = None
    pipeline: str | None = None
    pipeline_class: str | None = None  # --i2v-pipeline-class: [NAME=]module:Class entries
    device: str | None = None
    dtype: str | None = None
    repeats: int | None = None  # None: the profile's
    warmup: int = 1
    json_path: Path | None = None
    report_path: Path | None = None
    markdown_path: Path | None = None
    history_url: str | None = None  # --i2v-history: the database the run is added to
    profile_dir: Path | None = None
    allow_profile_mismatch: bool = False
    input_image: Path | None = None
    baseline_dir: Path | None = None
    update_baselines: str | None = None
    force_baselines: bool = False  # --i2v-force-baselines: record unreliable runs too
    env_policy: str | None = None
    gate_mode: str | None = None
    confirm: int | None = None
    confirm_in: str = "fresh"
    remeasure_into: Path | None = None
    safety_margin_gb: float = 2.0
    gpus: tuple[int, ...] | None = None
    allow_pickle: bool = False
    lock_clocks: bool = False
    fast: bool = False
    fast_steps: int = 5
    target_ci_pct: float | None = None
    min_repeats: int = 3
    max_repeats: int = 15
    allow_shared_gpu: bool = False
    latency_thresholds: tuple[float, float] = (30.0, 60.0)
    signature: bool | None = None  # None: the profile's
    roofline: bool | None = None  # None: the profile's
    benchmark_tables: str = "auto"  # --i2v-benchmark-tables: on, off or auto (benchmark_bridge)

    def to_dict(self) -> dict[str, JsonValue]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


def resolve_settings(
    cli_value: Callable[[str], Any],
    ini_value: Callable[[str], Any],
    invocation_dir: Path,
    ini_dir: Path,
) -> Settings:
    """``cli_value(dest)`` and ``ini_value(key)`` return None (or '') when unset."""
    values: dict[str, Any] = {}
    for spec in OPTIONS:
        raw = cli_value(spec.dest)
        origin, base = f"{spec.flag}", invocation_dir
        if spec.is_flag and raw is False:
            raw = None
        if raw is None:
            raw = ini_value(spec.ini)
            origin, base = f"ini {spec.ini}", ini_dir
            if raw in (None, "") or (isinstance(raw, list) and not raw):
                values[spec.dest] = spec.default
                continue
        text = "true" if raw is True else str(raw)
        try:
            value = spec.parse(text)
        except ValueError as exc:
            detail = str(exc)
            if "invalid literal" in detail:
                detail = "must be an integer"
            elif "could not convert" in detail:
                detail = "must be a number"
            raise I2VUsageError(f"{origin} = {text!r}: {detail}") from None
        if spec.is_path:
            value = (
                (base / Path(value).expanduser()).resolve()
                if not Path(value).expanduser().is_absolute()
                else Path(value).expanduser()
            )
        values[spec.dest] = value
    return checked(Settings(**values))


def checked(settings: Settings) -> Settings:
    """Options that contradict each other, and a history database that cannot be opened: usage
    errors, whatever the tests."""
    if settings.history_url is not None:
        # Imported here: SQLAlchemy loads only in the runs that asked for a history.
        from pytest_i2v.history.store import open_store

        open_store(settings.history_url).close()  # before the tests, not after them
    if settings.fast and settings.update_baselines:
        raise I2VUsageError(
            "--i2v-update-baselines with --i2v-fast: baselines hold measured runs, and fast mode "
            "predicts the total; re-baseline without --i2v-fast"
        )
    if settings.target_ci_pct is not None and settings.min_repeats > settings.max_repeats:
        raise I2VUsageError(
            f"--i2v-min-repeats {settings.min_repeats} is more than "
            f"--i2v-max-repeats {settings.max_repeats}"
        )
    return settings
