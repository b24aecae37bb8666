"""The work signature as a gate, measured side by side in one run: does one run of the baseline gate
with a one-run history flag a small change of the work, name it, and estimate its effect? Does it
stay quiet on unchanged code? What does it cost?

A throwaway project holds one i2v test on the tiny I2VGen-XL (the cpu profile, enforced, 1 %
minimum effect, the work signature on) and a conftest that injects a change into every UNet call,
sized by a knob ``k`` (``INJECT=kind:k``):

- ``op``: k extra 128x128 matrix products after the UNet call;
- ``upcast``: the first k Linear layers of the UNet run in float64 (weights and input);
- ``cfg-split``: the first k Linear layers run their batch as two half-batch calls;
- ``bigger``: the first k Linear layers run on an input twice as long (zero-padded, the output cut
  back);
- ``sync``: k host-device synchronisations per UNet call (on the simulated H200: each costs
  ``measure.simulated_libs.SYNC_ROUND_TRIP_S``, an assumption).

For each kind the knob is calibrated to about +2 %, +5 % and +10 % of the step. Each level then
gets: one run of the baseline gate (a fresh pytest process) against the one-run baseline, which must
fail the test as regressed (the +2 % level: beyond the 1 % minimum effect) with the injected op in
the table; and the effect measured by ``--rounds`` interleaved pairs of generations (with and
without the injection, in one process, the order alternating): the estimate must lie within 1.5
percentage points.

False alarms: ``--false-alarm-runs`` fresh gate runs of unchanged code against a one-run and a
three-run history (enforced, 10 % minimum effect and tolerance: the bars under which 1 of 6 fresh
runs of unchanged code failed before; one re-measurement, in a fresh process): the number that
failed (target 0).

    python benchmarks/work_signature_gate.py [--rounds 60] [--false-alarm-runs 20]
        [--kinds op,upcast,...] [--json FILE]"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LEVELS = (0.02, 0.05, 0.10)
KINDS = ("op", "upcast", "cfg-split", "bigger", "sync")
TOLERANCE_PP = 1.5
# What each kind's table must name: a row whose label contains this.
NAMED = {
    "op": "aten::mm",
    "upcast": "double",
    "cfg-split": "mm",
    "bigger": "mm",
    "sync": "cudaDeviceSynchronize",
}

CONFTEST = r'''
import json
import os
import time

import pytest
import torch

from pytest_i2v.measure.runner import generate


def _linears(unet, k):
    return [m for m in unet.modules() if isinstance(m, torch.nn.Linear)][:k]


def install(pipe, kind, k):
    """Put the change into every UNet call; returns the undo."""
    unet = pipe.unet
    undo = []
    if kind == "op":
        weight = torch.ones(128, 128)

        def extra(module, args, output):
            for _ in range(k):
                torch.mm(weight, weight)

        handle = unet.register_forward_hook(extra)
        undo.append(handle.remove)
    elif kind == "sync":
        synchronize = torch.cuda.synchronize
        # the simulated card's (as the plugin's own code calls it there)
        if not torch.cuda.is_available():
            from pytest_i2v.simulated_plugin import RUNTIME

            synchronize = RUNTIME.cuda.synchronize

        def sync(module, args):
            for _ in range(k):
                synchronize()

        handle = unet.register_forward_pre_hook(sync)
        undo.append(handle.remove)
    else:
        for layer in _linears(unet, k):
            original = layer.forward
            if kind == "upcast":
                weight = layer.weight.data
                bias = layer.bias.data if layer.bias is not None else None
                wide_w, wide_b = weight.double(), bias.double() if bias is not None else None

                def forward(x, wide_w=wide_w, wide_b=wide_b):
                    return torch.nn.functional.linear(x.double(), wide_w, wide_b).to(x.dtype)
            elif kind == "cfg-split":
                def forward(x, original=original):
                    if x.shape[0] < 2 or x.shape[0] % 2:
                        return original(x)
                    half = x.shape[0] // 2
                    return torch.cat([original(x[:half]), original(x[half:])])
            elif kind == "bigger":
                def forward(x, original=original):
                    padded = torch.cat([x, torch.zeros_like(x)])
                    return original(padded)[: x.shape[0]]
            else:
                raise ValueError(kind)
            layer.forward = forward
            undo.append(lambda layer=layer, original=original: setattr(layer, "forward", original))
    return lambda: [u() for u in undo]


def _injection():
    kind, _, k = os.environ.get("INJECT", "").partition(":")
    return (kind, int(k)) if kind else None


@pytest.fixture(autouse=True)
def inject(request):
    found = _injection()
    if found is None or request.node.name != "test_target":
        yield
        return
    undo = install(request.getfixturevalue("i2v_pipeline"), *found)
    yield
    undo()


def interleave(pipe, spec, image, kind, sizes, rounds, out):
    """Per knob size: pairs of generations with and without the change, the order alternating
    (per-step seconds)."""
    def timed():
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        generate(pipe, spec, image)
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) / spec.steps

    timed()
    found = {}
    for k in sizes:
        plain, changed = [], []
        for index in range(rounds):
            for with_change in ((False, True) if index % 2 == 0 else (True, False)):
                if with_change:
                    undo = install(pipe, kind, k)
                    changed.append(timed())
                    undo()
                else:
                    plain.append(timed())
        found[k] = {"plain": plain, "changed": changed}
    out.write_text(json.dumps(found))
'''

SUITE = """
import os
from pathlib import Path

import pytest

MARK = dict(resolution="256p", frames=2, steps=50, seed=1)


@pytest.mark.i2v(**MARK)
def test_target(i2v_run):
    i2v_run()


@pytest.mark.i2v(**MARK)
def test_interleaved(i2v_pipeline, i2v_spec, i2v_input_image):
    from conftest import interleave

    kind, _, sizes = os.environ["INTERLEAVE"].partition(":")
    interleave(
        i2v_pipeline,
        i2v_spec,
        i2v_input_image,
        kind,
        [int(k) for k in sizes.split(",")],
        int(os.environ["ROUNDS"]),
        Path(os.environ["INTERLEAVE_OUT"]),
    )
"""

PROFILE = """
name: {name}
memory_gb: {memory}
device: {device}
match: {match}
model: tiny
dtype: fp32
scaling: {{size_divisor: 8, steps_divisor: 5}}
signature: true
gate: {{enforce: true, min_effect: {min_effect}, tolerance: {tolerance}, prior_noise: 0.08,
  memory_rel: 0.05, memory_abs_mib: 2048, confirm: 1}}
"""


class Project:
    """The throwaway project: its files, and pytest runs in fresh processes."""

    def __init__(self, root: Path, simulated: bool):
        self.root = root
        self.simulated = simulated
        (root / "profiles").mkdir(parents=True)
        (root / "conftest.py").write_text(CONFTEST)
        (root / "test_suite.py").write_text(SUITE)
        (root / "pytest.ini").write_text("[pytest]\nfilterwarnings = ignore::FutureWarning\n")
        self.profile(0.01, 0.01)

    def profile(self, min_effect: float, tolerance: float) -> None:
        name = "h200" if self.simulated else "cpu"
        text = PROFILE.format(
            name=name,
            memory=141 if self.simulated else 24,
            device="cuda" if self.simulated else "cpu",
            match='["H200"]' if self.simulated else "[]",
            min_effect=min_effect,
            tolerance=tolerance,
        )
        (self.root / "profiles" / f"{name}.yaml").write_text(text)

    def pytest(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        name = "h200" if self.simulated else "cpu"
        base = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "--gpu-profile",
            name,
            "--i2v-profile-dir",
            "profiles",
            "--i2v-allow-profile-mismatch",
            "--i2v-repeats",
            "3",
            "--i2v-warmup",
            "1",
        ]
        if self.simulated:
            base += ["-p", "pytest_i2v.simulated_plugin"]
        environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        if self.simulated:
            environment["PYTEST_I2V_SIMULATED_GPUS"] = '[{"name": "NVIDIA H200"}]'
        return subprocess.run(
            [*base, *args],
            cwd=self.root,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )

    def record_baseline(self, directory: str, runs: int = 1) -> None:
        for _ in range(runs):
            done = self.pytest(
                "test_suite.py::test_target",
                "--i2v-baseline-dir",
                directory,
                "--i2v-update-baselines",
            )
            if done.returncode != 0:
                raise SystemExit(
                    f"recording the baseline failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
                )

    def gate(self, directory: str, inject: str | None) -> dict[str, Any]:
        out = self.root / "gate.json"
        out.unlink(missing_ok=True)
        started = time.perf_counter()
        done = self.pytest(
            "test_suite.py::test_target",
            "--i2v-baseline-dir",
            directory,
            "--i2v-json",
            str(out),
            env={"INJECT": inject} if inject else {},
        )
        wall = time.perf_counter() - started
        if not out.is_file():
            raise SystemExit(
                f"the gate run wrote nothing:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
            )
        record = json.loads(out.read_text())["records"][0]
        return {"exit": done.returncode, "record": record, "wall_s": wall}

    def base_step_s(self, directory: str) -> float:
        """The baseline's timed step (the denominator the gate's estimate uses too)."""
        import yaml

        name = "h200" if self.simulated else "cpu"
        stored = yaml.safe_load((self.root / directory / f"{name}.yaml").read_text())
        runs = [
            run
            for entry in stored["entries"].values()
            for seg in entry["segments"]
            for run in seg["runs"]
        ]
        return float(statistics.median(run["step_s"] for run in runs))

    def interleaved(self, kind: str, sizes: list[int], rounds: int) -> dict[int, float]:
        """Per knob size, the change's cost per step in % of the baseline's step, from interleaved
        pairs of generations (paired per round: the machine's drift cancels pair by pair; the median
        pair)."""
        out = self.root / "interleaved.json"
        done = self.pytest(
            "test_suite.py::test_interleaved",
            env={
                "INTERLEAVE": f"{kind}:{','.join(map(str, sizes))}",
                "ROUNDS": str(rounds),
                "INTERLEAVE_OUT": str(out),
            },
        )
        if done.returncode != 0:
            raise SystemExit(
                f"the interleaved measurement failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
            )
        step = self.base_step_s("bl")
        found = {}
        for k, data in json.loads(out.read_text()).items():
            deltas = [c - p for p, c in zip(data["plain"], data["changed"], strict=True)]
            found[int(k)] = statistics.median(deltas) / step * 100.0
        return found


PROBES = {
    "op": [8, 16, 32, 64],
    "sync": [16, 32, 64, 128],
    "upcast": [16, 32, 64, 128],
    "cfg-split": [16, 32, 64, 128],
    "bigger": [16, 32, 64, 128],
}


def calibrate(project: Project, kind: str, rounds: int) -> dict[float, int]:
    """The knob per level, interpolated on the effects measured at the probe sizes in one
    process."""
    curve = sorted(project.interleaved(kind, PROBES[kind], max(10, rounds // 3)).items())
    print(
        f"  {kind} calibration: " + ", ".join(f"k={k}: {e:+.2f} %" for k, e in curve),
        file=sys.stderr,
        flush=True,
    )
    chosen = {}
    for level in LEVELS:
        target = level * 100.0
        k = curve[-1][0]
        for (k0, e0), (k1, e1) in zip([(0, 0.0), *curve[:-1]], curve, strict=True):
            if e1 >= target:
                k = round(k0 + (k1 - k0) * (target - e0) / (e1 - e0)) if e1 > e0 else k1
                break
        chosen[level] = max(1, k)
    return chosen


def run_kind(project: Project, kind: str, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for level, k in calibrate(project, kind, rounds).items():
        gate = project.gate("bl", f"{kind}:{k}")
        record = gate["record"]
        work = record.get("work") or {}
        measured = project.interleaved(kind, [k], rounds)[k]
        estimate = work.get("effect_pct")
        gap = next((r for r in work.get("rows") or [] if r.get("kind") == "gap"), None)
        gap_pct = (
            gap["effect_s"] / work["effect_s"] * estimate
            if gap and estimate and work.get("effect_s")
            else None
        )
        named = any(
            NAMED[kind] in f"{r.get('op')} {r.get('dtypes')}" for r in (work.get("rows") or [])[:3]
        )
        decision = (record.get("decision") or {}).get("kind")
        rows.append(
            {
                "kind": kind,
                "target_pct": level * 100.0,
                "k": k,
                "measured_pct": measured,
                "estimate_pct": estimate,
                "interval_pct": work.get("interval_pct"),
                "with_gap_pct": estimate + gap_pct if gap_pct is not None else None,
                "decision": decision,
                "exit": gate["exit"],
                "named": named,
                "top_row": (work.get("rows") or [{}])[0].get("op"),
                "within": estimate is not None and abs(estimate - measured) <= TOLERANCE_PP,
                "flagged": decision == "regressed" and gate["exit"] == 1,
            }
        )
        print(
            f"  {kind} k={k}: measured {measured:+.2f} %, "
            f"estimate {estimate if estimate is None else f'{estimate:+.2f}'} %,"
            f" {decision}, top row {rows[-1]['top_row']}",
            file=sys.stderr,
            flush=True,
        )
    return rows


def false_alarms(root: Path, runs: int) -> dict[str, dict[str, Any]]:
    """Unchanged code, ``runs`` fresh gate runs against a one-run and a three-run history."""
    project = Project(root, simulated=False)
    project.profile(
        0.10, 0.10
    )  # enforced at 10 %: the bars under which 1 of 6 fresh runs failed before
    found: dict[str, dict[str, Any]] = {}
    for history in (1, 3):
        directory = f"bl-{history}"
        project.record_baseline(directory, history)
        failed, walls, remeasured, machine = 0, [], 0, 0
        for _ in range(runs):
            gate = project.gate(directory, None)
            failed += gate["exit"] != 0
            walls.append(gate["wall_s"])
            remeasured += int(gate["record"].get("measurements") or 1) > 1
            # the machine speed probe said this run's machine was not the baseline's speed:
            # times not gating
            machine += bool((gate["record"].get("decision") or {}).get("times_not_comparable"))
        found[f"{history}-run history"] = {
            "runs": runs,
            "failed": failed,
            "re-measured in a fresh process": remeasured,
            "machine speed not comparable": machine,
            "median wall s": statistics.median(walls),
        }
        print(
            f"  {history}-run history: {failed} of {runs} failed "
            f"({remeasured} re-measured, {machine} at another "
            f"machine speed)",
            file=sys.stderr,
            flush=True,
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=60,
        help="interleaved pairs per effect measurement (default 60)",
    )
    parser.add_argument("--false-alarm-runs", type=int, default=20)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the rows as JSON to FILE"
    )
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="work-signature-gate-") as work:
        for simulated in (False, True):
            chosen = [k for k in kinds if (k == "sync") == simulated]
            if not chosen:
                continue
            project = Project(Path(work) / ("h200" if simulated else "cpu"), simulated)
            project.record_baseline("bl")
            for kind in chosen:
                rows += run_kind(project, kind, args.rounds)
        alarms = (
            false_alarms(Path(work) / "alarms", args.false_alarm_runs)
            if args.false_alarm_runs
            else {}
        )
    print(
        f"\nwork signature gate, {time.strftime('%Y-%m-%d')}, {time.perf_counter() - started:.0f} s"
    )
    print(
        "| change | target | k | measured (interleaved) | estimate (signature) "
        "| with the host gap | within ±1.5 pp "
        "| one gate run | named |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        estimate = "-" if r["estimate_pct"] is None else f"{r['estimate_pct']:+.2f} %"
        with_gap = "-" if r["with_gap_pct"] is None else f"{r['with_gap_pct']:+.2f} %"
        print(
            f"| {r['kind']} | +{r['target_pct']:.0f} % | {r['k']} | {r['measured_pct']:+.2f} % "
            f"| {estimate} | {with_gap} | "
            f"{'yes' if r['within'] else 'NO'} | "
            f"{'regressed' if r['flagged'] else 'NOT FLAGGED: ' + str(r['decision'])} | "
            f"{'yes: ' + str(r['top_row']) if r['named'] else 'NO'} |"
        )
    if alarms:
        print(
            "\n| history | fresh runs of unchanged code | failed "
            "| re-measured in a fresh process | "
            "machine speed not comparable |"
        )
        print("|---|---|---|---|---|")
        for name, a in alarms.items():
            print(
                f"| {name} | {a['runs']} | {a['failed']} | {a['re-measured in a fresh process']} | "
                f"{a['machine speed not comparable']} |"
            )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "false_alarms": alarms}, indent=2))


if __name__ == "__main__":
    main()
