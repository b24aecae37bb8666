"""The article's RTX 4090 figures as a published reference: compared for information only."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.verdict.peak import record_peak

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:  # the same protocol, at its 3.10 address
        from importlib.abc import Traversable

REFERENCE_SCHEMA = "pytest-i2v/published-reference"
# Package data, read through importlib.resources, so a non-editable or zipped install finds it.
SHIPPED_REFERENCE: Traversable = files("pytest_i2v") / "data" / "rtx4090-published.yaml"


def shipped_reference() -> dict[str, Any]:
    """The published RTX 4090 figures that ship with the package."""
    return load_reference(SHIPPED_REFERENCE)


def load_reference(path: Path | Traversable) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise I2VUsageError(
            f"published reference {path} cannot be read ({type(exc).__name__})"
        ) from None
    if (
        not isinstance(data, dict)
        or data.get("schema") != REFERENCE_SCHEMA
        or data.get("provenance") != "published"
    ):
        raise I2VUsageError(
            f"{path} is not a published reference "
            f"(schema {REFERENCE_SCHEMA!r}, provenance: published)"
        )
    return data


def _study_shape(config: Mapping[str, Any]) -> tuple[Any, ...]:
    study = config.get("study") or {}
    return (
        study.get("width", config.get("width")),
        study.get("height", config.get("height")),
        config.get("frames"),
        study.get("steps", config.get("steps")),
        config.get("guidance"),
    )


def compare_published(
    records: Iterable[Mapping[str, Any]], reference: Mapping[str, Any]
) -> dict[str, Any]:
    """Rows pairing each published figure with a measured record of the same generation.

    Never a verdict: the published numbers come from another machine, software stack and app."""
    rows = []
    records = [r for r in records if r.get("outcome") == "ok"]
    for ref in reference.get("rows", []):
        shape = (ref["width"], ref["height"], ref["frames"], ref["steps"], ref["guidance"])
        matches = [
            r
            for r in records
            if _study_shape(r["config"]) == shape
            and (ref.get("dtype") is None or r["config"].get("dtype") == ref["dtype"])
            and not r["config"].get("memory")
        ]
        row: dict[str, Any] = {
            "label": ref["label"],
            "published_time_s": ref.get("time_s"),
            "published_peak_vram_gb": ref.get("peak_vram_gb"),
            "measured": None,
        }
        if matches:
            record = matches[0]
            measured_peak = record_peak(record).bytes
            row["measured"] = {
                "nodeid": record["nodeid"],
                "time_s": record.get("time_s"),
                "provenance": record["config"].get("provenance"),
                "peak_gb": measured_peak / 1e9 if measured_peak else None,
                "time_ratio": record["time_s"] / ref["time_s"]
                if record.get("time_s") and ref.get("time_s")
                else None,
            }
        rows.append(row)
    comparable = [r for r in records if r["config"].get("provenance") != "tiny-random-weights"]
    note = (
        None
        if comparable
        else "measured on the tiny model (scaled study): not comparable with the published figures"
    )
    return {
        "provenance": "published",
        "source": reference.get("source"),
        "hardware": reference.get("hardware"),
        "rows": rows if comparable else [],
        "note": note,
    }
