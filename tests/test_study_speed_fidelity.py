"""The study's speed-against-fidelity family (``suites/test_speed_fidelity.py``): every listed
pipeline runs each cache the registry gives it, each cached test right after its native sibling,
which its ``i2v_fidelity`` mark names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pytest_i2v.pipelines import PIPELINES, cache_names
from pytest_i2v.pipelines.registry import CACHES
from pytest_i2v.study import Study

ROOT = Path(__file__).resolve().parents[1]
SUITE = "suites/test_speed_fidelity.py"


def test_cache_names_are_the_registrys_in_one_order() -> None:
    for name, info in PIPELINES.items():
        names = cache_names(name)
        assert set(names) == info.caches, name
        assert list(names) == sorted(names, key=CACHES.index), name
    assert cache_names("no-such-pipeline") == ()


def test_every_pipeline_of_the_family_runs_a_cache() -> None:
    pipelines = Study.load(ROOT / "suites" / "study.yaml").speed_fidelity["pipelines"]
    assert pipelines == [p for p in PIPELINES if p in pipelines]  # known names, registry order
    assert {p for p in PIPELINES if PIPELINES[p].caches} == set(pipelines)


def test_each_cached_test_is_collected_right_after_its_native_sibling() -> None:
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", SUITE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    ids = [
        line.split("[", 1)[1].rstrip("]")
        for line in collected.stdout.splitlines()
        if line.startswith(f"{SUITE}::test_speed_fidelity[")
    ]
    expected = [
        f"{p}-{c}"
        for p in Study.load(ROOT / "suites" / "study.yaml").speed_fidelity["pipelines"]
        for c in ("native", *cache_names(p))
    ]
    assert ids == expected
