"""Is a test's reduced output (``measure.output``) sensitive enough to judge a change by, on tiny
random-weight models? Measured side by side in one run, per pipeline:

- unchanged code: ``--processes`` fresh processes (default 20) each generate the test's video; the
  spread is how many distinct outputs they give and the worst PSNR against the first;
- injected changes, each in this process against the unchanged output of the same seed: every
  other denoiser call reusing the previous call's output (a naive step cache), two steps fewer,
  guidance 7.5 instead of the native one, the VAE decoding in bfloat16, torch on one thread
  instead of two (a numerics-near-neutral change: other summation orders), and a no-op copy of
  every denoiser output (numerics-neutral);
- cost: the reduction's time and its packed bytes.

Each row prints the figures (``record.output``) and whether the ``cpu`` profile's lossless bar
(its ``fidelity: lossless``, read through the profile loader) holds. On Wan 2.1 one more row: its
transformer with diffusers' first-block cache at its defaults (``pipelines.caches``), the lossy
change a cached test makes.

    python benchmarks/output_sensitivity.py [--processes 20] [--pipelines i2vgen-xl,wan2.1-i2v]"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import GenerationSpec, i2v
from pytest_i2v.measure.output import reduce_output
from pytest_i2v.measure.runner import generate
from pytest_i2v.pipelines import cache_names
from pytest_i2v.pipelines.base import adapter_for
from pytest_i2v.pipelines.caches import disable_caches, enable_cache
from pytest_i2v.profiles import load_profiles
from pytest_i2v.record.output import compare_outputs
from pytest_i2v.record.parts import OutputReference

LOSSLESS = load_profiles()["cpu"].fidelity.lossless  # the bar the main job holds unchanged code to
CACHE = "first-block"
# width, height, frames, steps
SIZES = {"i2vgen-xl": (64, 64, 4, 10), "wan2.1-i2v": (64, 64, 5, 10)}

CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
import torch
from benchmarks.output_sensitivity import build, spec_of
from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.measure.output import reduce_output
from pytest_i2v.measure.runner import generate
torch.set_num_threads(2)
pipe = build(sys.argv[1], Path(sys.argv[2]))
out = reduce_output(generate(pipe, spec_of(sys.argv[1]), synthetic_portrait(128, 128)))
print(json.dumps(out.__dict__))
"""


def spec_of(pipeline: str) -> GenerationSpec:
    width, height, frames, steps = SIZES[pipeline]
    return i2v(pipeline=pipeline, width=width, height=height, frames=frames, steps=steps)


def build(pipeline: str, work: Path) -> Any:
    """The tiny pipeline, from the same seed in every process."""
    torch.manual_seed(0)
    pipe = adapter_for(pipeline).build_tiny(work)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@contextmanager
def forward_hook(modules: list[Any], hook: Callable[..., Any]) -> Iterator[None]:
    handles = [module.register_forward_hook(hook) for module in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _reuse_every_other() -> Callable[..., Any]:
    outputs: list[Any] = []

    def hook(module: Any, args: Any, output: Any) -> Any:
        outputs.append(output)
        return outputs[-2] if len(outputs) % 2 == 0 else output

    return hook


def _copy(module: Any, args: Any, output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.clone()
    if isinstance(output, tuple):
        return tuple(o.clone() if isinstance(o, torch.Tensor) else o for o in output)
    return output  # a ModelOutput: left as it is (the copy is the point, not its type)


@contextmanager
def bf16_decoder(decoder: Any) -> Iterator[None]:
    """The decoder runs as a bfloat16 copy (weights and input), its output back in float32; the
    float32 weights stay untouched (a round trip through bfloat16 would round them for good)."""
    original = decoder.forward
    low = copy.deepcopy(decoder).to(torch.bfloat16)

    def forward(*args: Any, **kwargs: Any) -> Any:
        cast = [a.to(torch.bfloat16) if isinstance(a, torch.Tensor) else a for a in args]
        out = low.forward(*cast, **kwargs)
        return out.float() if isinstance(out, torch.Tensor) else out

    decoder.forward = forward
    try:
        yield
    finally:
        decoder.forward = original


@contextmanager
def threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _row(name: str, base: OutputReference, other: OutputReference) -> dict[str, Any]:
    figures = compare_outputs(base, other)
    held = LOSSLESS.held(figures)
    print(f"  {name:<34} {figures.summary():<58} {'within' if held else 'OUTPUT CHANGED'}")
    return {"change": name, "figures": asdict(figures), "held": held}


@contextmanager
def cache_on(adapter: Any, pipe: Any, name: str) -> Iterator[None]:
    enable_cache(adapter, pipe, name)
    try:
        yield
    finally:
        disable_caches(adapter, pipe)


def injected(pipeline: str, work: Path) -> list[dict[str, Any]]:
    torch.set_num_threads(2)
    pipe = build(pipeline, work)
    adapter, spec = adapter_for(pipeline), spec_of(pipeline)
    image = synthetic_portrait(128, 128)
    denoisers = list(adapter.denoisers(pipe))

    def run(run_spec: GenerationSpec = spec) -> OutputReference:
        return reduce_output(generate(pipe, run_spec, image))

    base = run()
    rows = [_row("unchanged, same process", base, run())]
    with forward_hook(denoisers, _reuse_every_other()):
        rows.append(_row("every other denoiser call reused", base, run()))
    rows.append(_row("two steps fewer", base, run(replace(spec, steps=spec.steps - 2))))
    rows.append(_row("guidance 7.5", base, run(replace(spec, guidance=7.5))))
    with bf16_decoder(adapter.vae_decoder(pipe)):
        rows.append(_row("VAE decoded in bfloat16", base, run()))
    with forward_hook(denoisers, _copy):
        rows.append(_row("no-op copy of each denoiser output", base, run()))
    with threads(1):
        rows.append(_row("torch on 1 thread instead of 2", base, run()))
    if CACHE in cache_names(pipeline):
        with cache_on(adapter, pipe, CACHE):
            rows.append(_row("a cache hook at its default", base, run()))
    rows.append(_row("unchanged, after the 1-thread run", base, run()))
    frames = generate(pipe, spec, image)
    started = time.perf_counter()
    for _ in range(20):
        reference = reduce_output(frames)
    reduce_ms = (time.perf_counter() - started) / 20 * 1000
    print(f"  cost: the reduction {reduce_ms:.2f} ms, {len(reference.packed)} bytes packed")
    return rows


def fresh(pipeline: str, work: Path, processes: int) -> dict[str, Any]:
    script = work / "child.py"
    script.write_text(CHILD)
    root = str(Path(__file__).resolve().parents[1])
    outputs = []
    for index in range(processes):
        done = subprocess.run(
            [sys.executable, str(script), pipeline, str(work / f"p{index}"), root],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"process {index + 1} failed:\n{done.stderr[-2000:]}")
        outputs.append(OutputReference(**json.loads(done.stdout.strip().splitlines()[-1])))
    figures = [compare_outputs(outputs[0], o) for o in outputs[1:]]
    distinct = len({o.packed for o in outputs})
    psnrs = [f.min_psnr_db for f in figures if f.min_psnr_db is not None]
    worst = f"worst PSNR {min(psnrs):.1f} dB" if psnrs else "all identical"
    print(f"  unchanged, {processes} fresh processes: {distinct} distinct output(s), {worst}")
    return {"processes": processes, "distinct": distinct, "worst_psnr_db": min(psnrs, default=None)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--pipelines", default="i2vgen-xl,wan2.1-i2v")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    results = {}
    for pipeline in args.pipelines.split(","):
        print(f"{pipeline} {SIZES[pipeline]} (width, height, frames, steps):", flush=True)
        with tempfile.TemporaryDirectory(prefix="output-sensitivity-") as work:
            results[pipeline] = {
                "fresh": fresh(pipeline, Path(work), args.processes),
                "injected": injected(pipeline, Path(work) / "here"),
            }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    spread = statistics.median(r["fresh"]["distinct"] for r in results.values())
    print(f"median distinct outputs of unchanged code per pipeline: {spread:g} (target 1)")


if __name__ == "__main__":
    main()
