"""CPU starvation: the live path counts its glitches, never deadlocks or crashes, and recovers.

While stress processes keep every core busy (more of them than cores) and the
enhancer is made slower than real time (each block burns
:data:`SLOW_FACTOR` block periods of CPU), the stream must go on: the problems
are counted (late blocks, or the server's underflows), nothing hangs, and once
the load ends new blocks flow, the counters stop rising and the delay is the
stated one again.

Two drivers: a fake audio server that calls back at the real-time pace from its
own thread (runs everywhere; both the worker path and the inline,
PulseAudio-style path), and the JACK dummy server with quietmic's output wired
back to its input (skipped without a server unless QUIETMIC_REQUIRE_JACK=1, as
in test_live_jack.py), where a pulse measures the delay after the load.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from test_live_jack import JACK_PERIOD, JACK_RATE, jack_device  # noqa: F401  (jack_device: a fixture)

from benchmarks.cpu_stress import CpuStress
from benchmarks.jack_server import connect_loopback
from benchmarks.machine import usable_cpus
from realtime.enhancer import Enhancer
from benchmarks.latency_probe import LoopbackProbe
from realtime.live.processor import SETTLE_SECONDS as LIVE_SETTLE_SECONDS
from realtime.live.processor import LiveProcessor
from realtime.live.pulse_stream import PLAYBACK_TARGET_BLOCKS

STRESS_PER_CPU = 2
"""Stress processes per usable core: more runnable processes than cores."""

SLOW_FACTOR = 1.5
"""While starving, each block burns this many block periods of CPU before being enhanced."""

SETTLE_SECONDS = LIVE_SETTLE_SECONDS + 0.25
"""From stream start (or wiring the JACK loop) to the starvation: past the live path's own settling,
during which a late block grows the hand-over instead of counting."""
STARVE_SECONDS = 2.0
"""How long the stress and the slow enhancer last."""
RECOVER_SECONDS = 1.0
"""After the load ends, for the backlog to clear, before counters must stand still."""
QUIET_SECONDS = 1.5
"""The calm stretch in which nothing may go wrong any more."""
STOP_TIMEOUT_SECONDS = 10.0
"""stop() (and everything else) must return within this: a longer wait is a deadlock."""
MIN_FLOW = 0.9
"""In the calm stretch at least this fraction of the real-time number of blocks is called back."""
CALM_GLITCH_FRACTION = 0.05
"""In the calm stretch, glitches go on at most at this rate per block: on a shared machine another
process can still delay a block now and then (while starving, most blocks glitch: 183 late of about
200 on JACK)."""

FAKE_RATE = 16000
FAKE_BLOCK = 160
OK = SimpleNamespace(input_overflow=False, output_underflow=False)
UNDERFLOW = SimpleNamespace(input_overflow=False, output_underflow=True)


def burn_cpu(seconds: float) -> None:
    """Run Python bytecode (holding the GIL as long as the interpreter lets it) for ``seconds``."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        sum(range(200))


class Starver:
    """Replaces ``enhancer.process``: while :attr:`on` is set, each block first burns SLOW_FACTOR block periods."""

    def __init__(self, enhancer: Enhancer, block_size: int) -> None:
        self.on = threading.Event()
        self.slowed_blocks = 0
        self._process = enhancer.process
        self._burn_seconds = SLOW_FACTOR * block_size / enhancer.sample_rate
        enhancer.process = self  # type: ignore[method-assign]

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.on.is_set():
            self.slowed_blocks += 1
            burn_cpu(self._burn_seconds)
        return self._process(block)


@contextlib.contextmanager
def starvation(starver: Starver) -> Iterator[None]:
    """Stress processes on every core (STRESS_PER_CPU each) and a slow enhancer, for the ``with`` block."""
    with contextlib.ExitStack() as stack:
        for cpu in usable_cpus():
            for _ in range(STRESS_PER_CPU):
                stack.enter_context(CpuStress(cpu))
        starver.on.set()
        try:
            yield
        finally:
            starver.on.clear()


def returns_within(function: Callable[[], Any], seconds: float) -> bool:
    """Run ``function`` in a thread; whether it returned (or raised) within ``seconds``."""
    worker = threading.Thread(target=function, daemon=True)
    worker.start()
    worker.join(seconds)
    return not worker.is_alive()


def xruns_and_flags(processor: LiveProcessor) -> dict[str, int]:
    """The glitch counters (a snapshot)."""
    c = processor.counters
    return {"late_blocks": c.late_blocks, "input_overflows": c.input_overflows,
            "output_underflows": c.output_underflows, "processing_failures": c.processing_failures}


def assert_glitches_stopped(calm: dict[str, int], after: dict[str, int], blocks: int) -> None:
    """Between the two snapshots, over ``blocks`` blocks, (nearly) nothing more went wrong."""
    new = {key: after[key] - calm[key] for key in calm}
    # One hiccup can show in several counters at once (a JACK xrun: a late block, an overflow and an
    # underflow): the worst counter is the number of blocks hit.
    assert max(new.values()) <= CALM_GLITCH_FRACTION * blocks, f"glitches went on after the load: {new}"
    assert new["processing_failures"] == 0


# --- a fake audio server, paced by the wall clock --------------------------------------------


class PacedStream:
    """A fake audio server: a thread calls back once per block period with consecutive input blocks.

    Like a server with a playback buffer of PLAYBACK_TARGET_BLOCKS blocks, it reports
    ``output_underflow`` when a callback comes later than that buffer lasts, and then restarts its
    schedule from that moment (as a server re-buffers after an underrun). Inputs and outputs are kept.
    """

    processes_inline = False

    def __init__(self, samplerate: int, blocksize: int, channels: tuple[int, int], callback: Callable[..., None],
                 signal: np.ndarray) -> None:
        self.callback, self.blocksize, self.signal = callback, blocksize, signal
        self.period = blocksize / samplerate
        self.output = np.zeros_like(signal)
        self.blocks = 0
        self.latency = (0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-server", daemon=True)

    @property
    def active(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def close(self) -> None:
        self.stop()

    def _run(self) -> None:
        block, anchor, k = self.blocksize, time.monotonic(), 0
        outdata = np.zeros((block, 1), dtype=np.float32)
        while not self._stop.is_set() and (self.blocks + 1) * block <= len(self.signal):
            due = anchor + k * self.period
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            status = OK
            if time.monotonic() > due + PLAYBACK_TARGET_BLOCKS * self.period:
                status, anchor, k = UNDERFLOW, time.monotonic(), 0  # ran dry; the server re-buffers
            start = self.blocks * block
            self.callback(self.signal[start : start + block, None], outdata, block, None, status)
            self.output[start : start + block] = outdata[:, 0]
            self.blocks += 1
            k += 1


@dataclass
class Phases:
    """Counters (:func:`xruns_and_flags`) and stream progress at the ends of :func:`starve_then_calm`'s phases."""

    before: dict[str, int]
    handover: int
    starved: dict[str, int]
    calm: dict[str, int]
    calm_flow: int
    after: dict[str, int]
    after_flow: int


def starve_then_calm(processor: LiveProcessor, starver: Starver, flow: Callable[[], int],
                     on_calm: Callable[[int], None] | None = None) -> Phases:
    """Settle, starve the running ``processor`` (``STARVE_SECONDS``), let it recover, then watch a quiet stretch.

    ``flow()`` counts the stream's progress (blocks or callbacks); ``on_calm(flow())`` runs as the quiet
    stretch begins. Asserts that the stream survives.
    """
    time.sleep(SETTLE_SECONDS)
    before, handover = xruns_and_flags(processor), processor.handover_latency
    with starvation(starver):
        time.sleep(STARVE_SECONDS)
    starved = xruns_and_flags(processor)
    assert processor.streaming, "the stream died under starvation"
    time.sleep(RECOVER_SECONDS)
    calm, calm_flow = xruns_and_flags(processor), flow()
    if on_calm is not None:
        on_calm(calm_flow)
    time.sleep(QUIET_SECONDS)
    after, after_flow = xruns_and_flags(processor), flow()
    assert processor.streaming
    return Phases(before, handover, starved, calm, calm_flow, after, after_flow)


class PacedInlineStream(PacedStream):
    """The same, for a stream whose own thread runs the enhancer (like PulseDuplexStream)."""

    processes_inline = True


@pytest.mark.parametrize("stream_class", [PacedStream, PacedInlineStream], ids=["worker", "inline"])
def test_starved_live_path_counts_glitches_and_recovers(reference_model, stream_class: type[PacedStream]) -> None:
    enhancer = Enhancer(reference_model("identity", 16000, "float32"), FAKE_RATE, block_size=FAKE_BLOCK)
    starver = Starver(enhancer, FAKE_BLOCK)
    total = SETTLE_SECONDS + STARVE_SECONDS + RECOVER_SECONDS + QUIET_SECONDS
    signal = (0.1 * np.random.default_rng(0).standard_normal(int((total + 5) * FAKE_RATE))).astype(np.float32)
    streams: list[PacedStream] = []

    def factory(*args: Any, **kwargs: Any) -> PacedStream:
        streams.append(stream_class(*args, signal=signal, **kwargs))
        return streams[-1]

    processor = LiveProcessor(enhancer, stream_factory=factory, inline=stream_class.processes_inline)
    processor.start()
    try:
        phases = starve_then_calm(processor, starver, lambda: streams[0].blocks)
    finally:
        assert returns_within(processor.stop, STOP_TIMEOUT_SECONDS), "stop() hung"
    before, handover, starved, calm, after = phases.before, phases.handover, phases.starved, phases.calm, phases.after
    calm_blocks, after_blocks = phases.calm_flow, phases.after_flow
    stream = streams[0]

    assert starver.slowed_blocks > 0
    glitch = "late_blocks" if stream_class is PacedStream else "output_underflows"
    assert starved[glitch] > before[glitch], f"starvation went uncounted: {before} -> {starved}"
    assert after_blocks - calm_blocks >= MIN_FLOW * QUIET_SECONDS * FAKE_RATE / FAKE_BLOCK
    assert_glitches_stopped(calm, after, after_blocks - calm_blocks)

    done = stream.blocks * FAKE_BLOCK
    delay = processor.handover_latency + enhancer.latency
    expected = np.concatenate([np.zeros(delay, np.float32), signal[: done - delay]])
    if stream_class is PacedInlineStream:  # nothing dropped or shifted, even while starving
        assert np.max(np.abs(stream.output[:done] - expected)) < 1e-5
    else:  # late blocks were silence; from the calm stretch on, the same delay as stated
        assert processor.handover_latency == handover  # no growth: the starvation came after settling
        calm_from = calm_blocks * FAKE_BLOCK
        played = stream.output[calm_from:done].reshape(-1, FAKE_BLOCK)
        wanted = expected[calm_from:].reshape(-1, FAKE_BLOCK)
        exact = np.max(np.abs(played - wanted), axis=1) < 1e-5
        silent = ~played.any(axis=1)  # a late block (the input is noise: never silent itself)
        assert (exact | silent).all(), "a block came at another delay than stated"
        assert silent.sum() <= processor.counters.late_blocks - calm["late_blocks"]


def test_stop_while_starved_returns_promptly(reference_model) -> None:
    """Stopping in the middle of the starvation (worker behind, rings backed up) does not hang."""
    enhancer = Enhancer(reference_model("identity", 16000, "float32"), FAKE_RATE, block_size=FAKE_BLOCK)
    starver = Starver(enhancer, FAKE_BLOCK)
    signal = np.zeros(10 * FAKE_RATE, dtype=np.float32)
    processor = LiveProcessor(enhancer, stream_factory=functools.partial(PacedStream, signal=signal))
    processor.start()
    stopped = False
    try:
        with starvation(starver):
            time.sleep(STARVE_SECONDS / 2)
            assert processor._in_ring.available > FAKE_BLOCK  # the worker is behind
            stopped = returns_within(processor.stop, STOP_TIMEOUT_SECONDS)
    finally:
        if not stopped:
            returns_within(processor.stop, STOP_TIMEOUT_SECONDS)
    assert stopped, "stop() hung while the worker was starved"
    assert processor.counters.late_blocks > 0


# --- the JACK dummy server ---------------------------------------------------------------------

PULSE_OFFSETS_SECONDS = (0.1, 0.5, 0.9)
"""Pulses, counted from the start of the calm stretch (each needs MAX_DELAY_SECONDS of recording
after its first return)."""
MAX_DELAY_SECONDS = 0.3


@pytest.mark.audio_server
def test_starved_jack_stream_recovers_its_stated_delay(reference_model, jack_device: int) -> None:  # noqa: F811
    """On the JACK server, looped back: starvation is counted, then pulses return at the stated delay."""
    enhancer = Enhancer(reference_model("identity", 48000, "float32"), JACK_RATE, block_size=JACK_PERIOD)
    starver = Starver(enhancer, JACK_PERIOD)
    total = SETTLE_SECONDS + STARVE_SECONDS + RECOVER_SECONDS + QUIET_SECONDS
    probe = LoopbackProbe(JACK_RATE, [], record_samples=int((total + 5) * JACK_RATE),
                          max_delay=int(MAX_DELAY_SECONDS * JACK_RATE))
    processor = LiveProcessor(enhancer, input_device=jack_device, output_device=jack_device, tap=probe)
    processor.start()
    def pulses_from(callbacks: int) -> None:  # the calm stretch starts at stream sample callbacks * period
        probe.pulse_indices = [callbacks * JACK_PERIOD + int(s * JACK_RATE) for s in PULSE_OFFSETS_SECONDS]

    try:
        connect_loopback()
        phases = starve_then_calm(processor, starver, lambda: processor.counters.callbacks, on_calm=pulses_from)
    finally:
        assert returns_within(processor.stop, STOP_TIMEOUT_SECONDS), "stop() hung"
    before, handover, starved, calm, after = phases.before, phases.handover, phases.starved, phases.calm, phases.after
    calm_callbacks, after_callbacks = phases.calm_flow, phases.after_flow
    summary = processor.summary()
    assert starver.slowed_blocks > 0 and starved["late_blocks"] > before["late_blocks"], summary
    assert processor.handover_latency == handover, "the delay grew while starving"
    assert after_callbacks - calm_callbacks >= MIN_FLOW * QUIET_SECONDS * JACK_RATE / JACK_PERIOD
    assert_glitches_stopped(calm, after, after_callbacks - calm_callbacks)
    delays = [r.delay for r in probe.results()]
    assert None not in delays, f"a pulse did not come back: {probe.results()}; {summary}"
    stated = processor.stated_latency
    assert all(abs(d - stated) <= JACK_PERIOD for d in delays), f"measured {delays}, stated {stated}"
    assert len(set(delays)) == 1, f"the delay changed: {delays}"
