"""Fast mode, adaptive repeats and the roofline: the logic, the FLOP count against a hand
calculation, and fast mode through pytest."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pytest_i2v.generation.inputs import synthetic_portrait
from pytest_i2v.generation.marks import i2v
from pytest_i2v.measure.flops import FlopCount, count_flops, roofline
from pytest_i2v.measure.measurement import AdaptiveRepeats, Measurement, RepeatSample, median_ci_pct
from pytest_i2v.measure.memory import PeakMemory
from pytest_i2v.measure.runner import GenerationRunner
from pytest_i2v.measure.virtual_time import VirtualCpuDevice, VirtualWork
from pytest_i2v.record.parts import Roofline


def sample(total: float, encode: float, steps: list[float], decode: float) -> RepeatSample:
    return RepeatSample(
        total_s=total, encode_s=encode, step_s=tuple(steps), decode_s=decode, peak=PeakMemory()
    )


def test_fast_mode_predicts_encode_plus_n_median_steps_plus_decode() -> None:
    spec = i2v(width=64, height=64, frames=8, steps=50)
    m = Measurement(
        spec=spec,
        outcome="ok",
        warmup=0,
        measured_steps=5,
        samples=(sample(1.5, 0.2, [0.2, 0.21, 0.19, 0.2, 0.5], 0.3),),
    )
    assert m.predicted
    assert m.time_s == pytest.approx(0.2 + 50 * 0.2 + 0.3)  # the median step, not the 0.5 s outlier
    assert m.measured_time_s == 1.5
    assert m.stages.denoise_s == pytest.approx(50 * 0.2)
    assert m.gen_fps == pytest.approx(8 / m.time_s)
    full = Measurement(
        spec=spec,
        outcome="ok",
        warmup=0,
        measured_steps=50,
        samples=(sample(11.0, 0.2, [0.2] * 50, 0.3),),
    )
    assert not full.predicted and full.time_s == 11.0


def test_fast_mode_on_the_tiny_model_runs_k_steps_and_keeps_the_peak(tiny_pipe) -> None:
    device = VirtualCpuDevice(
        VirtualWork()
    )  # the cost is compared on the virtual clock, not the machine's
    handles = device.attach(tiny_pipe, [tiny_pipe.unet, tiny_pipe.vae.decoder])
    try:
        runner = GenerationRunner(tiny_pipe, device)
        spec = i2v(width=32, height=32, frames=4, steps=20)
        image = synthetic_portrait(64, 64)
        fast = runner.measure(spec, image, warmup=1, repeats=3, fast_steps=4)
        assert fast.predicted and all(len(s.step_s) == 4 for s in fast.samples)
        full = runner.measure(spec, image, warmup=1, repeats=3)
    finally:
        for handle in handles:
            handle.remove()
    assert all(len(s.step_s) == 20 for s in full.samples)
    # the peak does not depend on the number of steps (checked here on host RSS; on a GPU on the
    # allocator)
    assert abs(fast.peak.host_rss_bytes - full.peak.host_rss_bytes) < 32 * 2**20
    assert fast.wall_s < full.wall_s
    assert fast.time_s == pytest.approx(
        full.time_s
    )  # 4 measured steps predict the 20-step total exactly here


def test_median_ci_and_adaptive_repeats() -> None:
    assert median_ci_pct([1.0]) is None
    assert median_ci_pct([1.0, 1.0, 1.0]) == 0.0
    tight = [1.0, 1.001, 0.999, 1.0005]
    noisy = [1.0, 1.3, 0.8, 1.2]
    assert median_ci_pct(tight) < 1.0 < median_ci_pct(noisy)
    policy = AdaptiveRepeats(target_pct=2.0, minimum=3, maximum=6)
    assert not policy.done([1.0, 1.0])  # fewer than the minimum
    assert policy.done([1.0, 1.0, 1.0])  # converged
    assert not policy.done(noisy)
    assert policy.done([*noisy, 1.1, 0.9])  # the maximum


def test_adaptive_repeats_stop_early_on_a_quiet_measurement(tiny_pipe) -> None:
    device = VirtualCpuDevice(
        VirtualWork()
    )  # quiet for sure: the virtual clock, not a loaded machine's
    handles = device.attach(tiny_pipe, [tiny_pipe.unet, tiny_pipe.vae.decoder])
    try:
        m = GenerationRunner(tiny_pipe, device).measure(
            i2v(width=32, height=32, frames=2, steps=2),
            synthetic_portrait(64, 64),
            warmup=1,
            repeats=99,
            adaptive=AdaptiveRepeats(target_pct=1000.0, minimum=3, maximum=8),
        )
    finally:
        for handle in handles:
            handle.remove()
    assert len(m.samples) == 3  # a 1000 % target is met as soon as the minimum is
    runner = GenerationRunner(
        tiny_pipe, "cpu"
    )  # real times are never exactly equal: the target stays out of reach
    m = runner.measure(
        i2v(width=32, height=32, frames=2, steps=2),
        synthetic_portrait(64, 64),
        warmup=0,
        repeats=99,
        adaptive=AdaptiveRepeats(target_pct=1e-9, minimum=2, maximum=4),
    )
    assert len(m.samples) == 4  # an unreachable target stops at the maximum


class ToyUNet(torch.nn.Module):
    """A linear layer, a convolution and one attention, with FLOPs countable by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(16, 32)
        self.conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.linear(torch.ones(4, 16))
        self.conv(torch.ones(1, 3, 8, 8))
        q = torch.ones(1, 2, 10, 4)  # batch 1, 2 heads, 10 queries, head dim 4
        k = v = torch.ones(1, 2, 6, 4)  # 6 keys
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return x


class ToyDecoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.ones(5, 8))


class ToyPipe:
    def __init__(self) -> None:
        self.unet = ToyUNet()
        self.vae = SimpleNamespace(decoder=ToyDecoder())

    def __call__(self, num_inference_steps: int, **_: object) -> SimpleNamespace:
        for _step in range(num_inference_steps):
            self.unet(torch.zeros(1))
        self.vae.decoder(torch.zeros(1))
        return SimpleNamespace(frames=np.zeros((1, 1, 8, 8, 3)))


def test_flop_count_matches_a_hand_calculation() -> None:
    flops = count_flops(ToyPipe(), i2v(width=8, height=8, frames=1, steps=50), image=None)
    linear = 2 * 4 * 16 * 32  # 2 * batch * in * out
    conv = (
        2 * (8 * 8) * 8 * (3 * 3 * 3)
    )  # 2 * output pixels * out channels * (in channels * kernel)
    attention = 2 * (
        2 * 1 * 2 * 10 * 6 * 4
    )  # Q K^T and A V: 2 * batch * heads * queries * keys * head dim each
    assert flops.unet_step == linear + conv + attention  # one step, whatever the schedule length
    assert flops.decode == 2 * 5 * 8 * 8


def _field(result: Roofline | None, name: str) -> object:
    assert result is not None
    return getattr(result, name)


def test_roofline_against_the_datasheet_peak() -> None:
    result = roofline(
        FlopCount(unet_step=int(2e12), decode=int(1e12)),
        step_s=0.01,
        decode_s=0.5,
        peak_tflops=400.0,
    )
    assert result is not None
    assert result.denoise_tflops == pytest.approx(200.0)
    assert result.efficiency == pytest.approx(0.5)
    assert result.decode_tflops == pytest.approx(2.0)
    assert roofline(None, 0.01, 0.5, 400.0) is None
    assert _field(roofline(FlopCount(1, 1), 0.01, 0.5, None), "efficiency") is None


def test_profiles_carry_published_peaks() -> None:
    from pytest_i2v.profiles import load_profiles

    profiles = load_profiles()
    assert profiles["h100-80gb"].peak_tflops["bf16"] == pytest.approx(989.4)
    assert profiles["rtx4090"].memory_bandwidth_gbs == 1008
    assert all(p.peak_tflops for p in profiles.values() if p.device == "cuda")
    assert profiles["cpu"].peak_tflops == {}


def test_fast_mode_through_pytest(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        """
        import pytest

        @pytest.mark.i2v(resolution="256p", frames=2, steps=50)
        def test_cli_fast(i2v_run):
            result = i2v_run()
            assert result.mode == "fast" and result.fast.measured_steps == 3
            roofline = result.roofline
            assert roofline.unet_step_tflop > 0 and roofline.efficiency is None  # no CPU peak

        @pytest.mark.i2v(resolution="256p", frames=2, steps=50, fast=True, seed=1)
        def test_mark_fast(i2v_run):
            assert i2v_run().mode == "fast"
        """
    )
    result = i2v_project.runpytest(
        "--i2v-fast",
        "--i2v-fast-steps",
        "3",
        "--i2v-json",
        "r.json",
        "--i2v-repeats",
        "2",
        "--i2v-roofline",
        "on",
    )
    result.assert_outcomes(passed=2)
    records = json.loads((i2v_project.path / "r.json").read_text())["records"]
    for record in records:
        assert record["fast"]["predicted"] is True and record["fast"]["steps"] == 10
        assert len(record["stages"]["step_samples_s"][0]) == 3
        assert (
            record["time_s"] > record["fast"]["measured_time_s"]
        )  # 10 steps predicted from 3 measured
    result.stdout.fnmatch_lines(["*predicted from 3 of 10 steps*"])


def test_the_cpu_profile_counts_no_flops_unless_told(i2v_project: pytest.Pytester) -> None:
    """The CPU profile has no datasheet peak and its FLOP count costs as much as a measured
    generation: off by default (no roofline, which only the count makes), on with --i2v-roofline on;
    GPU profiles: on."""
    i2v_project.makepyfile(
        """
        import pytest

        @pytest.mark.i2v(resolution="256p", frames=2, steps=10)
        def test_gen(i2v_run):
            assert i2v_run().outcome == "ok"
        """
    )
    i2v_project.runpytest("--i2v-json", "off.json", "--i2v-repeats", "1").assert_outcomes(passed=1)
    assert json.loads((i2v_project.path / "off.json").read_text())["records"][0]["roofline"] is None
    i2v_project.runpytest(
        "--i2v-json", "on.json", "--i2v-repeats", "1", "--i2v-roofline", "on"
    ).assert_outcomes(passed=1)
    assert (
        json.loads((i2v_project.path / "on.json").read_text())["records"][0]["roofline"][
            "unet_step_tflop"
        ]
        > 0
    )
    from pytest_i2v.profiles import load_profiles

    profiles = load_profiles()
    assert profiles["cpu"].roofline is False and all(
        p.roofline for p in profiles.values() if p.device == "cuda"
    )


def test_fast_mode_conflicts_with_updating_baselines(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile("def test_nothing(): pass")
    result = i2v_project.runpytest("--i2v-fast", "--i2v-update-baselines")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --i2v-update-baselines with --i2v-fast: baselines hold measured runs*"]
    )


def test_adaptive_repeats_through_pytest(i2v_project: pytest.Pytester) -> None:
    i2v_project.makepyfile(
        """
        import pytest

        @pytest.mark.i2v(resolution="256p", frames=2, steps=10)
        def test_adaptive(i2v_run):
            result = i2v_run()
            assert 2 <= result.repeats <= 4
            assert result.adaptive.repeats_needed == result.repeats
            assert result.adaptive.stopped in ("converged", "max-repeats")
        """
    )
    i2v_project.runpytest(
        "--i2v-target-ci", "50", "--i2v-min-repeats", "2", "--i2v-max-repeats", "4"
    ).assert_outcomes(passed=1)


def test_flops_of_a_backend_the_counter_cannot_see_are_labelled_as_excluding_attention(
    tiny_pipe,
) -> None:
    """Issue 21, defect 6: FlopCounterMode has formulas for aten's SDPA ops only; flash-attn, sage,
    xformers and hub kernels are invisible to it, so their roofline is a lower bound and says so."""
    from pytest_i2v.measure.flops import attention_is_counted

    assert (
        attention_is_counted(None)
        and attention_is_counted("native")
        and attention_is_counted("_native_math")
    )
    assert (
        not attention_is_counted("flash")
        and not attention_is_counted("sage")
        and not attention_is_counted("xformers")
    )
    spec = i2v(width=32, height=32, frames=2, steps=2)
    assert count_flops(tiny_pipe, spec, synthetic_portrait(64, 64)).attention_counted
    from dataclasses import replace

    flash = count_flops(tiny_pipe, replace(spec, attention="flash"), synthetic_portrait(64, 64))
    assert not flash.attention_counted
    assert _field(roofline(flash, 0.01, 0.5, 400.0), "excludes_attention") is True
    assert _field(roofline(FlopCount(1, 1), 0.01, 0.5, 400.0), "excludes_attention") is False
