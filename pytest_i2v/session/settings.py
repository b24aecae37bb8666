"""Command-line options and ini keys -> one frozen ``Settings``; the help text is shared by both.

Precedence: command line > ini file > default. A bad value is an ``I2VUsageError`` that says
where it came from (``--i2v-repeats 0`` or ``ini i2v_repeats = 0``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import DTYPES


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be >= 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _dtype(text: str) -> str:
    if text not in DTYPES:
        raise ValueError(f"use one of {', '.join(DTYPES)}")
    return text


def _pipeline(text: str) -> str:
    from pytest_i2v.pipelines import PIPELINES

    if text.strip() not in PIPELINES:
        raise ValueError(f"unknown pipeline; use one of {', '.join(PIPELINES)}")
    return text.strip()


def _model(text: str) -> str:
    from pytest_i2v.pipelines import parse_model_sources

    parse_model_sources(text.strip())  # a malformed NAME=SOURCE list is a usage error at configure
    return text.strip()


def _pipeline_class(text: str) -> str:
    from pytest_i2v.pipelines import parse_pipeline_classes

    parse_pipeline_classes(text.strip())  # a malformed entry is a usage error at configure
    return text.strip()


def _device(text: str) -> str:
    if text != "cpu" and text != "cuda" and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise ValueError("use cpu, cuda or cuda:N")
    return text


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("use true or false")


def _update_mode(text: str) -> str | None:
    lowered = text.strip().lower()
    if lowered in ("", "off", "false", "no", "0"):
        return None
    if lowered in ("append", "reset"):
        return lowered
    raise ValueError(
        "use append (record this run in the history) or reset (drop this machine's old history)"
    )


def _on_off(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise ValueError("use on or off")
    return lowered in ("on", "true", "1", "yes")


def _benchmark_tables(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("on", "off", "auto"):
        raise ValueError("use on, off or auto")
    return lowered


def _gate_mode(text: str) -> str:
    if text not in ("enforce", "report"):
        raise ValueError("use enforce (a regression fails its test) or report (verdicts only)")
    return text


def _confirm_in(text: str) -> str:
    if text not in ("fresh", "same"):
        raise ValueError("use fresh or same")
    return text


def _env_policy(text: str) -> str:
    if text not in ("warn", "fail", "ignore"):
        raise ValueError("use warn (compare and report), fail, or ignore")
    return text


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be a number >= 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a number > 0")
    return value


def _thresholds(text: str) -> tuple[float, float]:
    from pytest_i2v.study import parse_thresholds

    return parse_thresholds(text)


def _gpus(text: str) -> tuple[int, ...]:
    from pytest_i2v.session.gpus import parse_gpu_list

    return parse_gpu_list(text)


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


@dataclass(frozen=True)
class OptionSpec:
    flag: str  # command-line flag
    ini: str  # ini key
    dest: str  # Settings field
    help: str
    parse: Callable[[str], Any]
    default: Any = None
    metavar: str | None = None
    is_flag: bool = False  # store_true on the command line
    const: str | None = None  # the value of a bare flag whose value is optional
    is_path: bool = False  # relative ini values resolve against the ini file's directory


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "--gpu-profile",
        "i2v_gpu_profile",
        "gpu_profile",
        "GPU profile to measure against: a name (rtx4090, a100-80gb, cpu, ...) or 'auto' for the detected GPU (default: auto)",
        _text,
        "auto",
        "NAME|auto",
    ),
    OptionSpec(
        "--i2v-model",
        "i2v_model",
        "model",
        "model source: a hub id, a local diffusers directory, 'random' (full-size, random weights) or 'tiny'; "
        "per pipeline as NAME=SOURCE entries, e.g. 'random,svd=/models/svd' (default: the profile's; a "
        "pipeline the source is not for loads its published hub id)",
        _model,
        None,
        "SOURCE",
    ),
    OptionSpec(
        "--i2v-pipeline",
        "i2v_pipeline",
        "pipeline",
        "pipeline of tests whose i2v mark names none: i2vgen-xl, svd, wan2.1-i2v, wan2.2-i2v, ltx-video, "
        "cogvideox-i2v or hunyuanvideo-i2v (default: the --i2v-model directory's, else the profile's, else i2vgen-xl)",
        _pipeline,
        None,
        "NAME",
    ),
    OptionSpec(
        "--i2v-pipeline-class",
        "i2v_pipeline_class",
        "pipeline_class",
        "your own pipeline class, loaded with its from_pretrained and given every memory "
        "option, compile and placement the plugin applies: module:Class (its pipeline: the "
        "supported class it derives from) or NAME=module:Class entries; a model_index.json "
        "naming the class maps to that pipeline",
        _pipeline_class,
        None,
        "[NAME=]MODULE:CLASS",
    ),
    OptionSpec(
        "--i2v-device",
        "i2v_device",
        "device",
        "device to run on: cpu, cuda or cuda:N (default: the profile's, cuda when available)",
        _device,
        None,
        "DEVICE",
    ),
    OptionSpec(
        "--i2v-dtype",
        "i2v_dtype",
        "dtype",
        "weights dtype: fp16, bf16 or fp32 (default: the profile's; a mark's dtype wins)",
        _dtype,
        None,
        "fp16|bf16|fp32",
    ),
    OptionSpec(
        "--i2v-repeats",
        "i2v_repeats",
        "repeats",
        "measured repeats per generation (default: the profile's: 5 like the study on GPU profiles, 3 on the cpu profile)",
        _positive_int,
        None,
        "N",
    ),
    OptionSpec(
        "--i2v-warmup",
        "i2v_warmup",
        "warmup",
        "unmeasured warm-up generations before the repeats (default: 1)",
        _non_negative_int,
        1,
        "N",
    ),
    OptionSpec(
        "--i2v-json",
        "i2v_json",
        "json_path",
        "write the results document (schema-versioned JSON) to PATH",
        _text,
        None,
        "PATH",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-report",
        "i2v_report",
        "report_path",
        "write the self-contained HTML report (inline CSS and SVG charts, no network) to PATH",
        _text,
        None,
        "PATH",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-markdown",
        "i2v_markdown",
        "markdown_path",
        "write a compact Markdown summary to PATH (e.g. $GITHUB_STEP_SUMMARY)",
        _text,
        None,
        "PATH",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-profile-dir",
        "i2v_profile_dir",
        "profile_dir",
        "directory of extra GPU profile YAML files (override shipped ones of the same name)",
        _text,
        None,
        "DIR",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-allow-profile-mismatch",
        "i2v_allow_profile_mismatch",
        "allow_profile_mismatch",
        "measure with --gpu-profile even when it does not match the detected GPU",
        _bool,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-baseline-dir",
        "i2v_baseline_dir",
        "baseline_dir",
        "directory of per-profile baseline YAML files (default: baselines/ next to the ini file)",
        _text,
        None,
        "DIR",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-update-baselines",
        "i2v_update_baselines",
        "update_baselines",
        "record this run's passing results as accepted baseline runs: append (the bare flag) or reset "
        "(drop this machine's old history of the tests that ran); the gate reports but does not fail",
        _update_mode,
        None,
        "append|reset",
        const="append",
    ),
    OptionSpec(
        "--i2v-force-baselines",
        "i2v_force_baselines",
        "force_baselines",
        "with --i2v-update-baselines: record runs flagged unreliable or measured while the "
        "machine-speed probe moved, which are otherwise left out (and the summary says so)",
        _bool,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-env-policy",
        "i2v_env_policy",
        "env_policy",
        "when the environment differs from the baseline's (driver, CUDA, torch...): warn (compare and report, "
        "do not fail; default), fail, or ignore (gate as usual)",
        _env_policy,
        None,
        "warn|fail|ignore",
    ),
    OptionSpec(
        "--i2v-gate-mode",
        "i2v_gate_mode",
        "gate_mode",
        "enforce (a regression fails its test) or report (verdicts only); default: the profile's -- GPU "
        "profiles enforce, the cpu profile reports, since a loaded CPU swings its times by several x",
        _gate_mode,
        None,
        "enforce|report",
    ),
    OptionSpec(
        "--i2v-confirm",
        "i2v_confirm",
        "confirm",
        "re-measure a test the gate flags this many times before it fails (default: the profile's, 1)",
        _non_negative_int,
        None,
        "N",
    ),
    OptionSpec(
        "--i2v-confirm-in",
        "i2v_confirm_in",
        "confirm_in",
        "where a flagged test is re-measured: fresh (a new pytest process on that test, which loads the model "
        "again: the only re-measurement that can reject a slow process) or same (this process: cheaper, "
        "shares its slow state) (default: fresh)",
        _confirm_in,
        "fresh",
        "fresh|same",
    ),
    OptionSpec(
        "--i2v-remeasure-into",
        "i2v_remeasure_into",
        "remeasure_into",
        "internal, set by the gate for its fresh-process re-measurement: measure only, write the records to "
        "PATH and nothing else (no report, no baseline)",
        _text,
        None,
        "PATH",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-safety-margin",
        "i2v_safety_margin",
        "safety_margin_gb",
        "GB of the profile's memory kept free: a test whose vram_budget does not fit memory - margin is skipped "
        "instead of run into an OOM (default: 2, as the study advises)",
        _non_negative_float,
        2.0,
        "GB",
    ),
    OptionSpec(
        "--i2v-latency-thresholds",
        "i2v_latency_thresholds",
        "latency_thresholds",
        "seconds separating the latency classes good / acceptable / too-slow (default: 30,60, the study's)",
        _thresholds,
        (30.0, 60.0),
        "GOOD,ACCEPTABLE",
    ),
    OptionSpec(
        "--i2v-gpus",
        "i2v_gpus",
        "gpus",
        "CUDA devices for pytest-xdist workers, one each: worker gwN measures on the N-th listed GPU "
        "(default: every visible GPU)",
        _gpus,
        None,
        "0,1,...",
    ),
    OptionSpec(
        "--i2v-allow-shared-gpu",
        "i2v_allow_shared_gpu",
        "allow_shared_gpu",
        "let more xdist workers than GPUs share them (VRAM adds up and times interfere)",
        _bool,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-fast",
        "i2v_fast",
        "fast",
        "fast mode: measure encode, decode and only --i2v-fast-steps denoising steps, then predict the full "
        "run (labelled predicted); the gate compares per-step time and the predicted total",
        _bool,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-fast-steps",
        "i2v_fast_steps",
        "fast_steps",
        "denoising steps measured per repeat in fast mode (default: 5)",
        _positive_int,
        5,
        "K",
    ),
    OptionSpec(
        "--i2v-target-ci",
        "i2v_target_ci",
        "target_ci_pct",
        "adaptive repeats: stop once the 95 % confidence interval of the median time is narrower than this "
        "percentage of the median (default: off, fixed --i2v-repeats)",
        _positive_float,
        None,
        "PCT",
    ),
    OptionSpec(
        "--i2v-min-repeats",
        "i2v_min_repeats",
        "min_repeats",
        "adaptive repeats: at least this many (default: 3)",
        _positive_int,
        3,
        "N",
    ),
    OptionSpec(
        "--i2v-max-repeats",
        "i2v_max_repeats",
        "max_repeats",
        "adaptive repeats: at most this many (default: 15)",
        _positive_int,
        15,
        "N",
    ),
    OptionSpec(
        "--i2v-allow-pickle",
        "i2v_allow_pickle",
        "allow_pickle",
        "let from_pretrained load pickle weights (.bin/.pt/.ckpt), which can run code; safetensors only otherwise",
        _bool,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-lock-clocks",
        "i2v_lock_clocks",
        "lock_clocks",
        "lock the GPU's SM clock (and memory clock where supported) at its default applications clock through "
        "NVML for the session, restored at its end; needs root (else one warning, and the run goes on unlocked)",
        _bool,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-signature",
        "i2v_signature",
        "signature",
        "the work signature: one extra, untimed generation per test under torch.profiler (ops, shapes, dtypes, "
        "counts per stage), compared with the baseline's: on or off (default: the profile's; on, except on CPU "
        "profiles)",
        _on_off,
        None,
        "on|off",
    ),
    OptionSpec(
        "--i2v-roofline",
        "i2v_roofline",
        "roofline",
        "the roofline: count the FLOPs of one step and of the decode once per generation shape (an unmeasured "
        "one-step generation under torch's FLOP counter) and report the achieved TFLOP/s against the profile's "
        "peak: on or off (default: the profile's; on, except on CPU profiles)",
        _on_off,
        None,
        "on|off",
    ),
    OptionSpec(
        "--i2v-input-image",
        "i2v_input_image",
        "input_image",
        "conditioning image file (default: a deterministic 768x768 synthetic portrait)",
        _text,
        None,
        "PATH",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-benchmark-tables",
        "i2v_benchmark_tables",
        "benchmark_tables",
        "pytest-benchmark's tables for the i2v tests, printed before the i2v results: "
        "on, off (its JSON and storage still get every test), or auto: shown when a "
        "--benchmark-* option is given, and for a test that asks for benchmark itself "
        "(default: auto)",
        _benchmark_tables,
        "auto",
        "on|off|auto",
    ),
)


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

    def to_dict(self) -> dict[str, Any]:
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
    """Options that contradict each other: usage errors, whatever the tests."""
    if settings.fast and settings.update_baselines:
        raise I2VUsageError(
            "--i2v-update-baselines with --i2v-fast: baselines hold measured runs, and fast mode predicts "
            "the total; re-baseline without --i2v-fast"
        )
    if settings.target_ci_pct is not None and settings.min_repeats > settings.max_repeats:
        raise I2VUsageError(
            f"--i2v-min-repeats {settings.min_repeats} is more than --i2v-max-repeats {settings.max_repeats}"
        )
    return settings
