"""A user's own pipeline class: loaded by the plugin with every option applied and checked, or a
loader hook refused in one line; an unknown model_index class named; a tiny model of any pipeline.

The model is a tiny random Wan 2.1 I2V directory (``save_tiny_model``) whose model_index.json names
the user's class, as a team's own checkpoint does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from pytest_i2v import AppliedOption, save_tiny_model
from pytest_i2v.cli import main
from pytest_i2v.pipelines.applied_options import refusal, verify_load
from pytest_i2v.pipelines.base import adapter_for
from pytest_i2v.pipelines.loading import TINY_MARKER

OWN_CLASS = "AcmeWanI2VPipeline"
FP8_TEST = """
import pytest

@pytest.mark.i2v(width=832, height=480, frames=81, memory=("layerwise_fp8",))
def test_fp8(i2v_run, i2v_pipeline):
    assert type(i2v_pipeline).__name__ == "{expected}"
    assert i2v_run().outcome == "ok"
"""


@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model("wan2.1-i2v", tmp_path_factory.mktemp("models") / "wan")


def _project(pytester: pytest.Pytester, tiny_wan: Path, module: str, ini_extra: str = "") -> Path:
    """A user's repository: their package ``module`` with the class, their model directory."""
    model = pytester.path / "models" / "wan"
    shutil.copytree(tiny_wan, model)
    index = json.loads((model / "model_index.json").read_text())
    (model / "model_index.json").write_text(json.dumps({**index, "_class_name": OWN_CLASS}))
    package = pytester.path / module
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "pipelines.py").write_text(
        "from diffusers import WanImageToVideoPipeline\n\n\n"
        f"class {OWN_CLASS}(WanImageToVideoPipeline):\n    pass\n"
    )
    pytester.makeini(f"""
        [pytest]
        pythonpath = .
        i2v_model = models/wan
        i2v_json = out/results.json
        i2v_repeats = 1
        i2v_warmup = 0
        filterwarnings = ignore::FutureWarning
        {ini_extra}
        """)
    return model


def _record(pytester: pytest.Pytester) -> dict[str, object]:
    records = json.loads((pytester.path / "out" / "results.json").read_text())["records"]
    assert len(records) == 1
    record: dict[str, object] = records[0]
    return record


def test_own_class_loads_with_fp8_applied_and_verified(
    pytester: pytest.Pytester, tiny_wan: Path, warm_imports: None
) -> None:
    """832x480, 81 frames on the CPU default through the user's class: the plugin's loader loads
    with it, casts the transformer's weights to fp8 and the record says what it read."""
    _project(
        pytester, tiny_wan, "acme_fp8", "i2v_pipeline_class = acme_fp8.pipelines:AcmeWanI2VPipeline"
    )
    pytester.makepyfile(FP8_TEST.format(expected=OWN_CLASS))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    config = _record(pytester)["config"]
    assert isinstance(config, dict)
    assert (
        config["pipeline"] == "wan2.1-i2v"
        and config["pipeline_class"] == "acme_fp8.pipelines:AcmeWanI2VPipeline"
    )
    assert (
        config["provenance"] == "tiny-random-weights"
    )  # save_tiny_model's directory says what it is
    applied = {a["option"]: a for a in config["applied_options"]}
    assert applied["layerwise_fp8"]["verified"] is True
    assert "float8_e4m3fn" in applied["layerwise_fp8"]["evidence"]
    assert applied["placement"] == {
        "option": "placement",
        "verified": True,
        "evidence": "transformer on cpu (asked: cpu)",
    }
    assert applied["progress_bar_off"]["verified"] is True


def test_wrap_hook_keeps_the_options(
    pytester: pytest.Pytester, tiny_wan: Path, warm_imports: None
) -> None:
    """pytest_i2v_wrap_pipeline returns the user's class around the loaded modules:
    fp8 still applied."""
    _project(pytester, tiny_wan, "acme_wrap", "i2v_pipeline = wan2.1-i2v")
    pytester.makeconftest("""
        from acme_wrap.pipelines import AcmeWanI2VPipeline

        def pytest_i2v_wrap_pipeline(pipe, key):
            return AcmeWanI2VPipeline(**pipe.components)
        """)
    pytester.makepyfile(FP8_TEST.format(expected=OWN_CLASS))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    config = _record(pytester)["config"]
    assert isinstance(config, dict)
    fp8 = next(a for a in config["applied_options"] if a["option"] == "layerwise_fp8")
    assert fp8["verified"] is True and "float8_e4m3fn" in fp8["evidence"]


def test_a_loader_hook_that_skips_fp8_is_refused_in_one_line(
    pytester: pytest.Pytester, tiny_wan: Path, warm_imports: None
) -> None:
    """The silent lie: the hook returns the user's pipeline without fp8. The test fails at setup
    with one line naming the option, what the weights are and the fix; nothing is measured."""
    _project(pytester, tiny_wan, "acme_hook", "i2v_pipeline = wan2.1-i2v")
    pytester.makeconftest("""
        from acme_hook.pipelines import AcmeWanI2VPipeline
        from pytest_i2v import LoadedPipeline

        def pytest_i2v_load_pipeline(key, work_dir):
            pipe = AcmeWanI2VPipeline.from_pretrained(key.source)
            return LoadedPipeline(key, pipe, 0.0, "real-weights")
        """)
    pytester.makepyfile(FP8_TEST.format(expected=OWN_CLASS))
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    line = (
        "layerwise_fp8 was asked for but not applied by the pytest_i2v_load_pipeline hook "
        "(transformer weights float32); let the plugin load and apply it: set ini "
        "i2v_pipeline_class = NAME=module:Class for your class, or wrap the loaded pipeline in "
        "pytest_i2v_wrap_pipeline(pipe, key) instead of replacing the loader"
    )
    assert result.outlines.count(line) == 1
    assert "During handling of the above exception" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_an_unknown_model_index_class_is_named_with_the_fix(
    pytester: pytest.Pytester, tiny_wan: Path, warm_imports: None
) -> None:
    _project(pytester, tiny_wan, "acme_unknown")
    pytester.makepyfile(FP8_TEST.format(expected=OWN_CLASS))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.errlines == [
        "ERROR: --i2v-model models/wan: model_index.json names the pipeline class "
        f"{OWN_CLASS}, which pytest-i2v does not know; map it to the supported pipeline it "
        "derives from with ini "
        f"i2v_pipeline_class = NAME=your.module:{OWN_CLASS} (NAME: i2vgen-xl, svd, wan2.1-i2v, "
        f"wan2.2-i2v, ltx-video, cogvideox-i2v, hunyuanvideo-i2v), or load it as that pipeline's "
        f"diffusers class with --i2v-pipeline NAME",
        "",
    ]
    assert not (pytester.path / "out").exists()


KNOWN = "i2vgen-xl, svd, wan2.1-i2v, wan2.2-i2v, ltx-video, cogvideox-i2v, hunyuanvideo-i2v"


@pytest.mark.parametrize(
    ("setting", "line"),
    [
        (
            "acme_bad.pipelines:Missing",
            "i2v_pipeline_class acme_bad.pipelines:Missing: acme_bad.pipelines has no pipeline "
            "class Missing (a class with from_pretrained)",
        ),
        (
            "acme_bad.nowhere:AcmeWanI2VPipeline",
            "i2v_pipeline_class acme_bad.nowhere:AcmeWanI2VPipeline: cannot import "
            "acme_bad.nowhere (ModuleNotFoundError: No module named 'acme_bad.nowhere'); "
            "install your package or add its folder to pytest's pythonpath ini",
        ),
        (
            "acme_bad.pipelines",
            "ini i2v_pipeline_class = 'acme_bad.pipelines': 'acme_bad.pipelines' is not "
            "[NAME=]module:Class; write e.g. wan2.1-i2v=acme.pipelines:AcmeWanI2VPipeline",
        ),
        (
            "wan9=acme_bad.pipelines:AcmeWanI2VPipeline",
            "ini i2v_pipeline_class = 'wan9=acme_bad.pipelines:AcmeWanI2VPipeline': "
            f"i2v_pipeline_class entry='wan9' is not a known pipeline; use one of {KNOWN}",
        ),
    ],
)
def test_a_bad_pipeline_class_setting_is_one_line(
    pytester: pytest.Pytester, tiny_wan: Path, warm_imports: None, setting: str, line: str
) -> None:
    _project(pytester, tiny_wan, "acme_bad", f"i2v_pipeline_class = {setting}")
    pytester.makepyfile(FP8_TEST.format(expected=OWN_CLASS))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [text for text in result.errlines if text] == [f"ERROR: {line}"]
    assert not (pytester.path / "out").exists()


def test_a_bare_class_must_derive_from_a_supported_one(
    pytester: pytest.Pytester, tiny_wan: Path, warm_imports: None
) -> None:
    _project(pytester, tiny_wan, "acme_base", "i2v_pipeline_class = acme_base.other:Plain")
    (pytester.path / "acme_base" / "other.py").write_text(
        "class Plain:\n"
        "    @classmethod\n"
        "    def from_pretrained(cls, source):\n"
        "        return cls()\n"
    )
    pytester.makepyfile(FP8_TEST.format(expected=OWN_CLASS))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.errlines if line] == [
        "ERROR: i2v_pipeline_class acme_base.other:Plain: Plain derives from no supported "
        "diffusers pipeline class; name its pipeline, e.g. wan2.1-i2v=acme_base.other:Plain "
        f"(one of {KNOWN})"
    ]


def test_tiny_model_command_writes_a_marked_directory_and_refuses_a_full_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "svd"
    assert main(["tiny-model", "svd", str(target)]) == 0
    assert (target / "model_index.json").is_file() and (target / TINY_MARKER).read_text() == "svd\n"
    assert (
        json.loads((target / "model_index.json").read_text())["_class_name"]
        == "StableVideoDiffusionPipeline"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["svd"]  # the staging directory is gone
    capsys.readouterr()
    before = sorted(p.name for p in target.iterdir())
    assert main(["tiny-model", "svd", str(target)]) == 4
    assert capsys.readouterr().err == (
        f"error: {target}: exists and is not an empty directory; choose a new "
        f"path (nothing was written)\n"
    )
    assert sorted(p.name for p in target.iterdir()) == before


# -- the checks themselves, on modules built here ------------------------------------------------


class _Pipe:
    """The parts of a pipeline the checks read."""

    def __init__(self, transformer: torch.nn.Module, progress_off: bool = True):
        self.transformer = transformer
        self._progress_bar_config = {"disable": True} if progress_off else {}


def _checks(
    pipe: _Pipe, load_options: tuple[str, ...] = (), offload: str | None = None
) -> dict[str, AppliedOption]:
    return {
        c.option: c
        for c in verify_load(pipe, adapter_for("wan2.1-i2v"), load_options, offload, "cpu")
    }


def test_each_check_fails_on_what_was_not_done() -> None:
    plain = _Pipe(torch.nn.Linear(2, 2), progress_off=False)
    checks = _checks(plain, ("layerwise_fp8", "torch_compile"), "model_cpu_offload")
    assert (
        not checks["layerwise_fp8"].verified
        and checks["layerwise_fp8"].evidence == "transformer weights float32"
    )
    assert (
        not checks["torch_compile"].verified
        and checks["torch_compile"].evidence == "transformer: 0 compiled modules"
    )
    assert checks["model_cpu_offload"] == AppliedOption(
        "model_cpu_offload", False, "no accelerate offload hook on transformer"
    )
    assert (
        not checks["progress_bar_off"].verified and "placement" not in checks
    )  # an offload moves weights
    line = refusal(checks.values(), "the pytest_i2v_load_pipeline hook")
    assert line is not None and line.startswith(
        "layerwise_fp8 was asked for but not applied by the "
        "pytest_i2v_load_pipeline hook (transformer weights float32) "
        "(also not applied: torch_compile, model_cpu_offload, progress_bar_off)"
    )


def test_each_check_passes_on_what_was_done() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    model.compile()  # lazy: nothing is compiled until it runs
    model[0]._hf_hook = object()  # what accelerate's offload leaves on a module
    model._hf_hook = object()
    checks = _checks(_Pipe(model), ("torch_compile",), "model_cpu_offload")
    assert checks["torch_compile"] == AppliedOption(
        "torch_compile", True, "transformer: 1 compiled modules"
    )
    assert checks["model_cpu_offload"].verified
    assert refusal(checks.values(), "x") is None
    sequential = _checks(_Pipe(model), (), "sequential_cpu_offload")["sequential_cpu_offload"]
    assert (
        sequential.verified and sequential.evidence == "transformer: accelerate hooks on its layers"
    )
    group = _checks(_Pipe(torch.nn.Linear(2, 2)), (), "group_offload")["group_offload"]
    assert group == AppliedOption(
        "group_offload", False, "no diffusers group-offload hooks on transformer"
    )


def test_placement_names_where_the_weights_are() -> None:
    meta = torch.nn.Linear(2, 2, device="meta")
    check = _checks(_Pipe(meta))["placement"]
    assert check == AppliedOption("placement", False, "transformer on meta (asked: cpu)")
