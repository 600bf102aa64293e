"""The feature DSP shared by runtime and training (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime import dsp

RATES = (16000, 44100, 48000)


def framing_at(rate: int) -> dsp.Framing:
    return dsp.Framing(16000, 320, 160).at_rate(rate)


@pytest.mark.parametrize("rate", RATES)
def test_stft_istft_reconstructs(rate: int) -> None:
    framing = framing_at(rate)
    signal = np.random.default_rng(1).standard_normal(rate // 2 + 37)
    out = dsp.istft(dsp.stft(signal, framing), framing, length=len(signal))
    assert np.max(np.abs(out - signal)) < 1e-10


@pytest.mark.parametrize("window,window_length,hop", [("sqrt_hann", 320, 160), ("hann", 512, 128), ("sqrt_hann", 480, 160)])
def test_synthesis_window_gives_unity_overlap_add(window: str, window_length: int, hop: int) -> None:
    analysis = dsp.analysis_window(window, window_length)
    synthesis = dsp.synthesis_window(analysis, hop)
    total = np.zeros(window_length * 4)
    for start in range(0, len(total) - window_length + 1, hop):
        total[start : start + window_length] += analysis * synthesis
    steady = total[window_length : -window_length]
    assert np.allclose(steady, 1.0, atol=1e-12)


def test_too_little_overlap_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        dsp.synthesis_window(dsp.analysis_window("hann", 320), 320)


def test_rate_conversion_of_framing() -> None:
    assert framing_at(48000).window_length == 960
    assert framing_at(44100).hop_length == 441
    with pytest.raises(ValueError, match="whole number"):
        dsp.Framing(16000, 512, 256).at_rate(44100)


def test_spectrum_values_do_not_depend_on_rate() -> None:
    """A tone gives the same normalised bin power at 16 and 48 kHz (same window duration)."""
    powers = []
    for rate in (16000, 48000):
        framing = framing_at(rate)
        t = np.arange(rate) / rate
        tone = 0.3 * np.sin(2 * np.pi * 1000.0 * t)
        spectrum = dsp.stft(tone, framing)[50]
        powers.append(np.abs(spectrum[:161]) ** 2)
    strong = powers[0] > powers[0].max() * 1e-3  # within 30 dB of the peak
    assert strong.sum() >= 3
    assert np.allclose(powers[0][strong], powers[1][strong], rtol=1e-3)
    assert powers[0].sum() == pytest.approx(powers[1].sum(), rel=1e-3)


def test_erb_band_edges_hold_at_least_one_bin() -> None:
    framing = framing_at(16000)
    edges = dsp.erb_band_edges(32, framing)
    assert len(edges) == 33 and edges[0] == 0.0 and edges[-1] == 8000.0
    assert np.all(np.diff(edges) >= framing.bin_spacing_hz - 1e-9)
    pooling = dsp.band_pooling_matrix(edges, framing)
    assert np.allclose(pooling.sum(axis=1), 1.0)
    assert np.all((pooling > 0).sum(axis=0) <= 1)  # every bin belongs to at most one band


def test_band_features_identical_at_16_and_48_khz() -> None:
    model_framing = framing_at(16000)
    edges = dsp.erb_band_edges(24, model_framing)
    t = np.arange(16000) / 16000
    signal16 = 0.1 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3100 * t)
    t48 = np.arange(48000) / 48000
    signal48 = 0.1 * np.sin(2 * np.pi * 440 * t48) + 0.05 * np.sin(2 * np.pi * 3100 * t48)
    features = []
    for rate, signal in ((16000, signal16), (48000, signal48)):
        framing = framing_at(rate)
        extractor = dsp.FeatureExtractor(dsp.FEATURE_LOG_POWER_BANDS, framing, model_framing, edges)
        features.append(extractor(np.abs(dsp.stft(signal, framing)[40:60]) ** 2))
    # Bands within 40 dB of the loudest agree to 0.1 dB; far below that, the
    # window's sidelobes alias differently at the two rates.
    strong = features[0] > features[0].max() - 4.0
    assert strong.sum() > 10
    assert np.max(np.abs(features[0][strong] - features[1][strong])) < 0.01


def test_band_gains_extend_above_the_model_band() -> None:
    """At 48 kHz, bins above a 16 kHz model's 8 kHz get the top band's gain (voice is kept)."""
    model_framing = framing_at(16000)
    edges = dsp.erb_band_edges(16, model_framing)
    device = framing_at(48000)
    spread = dsp.gain_spreading_matrix(dsp.MASK_BAND_GAIN, device, model_framing, edges)
    mask = np.linspace(0.1, 0.9, 16).astype(np.float32)
    gains = spread @ mask
    above = device.bin_frequencies_hz > 8000
    assert np.allclose(gains[above], mask[-1])
    assert np.all(np.diff(gains) >= -1e-6)  # interpolation of a rising mask rises
    ones = spread @ np.ones(16, dtype=np.float32)
    assert np.allclose(ones, 1.0)


def test_bin_gains_extend_above_the_model_nyquist() -> None:
    model_framing = framing_at(16000)
    device = framing_at(48000)
    spread = dsp.gain_spreading_matrix(dsp.MASK_BIN_GAIN, device, model_framing)
    mask = np.random.default_rng(0).random(model_framing.n_bins).astype(np.float32)
    gains = spread @ mask
    assert np.allclose(gains[: model_framing.n_bins], mask)
    assert np.allclose(gains[model_framing.n_bins :], mask[-1])


def test_bin_features_pad_missing_bins_with_the_floor() -> None:
    model_framing = framing_at(48000)
    device = framing_at(16000)
    extractor = dsp.FeatureExtractor(dsp.FEATURE_LOG_POWER_BINS, device, model_framing)
    features = extractor(np.ones(device.n_bins, dtype=np.float32))
    assert features.shape == (model_framing.n_bins,)
    assert np.allclose(features[: device.n_bins], 0.0, atol=1e-6)
    assert np.allclose(features[device.n_bins :], np.log10(dsp.POWER_FLOOR), atol=1e-3)


@pytest.mark.parametrize("limit,floor", [(None, 0.0), (0.0, 1.0), (20.0, 0.1)])
def test_attenuation_floor(limit: float | None, floor: float) -> None:
    assert dsp.attenuation_floor(limit) == pytest.approx(floor)
