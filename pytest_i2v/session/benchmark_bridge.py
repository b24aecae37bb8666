"""pytest-benchmark, through its public API only.

When pytest-benchmark is active, an i2v test that measures (uses ``i2v_run``) asks for its
``benchmark`` fixture at collection, so ``--benchmark-only``, ``--benchmark-skip`` and its refusal
under xdist treat it as the benchmark it is, and carries a ``benchmark`` mark whose ``timer`` is the
round clock (``measure.timing.ROUND_CLOCK``). Its measured generations are ``benchmark.pedantic``'s
rounds, one loop and not two: setup and teardown run outside the timer, the target is one
synchronised generation (``measure.runner.GenerationRounds``), so pytest-benchmark's round times
are the record's repeat times. ``group`` and ``extra_info`` come from ``benchmark_info``.

The fixture is duck-typed: anything with pytest-benchmark's public ``pedantic``, ``enabled``,
``group`` and ``extra_info``.

Its tables (``--i2v-benchmark-tables``): ``auto`` leaves out the tests the bridge gave a
benchmark unless a ``--benchmark-*`` option asks for pytest-benchmark's output (a test that names
``benchmark`` itself keeps its table); ``off`` leaves out every measuring i2v test; ``on`` shows
them all. Only the display is filtered, through its ``pytest_benchmark_group_stats`` hook: its
JSON, its storage and its ``--benchmark-compare-fail`` see every benchmark."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Generator
from typing import Any, Protocol

import pytest

from pytest_i2v.measure.runner import GenerationRounds, RoundsDriver, run_rounds
from pytest_i2v.measure.timing import ROUND_CLOCK
from pytest_i2v.record.record import GenerationRecord
from pytest_i2v.session.benchmark_info import extra_info

PLUGIN_NAME = "benchmark"  # pytest-benchmark's pytest11 entry point
FIXTURE = "benchmark"
MEASURING_FIXTURE = "i2v_run"  # the fixture whose call measures generations


class BenchmarkFixture(Protocol):
    """The public surface of pytest-benchmark's ``benchmark`` fixture that the bridge uses."""

    group: str | None
    extra_info: dict[str, Any]

    @property
    def enabled(self) -> bool: ...

    # pytest-benchmark's own signature, parameter for parameter (its public API, not ours to
    # shorten): any real fixture must match it.
    def pedantic(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] = ...,
        kwargs: dict[str, Any] | None = ...,
        setup: Callable[[], Any] | None = ...,
        teardown: Callable[..., Any] | None = ...,
        rounds: int = ...,
        warmup_rounds: int = ...,
        iterations: int = ...,
    ) -> Any: ...


def bridge_active(config: pytest.Config, adaptive_repeats: bool) -> bool:
    """pytest-benchmark is loaded and the i2v repeats are a fixed number: ``pedantic`` runs a fixed
    number of rounds, and adaptive repeats (``--i2v-target-ci``) stop early, so they keep the
    plugin's loop."""
    return config.pluginmanager.hasplugin(PLUGIN_NAME) and not adaptive_repeats


def request_benchmark(
    items: list[pytest.Item], config: pytest.Config | None = None, tables: str = "on"
) -> None:
    """Each measuring i2v test asks for ``benchmark`` as if it named it (pytest-benchmark decides
    ``--benchmark-only``/``-skip`` and xdist by the fixtures a test uses; parametrised tests share
    one list of names, hence the membership test), and is timed by the round clock (a timer in the
    test's own ``benchmark`` mark is replaced: the record and the benchmark must read the same
    clock).
    ``tables`` (``--i2v-benchmark-tables``): the tests whose tables it leaves out are hidden from
    pytest-benchmark's display by a ``HiddenTables`` registered on ``config``."""
    measuring: set[str] = set()
    bridged: set[str] = set()
    appended: set[int] = set()  # the fixture-name lists the bridge extended (shared by parameters)
    for item in items:
        names = getattr(item, "fixturenames", None)
        if not isinstance(names, list) or MEASURING_FIXTURE not in names:
            continue
        measuring.add(item.nodeid)
        if FIXTURE not in names:
            names.append(FIXTURE)
            appended.add(id(names))
        if id(names) in appended:
            bridged.add(item.nodeid)
        own = item.get_closest_marker("benchmark")
        # prepended: the closest benchmark mark is the one pytest-benchmark reads
        item.add_marker(
            pytest.mark.benchmark(**{**(own.kwargs if own else {}), "timer": ROUND_CLOCK}),
            append=False,
        )
    if config is not None:
        hidden = hidden_tables(config, tables, measuring, bridged)
        if hidden:
            config.pluginmanager.register(HiddenTables(hidden), HIDDEN_TABLES_PLUGIN)


HIDDEN_TABLES_PLUGIN = "i2v-benchmark-tables"


def benchmark_options_given(config: pytest.Config) -> bool:
    """A ``--benchmark-*`` option on the command line, in the ini's ``addopts`` or in
    ``PYTEST_ADDOPTS``: the user asked pytest-benchmark for something and expects its tables."""
    args = [
        *config.invocation_params.args,
        *config.getini("addopts"),
        *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
    ]
    return any(str(arg).startswith("--benchmark-") for arg in args)


def hidden_tables(
    config: pytest.Config, tables: str, measuring: set[str], bridged: set[str]
) -> frozenset[str]:
    """The node ids whose pytest-benchmark tables are left out. With ``--benchmark-compare-fail``
    none: pytest-benchmark judges the comparison only when it has a table to display."""
    if tables == "on" or config.getoption("benchmark_compare_fail", None):
        return frozenset()
    if tables == "off":
        return frozenset(measuring)
    return frozenset() if benchmark_options_given(config) else frozenset(bridged)


class HiddenTables:
    """Leaves the given tests out of pytest-benchmark's tables through its public grouping hook,
    which feeds only the display; a group left empty is dropped, so nothing of it is printed."""

    def __init__(self, nodeids: frozenset[str]):
        self.nodeids = nodeids

    @pytest.hookimpl(wrapper=True)
    def pytest_benchmark_group_stats(
        self, config: pytest.Config, benchmarks: list[dict[str, Any]], group_by: str
    ) -> Generator[None, Any, Any]:
        groups = yield
        kept = [
            (name, [bench for bench in group if bench.get("fullname") not in self.nodeids])
            for name, group in groups or ()
        ]
        return [(name, group) for name, group in kept if group]


class BenchmarkRounds:
    """One test's benchmark. ``pedantic`` runs once per test: it runs the first measurement's
    rounds; a re-measurement by the gate uses the plugin's loop, or a fresh process, and is counted
    in ``extra_info``."""

    def __init__(self, fixture: BenchmarkFixture):
        self.fixture = fixture
        self.measurements = 0

    def driver(self, group: str) -> RoundsDriver | None:
        """What runs this measurement's rounds: pedantic the first time, the plugin's loop after."""
        self.measurements += 1
        if self.measurements > 1:
            return None
        fixture = self.fixture
        if fixture.group is None:  # a @pytest.mark.benchmark(group=...) wins
            fixture.group = group

        def drive(rounds: GenerationRounds) -> None:
            if not fixture.enabled:
                # --benchmark-disable, or xdist: pytest-benchmark runs its function once and reports
                # nothing; the function here is the whole i2v measurement, in the plugin's loop.
                fixture.pedantic(run_rounds, args=(rounds,))
                return
            fixture.pedantic(
                rounds.target,
                setup=rounds.setup,
                teardown=rounds.teardown,
                rounds=rounds.count,
                warmup_rounds=rounds.warmup,
                iterations=1,
            )

        return drive

    def describe(self, record: GenerationRecord) -> None:
        """Fill ``extra_info`` from the decided record, in place: pytest-benchmark holds this
        dict."""
        self.fixture.extra_info.update(extra_info(record))
