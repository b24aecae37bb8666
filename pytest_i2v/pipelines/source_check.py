"""``--i2v-model`` checked at configure time, so a typo is a usage error, not a test error: a
builtin, a diffusers directory (with safetensors weights unless pickle is allowed) or a hub id.

Pure: it reads the file system only."""

from __future__ import annotations

import os
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.pipelines.registry import BUILTIN_SOURCES

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or (os.sep in source and Path(source).exists())


def check_model_source(source: str, allow_pickle: bool = False) -> str:
    """Validate a source early (at configure time), so a typo is a usage error, not a test error."""
    if source in BUILTIN_SOURCES:
        return source
    path = Path(source).expanduser()
    if _looks_like_path(source) or path.exists():
        if not path.is_dir():
            raise I2VUsageError(
                f"--i2v-model {source}: no such directory; point it at a diffusers I2VGen-XL "
                "directory (huggingface-cli download ali-vilab/i2vgen-xl --local-dir DIR) "
                "or use 'random' / 'tiny'"
            )
        if not (path / "model_index.json").is_file():
            raise I2VUsageError(
                f"--i2v-model {source}: not a diffusers pipeline directory (no model_index.json); "
                f"point it at the folder that holds model_index.json"
            )
        # A component (unet/, vae/, ...) whose weights exist only as pickle would be unpickled.
        pickled = [
            p
            for p in path.rglob("*")
            if p.suffix in PICKLE_SUFFIXES
            and p.is_file()
            and not any(q.suffix == ".safetensors" for q in p.parent.iterdir())
        ]
        if pickled and not allow_pickle:
            raise I2VUsageError(
                f"--i2v-model {source}: only pickle weights for {pickled[0].parent.name} "
                f"({pickled[0].name}), which can run code when loaded; "
                f"convert them to safetensors, or pass --i2v-allow-pickle if you trust the files"
            )
        return str(path)
    if source.count("/") != 1:
        raise I2VUsageError(
            f"--i2v-model {source!r} is neither a local directory, a hub id (owner/name), "
            "'random' nor 'tiny'"
        )
    return source
