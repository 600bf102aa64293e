"""The signal processing that defines quietmic's features and masks.

This is the one place where framing, windows, band layouts, features and the
spreading of model gains onto STFT bins are defined. The streaming engine
(:mod:`realtime.enhancer`) and training (:mod:`model_export`) both call it, so a
model sees at run time exactly the features it was trained on.

Conventions
-----------
* Audio is float in [-1, 1] (full scale = 1.0).
* A model states its framing (window and hop, in samples) at its own sample
  rate. The engine runs the STFT at the *device* rate with the same window and
  hop *durations*, so every STFT bin sits at the same frequency (spacing
  ``1 / window duration``) at every rate. Spectra are normalised by the sum of
  the analysis window, which makes their values independent of the rate.
* Frame ``m`` of a signal covers samples ``[(m + 1) * hop - window, (m + 1) * hop)``
  (zeros before the start). Overlap-add of frame ``m`` completes output samples
  ``[m * hop - (window - hop), (m + 1) * hop - (window - hop))``: the output is
  the input delayed by ``window - hop`` samples, the framing latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

SQRT_HANN = "sqrt_hann"
"""Square root of the periodic Hann window; with 50 % overlap its square sums to one."""

HANN = "hann"
"""Periodic Hann window (analysis and synthesis); needs at least 75 % overlap for a flat OLA sum."""

WINDOWS = (SQRT_HANN, HANN)

POWER_FLOOR = 1e-12
"""Power added before taking logarithms: -120 dB relative to full-scale power."""

POWER_CEILING = float(np.finfo(np.float32).max)
"""Largest power a feature can express (about +385 dB re full scale): features are float32, so
larger (or infinite) power is clamped to this instead of turning into an infinite feature."""

FEATURE_LOG_POWER_BANDS = "log_power_bands"
"""Features: log10 of the mean power of the STFT bins in each band."""

FEATURE_LOG_POWER_BINS = "log_power_bins"
"""Features: log10 of the power of each STFT bin up to the model's Nyquist frequency."""

FEATURE_TYPES = (FEATURE_LOG_POWER_BANDS, FEATURE_LOG_POWER_BINS)

MASK_BAND_GAIN = "band_gain"
"""Mask: one real gain per band, interpolated linearly between band centres onto bins."""

MASK_BIN_GAIN = "bin_gain"
"""Mask: one real gain per STFT bin of the model's framing."""

MASK_TYPES = (MASK_BAND_GAIN, MASK_BIN_GAIN)

GainsT = TypeVar("GainsT")
"""Any array type with ``+`` and ``*`` (numpy arrays, TensorFlow tensors)."""

_SYNTHESIS_DENOMINATOR_MIN = 1e-3
"""Smallest acceptable overlapped sum of squared windows (else no reconstruction)."""


def analysis_window(name: str, length: int) -> np.ndarray:
    """The analysis window ``name`` of ``length`` samples (periodic), float64."""
    if length < 2:
        raise ValueError(f"window length must be at least 2 samples, got {length}")
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)
    if name == SQRT_HANN:
        return np.sqrt(hann)
    if name == HANN:
        return hann
    raise ValueError(f"unknown window {name!r}; known windows: {', '.join(WINDOWS)}")


def synthesis_window(window: np.ndarray, hop: int) -> np.ndarray:
    """Synthesis window giving perfect reconstruction with ``window`` at ``hop``.

    It is ``window / sum_m window(n + m * hop) ** 2`` (the least-squares
    overlap-add window), so ``sum_m analysis * synthesis = 1`` at every sample.
    """
    length = len(window)
    if not 0 < hop <= length:
        raise ValueError(f"hop must be in 1..{length} samples, got {hop}")
    squared = window**2
    denominator = np.zeros(length)
    for shift in range(-(length // hop) * hop, length, hop):
        lo, hi = max(0, shift), min(length, length + shift)
        denominator[lo:hi] += squared[lo - shift : hi - shift]
    if denominator.min() < _SYNTHESIS_DENOMINATOR_MIN:
        raise ValueError(
            f"a {length}-sample window with a {hop}-sample hop does not overlap enough "
            "for perfect reconstruction; use a hop of at most half the window"
        )
    return window / denominator


def samples_at_rate(samples: int, from_rate: int, to_rate: int) -> int:
    """``samples`` at ``from_rate`` Hz converted to the same duration at ``to_rate`` Hz.

    Raises ``ValueError`` when the duration is not a whole number of samples at
    ``to_rate``.
    """
    scaled = samples * to_rate / from_rate
    if abs(scaled - round(scaled)) > 1e-9:
        raise ValueError(
            f"{samples} samples at {from_rate} Hz ({1000 * samples / from_rate:g} ms) "
            f"is not a whole number of samples at {to_rate} Hz"
        )
    return int(round(scaled))


@dataclass(frozen=True)
class Framing:
    """STFT framing at one sample rate: window and hop lengths in samples."""

    sample_rate: int
    window_length: int
    hop_length: int
    window: str = SQRT_HANN

    def __post_init__(self) -> None:
        if self.window not in WINDOWS:
            raise ValueError(f"unknown window {self.window!r}; known: {', '.join(WINDOWS)}")
        if not 0 < self.hop_length < self.window_length:
            raise ValueError(
                f"hop ({self.hop_length}) must be positive and shorter than the window "
                f"({self.window_length} samples)"
            )

    @property
    def n_bins(self) -> int:
        """Number of rfft bins (``window_length // 2 + 1``)."""
        return self.window_length // 2 + 1

    @property
    def bin_spacing_hz(self) -> float:
        """Frequency spacing of the bins in Hz."""
        return self.sample_rate / self.window_length

    @property
    def bin_frequencies_hz(self) -> np.ndarray:
        """Centre frequency of every bin in Hz."""
        return np.arange(self.n_bins) * self.bin_spacing_hz

    @property
    def framing_latency(self) -> int:
        """Delay of the overlap-add output behind the input, in samples."""
        return self.window_length - self.hop_length

    def at_rate(self, sample_rate: int) -> Framing:
        """The same window and hop durations at ``sample_rate`` Hz.

        Raises ``ValueError`` if they are not whole numbers of samples there.
        """
        return Framing(
            sample_rate=sample_rate,
            window_length=samples_at_rate(self.window_length, self.sample_rate, sample_rate),
            hop_length=samples_at_rate(self.hop_length, self.sample_rate, sample_rate),
            window=self.window,
        )

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """Analysis and synthesis windows (float64), scaled for normalised spectra.

        The analysis window is divided by its sum, so a spectrum's values do not
        depend on the sample rate; the synthesis window is multiplied by it, so
        analysis followed by synthesis still reconstructs perfectly.
        """
        analysis = analysis_window(self.window, self.window_length)
        synthesis = synthesis_window(analysis, self.hop_length)
        scale = analysis.sum()
        return analysis / scale, synthesis * scale


def stft(signal: np.ndarray, framing: Framing) -> np.ndarray:
    """Normalised STFT of a 1-D signal, framed exactly as the streaming engine frames it.

    Returns ``(n_frames, n_bins)`` complex128; frame ``m`` ends at sample
    ``(m + 1) * hop`` (see the module docstring). ``n_frames =
    ceil((len + window - hop) / hop)``: enough frames for every sample to be
    fully overlap-added, so :func:`istft` reconstructs the whole signal.
    """
    analysis, _ = framing.windows()
    hop, length = framing.hop_length, framing.window_length
    n_frames = math.ceil((len(signal) + length - hop) / hop)
    padded = np.zeros(length - hop + n_frames * hop)
    padded[length - hop : length - hop + len(signal)] = signal
    frames = np.lib.stride_tricks.sliding_window_view(padded, length)[::hop]
    return np.fft.rfft(frames * analysis, axis=-1)


def istft(spectra: np.ndarray, framing: Framing, length: int | None = None) -> np.ndarray:
    """Overlap-add synthesis of :func:`stft` output, delay-compensated.

    ``istft(stft(x), length=len(x)) == x`` to float precision. ``length`` trims
    the result (default: ``n_frames * hop - (window - hop)`` samples).
    """
    _, synthesis = framing.windows()
    hop, window_length = framing.hop_length, framing.window_length
    frames = np.fft.irfft(spectra, n=window_length, axis=-1) * synthesis
    n_frames = frames.shape[0]
    out = np.zeros((n_frames - 1) * hop + window_length)
    for m in range(n_frames):
        out[m * hop : m * hop + window_length] += frames[m]
    out = out[window_length - hop : n_frames * hop]
    return out if length is None else out[:length]


def erb_rate(frequency_hz: np.ndarray | float) -> np.ndarray | float:
    """ERB-rate (Glasberg & Moore) of a frequency in Hz."""
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(frequency_hz))


def erb_rate_to_hz(erb: np.ndarray | float) -> np.ndarray | float:
    """Inverse of :func:`erb_rate`: frequency in Hz."""
    return (10.0 ** (np.asarray(erb) / 21.4) - 1.0) / 0.00437


def erb_band_edges(num_bands: int, framing: Framing, max_hz: float | None = None) -> list[float]:
    """Edges (Hz, ``num_bands + 1`` values) of ERB-spaced bands from 0 Hz to ``max_hz``.

    Bands narrower than one bin are widened to one bin (the spacing of the
    remaining bands is recomputed), so every band holds at least one bin of
    ``framing``. ``max_hz`` defaults to the Nyquist frequency.
    """
    nyquist = framing.sample_rate / 2
    top = nyquist if max_hz is None else min(max_hz, nyquist)
    spacing = framing.bin_spacing_hz
    if num_bands < 1 or num_bands * spacing > top:
        raise ValueError(f"{num_bands} bands do not fit into 0-{top:g} Hz at {spacing:g} Hz per bin")
    edges = [0.0]
    for band in range(num_bands):
        remaining = num_bands - band
        lo_erb = erb_rate(edges[-1])
        candidate = float(erb_rate_to_hz(lo_erb + (erb_rate(top) - lo_erb) / remaining))
        # Round onto the bin grid (edges halfway between bins) and keep >= 1 bin per band.
        snapped = (math.floor(candidate / spacing) + 0.5) * spacing
        edges.append(min(max(snapped, edges[-1] + spacing), top))
    edges[-1] = top
    return edges


def _check_edges(edges_hz: list[float] | np.ndarray) -> np.ndarray:
    edges = np.asarray(edges_hz, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 0:
        raise ValueError("band edges must be at least two increasing, non-negative frequencies in Hz")
    return edges


def band_pooling_matrix(edges_hz: list[float] | np.ndarray, framing: Framing) -> np.ndarray:
    """``(n_bands, n_bins)`` float32 matrix averaging bin power over each band.

    Band ``b`` holds the bins with frequency in ``[edges[b], edges[b + 1])``; the
    last band also holds a bin lying exactly on the top edge. Bins above the top
    edge are ignored, so the features do not change with the device rate. Bands
    starting above this framing's Nyquist frequency (a 48 kHz model on a 16 kHz
    device) have an all-zero row: audio at this rate has no power there.
    """
    edges = _check_edges(edges_hz)
    freqs = framing.bin_frequencies_hz
    n_bands = len(edges) - 1
    matrix = np.zeros((n_bands, framing.n_bins), dtype=np.float64)
    for band in range(n_bands):
        upper_ok = freqs <= edges[band + 1] if band == n_bands - 1 else freqs < edges[band + 1]
        members = (freqs >= edges[band]) & upper_ok
        count = int(members.sum())
        if count == 0 and edges[band] >= framing.sample_rate / 2:
            continue
        if count == 0:
            raise ValueError(
                f"band {band} ({edges[band]:g}-{edges[band + 1]:g} Hz) holds no STFT bin at "
                f"{framing.bin_spacing_hz:g} Hz per bin"
            )
        matrix[band, members] = 1.0 / count
    return matrix.astype(np.float32)


def band_centres_hz(edges_hz: list[float] | np.ndarray) -> np.ndarray:
    """Centre frequency (Hz) of each band: the middle of its edges."""
    edges = _check_edges(edges_hz)
    return 0.5 * (edges[:-1] + edges[1:])


def band_gain_spreading_matrix(edges_hz: list[float] | np.ndarray, framing: Framing) -> np.ndarray:
    """``(n_bins, n_bands)`` float32 matrix turning band gains into bin gains.

    Gains are interpolated linearly between band centres and held constant below
    the first and above the last centre. Bins above the model's top band edge
    (for example 8-24 kHz when a 16 kHz model runs at 48 kHz) therefore get the
    gain of the top band: that part of the voice is kept, and noise there is
    attenuated as much as in the top band.
    """
    centres = band_centres_hz(edges_hz)
    freqs = framing.bin_frequencies_hz
    n_bands = len(centres)
    matrix = np.zeros((framing.n_bins, n_bands), dtype=np.float64)
    for band in range(n_bands):
        unit = np.zeros(n_bands)
        unit[band] = 1.0
        matrix[:, band] = np.interp(freqs, centres, unit)
    return matrix.astype(np.float32)


def bin_gain_spreading_matrix(n_model_bins: int, framing: Framing) -> np.ndarray:
    """``(n_bins, n_model_bins)`` float32 matrix turning per-bin model gains into device-bin gains.

    Model bin ``k`` and device bin ``k`` lie at the same frequency (same window
    duration). Device bins above the model's Nyquist frequency take the gain of
    the model's top bin; model bins above the device's Nyquist are unused.
    """
    matrix = np.zeros((framing.n_bins, n_model_bins), dtype=np.float32)
    shared = min(n_model_bins, framing.n_bins)
    matrix[np.arange(shared), np.arange(shared)] = 1.0
    matrix[shared:, n_model_bins - 1] = 1.0
    return matrix


def log_power(power: np.ndarray) -> np.ndarray:
    """``log10(min(power, POWER_CEILING) + POWER_FLOOR)``, float32.

    Finite for every non-negative power, including zero, infinity and values too large
    for float32 (about -12 to +38.5, i.e. -120 dB to +385 dB re full-scale power).
    """
    clamped = np.minimum(power, POWER_CEILING)  # before the cast, which would overflow to inf
    return np.log10(np.asarray(clamped, dtype=np.float32) + np.float32(POWER_FLOOR))


class FeatureExtractor:
    """Turns STFT power at the device framing into a model's feature vector.

    ``model_framing`` is the framing the model was trained with; ``framing`` is
    the one the engine runs at (same durations, possibly another rate).
    """

    def __init__(
        self,
        feature_type: str,
        framing: Framing,
        model_framing: Framing,
        band_edges_hz: list[float] | None = None,
    ) -> None:
        self.feature_type = feature_type
        if feature_type == FEATURE_LOG_POWER_BANDS:
            if band_edges_hz is None:
                raise ValueError(f"{feature_type} features need band edges")
            self._pooling: np.ndarray | None = band_pooling_matrix(band_edges_hz, framing).T.copy()
            self._pooling64 = self._pooling.astype(np.float64)
            """The same matrix in float64: float64 power (the engine's) @ float32 pooling is computed
            in float64 anyway, so this gives identical features without converting it every frame."""
            self.size = self._pooling.shape[1]
        elif feature_type == FEATURE_LOG_POWER_BINS:
            self._pooling = None
            self.size = model_framing.n_bins
            self._shared = min(self.size, framing.n_bins)
        else:
            raise ValueError(f"unknown feature type {feature_type!r}; known: {', '.join(FEATURE_TYPES)}")

    def __call__(self, power: np.ndarray) -> np.ndarray:
        """Features (float32, ``(..., size)``) from bin power ``(..., n_bins)``.

        Finite for any non-negative power, from 0 to +inf: power above
        :data:`POWER_CEILING` gives the features of :data:`POWER_CEILING`.
        """
        # Clamp first: +inf times a bin's zero weight in another band would give NaN.
        power = np.minimum(power, POWER_CEILING)
        if self._pooling is not None:
            pooling = self._pooling64 if power.dtype == np.float64 else self._pooling
            with np.errstate(over="ignore"):  # a float32 band sum beyond float32 range is clamped by log_power
                return log_power(power @ pooling)
        out = np.zeros(power.shape[:-1] + (self.size,), dtype=np.float32)
        out[..., : self._shared] = power[..., : self._shared]
        return log_power(out)


def gain_spreading_matrix(
    mask_type: str,
    framing: Framing,
    model_framing: Framing,
    band_edges_hz: list[float] | None = None,
) -> np.ndarray:
    """``(n_bins, mask_size)`` float32 matrix from a model's mask to device-bin gains."""
    if mask_type == MASK_BAND_GAIN:
        if band_edges_hz is None:
            raise ValueError(f"{mask_type} masks need band edges")
        return band_gain_spreading_matrix(band_edges_hz, framing)
    if mask_type == MASK_BIN_GAIN:
        return bin_gain_spreading_matrix(model_framing.n_bins, framing)
    raise ValueError(f"unknown mask type {mask_type!r}; known: {', '.join(MASK_TYPES)}")


def attenuation_floor(atten_lim_db: float | None) -> float:
    """Smallest gain allowed by an attenuation limit in dB (None: no limit -> 0.0)."""
    if atten_lim_db is None:
        return 0.0
    if atten_lim_db < 0 or math.isnan(atten_lim_db):
        raise ValueError(f"attenuation limit must be >= 0 dB, got {atten_lim_db}")
    return float(10.0 ** (-atten_lim_db / 20.0))


def raise_to_floor(gains: GainsT, floor: float) -> GainsT:
    """Gains mapped onto ``[floor, 1]``: ``floor + (1 - floor) * gains``.

    How the attenuation limit (:func:`attenuation_floor`) is applied: a gain of 0
    becomes ``floor``, a gain of 1 stays 1, and the map stays smooth in between.
    Works on numpy arrays and on TensorFlow tensors alike, so training
    (:mod:`model_export.losses`) limits the gains exactly as the engine does.
    """
    return floor + (1.0 - floor) * gains


# --- Phase-aware models: the low band's complex spectrum in, a deep filter out ---------------

SPECTRUM_LOW_BAND_RMS = "low_band_rms"
"""Spectrum input: the complex STFT of bins ``0 .. bins - 1`` (the low band), interleaved
(real and imaginary part of bin 0, then of bin 1, ...), divided by the root-mean-square
magnitude of those bins in the same frame (:func:`low_band_spectrum`). Stateless,
level-independent and bounded: no value exceeds ``sqrt(bins)`` in magnitude, whatever the
input level (the level is in the band features)."""

SPECTRUM_TYPES = (SPECTRUM_LOW_BAND_RMS,)

DEEP_FILTER_LAYOUT = "tap_bin_part"
"""How a deep filter's ``2 * order * bins`` coefficients are laid out in the model's output:
tap-major, then bin, then real/imaginary part (complex numbers interleaved, as numpy stores
them): part ``p`` of the coefficient of ``(tap, bin)`` is at ``2 * (tap * bins + bin) + p``.
Tap 0 applies to the oldest frame (see :func:`deep_filter_offsets`)."""


def low_band_spectrum(spectrum: np.ndarray, bins: int) -> np.ndarray:
    """The :data:`SPECTRUM_LOW_BAND_RMS` model input of complex spectra ``[..., n_bins]``: float32 ``[..., 2 * bins]``.

    Bins ``0 .. bins - 1`` (same frequencies at every device rate), real and imaginary
    parts interleaved, divided by ``sqrt(mean |X_k|^2 + POWER_FLOOR)`` over those bins.
    Bins the device does not have (a 16 kHz model's low band above a low device
    rate's Nyquist) count as zeros. Computed in float64 and finite for any finite
    spectrum; every value lies within ``[-sqrt(bins), sqrt(bins)]``. A few microseconds
    per frame (the engine calls it every hop).
    """
    shared = min(bins, spectrum.shape[-1])
    parts = np.ascontiguousarray(spectrum[..., :shared], dtype=np.complex128).view(np.float64)
    if parts.ndim == 1:  # one frame (the engine, every hop): the same sum, without the batch machinery
        power = np.dot(parts, parts)
    else:
        power = np.einsum("...k,...k->...", parts, parts)[..., None]  # sum of |X_k|^2 per frame
    scaled = parts * (1.0 / np.sqrt(power / bins + POWER_FLOOR))
    if shared == bins:
        return scaled.astype(np.float32)
    out = np.zeros(spectrum.shape[:-1] + (2 * bins,), dtype=np.float32)
    out[..., : 2 * shared] = scaled
    return out


def deep_filter_offsets(order: int, lookahead: int) -> range:
    """Frame offsets of a deep filter's taps relative to the frame it shapes, oldest first.

    ``order`` taps of which ``lookahead`` lie in the future: ``-(order - 1 - lookahead) ..
    lookahead``. With ``order=3, lookahead=1``: the previous, the same and the next frame.
    """
    if order < 1 or not 0 <= lookahead < order:
        raise ValueError(f"a deep filter needs order >= 1 and 0 <= lookahead < order (got {order}, {lookahead})")
    return range(lookahead - order + 1, lookahead + 1)


def deep_filter_coefficients(flat: np.ndarray, order: int, bins: int) -> np.ndarray:
    """Complex coefficients ``[..., order, bins]`` from a model's flat output (:data:`DEEP_FILTER_LAYOUT`):
    complex64 for float32 output (a view, no copy: the engine's case), else complex128."""
    parts = np.ascontiguousarray(flat, dtype=np.float32 if flat.dtype == np.float32 else np.float64)
    return parts.view(np.complex64 if parts.dtype == np.float32 else np.complex128).reshape(
        parts.shape[:-1] + (order, bins)
    )


def apply_deep_filter(taps: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """The deep filter's output ``[..., bins]``: ``sum_i coefficients[i] * taps[i]`` (complex).

    ``taps`` are the spectra of the frames at :func:`deep_filter_offsets` (``[..., order,
    bins]``, oldest first); ``coefficients`` as :func:`deep_filter_coefficients` gives them.
    A complex FIR filter over frames, per bin. A model's enhanced low band is its gain
    times the spectrum *plus* this (the filter is a phase-aware correction: coefficients
    of 0 leave a gain-only model).
    """
    return np.sum(taps * coefficients, axis=-2)


def scale_deep_filter(coefficients: GainsT, floor: float) -> GainsT:
    """Deep-filter coefficients under an attenuation limit: ``(1 - floor) * coefficients``.

    With :func:`raise_to_floor` on the gains this makes the output ``floor * X + (1 - floor)
    * Y``: the noisy frame ``X`` mixed at ``floor`` into the model's estimate ``Y`` (gains
    and filter alike). For gains alone that is exactly the old bound (no bin loses more than
    the limit); a filter can cancel part of the mixed-in ``floor * X``, so in the filtered
    band the limit bounds how much of the noisy input is kept, not the band's attenuation.
    A 0 dB limit (floor 1) gives the delayed input exactly. Works on numpy arrays and on
    TensorFlow tensors alike.
    """
    return (1.0 - floor) * coefficients
