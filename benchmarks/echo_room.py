"""The simulated room of the echo benchmark (issue 19, section 5): speakers, a room, a microphone.

What the speakers play (the far end: the reference an echo canceller is given) reaches the test
microphone through the desktop's audio path (a pure delay: output buffering, the sound server, the
DAC and ADC) and the room (an impulse response: the direct path from speaker to microphone, then a
reverberant tail), and adds to the near-end talker. Everything is at 16 kHz, float32 in [-1, 1].

**Impulse responses** are synthetic (no measured RIRs can be fetched here, and none of the corpus's
sources is one): a direct path of unit gain at the acoustic delay, then exponentially decaying
Gaussian noise (the late reverberation of a diffuse field, Polack's model) whose energy decays by
60 dB in ``rt60_s`` and whose energy relative to the direct path sets the direct-to-reverberant
ratio ``drr_db``. The tail starts 1 ms after the direct path and stays white (the air and walls
absorb high frequencies faster in a real room; not modelled), which makes it harder to cancel than
a real one: AEC3's linear filter spans about 50 ms at 16 kHz, the rest of the tail is left to its
suppressor. :data:`ROOMS` spans RT60 0.2-0.6 s, speaker-to-microphone
delays 1-30 ms (0.3-10 m) and audio-path delays 20-80 ms; the closer the speakers, the higher the
direct-to-reverberant ratio. Neither the loudspeaker's nonlinearity nor its band limits are
modelled; real laptop speakers distort, which linear echo cancellers leave as residual.

**Speech**: far end and near end are different talkers of the corpus's ``test`` split (never the
sources ``shared/DATA.md`` reserves for evaluation, never ``shared/eval/``): the far end from
``asterisk-core-sounds-ru-g722`` (several talkers), the near end from ``festvox-ru`` (one studio
talker), each normalised to an active level (:func:`active_level_db`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RATE = 16000
"""Sample rate of the rig (Hz)."""

FAR_SOURCE = "asterisk-core-sounds-ru-g722"
"""Corpus source (test split) of the far-end talkers."""
NEAR_SOURCE = "festvox-ru"
"""Corpus source (test split) of the near-end talker."""

SPEECH_LEVEL_DB = -26.0
"""Active level of the far-end signal the speakers play and of the near-end speech at the microphone (dBFS)."""
ECHO_LEVEL_DB = -26.0
"""Active level of the echo at the microphone (dBFS): equal to the near end (signal-to-echo ratio 0 dB
in double talk), loud speakers at a desk."""

TAIL_START_S = 0.001
"""The reverberant tail starts this long after the direct path (s)."""
TAIL_LENGTH_RT60 = 1.0
"""The impulse response lasts this many RT60s after the direct path (the tail is then 60 dB down)."""


@dataclass(frozen=True)
class Room:
    """One simulated room: the desktop's audio path and the room between speakers and microphone."""

    name: str
    rt60_s: float
    """Reverberation time: the tail's energy falls by 60 dB in this many seconds."""
    acoustic_delay_ms: float
    """Speaker-to-microphone distance as a delay (ms; 1 ms is 34 cm)."""
    path_delay_ms: float
    """Delay the desktop's audio path adds between the reference and the speaker (ms)."""
    drr_db: float
    """Direct-to-reverberant energy ratio of the impulse response (dB)."""

    @property
    def total_delay_ms(self) -> float:
        """Delay of the direct path behind the reference (ms)."""
        return self.acoustic_delay_ms + self.path_delay_ms


ROOMS: tuple[Room, ...] = (
    Room("laptop", rt60_s=0.2, acoustic_delay_ms=1.0, path_delay_ms=20.0, drr_db=6.0),
    Room("desk", rt60_s=0.3, acoustic_delay_ms=3.0, path_delay_ms=40.0, drr_db=0.0),
    Room("office", rt60_s=0.45, acoustic_delay_ms=10.0, path_delay_ms=60.0, drr_db=-3.0),
    Room("living-room", rt60_s=0.6, acoustic_delay_ms=30.0, path_delay_ms=80.0, drr_db=-6.0),
)
"""The rooms of the benchmark, from a laptop's own speakers to speakers across a living room."""


def impulse_response(room: Room, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """The echo path of ``room`` from reference to microphone (float64), delays included.

    Unit direct path at ``room.total_delay_ms``; an exponentially decaying white-noise tail scaled to
    ``room.drr_db`` (see the module docstring).
    """
    delay = int(round(room.total_delay_ms * rate / 1000.0))
    start = delay + max(1, int(round(TAIL_START_S * rate)))
    tail_len = int(round(TAIL_LENGTH_RT60 * room.rt60_s * rate))
    t = np.arange(tail_len) / rate
    tail = rng.standard_normal(tail_len) * np.exp(-3.0 * math.log(10.0) * t / room.rt60_s)
    tail *= math.sqrt(10.0 ** (-room.drr_db / 10.0) / float(np.sum(tail**2)))
    h = np.zeros(start + tail_len)
    h[delay] = 1.0
    h[start:] = tail
    return h


def active_level_db(x: np.ndarray, rate: int = RATE, frame_s: float = 0.02, floor_db: float = 40.0) -> float:
    """Active level of ``x`` (dBFS): the mean power of its 20 ms frames within ``floor_db`` of the loudest."""
    n = int(frame_s * rate)
    frames = np.asarray(x[: len(x) // n * n], dtype=np.float64).reshape(-1, n)
    power = np.mean(frames**2, axis=1) + 1e-20
    active = power >= power.max() * 10.0 ** (-floor_db / 10.0)
    return float(10.0 * np.log10(np.mean(power[active])))


def at_level(x: np.ndarray, level_db: float) -> np.ndarray:
    """``x`` scaled to an active level of ``level_db`` dBFS (float32)."""
    return (np.asarray(x, dtype=np.float64) * 10.0 ** ((level_db - active_level_db(x)) / 20.0)).astype(np.float32)


def talker_speech(corpus, source: str, seconds: float, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """``seconds`` of speech from the test split of ``source``: random clips joined end to end (float32)."""
    clips = corpus.clips("speech", "test", [source])
    if not clips:
        raise LookupError(f"the corpus has no test-split speech from {source}")
    need = int(round(seconds * rate))
    parts: list[np.ndarray] = []
    have = 0
    for i in rng.permutation(len(clips)):
        x = np.asarray(corpus.audio(clips[i]), dtype=np.float32)
        parts.append(x)
        have += len(x)
        if have >= need:
            break
    out = np.concatenate(parts)
    if len(out) < need:
        out = np.resize(out, need)
    return out[:need]


def echo_of(reference: np.ndarray, rir: np.ndarray, level_db: float = ECHO_LEVEL_DB) -> np.ndarray:
    """What the microphone hears of ``reference`` through ``rir``, scaled to an active level (float32)."""
    echo = np.convolve(np.asarray(reference, dtype=np.float64), rir)[: len(reference)]
    return at_level(echo, level_db)


def level_db(x: np.ndarray) -> float:
    """Mean power of ``x`` in dBFS."""
    return float(10.0 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2) + 1e-20))


def erle_db(echo: np.ndarray, residual: np.ndarray, rate: int = RATE, frame_s: float = 0.02,
            floor_db: float = 40.0) -> float:
    """Echo return loss enhancement (dB): echo power over residual power, over the frames where the echo is
    active (within ``floor_db`` of its loudest 20 ms frame), so far-end pauses do not count."""
    n = int(frame_s * rate)
    m = min(len(echo), len(residual)) // n * n
    e = np.asarray(echo[:m], dtype=np.float64).reshape(-1, n)
    r = np.asarray(residual[:m], dtype=np.float64).reshape(-1, n)
    pe = np.mean(e**2, axis=1)
    active = pe >= pe.max() * 10.0 ** (-floor_db / 10.0)
    return float(10.0 * np.log10((np.sum(pe[active]) + 1e-20) / (np.sum(np.mean(r**2, axis=1)[active]) + 1e-20)))
