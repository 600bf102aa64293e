"""Running a quietmic mask model (TFLite) one frame at a time.

:class:`MaskModel` loads a ``.tflite`` file, reads and validates its metadata
(:mod:`realtime.metadata`), checks that the tensors the metadata names exist
with the stated shapes, and then runs one frame per :meth:`MaskModel.step`,
feeding the recurrent states back explicitly (as DTLN's TFLite path does).
Tensors are looked up by their signature names, never by position.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from realtime.errors import ModelError
from realtime.metadata import ModelMetadata, load_metadata

log = logging.getLogger(__name__)

DEFAULT_THREADS = 1
"""Interpreter threads: one, since a frame is far too small to split across cores."""


def read_model_bytes(path: str | Path) -> bytes:
    """The bytes of a model file, or a :class:`ModelError` saying what is wrong."""
    model_path = Path(path)
    if not model_path.exists():
        raise ModelError(f"model file {model_path} does not exist; check the path or pass --model")
    if model_path.is_dir():
        raise ModelError(f"model path {model_path} is a directory; pass the .tflite file inside it")
    try:
        return model_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {model_path}: {exc.strerror}") from None


class MaskModel:
    """A streaming mask model: features of one frame in, one mask out, states kept inside.

    Args:
        model: path of a ``.tflite`` file, or its bytes.
        num_threads: interpreter threads.
    """

    def __init__(self, model: str | Path | bytes, num_threads: int = DEFAULT_THREADS) -> None:
        if isinstance(model, (bytes, bytearray)):
            source, data = "model", bytes(model)
        else:
            source, data = str(model), read_model_bytes(model)
        self.source = source
        self.metadata: ModelMetadata = load_metadata(data, source)
        try:
            self._interpreter = Interpreter(model_content=data, num_threads=num_threads)
            self._interpreter.allocate_tensors()
            signatures = self._interpreter.get_signature_list()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{source}: TensorFlow Lite cannot load this model: {exc}") from None
        if len(signatures) != 1:
            raise ModelError(f"{source}: expected one signature in the model, found {sorted(signatures)}")
        runner = self._interpreter.get_signature_runner(next(iter(signatures)))
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()
        meta = self.metadata
        self._features_index = self._tensor_index(inputs, meta.features.tensor, (1, meta.feature_size), "input")
        self._mask_index = self._tensor_index(outputs, meta.mask.tensor, (1, meta.mask_size), "output")
        self._state_pairs: list[tuple[int, int]] = []
        self._initial_states: list[np.ndarray] = []
        for state in meta.states:
            in_index = self._tensor_index(inputs, state.input, state.shape, "input")
            out_index = self._tensor_index(outputs, state.output, state.shape, "output")
            self._state_pairs.append((in_index, out_index))
            self._initial_states.append(np.zeros(state.shape, dtype=np.float32))
        expected_inputs = {meta.features.tensor, *(s.input for s in meta.states)}
        if set(inputs) != expected_inputs:
            raise ModelError(
                f"{source}: inconsistent quietmic metadata: the model's inputs are {sorted(inputs)} "
                f"but the metadata describes {sorted(expected_inputs)}"
            )
        self._states = [s.copy() for s in self._initial_states]
        self._features = np.zeros((1, meta.feature_size), dtype=np.float32)
        self.parameters = meta.parameters

    def _tensor_index(self, details: dict, name: str, shape: tuple[int, ...], kind: str) -> int:
        if name not in details:
            raise ModelError(
                f"{self.source}: inconsistent quietmic metadata: the model has no {kind} tensor "
                f"named {name!r} (it has {sorted(details)})"
            )
        detail = details[name]
        actual = tuple(int(d) for d in detail["shape"])
        if actual != tuple(shape):
            raise ModelError(
                f"{self.source}: inconsistent quietmic metadata: {kind} {name!r} has shape "
                f"{list(actual)}, the metadata says {list(shape)}"
            )
        if detail["dtype"] != np.float32:
            raise ModelError(
                f"{self.source}: {kind} {name!r} is {np.dtype(detail['dtype']).name}; quietmic needs "
                "float32 model inputs and outputs (export with float I/O)"
            )
        return int(detail["index"])

    def step(self, features: np.ndarray) -> np.ndarray:
        """Run one frame: ``features`` (``feature_size`` floats) -> mask (``mask_size`` float32).

        The recurrent states are fed back for the next call.
        """
        interpreter = self._interpreter
        self._features[0] = features
        interpreter.set_tensor(self._features_index, self._features)
        for (in_index, _), state in zip(self._state_pairs, self._states):
            interpreter.set_tensor(in_index, state)
        interpreter.invoke()
        for i, (_, out_index) in enumerate(self._state_pairs):
            self._states[i] = interpreter.get_tensor(out_index)
        return interpreter.get_tensor(self._mask_index)[0]

    def reset(self) -> None:
        """Clear the recurrent states (as at load time)."""
        self._states = [s.copy() for s in self._initial_states]

    def states_finite(self) -> bool:
        """Whether every recurrent state value is finite."""
        return all(bool(np.isfinite(s).all()) for s in self._states)
