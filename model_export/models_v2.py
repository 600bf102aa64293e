"""Phase-aware streaming models: ERB gains for the whole spectrum plus a deep filter for the low band.

The network (one frame; ``[..]`` are the leading axes: ``[1]`` in the step model,
``[B, T]`` in the sequence model)::

    features [.., 32]                          spectrum [.., 2 * 96]
    (log10 ERB band power)                     (low band, re/im interleaved, RMS-normalised)
      normalise                                  FrequencyPatches: 24 patches of 4 bins,
      Dense(64, relu)                            one shared Dense(16, relu) -> [.., 384]
            |                                    Dense(64, relu) = spectrum embedding s
            |                                    |
            +------- concat [.., 128] -----------+
                          GRU(128) -> GRU(128) = h
                          |-> Dense(32, sigmoid)               = ERB band gains (mask)
                          +-> concat(h, s) -> Dense(64, relu)
                                -> Dense(3 * 96 * 2, tanh)    = deep-filter coefficients (df_coefs)

* **Frequency compression**: the gains are per ERB band (32 bands, 0-8 kHz), spread onto
  bins by the engine as for every band model; the recurrent core sees 32 band levels
  instead of 161 bin levels.
* **Phase**: the low band's complex spectrum (0-4.75 kHz, where the harmonics of voiced
  speech lie) goes in, normalised per frame (:func:`realtime.dsp.low_band_spectrum`), and a
  complex FIR filter over three frames per bin comes out (:func:`realtime.dsp.apply_deep_filter`):
  with one frame of lookahead the previous, the current and the next frame, so it adds no
  latency beyond the model's 20 ms.
* **Cross-band modelling**: the spectrum encoder is a frequency-axis convolution (kernel
  and stride of 4 bins, 200 Hz) whose weights are shared by every patch of the low band
  (local spectral patterns: harmonics, their phase relations, formant slopes), and the
  dense layers mix all bands and patches; the filter head sees the recurrent state and the
  current low band together.
* **Cost**: 279k parameters; the int8 TFLite graph (47 operators) runs as one XNNPACK
  partition, in about the time of the default model's (6 us per frame on this project's
  2-core machine). A first version with strided-slice frequency convolutions split into
  three partitions and took 28 us. Per hop at 48 kHz the engine's extra work (spectrum
  input, coefficients, the filter itself) adds about 0.03 ms to the default model's 0.075 ms.

The engine's enhanced low band is ``gain * X + sum_i c_i * X_i`` (a residual filter): the
last layer of the filter starts at zero (``zero_deep_filter``), so an untrained model is a
plain ERB-gain model and training adds phase-aware correction from there.

As in :mod:`model_export.keras_models`, the same layers form a step model (named inputs
``features``, ``spectrum`` and the GRU states; outputs ``mask``, ``df_coefs`` and the states
-- a single cell call, converted to TFLite) and a sequence model (``[B, T, input_size]`` input
frames, the features then the spectrum, -> ``[B, T, output_size]``, the mask then the
coefficients), used for training and as the parity reference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import keras
from keras import ops

from model_export.errors import ExportError
from model_export.keras_models import (
    SERIALIZATION_PACKAGE,
    FeatureNormalization,
    StreamingModels,
    _require_tensorflow_backend,
    gru_cells,
)
from realtime.metadata import ModelMetadata

log = logging.getLogger(__name__)

MAX_PARAMETERS = 300_000
"""Parameter budget of a phase-aware model (issue 17): the per-hop cost stays far below 1 ms."""

REFERENCE_KIND = "deep-filter"
"""The reference-model kind of :func:`deep_filter_reference_models`
(``python -m model_export reference deep-filter``)."""

REFERENCE_NAME = "reference-random-deep-filter"
"""The model name in its metadata."""


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class FrequencyPatches(keras.layers.Layer):
    """One dense map shared by every patch of ``patch`` neighbouring bins: a frequency-axis
    convolution whose kernel and stride are both ``patch`` bins.

    Input ``[..., bins * channels]`` with the channels of a bin adjacent (e.g. the interleaved
    real and imaginary parts of :func:`realtime.dsp.low_band_spectrum`); output
    ``[..., (bins / patch) * filters]``. Any leading axes (one frame or a whole sequence).
    In TFLite it is RESHAPE, one FULLY_CONNECTED (int8 weights) and RESHAPE: every patch
    in one matrix product, so it costs a few microseconds per frame.

    Args:
        filters: outputs per patch.
        patch: bins per patch (and the stride).
        channels: values per bin (2: real and imaginary part).
        activation: Keras activation name.
        seed: seeds the kernel initialiser.
    """

    def __init__(
        self, filters: int, patch: int, channels: int = 2, activation: str = "relu", seed: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.patch = int(patch)
        self.channels = int(channels)
        self.activation_name = activation
        self.activation = keras.activations.get(activation)
        self.seed = int(seed)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        width = self.patch * self.channels
        size = int(input_shape[-1])
        if size % width:
            raise ExportError(
                f"{self.name}: {size} values are not whole patches of {self.patch} bins x {self.channels} values; "
                "choose a patch size that divides the bins"
            )
        self.patches = size // width
        self.kernel = self.add_weight(
            shape=(width, self.filters), initializer=keras.initializers.GlorotUniform(seed=self.seed), name="kernel"
        )
        self.bias = self.add_weight(shape=(self.filters,), initializer="zeros", name="bias")

    def call(self, x: Any) -> Any:
        leading = ops.shape(x)[:-1]
        rows = ops.reshape(x, (-1, self.patch * self.channels))
        y = self.activation(ops.matmul(rows, self.kernel) + self.bias)
        return ops.reshape(y, (*leading, self.patches * self.filters))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], int(input_shape[-1]) // (self.patch * self.channels) * self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "patch": self.patch,
            "channels": self.channels,
            "activation": self.activation_name,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class DeepFilterArchitecture:
    """Sizes of the phase-aware network (see the module docstring); the GRU sizes come from the metadata's states.

    Attributes:
        band_units: width of the band embedding (a dense layer over the normalised ERB features).
        spectrum_patch: bins per frequency patch of the spectrum encoder (divides the spectrum's bins).
        spectrum_channels: outputs per patch.
        spectrum_units: width of the spectrum embedding.
        filter_units: width of the deep filter's hidden layer.
    """

    band_units: int = 64
    spectrum_patch: int = 4
    spectrum_channels: int = 16
    spectrum_units: int = 64
    filter_units: int = 64


def build_deep_filter_models(
    metadata: ModelMetadata,
    feature_mean: Sequence[float],
    feature_scale: Sequence[float],
    architecture: DeepFilterArchitecture = DeepFilterArchitecture(),
    seed: int = 0,
    zero_deep_filter: bool = True,
    max_parameters: int | None = MAX_PARAMETERS,
) -> StreamingModels:
    """The phase-aware model of the module docstring for ``metadata``, seeded.

    Args:
        metadata: a contract with a spectrum input and a deep filter, band gains and one
            state ``[1, U]`` per GRU, e.g. :func:`model_export.contract.deep_filter_model_metadata`.
        feature_mean, feature_scale: band-feature normalisation constants (``K`` values,
            log10 units and 1 / log10 units); the spectrum input is normalised already.
        architecture: layer sizes.
        seed: seeds every weight initialiser; same seed, same weights.
        zero_deep_filter: start the filter's last layer at zero (training: the untrained
            model is a gain-only model); False draws it at random like the other layers
            (tests and benchmarks, so that the filter does something).
        max_parameters: refuse a model with more weights (None: no bound).

    Raises:
        ExportError: the metadata is not that of a phase-aware band model, or the model is
            over ``max_parameters``.
    """
    _require_tensorflow_backend()
    spectrum, deep = metadata.features.spectrum, metadata.mask.deep_filter
    if spectrum is None or deep is None or metadata.mask.band_edges_hz is None:
        raise ExportError(
            f"model {metadata.name!r}: a deep-filter model needs band gains, a spectrum input and a deep filter in "
            "its metadata; make it with model_export.contract.deep_filter_model_metadata"
        )
    if metadata.mask.max_gain != 1.0 or deep.max_coef != 1.0:
        raise ExportError("the deep-filter model ends in a sigmoid (gains) and a tanh (coefficients); max_gain and "
                          "deep_filter.max_coef must be 1")
    if not metadata.states:
        raise ExportError(f"model {metadata.name!r}: a deep-filter model needs at least one GRU state")
    arch = architecture
    init = keras.initializers
    k, m = metadata.feature_size, metadata.mask_size
    normalise = FeatureNormalization(feature_mean, feature_scale, name="normalise")
    band_dense = keras.layers.Dense(
        arch.band_units, activation="relu", kernel_initializer=init.GlorotUniform(seed=seed + 12), name="band_embed"
    )
    spectrum_patches = FrequencyPatches(
        arch.spectrum_channels, arch.spectrum_patch, seed=seed + 13, name="spectrum_patches"
    )
    spectrum_dense = keras.layers.Dense(
        arch.spectrum_units,
        activation="relu",
        kernel_initializer=init.GlorotUniform(seed=seed + 15),
        name="spectrum_embed",
    )
    cells = gru_cells(metadata, seed)
    gains = keras.layers.Dense(m, activation="sigmoid", kernel_initializer=init.GlorotUniform(seed=seed + 3),
                               name="gains")
    filter_hidden = keras.layers.Dense(
        arch.filter_units,
        activation="relu",
        kernel_initializer=init.GlorotUniform(seed=seed + 16),
        name="filter_hidden",
    )
    last_init = init.Zeros() if zero_deep_filter else init.GlorotUniform(seed=seed + 17)
    filter_out = keras.layers.Dense(deep.size, activation="tanh", kernel_initializer=last_init, name="filter_coefs")

    def encode(features: Any, low_band: Any) -> tuple[Any, Any]:
        bands = band_dense(normalise(features))
        spectral = spectrum_dense(spectrum_patches(low_band))
        return ops.concatenate([bands, spectral], axis=-1), spectral

    def decode(hidden: Any, spectral: Any) -> tuple[Any, Any]:
        coefs = filter_out(filter_hidden(ops.concatenate([hidden, spectral], axis=-1)))
        return gains(hidden), coefs

    # The step model: one frame, named tensors as the metadata says.
    features_in = keras.Input(shape=(k,), batch_size=1, name=metadata.features.tensor)
    spectrum_in = keras.Input(shape=(spectrum.size,), batch_size=1, name=spectrum.tensor)
    inputs = {metadata.features.tensor: features_in, spectrum.tensor: spectrum_in}
    state_outputs = {}
    hidden, spectral = encode(features_in, spectrum_in)
    for cell, state in zip(cells, metadata.states):
        state_in = keras.Input(shape=(int(state.shape[-1]),), batch_size=1, name=state.input)
        inputs[state.input] = state_in
        hidden, new_states = cell(hidden, [state_in])
        state_outputs[state.output] = new_states[0] if isinstance(new_states, (list, tuple)) else new_states
    mask, coefs = decode(hidden, spectral)
    outputs = {metadata.mask.tensor: mask, deep.tensor: coefs, **state_outputs}
    step = keras.Model(inputs=inputs, outputs=outputs, name=f"{metadata.name}-step")

    # The sequence model: [B, T, features + spectrum] -> [B, T, mask + coefficients], from zero states.
    frames = keras.Input(shape=(None, metadata.input_size), name="inputs")
    hidden, spectral = encode(frames[..., :k], frames[..., k:])
    for index, cell in enumerate(cells):
        hidden = keras.layers.RNN(cell, return_sequences=True, name=f"recurrence_{index}")(hidden)
    mask, coefs = decode(hidden, spectral)
    sequence = keras.Model(frames, ops.concatenate([mask, coefs], axis=-1), name=f"{metadata.name}-sequence")

    models = StreamingModels(step, sequence, replace(metadata, parameters=int(step.count_params())))
    models.check()
    if max_parameters is not None and models.parameters > max_parameters:
        raise ExportError(
            f"model {metadata.name!r} has {models.parameters} parameters, over the budget of {max_parameters}; "
            "use fewer GRU units or narrower layers"
        )
    log.debug("built %s: %d parameters", metadata.name, models.parameters)
    return models


def deep_filter_reference_models(
    sample_rate: int = 16000, seed: int = 0, gru_units: Sequence[int] = (128, 128), lookahead_frames: int = 1
) -> StreamingModels:
    """A randomly initialised phase-aware model with the standard contract (tests and benchmarks).

    Its filter is drawn at random (not zero), so the engine's deep-filter path does real
    work; the feature normalisation is measured on synthetic clips.
    """
    from model_export import contract, signals

    states = tuple(contract.state_spec(f"gru{i + 1}_state", units) for i, units in enumerate(gru_units))
    training = {"kind": "reference", "reference": REFERENCE_KIND, "seed": seed}
    metadata = contract.deep_filter_model_metadata(
        REFERENCE_NAME, "1", sample_rate, states, training, lookahead_frames=lookahead_frames
    )
    inputs = signals.synthetic_inputs(metadata, 4.0, range(1000, 1004))
    mean, scale = signals.feature_statistics([clip[:, : metadata.feature_size] for clip in inputs])
    return build_deep_filter_models(metadata, mean, scale, seed=seed, zero_deep_filter=False)

