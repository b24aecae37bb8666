"""Writing the planned starter: every file or none, never over a file that exists."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.starter.plan import Starter


def write_starter(starter: Starter) -> list[Path]:
    """Write every file or none: a file that exists (or appears meanwhile) is never overwritten."""
    targets = [starter.directory / path for path in starter.files]
    existing = [str(t) for t in targets if t.exists() or t.is_symlink()]
    if existing:
        raise I2VUsageError(
            f"refusing to overwrite {', '.join(existing)}; move them away (nothing was written), "
            f"or run init with --dir elsewhere"
        )
    written: list[Path] = []
    try:
        for target, text in zip(targets, starter.files.values(), strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            _create_atomic(target, text)
            written.append(target)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise I2VUsageError(
            f"could not write {exc.filename or 'the starter'}: {exc.strerror or exc}; "
            f"nothing was written"
        ) from None
    return written


def _create_atomic(target: Path, text: str) -> None:
    """A complete file at ``target`` or none: written aside, then linked in (which fails where the
    name exists, as a rename would not)."""
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.link(temporary, target)
    finally:
        os.unlink(temporary)


def init_report(starter: Starter, written: list[Path]) -> str:
    lines = [f"wrote {len(written)} files in {starter.directory}:"]
    lines += [f"  {path}" for path in starter.files]
    lines += ["next:"] + [f"  {note}" for note in starter.notes]
    return "\n".join(lines)
