"""The history as Otava's CSV input: one file per test (a ``time`` column, the ``commit``
attribute, one column per metric) and an ``otava.yaml`` that names them, so a team can run
``otava analyze`` beside ``history changes`` (Apache Otava's ``csv`` test type:
``file``, ``time_column``, ``attributes``, ``metrics``).

Pure: text in, text out; the CLI writes the files."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

import yaml

from pytest_i2v.history.series import Series

OTAVA_CONFIG = "otava.yaml"


def _slug(nodeid: str) -> str:
    """A file name for a node id: ``suites/test_x.py::test_y[256p]`` -> ``test_x.test_y-256p``."""
    name = nodeid.rsplit("/", 1)[-1].replace(".py::", ".").replace("::", ".")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "test"


def otava_files(tests: Sequence[Sequence[Series]]) -> dict[str, str]:
    """``tests``: per test, its series (one per metric, the same node id). File name -> text."""
    files: dict[str, str] = {}
    config: dict[str, object] = {}
    for metrics in tests:
        if not metrics:
            continue
        nodeid = metrics[0].nodeid
        name = _slug(nodeid)
        while f"{name}.csv" in files:  # two node ids with one slug: keep both
            name += "_"
        rows: dict[str, dict[str, str]] = {}
        for series in metrics:
            for point in series.points:
                row = rows.setdefault(
                    point.run_id, {"time": point.created, "commit": point.commit or ""}
                )
                row[series.metric] = repr(point.value)
        columns = ["time", "commit", *(s.metric for s in metrics)]
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows.values())
        files[f"{name}.csv"] = text.getvalue()
        config[name] = {
            "type": "csv",
            "file": f"{name}.csv",
            "time_column": "time",
            "attributes": ["commit"],
            "metrics": [s.metric for s in metrics],
            "csv_options": {"delimiter": ",", "quotechar": '"'},
        }
    files[OTAVA_CONFIG] = yaml.safe_dump({"tests": config}, sort_keys=False)
    return files
