"""Where the main job's wall time goes: ``python -m pytest suites/`` split into start-up (imports,
plugins, collection), pipeline loading, the machine speed probe, FLOP counting, the signature's
profiled generation, warm-up generations, measured generations, the rounds' own harness (sync,
memory reset, NVML and RSS readings around each generation), fresh-process re-measurements, the
report, and the rest (pytest, fixtures, the gate, the records).

Runs the main job once in a fresh process with this file as a plugin (``-p main_job_split``). The
plugin wraps the functions that do each part; time is charged to the innermost part running, so
nothing is counted twice, and "the rest" is the wall time minus every part.

    python benchmarks/main_job_split.py [--json FILE] [-- extra pytest args]

The harness's share is everything but the generations themselves: what the plugin costs on top of
the work it measures."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PARTS = (
    "start-up (imports, plugins, collection)",
    "pipeline loading",
    "machine speed probe",
    "FLOP counting",
    "signature (profiled generation)",
    "warm-up generations",
    "measured generations",
    "rounds' harness (sync, memory, NVML)",
    "fresh-process re-measurement",
    "report (JSON, HTML, Markdown)",
)
GENERATIONS = ("warm-up generations", "measured generations")

_start = time.perf_counter()
_spent: dict[str, float] = {}
_stack: list[list[Any]] = []  # [part, started, charged to children]


def _charged(part: str | Callable[[Any], str], function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        name = part(args[0]) if callable(part) else part
        frame = [name, time.perf_counter(), 0.0]
        _stack.append(frame)
        try:
            return function(*args, **kwargs)
        finally:
            _stack.pop()
            elapsed = time.perf_counter() - frame[1]
            _spent[name] = _spent.get(name, 0.0) + elapsed - frame[2]
            if _stack:
                _stack[-1][2] += elapsed

    return wrapper


def _phase(rounds: Any) -> str:
    return "warm-up generations" if rounds._calls <= rounds.warmup else "measured generations"


def pytest_configure(config: Any) -> None:
    from pytest_i2v.measure import runner
    from pytest_i2v.session import fresh_process, outputs, pipeline_cache, recording

    patches = [
        (pipeline_cache.PipelineCache, "get", "pipeline loading"),
        (recording, "run_probe", "machine speed probe"),
        (recording.Recorder, "_flops", "FLOP counting"),
        (recording.Recorder, "_signature", "signature (profiled generation)"),
        (runner.GenerationRounds, "target", _phase),
        (runner.GenerationRounds, "setup", "rounds' harness (sync, memory, NVML)"),
        (runner.GenerationRounds, "teardown", "rounds' harness (sync, memory, NVML)"),
        (fresh_process, "remeasure", "fresh-process re-measurement"),
        (outputs.Outputs, "write", "report (JSON, HTML, Markdown)"),
    ]
    for owner, name, part in patches:
        setattr(owner, name, _charged(part, getattr(owner, name)))


def pytest_collection_finish(session: Any) -> None:
    _spent["start-up (imports, plugins, collection)"] = time.perf_counter() - _start


def pytest_unconfigure(config: Any) -> None:
    out = os.environ.get("MAIN_JOB_SPLIT_OUT")
    if out:
        Path(out).write_text(
            json.dumps({"wall_s": time.perf_counter() - _start, "parts": _spent}), encoding="utf-8"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the split here as JSON")
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "split.json"
        env = {
            **os.environ,
            "MAIN_JOB_SPLIT_OUT": str(out),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")])
            ),
        }
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "suites/",
                "-q",
                "-p",
                "main_job_split",
                *args.pytest_args,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        process_s = time.perf_counter() - started
        print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:])
        measured = json.loads(out.read_text(encoding="utf-8"))
    wall, parts = measured["wall_s"], measured["parts"]
    rest = wall - sum(parts.values())
    rows = [(name, parts.get(name, 0.0)) for name in PARTS] + [
        ("the rest (pytest, fixtures, gate, records)", rest)
    ]
    print(
        f"\nmain job: {process_s:.1f} s for the process, "
        f"{wall:.1f} s from the plugin's import to its end"
    )
    for name, seconds in rows:
        print(f"  {name:<45} {seconds:7.1f} s  {100 * seconds / wall:5.1f} %")
    generations = sum(parts.get(name, 0.0) for name in GENERATIONS)
    harness_s = wall - generations
    print(
        f"  {'harness (all but the generations)':<45} {harness_s:7.1f} s  "
        f"{100 * harness_s / wall:5.1f} %"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d"),
                    "process_s": process_s,
                    "wall_s": wall,
                    "parts_s": dict(rows),
                    "harness_share": (wall - generations) / wall,
                    "pytest_summary": done.stdout.strip().splitlines()[-1:],
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
