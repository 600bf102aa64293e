"""The streaming Enhancer with real exported models."""

from __future__ import annotations

import numpy as np
import pytest

from realtime import dsp
from realtime.enhancer import ANY_BLOCK_SIZE, Enhancer
from realtime.errors import QuietmicError
from realtime.arrays import enhance_signal
from realtime.model import MaskModel

RECONSTRUCTION_TOLERANCE = 1e-5


def noise_and_tones(rate: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    tones = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * min(12000, rate / 2.5) * t)
    return (tones + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def run_blocks(enhancer: Enhancer, signal: np.ndarray, sizes: list[int]) -> np.ndarray:
    out, position, i = [], 0, 0
    while position < len(signal):
        size = min(sizes[i % len(sizes)], len(signal) - position)
        out.append(enhancer.process(signal[position : position + size]))
        position += size
        i += 1
    return np.concatenate(out)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
@pytest.mark.parametrize("sizes", [[1], [7], [64], [441], [1000], [3, 500, 17, 160, 1, 999]])
def test_identity_model_reconstructs_delayed_input(reference_model, rate: int, sizes: list[int]) -> None:
    enhancer = Enhancer(reference_model("identity", 16000, "float32"), rate, block_size=ANY_BLOCK_SIZE)
    hop = enhancer.hop_length
    assert enhancer.latency == enhancer.framing.window_length - hop + hop - 1
    signal = noise_and_tones(rate)
    out = run_blocks(enhancer, signal, sizes)
    latency = enhancer.latency
    error = np.max(np.abs(out[latency:] - signal[: len(signal) - latency]))
    assert error < RECONSTRUCTION_TOLERANCE
    assert np.max(np.abs(out[:latency])) < RECONSTRUCTION_TOLERANCE  # nothing arrives early


@pytest.mark.parametrize("rate,block", [(16000, 160), (48000, 480), (48000, 64), (48000, 256), (44100, 441)])
def test_declared_block_size_minimises_buffering(reference_model, rate: int, block: int) -> None:
    enhancer = Enhancer(reference_model("identity", 16000, "float32"), rate, block_size=block)
    hop = enhancer.hop_length
    assert enhancer.buffering_latency == hop - np.gcd(block, hop)
    signal = noise_and_tones(rate)
    signal = signal[: len(signal) // block * block]
    out = run_blocks(enhancer, signal, [block])
    latency = enhancer.latency
    assert np.max(np.abs(out[latency:] - signal[: len(signal) - latency])) < RECONSTRUCTION_TOLERANCE
    with pytest.raises(ValueError, match="not a multiple"):
        enhancer.process(np.zeros(np.gcd(block, hop) + 1, dtype=np.float32))


def test_voice_above_8khz_passes_a_16khz_model_at_48khz(reference_model) -> None:
    """A 16 kHz model at 48 kHz: a 12 kHz tone is kept, scaled only by the top band's gain."""
    enhancer = Enhancer(reference_model("random", 16000, "float32"), 48000, atten_lim_db=None)  # the raw gain
    t = np.arange(48000) / 48000
    tone = (0.3 * np.sin(2 * np.pi * 12000 * t)).astype(np.float32)
    out = enhancer.process(tone)
    top_band_gain = float(enhancer.last_mask[-1])
    steady = slice(24000, 48000)
    ratio = np.std(out[steady]) / np.std(tone[steady])
    assert ratio == pytest.approx(top_band_gain, rel=0.02)
    assert top_band_gain > 0.05


def test_streaming_equals_one_big_block_with_a_real_model(reference_model) -> None:
    path = reference_model("random", 48000)
    signal = noise_and_tones(48000, 1.5, seed=2)
    big = Enhancer(MaskModel(path), 48000, block_size=ANY_BLOCK_SIZE)
    small = Enhancer(MaskModel(path), 48000, block_size=ANY_BLOCK_SIZE)
    whole = big.process(signal)
    pieces = run_blocks(small, signal, [5, 480, 33, 1024, 2])
    assert np.array_equal(whole, pieces)
    assert np.std(whole) > 0.01  # the model really produced output


def test_reset_forgets_everything(reference_model) -> None:
    enhancer = Enhancer(reference_model("random", 48000), 48000, block_size=480)
    signal = noise_and_tones(48000, 0.5, seed=4)
    first = run_blocks(enhancer, signal, [480])
    enhancer.process(noise_and_tones(48000, 0.3, seed=5)[:14400])
    enhancer.reset()
    assert np.array_equal(run_blocks(enhancer, signal, [480]), first)


def test_zero_db_limit_and_bypass_pass_input_through(reference_model) -> None:
    path = reference_model("random", 48000)
    signal = noise_and_tones(48000, 0.5, seed=6)
    for enhancer in (Enhancer(path, 48000, atten_lim_db=0.0), Enhancer(path, 48000, bypass=True)):
        out = enhancer.process(signal)
        latency = enhancer.latency
        assert np.max(np.abs(out[latency:] - signal[: len(signal) - latency])) < RECONSTRUCTION_TOLERANCE


def test_attenuation_limit_bounds_the_gain(reference_model) -> None:
    enhancer = Enhancer(reference_model("random", 48000), 48000, atten_lim_db=6.0)
    unlimited = Enhancer(reference_model("random", 48000), 48000, atten_lim_db=None)
    signal = noise_and_tones(48000, 0.5, seed=7)
    floor = 10 ** (-6 / 20)
    for start in range(0, len(signal), 480):
        enhancer.process(signal[start : start + 480])
        unlimited.process(signal[start : start + 480])
        assert enhancer.last_gains.min() >= floor - 1e-6
    assert unlimited.last_gains.min() < floor  # the limit did something
    enhancer.atten_lim_db = None  # settings change while streaming
    enhancer.process(signal[:480])
    assert enhancer.last_gains.min() < floor


def test_file_signal_enhancement_is_aligned(reference_model) -> None:
    enhancer = Enhancer(reference_model("identity", 16000, "float32"), 16000, block_size=160)
    signal = noise_and_tones(16000, 0.77)
    out = enhance_signal(enhancer, signal, 160)
    assert len(out) == len(signal)
    assert np.max(np.abs(out - signal)) < RECONSTRUCTION_TOLERANCE


def test_nan_input_does_not_poison_the_state(reference_model) -> None:
    enhancer = Enhancer(reference_model("random", 48000), 48000, block_size=480)
    bad = noise_and_tones(48000, 0.1)
    bad[100:200] = np.nan
    bad[300] = np.inf
    out = run_blocks(enhancer, bad, [480])
    assert np.isfinite(out).all()
    after = run_blocks(enhancer, noise_and_tones(48000, 0.2, seed=9), [480])
    assert np.isfinite(after).all() and enhancer.model.states_finite()


def test_unsupported_rate_is_a_clear_error(reference_model) -> None:
    with pytest.raises(QuietmicError, match="cannot run at 11025 Hz"):
        Enhancer(reference_model("identity", 16000, "float32"), 11025)


def test_int8_identity_model_reconstruction(reference_model) -> None:
    """The quantised identity model: its mask is 1 within int8 resolution."""
    enhancer = Enhancer(reference_model("identity", 48000, "int8"), 48000)
    signal = noise_and_tones(48000)
    out = enhancer.process(signal)
    latency = enhancer.latency
    error = np.max(np.abs(out[latency:] - signal[: len(signal) - latency]))
    assert error < 1e-2


def test_48khz_model_runs_on_a_16khz_device(reference_model) -> None:
    """Bands above the device's Nyquist frequency get zero power; reconstruction still holds."""
    enhancer = Enhancer(reference_model("identity", 48000, "int8"), 16000)
    signal = noise_and_tones(16000)
    out = enhancer.process(signal)
    latency = enhancer.latency
    assert np.max(np.abs(out[latency:] - signal[: len(signal) - latency])) < RECONSTRUCTION_TOLERANCE
    random = Enhancer(reference_model("random", 48000), 16000)
    assert np.isfinite(random.process(signal)).all()


def test_stage_timing_adds_up_without_changing_the_output(reference_model) -> None:
    model = reference_model("random", 16000)
    rng = np.random.default_rng(3)
    audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    plain = Enhancer(model, 16000, block_size=160)
    timed = Enhancer(model, 16000, block_size=160)
    timed.stage_seconds = np.zeros(3)
    np.testing.assert_array_equal(plain.process(audio), timed.process(audio))
    assert (timed.stage_seconds > 0).all() and timed.counters.hops == 100


def test_lookahead_mask_of_frame_t_is_applied_to_frame_t_minus_one(reference_model, tmp_path) -> None:
    """A model that looks one frame ahead: its mask of frame t shapes frame t - 1 (as the training loss assumes)."""
    pytest.importorskip("flatbuffers")
    from dataclasses import replace

    from model_export.tflite_metadata import embed_metadata

    causal_path = reference_model("random", 16000, "float32")
    causal_model = MaskModel(causal_path)
    ahead_path = tmp_path / "lookahead.tflite"
    ahead_path.write_bytes(embed_metadata(causal_path.read_bytes(), replace(causal_model.metadata, lookahead_frames=1)))
    signal = noise_and_tones(16000, seconds=0.5)

    causal = Enhancer(causal_model, 16000, block_size=160)
    causal.gain_log = []
    causal_out = enhance_signal(causal, signal, 160)
    ahead = Enhancer(MaskModel(ahead_path), 16000, block_size=160)
    ahead.gain_log = []
    ahead_out = enhance_signal(ahead, signal, 160)
    assert ahead.latency == causal.latency + 160  # one hop more
    gains = np.array(ahead.gain_log)  # one more hop than the causal run (to flush the extra delay)
    np.testing.assert_allclose(np.array(causal.gain_log), gains[: len(causal.gain_log)], atol=1e-6)  # same masks

    spectra = dsp.stft(signal, causal.framing)
    n = len(spectra)
    np.testing.assert_allclose(causal_out, dsp.istft(spectra * gains[:n], causal.framing, len(signal)), atol=1e-5)
    shifted = spectra * gains[1 : n + 1]  # frame t takes the mask computed at frame t + 1
    np.testing.assert_allclose(ahead_out, dsp.istft(shifted, ahead.framing, len(signal)), atol=1e-5)
    assert np.max(np.abs(ahead_out - causal_out)) > 1e-3  # the shift matters for this model
