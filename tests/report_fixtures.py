"""A fixed results document for report tests (deterministic: golden files compare against it)."""

from __future__ import annotations

from typing import Any

from pytest_i2v.verdict.outcome import DecisionInputs, Outcome, decide, headline

XSS = '<script>alert("x")</script>'


def record(
    nodeid: str,
    resolution: str | None,
    size: int,
    frames: int,
    time_s: float,
    peak: int,
    verdict: str = "pass",
    dtype: str = "fp16",
    memory: list[str] | None = None,
    outcome: str = "ok",
    steps: int = 50,
    pipeline: str | None = "i2vgen-xl",
) -> dict[str, Any]:
    """One result; ``pipeline=None`` leaves the key out, as records written before pipelines were
    named."""
    metrics = [
        {
            "metric": "time_s",
            "verdict": verdict,
            "current": time_s,
            "baseline": time_s / 1.2 if verdict == "regressed" else time_s,
            "runs": 5,
            "interval": [time_s * 0.9, time_s * 1.06],
            "delta_pct": 20.0 if verdict == "regressed" else 0.0,
            "rule": "prediction-interval",
            "threshold": "one-sided 99.8% prediction interval from 5 runs",
            "gating": True,
        }
    ]
    result = {
        "nodeid": nodeid,
        "outcome": outcome,
        "repeats": 5,
        "warmup": 1,
        "time_s": time_s,
        "time_samples_s": [time_s] * 5,
        "gen_fps": frames / time_s,
        "load_s": 12.5,
        "notes": [],
        "wall_s": time_s * 6,
        "config": {
            "width": size,
            "height": size,
            "frames": frames,
            "steps": steps,
            "guidance": 9.0,
            "fps": 8,
            "dtype": dtype,
            "memory": memory or [],
            "prompt": "p",
            "seed": 0,
            "resolution": resolution,
            "source": "random",
            "provenance": "full-size-random-weights",
            "device": "cuda",
        },
        "stages": {
            "encode_s": 0.5,
            "denoise_s": time_s - 1.5,
            "step_s": (time_s - 1.5) / steps,
            "step_samples_s": [[(time_s - 1.5) / steps] * steps] * 2,
            "decode_s": 1.0,
        },
        "peak_memory": {
            "allocated_bytes": peak,
            "reserved_bytes": peak + 2**30,
            "device_bytes": peak + 2**31,
            "host_rss_bytes": 3 * 2**30,
        },
        "oom": {
            "stage": "decode",
            "step": None,
            "message": "CUDA out of memory",
            "allocated_bytes": peak,
        }
        if outcome == "oom"
        else None,
        "verdict": None
        if outcome == "oom"
        else {"verdict": verdict, "metrics": metrics, "env_changes": [], "notes": []},
        "latency_class": "good" if time_s < 30 else "acceptable" if time_s <= 60 else "too-slow",
        "baseline_history": [time_s / 1.2] * 5
        if verdict == "regressed"
        else [time_s * 0.99, time_s, time_s * 1.01],
        "config_id": "abc",
        "fingerprint": {},
        "budget": None,
        "decision": decide(
            DecisionInputs(
                outcome, [], None if outcome == "oom" else verdict, "warn", "enforce", "h100-80gb"
            )
        ).to_dict(),
    }
    if pipeline is not None:
        result["config"]["pipeline"] = pipeline
    return result


def document() -> dict[str, Any]:
    gib = 2**30
    records = [
        record(
            "suites/test_resolution_sweep.py::test_resolution_sweep[256p]",
            "256p",
            256,
            16,
            9.1,
            6 * gib,
        ),
        record(
            "suites/test_resolution_sweep.py::test_resolution_sweep[512p]",
            "512p",
            512,
            16,
            18.0,
            8 * gib,
            verdict="regressed",
        ),
        record(
            "suites/test_resolution_sweep.py::test_resolution_sweep[768p]",
            "768p",
            768,
            16,
            33.6,
            11 * gib,
        ),
        record(
            "suites/test_resolution_sweep.py::test_resolution_sweep[1024p]",
            "1024p",
            1024,
            16,
            61.0,
            15 * gib,
            outcome="oom",
        ),
        record(
            f"suites/test_x.py::test_evil[{XSS}|col]", "512p", 512, 16, 18.5, 8 * gib, dtype="fp32"
        ),
        record(
            "suites/test_memory_options.py::test_memory_option[vae_tiling]",
            "512p",
            512,
            16,
            20.0,
            7 * gib,
            memory=["vae_tiling"],
        ),
    ]
    fails, line = headline(
        [Outcome.from_dict(r["decision"]) for r in records], "h100-80gb", "enforce"
    )
    return {
        "schema": "pytest-i2v/results",
        "schema_version": 1,
        "created": "2026-11-25T12:00:00+00:00",
        "gate": {"mode": "enforce", "fails": fails, "headline": line},
        "environment": {
            "device": "cuda",
            "gpu_name": f"NVIDIA H100 {XSS}",
            "gpu_memory_gib": 79.2,
            "driver": "560.35",
            "cuda": "12.8",
            "cudnn": "91002",
            "torch": "2.11.0",
            "diffusers": "0.42.1",
            "transformers": "5.5.4",
            "python": "3.12.3",
            "plugin": "0.1.0",
            "profile": "h100-80gb",
        },
        "profile": {
            "name": "h100-80gb",
            "memory_gb": 80.0,
            "scaling": {"size_divisor": 1, "steps_divisor": 1, "min_size": 8},
        },
        "settings": {"latency_thresholds": [30.0, 60.0], "safety_margin_gb": 2.0},
        "pipelines": [],
        "records": records,
        "skipped": [{"nodeid": "suites/t.py::test_offload", "reason": "needs CUDA"}],
        "baseline": {"path": "baselines/h100-80gb.yaml"},
        "published_reference": {
            "provenance": "published",
            "source": "the article",
            "note": None,
            "rows": [
                {
                    "label": "512p",
                    "published_time_s": 36.5,
                    "published_peak_vram_gb": 13.6,
                    "measured": {
                        "nodeid": "x",
                        "time_s": 18.0,
                        "time_ratio": 0.49,
                        "peak_gb": 10.7,
                        "provenance": "full-size-random-weights",
                    },
                }
            ],
        },
        "recommendations": {},
    }


def two_pipeline_document() -> dict[str, Any]:
    """The fixed document plus SVD results: a plain sweep at two sizes, an option with its own plain
    run (512), and one whose only plain run at that size is I2VGen-XL's (768): never its base."""
    gib = 2**30
    doc = document()
    doc["records"] += [
        record(
            "suites/test_svd.py::test_sweep[256p]", "256p", 256, 16, 4.0, 2 * gib, pipeline="svd"
        ),
        record(
            "suites/test_svd.py::test_sweep[512p]", "512p", 512, 16, 8.0, 4 * gib, pipeline="svd"
        ),
        record(
            "suites/test_svd.py::test_option[model_cpu_offload]",
            "512p",
            512,
            16,
            12.0,
            1 * gib,
            memory=["model_cpu_offload"],
            pipeline="svd",
        ),
        record(
            "suites/test_svd.py::test_option[forward_chunking]",
            "768p",
            768,
            16,
            30.0,
            5 * gib,
            memory=["forward_chunking"],
            pipeline="svd",
        ),
    ]
    return doc
