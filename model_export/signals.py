"""Synthetic test audio and its features, for calibration, parity checks and tests.

No recordings are downloaded: a seeded mixture of coloured noise, a voiced
(harmonic, vibrato, syllable-gated) source and a frequency sweep stands in for
noisy speech. It exercises every band and the recurrent state with realistic
levels and dynamics. Features are computed only through :mod:`realtime.dsp`,
exactly as the runtime computes them.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from realtime import dsp
from realtime.metadata import ModelMetadata

NOISE_LEVEL_DBFS = (-50.0, -25.0)
"""Range of the noise RMS level, dB relative to full scale (1.0)."""

VOICE_LEVEL_DBFS = (-30.0, -15.0)
"""Range of the voiced source's RMS level while it sounds, dB relative to full scale."""

SWEEP_LEVEL_DBFS = -35.0
"""RMS level of the frequency sweep, dB relative to full scale."""

F0_RANGE_HZ = (90.0, 250.0)
"""Range of the voiced source's fundamental frequency in Hz."""

VIBRATO_DEPTH = 0.04
"""Relative depth of the fundamental's vibrato."""

VIBRATO_HZ = 5.0
"""Vibrato rate in Hz."""

SYLLABLE_RATE_HZ = (2.5, 5.0)
"""Range of the on/off rate of the voiced source in Hz (syllables)."""

HARMONIC_TOP_FRACTION = 0.45
"""Harmonics stop at this fraction of the sample rate (below Nyquist)."""

SWEEP_START_HZ = 50.0
"""Start frequency of the sweep in Hz; it ends at ``HARMONIC_TOP_FRACTION * sample_rate``."""

NOISE_COLOUR_POLE = 0.9
"""Pole of the one-pole low-pass that colours part of the noise (brown-ish tilt)."""

MIN_FEATURE_STD = 1e-3
"""Smallest feature standard deviation used for normalisation (log10 units)."""


def _rms_scale(x: np.ndarray, level_dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    return x * (10.0 ** (level_dbfs / 20.0) / rms)


def synthetic_audio(sample_rate: int, seconds: float, seed: int) -> np.ndarray:
    """A seeded noisy, speech-like test signal: float64 mono in [-1, 1].

    Args:
        sample_rate: in Hz.
        seconds: duration in seconds.
        seed: random seed; the same seed gives the same signal.
    """
    if sample_rate <= 0 or seconds <= 0:
        raise ValueError(f"need a positive rate and duration, got {sample_rate} Hz and {seconds} s")
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate

    white = rng.standard_normal(n)
    coloured = sps.lfilter([1.0 - NOISE_COLOUR_POLE], [1.0, -NOISE_COLOUR_POLE], rng.standard_normal(n))
    mix = rng.uniform(0.0, 1.0)
    noise = mix * _rms_scale(white, 0.0) + (1.0 - mix) * _rms_scale(coloured, 0.0)
    noise = _rms_scale(noise, rng.uniform(*NOISE_LEVEL_DBFS))

    f0 = rng.uniform(*F0_RANGE_HZ) * (1.0 + VIBRATO_DEPTH * np.sin(2 * np.pi * VIBRATO_HZ * t))
    f0 *= 1.0 + 0.1 * np.sin(2 * np.pi * t / max(seconds, 1.0) + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    top_hz = HARMONIC_TOP_FRACTION * sample_rate
    n_harmonics = int(top_hz // f0.max())
    formant_hz = rng.uniform(400.0, 2500.0)
    voice = np.zeros(n)
    for k in range(1, n_harmonics + 1):
        tilt = 1.0 / k * (1.0 + 2.0 * np.exp(-(((k * f0.mean() - formant_hz) / 400.0) ** 2)))
        voice += tilt * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    gate = np.sin(2 * np.pi * rng.uniform(*SYLLABLE_RATE_HZ) * t + rng.uniform(0, 2 * np.pi))
    voice = _rms_scale(voice, 0.0) * np.clip(gate, 0.0, 1.0) ** 0.5
    voice *= 10.0 ** (rng.uniform(*VOICE_LEVEL_DBFS) / 20.0)

    sweep = sps.chirp(t, SWEEP_START_HZ, seconds, top_hz, method="logarithmic")
    sweep = _rms_scale(sweep, SWEEP_LEVEL_DBFS)

    return np.clip(noise + voice + sweep, -1.0, 1.0)


def audio_features(audio: np.ndarray, metadata: ModelMetadata) -> np.ndarray:
    """A model's input features of ``audio`` (at the model's rate): float32 ``[frames, K]``.

    Computed by :class:`realtime.dsp.FeatureExtractor` from :func:`realtime.dsp.stft`,
    the same path the runtime takes.
    """
    framing = metadata.framing
    edges = list(metadata.features.band_edges_hz) if metadata.features.band_edges_hz else None
    extractor = dsp.FeatureExtractor(metadata.features.type, framing, framing, edges)
    return extractor(np.abs(dsp.stft(audio, framing)) ** 2).astype(np.float32)


def spectra_inputs(spectra: np.ndarray, metadata: ModelMetadata) -> np.ndarray:
    """A model's input frames from complex spectra ``[..., frames, n_bins]`` at its own framing:
    float32 ``[..., frames, input_size]``.

    The features, then (for a phase-aware model) the low band's normalised spectrum
    (:func:`realtime.dsp.low_band_spectrum`): the runtime feeds the same two vectors to
    the model's two input tensors. This concatenation is how :mod:`model_export` passes
    a model's inputs around (calibration, parity, training); for gain-only models it is
    just the features.
    """
    framing = metadata.framing
    edges = list(metadata.features.band_edges_hz) if metadata.features.band_edges_hz else None
    extractor = dsp.FeatureExtractor(metadata.features.type, framing, framing, edges)
    features = extractor(spectra.real**2 + spectra.imag**2).astype(np.float32)
    spectrum = metadata.features.spectrum
    if spectrum is None:
        return features
    return np.concatenate([features, dsp.low_band_spectrum(spectra, spectrum.bins)], axis=-1)


def audio_inputs(audio: np.ndarray, metadata: ModelMetadata) -> np.ndarray:
    """A model's input frames (:func:`spectra_inputs`) of ``audio`` at the model's rate: ``[frames, input_size]``."""
    return spectra_inputs(dsp.stft(audio, metadata.framing), metadata)


def synthetic_inputs(metadata: ModelMetadata, seconds: float, seeds: list[int] | range) -> list[np.ndarray]:
    """Input frames (``[frames, input_size]`` float32, :func:`spectra_inputs`) of one
    :func:`synthetic_audio` clip per seed."""
    return [audio_inputs(synthetic_audio(metadata.sample_rate, seconds, seed), metadata) for seed in seeds]


def synthetic_features(metadata: ModelMetadata, seconds: float, seeds: list[int] | range) -> list[np.ndarray]:
    """Features (``[frames, K]`` float32) of one :func:`synthetic_audio` clip per seed."""
    return [audio_features(synthetic_audio(metadata.sample_rate, seconds, seed), metadata) for seed in seeds]


def feature_statistics(features: list[np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale (1 / standard deviation), float32 ``[K]`` each.

    ``(features - mean) * scale`` has zero mean and unit variance over the given
    frames; deviations below :data:`MIN_FEATURE_STD` are raised to it.
    """
    frames = np.concatenate(list(features)) if isinstance(features, list) else np.asarray(features)
    mean = frames.mean(axis=0)
    std = np.maximum(frames.std(axis=0), MIN_FEATURE_STD)
    return mean.astype(np.float32), (1.0 / std).astype(np.float32)
