from __future__ import annotations

import time


import torch

from pytest_i2v.measure.memory import AllocatorPeak, HostRssPeak, NvmlSampler, PeakMemory
from pytest_i2v.measure.timing import HostClock, StageRecorder, clock_for, synchronize


class FakeVae(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.post_quant_conv = torch.nn.Identity()
        self.decoder = torch.nn.Identity()


class FakePipe:
    """Calls a 'UNet' per step and a 'decoder' per frame chunk, sleeping known times."""

    def __init__(self) -> None:
        self.unet = torch.nn.Identity()
        self.vae = FakeVae()

    def __call__(self, steps: int, chunks: int) -> None:
        time.sleep(0.02)  # encoding
        for _ in range(steps):
            self.unet(torch.zeros(1))
            time.sleep(0.01)
        for _ in range(chunks):
            self.vae.post_quant_conv(torch.zeros(1))
            self.vae.decoder(torch.zeros(1))
            time.sleep(0.015)


def test_stage_recorder_splits_encode_steps_decode() -> None:
    pipe = FakePipe()
    seen: list[int] = []
    recorder = StageRecorder(pipe, HostClock(), on_step=seen.append)
    with recorder:
        recorder.begin()
        pipe(steps=4, chunks=2)
        recorder.finish()
    times = recorder.times()
    assert seen == [1, 2, 3, 4]
    assert len(times.step_s) == 4
    assert 0.018 < times.encode_s < 0.05
    assert all(0.009 < s < 0.03 for s in times.step_s)
    assert 0.028 < times.decode_s < 0.06  # both chunks, timed from the first decoder call
    assert recorder.stage == "decode"
    # hooks are removed on exit: a later call records nothing
    pipe(steps=1, chunks=0)
    assert len(recorder.step_marks) == 4


def test_stage_is_encode_before_the_first_step() -> None:
    recorder = StageRecorder(FakePipe(), HostClock())
    assert recorder.stage == "encode"
    assert recorder.times().step_s == ()


def test_cpu_guards_do_not_raise() -> None:
    synchronize("cpu")
    assert isinstance(clock_for("cpu"), HostClock)
    allocator = AllocatorPeak("cpu")
    allocator.reset()
    assert allocator.read() == (None, None)
    sampler = NvmlSampler("cpu")
    assert not sampler.available and sampler.unavailable_reason
    sampler.start()
    assert sampler.stop() is None


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
    assert PeakMemory.max_of([]) == PeakMemory()


