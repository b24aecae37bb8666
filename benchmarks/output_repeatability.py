"""How repeatable is unchanged code's output, through the plugin itself, and what does keeping the
output cost? Measured side by side in one run:

- repeatability: ``--processes`` fresh pytest processes (default 20) per device and dtype — the
  CPU (fp32) and the simulated CUDA device (an H200 computing on the CPU: fp32 and bf16) — each run
  a two-test project (tiny I2VGen-XL, tiny Wan 2.1); printed: how many distinct outputs the
  processes gave per test, the worst PSNR against the first process's, and whether each
  process's own two measured generations agreed (``output_repeat``);
- cost (``--main-job N``): the README's main job (``pytest suites/``) run N times with the output
  record and N times without it (a plugin that turns ``reduce_output`` into a no-op), interleaved;
  printed: pytest's wall time and the results file's size, each run.

    python benchmarks/output_repeatability.py [--processes 20] [--main-job 2] [--json PATH]"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_i2v.record.output import compare_outputs  # noqa: E402
from pytest_i2v.record.parts import OutputReference  # noqa: E402

PROJECT_TESTS = """
import pytest

@pytest.mark.i2v(resolution="256p", frames=4, steps=10, seed=1)
def test_i2vgen_xl(i2v_run):
    i2v_run()

@pytest.mark.i2v(pipeline="wan2.1-i2v", width=64, height=64, frames=5, steps=10, seed=1)
def test_wan(i2v_run):
    i2v_run()
"""
INI = "[pytest]\ni2v_repeats = 2\ni2v_warmup = 0\nfilterwarnings = ignore::FutureWarning\n"
# device label -> (extra pytest arguments, extra environment)
DEVICES: dict[str, tuple[list[str], dict[str, str]]] = {
    "cpu fp32": ([], {}),
    "simulated H200 fp32": (
        ["-p", "pytest_i2v.simulated_plugin", "--i2v-model", "tiny", "--i2v-dtype", "fp32"],
        {"PYTEST_I2V_SIMULATED_GPUS": json.dumps([{"name": "NVIDIA H200"}])},
    ),
    "simulated H200 bf16": (
        ["-p", "pytest_i2v.simulated_plugin", "--i2v-model", "tiny", "--i2v-dtype", "bf16"],
        {"PYTEST_I2V_SIMULATED_GPUS": json.dumps([{"name": "NVIDIA H200"}])},
    ),
}
NO_OUTPUT_PLUGIN = """
import pytest_i2v.measure.runner as runner

runner.reduce_output = lambda frames, latents=None: None  # the output record off: nothing kept
"""


def _run(project: Path, args: list[str], env: dict[str, str], json_path: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    command += [*args, "--i2v-json", str(json_path), "--i2v-baseline-dir", "bl"]
    subprocess.run(command, cwd=project, env={**os.environ, **env}, check=True, capture_output=True)
    document: dict[str, Any] = json.loads(json_path.read_text())
    return document


def repeatability(processes: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "test_repeat.py").write_text(PROJECT_TESTS)
        (project / "pytest.ini").write_text(INI)
        for device, (args, env) in DEVICES.items():
            outputs: dict[str, list[OutputReference]] = {}
            repeats_identical = True
            for index in range(processes):
                document = _run(project, args, env, project / f"r{index}.json")
                for record in document["records"]:
                    name = record["nodeid"].split("::")[1]
                    outputs.setdefault(name, []).append(OutputReference(**record["output"]))
                    repeat = record["output_repeat"]
                    repeats_identical &= bool(repeat and repeat["identical"])
            for name, refs in outputs.items():
                distinct = {ref.packed for ref in refs}
                figures = [compare_outputs(refs[0], ref) for ref in refs[1:]]
                psnrs = [f.min_psnr_db for f in figures if f.min_psnr_db is not None]
                rows.append(
                    {
                        "device": device,
                        "test": name,
                        "processes": len(refs),
                        "distinct_outputs": len(distinct),
                        "worst_psnr_db": min(psnrs) if psnrs else None,
                        "repeat_identical_in_every_process": repeats_identical,
                    }
                )
                spread = f"worst PSNR {min(psnrs):.1f} dB" if psnrs else "all identical"
                print(
                    f"{device:20} {name:15} {len(refs)} processes: {len(distinct)} distinct "
                    f"output(s), {spread}; each process's two generations identical: "
                    f"{repeats_identical}",
                    flush=True,
                )
    return rows


def main_job_cost(runs: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plugin_dir = Path(tmp)
        (plugin_dir / "no_output_record.py").write_text(NO_OUTPUT_PLUGIN)
        for index in range(runs):
            for with_output in (True, False):
                out = plugin_dir / f"main-{index}-{with_output}"
                args = [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:cacheprovider"]
                args += [
                    "--i2v-json",
                    str(out / "results.json"),
                    "--i2v-report",
                    str(out / "r.html"),
                ]
                env = dict(os.environ)
                if not with_output:
                    args += ["-p", "no_output_record"]
                    env["PYTHONPATH"] = f"{plugin_dir}{os.pathsep}{env.get('PYTHONPATH', '')}"
                started = time.perf_counter()
                done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - started
                found = re.search(r" in ([0-9.]+)s", done.stdout)
                size = (out / "results.json").stat().st_size
                html = (out / "r.html").stat().st_size
                row = {
                    "output_record": with_output,
                    "pytest_s": float(found.group(1)) if found else None,
                    "wall_s": round(wall, 1),
                    "results_bytes": size,
                    "report_bytes": html,
                    "exit": done.returncode,
                }
                rows.append(row)
                print(
                    f"main job {'with' if with_output else 'without'} the output record: "
                    f"{row['pytest_s']} s by pytest's clock, results {size / 1e6:.2f} MB, "
                    f"report {html / 1e6:.2f} MB, exit {done.returncode}",
                    flush=True,
                )
                if done.returncode not in (0, 1) or size < 100_000:
                    raise SystemExit(f"the main job did not run its tests:\n{done.stdout[-2000:]}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--main-job", type=int, default=0, help="runs of each (0: not measured)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    figures = {
        "repeatability": repeatability(args.processes) if args.processes else [],
        "main_job": main_job_cost(args.main_job) if args.main_job else [],
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
