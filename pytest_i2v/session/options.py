"""The table of pytest-i2v's options: each one's command-line flag, ini key, ``Settings`` field,
help text (shared by ``--help`` and the ini key), parser and default. ``plugin`` registers them
with pytest; ``settings.resolve_settings`` reads them back into one ``Settings``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_i2v.session.option_values import (
    benchmark_tables,
    boolean,
    confirm_in,
    device_name,
    dtype_name,
    env_policy,
    gate_mode,
    gpu_list,
    latency_thresholds,
    model_sources,
    non_empty_text,
    non_negative_float,
    non_negative_int,
    on_off,
    pipeline_classes,
    pipeline_name,
    positive_float,
    positive_int,
    update_mode,
)


@dataclass(frozen=True)
class OptionSpec:
    flag: str  # command-line flag: --i2v-NAME (--gpu-profile, the one without the prefix)
    dest: str  # Settings field
    help: str
    parse: Callable[[str], Any]
    default: Any = None
    metavar: str | None = None
    is_flag: bool = False  # store_true on the command line
    const: str | None = None  # the value of a bare flag whose value is optional
    is_path: bool = False  # relative ini values resolve against the ini file's directory

    @property
    def ini(self) -> str:
        """The ini key: the flag's name behind ``i2v_``, --i2v-fast-steps -> i2v_fast_steps."""
        return "i2v_" + self.flag.removeprefix("--").removeprefix("i2v-").replace("-", "_")


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "--gpu-profile",
        "gpu_profile",
        "GPU profile to measure against: a name (rtx4090, a100-80gb, cpu, ...) or 'auto' for the "
        "detected GPU (default: auto)",
        non_empty_text,
        "auto",
        "NAME|auto",
    ),
    OptionSpec(
        "--i2v-model",
        "model",
        "model source: a hub id, a local diffusers directory, 'random' (full-size, random "
        "weights) or 'tiny'; per pipeline as NAME=SOURCE entries, e.g. 'random,svd=/models/svd' "
        "(default: the profile's; a pipeline the source is not for loads its published hub id)",
        model_sources,
        None,
        "SOURCE",
    ),
    OptionSpec(
        "--i2v-pipeline",
        "pipeline",
        "pipeline of tests whose i2v mark names none: i2vgen-xl, svd, wan2.1-i2v, wan2.2-i2v, "
        "ltx-video, cogvideox-i2v or hunyuanvideo-i2v (default: the --i2v-model directory's, else "
        "the profile's, else i2vgen-xl)",
        pipeline_name,
        None,
        "NAME",
    ),
    OptionSpec(
        "--i2v-pipeline-class",
        "pipeline_class",
        "your own pipeline class, loaded with its from_pretrained and given every memory "
        "option, compile and placement the plugin applies: module:Class (its pipeline: the "
        "supported class it derives from) or NAME=module:Class entries; a model_index.json "
        "naming the class maps to that pipeline",
        pipeline_classes,
        None,
        "[NAME=]MODULE:CLASS",
    ),
    OptionSpec(
        "--i2v-device",
        "device",
        "device to run on: cpu, cuda or cuda:N (default: the profile's, cuda when available)",
        device_name,
        None,
        "DEVICE",
    ),
    OptionSpec(
        "--i2v-dtype",
        "dtype",
        "weights dtype: fp16, bf16 or fp32 (default: the profile's; a mark's dtype wins)",
        dtype_name,
        None,
        "fp16|bf16|fp32",
    ),
    OptionSpec(
        "--i2v-repeats",
        "repeats",
        "measured repeats per generation (default: the profile's: 5 like the study on GPU "
        "profiles, 3 on the cpu profile)",
        positive_int,
        None,
        "N",
    ),
    OptionSpec(
        "--i2v-warmup",
        "warmup",
        "unmeasured warm-up generations before the repeats (default: 1)",
        non_negative_int,
        1,
        "N",
    ),
    OptionSpec(
        "--i2v-json",
        "json_path",
        "write the results document (schema-versioned JSON) to PATH",
        non_empty_text,
        None,
        "PATH",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-report",
        "report_path",
        "write the self-contained HTML report (inline CSS and SVG charts, no network) to PATH",
        non_empty_text,
        None,
        "PATH",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-markdown",
        "markdown_path",
        "write a compact Markdown summary to PATH (e.g. $GITHUB_STEP_SUMMARY)",
        non_empty_text,
        None,
        "PATH",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-history",
        "history_url",
        "add the session's results as one run to the history database at URL: sqlite:///PATH "
        "or postgresql://USER:PASSWORD@HOST/DB (python -m pytest_i2v history list)",
        non_empty_text,
        None,
        "URL",
    ),
    OptionSpec(
        "--i2v-profile-dir",
        "profile_dir",
        "directory of extra GPU profile YAML files (override shipped ones of the same name)",
        non_empty_text,
        None,
        "DIR",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-allow-profile-mismatch",
        "allow_profile_mismatch",
        "measure with --gpu-profile even when it does not match the detected GPU",
        boolean,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-baseline-dir",
        "baseline_dir",
        "directory of per-profile baseline YAML files (default: baselines/ next to the ini file)",
        non_empty_text,
        None,
        "DIR",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-update-baselines",
        "update_baselines",
        "record this run's passing results as accepted baseline runs: append (the bare flag) or "
        "reset (drop this machine's old history of the tests that ran); the gate reports but does "
        "not fail",
        update_mode,
        None,
        "append|reset",
        const="append",
    ),
    OptionSpec(
        "--i2v-force-baselines",
        "force_baselines",
        "with --i2v-update-baselines: record runs flagged unreliable or measured while the "
        "machine-speed probe moved, which are otherwise left out (and the summary says so)",
        boolean,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-env-policy",
        "env_policy",
        "when the environment differs from the baseline's (driver, CUDA, torch...): warn (compare "
        "and report, do not fail; default), fail, or ignore (gate as usual)",
        env_policy,
        None,
        "warn|fail|ignore",
    ),
    OptionSpec(
        "--i2v-gate-mode",
        "gate_mode",
        "enforce (a regression fails its test) or report (verdicts only); default: the profile's "
        "-- GPU profiles enforce, the cpu profile reports, since a loaded CPU swings its times by "
        "several x",
        gate_mode,
        None,
        "enforce|report",
    ),
    OptionSpec(
        "--i2v-confirm",
        "confirm",
        "re-measure a test the gate flags this many times before it fails (default: the "
        "profile's, 1)",
        non_negative_int,
        None,
        "N",
    ),
    OptionSpec(
        "--i2v-confirm-in",
        "confirm_in",
        "where a flagged test is re-measured: fresh (a new pytest process on that test, which "
        "loads the model again: the only re-measurement that can reject a slow process) or same "
        "(this process: cheaper, shares its slow state) (default: fresh)",
        confirm_in,
        "fresh",
        "fresh|same",
    ),
    OptionSpec(
        "--i2v-remeasure-into",
        "remeasure_into",
        "internal, set by the gate for its fresh-process re-measurement: measure only, write the "
        "records to PATH and nothing else (no report, no baseline)",
        non_empty_text,
        None,
        "PATH",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-safety-margin",
        "safety_margin_gb",
        "GB of the profile's memory kept free: a test whose vram_budget does not fit memory - "
        "margin is skipped instead of run into an OOM (default: 2, as the study advises)",
        non_negative_float,
        2.0,
        "GB",
    ),
    OptionSpec(
        "--i2v-latency-thresholds",
        "latency_thresholds",
        "seconds separating the latency classes good / acceptable / too-slow (default: 30,60, the "
        "study's)",
        latency_thresholds,
        (30.0, 60.0),
        "GOOD,ACCEPTABLE",
    ),
    OptionSpec(
        "--i2v-gpus",
        "gpus",
        "CUDA devices for pytest-xdist workers, one each: worker gwN measures on the N-th listed "
        "GPU (default: every visible GPU)",
        gpu_list,
        None,
        "0,1,...",
    ),
    OptionSpec(
        "--i2v-allow-shared-gpu",
        "allow_shared_gpu",
        "let more xdist workers than GPUs share them (VRAM adds up and times interfere)",
        boolean,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-fast",
        "fast",
        "fast mode: measure encode, decode and only --i2v-fast-steps denoising steps, then "
        "predict the full run (labelled predicted); the gate compares per-step time and the "
        "predicted total",
        boolean,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-fast-steps",
        "fast_steps",
        "denoising steps measured per repeat in fast mode (default: 5)",
        positive_int,
        5,
        "K",
    ),
    OptionSpec(
        "--i2v-target-ci",
        "target_ci_pct",
        "adaptive repeats: stop once the 95 % confidence interval of the median time is narrower "
        "than this percentage of the median (default: off, fixed --i2v-repeats)",
        positive_float,
        None,
        "PCT",
    ),
    OptionSpec(
        "--i2v-min-repeats",
        "min_repeats",
        "adaptive repeats: at least this many (default: 3)",
        positive_int,
        3,
        "N",
    ),
    OptionSpec(
        "--i2v-max-repeats",
        "max_repeats",
        "adaptive repeats: at most this many (default: 15)",
        positive_int,
        15,
        "N",
    ),
    OptionSpec(
        "--i2v-allow-pickle",
        "allow_pickle",
        "let from_pretrained load pickle weights (.bin/.pt/.ckpt), which can run code; "
        "safetensors only otherwise",
        boolean,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-lock-clocks",
        "lock_clocks",
        "lock the GPU's SM clock (and memory clock where supported) at its default applications "
        "clock through NVML for the session, restored at its end; needs root (else one warning, "
        "and the run goes on unlocked)",
        boolean,
        False,
        is_flag=True,
    ),
    OptionSpec(
        "--i2v-signature",
        "signature",
        "the work signature: one extra, untimed generation per test under torch.profiler (ops, "
        "shapes, dtypes, counts per stage), compared with the baseline's: on or off (default: the "
        "profile's; on, except on CPU profiles)",
        on_off,
        None,
        "on|off",
    ),
    OptionSpec(
        "--i2v-roofline",
        "roofline",
        "the roofline: count the FLOPs of one step and of the decode once per generation shape "
        "(an unmeasured one-step generation under torch's FLOP counter) and report the achieved "
        "TFLOP/s against the profile's peak: on or off (default: the profile's; on, except on CPU "
        "profiles)",
        on_off,
        None,
        "on|off",
    ),
    OptionSpec(
        "--i2v-input-image",
        "input_image",
        "conditioning image file (default: a deterministic 768x768 synthetic portrait)",
        non_empty_text,
        None,
        "PATH",
        is_path=True,
    ),
    OptionSpec(
        "--i2v-benchmark-tables",
        "benchmark_tables",
        "pytest-benchmark's tables for the i2v tests, printed before the i2v results: "
        "on, off (its JSON and storage still get every test), or auto: shown when a "
        "--benchmark-* option is given, and for a test that asks for benchmark itself "
        "(default: auto)",
        benchmark_tables,
        "auto",
        "on|off|auto",
    ),
)
