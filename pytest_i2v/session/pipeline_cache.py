"""Loaded pipelines, one per (pipeline, source, dtype, placement, load-time options, class),
shared by the tests that need them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pytest_i2v.errors import OptionUnavailable
from pytest_i2v.generation.marks import GenerationSpec
from pytest_i2v.measure.device import Device
from pytest_i2v.measure.memory import free_device_memory
from pytest_i2v.pipelines import PIPELINES, unsupported_reason
from pytest_i2v.pipelines.loading import LoadedPipeline, PipelineKey, checked_load
from pytest_i2v.pipelines.memory_toggles import apply_toggles, reset_toggles
from pytest_i2v.storage import JsonValue

# diffusers is imported inside unsupported(): it takes seconds to import, and only a test that
# loads a pipeline needs it.

Loader = Callable[[PipelineKey, Path], LoadedPipeline]


class PipelineCache:
    def __init__(
        self,
        loader: Loader,
        device: Device,
        source_for: Callable[[str], str],
        default_dtype: str,
        work_dir: Path,
        class_for: Callable[[str], str | None] = lambda pipeline: None,
    ):
        self._loader = loader
        self._class_for = class_for
        self._device = device
        self._source_for = source_for
        self._default_dtype = default_dtype
        self._work_dir = work_dir
        self._pipelines: dict[PipelineKey, LoadedPipeline] = {}
        self.loads: list[dict[str, JsonValue]] = []  # each load, for the results document

    def key_for(self, spec: GenerationSpec) -> PipelineKey:
        return PipelineKey(
            source=self._source_for(spec.pipeline),
            dtype=spec.dtype or self._default_dtype,
            device=self._device.placement,
            offload=spec.offload,
            pipeline=spec.pipeline,
            load_options=spec.load_options,
            pipeline_class=self._class_for(spec.pipeline),
        )

    @staticmethod
    def unsupported(spec: GenerationSpec) -> str | None:
        """Why ``spec`` cannot run here: a pipeline the installed diffusers lacks, or an option
        its pipeline lacks."""
        import diffusers

        info = PIPELINES[spec.pipeline]
        return unsupported_reason(
            info,
            spec.memory,
            spec.attention,
            diffusers.__version__,
            hasattr(diffusers, info.pipeline_class),
        )

    def get(self, key: PipelineKey) -> LoadedPipeline:
        if key not in self._pipelines:
            if self._device.is_cuda:
                # One full-size pipeline fills a consumer GPU: drop the others before loading.
                self._pipelines.clear()
                free_device_memory(self._device)
            with self._device.activate():
                # whoever loaded it, the record says what the modules show of each option
                loaded = checked_load(self._loader(key, self._work_dir))
            self._pipelines[key] = loaded
            self.loads.append(
                {
                    "key": key.describe(),
                    "load_s": loaded.load_s,
                    "provenance": loaded.provenance,
                    "loaded_by": loaded.loaded_by,
                    "applied_options": [c.to_dict() for c in loaded.applied],
                }
            )
        return self._pipelines[key]

    def prepare(self, spec: GenerationSpec) -> LoadedPipeline:
        """The pipeline for ``spec`` with its per-test toggles applied (``release`` undoes them)."""
        loaded = self.get(self.key_for(spec))
        reset_toggles(loaded.pipe, spec.pipeline)
        try:
            apply_toggles(loaded.pipe, spec.toggles, spec.pipeline, spec.attention, spec.cache)
        except OptionUnavailable:
            reset_toggles(
                loaded.pipe, spec.pipeline
            )  # the shared pipeline stays as the next test expects
            raise
        return loaded

    @staticmethod
    def release(loaded: LoadedPipeline) -> None:
        reset_toggles(loaded.pipe, loaded.key.pipeline)

    def evict(self, key: PipelineKey) -> None:
        """Drop a cached pipeline (reloaded when a test needs it again) and free its memory."""
        self._pipelines.pop(key, None)
        free_device_memory(self._device)
