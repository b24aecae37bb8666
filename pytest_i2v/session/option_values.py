"""How the text of an option (command line or ini) becomes its value: one parser per kind of value.

Each parser takes the raw text and returns the value, or raises ``ValueError`` with a message
that says what to use instead; ``settings.resolve_settings`` turns it into an ``I2VUsageError``
naming the option."""

from __future__ import annotations

from pytest_i2v.generation.marks import DTYPES
from pytest_i2v.pipelines import PIPELINES, parse_model_sources, parse_pipeline_classes
from pytest_i2v.session.gpus import parse_gpu_list

# The study is imported inside latency_thresholds: its package loads numpy (the cost model), and
# the plugin imports this module in every pytest run, i2v tests or not.


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be >= 1")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def dtype_name(text: str) -> str:
    if text not in DTYPES:
        raise ValueError(f"use one of {', '.join(DTYPES)}")
    return text


def pipeline_name(text: str) -> str:
    if text.strip() not in PIPELINES:
        raise ValueError(f"unknown pipeline; use one of {', '.join(PIPELINES)}")
    return text.strip()


def model_sources(text: str) -> str:
    parse_model_sources(text.strip())  # a malformed NAME=SOURCE list is a usage error at configure
    return text.strip()


def pipeline_classes(text: str) -> str:
    parse_pipeline_classes(text.strip())  # a malformed entry is a usage error at configure
    return text.strip()


def device_name(text: str) -> str:
    if text != "cpu" and text != "cuda" and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise ValueError("use cpu, cuda or cuda:N")
    return text


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("use true or false")


def update_mode(text: str) -> str | None:
    lowered = text.strip().lower()
    if lowered in ("", "off", "false", "no", "0"):
        return None
    if lowered in ("append", "reset"):
        return lowered
    raise ValueError(
        "use append (record this run in the history) or reset (drop this machine's old history)"
    )


def on_off(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise ValueError("use on or off")
    return lowered in ("on", "true", "1", "yes")


def benchmark_tables(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("on", "off", "auto"):
        raise ValueError("use on, off or auto")
    return lowered


def gate_mode(text: str) -> str:
    if text not in ("enforce", "report"):
        raise ValueError("use enforce (a regression fails its test) or report (verdicts only)")
    return text


def confirm_in(text: str) -> str:
    if text not in ("fresh", "same"):
        raise ValueError("use fresh or same")
    return text


def env_policy(text: str) -> str:
    if text not in ("warn", "fail", "ignore"):
        raise ValueError("use warn (compare and report), fail, or ignore")
    return text


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be a number >= 0")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a number > 0")
    return value


def latency_thresholds(text: str) -> tuple[float, float]:
    from pytest_i2v.study import parse_thresholds

    return parse_thresholds(text)


def gpu_list(text: str) -> tuple[int, ...]:
    return parse_gpu_list(text)


def non_empty_text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()
