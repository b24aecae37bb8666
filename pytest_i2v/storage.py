"""What every file pytest-i2v writes or reads shares: atomic writes, schema checks and safe profile
names (a profile name is also the name of its baseline file)."""

from __future__ import annotations

import os
import re
import stat
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias, cast

from pytest_i2v.errors import I2VUsageError

# A YAML/JSON scalar: what a fingerprint key, a baseline run's field or a generation setting holds
# (a figure, a date, a commit, an NVML scope, a word).
Scalar: TypeAlias = str | int | float | bool | None
# A value as JSON holds it: what the results, A/B and report documents are made of (read-only
# containers, so that a dict of str or a list of records is one).
JsonValue: TypeAlias = (
    "str | int | float | bool | Sequence[JsonValue] | Mapping[str, JsonValue] | None"
)
# The session's environment: the machine and library facts (measure.environment) and the keys the
# pytest_i2v_environment hook adds, each a JSON scalar (the results document adds the probe).
Environment: TypeAlias = "dict[str, Scalar]"


def as_json(document: Mapping[str, object]) -> Mapping[str, JsonValue]:
    """A TypedDict of JSON values as the JSON object it is: mypy reads a TypedDict's values as
    objects, never as JSON values."""
    return cast("Mapping[str, JsonValue]", document)


# yaml is imported inside read_yaml: every pytest run imports this module, and most of its users
# only write JSON.
_PROFILE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def write_text_atomic(path: Path, text: str) -> None:
    """Write a temporary file in the same directory, fsync, then rename over the target: a reader
    (or a process killed mid-write) sees the old file or the new one, never a partial one."""
    write_bytes_atomic(path, text.encode("utf-8"))


_UMASK_LOCK = threading.Lock()


def _current_umask() -> int:
    with _UMASK_LOCK:  # os.umask both reads and sets it: set it back at once, one thread at a time
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def normal_write_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would leave: an existing file keeps its own, a new one
    gets 0o666 less the umask (0o644 under umask 022). mkstemp's temporary file is 0o600, which
    would keep reports and baselines from other users and a web server."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``write_text_atomic`` for bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = normal_write_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_schema(document: Any, schema: str, version: int, where: str, kind: str) -> None:
    """A file of ours, of a schema version this plugin reads (never a newer one)."""
    if not isinstance(document, dict) or document.get("schema") != schema:
        raise I2VUsageError(f"{where} is not a pytest-i2v {kind} file (schema {schema!r} missing)")
    found = document.get("schema_version")
    if not isinstance(found, int) or found > version:
        raise I2VUsageError(
            f"{where} has {kind} schema_version {found!r}, newer than this plugin reads "
            f"({version}); upgrade pytest-i2v"
        )


def read_yaml(path: Path, kind: str, fix: str) -> Any:
    """The document of a YAML file of ours (a ``kind`` such as "baseline file"); a file that cannot
    be read or parsed is one usage error that points at the place, as editors and CI logs link it:
    ``path:line:column: <kind> is not valid YAML: <problem>; <fix>`` (lines and columns from 1)."""
    import yaml

    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise I2VUsageError(f"{path}: {kind} cannot be read ({reason}); {fix}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = _place(path, data[: exc.start].decode("utf-8", "replace"))
        raise I2VUsageError(
            f"{where}: {kind} is not UTF-8 text (byte 0x{data[exc.start]:02x}); {fix}"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or type(exc).__name__
        if exc.problem and exc.context and exc.context_mark and exc.context_mark != mark:
            start = exc.context_mark
            problem += f" ({exc.context} at {start.line + 1}:{start.column + 1})"
        raise I2VUsageError(f"{where}: {kind} is not valid YAML: {problem}; {fix}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a control character)
        where = _place(path, text[: exc.position])
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise I2VUsageError(
            f"{where}: {kind} is not valid YAML: character {character!r}: {exc.reason}; {fix}"
        ) from None
    except yaml.YAMLError as exc:  # any other: still one line
        raise I2VUsageError(
            f"{path}: {kind} is not valid YAML ({type(exc).__name__}); {fix}"
        ) from None


def _place(path: Path, before: str) -> str:
    """``path:line:column`` of the character that follows the text ``before``."""
    return f"{path}:{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"


def validate_profile_name(name: str) -> str:
    """Profile names become file names: refuse anything that could leave the directory."""
    if not _PROFILE_NAME_RE.match(name) or ".." in name:
        raise I2VUsageError(
            f"profile name {name!r} is not allowed: use lowercase letters, digits, '-', '_' or '.' "
            "(no '/' or '..')"
        )
    return name


def unwritable_reason(directory: Path) -> str | None:
    """Why files cannot be created in ``directory`` (or, while it does not exist, in the nearest
    folder above it that does), found by creating and removing one; None when they can."""
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".pytest-i2v-write-check.", dir=existing)
    except OSError as exc:
        return f"{existing}: {exc.strerror or type(exc).__name__}"
    os.close(fd)
    os.unlink(probe)
    return None
