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

Phase-aware models (a deep filter in the metadata) return the mask and the
deep-filter coefficients concatenated; the enhanced low band is then ``gain * X``
plus the complex FIR filter over the frames at :func:`realtime.dsp.deep_filter_offsets`
(frames before the segment are zeros, as in the engine's empty history), with the
coefficients clipped and scaled under an attenuation limit as the engine does
(:func:`realtime.dsp.scale_deep_filter`). This is the TensorFlow twin of
:func:`realtime.dsp.apply_deep_filter`; ``tests/test_models_v2.py`` checks that the
Keras model through this loss's :meth:`MaskLoss.enhance` and the runtime Enhancer
with the exported model give the same audio.

Two optional terms (weight 0 by default, so older configs train as before):

* a multi-resolution STFT magnitude loss on the resynthesised waveform (spectral
  convergence plus log-magnitude distance at :data:`MR_STFT_RESOLUTIONS`), which scores
  the waveform at other time/frequency resolutions than the engine's own;
* an over-suppression penalty: the mean squared shortfall of the enhanced compressed
  magnitude below the clean one (speech removed is penalised, residual noise is not).

Spectra are the normalised spectra of :mod:`realtime.dsp` (divided by the
window sum), given as separate real and imaginary float32 tensors ``[B, T, F]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from realtime import dsp
from realtime.metadata import DeepFilterSpec

MAGNITUDE_EPSILON = 1e-8
"""Added under the compression power so its gradient stays finite at zero."""

SISDR_EPSILON = 1e-8
"""Keeps SI-SDR finite for silent references."""

SISDR_CAP_DB = 40.0
"""SI-SDR saturates here (thresholded SDR): a nearly perfect example cannot dominate the batch."""

SPEECH_ENERGY_MIN = 1e-6
"""Examples whose clean waveform has less energy than this skip the SI-SDR term."""

MR_STFT_RESOLUTIONS = ((512, 128), (256, 64), (1024, 256))
"""(FFT length, hop) in samples of the multi-resolution STFT loss: 32/16/64 ms windows at 16 kHz."""

MR_STFT_EPSILON = 1e-7
"""Added to STFT magnitudes before their logarithm and under the spectral-convergence ratio."""


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
    mr_stft: float = 0.0
    """Weight of the multi-resolution STFT magnitude loss (0: not computed)."""
    over_suppression: float = 0.0
    """Weight of the over-suppression penalty on compressed magnitudes (0: not computed)."""


class MaskLoss:
    """Computes the weighted loss of a batch of masks (see the module docstring).

    Args:
        spreading: ``(F, M)`` mask-to-bin matrix of the training framing.
        framing: the training framing (for the waveform resynthesis).
        weights: term weights.
        lookahead_frames: frames (hops) the model looks ahead.
        deep_filter: the model's deep filter (its outputs are then the ``M`` mask values
            followed by the coefficients), or None for a gain-only model.
    """

    def __init__(
        self,
        spreading: np.ndarray,
        framing: dsp.Framing,
        weights: LossWeights,
        lookahead_frames: int = 0,
        deep_filter: DeepFilterSpec | None = None,
    ) -> None:
        self.spreading_t = tf.constant(spreading.T, dtype=tf.float32)
        _, synthesis = framing.windows()
        self.synthesis = tf.constant(synthesis, dtype=tf.float32)
        self.framing = framing
        self.weights = weights
        self.lookahead_frames = lookahead_frames
        self.floor = dsp.attenuation_floor(weights.atten_lim_db)
        self.mask_size = int(spreading.shape[1])
        self.deep_filter = deep_filter
        if deep_filter is not None:
            if deep_filter.lookahead > lookahead_frames:
                raise ValueError(
                    f"the deep filter looks {deep_filter.lookahead} frames ahead, the model only {lookahead_frames}"
                )
            self.offsets = list(dsp.deep_filter_offsets(deep_filter.order, deep_filter.lookahead))

    @property
    def output_size(self) -> int:
        """Values per frame of the model outputs scored: the mask, then the deep filter (if any)."""
        return self.mask_size + (self.deep_filter.size if self.deep_filter else 0)

    def identity_outputs(self, batch: int, frames: int) -> tf.Tensor:
        """Outputs ``[batch, frames, output_size]`` that leave the input unchanged: gains of 1, filter 0."""
        ones = tf.ones((batch, frames, self.mask_size))
        if self.deep_filter is None:
            return ones
        return tf.concat([ones, tf.zeros((batch, frames, self.deep_filter.size))], axis=-1)

    def enhance(
        self, outputs: tf.Tensor, noisy_real: tf.Tensor, noisy_imag: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The enhanced spectra ``[B, T - lookahead, F]`` (real, imaginary) as the engine makes them.

        Frame ``t`` of the result is frame ``t`` of the input shaped by the outputs of frame
        ``t + lookahead_frames``: gains spread onto the bins and limited, plus (phase-aware
        models) the deep filter over the low band.
        """
        ahead = self.lookahead_frames
        mask = outputs[..., : self.mask_size]
        gains = self.gains(mask)[:, ahead:]
        all_real, all_imag = noisy_real, noisy_imag
        if ahead:
            noisy_real, noisy_imag = noisy_real[:, :-ahead], noisy_imag[:, :-ahead]
        enh_real, enh_imag = gains * noisy_real, gains * noisy_imag
        if self.deep_filter is None:
            return enh_real, enh_imag
        spec = self.deep_filter
        coefs = tf.clip_by_value(outputs[:, ahead:, self.mask_size :], -spec.max_coef, spec.max_coef)
        if self.floor > 0:
            coefs = dsp.scale_deep_filter(coefs, self.floor)
        bins = min(spec.bins, self.framing.n_bins)
        # Frames before the segment are zeros (the engine's empty history); future taps (at most
        # `ahead` frames after the frame shaped) stay inside the segment.
        history = -self.offsets[0]
        frames = tf.shape(enh_real)[1]
        taps_real = tf.pad(all_real[..., :bins], [[0, 0], [history, 0], [0, 0]])
        taps_imag = tf.pad(all_imag[..., :bins], [[0, 0], [history, 0], [0, 0]])
        # [B, T, order * bins * 2] -> [B, T, order, bins, 2] (realtime.dsp.DEEP_FILTER_LAYOUT)
        shape = tf.shape(coefs)
        coefs = tf.reshape(coefs, tf.stack([shape[0], shape[1], spec.order, spec.bins, 2]))
        filtered_real = tf.zeros_like(enh_real[..., :bins])
        filtered_imag = tf.zeros_like(enh_imag[..., :bins])
        for tap, offset in enumerate(self.offsets):
            c_real = coefs[:, :, tap, :bins, 0]
            c_imag = coefs[:, :, tap, :bins, 1]
            x_real = taps_real[:, history + offset : history + offset + frames]
            x_imag = taps_imag[:, history + offset : history + offset + frames]
            filtered_real += c_real * x_real - c_imag * x_imag
            filtered_imag += c_real * x_imag + c_imag * x_real
        enh_real = tf.concat([enh_real[..., :bins] + filtered_real, enh_real[..., bins:]], axis=-1)
        enh_imag = tf.concat([enh_imag[..., :bins] + filtered_imag, enh_imag[..., bins:]], axis=-1)
        return enh_real, enh_imag

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
        """Loss terms and their weighted sum (``"loss"``) for one batch.

        ``mask`` holds the model's outputs ``[B, T, output_size]``: the mask, then (phase-aware
        models) the deep-filter coefficients.
        """
        w = self.weights
        enh_real, enh_imag = self.enhance(mask, noisy_real, noisy_imag)
        if self.lookahead_frames:
            ahead = self.lookahead_frames
            clean_real, clean_imag = clean_real[:, :-ahead], clean_imag[:, :-ahead]
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
        terms = {"magnitude": magnitude, "complex": complex_term, "sisdr": mean_sisdr}
        if w.over_suppression:
            terms["over_suppression"] = tf.reduce_mean(tf.nn.relu(clean_c - enh_c) ** 2)
            loss += w.over_suppression * terms["over_suppression"]
        if w.mr_stft:
            terms["mr_stft"] = multi_resolution_stft_loss(enhanced_wave[:, :length], clean_wave[:, :length])
            loss += w.mr_stft * terms["mr_stft"]
        return {"loss": loss, **terms}


def multi_resolution_stft_loss(
    estimate: tf.Tensor, reference: tf.Tensor, resolutions: tuple[tuple[int, int], ...] = MR_STFT_RESOLUTIONS
) -> tf.Tensor:
    """Mean over ``resolutions`` of spectral convergence plus mean absolute log-magnitude difference.

    ``estimate`` and ``reference`` are waveforms ``[B, L]``; each resolution is an (FFT length,
    hop) pair in samples with a Hann window. Spectral convergence is ``||S_ref| - |S_est||_F /
    ||S_ref||_F`` over the batch; the log term is in natural-log units.
    """
    total = tf.constant(0.0)
    for fft_length, hop in resolutions:
        est = tf.abs(tf.signal.stft(estimate, fft_length, hop, fft_length, window_fn=tf.signal.hann_window))
        ref = tf.abs(tf.signal.stft(reference, fft_length, hop, fft_length, window_fn=tf.signal.hann_window))
        convergence = tf.norm(ref - est) / (tf.norm(ref) + MR_STFT_EPSILON)
        log_distance = tf.reduce_mean(tf.abs(tf.math.log(ref + MR_STFT_EPSILON) - tf.math.log(est + MR_STFT_EPSILON)))
        total += convergence + log_distance
    return total / len(resolutions)


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
