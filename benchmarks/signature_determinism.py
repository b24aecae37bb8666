"""Is the work signature of unchanged code the same in every fresh process? And what does it cost?

Builds the tiny I2VGen-XL once, then starts ``--processes`` fresh Python processes (default 20) per
device (the CPU and the simulated H200, whose kernel and copy records come from
``measure.simulated_libs.SimulatedKernels``). Each loads the pipeline, runs one unprofiled 5-step
generation and then one profiled one (``measure.profiling.profile_work``), and prints the digest,
the number of rows, the profiled call's time and the unprofiled generation's time. The script
prints the number of distinct digests per device (target: 1) and the median cost ratio.

    python benchmarks/signature_determinism.py [--processes 20] [--size 64]"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
from dataclasses import replace
from pathlib import Path
import pytest_i2v.simulated_plugin as simulated
from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import i2v
from pytest_i2v.measure.profiling import profile_work
from pytest_i2v.measure.runner import generate
from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline

source, device_name, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
key = PipelineKey(source=str(source), dtype="fp32", device="cpu")
pipe = load_pipeline(key, source.parent).pipe
device = simulated.RUNTIME.open(device_name)
spec = i2v(width=size, height=size, frames=4, steps=10)
image = synthetic_portrait(128, 128)
generate(pipe, replace(spec, steps=5), image)  # warm
started = time.perf_counter()
generate(pipe, replace(spec, steps=5), image)
plain = time.perf_counter() - started
started = time.perf_counter()
signature = profile_work(pipe, spec, image, device)
profiled = time.perf_counter() - started
rows = sum(len(stage.rows) for stage in signature.stages.values())
result = {"digest": signature.digest, "rows": rows, "profiled_s": profiled, "plain_s": plain}
print(json.dumps(result))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument(
        "--size", type=int, default=64, help="generation width and height (default: 64)"
    )
    args = parser.parse_args()
    from pytest_i2v.pipelines.i2vgen_xl_tiny import save_tiny_pipeline

    with tempfile.TemporaryDirectory(prefix="signature-determinism-") as work:
        source = save_tiny_pipeline(Path(work))
        script = Path(work) / "child.py"
        script.write_text(CHILD)
        for device in ("cpu", "cuda:0"):
            seen = []
            for index in range(args.processes):
                completed = subprocess.run(
                    [sys.executable, str(script), str(source), device, str(args.size)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if completed.returncode != 0:
                    sys.exit(f"process {index + 1} on {device} failed:\n{completed.stderr[-2000:]}")
                seen.append(json.loads(completed.stdout.strip().splitlines()[-1]))
            digests = {s["digest"] for s in seen}
            ratio = statistics.median(s["profiled_s"] / s["plain_s"] for s in seen)
            print(
                f"{device}: {len(digests)} distinct digest(s) in {len(seen)} fresh processes "
                f"({seen[0]['rows']} rows); "
                f"profiled call {statistics.median(s['profiled_s'] for s in seen):.2f} s, "
                f"unprofiled 5-step generation "
                f"{statistics.median(s['plain_s'] for s in seen):.2f} s, "
                f"ratio {ratio:.1f}x (medians)",
                flush=True,
            )


if __name__ == "__main__":
    main()
