"""A tiny random model directory of any supported pipeline, for CPU runs of a user's own tests
(``python -m pytest_i2v tiny-model NAME DIR``; ``pytest_i2v.save_tiny_model``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.pipelines.base import adapter_for
from pytest_i2v.pipelines.loading import TINY_MARKER
from pytest_i2v.pipelines.registry import check_pipeline_name


def save_tiny_model(pipeline: str, directory: str | os.PathLike[str]) -> Path:
    """Build ``pipeline``'s tiny random model (the one ``--i2v-model tiny`` loads) and save it as a
    diffusers directory (``model_index.json``, safetensors) at ``directory``, which must not exist
    or be empty. Returns the directory. Written beside it first and renamed, so an interrupted
    build leaves nothing half-written."""
    check_pipeline_name(pipeline, origin="pipeline")
    target = Path(directory).expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise I2VUsageError(
            f"{target}: exists and is not an empty directory; choose a new path "
            f"(nothing was written)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        built = adapter_for(pipeline).save_tiny(staging)
        # what it is, for the record's provenance when it is loaded as a directory
        (built / TINY_MARKER).write_text(f"{pipeline}\n", encoding="utf-8")
        if target.exists():
            target.rmdir()
        os.replace(built, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
