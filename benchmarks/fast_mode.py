r"""Fast mode against the full measurement: each config both ways, interleaved, same process.

Prints per config: the predicted total (fast) vs the measured total (full) and the prediction
error; the same prediction made from the first K steps of each full run against that run's own
total (the model's error without run-to-run noise); the peak-memory difference (allocator peak on
a GPU, host RSS peak on the CPU), and the ratio of device time spent measuring (warm-up included)
fast / full.

    python benchmarks/fast_mode.py  # tiny model on the CPU, cpu-profile sizes, 50 steps
    python benchmarks/fast_mode.py --model random --device cuda --dtype fp16 \
        --sizes 256 512 768 1024

Targets: error <= 2 %, memory identical within allocator noise, time ratio <= 0.2 for 50-step
configs."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import i2v
from pytest_i2v.measure.runner import GenerationRunner
from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline


def peak_figure(measurement) -> tuple[int | None, str]:  # type: ignore[no-untyped-def]
    peak = measurement.peak
    if peak.allocated_bytes is not None:
        return peak.allocated_bytes, "allocated"
    return peak.host_rss_bytes, "host RSS"


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[32, 64, 96, 128], help="square output sizes"
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--fast-steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=3, help="fast/full pairs per config, interleaved"
    )
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as work:
        loaded = load_pipeline(PipelineKey(args.model, args.dtype, args.device), Path(work))
        runner = GenerationRunner(loaded.pipe, args.device)
        image = synthetic_portrait()
        print(
            f"model {args.model} ({loaded.provenance}), device {args.device}, {args.dtype}, "
            f"{args.frames} frames, "
            f"{args.steps} steps, fast mode measures {args.fast_steps} steps; "
            f"{args.repeats} repeats, 1 warm-up, "
            f"{args.rounds} interleaved rounds"
        )
        # Warm the process up first (kernel caches, allocator pools, lazy imports): the first
        # measurement of a fresh process is slower and would bias whichever mode ran first.
        for size in args.sizes:
            runner.measure(
                i2v(width=size, height=size, frames=args.frames, steps=args.fast_steps),
                image,
                warmup=1,
                repeats=1,
            )
        header = (
            f"{'config':<16}{'full total':>12}{'fast predicted':>16}{'error':>9}"
            f"{'same-run error':>16}{'peak diff':>14}"
            f"{'time fast/full':>16}"
        )
        print(header)
        print("-" * len(header))
        for size in args.sizes:
            spec = i2v(width=size, height=size, frames=args.frames, steps=args.steps)
            full_totals, fast_totals, full_wall, fast_wall, peak_diffs, same_run = (
                [],
                [],
                0.0,
                0.0,
                [],
                [],
            )
            label = "-"
            for index in range(args.rounds):
                order = ("full", "fast") if index % 2 == 0 else ("fast", "full")
                results = {}
                for mode in order:
                    results[mode] = runner.measure(
                        spec,
                        image,
                        warmup=1,
                        repeats=args.repeats,
                        fast_steps=args.fast_steps if mode == "fast" else None,
                    )
                full, fast = results["full"], results["fast"]
                full_totals.append(full.time_s)
                for sample in full.samples:
                    first = sorted(sample.step_s[: args.fast_steps])[args.fast_steps // 2]
                    predicted = sample.encode_s + args.steps * first + sample.decode_s
                    same_run.append(predicted / sample.total_s - 1)
                fast_totals.append(fast.time_s)
                full_wall += full.wall_s
                fast_wall += fast.wall_s
                (a, label), (b, _) = peak_figure(full), peak_figure(fast)
                if a is not None and b is not None:
                    peak_diffs.append(b - a)
            full_total = sorted(full_totals)[len(full_totals) // 2]
            fast_total = sorted(fast_totals)[len(fast_totals) // 2]
            error = (fast_total / full_total - 1) * 100
            peak_diff = max(peak_diffs, key=abs) if peak_diffs else None
            ratio = fast_wall / full_wall
            same = sorted(same_run)[len(same_run) // 2] * 100
            rows.append(
                {
                    "size": size,
                    "full_s": full_total,
                    "fast_s": fast_total,
                    "error_pct": error,
                    "same_run_error_pct": same,
                    "peak_diff_bytes": peak_diff,
                    "time_ratio": ratio,
                }
            )
            diff = f"{peak_diff / 2**20:+.1f} MiB" if peak_diff is not None else "-"
            print(
                f"{f'{size}x{size}':<16}{full_total:>11.3f}s{fast_total:>15.3f}s{error:>+8.2f}%"
                f"{same:>+15.2f}%{diff:>14}{ratio:>16.3f}"
            )
        print(
            f"peak figure: {label}; targets: |error| <= 2 %, peak diff within allocator noise, "
            f"time ratio <= 0.2 at 50 steps"
        )
    return rows


if __name__ == "__main__":
    main()
