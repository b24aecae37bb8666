"""Change points in one test's series (``history.changes``): a step is found and dated to its
commit range with its effect, noise and the CPU's heavy tail are not, and a work or software
change is an exact event named beside the change it explains."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import numpy as np
import yaml

from pytest_i2v.history.changes import MIN_SEGMENT, find_changes
from pytest_i2v.history.otava import OTAVA_CONFIG, otava_files
from pytest_i2v.history.series import Series, SeriesPoint


def series(values: np.ndarray, **fields: object) -> Series:
    points = tuple(
        SeriesPoint(f"run{i}", f"c{i:03d}", f"2026-11-{1 + i // 30:02d}", float(v))
        for i, v in enumerate(values)
    )
    return Series("test_a.py::test_x", "time_s", points)


def noisy(n: int, seed: int, tail: float = 0.15) -> np.ndarray:
    """2 % between runs, and one run in several 30-40 % slow (this CPU's heavy tail)."""
    rng = np.random.default_rng(seed)
    slow = np.where(rng.random(n) < tail, rng.uniform(1.3, 1.4, n), 1.0)
    return np.exp(rng.normal(0.0, 0.02, n)) * slow


def test_a_ten_per_cent_step_is_found_dated_and_sized() -> None:
    values = noisy(80, seed=1)
    values[40:] *= 1.10
    [change] = find_changes(series(values)).changes
    assert abs(change.index - 40) <= 1
    assert change.before.commit == f"c{change.index - 1:03d}" and change.after.commit == (
        f"c{change.index:03d}"
    )
    assert change.low < 0.10 < change.high and 0.05 < change.effect < 0.15
    assert change.p_value <= 0.001
    assert change.summary().startswith(f"time_s +{change.effect:.1%} [+")
    assert f"c{change.index - 1:03d}..c{change.index:03d}" in change.summary()


def test_a_step_down_is_a_negative_effect() -> None:
    values = noisy(60, seed=2)
    values[30:] *= 0.8
    [change] = find_changes(series(values)).changes
    assert change.effect < 0 and change.high < 0


def test_noise_and_the_heavy_tail_alone_are_no_change() -> None:
    for seed in range(10):
        assert find_changes(series(noisy(100, seed))).changes == (), seed


def test_a_series_too_short_for_two_levels_has_none() -> None:
    values = np.concatenate([np.ones(MIN_SEGMENT), 2 * np.ones(MIN_SEGMENT - 1)])
    assert find_changes(series(values)).changes == ()


def test_a_constant_series_has_none() -> None:
    assert find_changes(series(np.ones(40))).changes == ()


def test_a_work_change_is_an_exact_event_named_beside_its_step() -> None:
    values = noisy(60, seed=3)
    values[30:] *= 1.2
    base = series(values)
    points = tuple(
        replace(p, work_digest="w1" if i < 30 else "w2", software="s1")
        for i, p in enumerate(base.points)
    )
    found = find_changes(replace(base, points=points))
    [event] = found.events
    assert (event.kind, event.index) == ("work", 30)
    assert event.text() == "the work changed between c029..c030"
    [change] = found.changes
    assert change.events == (event,) and "the work changed between c029..c030" in change.summary()


def test_a_software_change_without_a_step_is_still_listed() -> None:
    base = series(noisy(40, seed=4))
    points = tuple(
        replace(p, software="torch 2.12" if i < 10 else "torch 2.13")
        for i, p in enumerate(base.points)
    )
    found = find_changes(replace(base, points=points))
    assert found.changes == () and [(e.kind, e.index) for e in found.events] == [("software", 10)]


def test_the_otava_export_is_one_csv_per_test_and_a_config_naming_it() -> None:
    times = series(np.array([1.0, 1.1, 1.2]))
    steps = Series(
        times.nodeid, "step_s", tuple(replace(p, value=p.value / 10) for p in times.points)
    )
    other = Series("suites/test_b.py::test_y[256p]", "time_s", times.points[:2])
    files = otava_files([[times, steps], [other]])
    assert set(files) == {"test_a.test_x.csv", "test_b.test_y-256p.csv", OTAVA_CONFIG}
    rows = list(csv.DictReader(io.StringIO(files["test_a.test_x.csv"])))
    assert [r["commit"] for r in rows] == ["c000", "c001", "c002"]
    assert [float(r["time_s"]) for r in rows] == [1.0, 1.1, 1.2]
    assert float(rows[1]["step_s"]) == 1.1 / 10
    config = yaml.safe_load(files[OTAVA_CONFIG])["tests"]["test_a.test_x"]
    assert config["file"] == "test_a.test_x.csv" and config["time_column"] == "time"
    assert config["attributes"] == ["commit"] and config["metrics"] == ["time_s", "step_s"]
