"""Keras streaming mask models: one recurrent cell, a step model and a sequence model.

A quietmic model is built around one recurrent *cell* with explicit state. The
same layers (same weight objects) form two Keras models:

* the **step** model runs one frame: inputs ``{features: [1, K], <state>: [1, U]}``,
  outputs ``{mask: [1, M], <state>_out: [1, U]}``; names come from the metadata.
  It is what gets converted to TFLite (a single cell call, no WHILE loop, which
  int8 calibration cannot handle);
* the **sequence** model runs a whole clip: ``features [B, T, K] -> mask [B, T, M]``
  from a zero state, through ``keras.layers.RNN(cell, return_sequences=True)``.
  Training fits it; the exporter uses it as the parity reference.

Feature normalisation (mean and scale constants) is a layer of both models, so
the runtime feeds the raw features of :mod:`realtime.dsp`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np
from keras import ops

from model_export import contract
from model_export.errors import ExportError
from realtime.metadata import ModelMetadata

log = logging.getLogger(__name__)

SERIALIZATION_PACKAGE = "quietmic"
"""Package name under which the custom layers are registered with Keras."""

GRU_STATE = "gru_state"
"""Name of the GRU state input (its output is ``gru_state_out``)."""

IDENTITY_STATE = "level_state"
"""Name of the identity model's state input (its output is ``level_state_out``)."""

IDENTITY_STATE_SIZE = 1
"""Size of the identity model's state: one smoothed mean feature level (log10 power)."""

IDENTITY_LEVEL_DECAY = 0.9
"""Per-frame decay of the identity model's smoothed level (a 10-frame, 100 ms time constant)."""


def _require_tensorflow_backend() -> None:
    if keras.backend.backend() != "tensorflow":
        raise ExportError(
            f"model export needs the Keras TensorFlow backend, but Keras uses {keras.backend.backend()!r}; "
            "set KERAS_BACKEND=tensorflow"
        )


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class FeatureNormalization(keras.layers.Layer):
    """``(features - mean) * scale`` with constant per-feature ``mean`` and ``scale`` (log10 units)."""

    def __init__(self, mean: Sequence[float], scale: Sequence[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._mean_init = np.asarray(mean, dtype=np.float32)
        self._scale_init = np.asarray(scale, dtype=np.float32)
        if self._mean_init.shape != self._scale_init.shape or self._mean_init.ndim != 1:
            raise ExportError("feature normalisation needs mean and scale vectors of the same length")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        size = self._mean_init.shape[0]
        if input_shape[-1] != size:
            raise ExportError(f"feature normalisation has {size} constants but the features have {input_shape[-1]}")
        self.mean = self.add_weight(
            shape=(size,), initializer=keras.initializers.Constant(self._mean_init), trainable=False, name="mean"
        )
        self.scale = self.add_weight(
            shape=(size,), initializer=keras.initializers.Constant(self._scale_init), trainable=False, name="scale"
        )

    def call(self, features: Any) -> Any:
        return (features - self.mean) * self.scale

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self._mean_init.tolist(), "scale": self._scale_init.tolist()}


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class IdentityCell(keras.layers.Layer):
    """A recurrent cell whose output is a mask of exactly 1.0 in every band.

    Its state is a smoothed mean feature level (log10 power), decaying by
    :data:`IDENTITY_LEVEL_DECAY` per frame. The state does not affect the mask,
    but it is a genuine state input and output, so the identity model exercises
    the runtime's state feedback like any other model.
    """

    def __init__(self, mask_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_size = int(mask_size)
        self.state_size = IDENTITY_STATE_SIZE
        self.output_size = self.mask_size

    def call(self, inputs: Any, states: Any) -> tuple[Any, list[Any]]:
        state = states[0] if isinstance(states, (list, tuple)) else states
        level = ops.mean(inputs, axis=-1, keepdims=True)
        new_state = IDENTITY_LEVEL_DECAY * state + (1.0 - IDENTITY_LEVEL_DECAY) * level
        mask = ops.ones((ops.shape(inputs)[0], self.mask_size), dtype=inputs.dtype)
        return mask, [new_state]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mask_size": self.mask_size}


@dataclass
class StreamingModels:
    """A streaming mask model in its two forms (shared weights) and its contract.

    Attributes:
        step: one frame; dict inputs and outputs named as in ``metadata``.
        sequence: ``features [B, T, K] -> mask [B, T, M]`` from a zero state.
        metadata: the contract; ``quantization`` and the export figures are
            filled in by the exporter.
    """

    step: keras.Model
    sequence: keras.Model
    metadata: ModelMetadata

    @property
    def parameters(self) -> int:
        """Number of weights (trainable and constant) of the model."""
        return int(self.step.count_params())

    def predict_sequence(self, inputs: np.ndarray) -> np.ndarray:
        """The sequence model's outputs ``[B, T, output_size]`` (float32 numpy) for input frames
        ``[B, T, input_size]`` (:func:`model_export.signals.spectra_inputs`), from zero states.

        Phase-aware sequence models take the concatenated features and spectrum and return
        the mask and the deep-filter coefficients concatenated, so this is the same call for
        every model.
        """
        return np.asarray(self.sequence(np.asarray(inputs, dtype=np.float32), training=False))

    def check(self) -> None:
        """Raise :class:`ExportError` unless the step model's tensors match the metadata."""
        meta = self.metadata
        want_in = contract.input_shapes(meta)
        want_out = contract.output_shapes(meta)
        have_in = {t.name: tuple(t.shape) for t in self.step.inputs}
        probe = {name: np.zeros(shape, dtype=np.float32) for name, shape in want_in.items()}
        outputs = self.step(probe) if have_in == want_in else {}
        have_out = {name: tuple(value.shape) for name, value in dict(outputs).items()}
        if have_in != want_in or have_out != want_out:
            raise ExportError(
                f"model {meta.name!r}: the step model's inputs {have_in} and outputs {have_out} do not match "
                f"the metadata ({want_in} -> {want_out}); build it with assemble_streaming_models"
            )


def assemble_streaming_models(
    metadata: ModelMetadata,
    cells: keras.layers.Layer | Sequence[keras.layers.Layer],
    encoder: Sequence[keras.layers.Layer] = (),
    decoder: Sequence[keras.layers.Layer] = (),
) -> StreamingModels:
    """Wire ``encoder -> cells (stacked) -> decoder`` into a step and a sequence model sharing the layers.

    Args:
        metadata: contract with one state per cell, in order, of shape ``[1, cell.state_size]``.
        cells: one Keras RNN cell or a stack of them (``call(inputs, states) ->
            (output, [new_state])``, ``state_size`` an int), e.g. ``keras.layers.GRUCell``.
        encoder: framewise layers applied to the features before the cells.
        decoder: framewise layers turning the last cell's output into the mask (``M`` values).

    The metadata's ``parameters`` is set to the Keras parameter count.
    """
    _require_tensorflow_backend()
    stack = [cells] if isinstance(cells, keras.layers.Layer) else list(cells)
    if len(metadata.states) != len(stack):
        raise ExportError(
            f"model {metadata.name!r}: {len(stack)} recurrent cell(s) need as many states, "
            f"the metadata lists {len(metadata.states)}"
        )
    for cell, state in zip(stack, metadata.states):
        if tuple(state.shape) != (1, int(cell.state_size)):
            raise ExportError(
                f"model {metadata.name!r}: the metadata state {state.input!r} has shape {list(state.shape)}, "
                f"but its cell's state size is {cell.state_size}"
            )
    k = metadata.feature_size

    def framewise(x: Any, layers: Sequence[keras.layers.Layer]) -> Any:
        for layer in layers:
            x = layer(x)
        return x

    features = keras.Input(shape=(k,), batch_size=1, name=metadata.features.tensor)
    inputs = {metadata.features.tensor: features}
    outputs = {}
    hidden = framewise(features, encoder)
    for cell, state in zip(stack, metadata.states):
        state_in = keras.Input(shape=(int(cell.state_size),), batch_size=1, name=state.input)
        inputs[state.input] = state_in
        hidden, new_states = cell(hidden, [state_in])
        outputs[state.output] = new_states[0] if isinstance(new_states, (list, tuple)) else new_states
    outputs = {metadata.mask.tensor: framewise(hidden, decoder), **outputs}
    step = keras.Model(inputs=inputs, outputs=outputs, name=f"{metadata.name}-step")

    sequence_in = keras.Input(shape=(None, k), name=metadata.features.tensor)
    hidden = framewise(sequence_in, encoder)
    for index, cell in enumerate(stack):
        name = "recurrence" if len(stack) == 1 else f"recurrence_{index}"
        hidden = keras.layers.RNN(cell, return_sequences=True, name=name)(hidden)
    sequence = keras.Model(sequence_in, framewise(hidden, decoder), name=f"{metadata.name}-sequence")

    models = StreamingModels(step, sequence, replace(metadata, parameters=int(step.count_params())))
    models.check()
    log.debug("built %s: %d parameters", metadata.name, models.parameters)
    return models



def gru_cells(metadata: ModelMetadata, seed: int) -> list[keras.layers.GRUCell]:
    """One seeded GRU cell per state of ``metadata`` (units: the state's size), named ``gru``, ``gru_1``, ...

    The names are the checkpoints' weight names: the mask models of both families share them.
    """
    init = keras.initializers
    return [
        keras.layers.GRUCell(
            int(state.shape[-1]),
            kernel_initializer=init.GlorotUniform(seed=seed + 1 + 10 * layer),
            recurrent_initializer=init.Orthogonal(seed=seed + 2 + 10 * layer),
            seed=seed + 10 * layer,
            name="gru" if layer == 0 else f"gru_{layer}",
        )
        for layer, state in enumerate(metadata.states)
    ]

def build_gru_mask_models(
    metadata: ModelMetadata,
    feature_mean: Sequence[float],
    feature_scale: Sequence[float],
    hidden_units: int = 128,
    seed: int = 0,
) -> StreamingModels:
    """``normalise -> Dense(hidden, relu) -> GRUCell(U1) -> ... -> GRUCell(Un) -> Dense(M, sigmoid)``, seeded.

    Args:
        metadata: contract with one state ``[1, U]`` per GRU layer (U = its units),
            e.g. from :func:`model_export.contract.band_model_metadata` with
            ``contract.state_spec(GRU_STATE, U)``.
        feature_mean, feature_scale: normalisation constants (``K`` values, log10
            units and 1 / log10 units), e.g. from :func:`model_export.signals.feature_statistics`.
        hidden_units: width of the input projection.
        seed: seeds every weight initialiser; same seed, same weights.

    The mask is a sigmoid, so gains lie in [0, 1] (``mask.max_gain`` = 1).
    """
    if metadata.mask.max_gain != 1.0:
        raise ExportError("the GRU mask model ends in a sigmoid; its metadata must say mask.max_gain = 1")
    if not metadata.states:
        raise ExportError(f"model {metadata.name!r}: a GRU mask model needs at least one state")
    init = keras.initializers
    encoder = [
        FeatureNormalization(feature_mean, feature_scale, name="normalise"),
        keras.layers.Dense(
            hidden_units, activation="relu", kernel_initializer=init.GlorotUniform(seed=seed), name="project"
        ),
    ]
    cells = gru_cells(metadata, seed)
    decoder = [
        keras.layers.Dense(
            metadata.mask_size, activation="sigmoid", kernel_initializer=init.GlorotUniform(seed=seed + 3), name="gains"
        )
    ]
    return assemble_streaming_models(metadata, cells, encoder, decoder)


def build_identity_models(metadata: ModelMetadata) -> StreamingModels:
    """The identity model: mask 1.0 in every band, one small genuine state (see :class:`IdentityCell`)."""
    return assemble_streaming_models(metadata, IdentityCell(metadata.mask_size, name="identity"))
