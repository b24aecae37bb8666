"""``--i2v-model`` as settings: one source or per-pipeline ``NAME=SOURCE`` entries, the pipeline of
unmarked tests, and the source each pipeline loads from."""

from __future__ import annotations

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.pipelines.identify import pipeline_of_source
from pytest_i2v.pipelines.registry import (
    BUILTIN_SOURCES,
    DEFAULT_PIPELINE,
    PIPELINES,
    check_pipeline_name,
)


def parse_model_sources(text: str) -> tuple[str | None, dict[str, str]]:
    """``--i2v-model``: one source (``tiny``, ``random``, a directory or a hub id), or per-pipeline
    ``NAME=SOURCE`` entries separated by commas, optionally after a bare default:
    ``random,svd=/models/svd``. Returns (the bare source or None, {pipeline: source})."""
    default: str | None = None
    per_pipeline: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise I2VUsageError(
                f"--i2v-model {text!r}: an empty entry; separate NAME=SOURCE entries "
                "with single commas"
            )
        name, sep, source = part.partition("=")
        if not sep:
            if default is not None:
                raise I2VUsageError(
                    f"--i2v-model {text!r}: two sources without a pipeline name "
                    f"({default}, {part}); name the second one, e.g. svd={part}"
                )
            default = part
            continue
        check_pipeline_name(name.strip(), origin="--i2v-model entry")
        if not source.strip():
            raise I2VUsageError(f"--i2v-model {part!r}: no source after '='")
        per_pipeline[name.strip()] = source.strip()
    return default, per_pipeline


def session_pipeline(
    option: str | None, default_source: str | None, profile_pipeline: str | None
) -> str:
    """The pipeline of unmarked tests: ``--i2v-pipeline``/ini, else the one a ``--i2v-model``
    directory or known hub id is, else the profile's, else I2VGen-XL."""
    if option is not None:
        return option
    owner = pipeline_of_source(default_source) if default_source else None
    return owner or profile_pipeline or DEFAULT_PIPELINE


def source_for(
    pipeline: str,
    session: str,
    default: str | None,
    per_pipeline: dict[str, str],
    profile_model: str,
    profile_pipeline: str | None = None,
) -> str:
    """The model source a pipeline loads from: its own ``NAME=SOURCE`` entry; else the bare source
    when it is a builtin or belongs to this pipeline (a source we cannot place belongs to the
    session's pipeline); else the profile's model likewise (a profile's model is its own pipeline's,
    I2VGen-XL's unless it says); else the pipeline's published hub id."""
    if pipeline in per_pipeline:
        return per_pipeline[pipeline]
    for candidate, unknown_owner in (
        (default, session),
        (profile_model, profile_pipeline or DEFAULT_PIPELINE),
    ):
        if candidate is None:
            continue
        owner = pipeline_of_source(candidate) or unknown_owner
        if candidate in BUILTIN_SOURCES or owner == pipeline:
            return candidate
    return PIPELINES[pipeline].hub_id
