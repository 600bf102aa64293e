"""Training losses for mask models, on the engine's own STFT (TensorFlow).

The model's mask is spread onto the bins with the same matrix the runtime uses
(:func:`realtime.dsp.gain_spreading_matrix`), limited by the attenuation limit
as the runtime limits it (if the config sets one), applied to the noisy
spectrum, and compared with the clean spectrum:

* compressed spectral loss (power-law compression ``|X| ** c``): a magnitude
  term and a complex term (real and imaginary parts of the compressed spectrum
  with the enhanced phase), as in GTCRN / DeepFilterNet;
* negative SI-SDR (dB) of the resynthesised waveform, through an overlap-add
  that reproduces :func:`realtime.dsp.istft` (examples without speech are left
  out of this term).

A model that looks ``lookahead_frames`` ahead has its mask of frame ``t``
applied to the spectrum of frame ``t - lookahead_frames``, as the engine does
(:mod:`realtime.enhancer`); the last ``lookahead_frames`` frames of a segment
then have no mask and are left out.

Spectra are the normalised spectra of :mod:`realtime.dsp` (divided by the
window sum), given as separate real and imaginary float32 tensors ``[B, T, F]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from realtime import dsp

MAGNITUDE_EPSILON = 1e-8
"""Added under the compression power so its gradient stays finite at zero."""

SISDR_EPSILON = 1e-8
"""Keeps SI-SDR finite for silent references."""

SISDR_CAP_DB = 40.0
"""SI-SDR saturates here (thresholded SDR): a nearly perfect example cannot dominate the batch."""

SPEECH_ENERGY_MIN = 1e-6
"""Examples whose clean waveform has less energy than this skip the SI-SDR term."""


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms and the compression exponent."""

    magnitude: float = 70.0
    complex: float = 30.0
    sisdr: float = 0.1
    """Per dB of SI-SDR."""
    compression: float = 0.3
    atten_lim_db: float | None = None
    """The engine's attenuation limit in dB, applied to the gains before the loss exactly as the
    engine applies it (:func:`realtime.dsp.raise_to_floor`), so the model learns with the limit
    it ships with (:data:`realtime.config.DEFAULT_ATTEN_LIM_DB`). ``None``: no limit."""


class MaskLoss:
    """Computes the weighted loss of a batch of masks (see the module docstring).

    Args:
        spreading: ``(F, M)`` mask-to-bin matrix of the training framing.
        framing: the training framing (for the waveform resynthesis).
        weights: term weights.
        lookahead_frames: frames (hops) the model looks ahead.
    """

    def __init__(
        self, spreading: np.ndarray, framing: dsp.Framing, weights: LossWeights, lookahead_frames: int = 0
    ) -> None:
        self.spreading_t = tf.constant(spreading.T, dtype=tf.float32)
        _, synthesis = framing.windows()
        self.synthesis = tf.constant(synthesis, dtype=tf.float32)
        self.framing = framing
        self.weights = weights
        self.lookahead_frames = lookahead_frames
        self.floor = dsp.attenuation_floor(weights.atten_lim_db)

    def gains(self, mask: tf.Tensor) -> tf.Tensor:
        """Bin gains ``[B, T, F]`` from masks ``[B, T, M]``, with the attenuation limit applied."""
        gains = tf.einsum("btm,mf->btf", mask, self.spreading_t)
        return dsp.raise_to_floor(gains, self.floor) if self.floor > 0 else gains

    def resynthesise(self, real: tf.Tensor, imag: tf.Tensor) -> tf.Tensor:
        """Waveforms ``[B, n_frames * hop - (window - hop)]`` from spectra, as :func:`realtime.dsp.istft`."""
        frames = tf.signal.irfft(tf.complex(real, imag), fft_length=[self.framing.window_length])
        frames = frames * self.synthesis
        signal = tf.signal.overlap_and_add(frames, self.framing.hop_length)
        n_frames = tf.shape(real)[1]
        start = self.framing.window_length - self.framing.hop_length
        return signal[:, start : n_frames * self.framing.hop_length]

    def __call__(
        self,
        mask: tf.Tensor,
        noisy_real: tf.Tensor,
        noisy_imag: tf.Tensor,
        clean_real: tf.Tensor,
        clean_imag: tf.Tensor,
        clean_wave: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """Loss terms and their weighted sum (``"loss"``) for one batch."""
        w = self.weights
        gains = self.gains(mask)
        if self.lookahead_frames:
            ahead = self.lookahead_frames
            gains = gains[:, ahead:]
            noisy_real, noisy_imag = noisy_real[:, :-ahead], noisy_imag[:, :-ahead]
            clean_real, clean_imag = clean_real[:, :-ahead], clean_imag[:, :-ahead]
        enh_real, enh_imag = gains * noisy_real, gains * noisy_imag
        enh_mag = tf.sqrt(enh_real**2 + enh_imag**2 + MAGNITUDE_EPSILON)
        clean_mag = tf.sqrt(clean_real**2 + clean_imag**2 + MAGNITUDE_EPSILON)
        enh_c = enh_mag**w.compression
        clean_c = clean_mag**w.compression
        magnitude = tf.reduce_mean((enh_c - clean_c) ** 2)
        complex_term = tf.reduce_mean(
            (enh_c * enh_real / enh_mag - clean_c * clean_real / clean_mag) ** 2
            + (enh_c * enh_imag / enh_mag - clean_c * clean_imag / clean_mag) ** 2
        )
        enhanced_wave = self.resynthesise(enh_real, enh_imag)
        length = tf.minimum(tf.shape(enhanced_wave)[1], tf.shape(clean_wave)[1])
        sisdr = si_sdr(enhanced_wave[:, :length], clean_wave[:, :length])
        has_speech = tf.cast(tf.reduce_sum(clean_wave[:, :length] ** 2, axis=1) > SPEECH_ENERGY_MIN, tf.float32)
        mean_sisdr = tf.reduce_sum(sisdr * has_speech) / tf.maximum(tf.reduce_sum(has_speech), 1.0)
        loss = w.magnitude * magnitude + w.complex * complex_term - w.sisdr * mean_sisdr
        return {"loss": loss, "magnitude": magnitude, "complex": complex_term, "sisdr": mean_sisdr}


def si_sdr(estimate: tf.Tensor, reference: tf.Tensor, cap_db: float = SISDR_CAP_DB) -> tf.Tensor:
    """Scale-invariant SDR in dB per example (``[B, L]`` inputs), saturating softly at ``cap_db``."""
    alpha = tf.reduce_sum(estimate * reference, axis=1, keepdims=True) / (
        tf.reduce_sum(reference**2, axis=1, keepdims=True) + SISDR_EPSILON
    )
    target = alpha * reference
    error = estimate - target
    target_energy = tf.reduce_sum(target**2, axis=1)
    floor = 10.0 ** (-cap_db / 10.0) * target_energy
    ratio = (target_energy + SISDR_EPSILON) / (tf.reduce_sum(error**2, axis=1) + floor + SISDR_EPSILON)
    return 10.0 * tf.math.log(ratio) / tf.math.log(10.0)


def si_sdr_numpy(estimate: np.ndarray, reference: np.ndarray) -> float:
    """SI-SDR in dB of one pair of 1-D signals (numpy; for evaluation)."""
    estimate = np.asarray(estimate, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    alpha = np.dot(estimate, reference) / (np.dot(reference, reference) + SISDR_EPSILON)
    target = alpha * reference
    error = estimate - target
    return float(10 * np.log10((np.dot(target, target) + SISDR_EPSILON) / (np.dot(error, error) + SISDR_EPSILON)))
