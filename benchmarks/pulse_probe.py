"""Play into a PulseAudio sink and record a source in the same stream, sample-locked.

:func:`play_and_record` plays ``signal`` into ``sink`` (e.g. the test
microphone's input) while recording ``source`` (e.g. quietmic's virtual
microphone) through one :class:`~realtime.live.pulse_stream.PulseDuplexStream`: each
callback plays one block and records one block, so the lag of a recorded event
behind the played one is the round trip ``sink -> ... -> source`` plus the
probe's own buffering (constant for a stream; measure it with ``source`` = the
microphone itself and subtract).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from typing import Iterator

import numpy as np

from benchmarks.live_delay import delay_by_correlation
from realtime.live.pulse_stream import PulseDuplexStream

START_TIMEOUT_SECONDS = 5.0
WARMUP_SECONDS = 2.0
"""Silence a probe plays before its signal: a null sink that had no stream renders ahead by up to
2 s, and a new stream's first writes wait that long."""
QUIET_WINDOW_FRACTION = 0.1
"""See :func:`windowed_correlations`."""
FOLLOW_CORRELATION = 0.9
"""A stretch that correlates this well has found the signal: with ``follow``, the next is searched around it."""
PROBE_PLAYBACK_BLOCKS = 10
"""The probe's playback buffer (blocks), all of it filled before playback starts: a probe's delay
cancels out of every measurement, a probe's underrun would not."""


def play_and_record(signal: np.ndarray, source: str, sink: str, rate: int = 48000, block: int = 480,
                    tail_seconds: float = 1.0, mark: tuple[int, threading.Event] | None = None) -> np.ndarray:
    """Record ``source`` while playing ``signal`` into ``sink``; as many samples as played (+ tail).

    The stream first plays and records :data:`WARMUP_SECONDS` of silence (left
    out of the result), while the server settles the new streams' buffers.
    ``mark = (index, event)`` sets ``event`` when the block holding ``signal[index]``
    is handed to the server (it plays :data:`PROBE_PLAYBACK_BLOCKS` blocks later).
    """
    warmup = int(WARMUP_SECONDS * rate) // block * block
    total = warmup + len(signal) + int(tail_seconds * rate)
    total += -total % block
    played = np.zeros(total, dtype=np.float32)
    played[warmup : warmup + len(signal)] = signal
    recorded = np.zeros(total, dtype=np.float32)
    position = [0]

    def callback(indata: np.ndarray, outdata: np.ndarray, frames: int, _time: object, _status: object) -> None:
        start = position[0]
        if mark is not None and start <= warmup + mark[0] < start + frames:
            mark[1].set()
        if start + frames <= total:
            recorded[start : start + frames] = indata[:, 0]
            outdata[:, 0] = played[start : start + frames]
        else:
            outdata[:] = 0.0
        position[0] = start + frames

    stream = PulseDuplexStream(rate, block, device=(source, sink), channels=(1, 1), callback=callback,
                               client_name="quietmic-probe", catch_up=False,
                               playback_blocks=PROBE_PLAYBACK_BLOCKS, prebuffer_blocks=PROBE_PLAYBACK_BLOCKS)
    stream.start()
    deadline = time.monotonic() + total / rate + START_TIMEOUT_SECONDS
    try:
        while position[0] < total:
            if not stream.active:
                raise RuntimeError(f"the probe stream ended: {stream.error}")
            if time.monotonic() > deadline:
                raise RuntimeError("the probe stream did not keep real-time pace")
            time.sleep(0.05)
    finally:
        stream.close()
    return recorded[warmup:]


def lag_and_correlation(reference: np.ndarray, recorded: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag (samples) of ``reference`` inside ``recorded`` and the correlation coefficient of the aligned parts
    (:func:`benchmarks.live_delay.delay_by_correlation` finds the lag; its figure is normalised by the
    whole of both signals instead)."""
    lag, _ = delay_by_correlation(reference, recorded, max_lag)
    n = min(len(reference), len(recorded) - lag)
    a, b = reference[:n].astype(np.float64), recorded[lag : lag + n].astype(np.float64)
    denominator = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return lag, float(np.dot(a, b) / denominator) if denominator > 0 else 0.0


def windowed_correlations(reference: np.ndarray, recorded: np.ndarray, lag: int, window: int,
                          search: int, follow: bool = False) -> np.ndarray:
    """Correlation of each ``window``-sample stretch of ``reference`` with ``recorded``, aligned on its own.

    Each stretch is matched within ``search`` samples of ``lag``, so a server
    that slipped a few samples part-way is still scored on the signal, not on
    the slip (slips are the drift measurement's business). With ``follow``, the
    search moves with each stretch that matched well (:data:`FOLLOW_CORRELATION`),
    so slips that add up (a stream that skipped audio to catch up, again and
    again) each spoil only the stretch they fall in. Stretches of
    ``reference`` with less than :data:`QUIET_WINDOW_FRACTION` of its mean energy
    are left out (a correlation of near-silence means nothing).
    """
    floor = QUIET_WINDOW_FRACTION * float(np.mean(reference.astype(np.float64) ** 2)) * window
    scores = []
    for start in range(0, len(reference) - window + 1, window):
        piece = reference[start : start + window]
        if float(np.dot(piece, piece)) < floor:
            continue
        first = max(0, start + lag - search)
        stretch = recorded[first : start + lag + search + window]
        if len(stretch) < window:
            break
        offset, correlation = lag_and_correlation(piece, stretch, len(stretch) - window)
        scores.append(correlation)
        if follow and correlation > FOLLOW_CORRELATION:
            lag = first + offset - start
    return np.array(scores)


LISTENER_LATENCY_MS = 20
"""Buffer a :func:`listening` client asks for, like a call program's."""


@contextlib.contextmanager
def listening(source: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A program (``parec``) recording ``source`` for as long as the block runs, its audio discarded:
    what makes quietmic's service stream into its virtual microphone."""
    recorder = subprocess.Popen(["parec", "-d", source, f"--latency-msec={LISTENER_LATENCY_MS}"],
                                env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        yield recorder
    finally:
        recorder.terminate()
        recorder.wait(timeout=START_TIMEOUT_SECONDS)


@contextlib.contextmanager
def playing(sink: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A program (``pacat``) playing silence into ``sink`` for as long as the block runs: what makes
    quietmic's speaker side stream (its output is what else plays into the sink)."""
    player = subprocess.Popen(["pacat", "--playback", "-d", sink, f"--latency-msec={LISTENER_LATENCY_MS}", "/dev/zero"],
                              env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield player
    finally:
        player.terminate()
        player.wait(timeout=START_TIMEOUT_SECONDS)
