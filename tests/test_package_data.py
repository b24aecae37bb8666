"""A non-editable install finds its data: the published reference, the model configs, the profiles.

The wheel is built from a copy of the package (not in the repository: an in-tree build would
leave ``build/`` and ``*.egg-info`` there) with ``--no-build-isolation --no-index``, so it runs
offline with the setuptools already installed. It is installed with ``pip install --target`` and
run from a temporary working directory with ``PYTHONPATH`` set to that target, so the
repository's source cannot be imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What the plugin reads at run time, called the way session.py and models/fullsize.py call it.
_PROBE = """
import json, sys
import pytest_i2v
from pytest_i2v.study.reference import (
    SHIPPED_REFERENCE,
    compare_published,
    load_reference,
    shipped_reference,
)
from pytest_i2v.pipelines.i2vgen_xl_fullsize import _config
from pytest_i2v.profiles import load_profiles
assert SHIPPED_REFERENCE.is_file()
reference = shipped_reference()
assert load_reference(SHIPPED_REFERENCE) == reference
print(json.dumps({"file": pytest_i2v.__file__, "reference": reference,
                  "published": compare_published([], reference)["provenance"],
                  "unet_keys": len(_config("unet")), "profiles": sorted(load_profiles())}))
"""


def _records() -> list[dict[str, object]]:
    """Four sizes on the study's shape: enough for ``recommend`` to fit its matrix."""
    gib = 2**30
    records: list[dict[str, object]] = []
    for size, time_s, peak in (
        (256, 9.1, 6 * gib),
        (512, 18.0, 8 * gib),
        (768, 33.6, 11 * gib),
        (1024, 61.0, 15 * gib),
    ):
        records.append(
            {
                "nodeid": f"suites/test_resolution_sweep.py::test_resolution_sweep[{size}p]",
                "outcome": "ok",
                "time_s": time_s,
                "repeats": 5,
                "config": {
                    "width": size,
                    "height": size,
                    "frames": 16,
                    "steps": 50,
                    "guidance": 9.0,
                    "fps": 8,
                    "dtype": "fp16",
                    "memory": [],
                    "resolution": f"{size}p",
                    "source": "random",
                    "provenance": "full-size-random-weights",
                    "device": "cuda",
                },
                "stages": {
                    "encode_s": 0.5,
                    "denoise_s": time_s - 1.5,
                    "step_s": (time_s - 1.5) / 50,
                    "decode_s": 1.0,
                },
                "peak_memory": {
                    "allocated_bytes": peak,
                    "reserved_bytes": peak + gib,
                    "device_bytes": peak + 2 * gib,
                },
            }
        )
    return records


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built as a wheel and installed, non-editable, into a bare directory."""
    pytest.importorskip(
        "setuptools",
        minversion="68",
        reason="the offline wheel build uses the installed setuptools",
    )
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "pytest_i2v",
        source / "pytest_i2v",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    dist, target = root / "dist", root / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dist),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    )
    (wheel,) = dist.glob("pytest_i2v-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "pytest_i2v/data/rtx4090-published.yaml" in names
    assert "pytest_i2v/pipelines/configs/i2vgen-xl/unet/config.json" in names
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return target


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST"))}
    env["PYTHONPATH"] = str(site)  # ahead of the venv's editable install of the repository
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_installed_wheel_reads_its_package_data(site: Path, tmp_path: Path) -> None:
    completed = _run(site, tmp_path, "-c", _PROBE)
    assert completed.returncode == 0, completed.stderr
    found = json.loads(completed.stdout)
    assert Path(found["file"]).resolve().is_relative_to(site.resolve()), found["file"]
    assert found["reference"]["provenance"] == "published"
    assert "RTX 4090" in found["reference"]["hardware"]["gpu"]
    assert [r["time_s"] for r in found["reference"]["rows"][:4]] == [18.2, 36.5, 67.3, 112.6]
    assert (
        found["published"] == "published" and found["unet_keys"] > 0 and "cpu" in found["profiles"]
    )


def test_installed_wheel_runs_recommend(site: Path, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "schema": "pytest-i2v/results",
                "schema_version": 1,
                "profile": {
                    "name": "h100-80gb",
                    "memory_gb": 80.0,
                    "scaling": {"size_divisor": 1, "steps_divisor": 1, "min_size": 8},
                },
                "settings": {"latency_thresholds": [30.0, 60.0]},
                "records": _records(),
            }
        )
    )
    where = _run(site, tmp_path, "-c", "import pytest_i2v; print(pytest_i2v.__file__)")
    assert Path(where.stdout.strip()).resolve().is_relative_to(site.resolve()), (
        where.stdout + where.stderr
    )
    completed = _run(site, tmp_path, "-m", "pytest_i2v", "recommend", str(results))
    assert completed.returncode == 0, completed.stderr
    assert "1024" in completed.stdout, completed.stdout


OWN_PIPELINE = """from diffusers import WanImageToVideoPipeline


class AcmeWanI2VPipeline(WanImageToVideoPipeline):
    '''The team's own pipeline class.'''
"""
REPLACING_LOADER = """from acme.pipelines import AcmeWanI2VPipeline
from pytest_i2v import LoadedPipeline


def pytest_i2v_load_pipeline(key, work_dir):
    return LoadedPipeline(key, AcmeWanI2VPipeline.from_pretrained(key.source), 0.0, "real-weights")
"""


def test_a_users_repository_from_the_wheel(site: Path, tmp_path: Path) -> None:
    """The issue's "done when", outside this checkout: a tiny Wan directory whose model_index names
    the team's class, ``init``, then the starter test at 832x480, 81 frames with layerwise fp8 on
    the CPU default through that class: applied and verified in the record. The same class through a
    loader hook that skips fp8: refused in one line."""
    repo = tmp_path / "acme-video"
    (repo / "acme").mkdir(parents=True)
    (repo / "acme" / "__init__.py").write_text("")
    (repo / "acme" / "pipelines.py").write_text(OWN_PIPELINE)
    made = _run(site, repo, "-m", "pytest_i2v", "tiny-model", "wan2.1-i2v", "models/wan")
    assert made.returncode == 0, made.stderr
    index_file = repo / "models" / "wan" / "model_index.json"
    index_file.write_text(
        json.dumps({**json.loads(index_file.read_text()), "_class_name": "AcmeWanI2VPipeline"})
    )
    init = _run(
        site,
        repo,
        "-m",
        "pytest_i2v",
        "init",
        "--pipeline",
        "wan2.1-i2v",
        "--model",
        "models/wan",
        "--pipeline-class",
        "acme.pipelines:AcmeWanI2VPipeline",
        "--size",
        "832x480",
        "--frames",
        "81",
        "--memory",
        "layerwise_fp8",
    )
    assert init.returncode == 0, init.stderr
    assert "memory=('layerwise_fp8',)" in (repo / "tests" / "test_i2v.py").read_text()

    run = _run(site, repo, "-m", "pytest", "-p", "no:cacheprovider", "-q")
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads((repo / "i2v-results" / "results.json").read_text())
    (record,) = document["records"]
    config = record["config"]
    assert (config["width"], config["height"], config["frames"]) == (
        96,
        48,
        21,
    )  # the cpu profile's scaling
    assert config["pipeline_class"] == "acme.pipelines:AcmeWanI2VPipeline" and config["memory"] == [
        "layerwise_fp8"
    ]
    fp8 = next(a for a in config["applied_options"] if a["option"] == "layerwise_fp8")
    assert fp8["verified"] and "float8_e4m3fn" in fp8["evidence"], fp8
    assert config["loaded_by"] == "pytest-i2v's loader"

    (repo / "conftest.py").write_text(REPLACING_LOADER)
    refused = _run(site, repo, "-m", "pytest", "-p", "no:cacheprovider", "-q")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    line = (
        "layerwise_fp8 was asked for but not applied by the pytest_i2v_load_pipeline hook "
        "(transformer weights float32); let the plugin load and apply it: set ini "
        "i2v_pipeline_class = NAME=module:Class for your class, or wrap the loaded pipeline in "
        "pytest_i2v_wrap_pipeline(pipe, key) instead of replacing the loader"
    )
    assert refused.stdout.splitlines().count(line) == 1, refused.stdout
