"""What does each diffusers cache (``pytest_i2v.pipelines.caches``, at its defaults) buy and cost on
the tiny random-weight pipelines? Measured side by side in ONE process, per cache-capable pipeline:

- the generation: the pipeline's native settings scaled down by the ``cpu`` profile (the one
  ``pytest suites/ -m speed_fidelity`` runs), with ``--steps`` denoising steps so the caches engage;
- speed: ``--repeats`` timed generations of the native run and of each cache, interleaved (native,
  cache 1, cache 2, ... then again), each after one untimed warm-up; the speed-up is the native
  median over the cache's median, with each variant's min-max;
- fidelity: the cache's output against the native one (``record.output.compare_outputs`` on
  ``measure.output.reduce_output``): the worst frame's PSNR, the mean SSIM, the final latents'
  cosine and RMSE where the pipeline hands them over, and the verdict on the ``cpu`` profile's
  lossless and lossy bars (``verdict.fidelity.fidelity_verdict``, the native run's own repeat as
  the base of the latents rule); the native row compares its own second output with its first.

Random weights on a shared CPU: the speed-ups say what the hooks skip here, not what they buy on a
GPU with real weights.

    python benchmarks/cache_fidelity.py [--repeats 5] [--steps 10] [--pipelines wan2.1-i2v,...]
        [--json PATH] [--txt PATH]"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import diffusers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from pytest_i2v.generation.inputs import synthetic_portrait  # noqa: E402
from pytest_i2v.generation.marks import GenerationSpec, i2v  # noqa: E402
from pytest_i2v.measure.output import reduce_output  # noqa: E402
from pytest_i2v.measure.runner import generate  # noqa: E402
from pytest_i2v.pipelines import PIPELINES, cache_names  # noqa: E402
from pytest_i2v.pipelines.base import adapter_for  # noqa: E402
from pytest_i2v.pipelines.caches import disable_caches, enable_cache  # noqa: E402
from pytest_i2v.pipelines.loading import PipelineKey, load_pipeline  # noqa: E402
from pytest_i2v.profiles import load_profiles  # noqa: E402
from pytest_i2v.record.output import compare_outputs  # noqa: E402
from pytest_i2v.record.parts import OutputReference  # noqa: E402
from pytest_i2v.verdict.fidelity import fidelity_verdict  # noqa: E402

PROFILE = load_profiles()["cpu"]
RESULTS = ROOT / "benchmarks" / "results"
NATIVE = "native"


def spec_of(pipeline: str, steps: int) -> GenerationSpec:
    """The suite's generation on the cpu profile, with ``steps`` steps."""
    return replace(i2v(pipeline=pipeline).scaled(PROFILE.scaling), steps=steps)


class Variant:
    """One pipeline's native run or one cache on it: its timed generations and first output."""

    def __init__(self, pipeline: str, pipe: Any, spec: GenerationSpec, cache: str | None):
        self.adapter, self.pipe, self.spec, self.cache = adapter_for(pipeline), pipe, spec, cache
        self.times: list[float] = []
        self.outputs: list[OutputReference] = []
        self.skipped: str | None = None

    @property
    def name(self) -> str:
        return self.cache or NATIVE

    def run(self, image: Any, timed: bool) -> None:
        latents: list[torch.Tensor] = []
        try:
            if self.cache is not None:
                enable_cache(self.adapter, self.pipe, self.cache)
            started = time.perf_counter()
            frames = generate(self.pipe, self.spec, image, latents_seen=latents.append)
            elapsed = time.perf_counter() - started
        except ValueError as exc:  # first-block on a tiny model of one block
            self.skipped = str(exc)
            return
        finally:
            disable_caches(self.adapter, self.pipe)  # each generation starts from a fresh hook
        if timed:
            self.times.append(elapsed)
        if len(self.outputs) < 2:
            self.outputs.append(reduce_output(frames, latents[-1] if latents else None))


def measure(pipeline: str, steps: int, repeats: int, work: Path) -> dict[str, Any]:
    torch.manual_seed(0)
    loaded = load_pipeline(PipelineKey("tiny", "fp32", "cpu", pipeline=pipeline), work)
    loaded.pipe.set_progress_bar_config(disable=True)
    spec, image = spec_of(pipeline, steps), synthetic_portrait()
    variants = [Variant(pipeline, loaded.pipe, spec, c) for c in (None, *cache_names(pipeline))]
    for variant in variants:  # the warm-up, untimed: also the first output
        variant.run(image, timed=False)
    for _ in range(repeats):  # interleaved, so a neighbour's load falls on every variant alike
        for variant in variants:
            if variant.skipped is None:
                variant.run(image, timed=True)
    native = variants[0]
    native_s = statistics.median(native.times)
    repeat = compare_outputs(native.outputs[0], native.outputs[1])  # the native run's own noise
    rows = []
    for variant in variants:
        row: dict[str, Any] = {"variant": variant.name, "skipped": variant.skipped}
        if variant.skipped is None:
            # the native row: its own second output against its first (this code's noise)
            second = variant.outputs[1] if variant is native else variant.outputs[0]
            figures = compare_outputs(native.outputs[0], second)
            median_s = statistics.median(variant.times)
            row |= {
                "median_s": median_s,
                "min_s": min(variant.times),
                "max_s": max(variant.times),
                "speedup": native_s / median_s,
                "figures": asdict(figures),
                "lossless": fidelity_verdict(figures, PROFILE.fidelity.lossless, repeat),
                "lossy": fidelity_verdict(figures, PROFILE.fidelity.lossy, repeat),
            }
        rows.append(row)
    size = f"{spec.width}x{spec.height}, {spec.frames} frames, {spec.steps} steps"
    return {"pipeline": pipeline, "generation": size, "native_repeat": asdict(repeat), "rows": rows}


def _line(row: dict[str, Any]) -> str:
    if row["skipped"]:
        return f"  {row['variant']:<28} not run: {row['skipped']}"
    figures = row["figures"]
    if figures["identical"]:
        quality = "identical"
    else:
        ssim = figures["mean_ssim"]
        quality = f"PSNR {figures['min_psnr_db']:5.1f} dB, SSIM " + (
            f"{ssim:.3f}" if ssim is not None else "n/a"
        )
    latents = figures.get("latents")
    lat = f"cos {latents['cosine']:.4f} rmse {latents['rmse']:.2g}" if latents else "n/a"
    spread = f"{row['min_s'] * 1000:.0f}-{row['max_s'] * 1000:.0f} ms"
    return (
        f"  {row['variant']:<28} {row['speedup']:5.2f}x  {row['median_s'] * 1000:6.0f} ms "
        f"({spread:<13}) {quality:<27} {lat:<27} {row['lossless']:<9} {row['lossy']}"
    )


def table(results: list[dict[str, Any]], bars: str) -> str:
    header = (
        f"  {'variant':<28} {'speed':>6}  {'median':>9} {'(min-max)':<15} "
        f"{'frames vs native':<27} {'latents vs native':<27} {'lossless':<9} lossy"
    )
    lines = [f"bars (profile cpu): {bars}"]
    for result in results:
        lines += [f"{result['pipeline']} ({result['generation']}):", header]
        lines += [_line(row) for row in result["rows"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    capable = [p for p in PIPELINES if cache_names(p)]
    parser.add_argument("--pipelines", default=",".join(capable), help="comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="timed generations per variant")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps (caches need some)")
    today = datetime.date.today().isoformat()
    parser.add_argument("--json", type=Path, default=RESULTS / f"cache_fidelity-{today}.json")
    parser.add_argument("--txt", type=Path, default=RESULTS / f"cache_fidelity-{today}.txt")
    args = parser.parse_args()
    torch.set_num_threads(2)
    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()  # FasterCache's "experimental" on every enable
    transformers.utils.logging.disable_progress_bar()
    lossless, lossy = PROFILE.fidelity.lossless, PROFILE.fidelity.lossy
    bars = (
        f"lossless PSNR >= {lossless.min_psnr_db:g} dB, SSIM >= {lossless.min_ssim:g}, latents "
        f"rule; lossy PSNR >= {lossy.min_psnr_db:g} dB, SSIM >= {lossy.min_ssim:g}"
    )
    results = []
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    for pipeline in args.pipelines.split(","):
        with tempfile.TemporaryDirectory(prefix="cache-fidelity-") as work:
            results.append(measure(pipeline, args.steps, args.repeats, Path(work)))
        print(table(results[-1:], bars).split("\n", 1)[1], flush=True)
    text = table(results, bars)
    about = (
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%MZ}, {platform.machine()}, "
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, 2 threads, "
        f"{args.repeats} repeats, {time.perf_counter() - started:.0f} s, load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    args.txt.write_text(f"{about}\n{text}\n")
    document = {"about": about, "bars": PROFILE.fidelity.to_dict(), "pipelines": results}
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"{about}\nwritten: {args.txt}, {args.json}")


if __name__ == "__main__":
    main()
