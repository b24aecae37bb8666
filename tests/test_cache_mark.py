"""The i2v mark's ``cache=``: on the tiny Wan 2.1 a cached test runs with the cache on, its record
says which, its output differs from the native run's, and the shared pipeline has no cache after it
(also after a failed test); a cache on a UNet pipeline or an unknown name is one usage line."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path

import pytest

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import i2v
from pytest_i2v.pipelines import PIPELINES
from pytest_i2v.pipelines.registry import CACHES, UNSHIPPED_CACHES
from pytest_i2v.record.output import compare_outputs
from pytest_i2v.record.parts import OutputReference
from pytest_i2v.verdict.baseline_records import config_id


@pytest.fixture(scope="module")
def warm(warm_imports: None, tmp_path_factory: pytest.TempPathFactory) -> None:
    """One tiny Wan generation in this process before pytester's in-process runs (they drop the
    modules a run imported, and torch refuses to import some twice)."""
    from pytest_i2v.generation.inputs import synthetic_portrait
    from pytest_i2v.measure.runner import generate
    from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline

    key = PipelineKey("tiny", "fp32", "cpu", pipeline="wan2.1-i2v")
    loaded = load_pipeline(key, tmp_path_factory.mktemp("wan"))
    spec = i2v(pipeline="wan2.1-i2v", width=32, height=32, frames=1, steps=2)
    generate(loaded.pipe, spec, synthetic_portrait(64, 64))


def test_a_spec_without_a_cache_keeps_its_config_and_id() -> None:
    spec = i2v(pipeline="wan2.1-i2v")
    config = spec.to_dict()
    assert "cache" not in config  # the config a baseline stored before caches existed
    assert config_id(config) == config_id({**config, "cache": None})
    cached = i2v(pipeline="wan2.1-i2v", cache="first-block")
    assert cached.to_dict()["cache"] == "first-block"
    assert config_id(cached.to_dict()) != config_id(config)


def test_every_transformer_pipeline_runs_a_cache_and_no_unet_does() -> None:
    for info in PIPELINES.values():
        unet = info.name in ("i2vgen-xl", "svd")
        assert bool(info.caches) is not unet, info.name
        assert info.caches <= set(CACHES)
    assert not set(UNSHIPPED_CACHES) & set(CACHES)


@pytest.mark.parametrize(
    ("kwargs", "line"),
    [
        (
            {"pipeline": "svd", "cache": "first-block"},
            "cache='first-block': pipeline svd's denoiser has no diffusers cache support *",
        ),
        (
            {"pipeline": "wan2.1-i2v", "cache": "faster-cache"},
            "cache='faster-cache' does not run on pipeline wan2.1-i2v; use one of first-block, *",
        ),
        (
            {"pipeline": "wan2.1-i2v", "cache": "mag-cache"},
            "cache='mag-cache' is not shipped: MagCacheConfig needs the checkpoint's mag_ratios *",
        ),
    ],
)
def test_a_cache_a_pipeline_cannot_run_is_one_problem(kwargs: dict[str, str], line: str) -> None:
    with pytest.raises(I2VUsageError) as raised:
        i2v(**kwargs)
    (problem,) = raised.value.problems
    assert fnmatch(problem, line), problem


PROJECT = """
import pytest

from pytest_i2v.record.output import compare_outputs

WAN = dict(pipeline="wan2.1-i2v", width=256, height=256, frames=5, steps=50)
OUTPUTS = {}


@pytest.mark.i2v(**WAN)
def test_native(i2v_run, i2v_pipeline):
    record = i2v_run()
    assert not i2v_pipeline.transformer.is_cache_enabled
    assert "cache" not in record.config
    OUTPUTS["native"] = record.output


@pytest.mark.i2v(**WAN, cache="first-block")
def test_cached(i2v_run, i2v_pipeline):
    assert i2v_pipeline.transformer.is_cache_enabled
    record = i2v_run()
    assert record.config["cache"] == "first-block"
    assert record.lossy_by_config
    figures = compare_outputs(OUTPUTS["native"], record.output)
    assert not figures.identical, figures.summary()
    assert figures.latents is not None and not figures.latents.held()  # the cache moved them
    print("FIGURES", figures.summary())


@pytest.mark.i2v(**WAN, cache="pyramid-attention-broadcast")
def test_cached_then_fails(i2v_run):
    i2v_run()
    assert False, "fails on purpose"


@pytest.mark.i2v(**WAN)
def test_after(i2v_run, i2v_pipeline):
    record = i2v_run()
    assert not i2v_pipeline.transformer.is_cache_enabled
    assert not i2v_pipeline.transformer._diffusers_hook.hooks  # no cache hook left behind
    after = compare_outputs(OUTPUTS["native"], record.output)
    assert after.identical and after.latents is not None and after.latents.allclose
"""


def test_a_cached_test_runs_with_its_cache_and_leaves_the_pipeline_clean(
    warm: None, i2v_project: pytest.Pytester
) -> None:
    i2v_project.makepyfile(test_cache=PROJECT)
    result = i2v_project.runpytest("-s", "-p", "no:randomly", "--i2v-json", "out.json")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_cached_then_fails*fails on purpose*"])
    records = {
        r["nodeid"].rsplit("::", 1)[1]: r
        for r in json.loads(Path(i2v_project.path, "out.json").read_text())["records"]
    }
    assert records["test_cached"]["config"]["cache"] == "first-block"
    assert "cache" not in records["test_native"]["config"]
    assert records["test_native"]["config_id"] == records["test_after"]["config_id"]
    native, cached = (
        OutputReference(**records[name]["output"]) for name in ("test_native", "test_cached")
    )
    assert compare_outputs(native, cached).min_psnr_db is not None
    assert native.latents_packed and native.latents_dtype == "float32"  # kept in the record


@pytest.mark.parametrize(
    ("mark", "line"),
    [
        (
            'pipeline="i2vgen-xl", cache="first-block"',
            "ERROR: test_bad.py::test_bad: cache='first-block': pipeline i2vgen-xl's denoiser has "
            "no diffusers cache support (a UNet, not a CacheMixin transformer); drop cache= or "
            "use a pipeline of wan2.1-i2v, *",
        ),
        (
            'pipeline="wan2.1-i2v", cache="fastest"',
            "ERROR: test_bad.py::test_bad: cache='fastest' is not a known cache; use one of "
            "first-block, pyramid-attention-broadcast, faster-cache, taylorseer-lite or None",
        ),
    ],
)
def test_a_bad_cache_is_one_usage_line(mark: str, line: str, i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        test_bad=f"""
        import pytest

        @pytest.mark.i2v({mark})
        def test_bad(i2v_run):
            pass
        """
    )
    result = i2v_project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert len([ln for ln in result.stderr.lines if ln.startswith("ERROR: ")]) == 1
