"""The pytest glue: options, ini keys, markers, validation, fixtures, OOM, JSON, JUnit."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

SMALL = 'resolution="256p", frames=2, steps=10'  # on the cpu profile: 32x32, 2 frames, 2 steps


def test_plugin_loads_through_its_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*image-to-video performance (pytest-i2v)*",
            "*--gpu-profile=NAME|auto*",
            "*--i2v-repeats=N*",
            "*i2v_repeats (string):*",
        ]
    )


def test_markers_text_comes_from_the_mark_signature(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.i2v(resolution: *frames: *= None*pipeline: *= None*unset sizes, "
            "frames, steps, guidance and fps are the pipeline's native ones; pipeline names: "
            "i2vgen-xl, svd, wan2.1-i2v, wan2.2-i2v, ltx-video, cogvideox-i2v, hunyuanvideo-i2v "
            "(default i2vgen-xl*"
        ]
    )


def test_header_names_profile_model_and_scaling(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile("def test_nothing(i2v_profile): pass")
    result = i2v_project.runpytest()
    result.stdout.fnmatch_lines(
        [
            "i2v: profile cpu (*), device cpu, pipeline i2vgen-xl, model tiny, dtype fp32",
            "i2v: cpu profile scales the study down: sizes /8 (256p->32x32*1024p->128x128); "
            "steps /5 (50->10); frames /4 (16->4)",
        ]
    )


def test_example_from_the_readme_runs_and_writes_json(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.i2v({SMALL}, guidance=9.0, fps=8)
        def test_small(i2v_run):
            result = i2v_run()
            assert result.outcome == "ok"
        """
    )
    result = i2v_project.runpytest("--i2v-json", "out/results.json", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=1)
    document = json.loads((i2v_project.path / "out/results.json").read_text())
    assert document["schema"] == "pytest-i2v/results" and document["schema_version"] == 4
    env = document["environment"]
    for key in (
        "gpu_name",
        "driver",
        "cuda",
        "cudnn",
        "torch",
        "diffusers",
        "transformers",
        "python",
        "profile",
    ):
        assert key in env
    assert env["profile"] == "cpu" and env["torch"].startswith("2.")
    (record,) = document["records"]
    assert record["nodeid"] == "test_example_from_the_readme_runs_and_writes_json.py::test_small"
    config = record["config"]
    assert (config["width"], config["height"], config["frames"], config["steps"]) == (32, 32, 2, 2)
    assert config["study"] == {"width": 256, "height": 256, "frames": 2, "steps": 10}
    assert (
        config["source"] == "tiny"
        and config["provenance"] == "tiny-random-weights"
        and config["dtype"] == "fp32"
    )
    assert record["outcome"] == "ok" and record["repeats"] == 1
    assert record["time_s"] == record["time_samples_s"][0] > 0
    assert record["gen_fps"] == pytest.approx(2 / record["time_s"])
    stages = record["stages"]
    assert len(stages["step_samples_s"][0]) == 2 and stages["step_s"] > 0
    assert stages["encode_s"] > 0 and stages["decode_s"] > 0 and stages["denoise_s"] > 0
    peak = record["peak_memory"]
    assert (
        peak["host_rss_bytes"] > 0
        and peak["allocated_bytes"] is None
        and peak["device_bytes"] is None
    )
    assert record["load_s"] > 0
    assert document["profile"]["scaling"] == {
        "size_divisor": 8,
        "steps_divisor": 5,
        "min_size": 8,
        "frames_divisor": 4,
    }
    junit = ET.parse(i2v_project.path / "junit.xml")
    props = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert props["i2v_outcome"] == "passed" and props["i2v_measured"] == "ok"
    assert float(props["i2v_time_s"]) > 0 and "i2v_step_s" in props


def test_pipeline_is_loaded_once_for_many_tests(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.i2v({SMALL})
        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_many(n, i2v_run, i2v_spec):
            assert i2v_spec.frames == 2
            assert i2v_run().outcome == "ok"

        @pytest.mark.i2v({SMALL}, memory=["vae_slicing"])
        def test_toggle(i2v_run, i2v_pipeline):
            assert i2v_pipeline.vae.use_slicing
            assert i2v_run().outcome == "ok"

        def test_after(i2v_pipeline):
            assert not i2v_pipeline.vae.use_slicing  # toggles are undone after each test
        """
    )
    result = i2v_project.runpytest("--i2v-json", "r.json")
    result.assert_outcomes(passed=5)
    document = json.loads((i2v_project.path / "r.json").read_text())
    assert len(document["records"]) == 4
    assert [p["key"] for p in document["pipelines"]] == ["i2vgen-xl: tiny (fp32, cpu)"]


def test_cli_overrides_ini(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.i2v({SMALL})
        def test_a(i2v_run):
            assert i2v_run().repeats == 2
        """
    )
    i2v_project.runpytest("--i2v-repeats", "2").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ('resolution="480p"', "*test_bad.py::test_bad: resolution='480p' is not a preset*"),
        (
            "width=500, height=512",
            "*test_bad.py::test_bad: width=500 is not a multiple of 8 (try 496 or 504)*",
        ),
        ("frames=0", "*test_bad.py::test_bad: frames=0 must be >= 1*"),
        (
            'memory=["gradient_checkpointing"]',
            "*memory option 'gradient_checkpointing' is unknown*",
        ),
        (
            "frame=16",
            "*test_bad.py::test_bad: @pytest.mark.i2v: got an unexpected keyword argument "
            "'frame'; see pytest --markers*",
        ),
    ],
)
def test_bad_marks_are_usage_errors_naming_the_test(
    i2v_project: pytest.Pytester, mark: str, message: str
) -> None:
    i2v_project.makepyfile(
        test_bad=f"""
        import pytest

        @pytest.mark.i2v({mark})
        def test_bad(i2v_run):
            i2v_run()
        """
    )
    result = i2v_project.runpytest("--i2v-json", "r.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert not (i2v_project.path / "r.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--i2v-repeats", "0"], "ERROR: --i2v-repeats = '0': must be >= 1"),
        (["--gpu-profile", "rtx9090"], "ERROR: unknown GPU profile 'rtx9090'; known profiles: *"),
        (
            ["--gpu-profile", "rtx4090"],
            "ERROR: --gpu-profile rtx4090 expects a 24 GB GPU named like 'RTX 4090' "
            "but this machine has no GPU*",
        ),
        (["--i2v-device", "cuda"], "ERROR: --i2v-device cuda: CUDA is not available here*"),
        (["--i2v-dtype", "fp16"], "ERROR: --i2v-dtype fp16 on the CPU: *use fp32 or bf16"),
        (["--i2v-model", "./no/such/dir"], "ERROR: --i2v-model ./no/such/dir: no such directory*"),
    ],
)
def test_bad_options_are_usage_errors(
    i2v_project: pytest.Pytester, args: list[str], message: str
) -> None:
    i2v_project.makepyfile("def test_nothing(i2v_spec): pass")
    result = i2v_project.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    ("args", "usage_error"),
    [
        (["--i2v-repeats", "0"], True),  # a bad value: whatever the tests
        (["--gpu-profile", "rtx9090"], True),  # an explicit profile that does not exist
        (
            ["--gpu-profile", "rtx4090"],
            False,
        ),  # matching it to the GPU needs the device: only for i2v tests
        (["--i2v-model", "./no/such/dir"], False),
    ],
)
def test_a_run_without_i2v_tests_only_checks_what_is_cheap(
    i2v_project: pytest.Pytester, args: list[str], usage_error: bool
) -> None:
    i2v_project.makepyfile("def test_nothing(): pass")
    (i2v_project.path / "baselines").mkdir()
    (i2v_project.path / "baselines" / "cpu.yaml").write_text(
        "{not: yaml: ["
    )  # never read without i2v tests
    result = i2v_project.runpytest_subprocess(*args)
    assert (result.ret == pytest.ExitCode.USAGE_ERROR) is usage_error, result.stderr.str()


def test_fixtures_give_profile_spec_image_and_pipeline(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        """
        import pytest

        @pytest.mark.i2v(resolution="768p", frames=4)
        def test_fixtures(i2v_profile, i2v_spec, i2v_input_image, i2v_pipeline):
            assert i2v_profile.name == "cpu"
            # frames /4, never below 2
            assert (i2v_spec.width, i2v_spec.steps, i2v_spec.frames) == (96, 10, 2)
            assert i2v_input_image.size == (768, 768)
            assert type(i2v_pipeline).__name__ == "I2VGenXLPipeline"
        """
    )
    i2v_project.runpytest().assert_outcomes(passed=1)


def test_user_input_image_from_ini(i2v_project: pytest.Pytester) -> None:
    from pytest_i2v.generation.inputs import synthetic_portrait

    synthetic_portrait(100, 60).save(i2v_project.path / "me.png")
    i2v_project.makeini("[pytest]\ni2v_repeats = 1\ni2v_warmup = 0\ni2v_input_image = me.png\n")
    i2v_project.makepyfile(
        "def test_image(i2v_input_image):\n    assert i2v_input_image.size == (100, 60)\n"
    )
    i2v_project.runpytest().assert_outcomes(passed=1)


def test_cuda_only_memory_options_skip_on_cpu(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.i2v({SMALL}, memory=["model_cpu_offload"])
        def test_offload(i2v_run):
            i2v_run()
        """
    )
    result = i2v_project.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["*memory option model_cpu_offload needs a CUDA device (this run is on cpu)*"]
    )


def test_oom_fails_that_test_and_the_session_goes_on(i2v_project: pytest.Pytester) -> None:
    i2v_project.makeconftest(
        """
        import pytest, torch

        OOM = "CUDA out of memory. Tried to allocate 9.00 GiB"

        @pytest.fixture
        def oom_on_step_2(i2v_pipeline):
            calls = {"n": 0}
            def explode(*_):
                calls["n"] += 1
                # call 1: step 1; call 2: step 2 (the CPU profile counts no FLOPs: no unmeasured
                # generation first)
                if calls["n"] == 2:
                    raise torch.cuda.OutOfMemoryError(OOM)
            handle = i2v_pipeline.unet.conv_in.register_forward_pre_hook(explode)
            yield
            handle.remove()
        """
    )
    i2v_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.i2v({SMALL})
        def test_1_oom(oom_on_step_2, i2v_run):
            result = i2v_run()
            assert result.outcome == "oom"

        @pytest.mark.i2v({SMALL})
        def test_2_next(i2v_run):
            assert i2v_run().outcome == "ok"
        """
    )
    result = i2v_project.runpytest("--i2v-json", "r.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*i2v: out of memory during step 2 (32x32, 2 frames): CUDA out of memory. "
            "Tried to allocate 9.00 GiB. Memory was freed; the session goes on.*"
        ]
    )
    records = {
        r["nodeid"].split("::")[1]: r
        for r in json.loads((i2v_project.path / "r.json").read_text())["records"]
    }
    assert records["test_1_oom"]["outcome"] == "oom"
    assert (
        records["test_1_oom"]["oom"]["stage"] == "denoise"
        and records["test_1_oom"]["oom"]["step"] == 2
    )
    assert records["test_2_next"]["outcome"] == "ok"


def test_terminal_summary_lists_results_and_the_json_path(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.i2v({SMALL})
        def test_one(i2v_run):
            i2v_run()
        """
    )
    result = i2v_project.runpytest("--i2v-json", "r.json")
    result.stdout.fnmatch_lines(
        [
            "*- i2v results (profile cpu) -*",
            "*::test_one: 32x32, 2 frames, 2 steps (marked 256x256, 2 frames, 10 steps) | "
            "median * s over 1 repeats (good), * frames/s, step * ms, peak * MiB (peak host RSS) | "
            "time -, memory - | passed",
            "i2v results written to */r.json",
        ]
    )


def test_custom_pipeline_factory_hook(i2v_project: pytest.Pytester) -> None:
    i2v_project.makeconftest(
        """
        import pytest
        from pytest_i2v.pipelines.loading import load_pipeline

        CALLS = []

        def pytest_i2v_load_pipeline(key, work_dir):
            CALLS.append(key)
            loaded = load_pipeline(key, work_dir)
            loaded.provenance = "from-conftest"
            return loaded

        @pytest.fixture
        def calls():
            return CALLS
        """
    )
    i2v_project.makepyfile(
        f"""
        import pytest

        @pytest.mark.i2v({SMALL})
        def test_one(i2v_run, calls):
            assert i2v_run().config["provenance"] == "from-conftest"
            assert len(calls) == 1
        """
    )
    i2v_project.runpytest().assert_outcomes(passed=1)
