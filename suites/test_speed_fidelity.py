"""Speed against fidelity: each pipeline natively, then with each diffusers cache it runs (the
registry's list, at the cache's defaults), the cached output judged against the native one on the
profile's lossy bar. Each cached record is one point of the report's frontier."""

from pathlib import Path

import pytest

from pytest_i2v import Study
from pytest_i2v.pipelines import cache_names

STUDY = Study.load(Path(__file__).with_name("study.yaml"))
NATIVE = "native"

pytestmark = pytest.mark.speed_fidelity


def _native_id(pipeline: str) -> str:
    return f"{pipeline}-{NATIVE}"


def _case(pipeline: str, cache: str | None):
    if cache is None:
        return pytest.param(
            pipeline, None, marks=pytest.mark.i2v(pipeline=pipeline), id=_native_id(pipeline)
        )
    marks = [
        pytest.mark.i2v(pipeline=pipeline, cache=cache),
        pytest.mark.i2v_fidelity(
            against=f"test_speed_fidelity[{_native_id(pipeline)}]", lossy=True
        ),
    ]
    return pytest.param(pipeline, cache, marks=marks, id=f"{pipeline}-{cache}")


# Each pipeline's native run is collected right before its caches: a cached test is judged against
# it, so it must run first, and close in time (a neighbour's load then skews fewer points).
CASES = [
    _case(pipeline, cache)
    for pipeline in STUDY.speed_fidelity.get("pipelines", [])
    for cache in (None, *cache_names(pipeline))
]


@pytest.mark.parametrize(("pipeline", "cache"), CASES)
def test_speed_fidelity(pipeline, cache, i2v_run):
    result = i2v_run()
    assert result.outcome == "ok"
    assert result.setting("pipeline") == pipeline
    assert result.setting("cache") == cache
    if cache is None:
        return
    assert result.lossy_by_config
    # judged against its native sibling of this run (not the baseline's output), on the lossy bar
    assert result.fidelity is not None, result.notes
    assert result.fidelity.lossy
    assert result.fidelity.against.startswith(f"test_speed_fidelity[{_native_id(pipeline)}]")
