"""Narrowband-aware mixing (model_export.augment): noise matched to band-limited speech, telephone-band
examples, and the defaults drawing exactly what they drew before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from model_export import augment
from model_export.augment import MixConfig, Mixer, mix_config, through_rate
from model_export.corpus import load_corpus

RATE = 16000
QUIET_TOP_DB = -40.0
"""A band-limited signal has at most this much of its energy (dB) above its band."""


def band_speech(seconds: float, cutoff_hz: float | None, seed: int) -> np.ndarray:
    """Speech-like noise bursts (white, 200 ms on / 100 ms off), low-passed at ``cutoff_hz`` (None: full band)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    x = rng.standard_normal(n) * ((t % 0.3) < 0.2)
    if cutoff_hz is not None:  # after the gate: its edges must not bring the top back
        x = sps.sosfiltfilt(sps.butter(12, cutoff_hz, fs=RATE, output="sos"), x)
    return (0.1 * x).astype(np.float32)


def top_fraction_db(x: np.ndarray, above_hz: float) -> float:
    """Energy above ``above_hz`` relative to the total (dB)."""
    f, p = sps.welch(x, fs=RATE, nperseg=512)
    return float(10 * np.log10(p[f > above_hz].sum() / p.sum() + 1e-20))


VIA_8K_TOP_HZ = 4500.0
"""Above this, nothing of a signal resampled through 8 kHz is left (resample_poly's anti-aliasing filter
rolls off between 3.6 and 4.4 kHz)."""

ISOLATED = dict(p_clean_only=0.0, p_noise_only=0.0, p_speed=0.0, p_eq=0.0, p_reverb=0.0, p_generated_noise=0.0,
                p_second_noise=0.0, p_bandlimit=0.0)
"""Settings that leave only speech + one real noise, so that ``noisy - clean`` is the noise as mixed."""


def white_noise(seed: int = 7) -> list[np.ndarray]:
    return [np.random.default_rng(seed).standard_normal(3 * RATE).astype(np.float32) * 0.05]


def test_defaults_are_off_and_draw_what_they_drew_before() -> None:
    config = MixConfig()
    assert config.p_match_noise_band == 0.0 and config.p_narrowband == 0.0
    speech = [band_speech(1.5, 3000.0, s) for s in range(4)] + [band_speech(1.0, None, 9)]
    bands = [3000.0] * 4 + [None]
    with_bands = Mixer(speech, white_noise(), seed=5, speech_bandwidths=bands)
    without = Mixer(speech, white_noise(), seed=5)
    for i in range(20):
        a, b = with_bands.example_at(i), without.example_at(i)
        assert np.array_equal(a.noisy, b.noisy) and np.array_equal(a.clean, b.clean) and a.info == b.info
        assert "noise_lowpass_hz" not in a.info and "narrowband" not in a.info


def test_noise_is_lowpassed_to_the_band_of_band_limited_speech() -> None:
    speech = [band_speech(3.0, 3000.0, s) for s in range(3)]
    mixer = Mixer(speech, white_noise(), seed=1, speech_bandwidths=[3000.0] * 3, p_match_noise_band=1.0, **ISOLATED)
    for i in range(4):
        example = mixer.example_at(i)
        assert example.info["noise_lowpass_hz"] == 3000.0
        noise = example.noisy - example.clean
        assert top_fraction_db(noise, 4000.0) < QUIET_TOP_DB
        assert top_fraction_db(example.clean, 4000.0) < QUIET_TOP_DB  # the target never had the top
    # The same mixer without the setting leaves the noise wideband.
    plain = Mixer(speech, white_noise(), seed=1, speech_bandwidths=[3000.0] * 3, **ISOLATED).example_at(0)
    assert "noise_lowpass_hz" not in plain.info and top_fraction_db(plain.noisy - plain.clean, 4000.0) > -6.0


def test_wideband_or_unknown_speech_keeps_wideband_noise() -> None:
    speech = [band_speech(3.0, None, s) for s in range(2)]
    for bands in ([7800.0, 7900.0], [None, None]):
        mixer = Mixer(speech, white_noise(), seed=2, speech_bandwidths=bands, p_match_noise_band=1.0, **ISOLATED)
        example = mixer.example_at(0)
        assert "noise_lowpass_hz" not in example.info
        assert top_fraction_db(example.noisy - example.clean, 4000.0) > -6.0
    assert augment.is_band_limited(5500.0, RATE) and not augment.is_band_limited(7000.0, RATE)
    assert not augment.is_band_limited(None, RATE)


def test_crops_take_the_lowest_band_of_their_clips_and_speed_moves_it() -> None:
    short = [band_speech(0.4, 3000.0, 0), band_speech(0.4, None, 1)]  # every 2 s crop joins several clips
    mixer = Mixer(short, white_noise(), seed=3, speech_bandwidths=[3000.0, 7900.0], p_match_noise_band=1.0,
                  **{**ISOLATED, "p_speed": 1.0, "speed_range": (1.1, 1.1)})
    bands = {mixer.example_at(i).info.get("noise_lowpass_hz") for i in range(6)}
    assert bands == {3300.0}  # 3000 Hz x speed 1.1: faster playback moves the band up


def test_narrowband_examples_through_8k_band_limit_mix_and_target() -> None:
    speech = [band_speech(3.0, None, s) for s in range(2)]
    mixer = Mixer(speech, white_noise(), seed=4, p_narrowband=1.0, p_narrowband_via_8k=1.0, **ISOLATED)
    for i in range(3):
        example = mixer.example_at(i)
        assert example.info["narrowband"] == "via 8000 Hz"
        for x in (example.noisy, example.clean):
            assert top_fraction_db(x, VIA_8K_TOP_HZ) < QUIET_TOP_DB
            assert top_fraction_db(x, 1000.0) > -3.0  # the band below stays
        assert len(example.noisy) == len(example.clean) == mixer.config.length


def test_narrowband_examples_lowpassed_at_telephone_band() -> None:
    speech = [band_speech(3.0, None, s) for s in range(2)]
    mixer = Mixer(speech, white_noise(), seed=6, p_narrowband=1.0, p_narrowband_via_8k=0.0, **ISOLATED)
    for i in range(3):
        example = mixer.example_at(i)
        cutoff = float(example.info["narrowband"].split()[1])
        assert 3400.0 <= cutoff <= 4000.0
        # Target and mix go through the same filter: the mix is still exactly target + (filtered) noise,
        # and neither has energy much above the cutoff.
        for x in (example.noisy, example.clean):
            assert top_fraction_db(x, cutoff + 1500.0) < QUIET_TOP_DB


def test_narrowband_fraction_follows_the_probability() -> None:
    speech = [band_speech(3.0, None, s) for s in range(2)]
    mixer = Mixer(speech, white_noise(), seed=8, p_narrowband=0.3, **ISOLATED)
    hits = sum("narrowband" in mixer.example_at(i).info for i in range(200))
    assert 40 <= hits <= 80


def test_through_rate_keeps_the_band_and_removes_the_top() -> None:
    t = np.arange(RATE) / RATE
    low, high = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 6000 * t)
    out = through_rate((low + high).astype(np.float32), RATE, 8000)
    assert len(out) == RATE and out.dtype == np.float32
    middle = slice(1000, -1000)
    assert np.max(np.abs(out[middle] - low[middle])) < 0.02  # zero-phase: the 1 kHz tone is untouched
    assert np.array_equal(through_rate(low.astype(np.float32), 8000, 8000), low.astype(np.float32))


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="p_narrowband"):
        mix_config({"p_narrowband": 1.5})
    with pytest.raises(ValueError, match="one bandwidth per speech clip"):
        Mixer([band_speech(1.0, None, 0)], speech_bandwidths=[3000.0, 4000.0])
    config = mix_config({"p_match_noise_band": 1.0, "p_narrowband": 0.2, "narrowband_hz_range": [3400, 3800]})
    assert config.narrowband_hz_range == (3400, 3800) and config.p_match_noise_band == 1.0


def test_from_corpus_passes_each_clips_bandwidth(tmp_path: Path) -> None:
    root = tmp_path / str(RATE)
    (root / "audio").mkdir(parents=True)
    clips = [band_speech(1.0, 3000.0, 0), np.zeros(0, np.float32), band_speech(1.0, None, 1)]
    np.save(root / "audio" / "voice.npy", np.concatenate(clips))
    np.save(root / "audio" / "hiss.npy", white_noise()[0])
    common = dict(group="g", level_dbfs=-20.0, noise_floor_dbfs=-90.0, snr_db=70.0)
    offsets = np.cumsum([0] + [len(c) for c in clips])
    manifest = {"format": 2, "sample_rate": RATE, "sources": {
        "voice": {"package": "voice", "kind": "speech", "audio": "audio/voice.npy", "clips": [
            {"id": f"voice:{i}", "split": "train", "talker": "t", "offset": int(offsets[i]), "length": len(c),
             "seconds": len(c) / RATE, "bandwidth_hz": band, **common}
            for i, (c, band) in enumerate(zip(clips, [3000.0, 5000.0, None]))]},
        "hiss": {"package": "hiss", "kind": "noise", "audio": "audio/hiss.npy", "clips": [
            {"id": "hiss:0", "split": "train", "offset": 0, "length": 3 * RATE, "seconds": 3.0, "noise_kind": "other",
             **common}]},
    }}
    (root / "manifest.json").write_text(json.dumps(manifest))
    corpus = load_corpus(tmp_path, RATE)
    mixer = Mixer.from_corpus(corpus, "train", config=mix_config({"p_match_noise_band": 1.0}))
    assert mixer.speech_bandwidths == [3000.0, None]  # the empty clip is dropped with its bandwidth
