"""Converting a Keras step model to TFLite: float32, int8 weights, or full-integer int8; float32 I/O.

The step model is traced as a ``tf.function`` whose arguments are
``TensorSpec``s named like the metadata's input tensors and which returns a dict
keyed by the metadata's output tensors, so the TFLite signature carries exactly
those names. The converted file is checked for them (by name, never position)
before it is returned: a converter that dropped an unused state input is caught
here.

``int8`` (the default) stores the weights as int8 and computes in float
(dynamic-range post-training quantization): a quarter of the float32 size,
about as fast, and close to the float model. ``int8-full`` quantizes the
activations as well, calibrated on a representative dataset given as dicts
keyed by the signature's input names (its states come from running the Keras
step model over calibration sequences with the states fed back, so each sample
holds a frame's features with the state that precedes it). On the trained
default GRU model, int8 activations cost a mask deviation of up to 0.34 (mean
0.028) against 0.058 (mean 0.004) for int8 weights alone, and were no faster.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from model_export.contract import input_shapes, output_shapes
from model_export.errors import ExportError
from model_export.keras_models import StreamingModels
from realtime.metadata import QUANTIZATIONS, ModelMetadata

log = logging.getLogger(__name__)

INT8 = "int8"
INT8_FULL = "int8-full"
FLOAT32 = "float32"

MAX_CALIBRATION_SAMPLES = 2000
"""Most frames fed to int8 calibration; longer calibration sets are subsampled evenly."""

SIGNATURE_KEY = "serving_default"
"""Name of the single signature of an exported model."""


def input_names(metadata: ModelMetadata) -> list[str]:
    """Signature input names (:func:`input_shapes`)."""
    return list(input_shapes(metadata))


def output_names(metadata: ModelMetadata) -> list[str]:
    """Signature output names (:func:`output_shapes`)."""
    return list(output_shapes(metadata))


def frame_inputs(metadata: ModelMetadata, frame: np.ndarray) -> dict[str, np.ndarray]:
    """One input frame (``input_size`` values: features, then spectrum) as ``{tensor: [1, n]}`` float32."""
    frame = np.asarray(frame, dtype=np.float32)
    inputs = {metadata.features.tensor: frame[None, : metadata.feature_size]}
    if metadata.features.spectrum is not None:
        inputs[metadata.features.spectrum.tensor] = frame[None, metadata.feature_size : metadata.input_size]
    return inputs


def frame_outputs(metadata: ModelMetadata, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """A step's outputs as one ``output_size`` vector: the mask, then the deep filter (if any)."""
    parts = [np.asarray(outputs[metadata.mask.tensor])[0]]
    if metadata.mask.deep_filter is not None:
        parts.append(np.asarray(outputs[metadata.mask.deep_filter.tensor])[0])
    return np.concatenate(parts)


def step_function(models: StreamingModels) -> tf.types.experimental.ConcreteFunction:
    """The step model as a concrete function with named inputs and a dict of named outputs."""
    meta = models.metadata
    specs = [tf.TensorSpec(shape, tf.float32, name=name) for name, shape in input_shapes(meta).items()]
    names_in, names_out = input_names(meta), output_names(meta)
    step_model = models.step

    @tf.function(input_signature=specs, autograph=False)
    def step(*tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = step_model(dict(zip(names_in, tensors)), training=False)
        return {name: tf.identity(outputs[name], name=name) for name in names_out}

    return step.get_concrete_function()


def run_step_model(
    models: StreamingModels, features: np.ndarray, step: tf.types.experimental.ConcreteFunction | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run the Keras step model frame by frame from zero states, feeding the states back.

    Args:
        features: ``[frames, input_size]`` float32 input frames (the features, then the
            spectrum for phase-aware models; :func:`model_export.signals.spectra_inputs`).
        step: the traced step function (traced here if not given).

    Returns:
        The outputs ``[frames, output_size]`` (the mask, then the deep filter if any) and,
        per state, the state *entering* each frame (``[frames, *shape]``), as calibration
        needs them.
    """
    meta = models.metadata
    step = step or step_function(models)
    states = [np.zeros(s.shape, dtype=np.float32) for s in meta.states]
    masks = np.zeros((len(features), meta.output_size), dtype=np.float32)
    entering: list[list[np.ndarray]] = [[] for _ in meta.states]
    for t, frame in enumerate(np.asarray(features, dtype=np.float32)):
        for i, state in enumerate(states):
            entering[i].append(state)
        inputs = frame_inputs(meta, frame)
        outputs = step(*(tf.constant(x) for x in inputs.values()), *(tf.constant(state) for state in states))
        masks[t] = frame_outputs(meta, {name: value.numpy() for name, value in outputs.items()})
        states = [outputs[s.output].numpy() for s in meta.states]
    return masks, [np.stack(e) if e else np.zeros((0, *s.shape), np.float32) for e, s in zip(entering, meta.states)]


def representative_dataset(
    models: StreamingModels,
    calibration_features: Sequence[np.ndarray],
    max_samples: int = MAX_CALIBRATION_SAMPLES,
) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """The int8 calibration set: ``{input name: [1, ...] float32}`` per frame, states included.

    The states are those the Keras step model reaches on each calibration
    sequence (from zero), so the quantization ranges cover real state values.
    """
    meta = models.metadata
    step = step_function(models)
    samples: list[dict[str, np.ndarray]] = []
    for features in calibration_features:
        _, states = run_step_model(models, features, step)
        for t in range(len(features)):
            sample = frame_inputs(meta, features[t])
            sample.update({s.input: states[i][t] for i, s in enumerate(meta.states)})
            samples.append(sample)
    if not samples:
        raise ExportError("int8 export needs calibration features; pass at least one non-empty sequence")
    if len(samples) > max_samples:
        keep = np.linspace(0, len(samples) - 1, max_samples).round().astype(int)
        samples = [samples[i] for i in keep]
    log.debug("calibration set: %d frames", len(samples))

    def generate() -> Iterator[dict[str, np.ndarray]]:
        yield from samples

    return generate


def convert_step_model(
    models: StreamingModels,
    quantization: str,
    calibration_features: Sequence[np.ndarray] = (),
) -> bytes:
    """The step model as a ``.tflite`` flatbuffer (without quietmic metadata).

    Args:
        quantization: ``"float32"`` (no quantization), ``"int8"`` (int8 weights,
            float activations) or ``"int8-full"`` (full-integer post-training
            quantization, builtin int8 ops only); float32 inputs and outputs always.
        calibration_features: ``[frames, input_size]`` sequences for ``int8-full`` calibration.

    Raises:
        ExportError: unknown quantization, conversion failure, or a converted
            signature whose tensor names, shapes or types differ from the metadata.
    """
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    step = step_function(models)
    # Track the backing tf.Variables, so the converter freezes the weights into constants.
    holder = tf.Module()
    holder.weights = [w.value for w in models.step.weights]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([step], holder)
    if quantization == INT8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no dataset: weights only
    elif quantization == INT8_FULL:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(models, calibration_features)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    try:
        with warnings.catch_warnings():
            # int8 calibration runs TensorFlow's own, deprecated tf.lite.Interpreter internally.
            warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
            model_bytes = bytes(converter.convert())
    except Exception as exc:  # the converter raises many unrelated types
        raise ExportError(f"TFLite conversion ({quantization}) of {models.metadata.name!r} failed: {exc}") from exc
    check_signature(model_bytes, models.metadata)
    return model_bytes


def check_signature(model_bytes: bytes, metadata: ModelMetadata) -> None:
    """Raise :class:`ExportError` unless the file's signature has the metadata's tensors, float32."""
    try:
        interpreter = Interpreter(model_content=model_bytes)
        signatures = interpreter.get_signature_list()
    except (ValueError, RuntimeError) as exc:
        raise ExportError(f"the converted model cannot be loaded by TFLite: {exc}") from None
    if list(signatures) != [SIGNATURE_KEY]:
        raise ExportError(
            f"the converted model should have one signature {SIGNATURE_KEY!r}, it has {sorted(signatures)}"
        )
    runner = interpreter.get_signature_runner(SIGNATURE_KEY)
    expected = {"input": input_shapes(metadata), "output": output_shapes(metadata)}
    for kind, details in (("input", runner.get_input_details()), ("output", runner.get_output_details())):
        have = {name: tuple(int(d) for d in detail["shape"]) for name, detail in details.items()}
        if have != expected[kind]:
            raise ExportError(
                f"the converted model's {kind}s are {have}, the metadata needs {expected[kind]}; "
                "the converter dropped or renamed a tensor (is every state input used?)"
            )
        for name, detail in details.items():
            if detail["dtype"] != np.float32:
                dtype = np.dtype(detail["dtype"]).name
                raise ExportError(f"the converted model's {kind} {name!r} is {dtype}, not float32")
