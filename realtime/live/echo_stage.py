"""Echo cancellation in a live stream: the microphone's blocks, less what the speakers play, before the denoiser.

:class:`EchoStage` pairs an :class:`~realtime.echo.EchoCanceller` with its far-end reference: what
the output device plays, recorded from that sink's monitor on the PulseAudio/PipeWire server by a
:class:`~realtime.live.pulse_stream.MonitorClock` on its own thread, into a ring buffer. The
:class:`~realtime.live.processor.LiveProcessor` calls :meth:`EchoStage.process` with each
microphone block before the Enhancer; it takes as many reference samples as the block has.

The two streams run on the server's clock but on their own threads, and their audio arrives with
different latencies (a monitor of PipeWire's lags its microphone by 2-4 blocks) and now and then in
bursts. AEC3 estimates the echo's delay itself, as long as the echo comes after its reference and the
delay stays put. So the stage pairs each microphone block with the reference that has arrived by
then: at the first microphone block it drops the reference recorded before; a reference that has not
arrived counts as silence, and its samples are used when they come (the reference then runs that much
later: a jitter buffer that grows to the bursts' size). So that it does not keep growing until the
reference comes after its echo (a loaded machine starves it now and then), the reference that was
never needed over :data:`SHRINK_EVERY_SECONDS` (the least backlog over that time) is dropped; a
backlog beyond :data:`MAX_REFERENCE_BACKLOG_SECONDS` (the clocks drifted, or the server stalled) at once. The
echo still comes after its reference: speakers play a sink's audio some tens of ms after its monitor
carries it, and sound takes its time through the room.
"""

from __future__ import annotations

import logging

import numpy as np

from realtime.echo import EchoCanceller
from realtime.live.pulse_stream import MonitorClock
from realtime.ringbuffer import RingBuffer

log = logging.getLogger(__name__)

MAX_REFERENCE_BACKLOG_SECONDS = 0.1
"""Most far-end reference kept waiting for microphone blocks, seconds; older samples are dropped (an echo
that comes before its reference cannot be cancelled)."""
SHRINK_EVERY_SECONDS = 1.0
"""How often the reference's backlog is brought down to what absorbed the bursts since, seconds (each change
of the reference's delay makes AEC3 re-align; once a second it does so within a block or two)."""
REFERENCE_RING_SECONDS = 1.0
"""Capacity of the reference's ring buffer, seconds (the monitor thread writes, the stream's thread reads)."""


class EchoStage:
    """WebRTC AEC3 on a live stream's microphone blocks, with the far end recorded from ``reference_source``.

    Args:
        reference_source: the PulseAudio/PipeWire source whose audio is the far end: the monitor of the
            sink the speakers play (``<sink>.monitor``).
        sample_rate: the stream's rate, Hz (16, 32 or 48 kHz: AEC3's).
        block_size: samples per microphone block (whole 10 ms frames: no buffering delay).
    """

    def __init__(self, reference_source: str, sample_rate: int, block_size: int) -> None:
        self.reference_source = reference_source
        self.canceller = EchoCanceller(sample_rate, block_size=block_size)
        self.block_size = block_size
        self._ring = RingBuffer(int(REFERENCE_RING_SECONDS * sample_rate))
        self._max_backlog = max(block_size, int(MAX_REFERENCE_BACKLOG_SECONDS * sample_rate))
        self._reference = np.zeros(block_size, dtype=np.float32)
        self._clock = MonitorClock(reference_source, sample_rate, block_size, on_block=self._ring.write)
        self.starved_blocks = 0
        """Microphone blocks for which the reference had not (all) arrived: their missing part counted as silence."""
        self._aligned = False
        """Whether the first microphone block has set the timeline."""
        self._shrink_every = max(1, int(SHRINK_EVERY_SECONDS * sample_rate / block_size))
        """Microphone blocks between two shrinks of the backlog."""
        self._blocks = 0
        self._least_backlog = self._ring.capacity
        """The least reference left over after a block since the last shrink (samples)."""

    @property
    def delay(self) -> int:
        """Samples the stage delays the microphone by (AEC3's own delay)."""
        return self.canceller.delay

    def start(self) -> None:
        """Start recording the reference (its thread reconnects by itself when the server comes back)."""
        self._clock.start()
        log.info("echo cancellation on: the far end is %s (adds %.1f ms)", self.reference_source,
                 1000.0 * self.delay / self.canceller.sample_rate)

    def stop(self) -> None:
        """Stop recording the reference."""
        self._clock.stop()

    def process(self, block: np.ndarray) -> np.ndarray:
        """``block`` (mono float32 microphone samples) with the far end's echo removed; same length."""
        n = len(block)
        if not self._aligned:  # the reference recorded before the microphone's first block is not its echo's
            self._ring.skip(self._ring.available)
            self._aligned = True
        excess = self._ring.available - self._max_backlog
        if excess > 0:
            self._ring.skip(excess)
        if len(self._reference) < n:
            self._reference = np.zeros(n, dtype=np.float32)
        reference = self._reference[:n]
        got = self._ring.read_into(reference)
        if got < n:
            reference[got:] = 0.0
            self.starved_blocks += 1
        self._least_backlog = min(self._least_backlog, self._ring.available)
        self._blocks += 1
        if self._blocks >= self._shrink_every:  # what was never needed since the last shrink
            self._ring.skip(self._least_backlog)
            self._blocks, self._least_backlog = 0, self._ring.capacity
        return self.canceller.process(block, reference)
