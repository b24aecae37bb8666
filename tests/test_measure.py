from __future__ import annotations

import time

import pytest
import torch

from pytest_i2v.measure.device import CpuDevice, HostClock, TorchRuntime
from pytest_i2v.measure.memory import HostRssPeak, NvmlSampler, PeakMemory, start_level
from pytest_i2v.measure.timing import StageRecorder
from pytest_i2v.measure.virtual_time import VirtualClock, VirtualTime


class FakeVae(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.post_quant_conv = torch.nn.Identity()
        self.decoder = torch.nn.Identity()


class FakePipe:
    """Calls a 'UNet' per step and a 'decoder' per frame chunk, each taking
    known virtual seconds."""

    def __init__(self, time: VirtualTime | None = None) -> None:
        self.unet = torch.nn.Identity()
        self.vae = FakeVae()
        self.time = time or VirtualTime()

    def __call__(self, steps: int, chunks: int) -> None:
        self.time.advance(0.02)  # encoding
        for _ in range(steps):
            self.unet(torch.zeros(1))
            self.time.advance(0.01)
        for _ in range(chunks):
            self.vae.post_quant_conv(torch.zeros(1))
            self.vae.decoder(torch.zeros(1))
            self.time.advance(0.015)


def test_stage_recorder_splits_encode_steps_decode() -> None:
    pipe = FakePipe()
    seen: list[int] = []
    recorder = StageRecorder(pipe, VirtualClock(pipe.time), on_step=seen.append)
    with recorder:
        recorder.begin()
        pipe(steps=4, chunks=2)
        recorder.finish()
    times = recorder.times()
    assert seen == [1, 2, 3, 4]
    assert times.encode_s == pytest.approx(0.02)
    assert times.step_s == pytest.approx((0.01,) * 4)
    assert times.decode_s == pytest.approx(0.03)  # both chunks, timed from the first decoder call
    assert recorder.stage == "decode"
    # hooks are removed on exit: a later call records nothing
    pipe(steps=1, chunks=0)
    assert len(recorder.step_marks) == 4


def test_the_loop_is_also_timed_by_a_mark_pair_of_its_own() -> None:
    """gpu-check (c)'s reading: first denoiser call to decode start, by marks no step shares."""
    pipe = FakePipe()
    recorder = StageRecorder(pipe, VirtualClock(pipe.time))
    with recorder:
        recorder.begin()
        pipe(steps=4, chunks=2)
        recorder.finish()
    times = recorder.times()
    assert times.denoise_span_s == pytest.approx(0.04) == pytest.approx(sum(times.step_s))
    # a step end marked before the step's work was done (a callback in the wrong place) leaves the
    # steps short of the loop: what (c) catches and (b) cannot (the total still adds up)
    early = StageRecorder(pipe, VirtualClock(pipe.time), callback_steps=True)
    with early:
        early.begin()
        pipe.unet(torch.zeros(1))
        early.step_end(1)
        pipe.time.advance(0.01)  # the step's scheduler update, after its end was marked
        pipe.vae.post_quant_conv(torch.zeros(1))
        early.finish()
    assert sum(early.times().step_s) == 0.0 and early.times().denoise_span_s == pytest.approx(0.01)


def test_the_host_clock_reads_real_seconds() -> None:
    clock = HostClock()
    start = clock.mark()
    time.sleep(0.01)
    assert clock.seconds_between(start, clock.mark()) >= 0.01  # a sleep never returns early


def test_stage_is_encode_before_the_first_step() -> None:
    recorder = StageRecorder(FakePipe(), HostClock())
    assert recorder.stage == "encode"
    assert recorder.times().step_s == ()


def test_cpu_guards_do_not_raise() -> None:
    device = TorchRuntime().open("cpu")
    assert isinstance(device, CpuDevice) and not device.is_cuda
    device.synchronize()
    device.empty_cache()
    device.reset_peak_stats()
    assert isinstance(device.clock(), HostClock)
    assert (
        device.peak_allocated_bytes(),
        device.peak_reserved_bytes(),
        device.allocated_bytes(),
    ) == (None, None, None)
    assert device.nvml_memory().scope == "unavailable"
    sampler = NvmlSampler(device)
    sampler.start()
    assert sampler.stop() == (None, None)
    level = start_level(device)
    assert level.allocated_bytes is None and level.host_rss_bytes and level.host_rss_bytes > 0


def test_host_rss_peak_sees_a_large_allocation() -> None:
    rss = HostRssPeak()
    rss.reset()
    before = rss.read()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    peak = rss.read()
    del block
    assert peak - before > 48 * 2**20


def test_peak_memory_max_of_ignores_missing_values() -> None:
    merged = PeakMemory.max_of([PeakMemory(1, None, None, 5), PeakMemory(3, None, None, 2)])
    assert merged == PeakMemory(3, None, None, 5)
    scoped = PeakMemory.max_of(
        [PeakMemory(None, None, 7, None, "process"), PeakMemory(None, None, 9, None, "device")]
    )
    assert (
        scoped.device_bytes == 9 and scoped.device_scope == "mixed"
    )  # never compared with either scope
    assert PeakMemory.max_of([]) == PeakMemory()
