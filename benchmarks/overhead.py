"""Harness overhead: a measured repeat (hooks, RSS reset, NVML sampling where present) vs a bare
pipeline call, same process, same pipeline, interleaved so drift hits both alike.

    python benchmarks/overhead.py [--rounds 30] [--model tiny|random] [--device cpu|cuda]

Prints the median of both and the overhead ratio (target <= 1 %), for a full measurement and for
fast mode (the harness measuring --fast-steps steps against a bare call of that many steps).
NVML sampling is on wherever NVML works (a GPU machine)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import i2v
from pytest_i2v.measure.runner import GenerationRunner, generate
from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument(
        "--size", type=int, default=64, help="square output size (64 = the cpu profile's 512p)"
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--fast-steps", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        loaded = load_pipeline(PipelineKey(args.model, args.dtype, args.device), Path(work))
        spec = i2v(width=args.size, height=args.size, frames=args.frames, steps=args.steps)
        image = synthetic_portrait()
        runner = GenerationRunner(loaded.pipe, args.device)
        device = runner.device
        nvml = (
            "sampling every 10 ms"
            if device.is_cuda and device.nvml_memory().used_bytes
            else "unavailable"
        )
        print(
            f"model {args.model} ({loaded.provenance}), device {args.device}, "
            f"{args.size}x{args.size}, "
            f"{args.frames} frames, {args.steps} steps, {args.rounds} interleaved rounds, "
            f"NVML: {nvml}"
        )
        for mode, fast_steps in (("full", None), ("fast", args.fast_steps)):
            bare_spec = i2v(
                width=args.size,
                height=args.size,
                frames=args.frames,
                steps=fast_steps or args.steps,
            )

            def bare() -> float:
                device.synchronize()
                started = time.perf_counter()
                generate(loaded.pipe, bare_spec, image)  # noqa: B023 (called only in this iteration)
                device.synchronize()
                return time.perf_counter() - started

            def harness() -> float:
                started = time.perf_counter()
                runner.measure(spec, image, warmup=0, repeats=1, fast_steps=fast_steps)  # noqa: B023 (called only in this iteration)
                return time.perf_counter() - started

            for _ in range(3):  # warm-up both paths
                bare(), harness()
            bare_s, harness_s = [], []
            for index in range(args.rounds):
                # alternate which goes first so neither always runs on a warmer cache
                pair = (bare, harness) if index % 2 == 0 else (harness, bare)
                for func in pair:
                    (bare_s if func is bare else harness_s).append(func())
            paired = statistics.median(h / b for h, b in zip(harness_s, bare_s, strict=True))
            steps = fast_steps or args.steps
            print(
                f"{mode:<5} ({steps:>2} steps): "
                f"bare call {statistics.median(bare_s) * 1000:8.1f} ms, measured repeat "
                f"{statistics.median(harness_s) * 1000:8.1f} ms, "
                f"overhead (median of paired ratios) {(paired - 1) * 100:+.2f} %"
                f"   target <= 1 %"
            )


if __name__ == "__main__":
    main()
