"""The shapes of a baseline file's parts, named in its problems, the scalar its fingerprints and
runs hold, and the YAML it is written as (one run per line, so that a re-baseline reads as added
lines in a diff). Pure: no torch, no pytest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.storage import Scalar

# What each part of a baseline file holds, as its problems say: "path: entries['t::a']: expected
# a mapping with ...; got 1"
ENTRIES_SHAPE = "a mapping of test node ids to entries"
ENTRY_SHAPE = "a mapping with config_id, config and segments"
SEGMENT_SHAPE = "a mapping with fingerprint, runs and signature"
MALFORMED_FIX = "fix it or restore the file from version control"


def figure(value: Scalar) -> float | None:
    """A stored figure as the gate reads it: a number as it is (an int stays an int), anything
    else (missing, a word) not measured."""
    return value if isinstance(value, (int, float)) else None


def describe_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def malformed(where: str, place: str, expected: str, value: Any) -> I2VUsageError:
    return I2VUsageError(
        f"{where}: {place}: expected {expected}; got {describe_value(value)}; {MALFORMED_FIX}"
    )


def mapping_part(value: Any, place: str, where: str, expected: str) -> Mapping[Any, Any]:
    """A mapping part of the file (a missing or empty one is an empty mapping)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise malformed(where, place, expected, value)
    return value


def sequence_part(value: Any, place: str, where: str, expected: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise malformed(where, place, expected, value)
    return value


class _BaselineDumper(yaml.SafeDumper):
    """Runs (flat mappings of figures) one per line: a re-baseline reads as added lines."""

    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &id001 anchors: every entry reads on its own


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> Any:
    flow = (
        bool(data)
        and all(not isinstance(v, (dict, list)) for v in data.values())
        and "date" in data
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_BaselineDumper.add_representer(dict, _represent_dict)


def dump_yaml(document: Mapping[str, object]) -> str:
    """A baseline file's document as YAML (any mapping: the dumper writes what it is given)."""
    header = (
        "# pytest-i2v baselines: measured runs only. "
        "Update with --i2v-update-baselines; review the diff.\n"
    )
    return header + yaml.dump(
        dict(document), Dumper=_BaselineDumper, sort_keys=False, width=200, allow_unicode=True
    )
