"""The model contract: the metadata record every quietmic model file carries.

A quietmic model is a ``.tflite`` file whose flatbuffer holds, besides the
network, a metadata entry named :data:`METADATA_NAME` with a UTF-8 JSON record
(:class:`ModelMetadata`). It says how to frame the audio, which features go in,
what the mask means, which tensors carry the recurrent state, and the latency.
:mod:`model_export` writes it; the runtime reads it with
:func:`read_tflite_metadata` (a small flatbuffer reader, so the runtime needs
neither TensorFlow nor the flatbuffers package) and refuses a file whose record
is missing or inconsistent.

Example record::

    {"format": "quietmic-model", "format_version": 1,
     "name": "random-gru", "model_version": "1", "sample_rate": 16000,
     "window_length": 320, "hop_length": 160, "window": "sqrt_hann",
     "lookahead_frames": 0, "algorithmic_latency_samples": 160,
     "algorithmic_latency_ms": 10.0,
     "features": {"type": "log_power_bands", "tensor": "features",
                  "band_edges_hz": [0.0, 75.0, ...]},
     "mask": {"type": "band_gain", "tensor": "mask", "max_gain": 1.0,
              "band_edges_hz": [0.0, 75.0, ...]},
     "states": [{"input": "gru_state", "output": "gru_state_out", "shape": [1, 96]}],
     "quantization": "int8", "parameters": 98304,
     "training": {"command": "...", "seed": 0}}
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from realtime import dsp
from realtime.errors import ModelError

METADATA_NAME = "quietmic.metadata"
"""Name of the flatbuffer metadata entry holding the JSON record."""

FORMAT = "quietmic-model"
FORMAT_VERSION = 1
QUANTIZATIONS = ("int8", "int8-full", "float32")
"""``int8``: int8 weights, float activations and I/O; ``int8-full``: int8 activations too; ``float32``."""


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state: the input tensor it is fed through, the output it comes back on."""

    input: str
    output: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class FeatureSpec:
    """Model input features (see :mod:`realtime.dsp` for the types)."""

    type: str
    tensor: str
    band_edges_hz: tuple[float, ...] | None = None


@dataclass(frozen=True)
class MaskSpec:
    """Model output mask: real gains per band or per bin, in ``[0, max_gain]``."""

    type: str
    tensor: str
    max_gain: float = 1.0
    band_edges_hz: tuple[float, ...] | None = None


@dataclass(frozen=True)
class ModelMetadata:
    """Everything the runtime needs to know about a model, in one record."""

    name: str
    model_version: str
    sample_rate: int
    window_length: int
    hop_length: int
    window: str
    features: FeatureSpec
    mask: MaskSpec
    states: tuple[StateSpec, ...]
    quantization: str
    lookahead_frames: int = 0
    parameters: int = 0
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def framing(self) -> dsp.Framing:
        """The STFT framing at the model's own sample rate."""
        return dsp.Framing(self.sample_rate, self.window_length, self.hop_length, self.window)

    @property
    def algorithmic_latency_samples(self) -> int:
        """Framing delay plus lookahead, in samples at the model's rate."""
        return self.window_length - self.hop_length + self.lookahead_frames * self.hop_length

    @property
    def algorithmic_latency_ms(self) -> float:
        """:attr:`algorithmic_latency_samples` in milliseconds."""
        return 1000.0 * self.algorithmic_latency_samples / self.sample_rate

    @property
    def feature_size(self) -> int:
        """Length of the feature vector fed per frame."""
        if self.features.type == dsp.FEATURE_LOG_POWER_BANDS:
            return len(self.features.band_edges_hz or ()) - 1
        return self.framing.n_bins

    @property
    def mask_size(self) -> int:
        """Length of the mask vector returned per frame."""
        if self.mask.type == dsp.MASK_BAND_GAIN:
            return len(self.mask.band_edges_hz or ()) - 1
        return self.framing.n_bins

    def to_json(self) -> str:
        """The record as JSON text, with the derived latency fields included."""
        record = asdict(self)
        record = {"format": FORMAT, "format_version": FORMAT_VERSION, **record}
        record["algorithmic_latency_samples"] = self.algorithmic_latency_samples
        record["algorithmic_latency_ms"] = self.algorithmic_latency_ms
        return json.dumps(record, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "model") -> ModelMetadata:
        """Parse and validate a record; raises :class:`ModelError` naming the bad field."""
        try:
            record = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{source}: quietmic metadata is not valid JSON ({exc})") from None
        return _parse_record(record, source)

    def validate(self, source: str = "model") -> None:
        """Raise :class:`ModelError` if the record contradicts itself."""
        _check(self.sample_rate > 0, source, "sample_rate must be positive")
        _check(self.window in dsp.WINDOWS, source, f"window must be one of {dsp.WINDOWS}")
        _check(
            0 < self.hop_length < self.window_length,
            source,
            "hop_length must be positive and shorter than window_length",
        )
        try:
            dsp.synthesis_window(dsp.analysis_window(self.window, self.window_length), self.hop_length)
        except ValueError as exc:
            raise ModelError(f"{source}: {exc}") from None
        _check(self.lookahead_frames >= 0, source, "lookahead_frames must be >= 0")
        _check(self.quantization in QUANTIZATIONS, source, f"quantization must be one of {QUANTIZATIONS}")
        _check(self.features.type in dsp.FEATURE_TYPES, source, f"features.type must be one of {dsp.FEATURE_TYPES}")
        _check(self.mask.type in dsp.MASK_TYPES, source, f"mask.type must be one of {dsp.MASK_TYPES}")
        _check(self.mask.max_gain > 0 and math.isfinite(self.mask.max_gain), source, "mask.max_gain must be > 0")
        framing = self.framing
        for what, spec_type, edges, needs in (
            ("features", self.features.type, self.features.band_edges_hz, dsp.FEATURE_LOG_POWER_BANDS),
            ("mask", self.mask.type, self.mask.band_edges_hz, dsp.MASK_BAND_GAIN),
        ):
            if spec_type != needs:
                continue
            _check(edges is not None, source, f"{what}.band_edges_hz is required for {spec_type}")
            assert edges is not None
            _check(edges[-1] <= self.sample_rate / 2, source, f"{what}.band_edges_hz go above Nyquist")
            try:
                dsp.band_pooling_matrix(list(edges), framing)
            except ValueError as exc:
                raise ModelError(f"{source}: {what}.band_edges_hz: {exc}") from None
        names = [self.features.tensor] + [s.input for s in self.states]
        outputs = [self.mask.tensor] + [s.output for s in self.states]
        _check(len(set(names)) == len(names), source, "input tensor names must be unique")
        _check(len(set(outputs)) == len(outputs), source, "output tensor names must be unique")
        for state in self.states:
            _check(
                len(state.shape) >= 1 and all(d > 0 for d in state.shape),
                source,
                f"state {state.input!r} has an invalid shape {list(state.shape)}",
            )


def _check(condition: bool, source: str, message: str) -> None:
    if not condition:
        raise ModelError(f"{source}: inconsistent quietmic metadata: {message}")


def _field(record: dict[str, Any], key: str, kind: type | tuple[type, ...], source: str, default: Any = ...) -> Any:
    if key not in record:
        if default is ...:
            raise ModelError(f"{source}: quietmic metadata lacks the field {key!r}")
        return default
    value = record[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ModelError(f"{source}: quietmic metadata field {key!r} has the wrong type")
    if not isinstance(value, kind):
        raise ModelError(f"{source}: quietmic metadata field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _edges(record: dict[str, Any], source: str) -> tuple[float, ...] | None:
    edges = _field(record, "band_edges_hz", (list, type(None)), source, None)
    if edges is None:
        return None
    if not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in edges):
        raise ModelError(f"{source}: quietmic metadata band_edges_hz must be numbers")
    return tuple(float(e) for e in edges)


def _parse_record(record: Any, source: str) -> ModelMetadata:
    if not isinstance(record, dict):
        raise ModelError(f"{source}: quietmic metadata must be a JSON object")
    if record.get("format") != FORMAT:
        raise ModelError(f"{source}: not a quietmic model record (format {record.get('format')!r})")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{source}: metadata format version {version!r} is not supported by this quietmic "
            f"(supports {FORMAT_VERSION}); upgrade quietmic or re-export the model"
        )
    features = _field(record, "features", dict, source)
    mask = _field(record, "mask", dict, source)
    states_raw = _field(record, "states", list, source)
    states = []
    for item in states_raw:
        if not isinstance(item, dict):
            raise ModelError(f"{source}: quietmic metadata states must be objects")
        shape = _field(item, "shape", list, source)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise ModelError(f"{source}: quietmic metadata state shapes must be integers")
        states.append(StateSpec(_field(item, "input", str, source), _field(item, "output", str, source), tuple(shape)))
    meta = ModelMetadata(
        name=_field(record, "name", str, source),
        model_version=_field(record, "model_version", str, source),
        sample_rate=_field(record, "sample_rate", int, source),
        window_length=_field(record, "window_length", int, source),
        hop_length=_field(record, "hop_length", int, source),
        window=_field(record, "window", str, source),
        features=FeatureSpec(
            type=_field(features, "type", str, source),
            tensor=_field(features, "tensor", str, source),
            band_edges_hz=_edges(features, source),
        ),
        mask=MaskSpec(
            type=_field(mask, "type", str, source),
            tensor=_field(mask, "tensor", str, source),
            max_gain=float(_field(mask, "max_gain", (int, float), source, 1.0)),
            band_edges_hz=_edges(mask, source),
        ),
        states=tuple(states),
        quantization=_field(record, "quantization", str, source),
        lookahead_frames=_field(record, "lookahead_frames", int, source, 0),
        parameters=_field(record, "parameters", int, source, 0),
        training=_field(record, "training", dict, source, {}),
    )
    meta.validate(source)
    stated = record.get("algorithmic_latency_samples")
    if stated is not None and stated != meta.algorithmic_latency_samples:
        raise ModelError(
            f"{source}: inconsistent quietmic metadata: algorithmic_latency_samples is {stated} "
            f"but window, hop and lookahead give {meta.algorithmic_latency_samples}"
        )
    return meta


# --- Reading the metadata entry out of a .tflite flatbuffer -------------------------------

_TFLITE_IDENTIFIER = b"TFL3"
_MODEL_BUFFERS_FIELD = 4
_MODEL_METADATA_FIELD = 6
_METADATA_NAME_FIELD = 0
_METADATA_BUFFER_FIELD = 1
_BUFFER_DATA_FIELD = 0
_BUFFER_OFFSET_FIELD = 1
_BUFFER_SIZE_FIELD = 2


class _FlatBuffer:
    """Just enough of the flatbuffers wire format to walk a TFLite model's tables."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.data, pos)[0]

    def field_pos(self, table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", self.data, table)[0]
        vtable_size = struct.unpack_from("<H", self.data, vtable)[0]
        slot = 4 + 2 * index
        if slot >= vtable_size:
            return None
        offset = struct.unpack_from("<H", self.data, vtable + slot)[0]
        return table + offset if offset else None

    def deref(self, pos: int) -> int:
        return pos + self._u32(pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """(start of elements, length) of a vector field; (0, 0) if absent."""
        pos = self.field_pos(table, index)
        if pos is None:
            return 0, 0
        start = self.deref(pos)
        return start + 4, self._u32(start)

    def table_at(self, element_pos: int) -> int:
        return self.deref(element_pos)

    def string(self, table: int, index: int) -> str | None:
        start, length = self.vector(table, index)
        return self.data[start : start + length].decode("utf-8") if start else None

    def scalar(self, table: int, index: int, fmt: str, default: int = 0) -> int:
        pos = self.field_pos(table, index)
        return struct.unpack_from(fmt, self.data, pos)[0] if pos is not None else default


def read_tflite_metadata(data: bytes, source: str = "model") -> dict[str, bytes]:
    """All metadata entries (name -> raw bytes) of a TFLite flatbuffer.

    Raises :class:`ModelError` if ``data`` is not a readable TFLite model.
    """
    if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
        raise ModelError(f"{source}: not a TensorFlow Lite model (no TFL3 identifier); pass a .tflite file")
    fb = _FlatBuffer(data)
    try:
        model = fb.deref(0)
        buffers_start, n_buffers = fb.vector(model, _MODEL_BUFFERS_FIELD)
        meta_start, n_meta = fb.vector(model, _MODEL_METADATA_FIELD)
        entries: dict[str, bytes] = {}
        for i in range(n_meta):
            entry = fb.table_at(meta_start + 4 * i)
            name = fb.string(entry, _METADATA_NAME_FIELD) or ""
            index = fb.scalar(entry, _METADATA_BUFFER_FIELD, "<I")
            if index >= n_buffers:
                raise ModelError(f"{source}: metadata entry {name!r} points past the buffer table; the file is corrupt")
            buffer = fb.table_at(buffers_start + 4 * index)
            start, length = fb.vector(buffer, _BUFFER_DATA_FIELD)
            if start:
                payload = data[start : start + length]
            else:
                offset = fb.scalar(buffer, _BUFFER_OFFSET_FIELD, "<Q")
                size = fb.scalar(buffer, _BUFFER_SIZE_FIELD, "<Q")
                payload = data[offset : offset + size]
            if start + length > len(data):
                raise ModelError(f"{source}: the model file is truncated; re-export or re-download it")
            entries[name] = bytes(payload)
        return entries
    except (struct.error, IndexError, UnicodeDecodeError):
        raise ModelError(f"{source}: the TensorFlow Lite flatbuffer is corrupt or truncated") from None


def load_metadata(model_bytes: bytes, source: str = "model") -> ModelMetadata:
    """The validated quietmic record of a model file's bytes."""
    entries = read_tflite_metadata(model_bytes, source)
    if METADATA_NAME not in entries:
        raise ModelError(
            f"{source}: this .tflite file has no quietmic metadata; export it with "
            "'python -m model_export' so it describes its framing, features and states"
        )
    return ModelMetadata.from_json(entries[METADATA_NAME], source)


def load_metadata_file(path: str | Path) -> ModelMetadata:
    """The validated quietmic record of the model file at ``path``."""
    return load_metadata(Path(path).read_bytes(), str(path))
