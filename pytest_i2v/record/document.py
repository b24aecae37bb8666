"""The results document (``--i2v-json``): its schema, how it is built and written, and how one is
read back, an older schema version included.

Version 2 is the typed record: every record carries every field, of its type, and a record that
does not is one usage error naming the test and the field. Version 3 adds the record's ``output``
(the first measured generation's, reduced: ``measure.output``) and ``fidelity`` (that output
against the baseline's); a version 2 record reads with neither. Version 4 judges the output:
``fidelity`` is the comparison with its bar and verdict, beside ``output_repeat`` (the second
measured generation against the first) and ``fidelity_request`` (the test's mark); a version 3
record's ``fidelity``, figures never judged, is left out.
Version 1 documents (before the typed record) are read leniently: a field an older plugin did not
write takes its empty value."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cattrs import transform_error
from cattrs.errors import BaseValidationError

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.storage import JsonValue, check_schema, write_text_atomic

RESULTS_SCHEMA = "pytest-i2v/results"
RESULTS_SCHEMA_VERSION = 4
LENIENT_VERSIONS = (1,)  # read with the missing fields filled (GenerationRecord.from_partial)
UNJUDGED_FIDELITY_VERSIONS = (3,)  # their fidelity: figures of another shape, never judged


def build_document(
    environment: Mapping[str, JsonValue],
    profile: Mapping[str, JsonValue],
    settings: Mapping[str, JsonValue],
    records: list[GenerationRecord],
    pipelines: list[dict[str, JsonValue]],
    extra: Mapping[str, JsonValue] | None = None,
) -> dict[str, JsonValue]:
    return {
        "schema": RESULTS_SCHEMA,
        "schema_version": RESULTS_SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": dict(environment),
        "profile": dict(profile),
        "settings": dict(settings),
        "pipelines": pipelines,
        "records": [r.to_dict() for r in records],  # in the order the tests ran
        **dict(extra or {}),
    }


def write_json_atomic(path: Path, document: Mapping[str, JsonValue]) -> None:
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def read_results(path: Path) -> dict[str, Any]:
    """The document at ``path`` in the current schema: a version 1 document's records upgraded."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise I2VUsageError(
            f"results file {path} does not exist; run pytest with --i2v-json {path} first"
        ) from None
    except json.JSONDecodeError as exc:
        raise I2VUsageError(
            f"results file {path} is not valid JSON (line {exc.lineno}); regenerate it"
        ) from None
    check_schema(document, RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION, str(path), "results")
    records = [r.to_dict() for r in read_records(document, str(path))]
    return {**document, "schema_version": RESULTS_SCHEMA_VERSION, "records": records}


def read_records(document: Mapping[str, Any], where: str) -> list[GenerationRecord]:
    """The typed records of a results document whose schema was checked."""
    version = document.get("schema_version")
    lenient = version in LENIENT_VERSIONS
    records = document.get("records")
    if not isinstance(records, list):
        raise I2VUsageError(f"{where}: its 'records' is not a list; regenerate the results file")
    if version in UNJUDGED_FIDELITY_VERSIONS:
        records = [
            {k: v for k, v in r.items() if k != "fidelity"} if isinstance(r, dict) else r
            for r in records
        ]
    return [_record(data, lenient, where, index) for index, data in enumerate(records)]


def _record(data: Any, lenient: bool, where: str, index: int) -> GenerationRecord:
    nodeid = data.get("nodeid", f"record {index}") if isinstance(data, dict) else f"record {index}"
    try:
        if not isinstance(data, dict):
            raise TypeError("not an object")
        if lenient:
            return GenerationRecord.from_partial(data)
        return GenerationRecord.from_dict(data)
    except (BaseValidationError, KeyError, TypeError, ValueError) as exc:
        problem = "; ".join(_problems(exc)) or str(exc)
        raise I2VUsageError(
            f"{where}: the record of {nodeid} cannot be read ({problem}); regenerate the results "
            "file with this plugin"
        ) from None


def _problems(exc: BaseException) -> list[str]:
    """cattrs' nested errors as "field: problem" lines."""
    if isinstance(exc, BaseValidationError):
        return transform_error(exc)
    return []
