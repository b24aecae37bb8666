"""The commands that start a user's repository: ``init`` (a starter conftest, ini, test and
workflow) and ``tiny-model`` (a tiny random model directory for CPU runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pytest_i2v.pipelines import pipeline_names
from pytest_i2v.starter import InitOptions, init_report, plan_starter, write_starter

# The tiny model's builder is imported inside _cmd_tiny_model: it loads torch and diffusers
# (seconds), which `init` never needs.


def _cmd_tiny_model(args: argparse.Namespace) -> str:
    from pytest_i2v.pipelines.tiny_model import save_tiny_model

    directory = save_tiny_model(args.pipeline, args.directory)
    return (
        f"wrote a tiny random {args.pipeline} model to {directory}; run your tests on it with "
        f"--i2v-model {directory} (or ini i2v_model = {directory})"
    )


def _cmd_init(args: argparse.Namespace) -> str:
    starter = plan_starter(
        InitOptions(
            pipeline=args.pipeline,
            model=args.model,
            pipeline_class=args.pipeline_class,
            size=args.size,
            frames=args.frames,
            steps=args.steps,
            memory=args.memory,
            profiles=args.profiles,
            vram_budget=args.vram_budget,
            time_budget=args.time_budget,
            directory=Path(args.dir),
            workflow_ref=args.workflow_ref,
            torch_index_url=args.torch_index_url,
            runner_labels=args.runner_labels,
        )
    )
    return init_report(starter, write_starter(starter))


def _add_init(commands: Any) -> None:
    init = commands.add_parser(
        "init",
        help="write a starter for your repository: conftest.py, pytest.ini, "
        "tests/test_i2v.py, .github/workflows/i2v.yml (never overwrites)",
    )
    for flag, metavar, text in (
        ("--pipeline", "NAME", "required: the test's pipeline (i2vgen-xl, svd, wan2.1-i2v, ...)"),
        (
            "--model",
            "SOURCE",
            "ini i2v_model: a local diffusers directory, a hub id, tiny or "
            "random (default: each profile's)",
        ),
        ("--pipeline-class", "module:Class", "ini i2v_pipeline_class: your own pipeline class"),
        ("--size", "WxH", "the test's size (default: the pipeline's native one)"),
        ("--frames", "N", "the test's frames (default: native)"),
        ("--steps", "N", "the test's denoising steps (default: native)"),
        ("--memory", "a,b", "the mark's memory options, e.g. vae_tiling"),
        ("--profiles", "a,b", "GPU profiles the workflow gates on (default cpu)"),
        ("--vram-budget", "GB", "add @pytest.mark.vram_budget(GB)"),
        ("--time-budget", "SECONDS", "add @pytest.mark.time_budget(SECONDS)"),
        ("--dir", "PATH", "the repository root to write in (default .)"),
        (
            "--workflow-ref",
            "OWNER/REPO@REF",
            "the pytest-i2v repository whose i2v-gate.yml is "
            "called (default: OWNER/pytest-i2v@v<version>)",
        ),
        (
            "--torch-index-url",
            "URL",
            "the workflow's torch build (default: the CPU build for "
            "cpu, CUDA 12.8 for GPU profiles)",
        ),
        (
            "--runner-labels",
            "JSON",
            "the workflow's runs-on, {0}: the profile (default: "
            "ubuntu-latest for cpu, else self-hosted gpu-{0})",
        ),
    ):
        init.add_argument(flag, metavar=metavar, help=text.replace("%", "%%"))
    init.set_defaults(handler=_cmd_init, profiles="cpu", dir=".")


def add_start_commands(commands: Any) -> None:
    """``init`` and ``tiny-model``, on the CLI's subcommands."""
    _add_init(commands)
    tiny = commands.add_parser(
        "tiny-model",
        help="write a tiny random model directory of a supported "
        "pipeline, for CPU runs of your tests",
    )
    tiny.add_argument(
        "pipeline", help=f"the pipeline, e.g. wan2.1-i2v (one of: {', '.join(pipeline_names())})"
    )
    tiny.add_argument("directory", help="where to write it (a new or empty directory)")
    tiny.set_defaults(handler=_cmd_tiny_model)
