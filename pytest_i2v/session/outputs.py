"""The session's results: the records in run order, the skips, and the JSON, HTML and Markdown
documents built from them (each written atomically)."""

from __future__ import annotations

import os
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.history.store import open_store
from pytest_i2v.pipelines import DEFAULT_PIPELINE
from pytest_i2v.record.commit import git_commit
from pytest_i2v.record.document import build_document, write_json_atomic
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.report.grouping import pipeline_of
from pytest_i2v.report.markdown import render_markdown
from pytest_i2v.report.results import Recommendation
from pytest_i2v.session.plan import RunPlan
from pytest_i2v.session.recording import SessionProbe
from pytest_i2v.session.settings import Settings
from pytest_i2v.storage import Environment, JsonValue, as_json, write_text_atomic
from pytest_i2v.study import recommend_per_pipeline
from pytest_i2v.study.reference import compare_published, shipped_reference
from pytest_i2v.verdict.gate import GateSettings
from pytest_i2v.verdict.machine_speed import probe_moved
from pytest_i2v.verdict.outcome import GateMode, headline

# The HTML report is imported inside write(): it loads matplotlib and jinja2, and only a run
# given --i2v-report needs them. The history store is imported with the outputs, which load only
# once an i2v test runs (SQLAlchemy's import is a fraction of torch's).


class Outputs:
    def __init__(
        self,
        settings: Settings,
        plan: RunPlan,
        environment: Environment,
        gate: GateSettings,
        mode: GateMode,
        baseline_path: Path,
    ):
        self._settings = settings
        self._plan = plan
        self._environment = environment
        self._gate = gate
        self._mode = mode
        self._baseline_path = baseline_path
        self.records: dict[str, GenerationRecord] = {}
        self.skipped: list[dict[str, str]] = []
        self.loads: list[dict[str, JsonValue]] = []
        self.written: list[Path] = []
        self.history_lines: list[str] = []  # what adding the run to --i2v-history came to
        self.probe = SessionProbe()  # the recorder's, once its end has run
        self.left_out = 0  # recorded runs the baseline will not get (GateLoop.leave_out)

    def add(self, record: GenerationRecord) -> None:
        self.records[record.nodeid] = record

    def headline(self) -> tuple[bool, str]:
        outcomes = [r.decision for r in self.records.values() if r.decision]
        fails, line = headline(outcomes, self._plan.profile.name, self._mode, self.left_out)
        moved = self.probe_moved()
        return fails, f"{line}; also unreliable: {moved}" if moved else line

    def probe_moved(self) -> str | None:
        """The line saying the machine's speed changed during the run (a neighbour, throttling)."""
        return probe_moved(self.probe.start, self.probe.end)

    def document(self) -> dict[str, JsonValue]:
        records = list(self.records.values())
        fails, line = self.headline()
        probe = self.probe.document()
        return build_document(
            {**self._environment, "machine_probe": probe} if probe else self._environment,
            self._plan.profile.to_dict(),
            self._settings.to_dict(),
            records,
            self.loads,
            extra={
                "baseline": {"path": str(self._baseline_path), "gate": self._gate.to_dict()},
                "gate": {
                    "mode": self._mode,
                    "fails": fails,
                    "headline": line,
                    "unreliable_run": self.probe_moved(),
                },
                # The published figures are I2VGen-XL's: another model's run is no match.
                "published_reference": _published(
                    [r for r in records if pipeline_of(r) == DEFAULT_PIPELINE]
                ),
                "recommendations": {
                    name: as_json(matrix) for name, matrix in self._recommendations(records).items()
                },
                "skipped": self.skipped,
            },
        )

    def write(self, root: Path) -> None:
        """The JSON, HTML and Markdown outputs that were asked for, and the run added to the
        history (the commit: ``root``'s)."""
        if not self.records and not self.skipped:
            return
        document = self.document()
        settings = self._settings
        if settings.json_path is not None:
            write_json_atomic(settings.json_path, document)
            self.written.append(settings.json_path)
        if settings.report_path is not None:
            from pytest_i2v.report.html import write_html

            write_html(settings.report_path, document)
            self.written.append(settings.report_path)
        if settings.markdown_path is not None:
            path = settings.markdown_path
            if (
                path.exists()
                and path.stat().st_size
                and str(path) == os.environ.get("GITHUB_STEP_SUMMARY")
            ):
                with open(path, "a", encoding="utf-8") as handle:  # the step summary is shared
                    handle.write(render_markdown(document))
            else:
                write_text_atomic(path, render_markdown(document))
            self.written.append(path)
        # Last: whatever the database does, the results files are written.
        if settings.history_url is not None and self.records:
            self.history_lines.append(add_to_history(settings.history_url, document, root))

    def _recommendations(self, records: list[GenerationRecord]) -> dict[str, Recommendation]:
        """A matrix per pipeline from this run's own measurements, for each pipeline whose records
        span at least two sizes (the others have none: too little to fit)."""
        return recommend_per_pipeline(
            records,
            self._plan.profile.scaling,
            margin_gb=self._settings.safety_margin_gb,
            thresholds=self._settings.latency_thresholds,
        )


def add_to_history(url: str, document: dict[str, JsonValue], root: Path) -> str:
    """The terminal's line on adding the run; a database that fails now is reported, never raised:
    the tests ran, and the results files hold their measurements."""
    try:
        store = open_store(url)
        try:
            added = store.add_run(document, git_commit(root), where="this session's results")
        finally:
            store.close()
    except I2VUsageError as exc:
        return f"i2v history NOT written: {exc}"
    if added.added:
        return f"i2v history: added run {added.run_id} ({added.tests} tests) to {store.url}"
    return f"i2v history: run {added.run_id} is already in {store.url}: nothing added"


def _published(records: list[GenerationRecord]) -> JsonValue:
    reference = shipped_reference()
    return as_json(compare_published(records, reference)) if reference is not None else None
