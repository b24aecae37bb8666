"""Which pipeline a model is: from a diffusers ``model_index.json`` (its ``_class_name`` and the
keys that tell pipelines of one class apart), a directory, a published hub id or a class's
bases."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_i2v.pipelines.registry import BUILTIN_SOURCES, PIPELINES


def pipeline_from_model_index(index: Mapping[str, Any]) -> str | None:
    """The pipeline a diffusers ``model_index.json`` describes (its ``_class_name``, then the hint
    keys that tell pipelines of one class apart, e.g. Wan 2.2's second expert), or None."""
    class_name = index.get("_class_name")
    components = {key: _component_class(entry) for key, entry in index.items()}
    return _pipeline_of_class(class_name if isinstance(class_name, str) else None, components)


def _component_class(entry: Any) -> str | None:
    """model_index.json lists a component as [library, class] or [null, null] when absent."""
    if isinstance(entry, list) and len(entry) == 2:
        return entry[1] if isinstance(entry[1], str) else None
    return None


def _pipeline_of_class(class_name: str | None, components: Mapping[str, str | None]) -> str | None:
    """``components``: each model_index key's class name (None: absent or not a component)."""
    candidates = [
        p
        for p in PIPELINES.values()
        if class_name == p.pipeline_class or class_name in p.also_loads
    ]
    for info in candidates:
        if all(components.get(key) == want for key, want in info.model_index_hint.items()):
            return info.name
    return candidates[0].name if candidates else None


def pipeline_of_directory(path: Path) -> str | None:
    index_file = path / "model_index.json"
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return pipeline_from_model_index(index) if isinstance(index, dict) else None


def pipeline_of_hub_id(source: str) -> str | None:
    return next((p.name for p in PIPELINES.values() if p.hub_id.lower() == source.lower()), None)


def class_of_directory(path: Path) -> str | None:
    """The ``_class_name`` a diffusers directory's model_index.json names (None when unreadable)."""
    try:
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = index.get("_class_name") if isinstance(index, dict) else None
    return name if isinstance(name, str) else None


def pipeline_of_class_names(
    names: list[str], components: Mapping[str, str | None] | None = None
) -> str | None:
    """The pipeline of the first of ``names`` (a class and its bases, in MRO order) that the
    registry knows; ``components`` (a model_index's component classes) tell pipelines of one class
    apart."""
    for name in names:
        found = _pipeline_of_class(name, components or {})
        if found is not None:
            return found
    return None


def pipeline_of_source(source: str) -> str | None:
    """The pipeline a directory's model_index.json or a known hub id belongs to (None for
    builtins)."""
    if source in BUILTIN_SOURCES:
        return None
    path = Path(source).expanduser()
    if path.is_dir():
        return pipeline_of_directory(path)
    return pipeline_of_hub_id(source)
