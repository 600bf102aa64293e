"""The live processor's callback/worker logic, driven without an audio device.

The callback is called directly (as the audio API would), the worker runs in its
thread. A stalled worker causes late blocks and input overflows; afterwards the
output must again be the input delayed by exactly the same latency: no creep.
"""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest

from realtime.config import Settings
from realtime.enhancer import Enhancer
from realtime.live.from_settings import build_processor
from realtime.live.processor import INPUT_RING_SECONDS, LiveProcessor

RATE = 16000
BLOCK = 160
OK_STATUS = SimpleNamespace(input_overflow=False, output_underflow=False)


def drive(processor: LiveProcessor, signal: np.ndarray, start: int, count: int, paced: bool) -> list[np.ndarray]:
    """Run ``count`` callbacks over ``signal`` from block ``start``; paced: wait for the worker each time."""
    outputs = []
    for k in range(start, start + count):
        indata = signal[k * BLOCK : (k + 1) * BLOCK, None]
        outdata = np.zeros((BLOCK, 1), dtype=np.float32)
        processor._callback(indata, outdata, BLOCK, None, OK_STATUS)
        outputs.append(outdata[:, 0].copy())
        deadline = time.monotonic() + 2
        while paced and processor._out_ring.available < BLOCK and time.monotonic() < deadline:
            time.sleep(0.0005)  # as in real time: the next block is ready before the next callback
    return outputs


def test_stalled_worker_recovers_with_the_same_delay(reference_model) -> None:
    enhancer = Enhancer(reference_model("identity", 16000, "float32"), RATE, block_size=BLOCK)
    processor = LiveProcessor(enhancer)
    gate = threading.Event()
    gate.set()
    process = enhancer.process

    def gated(block: np.ndarray) -> np.ndarray:
        gate.wait()
        return process(block)

    enhancer.process = gated  # type: ignore[method-assign]
    processor._wake_fd = os.eventfd(0, os.EFD_NONBLOCK)
    processor._out_ring.write_zeros(processor.handover_latency)
    worker = threading.Thread(target=processor._work, daemon=True)
    worker.start()

    stall_blocks = int(INPUT_RING_SECONDS * RATE / BLOCK) + 30
    total_blocks = 60 + stall_blocks + 300
    rng = np.random.default_rng(0)
    signal = (0.1 * rng.standard_normal(total_blocks * BLOCK)).astype(np.float32)
    try:
        out = drive(processor, signal, 0, 60, paced=True)
        gate.clear()  # the worker stalls inside process()
        out += drive(processor, signal, 60, stall_blocks, paced=False)
        gate.set()
        out += drive(processor, signal, 60 + stall_blocks, 300, paced=True)
    finally:
        gate.set()
        processor._stop.set()
        worker.join()
        os.close(processor._wake_fd)
    output = np.concatenate(out)
    counters = processor.counters
    assert counters.late_blocks > 0 and counters.input_overflows > 0 and counters.dropped_input_samples > 0
    delay = processor.handover_latency + enhancer.latency
    assert delay == BLOCK + enhancer.latency  # the hand-over did not grow: the stall came after settling
    tail = slice(len(output) - 100 * BLOCK, len(output))
    expected = signal[tail.start - delay : tail.stop - delay]
    assert np.max(np.abs(output[tail] - expected)) < 1e-5  # same delay as before the stall
    head = slice(delay, 60 * BLOCK)
    assert np.max(np.abs(output[head] - signal[head.start - delay : head.stop - delay])) < 1e-5


class InlineStream:
    """A stand-in for PulseDuplexStream: its own thread calls the callback; the test drives it by hand."""

    def __init__(self, samplerate: int, blocksize: int, channels: tuple[int, int], callback) -> None:  # noqa: ANN001
        self.callback, self.blocksize = callback, blocksize
        self.active = False
        self.latency = (0.0, 0.0)

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def close(self) -> None:
        self.active = False

    def block(self, indata: np.ndarray) -> np.ndarray:
        outdata = np.zeros((self.blocksize, 1), dtype=np.float32)
        self.callback(indata[:, None], outdata, self.blocksize, None, OK_STATUS)
        return outdata[:, 0]


def inline_factory() -> tuple[Callable[..., InlineStream], list[InlineStream]]:
    """A factory of :class:`InlineStream` (for ``LiveProcessor(..., inline=True)``) and the list of the streams it made."""
    streams: list[InlineStream] = []

    def factory(*args, **kwargs) -> InlineStream:  # noqa: ANN002, ANN003
        streams.append(InlineStream(*args, **kwargs))
        return streams[-1]

    return factory, streams


def test_a_stream_that_processes_inline_runs_the_enhancer_in_its_callback(reference_model) -> None:
    """No worker thread and no hand-over block: the callback's output is the enhancer's for that very block."""
    enhancer = Enhancer(reference_model("identity", 16000, "float32"), RATE, block_size=BLOCK)
    factory, streams = inline_factory()
    processor = LiveProcessor(enhancer, stream_factory=factory, inline=True)
    processor.start()
    try:
        assert processor._worker is None and processor.handover_latency == 0
        assert processor.stated_latency == enhancer.latency
        rng = np.random.default_rng(1)
        signal = (0.1 * rng.standard_normal(50 * BLOCK)).astype(np.float32)
        output = np.concatenate([streams[0].block(signal[k * BLOCK : (k + 1) * BLOCK]) for k in range(50)])
        delay = enhancer.latency
        assert np.max(np.abs(output[delay:] - signal[: len(signal) - delay])) < 1e-5
        assert processor.counters.callbacks == 50 and processor.counters.xruns == 0
        assert len(processor.processing_times()) == 50
    finally:
        processor.stop()


def test_an_inline_processing_failure_plays_silence_and_the_stream_goes_on(reference_model) -> None:
    """A block whose processing raises is played as silence, counted and reported; the stream keeps
    running and the next blocks are enhanced again at the same delay."""
    enhancer = Enhancer(reference_model("identity", 16000, "float32"), RATE, block_size=BLOCK)
    factory, streams = inline_factory()
    processor = LiveProcessor(enhancer, stream_factory=factory, inline=True)
    processor.start()
    process = enhancer.process

    def broken(block: np.ndarray) -> np.ndarray:
        raise RuntimeError("model exploded")

    try:
        enhancer.process = broken  # type: ignore[method-assign]
        out = streams[0].block(np.ones(BLOCK, dtype=np.float32))
        assert not out.any() and processor.streaming  # silence, and the stream goes on
        enhancer.process = process  # type: ignore[method-assign]
        signal = (0.1 * np.random.default_rng(2).standard_normal(20 * BLOCK)).astype(np.float32)
        output = np.concatenate([streams[0].block(signal[k * BLOCK : (k + 1) * BLOCK]) for k in range(20)])
        delay = enhancer.latency
        assert np.max(np.abs(output[delay:] - signal[: len(signal) - delay])) < 1e-5
        summary = processor.summary()
        assert summary["callbacks"] == 21 and summary["processing_failures"] == 1
        assert "model exploded" in summary["processing_error"]
    finally:
        processor.stop()  # does not raise: the failure was reported, not fatal


def test_the_block_size_is_the_enhancers_and_inline_is_said_explicitly(reference_model) -> None:
    """The processor streams the blocks its Enhancer was made for; running inline needs a stream of its own."""
    model = reference_model("identity", 16000, "float32")
    assert LiveProcessor(Enhancer(model, RATE, block_size=BLOCK)).block_size == BLOCK
    with pytest.raises(ValueError, match="block_size"):
        LiveProcessor(Enhancer(model, RATE))
    with pytest.raises(ValueError, match="stream_factory"):
        LiveProcessor(Enhancer(model, RATE, block_size=BLOCK), inline=True)
    factory, _ = inline_factory()
    assert LiveProcessor(Enhancer(model, RATE, block_size=BLOCK), stream_factory=factory, inline=True).handover_latency == 0


def test_settings_build_the_enhancer_and_the_processor(reference_model) -> None:
    """``quietmic run`` and the service build their stream alike: the block is the setting, else the hop."""
    from realtime.model import MaskModel

    model = MaskModel(reference_model("identity", 16000, "float32"))
    settings = Settings(block_size=None, atten_lim_db=12.0, bypass=True, input_device="mic", input_channel=1)
    processor = build_processor(model, settings, 48000)
    assert processor.block_size == 480 and processor.sample_rate == 48000 and not processor.inline
    assert (processor.input_device, processor.output_device, processor.input_channel) == ("mic", None, 1)
    assert processor.enhancer.atten_lim_db == 12.0 and processor.enhancer.bypass
    factory, _ = inline_factory()
    custom = build_processor(model, Settings(block_size=160), 16000, devices=("source", "sink"),
                             stream_factory=factory, inline=True)
    assert custom.block_size == 160 and custom.inline
    assert (custom.input_device, custom.output_device) == ("source", "sink")
