"""Generated noises for training: seeded, at any rate and length.

Real stationary and environmental noise is thin in the corpus, so these fill
the gap. Every generator has the signature ``generator(n_samples, rate, rng,
...)`` where ``rng`` is a :class:`numpy.random.Generator` or an integer seed; the
same seed gives the same samples. Outputs are float32 with an RMS of
:data:`NOISE_RMS` (the mixer sets the final level from the SNR anyway).

* :func:`coloured_noise` - white, pink, brown, blue or violet noise, or any power
  slope in dB per octave, by shaping a white spectrum.
* :func:`hum` - mains hum at 50 or 60 Hz with random harmonic amplitudes and drift.
* :func:`fan_noise` - band-limited noise with a slow amplitude modulation and a
  few tonal (blade-pass) components.
* :func:`babble` - the sum of several talkers' speech (pass training-split speech
  only, so that babble never leaks validation or test talkers).
* :func:`clicks` - keyboard typing or door knocks.
* :func:`mixture` - one to three of the above at random relative levels.

:func:`spectral_slope` measures a signal's power slope (dB per octave) with the
project's STFT (:func:`realtime.dsp.stft`).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import signal as sps

from realtime import dsp

NOISE_RMS = 0.1
"""RMS of every generator's output (-20 dBFS)."""

COLOURS = {"white": 0.0, "pink": -3.0, "brown": -6.0, "blue": 3.0, "violet": 6.0}
"""Power slope of each noise colour in dB per octave."""

SHAPING_MIN_HZ = 20.0
"""Below this frequency the coloured-noise shaping holds its 20 Hz gain (no DC blow-up)."""

MAINS_HZ = (50.0, 60.0)
"""Mains frequencies."""

HUM_HARMONICS = (3, 25)
"""Range of the number of hum harmonics (limited to 45 % of the sample rate)."""

HUM_DECAY_DB_PER_HARMONIC = (0.5, 4.0)
"""Range of the average fall of harmonic amplitude per harmonic number."""

HUM_JITTER_DB = 12.0
"""Each hum harmonic is attenuated by a random 0..12 dB on top of the decay."""

HUM_DRIFT = 0.002
"""Largest relative deviation of the mains frequency."""

FAN_BAND_LOW_HZ = (60.0, 400.0)
"""Range of the lower edge of fan noise's band."""

FAN_BAND_HIGH_HZ = (1200.0, 6000.0)
"""Range of the upper edge of fan noise's band (limited to 45 % of the sample rate)."""

FAN_MODULATION_HZ = (0.1, 2.0)
"""Range of the rate of fan noise's slow amplitude modulation."""

FAN_MODULATION_DEPTH = (0.0, 0.35)
"""Range of the depth of fan noise's amplitude modulation."""

FAN_BLADE_HZ = (60.0, 450.0)
"""Range of the blade-pass frequency of fan noise's tonal components."""

FAN_TONE_DB = (-25.0, -6.0)
"""Range of a fan tone's level relative to the band noise."""

BABBLE_TALKERS = (4, 9)
"""Range (inclusive) of the number of talkers in babble."""

TYPING_RATE_HZ = (4.0, 10.0)
"""Range of keystrokes per second while typing."""

KNOCK_SPACING_S = (0.12, 0.28)
"""Range of the time between the knocks of one group."""

MIXTURE_PARTS = (1, 3)
"""Range (inclusive) of the number of generators in a mixture."""

MIXTURE_RELATIVE_DB = (-15.0, 0.0)
"""Range of the level of each mixture part relative to the first."""

def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _normalise(x: np.ndarray, rms: float = NOISE_RMS) -> np.ndarray:
    power = float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0
    if power <= 0.0:
        return np.zeros(len(x), dtype=np.float32)
    return (x * (rms / math.sqrt(power))).astype(np.float32)


def _check(n_samples: int, rate: int) -> None:
    if n_samples < 0 or rate <= 0:
        raise ValueError(f"need n_samples >= 0 and rate > 0, got {n_samples}, {rate}")


def shaped_noise(n_samples: int, rate: int, rng: np.random.Generator, slope_db_per_octave: float) -> np.ndarray:
    """Gaussian noise whose power falls ``slope`` dB per octave (float64, not normalised)."""
    if n_samples == 0:
        return np.zeros(0)
    white = rng.standard_normal(n_samples)
    if slope_db_per_octave == 0.0:
        return white
    spectrum = np.fft.rfft(white)
    freqs = np.maximum(np.fft.rfftfreq(n_samples, 1.0 / rate), SHAPING_MIN_HZ)
    exponent = slope_db_per_octave / (20.0 * math.log10(2.0))  # amplitude exponent: power slope / 6.02 dB
    spectrum *= (freqs / 1000.0) ** exponent
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n=n_samples)


def coloured_noise(
    n_samples: int,
    rate: int,
    rng: np.random.Generator | int | None = None,
    colour: str | None = None,
    slope_db_per_octave: float | None = None,
) -> np.ndarray:
    """Coloured noise: ``colour`` from :data:`COLOURS`, or an explicit power slope (dB/octave).

    With neither, the colour is drawn at random.
    """
    _check(n_samples, rate)
    rng = _rng(rng)
    if slope_db_per_octave is None:
        if colour is None:
            colour = str(rng.choice(list(COLOURS)))
        if colour not in COLOURS:
            raise ValueError(f"unknown colour {colour!r}; known: {', '.join(COLOURS)}")
        slope_db_per_octave = COLOURS[colour]
    return _normalise(shaped_noise(n_samples, rate, rng, float(slope_db_per_octave)))


def hum(
    n_samples: int,
    rate: int,
    rng: np.random.Generator | int | None = None,
    mains_hz: float | None = None,
    n_harmonics: int | None = None,
) -> np.ndarray:
    """Mains hum: a slowly drifting 50/60 Hz fundamental and harmonics with random amplitudes."""
    _check(n_samples, rate)
    rng = _rng(rng)
    f0 = float(mains_hz if mains_hz is not None else rng.choice(MAINS_HZ))
    f0 *= 1.0 + rng.uniform(-HUM_DRIFT, HUM_DRIFT)
    top = max(1, int(0.45 * rate // f0))
    k_max = min(top, n_harmonics if n_harmonics is not None else int(rng.integers(HUM_HARMONICS[0], HUM_HARMONICS[1] + 1)))
    t = np.arange(n_samples) / rate
    # Slow drift of the mains frequency (a fraction of a per mille over seconds).
    drift = HUM_DRIFT / 4 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * f0 * np.cumsum(1.0 + drift) / rate
    decay = rng.uniform(*HUM_DECAY_DB_PER_HARMONIC)
    out = np.zeros(n_samples)
    for k in range(1, k_max + 1):
        level_db = -decay * (k - 1) - rng.uniform(0.0, HUM_JITTER_DB)
        if k == 1 and rng.random() < 0.3:  # rectifier buzz: 2nd harmonic dominates
            level_db -= 10.0
        out += 10.0 ** (level_db / 20.0) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return _normalise(out)


def fan_noise(n_samples: int, rate: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Fan or air-conditioning noise: band-pass noise, slow modulation, a few blade tones."""
    _check(n_samples, rate)
    rng = _rng(rng)
    if n_samples == 0:
        return np.zeros(0, np.float32)
    base = shaped_noise(n_samples, rate, rng, rng.uniform(-6.0, -1.0))
    low = rng.uniform(*FAN_BAND_LOW_HZ)
    high = min(rng.uniform(*FAN_BAND_HIGH_HZ), 0.45 * rate)
    sos = sps.butter(2, [low, high], btype="bandpass", fs=rate, output="sos")
    band = sps.sosfilt(sos, base)
    band /= np.sqrt(np.mean(band**2)) + 1e-12
    t = np.arange(n_samples) / rate
    depth = rng.uniform(*FAN_MODULATION_DEPTH)
    band *= 1.0 + depth * np.sin(2 * np.pi * rng.uniform(*FAN_MODULATION_HZ) * t + rng.uniform(0, 2 * np.pi))
    blade = rng.uniform(*FAN_BLADE_HZ)
    wobble = 0.005 * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * blade * np.cumsum(1.0 + wobble) / rate
    for k in range(1, int(rng.integers(1, 5)) + 1):
        if k * blade >= 0.45 * rate:
            break
        amplitude = math.sqrt(2.0) * 10.0 ** (rng.uniform(*FAN_TONE_DB) / 20.0)
        band += amplitude * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return _normalise(band)


def _active_rms(x: np.ndarray, rate: int) -> float:
    hop = max(1, rate // 100)
    frames = x[: len(x) // hop * hop].reshape(-1, hop) if len(x) >= hop else x.reshape(1, -1)
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    if not len(power) or power.max() <= 0:
        return 0.0
    active = power[power >= np.percentile(power, 95) * 1e-3]
    return float(np.sqrt(np.mean(active)))


def _loop_speech(pool: Sequence[np.ndarray], n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` of one talker: random clips from ``pool`` concatenated, random start."""
    pieces, total = [], 0
    first = True
    while total < n_samples:
        clip = np.asarray(pool[int(rng.integers(len(pool)))], dtype=np.float32)
        if first and len(clip) > 0:
            clip = clip[int(rng.integers(len(clip))) :]
            first = False
        pieces.append(clip)
        total += len(clip)
    return np.concatenate(pieces)[:n_samples]


def babble(
    n_samples: int,
    rate: int,
    rng: np.random.Generator | int | None = None,
    speech: Sequence[np.ndarray] | Mapping[str, Sequence[np.ndarray]] = (),
    n_talkers: int | None = None,
) -> np.ndarray:
    """Babble: several talkers at equal active level, summed.

    ``speech`` is a list of clips or a mapping talker -> clips at ``rate`` Hz;
    with a mapping, different talkers are used while there are enough. Pass
    training-split speech only.
    """
    _check(n_samples, rate)
    rng = _rng(rng)
    if isinstance(speech, Mapping):
        pools = [[c for c in v if len(c)] for _, v in sorted(speech.items())]
        pools = [p for p in pools if p]
    else:
        pools = [[c for c in speech if len(c)]]
    if not pools or not pools[0]:
        raise ValueError("babble needs at least one non-empty speech clip")
    k = n_talkers if n_talkers is not None else int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
    order = rng.permutation(len(pools))
    out = np.zeros(n_samples)
    for i in range(k):
        # Distinct talkers while there are enough; then talkers repeat with other clips.
        voice = _loop_speech(pools[order[i % len(pools)]], n_samples, rng)
        level = _active_rms(voice, rate)
        if level > 0:
            out += voice / level
    return _normalise(out)


def _click_kernel(rate: int, rng: np.random.Generator) -> np.ndarray:
    """One keystroke: a sharp high-passed noise tick and a short key-bottom resonance."""
    n = int(0.03 * rate)
    t = np.arange(n) / rate
    tick = rng.standard_normal(n) * np.exp(-t / rng.uniform(0.0004, 0.002))
    tick = np.diff(tick, prepend=0.0)
    f = rng.uniform(150.0, min(900.0, 0.4 * rate))
    thock = np.sin(2 * np.pi * f * t) * np.exp(-t / rng.uniform(0.003, 0.012))
    return tick + rng.uniform(0.2, 1.0) * thock


def _knock_kernel(rate: int, rng: np.random.Generator) -> np.ndarray:
    """One knock on a door: damped low modes and a short thud of noise."""
    n = int(0.2 * rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    for _ in range(int(rng.integers(2, 4))):
        f = rng.uniform(70.0, min(450.0, 0.4 * rate))
        out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * np.exp(
            -t / rng.uniform(0.015, 0.06)
        )
    thud = rng.standard_normal(n) * np.exp(-t / rng.uniform(0.002, 0.006))
    sos = sps.butter(2, min(2500.0, 0.4 * rate), fs=rate, output="sos")
    return out + 0.5 * sps.sosfilt(sos, thud)


def _place(out: np.ndarray, kernel: np.ndarray, at: int, gain: float) -> None:
    if at >= len(out):
        return
    stop = min(len(out), at + len(kernel))
    out[at:stop] += gain * kernel[: stop - at]


def clicks(
    n_samples: int, rate: int, rng: np.random.Generator | int | None = None, style: str | None = None
) -> np.ndarray:
    """Transients: ``style`` 'keyboard' (typing bursts) or 'knock' (door knocks); random if None."""
    _check(n_samples, rate)
    rng = _rng(rng)
    style = style or str(rng.choice(["keyboard", "knock"]))
    out = np.zeros(n_samples)
    if style == "keyboard":
        rate_hz = rng.uniform(*TYPING_RATE_HZ)
        t = -rng.uniform(0.0, 0.5)
        burst_end = t + rng.uniform(1.0, 4.0)
        while t * rate < n_samples:
            if t >= 0:
                _place(out, _click_kernel(rate, rng), int(t * rate), 10.0 ** (rng.uniform(-6.0, 0.0) / 20.0))
            t += rng.exponential(1.0 / rate_hz) + 0.03
            if t > burst_end:  # a pause between words
                t += rng.uniform(0.3, 1.5)
                burst_end = t + rng.uniform(1.0, 4.0)
    elif style == "knock":
        t = rng.uniform(0.0, 0.8)
        while t * rate < n_samples:
            for _ in range(int(rng.integers(2, 5))):
                _place(out, _knock_kernel(rate, rng), int(t * rate), 10.0 ** (rng.uniform(-4.0, 0.0) / 20.0))
                t += rng.uniform(*KNOCK_SPACING_S)
            t += rng.uniform(0.8, 3.0)
    else:
        raise ValueError(f"unknown click style {style!r}; use 'keyboard' or 'knock'")
    return _normalise(out)


GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "coloured": coloured_noise,
    "hum": hum,
    "fan": fan_noise,
    "babble": babble,
    "clicks": clicks,
}
"""Generator name -> function. ``babble`` needs ``speech=``."""

KINDS = tuple(GENERATORS)


def generate(
    kind: str,
    n_samples: int,
    rate: int,
    rng: np.random.Generator | int | None = None,
    speech: Sequence[np.ndarray] | Mapping[str, Sequence[np.ndarray]] | None = None,
) -> np.ndarray:
    """Run the generator ``kind`` (:data:`KINDS`, or ``mixture``)."""
    if kind == "mixture":
        return mixture(n_samples, rate, rng, speech=speech)
    if kind not in GENERATORS:
        raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(KINDS)}, mixture")
    if kind == "babble":
        if not speech:
            raise ValueError("babble needs speech clips (speech=...)")
        return babble(n_samples, rate, rng, speech=speech)
    return GENERATORS[kind](n_samples, rate, rng)


def mixture(
    n_samples: int,
    rate: int,
    rng: np.random.Generator | int | None = None,
    speech: Sequence[np.ndarray] | Mapping[str, Sequence[np.ndarray]] | None = None,
    kinds: Sequence[str] | None = None,
) -> np.ndarray:
    """One to three different generators at random relative levels (babble only with ``speech``)."""
    _check(n_samples, rate)
    rng = _rng(rng)
    available = [k for k in (kinds or KINDS) if k != "babble" or speech]
    if not available:
        raise ValueError("no generator available for the mixture")
    count = min(len(available), int(rng.integers(MIXTURE_PARTS[0], MIXTURE_PARTS[1] + 1)))
    chosen = rng.choice(available, size=count, replace=False)
    out = np.zeros(n_samples)
    for i, kind in enumerate(chosen):
        gain = 1.0 if i == 0 else 10.0 ** (rng.uniform(*MIXTURE_RELATIVE_DB) / 20.0)
        out += gain * generate(str(kind), n_samples, rate, rng, speech=speech)
    return _normalise(out)


def spectral_slope(x: np.ndarray, rate: int, low_hz: float = 100.0, high_hz: float | None = None) -> float:
    """Slope (dB per octave) of a line fitted to the mean STFT power vs log2 frequency.

    Uses :func:`realtime.dsp.stft` with 64 ms sqrt-Hann frames; bins between
    ``low_hz`` and ``high_hz`` (default 40 % of the rate) take part.
    """
    window = 1 << max(6, int(round(math.log2(0.064 * rate))))
    framing = dsp.Framing(sample_rate=rate, window_length=window, hop_length=window // 2)
    power = np.mean(np.abs(dsp.stft(np.asarray(x, dtype=np.float64), framing)) ** 2, axis=0)
    freqs = framing.bin_frequencies_hz
    high = 0.4 * rate if high_hz is None else high_hz
    sel = (freqs >= low_hz) & (freqs <= high) & (power > 0)
    # Average within third-octave bins first so that every octave weighs the same in the fit.
    octaves = np.log2(freqs[sel])
    db = 10.0 * np.log10(power[sel])
    edges = np.arange(octaves.min(), octaves.max() + 1 / 3, 1 / 3)
    which = np.digitize(octaves, edges)
    centres = np.array([octaves[which == b].mean() for b in np.unique(which)])
    levels = np.array([10.0 * np.log10(np.mean(10.0 ** (db[which == b] / 10.0))) for b in np.unique(which)])
    return float(np.polyfit(centres, levels, 1)[0])
