"""Live mode: microphone -> Enhancer -> output device, through one duplex stream.

The audio callback only moves samples: it copies the captured block into the
input ring, copies the next finished block from the output ring, counts
problems, and pokes an eventfd to wake the worker. It takes no lock, does no
I/O or logging and allocates nothing sizeable. A worker thread takes blocks
from the input ring, runs :class:`~realtime.enhancer.Enhancer`, and puts the
result into the output ring.

Timing: the output of callback ``k``'s input is played by callback ``k + 1``
(one block of hand-over delay). The output ring starts with one block of
silence, so the first callback already has something to play. Some audio
servers call back in bursts (PortAudio on a JACK server whose period is longer
than the block calls several times back to back), and then one block is not
enough: during the first :data:`SETTLE_SECONDS` a late block makes the hand-over
grow by the missing samples instead (the output is still the start-up silence);
so it does for as long again after the server's period changes (a ``host_blocks``
stream's callbacks follow PipeWire's quantum, which other programs change).
After that, if the worker is late, the callback plays silence for the missing
samples and counts a late block; the late samples are dropped when they arrive,
so the delay never creeps. If the input ring is full, the callback drops the block and counts an
overflow, noting where in the sample sequence the block fell; the worker feeds
a block of zeros at that point, so input and output stay sample-aligned.

Streams whose callback runs on an ordinary thread that blocks on the server
(:class:`~realtime.live.pulse_stream.PulseDuplexStream`) have no real-time
callback to protect: made with ``inline=True``, the processor's callback runs the
enhancer itself, with no worker and no hand-over block. A slow block then only
delays the write, which the stream's playback buffer absorbs.

Faults in the processing never stop the stream. The enhancer itself falls back
to passing the input through when its model fails (see
:mod:`realtime.enhancer`); any other error while processing a block (in the
enhancer or a tap) plays that block as silence, resets the enhancer (so the
next block starts from a consistent state, at the same delay), is counted in
``processing_failures`` and logged once. :meth:`LiveProcessor.summary` reports
both kinds of fault.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from realtime.enhancer import Enhancer
from realtime.errors import DeviceError
from realtime.live.portaudio_scan import orphaned, portaudio_errors, sounddevice
from realtime.ringbuffer import RingBuffer

if TYPE_CHECKING:  # the echo stage loads only where echo cancellation is on
    from realtime.live.echo_stage import EchoStage

log = logging.getLogger(__name__)

INPUT_RING_SECONDS = 2.0
"""Capacity of the input ring: how long the worker may stall before input is dropped."""

OUTPUT_RING_BLOCKS = 8
"""Capacity of the output ring beyond the input ring's: after a stall the worker can
catch up without losing samples, and the callback drops the late ones itself."""

WORKER_POLL_SECONDS = 0.1
"""Longest the worker sleeps without a wake-up (to notice a stop request)."""

TIMING_HISTORY = 1 << 16
"""Per-block processing times kept for statistics (a ring of this many)."""

SETTLE_SECONDS = 0.5
"""At stream start, for this long, a late block grows the hand-over instead of counting as an xrun."""

MAX_HANDOVER_SECONDS = 0.05
"""The hand-over never grows beyond this (plus the first block)."""

DROP_MARKS = 4096
"""Dropped input blocks remembered (where they fell) until the worker replaces them with zeros."""

MAX_HOST_FRAMES = 8192
"""The longest callback a ``host_blocks`` stream may get (JACK's and PipeWire's largest period)."""

WORKER_RT_PRIORITY = 10
"""SCHED_FIFO priority of a ``host_blocks`` stream's worker: above every ordinary process (a CPU hog
on the same core cannot make it late), below the audio threads (PipeWire's and JACK's run at 70-95)."""

MAX_API_LATENCY_SECONDS = 10.0
"""A latency an audio API reports beyond this is nonsense (pipewire-jack's port latency reads as 2**32
samples) and is left out of the stated latency."""

GIL_SWITCHES_PER_BLOCK = 8
"""The callback runs Python, so it needs the GIL: while streaming, the interpreter
offers the GIL to other threads this many times per block period (CPython's
default is every 5 ms, longer than a small block)."""


@dataclass
class StreamCounters:
    """Problems counted while streaming (all counts since start)."""

    callbacks: int = 0
    input_overflows: int = 0
    """Callbacks whose input the audio server reported as overflowed, or that found the input ring full."""
    output_underflows: int = 0
    """Callbacks the audio server reported as output underflow."""
    late_blocks: int = 0
    """Callbacks that found the worker had not finished their output block in time."""
    dropped_input_samples: int = 0
    late_samples: int = 0
    processing_failures: int = 0
    """Blocks whose processing raised an error: played as silence (not an xrun)."""

    @property
    def xruns(self) -> int:
        """Input overflows + output underflows + late blocks."""
        return self.input_overflows + self.output_underflows + self.late_blocks


class BlockTap(Protocol):
    """Something that watches the worker's blocks (e.g. a latency probe)."""

    def on_input(self, index: int, block: np.ndarray) -> None:
        """``block`` was captured at stream sample ``index``."""

    def on_output(self, index: int, block: np.ndarray) -> None:
        """``block`` (may be modified in place) will be played at stream sample ``index``."""


class LiveProcessor:
    """Runs an :class:`Enhancer` on a live duplex audio stream.

    Args:
        enhancer: the enhancer; its sample rate is the stream's, and the block size it was made
            for (``Enhancer(..., block_size=N)``) is the samples per callback.
        input_device, output_device: sounddevice device (index, name part or None).
        input_channel: which input channel is the microphone; the output is mono,
            copied to every output channel.
        tap: optional observer of the worker's blocks (used by latency probes).
        latency: the stream's suggested latency (seconds, or PortAudio's "low"/"high").
        stream_factory: makes the stream instead of ``sounddevice.Stream`` (e.g.
            :class:`realtime.live.pulse_stream.PulseDuplexStream`): called as
            ``factory(samplerate, blocksize, channels=(in, out), callback=...)``; the
            devices are then the factory's business.
        host_blocks: PortAudio calls back with the audio server's own period (``blocksize=0``), whatever
            its length, instead of the enhancer's block: the rings absorb the difference, and PortAudio
            adds no buffering of its own (on PipeWire's JACK API a fixed block that differs from the
            graph's quantum costs a block of latency there, and one that equals it still did).
        inline: the factory's stream calls back on a thread of its own that may block (not a
            real-time one), as :class:`~realtime.live.pulse_stream.PulseDuplexStream` does: the
            enhancer then runs in the callback, with no worker thread and no hand-over block
            (see the module's docstring). PortAudio's own streams call back in real time: False.
        echo: an :class:`~realtime.live.echo_stage.EchoStage` that removes the speakers' echo from
            each block before the enhancer (it adds :attr:`EchoStage.delay` samples of latency);
            started and stopped with the stream.
    """

    def __init__(
        self,
        enhancer: Enhancer,
        *,
        input_device: int | str | None = None,
        output_device: int | str | None = None,
        input_channel: int = 0,
        tap: BlockTap | None = None,
        latency: float | str = "low",
        stream_factory: Callable[..., Any] | None = None,
        inline: bool = False,
        echo: EchoStage | None = None,
        host_blocks: bool = False,
    ) -> None:
        block_size = enhancer.block_size
        if block_size is None:
            raise ValueError("a LiveProcessor needs an Enhancer made for its block size: Enhancer(..., block_size=N)")
        if inline and stream_factory is None:
            raise ValueError("inline needs a stream_factory whose stream calls back on a thread of its own; "
                             "PortAudio calls back in real time")
        self.enhancer = enhancer
        self.block_size = block_size
        """Samples per callback (the enhancer's block size)."""
        self.sample_rate = enhancer.sample_rate
        self.input_device = input_device
        self.output_device = output_device
        self.input_channel = input_channel
        self.tap = tap
        self.latency = latency
        self.stream_factory = stream_factory
        self.counters = StreamCounters()
        self._played = 0
        self._ring_offset = 0
        self._settle_until = 0
        """The hand-over may grow until this callback (the first :data:`SETTLE_SECONDS`, and as long again
        after the server's period changes)."""
        self._host_frames = 0
        """The length of the last callback (a ``host_blocks`` stream's follows the server's period)."""
        self._max_handover = block_size + int(MAX_HANDOVER_SECONDS * self.sample_rate)
        self._in_ring = RingBuffer(max(int(INPUT_RING_SECONDS * self.sample_rate), 4 * block_size))
        self._out_ring = RingBuffer(self._in_ring.capacity + OUTPUT_RING_BLOCKS * block_size)
        self.host_blocks = host_blocks
        self._out_block = np.zeros(max(block_size, MAX_HOST_FRAMES if host_blocks else 0), dtype=np.float32)
        self._drop_positions = np.zeros(DROP_MARKS, dtype=np.int64)
        self._drops = 0
        self._wake_fd = -1
        self._stream: Any = None
        self._on_jack = False
        """The stream runs on PortAudio's JACK host API."""
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._worker_error: BaseException | None = None
        self._silence = np.zeros(block_size, dtype=np.float32)
        self.processing_error: str | None = None
        """The most recent error processing a block (``"Type: message"``); None if there was none."""
        self._times = np.zeros(TIMING_HISTORY, dtype=np.float64)
        self._times_count = 0
        self._started_at = 0.0
        self._previous_switch_interval: float | None = None
        self.stream_latency = (0.0, 0.0)
        """(input, output) latency in seconds as reported by the audio API."""
        self.inline = inline
        """Whether the stream's own thread runs the enhancer (see the module docstring)."""
        self.echo = echo
        """The echo canceller each block passes before the enhancer."""

    # --- the real-time side -------------------------------------------------------------------

    def _count(self, status: Any) -> StreamCounters:
        """Count a callback and the problems its audio API reported; the counters."""
        counters = self.counters
        counters.callbacks += 1
        if status.input_overflow:
            counters.input_overflows += 1
        if status.output_underflow:
            counters.output_underflows += 1
        return counters

    def _callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        counters = self._count(status)
        if frames != self._host_frames:  # the first callback, or the server's period changed: settle (again)
            self._host_frames = frames
            self._settle_until = counters.callbacks + int(SETTLE_SECONDS * self.sample_rate / frames)
        if self._in_ring.free >= frames:
            self._in_ring.write(indata[:, self.input_channel])
        else:  # drop the block; the worker feeds a block of zeros at this point of the sequence
            counters.input_overflows += 1
            counters.dropped_input_samples += frames
            self._drop_positions[self._drops % DROP_MARKS] = self._in_ring.write_count
            self._drops += 1
        ring = self._out_ring
        # The ring holds worker output in sequence; this callback plays sequence index
        # `played - ring_offset` onwards. Anything older arrived too late: drop it.
        behind = self._played - self._ring_offset - ring.read_count
        if behind > 0:
            ring.skip(behind)
        out = self._out_block[:frames]
        got = ring.read_into(out)
        if got < frames:
            out[got:] = 0.0
            missing = frames - got
            if counters.callbacks <= self._settle_until and self.handover_latency + missing <= self._max_handover:
                self._ring_offset += missing  # the hand-over grows; the late samples will still be played
            else:
                counters.late_blocks += 1
                counters.late_samples += missing
        self._played += frames
        outdata[:] = out[:, None]
        os.eventfd_write(self._wake_fd, 1)

    def _inline_callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        """The callback of an ``inline`` stream: enhance the block here, in the stream's thread."""
        self._count(status)
        if self._stop.is_set():
            outdata[:] = 0.0
            return
        start = time.perf_counter()
        index = self._played
        out = self._process_block(index, indata[:, self.input_channel], index)
        outdata[:] = out[:, None]
        self._played += frames
        self._times[self._times_count % TIMING_HISTORY] = time.perf_counter() - start
        self._times_count += 1

    # --- the worker ---------------------------------------------------------------------------

    def _work(self) -> None:
        if self.host_blocks:
            _schedule_real_time(WORKER_RT_PRIORITY)
        block = np.zeros(self.block_size, dtype=np.float32)
        in_index = 0
        drops_fed = 0
        in_ring = self._in_ring
        poller = select.poll()
        poller.register(self._wake_fd, select.POLLIN)
        try:
            while not self._stop.is_set():
                if poller.poll(WORKER_POLL_SECONDS * 1000):
                    os.eventfd_read(self._wake_fd)
                while True:
                    if drops_fed < self._drops and self._drop_positions[drops_fed % DROP_MARKS] == in_ring.read_count:
                        block[:] = 0.0
                        drops_fed += 1
                    elif in_ring.available >= self.block_size:
                        in_ring.read_into(block)
                    else:
                        break
                    start = time.perf_counter()
                    out = self._process_block(in_index, block, in_index + self.handover_latency)
                    self._write_output(out)
                    self._times[self._times_count % TIMING_HISTORY] = time.perf_counter() - start
                    self._times_count += 1
                    in_index += self.block_size
        except BaseException as exc:  # reported by stop()/wait(); the stream goes on silent
            self._worker_error = exc
            log.exception("the processing thread failed")
            self._stop.set()

    def _process_block(self, index: int, block: np.ndarray, output_index: int) -> np.ndarray:
        """Enhance one block (through the tap, if any); silence if that fails.

        ``index`` is the block's first sample in the input sequence, ``output_index``
        where its output will be played.
        """
        try:
            if self.tap is not None:
                self.tap.on_input(index, block)
            if self.echo is not None:
                block = self.echo.process(block)
            out = self.enhancer.process(block)
            if self.tap is not None:
                self.tap.on_output(output_index, out)
            return out
        except Exception as exc:  # noqa: BLE001 - no error in one block may stop the stream
            self._processing_failed(exc)
            return self._silence[: len(block)]

    def _processing_failed(self, exc: Exception) -> None:
        """Count a block that failed, log the first failure, and reset the enhancer to a consistent state."""
        self.counters.processing_failures += 1
        self.processing_error = f"{type(exc).__name__}: {exc}"
        if self.counters.processing_failures == 1:
            log.exception("processing a block failed: it is played as silence and the stream goes on")
        try:
            self.enhancer.reset()  # a half-processed block may have left its buffers inconsistent
        except Exception:  # noqa: BLE001 - counted above; the next block tries again
            log.debug("resetting the enhancer failed too", exc_info=True)

    def _write_output(self, out: np.ndarray) -> None:
        """Put a processed block into the output ring, waiting while it is full.

        It is full only after a stall, of samples that are already late; the
        callback drops those at its next call, so the wait is short and no
        sample is lost (a lost sample would shift every later one).
        """
        written = self._out_ring.write(out)
        while written < len(out) and not self._stop.is_set():
            time.sleep(self.block_size / self.sample_rate / 4)
            written += self._out_ring.write(out[written:])

    # --- control ------------------------------------------------------------------------------

    @property
    def handover_latency(self) -> int:
        """Samples of delay between the callback and the worker: one block, plus any settling growth
        (none when the stream processes inline)."""
        if self.inline:
            return 0
        return self.block_size + self._ring_offset

    @property
    def stated_latency(self) -> int:
        """Microphone-to-speaker delay quietmic expects, in samples.

        Echo canceller delay (if any) + Enhancer latency + one block of hand-over + the audio API's
        reported input and output latency.
        """
        audio_api = round((self.stream_latency[0] + self.stream_latency[1]) * self.sample_rate)
        echo = self.echo.delay if self.echo is not None else 0
        return echo + self.enhancer.latency + self.handover_latency + audio_api

    def start(self) -> None:
        """Open the duplex stream and start processing."""
        sd = sounddevice() if self.stream_factory is None else None  # a libpulse stream needs no PortAudio

        if sd is not None:
            try:
                in_info = sd.query_devices(self.input_device, "input")
                out_info = sd.query_devices(self.output_device, "output")
            except (ValueError, sd.PortAudioError) as exc:
                raise DeviceError(f"audio device not usable: {exc}; list devices with 'quietmic devices'") from None
            in_channels = int(in_info["max_input_channels"])
            if self.input_channel >= in_channels:
                raise DeviceError(
                    f"input_channel {self.input_channel} does not exist on {in_info['name']!r} "
                    f"({in_channels} input channels; channels count from 0)"
                )
            devices = f"{in_info['name']} -> {out_info['name']}"
            self._on_jack = any("JACK" in sd.query_hostapis(info["hostapi"])["name"] for info in (in_info, out_info))
        else:
            devices = f"{self.input_device or 'default'} -> {self.output_device or 'default'}"
        self._played = self._ring_offset = 0
        self._stop.clear()
        self._previous_switch_interval = sys.getswitchinterval()
        block_seconds = self.block_size / self.sample_rate
        sys.setswitchinterval(min(self._previous_switch_interval, block_seconds / GIL_SWITCHES_PER_BLOCK))
        if not self.inline:
            self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._out_ring.write_zeros(self.block_size)
            self._worker = threading.Thread(target=self._work, name="quietmic-worker", daemon=True)
            self._worker.start()
        callback = self._inline_callback if self.inline else self._callback
        if self.echo is not None:
            self.echo.start()  # its reference is recording before the first microphone block
        try:
            if sd is not None:
                self._stream = sd.Stream(
                    samplerate=self.sample_rate,
                    blocksize=0 if self.host_blocks else self.block_size,
                    device=(in_info["index"], out_info["index"]),
                    channels=(self.input_channel + 1, min(int(out_info["max_output_channels"]), 2)),
                    dtype="float32",
                    latency=self.latency,
                    callback=callback,
                )
            else:
                self._stream = self.stream_factory(
                    self.sample_rate, self.block_size, channels=(self.input_channel + 1, 1), callback=callback
                )
            self._stream.start()
        except portaudio_errors() as exc:
            self._stream = None
            self.stop()
            raise DeviceError(
                f"cannot open the audio stream at {self.sample_rate} Hz with blocks of {self.block_size}: "
                f"{exc}; the rate must be one the device (or the JACK server) runs at"
            ) from None
        except DeviceError:
            self._stream = None
            self.stop()
            raise
        self.stream_latency = _plausible_latency(self._stream.latency)
        self._started_at = time.monotonic()
        log.info(
            "streaming %s at %d Hz, %d-sample blocks, stated latency %.1f ms",
            devices,
            self.sample_rate,
            self.block_size,
            1000 * self.stated_latency / self.sample_rate,
        )

    def wait(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set or the worker fails."""
        while not stop.is_set() and not self._stop.is_set():
            stop.wait(WORKER_POLL_SECONDS)

    @property
    def streaming(self) -> bool:
        """Whether the stream is running and the worker has not failed."""
        if self._stream is None or self._stop.is_set():
            return False
        try:
            return bool(self._stream.active)
        except portaudio_errors():
            return False

    def stop(self) -> None:
        """Stop the stream and the worker; safe to call twice, and after the device has gone."""
        was_running = self._stream is not None or self._worker is not None
        if self._stream is not None and self._on_jack and orphaned():
            # PortAudio waits (up to 10 minutes) for the process callback of a JACK server that has gone to
            # take the stream out: leave it; the process cannot re-scan anyway (realtime.live.portaudio_scan).
            log.info("the JACK server has gone: leaving its stream unclosed")
            self._stream = None
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            except portaudio_errors() as exc:  # the device or the server went away
                log.info("closing the stream: %s", exc)
            self._stream = None
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
            os.close(self._wake_fd)
        if self.echo is not None:
            self.echo.stop()
        if self._previous_switch_interval is not None:
            sys.setswitchinterval(self._previous_switch_interval)
            self._previous_switch_interval = None
        if was_running:
            self._log_faults()
        if self._worker_error is not None:
            error, self._worker_error = self._worker_error, None
            raise DeviceError(f"processing failed while streaming: {error}")

    def _log_faults(self) -> None:
        """Say at the end of a stream what went wrong while processing, if anything did."""
        failures, enhancer = self.counters.processing_failures, self.enhancer
        if failures:
            log.warning("%d blocks failed to process and were played as silence (last error: %s)",
                        failures, self.processing_error)
        if enhancer.counters.model_failures:
            log.warning("the model failed on %d hops, which passed the input through (last error: %s)",
                        enhancer.counters.model_failures, enhancer.model_error)

    def __enter__(self) -> LiveProcessor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- reporting ----------------------------------------------------------------------------

    def processing_times(self) -> np.ndarray:
        """Recent per-block processing times of the worker, in seconds."""
        count = min(self._times_count, TIMING_HISTORY)
        return self._times[:count].copy()

    def summary(self) -> dict[str, Any]:
        """Counters, timing and latency figures of this run."""
        times = self.processing_times()
        block_ms = 1000.0 * self.block_size / self.sample_rate
        return {
            **asdict(self.counters),
            "xruns": self.counters.xruns,
            "seconds": round(time.monotonic() - self._started_at, 3) if self._started_at else 0.0,
            "sample_rate": self.sample_rate,
            "block_size": self.block_size,
            "stated_latency_ms": round(1000.0 * self.stated_latency / self.sample_rate, 3),
            "enhancer_latency_ms": round(1000.0 * self.enhancer.latency / self.sample_rate, 3),
            "handover_ms": round(1000.0 * self.handover_latency / self.sample_rate, 3),
            "audio_api_latency_ms": round(1000.0 * (self.stream_latency[0] + self.stream_latency[1]), 3),
            "block_time_ms_p50": round(1000.0 * float(np.median(times)), 4) if len(times) else None,
            "block_time_ms_p99": round(1000.0 * float(np.percentile(times, 99)), 4) if len(times) else None,
            "block_period_ms": round(block_ms, 3),
            "processing_error": self.processing_error,
            "model_failures": self.enhancer.counters.model_failures,
            "model_failing": self.enhancer.model_failing,
            "model_error": self.enhancer.model_error,
            "model_resets": self.enhancer.counters.model_resets,
            "invalid_input_samples": self.enhancer.counters.invalid_samples,
        }


def _plausible_latency(reported: Any) -> tuple[float, float]:
    """The (input, output) latency in seconds an audio API reported, a figure beyond
    :data:`MAX_API_LATENCY_SECONDS` (or below zero) counted as 0 and logged."""
    latency = tuple(float(x) for x in reported)
    if all(0.0 <= x <= MAX_API_LATENCY_SECONDS for x in latency):
        return latency  # type: ignore[return-value]
    log.info("the audio API reports a latency of %s s: left out of the stated latency", latency)
    return tuple(x if 0.0 <= x <= MAX_API_LATENCY_SECONDS else 0.0 for x in latency)  # type: ignore[return-value]


def _schedule_real_time(priority: int) -> bool:
    """Run the calling thread under SCHED_FIFO at ``priority``; whether the system allowed it (it needs
    an RLIMIT_RTPRIO of at least ``priority``, as audio users get from their distribution's audio group
    or limits.d; without it the thread stays ordinary and may be late under load)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread (Linux)
    except (PermissionError, OSError, AttributeError) as exc:
        log.info("the processing thread stays at ordinary priority (real-time scheduling refused: %s); "
                 "under load it may be late: allow real-time priority %d (ulimit -r)", exc, priority)
        return False
    log.info("the processing thread runs at real-time priority %d", priority)
    return True
