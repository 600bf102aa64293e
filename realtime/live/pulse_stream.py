"""A duplex audio stream on PulseAudio or PipeWire (pipewire-pulse) through libpulse-simple.

PortAudio reaches PulseAudio only through ALSA's pulse plugin, where a duplex
stream busy-polls (about 20 % of a core for silence here, against 3 % through
libpulse), drops on underruns, and cannot name a source or sink except through
environment variables. :class:`PulseDuplexStream` talks to the server directly
(``libpulse-simple.so.0``, part of every PulseAudio or pipewire-pulse desktop,
through :mod:`ctypes`) and offers what :class:`~realtime.live.LiveProcessor`
uses of a ``sounddevice.Stream``: ``start``, ``stop``, ``close``, ``active``,
``latency`` and the same callback signature. One thread reads a block from the
source (blocking: the microphone's clock paces the loop), calls the callback,
and writes its output to the sink. When the server goes away or the source
disappears, the read fails, the thread ends and ``active`` turns False: the
caller reopens.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from typing import Any, Callable

import numpy as np

from realtime.errors import DeviceError

log = logging.getLogger(__name__)

_PA_STREAM_PLAYBACK = 1
_PA_STREAM_RECORD = 2
_PA_SAMPLE_FLOAT32LE = 5
_PA_DEFAULT = 0xFFFFFFFF
"""``(uint32_t) -1``: let the server choose this buffer attribute."""
FLOAT_BYTES = 4
PLAYBACK_TARGET_BLOCKS = 4
"""Playback buffer the server keeps filled, in blocks: enough to ride out scheduling jitter.
Measured with blocks of 10 ms on a 2-core machine under load: 2 or 3 blocks underran every
few seconds, and saved only 5-7 ms of delay; 4 ran clean."""
PLAYBACK_PREBUFFER_BLOCKS = 4
"""Blocks written before playback starts (and again after an underrun): the whole buffer, so
the loop starts with the full margin."""
STOP_TIMEOUT_SECONDS = 1.0
"""How long :meth:`PulseDuplexStream.stop` waits for the block in hand."""
CATCH_UP_AFTER_BLOCKS = 10
"""Blocks in a row that found recorded audio already waiting while the playback buffer was full:
the loop runs behind the microphone by at least a block, for good, so it skips ahead."""
WAITED_FRACTION = 0.25
"""A read or write that took longer than this fraction of a block period waited for the server."""


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("maxlength", "tlength", "prebuf", "minreq", "fragsize")]


class _Flags:
    """Stands in for ``sounddevice.CallbackFlags``: ``input_overflow`` when recorded audio was skipped."""

    def __init__(self) -> None:
        self.input_overflow = False
        self.output_underflow = False

    def __bool__(self) -> bool:
        return self.input_overflow or self.output_underflow


_LIBRARIES: tuple[Any, Any] | None = None


def _libraries() -> tuple[Any, Any]:
    """libpulse-simple and libpulse, with their prototypes declared (once)."""
    global _LIBRARIES
    if _LIBRARIES is None:
        try:
            simple, core = ctypes.CDLL("libpulse-simple.so.0"), ctypes.CDLL("libpulse.so.0")
        except OSError:
            raise DeviceError("libpulse is not installed (Debian/Ubuntu: apt install libpulse0)") from None
        simple.pa_simple_new.restype = ctypes.c_void_p
        simple.pa_simple_new.argtypes = [
            ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
            ctypes.POINTER(_SampleSpec), ctypes.c_void_p, ctypes.POINTER(_BufferAttr), ctypes.POINTER(ctypes.c_int),
        ]
        for name in ("pa_simple_read", "pa_simple_write"):
            function = getattr(simple, name)
            function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int)]
            function.restype = ctypes.c_int
        simple.pa_simple_get_latency.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        simple.pa_simple_get_latency.restype = ctypes.c_uint64
        simple.pa_simple_free.argtypes = [ctypes.c_void_p]
        core.pa_strerror.argtypes = [ctypes.c_int]
        core.pa_strerror.restype = ctypes.c_char_p
        _LIBRARIES = (simple, core)
    return _LIBRARIES


def _strerror(code: int) -> str:
    """libpulse's text for error ``code``."""
    return _libraries()[1].pa_strerror(code).decode(errors="replace")


def _connect(direction: int, device: str | None, rate: int, channels: int, client: str, stream: str,
             attributes: _BufferAttr) -> int:
    """A libpulse-simple float32 stream (its handle) recording from or playing to ``device`` (None: the
    default); a :class:`DeviceError` saying why when the server refuses."""
    spec = _SampleSpec(_PA_SAMPLE_FLOAT32LE, rate, channels)
    error = ctypes.c_int(0)
    handle = _libraries()[0].pa_simple_new(
        None, client.encode(), direction, device.encode() if device else None, stream.encode(),
        ctypes.byref(spec), None, ctypes.byref(attributes), ctypes.byref(error),
    )
    if not handle:
        what = "record from" if direction == _PA_STREAM_RECORD else "play to"
        raise DeviceError(f"cannot {what} {device or 'the default device'} on the PulseAudio/PipeWire server: "
                          f"{_strerror(error.value)}")
    return handle


class PulseDuplexStream:
    """Record ``source`` and play into ``sink`` in blocks of ``blocksize``, calling ``callback`` per block.

    Args:
        samplerate: stream rate in Hz (the server resamples if its devices run at another).
        blocksize: samples per callback.
        device: ``(source name, sink name)``; None for either means the server's default.
        channels: ``(input channels, output channels)``.
        callback: ``callback(indata, outdata, frames, time, status)`` as for ``sounddevice.Stream``.
        client_name: how the stream appears in the server's mixer.
        catch_up: skip recorded audio that waits in the server while the playback buffer is full,
            so the delay cannot grow (see :meth:`_run`); False keeps every sample (for
            measurements).
        playback_blocks: the playback buffer's target fill, in blocks (more rides out longer stalls
            and costs delay).
        prebuffer_blocks: blocks the server waits for before it starts playing, and again after
            an underrun (an underrun therefore moves all later audio later; the catch-up in
            :meth:`_run` takes that back).
        stream_names: (recording, playback): how the two streams appear in the server's mixer, and
            in the error that ends the stream.
    """

    processes_inline = True
    """The callback runs on this stream's own thread, not a real-time one: a
    :class:`~realtime.live.processor.LiveProcessor` for it is made with ``inline=True``."""

    def __init__(
        self,
        samplerate: int,
        blocksize: int,
        device: tuple[str | None, str | None],
        channels: tuple[int, int],
        callback: Callable[..., None],
        client_name: str = "quietmic",
        catch_up: bool = True,
        playback_blocks: int = PLAYBACK_TARGET_BLOCKS,
        prebuffer_blocks: int = PLAYBACK_PREBUFFER_BLOCKS,
        stream_names: tuple[str, str] = ("microphone", "clean voice"),
    ) -> None:
        self.samplerate = samplerate
        self.blocksize = blocksize
        self.channels = channels
        self.callback = callback
        self.catch_up = catch_up
        self._simple = _libraries()[0]
        block_bytes = blocksize * FLOAT_BYTES
        source, sink = device
        self.stream_names = stream_names
        self._record = _connect(_PA_STREAM_RECORD, source, samplerate, channels[0], client_name, stream_names[0],
                                _BufferAttr(_PA_DEFAULT, _PA_DEFAULT, _PA_DEFAULT, _PA_DEFAULT, block_bytes * channels[0]))
        try:
            self._play = _connect(
                _PA_STREAM_PLAYBACK, sink, samplerate, channels[1], client_name, stream_names[1],
                _BufferAttr(_PA_DEFAULT, playback_blocks * block_bytes * channels[1],
                            prebuffer_blocks * block_bytes * channels[1], block_bytes * channels[1], _PA_DEFAULT),
            )
        except DeviceError:
            self._simple.pa_simple_free(self._record)
            raise
        self._indata = np.zeros((blocksize, channels[0]), dtype=np.float32)
        self._outdata = np.zeros((blocksize, channels[1]), dtype=np.float32)
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        """Why the stream ended by itself (server gone, source removed), or None."""
        self.playback_blocks = playback_blocks
        self.skipped_blocks = 0
        """Recorded blocks skipped to keep the delay from growing (after the loop fell behind)."""

    @property
    def active(self) -> bool:
        """Whether the stream thread is running."""
        return self._thread is not None and self._thread.is_alive() and self._running.is_set()

    @property
    def latency(self) -> tuple[float, float]:
        """(input, output) latency in seconds: one block to capture, and the playback buffer target."""
        return (self.blocksize / self.samplerate, self.playback_blocks * self.blocksize / self.samplerate)

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._run, name="quietmic-pulse", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Read a block, call back, write the block; until stopped or the server fails.

        The loop is paced by whichever side waits. Normally that is the read (the
        microphone's clock) and the playback buffer stays near its target. After a
        stall, or at start while the server settles, recorded audio piles up and
        the write waits instead (the playback buffer is full): the extra audio would
        stay as extra delay for good. When that state lasts
        :data:`CATCH_UP_AFTER_BLOCKS` blocks, the loop reads and drops recorded
        blocks until a read has to wait, which brings the delay back to the
        playback buffer's.
        """
        frames = self.blocksize
        error = ctypes.c_int(0)
        flags = _Flags()
        read, write = self._simple.pa_simple_read, self._simple.pa_simple_write
        in_pointer, in_bytes = self._indata.ctypes.data, self._indata.nbytes
        out_pointer, out_bytes = self._outdata.ctypes.data, self._outdata.nbytes
        waited = WAITED_FRACTION * frames / self.samplerate
        clock = time.monotonic
        behind = 0
        while self._running.is_set():
            started = clock()
            if read(self._record, in_pointer, in_bytes, ctypes.byref(error)) < 0:
                self.error = f"reading the {self.stream_names[0]} failed: {_strerror(error.value)}"
                break
            read_waited = clock() - started > waited
            flags.input_overflow = False
            if self.catch_up and behind >= CATCH_UP_AFTER_BLOCKS:
                behind = 0
                while not read_waited and self._running.is_set():
                    started = clock()
                    if read(self._record, in_pointer, in_bytes, ctypes.byref(error)) < 0:
                        break
                    read_waited = clock() - started > waited
                    self.skipped_blocks += 1
                    flags.input_overflow = True
            self.callback(self._indata, self._outdata, frames, None, flags)
            started = clock()
            if write(self._play, out_pointer, out_bytes, ctypes.byref(error)) < 0:
                self.error = f"playing the {self.stream_names[1]} failed: {_strerror(error.value)}"
                break
            write_waited = clock() - started > waited
            behind = behind + 1 if write_waited and not read_waited else 0
        if self.error and self._running.is_set():
            log.warning("%s", self.error)
        self._running.clear()

    def stop(self) -> None:
        """Stop the thread (it finishes the block in hand: at most one block period)."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
            if not self._thread.is_alive():
                self._thread = None

    def close(self) -> None:
        """Stop and disconnect from the server.

        The connections are freed in a separate daemon thread: after the server has
        died, ``pa_simple_free`` can block for good, and the service must go on.
        """
        self.stop()
        if self._thread is not None:  # still blocked in the server: freeing now would pull the rug
            log.warning("the PulseAudio stream thread did not stop; leaving its connection open")
            return
        handles = [h for h in (self._record, self._play) if h]
        self._record = self._play = None
        if handles:
            threading.Thread(target=self._free, args=(handles,), name="quietmic-pulse-free", daemon=True).start()

    def _free(self, handles: list[int]) -> None:
        for handle in handles:
            self._simple.pa_simple_free(handle)


CLOCK_RETRY_SECONDS = 0.5
"""How often :class:`MonitorClock` tries again to open the monitor after the server went away."""


class MonitorClock:
    """Keeps a null sink rendering in short periods by recording its monitor ``source`` and discarding it.

    A PulseAudio null sink that no client records directly with a short latency
    sleeps up to 2 s between renders; programs recording a remapped source of
    its monitor (the "quietmic" virtual microphone) do not count. A stream that
    starts playing into the sleeping sink then waits that long for its first
    writes, so after every reconnect the virtual microphone would stay silent for
    up to 2 s. This client asks for blocks of ``blocksize``, so the sink renders
    every block period. It reconnects by itself when the server comes back.
    Given ``on_block``, it hands each block on instead of discarding it (the echo
    canceller's far-end reference, :mod:`realtime.live.echo_stage`).
    """

    def __init__(self, source: str, samplerate: int, blocksize: int,
                 on_block: Callable[[np.ndarray], Any] | None = None) -> None:
        self.source = source
        self.samplerate = samplerate
        self.blocksize = blocksize
        self.on_block = on_block
        """Called with each block recorded (float32 samples), on the clock's thread; None: discarded."""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="quietmic-sink-clock", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        simple = _libraries()[0]
        block_bytes = self.blocksize * FLOAT_BYTES
        buffer = np.zeros(self.blocksize, dtype=np.float32)
        attributes = _BufferAttr(_PA_DEFAULT, _PA_DEFAULT, _PA_DEFAULT, _PA_DEFAULT, block_bytes)
        error = ctypes.c_int(0)
        while not self._stopping.is_set():
            try:
                handle = _connect(_PA_STREAM_RECORD, self.source, self.samplerate, 1, "quietmic", "sink clock",
                                  attributes)
            except DeviceError as exc:
                log.debug("sink clock: %s; trying again", exc)
                self._stopping.wait(CLOCK_RETRY_SECONDS)
                continue
            while not self._stopping.is_set():
                if simple.pa_simple_read(handle, buffer.ctypes.data, block_bytes, ctypes.byref(error)) < 0:
                    break
                if self.on_block is not None:
                    self.on_block(buffer)
            simple.pa_simple_free(handle)

    def stop(self) -> None:
        """Stop recording (within one block period, or the server's answer to a failed read)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
            self._thread = None
