"""On-the-fly training pairs: corpus speech + real and generated noise, rooms, EQ, mics.

:class:`Mixer` turns clean speech clips and noise clips (from
:mod:`model_export.corpus`) plus the generators of :mod:`model_export.noise_synth`
into ``(noisy, clean)`` float32 pairs of a fixed length. Everything is drawn from
one seeded :class:`numpy.random.Generator`, so a mixer with the same inputs and
seed produces the same pairs; :meth:`Mixer.example_at` draws example ``i`` from
its own generator (seed and index), for fixed validation and test sets that do
not depend on order or batching.

One example, in order (each step's probability is a named constant below):

1. Kind: noisy speech, clean speech only (:data:`P_CLEAN_ONLY`: noisy == clean) or
   noise only (:data:`P_NOISE_ONLY`: clean is silence).
2. Speech: a random crop of a clip drawn with the given weights; short clips are
   followed by further random clips until the crop is long enough.
3. Speed/pitch (:data:`P_SPEED`): resampling by a factor in :data:`SPEED_RANGE`
   (tape-like: tempo and pitch change together).
4. EQ (:data:`P_EQ`): a spectral tilt (:data:`TILT_DB_PER_OCTAVE`) and up to two
   broad peaks or dips (:data:`EQ_PEAK_DB`), applied to the speech. The target
   keeps this colouring: it is the talker's and microphone's sound, not noise.
5. Room (:data:`P_REVERB`): a synthetic impulse response - a direct path, sparse
   early reflections and an exponentially decaying noise tail with an RT60 (below
   2 kHz) in :data:`RT60_RANGE`, higher frequencies decaying twice as fast - at a random
   direct-to-reverberant ratio (:data:`DRR_DB_RANGE`). **The target is the
   early-reverberant speech**: the speech convolved with the first
   :data:`EARLY_REVERB_MS` ms of the response (direct path and early
   reflections). A real-valued mask cannot undo early reflections (they fall
   inside one analysis frame and colour the spectrum rather than smear it), and
   asking for the dry signal would teach it to distort speech; the late tail it
   can and should suppress. The direct path is at lag 0, so the target is
   time-aligned with the dry speech. The noise goes through a second response of
   the same room with probability :data:`P_NOISE_REVERB`, and is coloured by an EQ of
   its own with probability :data:`P_NOISE_EQ` (0 by default).
6. Noise: a real noise clip (crop, or short clips repeated with random gaps) or,
   with probability :data:`P_GENERATED_NOISE` (always when there is no real
   noise), a generated one (:data:`GENERATED_KINDS`, babble from the speech
   clips given as ``babble_speech``); with probability :data:`P_SECOND_NOISE` a
   second noise joins at :data:`SECOND_NOISE_DB` relative level.
7. SNR: the noise is scaled so that the *active* level of the speech as it
   reaches the microphone (reverberant) is :data:`SNR_DB_RANGE` dB above the
   active level of the noise (:func:`active_rms`: frames within
   :data:`ACTIVE_RANGE_DB` dB of the 95th-percentile frame).
   *Band-limited speech* (:data:`P_MATCH_NOISE_BAND`, off by default): when the
   speech crop's effective bandwidth (the corpus's ``bandwidth_hz`` per clip, the
   lowest of the clips in the crop, scaled by the speed factor) is below
   :data:`MATCH_BAND_BELOW_FRACTION` of the Nyquist frequency, the noise is
   low-passed to that bandwidth before it is scaled and added: the example is then
   a band-limited recording throughout, and the model is not asked to remove noise
   from a top band whose speech the target never had (nor penalised for the
   missing top: noisy and target are both empty there).
8. Band limit (:data:`P_BANDLIMIT`): a Butterworth low-pass at a random cutoff in
   :data:`LOWPASS_HZ_RANGE` on the noisy mix *and* the target (a cheap
   microphone: nothing above the cutoff is there to be recovered).
   *Narrowband* (:data:`P_NARROWBAND`, off by default): telephone-band input -
   with probability :data:`P_NARROWBAND_VIA_8K` the mix and the target are
   resampled to :data:`NARROWBAND_RATE` (8 kHz) and back (an 8 kHz stream
   upsampled to the model rate), otherwise both are low-passed at a cutoff in
   :data:`NARROWBAND_HZ_RANGE` (3.4-4 kHz). The target is the equally band-limited
   clean speech.
9. Level: both signals get one gain that puts the mix's active level at a random
   :data:`LEVEL_DBFS_RANGE` value, lowered if needed so that neither peaks above
   :data:`PEAK_LIMIT` (never clips).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import numpy as np
from scipy import signal as sps

from model_export import noise_synth

if TYPE_CHECKING:
    from model_export.corpus import Corpus

SNR_DB_RANGE = (-5.0, 20.0)
"""Range of the speech-to-noise ratio in dB (uniform)."""

LEVEL_DBFS_RANGE = (-35.0, -15.0)
"""Range of the active level of the noisy mix in dBFS (uniform)."""

PEAK_LIMIT = 0.99
"""Neither the noisy mix nor the target peaks above this (full scale 1.0)."""

P_CLEAN_ONLY = 0.05
"""Probability of a noise-free example (noisy equals clean)."""

P_NOISE_ONLY = 0.05
"""Probability of a speech-free example (clean is silence)."""

P_SPEED = 0.3
"""Probability of a speed/pitch change of the speech."""

SPEED_RANGE = (0.9, 1.1)
"""Range of the speed factor (> 1: faster and higher)."""

P_EQ = 0.5
"""Probability of EQ (tilt and peaks) on the speech."""

TILT_DB_PER_OCTAVE = (-3.0, 3.0)
"""Range of the spectral tilt around 1 kHz in dB per octave."""

EQ_PEAK_DB = (-8.0, 8.0)
"""Range of the gain of each EQ peak (0 to 2 of them)."""

EQ_PEAK_HZ = (150.0, 6000.0)
"""Range of the centre of each EQ peak (log-uniform)."""

EQ_PEAK_OCTAVES = (0.3, 1.5)
"""Range of the width (standard deviation, octaves) of each EQ peak."""

EQ_LIMIT_DB = 12.0
"""The total EQ gain stays within +-12 dB."""

P_REVERB = 0.35
"""Probability of a simulated room."""

RT60_RANGE = (0.1, 0.8)
"""Range of the reverberation time in seconds."""

DRR_DB_RANGE = (-3.0, 12.0)
"""Range of the direct-to-reverberant energy ratio in dB."""

EARLY_REVERB_MS = 50.0
"""The target keeps the first 50 ms of the room response (direct path and early reflections)."""

P_NOISE_REVERB = 0.5
"""Given a room, probability that the noise goes through it too (another response, same RT60)."""

P_NOISE_EQ = 0.0
"""Probability of a colouring of the noise of its own (:func:`random_eq`: a loudspeaker or microphone
the noise reached the recording through). Off in the defaults, which are what the shipped model was
trained with and what the synthetic test set is built with; a training config's ``mix`` section
may turn it on."""

P_GENERATED_NOISE = 0.4
"""Probability of generated rather than real noise (1 when there is no real noise)."""

GENERATED_KINDS = ("coloured", "hum", "fan", "babble", "clicks", "mixture")
"""Generators used, equally likely (babble only when there is babble speech)."""

P_SECOND_NOISE = 0.25
"""Probability of a second noise (real or generated) added to the first."""

SECOND_NOISE_DB = (-12.0, 0.0)
"""Range of the second noise's active level relative to the first."""

NOISE_GAP_S = (0.0, 1.0)
"""Range of the silence between repeats of a noise clip shorter than the example."""

P_BANDLIMIT = 0.15
"""Probability of a low-pass on the whole example (mic and target)."""

LOWPASS_HZ_RANGE = (4000.0, 7500.0)
"""Range of the low-pass cutoff (limited to 47 % of the sample rate)."""

LOWPASS_ORDER = 8
"""Order of the Butterworth low-pass."""

P_MATCH_NOISE_BAND = 0.0
"""Probability that the noise is low-passed to the band of band-limited speech (see step 7). Off in the
defaults (what the shipped model was trained with); a training config's ``mix`` section turns it on."""

MATCH_BAND_BELOW_FRACTION = 0.85
"""Speech whose effective bandwidth is below this fraction of the Nyquist frequency (6.8 kHz at 16 kHz)
counts as band-limited; wideband studio speech measures 7-8 kHz at 16 kHz."""

P_NARROWBAND = 0.0
"""Probability of a telephone-band example (mix and target band-limited alike; off in the defaults)."""

P_NARROWBAND_VIA_8K = 0.5
"""Of the narrowband examples, the fraction resampled through :data:`NARROWBAND_RATE` (the rest low-passed)."""

NARROWBAND_HZ_RANGE = (3400.0, 4000.0)
"""Range of the low-pass cutoff of a narrowband example (Hz, uniform)."""

NARROWBAND_RATE = 8000
"""The rate a narrowband example is resampled through (Hz)."""

ACTIVE_RANGE_DB = 30.0
"""Frames within this many dB of the 95th-percentile frame count as active."""

ACTIVE_FRAME_S = 0.01
"""Frame length of the active-level measurement."""

MIN_SPEECH_RMS = 1e-4
"""A speech crop quieter than this (active RMS) is drawn again (up to a few times)."""


@dataclass(frozen=True)
class MixConfig:
    """Every setting of the mixer; the defaults are the module's constants. Settings named ``p_*``
    are probabilities: outside [0, 1] they are refused (ValueError)."""

    sample_rate: int = 16000
    seconds: float = 2.0
    snr_db_range: tuple[float, float] = SNR_DB_RANGE
    level_dbfs_range: tuple[float, float] = LEVEL_DBFS_RANGE
    peak_limit: float = PEAK_LIMIT
    p_clean_only: float = P_CLEAN_ONLY
    p_noise_only: float = P_NOISE_ONLY
    p_speed: float = P_SPEED
    speed_range: tuple[float, float] = SPEED_RANGE
    p_eq: float = P_EQ
    p_reverb: float = P_REVERB
    rt60_range: tuple[float, float] = RT60_RANGE
    drr_db_range: tuple[float, float] = DRR_DB_RANGE
    early_reverb_ms: float = EARLY_REVERB_MS
    p_noise_reverb: float = P_NOISE_REVERB
    p_noise_eq: float = P_NOISE_EQ
    p_generated_noise: float = P_GENERATED_NOISE
    generated_kinds: tuple[str, ...] = GENERATED_KINDS
    p_second_noise: float = P_SECOND_NOISE
    p_bandlimit: float = P_BANDLIMIT
    lowpass_hz_range: tuple[float, float] = LOWPASS_HZ_RANGE
    p_match_noise_band: float = P_MATCH_NOISE_BAND
    p_narrowband: float = P_NARROWBAND
    p_narrowband_via_8k: float = P_NARROWBAND_VIA_8K
    narrowband_hz_range: tuple[float, float] = NARROWBAND_HZ_RANGE

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("p_") and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"mixer setting {f.name} is a probability, between 0 and 1 (got {value})")

    @property
    def length(self) -> int:
        return int(round(self.seconds * self.sample_rate))


def mix_config(overrides: Mapping[str, object] | None = None, **fixed: object) -> MixConfig:
    """A :class:`MixConfig` with ``overrides`` (e.g. a training config's ``mix`` section; lists are
    taken as the tuples the ranges are) and ``fixed`` settings applied to the defaults.

    Raises:
        ValueError: a setting that MixConfig does not have, or a probability outside [0, 1].
    """
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(overrides or {}).items()}
    values.update(fixed)
    known = {f.name for f in fields(MixConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown mixer setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return replace(MixConfig(), **values)  # MixConfig checks the probabilities


@dataclass
class Example:
    """One training pair and how it was made."""

    noisy: np.ndarray
    clean: np.ndarray
    info: dict = field(default_factory=dict)


# --- measurements and building blocks --------------------------------------------------------


def active_rms(x: np.ndarray, rate: int) -> float:
    """RMS over the active 10 ms frames: those within :data:`ACTIVE_RANGE_DB` of the 95th percentile.

    For stationary noise this is the plain RMS; for speech with pauses or
    sparse transients it is the level while they sound. 0.0 for silence.
    """
    hop = max(1, int(round(ACTIVE_FRAME_S * rate)))
    x = np.asarray(x)
    if len(x) < hop:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    reference = np.percentile(power, 95)
    if reference <= 0:
        return 0.0
    active = power[power >= reference * 10.0 ** (-ACTIVE_RANGE_DB / 10.0)]
    return float(np.sqrt(np.mean(active)))


def snr_db(speech: np.ndarray, noise: np.ndarray, rate: int) -> float:
    """SNR as the mixer defines it: active level of ``speech`` over active level of ``noise``."""
    return 20.0 * math.log10(active_rms(speech, rate) / active_rms(noise, rate))


def scale_to_snr(speech: np.ndarray, noise: np.ndarray, target_snr_db: float, rate: int) -> np.ndarray:
    """``noise`` scaled so that ``snr_db(speech, result) == target_snr_db``."""
    s, n = active_rms(speech, rate), active_rms(noise, rate)
    if s <= 0.0 or n <= 0.0:
        return np.asarray(noise, dtype=np.float32)
    return (np.asarray(noise) * (s / n * 10.0 ** (-target_snr_db / 20.0))).astype(np.float32)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (and higher) by resampling; ~``len(x) / factor`` samples."""
    ratio = Fraction(1.0 / factor).limit_denominator(40)
    if ratio == 1:
        return np.asarray(x, dtype=np.float32)
    return sps.resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def eq_gain_db(freqs: np.ndarray, tilt_db_per_octave: float, peaks: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """EQ curve in dB: a tilt around 1 kHz (held below 50 Hz) plus Gaussian peaks on log frequency.

    ``peaks`` holds ``(centre_hz, gain_db, width_octaves)``. Limited to +-:data:`EQ_LIMIT_DB`.
    """
    octaves = np.log2(np.maximum(freqs, 50.0) / 1000.0)
    gain = tilt_db_per_octave * octaves
    for centre, peak_db, width in peaks:
        gain += peak_db * np.exp(-0.5 * ((octaves - math.log2(centre / 1000.0)) / width) ** 2)
    return np.clip(gain, -EQ_LIMIT_DB, EQ_LIMIT_DB)


def random_eq(rng: np.random.Generator, rate: int) -> tuple[float, list[tuple[float, float, float]]]:
    """A random colouring for :func:`apply_eq`: a tilt in :data:`TILT_DB_PER_OCTAVE` and up to two
    peaks or dips (centre Hz log-uniform in :data:`EQ_PEAK_HZ` below 0.45 x ``rate``, gain dB in
    :data:`EQ_PEAK_DB`, width octaves in :data:`EQ_PEAK_OCTAVES`)."""
    tilt = float(rng.uniform(*TILT_DB_PER_OCTAVE))
    top_hz = min(EQ_PEAK_HZ[1], 0.45 * rate)
    peaks = [
        (float(math.exp(rng.uniform(math.log(EQ_PEAK_HZ[0]), math.log(top_hz)))),
         float(rng.uniform(*EQ_PEAK_DB)), float(rng.uniform(*EQ_PEAK_OCTAVES)))
        for _ in range(int(rng.integers(0, 3)))
    ]
    return tilt, peaks


def apply_eq(x: np.ndarray, rate: int, tilt_db_per_octave: float, peaks: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """``x`` through a zero-phase EQ (:func:`eq_gain_db`), applied in the frequency domain."""
    n = len(x)
    if n == 0:
        return np.asarray(x, dtype=np.float32)
    size = 1 << int(math.ceil(math.log2(n + rate // 20)))  # padding keeps the smooth EQ's ringing off the ends
    spectrum = np.fft.rfft(x, n=size)
    gain = 10.0 ** (eq_gain_db(np.fft.rfftfreq(size, 1.0 / rate), tilt_db_per_octave, peaks) / 20.0)
    return np.fft.irfft(spectrum * gain, n=size)[:n].astype(np.float32)


def synthetic_rir(
    rate: int, rt60: float, drr_db: float, rng: np.random.Generator, early_ms: float = EARLY_REVERB_MS
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic room response and its early part: ``(full, early)``, float32, direct path at lag 0.

    The tail is Gaussian noise with an exponential decay reaching -60 dB at
    ``rt60`` (high frequencies decay about twice as fast), starting 1-3 ms after
    the direct path, with sparse early reflections in the first ``early_ms``.
    The tail's energy is ``drr_db`` below the direct path's (energy 1).
    """
    length = max(int(rt60 * rate), int(early_ms * rate / 1000) + 2)
    t = np.arange(length) / rate
    decay = np.exp(-6.9078 * t / rt60)  # 60 dB over rt60 (amplitude: ln(1000) = 6.9078)
    noise = rng.standard_normal(length)
    # Faster decay of high frequencies: mix a low-passed copy that decays at rt60 with a
    # high-passed one that decays at rt60 / 2.
    sos = sps.butter(2, min(2000.0, 0.4 * rate), fs=rate, output="sos")
    low = sps.sosfilt(sos, noise)
    high = noise - low
    tail = low * decay + high * np.exp(-2 * 6.9078 * t / rt60)
    onset = int(rng.uniform(0.001, 0.003) * rate)
    tail[:onset] = 0.0
    early_end = int(early_ms * rate / 1000)
    for _ in range(int(rng.integers(3, 9))):  # discrete early reflections
        lag = int(rng.integers(max(onset, 1), max(onset + 1, early_end)))
        tail[lag] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.7) * decay[lag]
    tail *= math.sqrt(10.0 ** (-drr_db / 10.0) / (np.sum(tail**2) + 1e-20))
    full = tail
    full[0] = 1.0
    early = full[: early_end + 1].copy()
    # A short fade keeps the early part from ending on a cliff.
    fade = min(len(early) - 1, int(0.005 * rate))
    if fade > 0:
        early[-fade:] *= np.linspace(1.0, 0.0, fade)
    return full.astype(np.float32), early.astype(np.float32)


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    return sps.oaconvolve(x, h)[: len(x)].astype(np.float32)


def lowpass(x: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    """Causal Butterworth low-pass (:data:`LOWPASS_ORDER`) at ``cutoff_hz``."""
    sos = sps.butter(LOWPASS_ORDER, min(cutoff_hz, 0.47 * rate), fs=rate, output="sos")
    return sps.sosfilt(sos, x).astype(np.float32)


def through_rate(x: np.ndarray, rate: int, via_rate: int) -> np.ndarray:
    """``x`` (at ``rate`` Hz) resampled to ``via_rate`` and back (polyphase, zero-phase), same length.

    Nothing above ``via_rate / 2`` survives. ``x`` unchanged (as float32) when ``via_rate >= rate``.
    """
    x = np.asarray(x, dtype=np.float32)
    if via_rate >= rate:
        return x
    ratio = Fraction(int(via_rate), int(rate))
    down = sps.resample_poly(x, ratio.numerator, ratio.denominator)
    up = sps.resample_poly(down, ratio.denominator, ratio.numerator)
    return np.pad(up, (0, max(0, len(x) - len(up))))[: len(x)].astype(np.float32)


def is_band_limited(bandwidth_hz: float | None, rate: int) -> bool:
    """Whether speech of ``bandwidth_hz`` (None: unknown, taken as full band) is band-limited at ``rate``."""
    return bandwidth_hz is not None and bandwidth_hz < MATCH_BAND_BELOW_FRACTION * rate / 2.0


# --- the mixer -------------------------------------------------------------------------------


def _normalised_weights(weights: Sequence[float] | np.ndarray | None, clips: Sequence[np.ndarray]) -> np.ndarray | None:
    if not clips:
        return None
    w = np.asarray([len(c) for c in clips], dtype=np.float64) if weights is None else np.asarray(weights, np.float64)
    if len(w) != len(clips) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be one non-negative number per clip, not all zero")
    return w / w.sum()


class Mixer:
    """Makes ``(noisy, clean)`` pairs from speech clips and noise clips (see the module docstring).

    Args:
        speech: clean speech clips at ``config.sample_rate`` (e.g. ``corpus.speech("train")``).
        noise: real noise clips (may be empty: then only generated noise).
        seed: seed or generator of all random choices.
        config: the settings (:class:`MixConfig`); keyword overrides go through ``**overrides``.
        speech_weights, noise_weights: sampling weights per clip (default: proportional to length).
        babble_speech: clips (or talker -> clips) for babble; default ``speech``. Use the same split.
        speech_bandwidths: effective bandwidth (Hz) per speech clip, None where unknown (default:
            all unknown, i.e. full band); used by ``p_match_noise_band``.
    """

    def __init__(
        self,
        speech: Sequence[np.ndarray],
        noise: Sequence[np.ndarray] = (),
        seed: int | np.random.Generator | None = 0,
        config: MixConfig | None = None,
        speech_weights: Sequence[float] | np.ndarray | None = None,
        noise_weights: Sequence[float] | np.ndarray | None = None,
        babble_speech: Sequence[np.ndarray] | Mapping[str, Sequence[np.ndarray]] | None = None,
        speech_bandwidths: Sequence[float | None] | None = None,
        **overrides,
    ) -> None:
        self.config = replace(config or MixConfig(), **overrides)
        if speech_bandwidths is not None and len(speech_bandwidths) != len(speech):
            raise ValueError(f"speech_bandwidths must give one bandwidth per speech clip ({len(speech)}), "
                             f"got {len(speech_bandwidths)}")
        bandwidths = list(speech_bandwidths) if speech_bandwidths is not None else [None] * len(speech)
        self.speech_bandwidths: list[float | None] = [b for b, c in zip(bandwidths, speech) if len(c)]
        self.speech = [c for c in speech if len(c)]
        if not self.speech:
            raise ValueError("the mixer needs at least one non-empty speech clip")
        self.noise = [c for c in noise if len(c)]
        self._speech_p = _normalised_weights(
            None if speech_weights is None else [w for w, c in zip(speech_weights, speech) if len(c)], self.speech
        )
        self._noise_p = _normalised_weights(
            None if noise_weights is None else [w for w, c in zip(noise_weights, noise) if len(c)], self.noise
        )
        self.babble_speech = babble_speech if babble_speech is not None else self.speech
        self._seed = seed
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    @classmethod
    def from_corpus(cls, corpus: Corpus, split: str, seed: int = 0, config: MixConfig | None = None,
                    speech_balance: str = "duration", noise_balance: str = "source", **overrides) -> Mixer:
        """A mixer over one split of a corpus, babble from the same split's talkers.

        Speech clips are drawn in proportion to duration, real noise clips with
        every noise source equally likely (``*_balance``: see :meth:`Corpus.weights`).
        """
        if config is None:
            config = MixConfig(sample_rate=corpus.sample_rate)
        elif config.sample_rate != corpus.sample_rate:
            raise ValueError(f"the corpus is at {corpus.sample_rate} Hz, the mixer at {config.sample_rate} Hz")
        noise = corpus.noise(split)
        return cls(
            corpus.speech(split),
            noise,
            seed=seed,
            config=config,
            speech_weights=corpus.weights("speech", split, speech_balance),
            noise_weights=corpus.weights("noise", split, noise_balance) if noise else None,
            babble_speech=corpus.speech_by_talker(split),
            speech_bandwidths=[c.bandwidth_hz for c in corpus.clips("speech", split)],
            **overrides,
        )

    # -- pieces --

    def _speech_crop(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, float | None]:
        """A crop of ``n`` samples and its bandwidth (Hz): the lowest known bandwidth of the clips
        it may come from (None when none is known)."""
        for _ in range(5):
            index = int(rng.choice(len(self.speech), p=self._speech_p))
            indices = [index]
            pieces, total = [self.speech[index]], len(self.speech[index])
            while total < n:
                index = int(rng.choice(len(self.speech), p=self._speech_p))
                indices.append(index)
                pieces.append(self.speech[index])
                total += len(self.speech[index])
            joined = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
            start = int(rng.integers(0, total - n + 1))
            crop = np.array(joined[start : start + n], dtype=np.float32)
            known = [b for b in (self.speech_bandwidths[i] for i in indices) if b is not None]
            bandwidth = min(known) if known else None
            if active_rms(crop, self.config.sample_rate) >= MIN_SPEECH_RMS:
                return crop, bandwidth
        return crop, bandwidth

    def _real_noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        clip = self.noise[int(rng.choice(len(self.noise), p=self._noise_p))]
        if len(clip) >= n:
            start = int(rng.integers(0, len(clip) - n + 1))
            return np.array(clip[start : start + n], dtype=np.float32)
        # Shorter than needed: repeat with random gaps and gains, starting anywhere in the pattern.
        rate = self.config.sample_rate
        out = np.zeros(n, dtype=np.float32)
        pos = -int(rng.integers(0, len(clip)))
        while pos < n:
            lo, hi = max(pos, 0), min(pos + len(clip), n)
            out[lo:hi] += 10.0 ** (rng.uniform(-3.0, 3.0) / 20.0) * np.asarray(clip[lo - pos : hi - pos])
            pos += len(clip) + int(rng.uniform(*NOISE_GAP_S) * rate)
        return out

    def _generated_noise(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
        kinds = [k for k in self.config.generated_kinds if k != "babble" or self.babble_speech]
        kind = str(rng.choice(kinds))
        babble = self.babble_speech if kind in ("babble", "mixture") else None
        return noise_synth.generate(kind, n, self.config.sample_rate, rng, speech=babble), kind

    def _one_noise(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
        if self.noise and rng.random() >= self.config.p_generated_noise:
            real = self._real_noise(rng, n)
            if active_rms(real, self.config.sample_rate) > 0.0:
                return real, "real"
        return self._generated_noise(rng, n)  # also when the real crop is silent

    def _noise(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
        rate = self.config.sample_rate
        noise, kind = self._one_noise(rng, n)
        kinds = [kind]
        if rng.random() < self.config.p_second_noise:
            second, kind2 = self._one_noise(rng, n)
            a, b = active_rms(noise, rate), active_rms(second, rate)
            if a > 0 and b > 0:
                noise = noise + second * (a / b * 10.0 ** (rng.uniform(*SECOND_NOISE_DB) / 20.0))
                kinds.append(kind2)
        return noise.astype(np.float32), kinds

    # -- examples --

    def example(self, rng: np.random.Generator | None = None) -> Example:
        """The next example (from the mixer's generator, or from ``rng``)."""
        rng = self.rng if rng is None else rng
        cfg = self.config
        rate, n = cfg.sample_rate, cfg.length
        info: dict = {}
        u = rng.random()
        kind = "clean_only" if u < cfg.p_clean_only else "noise_only" if u < cfg.p_clean_only + cfg.p_noise_only else "noisy"
        info["kind"] = kind

        reverb = rng.random() < cfg.p_reverb
        rir = early = None
        pre = 0
        if reverb:
            rt60 = float(rng.uniform(*cfg.rt60_range))
            drr = float(rng.uniform(*cfg.drr_db_range))
            rir, early = synthetic_rir(rate, rt60, drr, rng, cfg.early_reverb_ms)
            pre = len(rir)  # pre-roll, so that the tail of earlier speech is present at the start
            info.update(rt60=round(rt60, 3), drr_db=round(drr, 2))

        speech_band: float | None = None
        if kind != "noise_only":
            speed = float(rng.uniform(*cfg.speed_range)) if rng.random() < cfg.p_speed else 1.0
            need = n + pre
            raw, speech_band = self._speech_crop(rng, int(math.ceil(need * speed)) + 64)
            if speech_band is not None:
                speech_band = min(speech_band * speed, rate / 2.0)  # faster playback moves the band up
            dry = change_speed(raw, speed) if speed != 1.0 else raw
            if len(dry) < need:
                dry = np.pad(dry, (0, need - len(dry)))
            dry = dry[:need]
            if rng.random() < cfg.p_eq:
                tilt, peaks = random_eq(rng, rate)
                dry = apply_eq(dry, rate, tilt, peaks)
                info.update(eq_tilt=round(tilt, 2), eq_peaks=len(peaks))
            if speed != 1.0:
                info["speed"] = round(speed, 3)
            if reverb:
                mic_speech = _convolve(dry, rir)[pre:]
                target = _convolve(dry, early)[pre:]
            else:
                mic_speech = target = dry
        else:
            mic_speech = target = np.zeros(n, dtype=np.float32)

        if kind != "clean_only":
            noise, noise_kinds = self._noise(rng, n + pre)
            info["noise"] = noise_kinds
            if reverb and rng.random() < cfg.p_noise_reverb:
                noise_rir, _ = synthetic_rir(rate, info["rt60"], float(rng.uniform(*cfg.drr_db_range)), rng,
                                             cfg.early_reverb_ms)
                noise = _convolve(noise, noise_rir)
                info["noise_reverb"] = True
            noise = noise[pre:]
            # Guarded so that with p_noise_eq == 0 no number is drawn: the defaults' examples stay as they were.
            if cfg.p_noise_eq > 0.0 and rng.random() < cfg.p_noise_eq:
                tilt, peaks = random_eq(rng, rate)
                noise = apply_eq(noise, rate, tilt, peaks)
                info.update(noise_eq_tilt=round(tilt, 2), noise_eq_peaks=len(peaks))
            # Guarded like the noise EQ: nothing is drawn unless the setting is on and the speech is band-limited.
            if (cfg.p_match_noise_band > 0.0 and kind == "noisy" and is_band_limited(speech_band, rate)
                    and rng.random() < cfg.p_match_noise_band):
                assert speech_band is not None
                noise = lowpass(noise, rate, speech_band)
                info["noise_lowpass_hz"] = round(speech_band, 1)
            if kind == "noisy":
                snr = float(rng.uniform(*cfg.snr_db_range))
                noise = scale_to_snr(mic_speech, noise, snr, rate)
                info["snr_db"] = round(snr, 2)
            noisy = mic_speech + noise
        else:
            noisy = mic_speech.copy()

        if rng.random() < cfg.p_bandlimit:
            cutoff = float(rng.uniform(*cfg.lowpass_hz_range))
            noisy = lowpass(noisy, rate, cutoff)
            target = lowpass(target, rate, cutoff)
            info["lowpass_hz"] = round(cutoff, 1)

        if cfg.p_narrowband > 0.0 and rng.random() < cfg.p_narrowband:  # guarded: the defaults draw nothing
            cutoff = float(rng.uniform(*cfg.narrowband_hz_range))
            if rng.random() < cfg.p_narrowband_via_8k and rate > NARROWBAND_RATE:
                noisy = through_rate(noisy, rate, NARROWBAND_RATE)
                target = through_rate(target, rate, NARROWBAND_RATE)
                info["narrowband"] = f"via {NARROWBAND_RATE} Hz"
            else:
                noisy = lowpass(noisy, rate, cutoff)
                target = lowpass(target, rate, cutoff)
                info["narrowband"] = f"lowpass {cutoff:.0f} Hz"

        level_dbfs = float(rng.uniform(*cfg.level_dbfs_range))
        current = active_rms(noisy, rate)
        gain = 10.0 ** (level_dbfs / 20.0) / current if current > 0 else 1.0
        peak = max(float(np.max(np.abs(noisy))), float(np.max(np.abs(target))))
        if peak * gain > cfg.peak_limit:
            gain = cfg.peak_limit / peak
        info["level_dbfs"] = round(20.0 * math.log10(max(current * gain, 1e-12)), 2)
        noisy = (noisy * gain).astype(np.float32)
        clean = (np.asarray(target) * gain).astype(np.float32)
        return Example(noisy, clean, info)

    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        """The next ``(noisy, clean)`` pair."""
        example = self.example()
        return example.noisy, example.clean

    def example_at(self, index: int) -> Example:
        """Example ``index`` drawn from its own generator (seed, index): independent of order."""
        if isinstance(self._seed, np.random.Generator):
            raise ValueError("example_at needs a mixer made with an integer seed")
        return self.example(np.random.default_rng([int(self._seed or 0), int(index)]))

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` pairs stacked: ``(noisy, clean)``, each ``(size, length)`` float32."""
        pairs = [self.pair() for _ in range(size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def fixed_set(self, size: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Examples ``start .. start + size - 1`` by :meth:`example_at`: a reproducible set."""
        examples = [self.example_at(i) for i in range(start, start + size)]
        return np.stack([e.noisy for e in examples]), np.stack([e.clean for e in examples])

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            yield self.pair()
