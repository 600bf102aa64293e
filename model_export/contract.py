"""The framing, bands and tensor names quietmic's exported models are built for.

Everything here describes a model's contract (:class:`realtime.metadata.ModelMetadata`)
and needs no TensorFlow. Band layouts come from :func:`realtime.dsp.erb_band_edges`,
so the metadata, the features computed for training and calibration, and the
runtime all use the same edges.
"""

from __future__ import annotations

from typing import Any

from realtime import dsp
from realtime.metadata import DeepFilterSpec, FeatureSpec, MaskSpec, ModelMetadata, SpectrumSpec, StateSpec

WINDOW_MS = 20.0
"""STFT window duration of the standard framing in milliseconds (a model config may choose another)."""

HOP_MS = 10.0
"""STFT hop duration in milliseconds (at least 50 % overlap, as the sqrt-Hann window needs)."""

WINDOW = dsp.SQRT_HANN
"""Analysis window of the standard framing."""

NUM_BANDS = 32
"""Number of ERB bands of the features and of the mask, 0 Hz to Nyquist."""

FEATURES_TENSOR = "features"
"""Signature name of the step model's feature input (``[1, K]`` float32)."""

MASK_TENSOR = "mask"
"""Signature name of the step model's mask output (``[1, M]`` float32)."""

STATE_OUTPUT_SUFFIX = "_out"
"""A state's output tensor is named like its input with this suffix."""

MASK_MAX_GAIN = 1.0
"""Largest gain a mask may hold (masks only attenuate)."""

SPECTRUM_TENSOR = "spectrum"
"""Signature name of a phase-aware model's low-band spectrum input (``[1, 2 * bins]`` float32)."""

DEEP_FILTER_TENSOR = "df_coefs"
"""Signature name of a phase-aware model's deep-filter output (``[1, 2 * order * bins]`` float32)."""

DEEP_FILTER_BINS = 96
"""Bins the deep filter shapes (and the spectrum input carries): 0 to 4750 Hz at 50 Hz per bin,
the band of voiced harmonics, where phase and fine structure matter most."""

DEEP_FILTER_ORDER = 3
"""Deep-filter taps: with a lookahead of one, the previous, the same and the next frame."""

DEEP_FILTER_MAX_COEF = 1.0
"""Bound of each coefficient's real and imaginary part (a tanh output)."""


def standard_framing(sample_rate: int, window_ms: float = WINDOW_MS) -> dsp.Framing:
    """The sqrt-Hann framing with a ``window_ms`` window and a 10 ms hop at ``sample_rate`` Hz.

    The default is 20 ms / 10 ms (16000 Hz -> 320 / 160 samples, 48000 Hz ->
    960 / 480); a 30 ms window gives finer bins (33 Hz) for 10 ms more framing
    latency (``window - hop``). Raises ``ValueError`` if either duration is not
    a whole number of samples at that rate, or the window is shorter than two hops.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate} Hz")
    if window_ms < 2 * HOP_MS:
        raise ValueError(f"the window must be at least two {HOP_MS:g} ms hops long, got {window_ms:g} ms")
    window = window_ms * sample_rate / 1000.0
    hop = HOP_MS * sample_rate / 1000.0
    if window != round(window) or hop != round(hop):
        raise ValueError(
            f"at {sample_rate} Hz a {window_ms:g} ms window / {HOP_MS:g} ms hop is not a whole number of "
            "samples; use a sample rate divisible by 100 Hz (e.g. 16000 or 48000)"
        )
    window, hop = int(round(window)), int(round(hop))
    return dsp.Framing(sample_rate, window, hop, WINDOW)


def standard_band_edges(framing: dsp.Framing, num_bands: int = NUM_BANDS) -> list[float]:
    """ERB band edges in Hz (``num_bands + 1`` values, 0 Hz to Nyquist) for ``framing``."""
    return dsp.erb_band_edges(num_bands, framing)


def state_spec(name: str, size: int) -> StateSpec:
    """A recurrent state ``[1, size]`` fed in as ``name`` and returned as ``name + "_out"``."""
    return StateSpec(input=name, output=name + STATE_OUTPUT_SUFFIX, shape=(1, size))


def band_model_metadata(
    name: str,
    model_version: str,
    sample_rate: int,
    states: tuple[StateSpec, ...],
    training: dict[str, Any],
    num_bands: int = NUM_BANDS,
    parameters: int = 0,
    lookahead_frames: int = 0,
    window_ms: float = WINDOW_MS,
) -> ModelMetadata:
    """Metadata of a band model: log-power ERB-band features in, ERB-band gains out.

    Framing from :func:`standard_framing` with a ``window_ms`` window; the mask
    of frame ``t`` applies to frame ``t - lookahead_frames`` (0: causal, no
    lookahead). The quantization is written as ``"float32"`` here; the exporter
    replaces it (and the parameter count and export figures) with what it
    actually writes.
    """
    framing = standard_framing(sample_rate, window_ms)
    edges = tuple(standard_band_edges(framing, num_bands))
    return _metadata(
        name,
        model_version,
        sample_rate,
        states,
        training,
        FeatureSpec(type=dsp.FEATURE_LOG_POWER_BANDS, tensor=FEATURES_TENSOR, band_edges_hz=edges),
        MaskSpec(type=dsp.MASK_BAND_GAIN, tensor=MASK_TENSOR, max_gain=MASK_MAX_GAIN, band_edges_hz=edges),
        parameters,
        lookahead_frames,
        framing,
    )


def deep_filter_model_metadata(
    name: str,
    model_version: str,
    sample_rate: int,
    states: tuple[StateSpec, ...],
    training: dict[str, Any],
    num_bands: int = NUM_BANDS,
    parameters: int = 0,
    lookahead_frames: int = 1,
    window_ms: float = WINDOW_MS,
    deep_filter_bins: int = DEEP_FILTER_BINS,
    deep_filter_order: int = DEEP_FILTER_ORDER,
    deep_filter_lookahead: int | None = None,
) -> ModelMetadata:
    """Metadata of a phase-aware model: ERB band features plus the low band's complex spectrum
    in, ERB band gains plus deep-filter coefficients for the low band out (format version 2).

    The spectrum input covers the same ``deep_filter_bins`` bins as the filter. The
    filter's lookahead defaults to the model's (``min(lookahead_frames, order - 1)``), so
    its taps reach the newest frame and add no latency. See :func:`band_model_metadata`
    for the framing and the fields the exporter fills in.
    """
    framing = standard_framing(sample_rate, window_ms)
    edges = tuple(standard_band_edges(framing, num_bands))
    ahead = min(lookahead_frames, deep_filter_order - 1) if deep_filter_lookahead is None else deep_filter_lookahead
    return _metadata(
        name,
        model_version,
        sample_rate,
        states,
        training,
        FeatureSpec(
            type=dsp.FEATURE_LOG_POWER_BANDS,
            tensor=FEATURES_TENSOR,
            band_edges_hz=edges,
            spectrum=SpectrumSpec(type=dsp.SPECTRUM_LOW_BAND_RMS, tensor=SPECTRUM_TENSOR, bins=deep_filter_bins),
        ),
        MaskSpec(
            type=dsp.MASK_BAND_GAIN,
            tensor=MASK_TENSOR,
            max_gain=MASK_MAX_GAIN,
            band_edges_hz=edges,
            deep_filter=DeepFilterSpec(
                tensor=DEEP_FILTER_TENSOR,
                bins=deep_filter_bins,
                order=deep_filter_order,
                lookahead=ahead,
                max_coef=DEEP_FILTER_MAX_COEF,
            ),
        ),
        parameters,
        lookahead_frames,
        framing,
    )


def bin_model_metadata(
    name: str,
    model_version: str,
    sample_rate: int,
    states: tuple[StateSpec, ...],
    training: dict[str, Any],
    parameters: int = 0,
    lookahead_frames: int = 0,
    window_ms: float = WINDOW_MS,
) -> ModelMetadata:
    """Metadata of a bin model: log power of every STFT bin in, one gain per bin out.

    See :func:`band_model_metadata` for the framing, the lookahead and the
    fields the exporter fills in.
    """
    return _metadata(
        name,
        model_version,
        sample_rate,
        states,
        training,
        FeatureSpec(type=dsp.FEATURE_LOG_POWER_BINS, tensor=FEATURES_TENSOR),
        MaskSpec(type=dsp.MASK_BIN_GAIN, tensor=MASK_TENSOR, max_gain=MASK_MAX_GAIN),
        parameters,
        lookahead_frames,
        standard_framing(sample_rate, window_ms),
    )


def _metadata(
    name: str,
    model_version: str,
    sample_rate: int,
    states: tuple[StateSpec, ...],
    training: dict[str, Any],
    features: FeatureSpec,
    mask: MaskSpec,
    parameters: int,
    lookahead_frames: int,
    framing: dsp.Framing,
) -> ModelMetadata:
    metadata = ModelMetadata(
        name=name,
        model_version=model_version,
        sample_rate=framing.sample_rate,
        window_length=framing.window_length,
        hop_length=framing.hop_length,
        window=framing.window,
        features=features,
        mask=mask,
        states=states,
        quantization="float32",
        lookahead_frames=lookahead_frames,
        parameters=parameters,
        training=dict(training),
    )
    metadata.validate(f"model {name!r}")
    return metadata


def input_shapes(metadata: ModelMetadata) -> dict[str, tuple[int, ...]]:
    """Signature inputs and their shapes, in order: the features, the spectrum (phase-aware
    models), then each state input."""
    shapes = {metadata.features.tensor: (1, metadata.feature_size)}
    if metadata.features.spectrum is not None:
        shapes[metadata.features.spectrum.tensor] = (1, metadata.spectrum_size)
    shapes.update({s.input: tuple(s.shape) for s in metadata.states})
    return shapes


def output_shapes(metadata: ModelMetadata) -> dict[str, tuple[int, ...]]:
    """Signature outputs and their shapes, in order: the mask, the deep filter (phase-aware
    models), then each state output."""
    shapes = {metadata.mask.tensor: (1, metadata.mask_size)}
    if metadata.mask.deep_filter is not None:
        shapes[metadata.mask.deep_filter.tensor] = (1, metadata.deep_filter_size)
    shapes.update({s.output: tuple(s.shape) for s in metadata.states})
    return shapes
