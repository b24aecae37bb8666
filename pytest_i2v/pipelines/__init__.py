"""The pipelines the plugin measures: the registry of pipelines and their rules (pure data), one
adapter module per pipeline that builds, loads and calls it, and the loading shared by all.

Pure (no torch, no diffusers): ``registry`` (names, classes, native settings, memory options),
``constraints`` (what each real model accepts), ``identify`` (which pipeline a model is),
``source_settings`` (``--i2v-model``), ``pipeline_class`` (a user's own class), ``support``
(whether a generation can run here), ``source_check``.

With torch, imported only when a pipeline is built or loaded: ``base`` (the adapter interface),
the adapters (``i2vgen_xl``, ``svd``, ``wan``, ``ltx_video``, ``cogvideox``, ``hunyuan_video``)
and I2VGen-XL's builders (``i2vgen_xl_tiny``, ``i2vgen_xl_fullsize``, ``i2vgen_xl_compat``),
``loading`` (a key to a loaded pipeline), ``applied_options`` (what the load really applied),
``memory_toggles``, ``tiny_model`` and ``tokenizers``. Component configs ship under
``configs/``."""

from pytest_i2v.pipelines.constraints import Constraints
from pytest_i2v.pipelines.identify import (
    class_of_directory,
    pipeline_of_directory,
    pipeline_of_hub_id,
    pipeline_of_source,
)
from pytest_i2v.pipelines.pipeline_class import parse_pipeline_classes
from pytest_i2v.pipelines.registry import (
    BUILTIN_SOURCES,
    DEFAULT_PIPELINE,
    PIPELINES,
    Native,
    PipelineInfo,
    cache_names,
    check_pipeline_name,
    marker_help_line,
    pipeline_names,
)
from pytest_i2v.pipelines.source_settings import parse_model_sources, session_pipeline, source_for
from pytest_i2v.pipelines.support import unsupported_reason

__all__ = [
    "BUILTIN_SOURCES",
    "DEFAULT_PIPELINE",
    "PIPELINES",
    "Constraints",
    "Native",
    "PipelineInfo",
    "cache_names",
    "check_pipeline_name",
    "class_of_directory",
    "marker_help_line",
    "parse_model_sources",
    "parse_pipeline_classes",
    "pipeline_names",
    "pipeline_of_directory",
    "pipeline_of_hub_id",
    "pipeline_of_source",
    "session_pipeline",
    "source_for",
    "unsupported_reason",
]
