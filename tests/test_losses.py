"""Training losses: the TF resynthesis matches the engine's DSP; the terms behave."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from model_export.losses import LossWeights, MaskLoss, si_sdr_numpy  # noqa: E402
from realtime import dsp  # noqa: E402

FRAMING = dsp.Framing(16000, 320, 160)


def spectra(signals: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    spec = np.stack([dsp.stft(x, FRAMING) for x in signals]).astype(np.complex64)
    return np.ascontiguousarray(spec.real), np.ascontiguousarray(spec.imag)


def make_loss() -> MaskLoss:
    return MaskLoss(np.eye(FRAMING.n_bins, dtype=np.float32), FRAMING, LossWeights())


def test_tf_resynthesis_matches_dsp_istft() -> None:
    rng = np.random.default_rng(0)
    signals = [rng.standard_normal(8000).astype(np.float32) * 0.1 for _ in range(2)]
    real, imag = spectra(signals)
    wave = make_loss().resynthesise(tf.constant(real), tf.constant(imag)).numpy()
    for i, signal in enumerate(signals):
        assert np.max(np.abs(wave[i, : len(signal)] - signal)) < 1e-5


def test_unity_mask_on_clean_input_is_perfect_and_noise_costs() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    clean = [(0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)]
    noisy = [clean[0] + 0.05 * rng.standard_normal(16000).astype(np.float32)]
    loss = make_loss()
    cr, ci = spectra(clean)
    nr, ni = spectra(noisy)
    ones = tf.ones((1, cr.shape[1], FRAMING.n_bins))
    wave = tf.constant(np.stack(clean))
    perfect = loss(ones, cr, ci, cr, ci, wave)
    assert float(perfect["magnitude"]) < 1e-9 and float(perfect["complex"]) < 1e-9
    assert float(perfect["sisdr"]) == pytest.approx(40.0, abs=0.1)  # the cap
    noisy_terms = loss(ones, nr, ni, cr, ci, wave)
    assert float(noisy_terms["loss"]) > float(perfect["loss"])
    assert float(noisy_terms["sisdr"]) == pytest.approx(si_sdr_numpy(noisy[0], clean[0]), abs=0.2)


def test_si_sdr_is_scale_invariant() -> None:
    rng = np.random.default_rng(2)
    reference = rng.standard_normal(4000)
    estimate = reference + 0.1 * rng.standard_normal(4000)
    assert si_sdr_numpy(3.0 * estimate, reference) == pytest.approx(si_sdr_numpy(estimate, reference), abs=1e-6)
    assert si_sdr_numpy(estimate, reference) == pytest.approx(20.0, abs=1.0)


def test_lookahead_mask_of_frame_t_applies_to_frame_t_minus_lookahead() -> None:
    """The engine applies the mask of frame t to frame t - L; the loss must score the same alignment."""
    rng = np.random.default_rng(3)
    t = np.arange(16000) / 16000
    clean = (0.1 * np.sin(2 * np.pi * 300 * t) * (t > 0.5)).astype(np.float32)
    noisy = clean + 0.05 * rng.standard_normal(16000).astype(np.float32)
    cr, ci = spectra([clean])
    nr, ni = spectra([noisy])
    ideal = np.sqrt((cr**2 + ci**2) / (nr**2 + ni**2 + 1e-12)).clip(0, 1).astype(np.float32)
    ahead = 1
    weights = LossWeights()
    lookahead = MaskLoss(np.eye(FRAMING.n_bins, dtype=np.float32), FRAMING, weights, lookahead_frames=ahead)
    wave = tf.constant(clean[None])
    # The model's mask of frame t is the ideal gain of frame t - L.
    right_mask = np.concatenate([np.ones_like(ideal[:, :ahead]), ideal[:, :-ahead]], axis=1)
    right = lookahead(tf.constant(right_mask), nr, ni, cr, ci, wave)
    misaligned = lookahead(tf.constant(ideal), nr, ni, cr, ci, wave)
    assert float(right["sisdr"]) > float(misaligned["sisdr"]) + 3.0
    assert float(right["magnitude"]) < 0.5 * float(misaligned["magnitude"])
    # Without lookahead the unshifted ideal mask is the right one.
    causal = make_loss()(tf.constant(ideal), nr, ni, cr, ci, wave)
    assert float(causal["sisdr"]) == pytest.approx(float(right["sisdr"]), abs=0.5)


def test_attenuation_limit_floors_the_gains_as_the_engine_does() -> None:
    """With a 30 dB limit a zero mask leaves the noisy input 30 dB down, as the Enhancer's floor does."""
    rng = np.random.default_rng(4)
    noise = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    clean = np.zeros_like(noise)
    nr, ni = spectra([noise])
    cr, ci = spectra([clean])
    wave = tf.constant(clean[None])
    eye = np.eye(FRAMING.n_bins, dtype=np.float32)
    limited = MaskLoss(eye, FRAMING, LossWeights(atten_lim_db=30.0))
    floor = dsp.attenuation_floor(30.0)
    zeros = tf.zeros((1, nr.shape[1], FRAMING.n_bins))
    gains = limited.gains(zeros).numpy()
    assert np.allclose(gains, floor) and np.allclose(limited.gains(tf.ones_like(zeros)).numpy(), 1.0)
    # A zero mask under the limit scores as a constant floor-level mask without it.
    unlimited = make_loss()
    floored = limited(zeros, nr, ni, cr, ci, wave)
    same = unlimited(tf.fill(zeros.shape, floor), nr, ni, cr, ci, wave)
    assert float(floored["magnitude"]) == pytest.approx(float(same["magnitude"]), rel=1e-5)
    assert float(floored["magnitude"]) > float(unlimited(zeros, nr, ni, cr, ci, wave)["magnitude"])
    # The engine's own floor is the same map.
    assert np.allclose(dsp.raise_to_floor(np.zeros(3), floor), floor)
