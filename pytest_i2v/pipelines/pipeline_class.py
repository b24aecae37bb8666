"""A user's own pipeline class (``--i2v-pipeline-class`` / ini ``i2v_pipeline_class``): the
setting parsed, each class imported once at configure, so a typo is a usage error before anything
is measured, and placed on the supported pipeline it derives from (its adapter calls, times and
checks it)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.pipelines.identify import pipeline_of_class_names
from pytest_i2v.pipelines.registry import PIPELINES, check_pipeline_name

ORIGIN = "i2v_pipeline_class"


def parse_pipeline_classes(text: str) -> tuple[str | None, dict[str, str]]:
    """``i2v_pipeline_class``: a user's own pipeline class as ``module:Class``, per pipeline as
    ``NAME=module:Class`` entries separated by commas, optionally after one bare class (whose
    pipeline is the supported class it derives from). Returns (the bare class or None, {pipeline:
    class})."""
    bare: str | None = None
    per_pipeline: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, target = part.rpartition("=")
        target = target.strip()
        module, colon, attribute = target.partition(":")
        if not module.strip() or not colon or not attribute.strip():
            raise I2VUsageError(
                f"{part!r} is not [NAME=]module:Class; write e.g. "
                f"wan2.1-i2v=acme.pipelines:AcmeWanI2VPipeline"
            )
        if not sep:
            if bare is not None:
                raise I2VUsageError(
                    f"{ORIGIN} {text!r}: two classes without a pipeline name; "
                    f"name the second one, e.g. svd={part}"
                )
            bare = target
            continue
        check_pipeline_name(name.strip(), origin=f"{ORIGIN} entry")
        per_pipeline[name.strip()] = target
    return bare, per_pipeline


def import_pipeline_class(target: str) -> Any:
    """``module:Class`` -> the class (one line naming the culprit when it does not import)."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name.strip())
    except Exception as exc:  # the user's module: any error in it is theirs to see in one line
        raise I2VUsageError(
            f"{ORIGIN} {target}: cannot import {module_name.strip()} "
            f"({type(exc).__name__}: {exc}); install your package or add its "
            f"folder to pytest's pythonpath ini"
        ) from None
    found: Any = module
    for part in attribute.strip().split("."):
        found = getattr(found, part, None)
    if not isinstance(found, type) or not callable(getattr(found, "from_pretrained", None)):
        raise I2VUsageError(
            f"{ORIGIN} {target}: {module_name.strip()} has no pipeline class "
            f"{attribute.strip()} (a class with from_pretrained)"
        )
    return found


@dataclass(frozen=True)
class PipelineClasses:
    """Which class loads each pipeline, and which ``_class_name`` maps to which pipeline."""

    by_pipeline: tuple[tuple[str, str], ...] = ()  # pipeline -> "module:Class"
    by_class_name: tuple[tuple[str, str], ...] = ()  # "AcmeWanI2VPipeline" -> pipeline

    def target_for(self, pipeline: str) -> str | None:
        return dict(self.by_pipeline).get(pipeline)

    def pipeline_of_class_name(self, class_name: str) -> str | None:
        return dict(self.by_class_name).get(class_name)


def resolve_pipeline_classes(text: str | None) -> PipelineClasses:
    """Import every class the setting names; a bare one belongs to the supported pipeline whose
    diffusers class it derives from."""
    if not text:
        return PipelineClasses()
    bare, per_pipeline = parse_pipeline_classes(text)
    entries = dict(per_pipeline)
    if bare is not None:
        cls = import_pipeline_class(bare)
        owner = pipeline_of_class_names([c.__name__ for c in cls.__mro__])
        if owner is None:
            raise I2VUsageError(
                f"{ORIGIN} {bare}: {cls.__name__} derives from no supported diffusers pipeline "
                f"class; name its pipeline, e.g. wan2.1-i2v={bare} (one of {', '.join(PIPELINES)})"
            )
        entries.setdefault(owner, bare)
    names = []
    for pipeline, target in entries.items():
        names.append((import_pipeline_class(target).__name__, pipeline))
    return PipelineClasses(tuple(sorted(entries.items())), tuple(names))
