"""``python -m pytest_i2v``: review baselines and results outside a test run.

python -m pytest_i2v baseline show PROFILE|FILE [--dir baselines]
python -m pytest_i2v baseline diff OLD NEW
    (two baseline files, or a baseline and a results JSON)
python -m pytest_i2v baseline match PROFILE|FILE [--device cuda:N]
    (exit 0: runs from this machine; 10: not)
python -m pytest_i2v recommend results.json [--pipeline NAME]
    (a recommendation matrix per pipeline, with its fit error)
python -m pytest_i2v report results.json -o report.html
python -m pytest_i2v compare a.json b.json [-o comparison.html]
python -m pytest_i2v gpu-check [--out DIR] [--device cuda:N] [--dry-run]
    [--model random|tiny|DIR] [--pipeline NAME]
python -m pytest_i2v ab --base REF [--head REF] [--rounds N] [--min-effect PCT] [--out DIR]
    [-- pytest args]
python -m pytest_i2v bisect --good REF --bad REF [--rounds N] [-- pytest args]
python -m pytest_i2v init --pipeline NAME [--model SOURCE] [--size WxH] [--profiles a,b] ...
python -m pytest_i2v history add results.json [--db URL] [--commit SHA]
python -m pytest_i2v history list [--db URL]
python -m pytest_i2v history changes [--db URL] [--test TEXT] [--metric NAME] [--otava DIR]
python -m pytest_i2v history site OUT/ [--db URL]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_i2v.cli_baseline import run_baseline_command
from pytest_i2v.cli_history import add_bisect_command, add_history_command
from pytest_i2v.cli_start import add_start_commands
from pytest_i2v.errors import I2VUsageError
from pytest_i2v.record.document import read_records, read_results

# Each command imports what it runs inside its own function: the report loads matplotlib and
# jinja2, A/B and gpu-check their process machinery, so `--help` and `baseline show` start in a
# fraction of a second and never import torch.

USAGE_ERROR = 4  # pytest's exit code for usage errors; the CLI uses the same


def _cmd_recommend(args: argparse.Namespace) -> str:
    from pytest_i2v.generation.marks import Scaling
    from pytest_i2v.report.frontier import format_frontier, frontier
    from pytest_i2v.report.grouping import group_by_pipeline
    from pytest_i2v.study import format_recommendation, recommend_per_pipeline

    document = read_results(Path(args.results))
    try:
        classes = [float(c) for c in args.memory_classes.split(",")]
    except ValueError:
        raise I2VUsageError(
            f"--memory-classes {args.memory_classes!r}: use comma-separated GB, e.g. 8,12,16,24"
        ) from None
    scaling = Scaling.from_dict((document.get("profile") or {}).get("scaling") or {})
    thresholds = tuple((document.get("settings") or {}).get("latency_thresholds") or (30.0, 60.0))
    records = group_by_pipeline(read_records(document, args.results))
    if args.pipeline is not None:
        if args.pipeline not in records:
            raise I2VUsageError(
                f"--pipeline {args.pipeline!r}: no results for it in {args.results}; "
                f"pipelines present: {', '.join(records) or 'none'}"
            )
        records = {args.pipeline: records[args.pipeline]}
    unfitted: dict[str, str] = {}
    matrices = recommend_per_pipeline(
        [r for group in records.values() for r in group],
        scaling,
        steps=args.steps,
        memory_classes_gb=classes,
        margin_gb=args.margin,
        thresholds=thresholds,
        unfitted=unfitted,
    )
    points = frontier(r for group in records.values() for r in group)
    if not matrices and not points:
        # nothing to show: the reason is a usage error, as it was with one pipeline
        reasons = [f"{name}: {why}" if len(records) > 1 else why for name, why in unfitted.items()]
        raise I2VUsageError(
            "; ".join(reasons) or "no results to fit; run the resolution sweep first"
        )
    sections = []
    for name in records:  # one matrix per pipeline: never fitted across two models
        body = (
            format_recommendation(matrices[name])
            if name in matrices
            else f"not fitted: {unfitted[name]}"
        )
        sections.append(f"## {name}\n\n{body}")
    if points:  # the caches: the fastest that keeps its bar, against the native sibling
        sections.append(f"## speed against fidelity\n\n{format_frontier(points)}")
    return "\n\n".join(sections)


def _cmd_report(args: argparse.Namespace) -> str:
    from pytest_i2v.report.html import render_html
    from pytest_i2v.report.markdown import render_markdown
    from pytest_i2v.storage import write_text_atomic

    document = read_results(Path(args.results))
    write_text_atomic(Path(args.output), render_html(document))
    if args.markdown:
        write_text_atomic(Path(args.markdown), render_markdown(document))
    return f"report written to {args.output}" + (f" and {args.markdown}" if args.markdown else "")


def _cmd_compare(args: argparse.Namespace) -> str:
    from pytest_i2v.report.compare import compare_documents, compare_markdown, render_compare_html
    from pytest_i2v.storage import write_text_atomic

    comparison = compare_documents(read_results(Path(args.a)), read_results(Path(args.b)))
    if args.output:
        write_text_atomic(Path(args.output), render_compare_html(comparison, args.a, args.b))
    return compare_markdown(comparison) + (
        f"\n\ncomparison written to {args.output}" if args.output else ""
    )


def _cmd_gpu_check(args: argparse.Namespace) -> str:
    from pytest_i2v.gpu_check import main as gpu_check

    # It prints its own lines (a run takes minutes); a failed check exits 1, as a failed test would.
    code = gpu_check(args.out, args.device, args.dry_run, args.model, args.pipeline)
    if code:
        raise SystemExit(code)
    return ""


def _cmd_ab(args: argparse.Namespace) -> str:
    from pytest_i2v.ab import ABOptions, ABProcessFailed, run_ab

    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:  # argparse keeps the separator on some Python versions
        pytest_args = pytest_args[1:]
    options = ABOptions(
        base=args.base,
        head=args.head,
        rounds=args.rounds,
        min_effect_pct=args.min_effect,
        out=Path(args.out),
        pytest_args=tuple(pytest_args),
        sequential=not args.fixed_rounds,
        full_runs=args.full_runs,
        calibrate=args.calibrate,
        baseline_dir=Path(args.baseline_dir) if args.baseline_dir else None,
    )
    try:
        outcome = run_ab(options)
    except ABProcessFailed as exc:  # the failed process's log tail, then the one error line
        print(exc.log_tail, file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print(
            "error: interrupted; the A/B worktrees and temporary files were removed",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    print(outcome.markdown)
    if outcome.exit_code:  # a regression fails the job, as a failed test would
        raise SystemExit(outcome.exit_code)
    return ""


# argparse's subcommand registry (argparse._SubParsersAction is private, hence the alias).
Subcommands = Any


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_i2v", description="pytest-i2v: baselines, reports, comparisons"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_baseline(commands)
    _add_recommend(commands)
    _add_report_and_compare(commands)
    _add_gpu_check(commands)
    _add_ab(commands)
    add_bisect_command(commands)
    add_start_commands(commands)
    add_history_command(commands)
    return parser


def _add_baseline(commands: Subcommands) -> None:
    baseline = commands.add_parser("baseline", help="print or compare per-profile baselines")
    baseline.add_argument(
        "action",
        choices=("show", "diff", "match"),
        help="match: exit 0 when every test of the baseline has runs from this machine, 10 "
        "when not (CI picks the A/B mode then)",
    )
    baseline.add_argument(
        "target", help="a profile name (looked up in --dir) or a baseline YAML file"
    )
    baseline.add_argument(
        "other", nargs="?", help="diff: the newer baseline (profile or YAML) or a results JSON"
    )
    baseline.add_argument(
        "--dir", default="baselines", help="baseline directory (default: baselines)"
    )
    baseline.add_argument(
        "--device",
        default="auto",
        help="match: the device whose machine to look for "
        "(default: cuda:0 where there is one, else cpu)",
    )
    baseline.set_defaults(handler=run_baseline_command)


def _add_recommend(commands: Subcommands) -> None:
    rec = commands.add_parser(
        "recommend", help="the recommendation matrix fitted on a results JSON"
    )
    rec.add_argument("results", help="a results JSON written by --i2v-json")
    rec.add_argument(
        "--memory-classes", default="8,12,16,24,40,48,80", help="GPU memory classes in GB"
    )
    rec.add_argument(
        "--steps", type=int, default=50, help="study steps to predict the time for (default 50)"
    )
    rec.add_argument(
        "--margin", type=float, default=2.0, help="GB kept free (default 2, as the study advises)"
    )
    rec.add_argument(
        "--pipeline",
        metavar="NAME",
        help="only this pipeline's matrix (default: one per pipeline in the results)",
    )
    rec.set_defaults(handler=_cmd_recommend)


def _add_report_and_compare(commands: Subcommands) -> None:
    report = commands.add_parser(
        "report", help="render the HTML (and Markdown) report from a results JSON"
    )
    report.add_argument("results", help="a results JSON written by --i2v-json")
    report.add_argument(
        "-o",
        "--output",
        default="i2v-report.html",
        help="HTML file to write (default i2v-report.html)",
    )
    report.add_argument("--markdown", help="also write the Markdown summary here")
    report.set_defaults(handler=_cmd_report)
    compare = commands.add_parser(
        "compare", help="the difference between two results JSONs (branches, drivers, GPUs)"
    )
    compare.add_argument("a", help="results JSON A (e.g. the target branch)")
    compare.add_argument("b", help="results JSON B (e.g. the pull request)")
    compare.add_argument("-o", "--output", help="also write an HTML comparison here")
    compare.set_defaults(handler=_cmd_compare)


def _add_gpu_check(commands: Subcommands) -> None:
    gpu = commands.add_parser(
        "gpu-check",
        help="run the study on this GPU through the plugin and cross-check the "
        "measurements (about 8 minutes; --dry-run: the CPU, about a minute)",
    )
    gpu.add_argument(
        "--out",
        default="gpu-check-out",
        help="directory for results.json, report.html and gpu-check.md (default gpu-check-out)",
    )
    gpu.add_argument("--device", default="cuda:0", help="the CUDA device to check (default cuda:0)")
    gpu.add_argument(
        "--dry-run",
        action="store_true",
        help="the same runs and checks on the CPU: tiny model, simulated GPUs",
    )
    gpu.add_argument(
        "--model",
        help="random (full-size random weights, the default), tiny (the --dry-run default) "
        "or a local diffusers directory",
    )
    gpu.add_argument(
        "--pipeline",
        metavar="NAME",
        help="the pipeline to check (default i2vgen-xl): sizes up to its "
        "native one, its native frames, steps and guidance",
    )
    gpu.set_defaults(handler=_cmd_gpu_check)


def _add_ab(commands: Subcommands) -> None:
    ab = commands.add_parser(
        "ab",
        help="compare two revisions measured interleaved (ABBA) in one job on this machine; "
        "exit 1 when a test regressed",
    )
    ab.add_argument(
        "--base",
        required=True,
        metavar="REF",
        help="the revision to compare against (branch, tag or SHA)",
    )
    ab.add_argument(
        "--head",
        metavar="REF",
        help="the revision to measure (default: the working tree as it is, "
        "uncommitted changes included)",
    )
    _add_ab_design(ab)
    ab.add_argument(
        "--min-effect",
        type=float,
        metavar="PCT",
        help="the smallest change that counts, in per cent "
        "(default: pytest_i2v.ab.paired.DEFAULT_MIN_EFFECT)",
    )
    ab.add_argument(
        "--out",
        default="i2v-ab",
        metavar="DIR",
        help="directory for ab.json, ab.md, ab.html, each run's results and logs/ (default i2v-ab)",
    )
    ab.add_argument(
        "pytest_args",
        nargs="*",
        metavar="-- pytest args",
        help="passed unchanged to every pytest process",
    )
    ab.set_defaults(handler=_cmd_ab)


def _add_ab_design(ab: argparse.ArgumentParser) -> None:
    """How many rounds, decided when, measured how, calibrated from what."""
    ab.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="the most ABBA rounds, one process per side each; a test "
        "leaves once decided (default: "
        "pytest_i2v.ab.paired.DEFAULT_ROUNDS; --calibrate: 30)",
    )
    ab.add_argument(
        "--fixed-rounds",
        action="store_true",
        help="run every test for all --rounds and decide once at "
        "the end (the fixed design), not after every round",
    )
    ab.add_argument(
        "--full-runs",
        action="store_true",
        help="measure full generations in each process (default: "
        "fast mode and one repeat after the warm-up, unless the "
        "pytest args set --i2v-fast or --i2v-repeats)",
    )
    ab.add_argument(
        "--calibrate",
        action="store_true",
        help="run --base against itself and store each test's "
        "between-process spread in this machine's block of the "
        "profile's baseline file (ab_calibration); later jobs on "
        "the same machine and software use it",
    )
    ab.add_argument(
        "--baseline-dir",
        metavar="DIR",
        help="where the calibration is read and written (default: <repository>/baselines)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        output = args.handler(args)
    except I2VUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if output:
        print(output)
    return 0
