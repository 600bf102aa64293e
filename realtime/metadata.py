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

Phase-aware models (format version 2) add a second input and a second output::

     "features": {..., "spectrum": {"type": "low_band_rms", "tensor": "spectrum", "bins": 96}},
     "mask": {..., "deep_filter": {"tensor": "df_coefs", "bins": 96, "order": 3,
                                   "lookahead": 1, "max_coef": 1.0}},

``spectrum`` is the low band's complex spectrum, normalised (:func:`realtime.dsp.low_band_spectrum`),
fed as ``[1, 2 * bins]`` (real and imaginary parts interleaved); ``deep_filter`` is a complex FIR filter over ``order`` frames per
bin for the lowest ``bins`` bins, returned as ``[1, 2 * order * bins]``
(:data:`realtime.dsp.DEEP_FILTER_LAYOUT`), added to the gain-masked spectrum. Records
without them are written as format version 1, exactly as before, so older quietmic
versions keep reading such models and refuse phase-aware ones with "upgrade quietmic".
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from realtime import dsp, sniff
from realtime.errors import ModelError
from realtime.messages import short_repr
from realtime.nesting import bracket_depth

METADATA_NAME = "quietmic.metadata"
"""Name of the flatbuffer metadata entry holding the JSON record."""

FORMAT = "quietmic-model"
FORMAT_VERSION = 2
"""Newest record version this quietmic reads (and writes, for models that need it)."""

BASIC_FORMAT_VERSION = 1
"""Version of records without a spectrum input or deep filter (every model before version 2)."""

SUPPORTED_FORMAT_VERSIONS = (BASIC_FORMAT_VERSION, FORMAT_VERSION)
QUANTIZATIONS = ("int8", "int8-full", "float32")
"""``int8``: int8 weights, float activations and I/O; ``int8-full``: int8 activations too; ``float32``."""

REEXPORT_HINT = "re-export the model with 'python -m model_export'"
"""The fix every metadata error suggests: the exporter writes a consistent record."""

MAX_SAMPLE_RATE = 384_000
"""Highest model sample rate accepted, in Hz."""

MAX_WINDOW_LENGTH = 65_536
"""Longest STFT window accepted, in samples (over a second at 48 kHz): bounds what loading allocates."""

MAX_LOOKAHEAD_FRAMES = 100
"""Most lookahead frames accepted (a second at a 10 ms hop): the engine buffers that many spectra."""

MAX_METADATA_NESTING = 64
"""Deepest JSON nesting accepted in the record (real records nest three levels)."""

MAX_DEEP_FILTER_ORDER = 16
"""Most deep-filter taps accepted (frames the filter spans); real models use 2 to 5."""

V2_FIELDS = {"features": "spectrum", "mask": "deep_filter"}
"""The sections of a record that may hold a format-version-2 field, and its key."""


@dataclass(frozen=True)
class SpectrumSpec:
    """A model input carrying the low band's complex spectrum (:data:`realtime.dsp.SPECTRUM_TYPES`).

    Attributes:
        type: how it is normalised (:data:`realtime.dsp.SPECTRUM_LOW_BAND_RMS`).
        tensor: the input tensor, ``[1, 2 * bins]`` float32 (real and imaginary parts interleaved).
        bins: STFT bins ``0 .. bins - 1`` of the model's framing.
    """

    type: str
    tensor: str
    bins: int

    @property
    def size(self) -> int:
        """Length of the input vector: ``2 * bins``."""
        return 2 * self.bins


@dataclass(frozen=True)
class DeepFilterSpec:
    """A model output of deep-filter coefficients for the low band (:func:`realtime.dsp.apply_deep_filter`).

    Attributes:
        tensor: the output tensor, ``[1, 2 * order * bins]`` float32 (:data:`realtime.dsp.DEEP_FILTER_LAYOUT`).
        bins: the filter shapes STFT bins ``0 .. bins - 1``.
        order: taps (frames) per bin.
        lookahead: taps in the future of the frame shaped; at most the model's
            ``lookahead_frames`` (the filter adds no latency).
        max_coef: the engine clips each coefficient's real and imaginary part to ``[-max_coef, max_coef]``.
    """

    tensor: str
    bins: int
    order: int
    lookahead: int = 0
    max_coef: float = 1.0

    @property
    def size(self) -> int:
        """Length of the output vector: ``2 * order * bins``."""
        return 2 * self.order * self.bins


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
    spectrum: SpectrumSpec | None = None
    """A second input with the low band's complex spectrum (format version 2), or None."""


@dataclass(frozen=True)
class MaskSpec:
    """Model output mask: real gains per band or per bin, in ``[0, max_gain]``, and optionally
    a deep filter for the low band (format version 2)."""

    type: str
    tensor: str
    max_gain: float = 1.0
    band_edges_hz: tuple[float, ...] | None = None
    deep_filter: DeepFilterSpec | None = None
    """A second output with deep-filter coefficients, or None (gains only)."""


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

    @property
    def spectrum_size(self) -> int:
        """Length of the spectrum input per frame (0: the model has none)."""
        return self.features.spectrum.size if self.features.spectrum else 0

    @property
    def deep_filter_size(self) -> int:
        """Length of the deep-filter output per frame (0: the model has none)."""
        return self.mask.deep_filter.size if self.mask.deep_filter else 0

    @property
    def input_size(self) -> int:
        """All inputs of a frame but the states: features, then the spectrum (if any)."""
        return self.feature_size + self.spectrum_size

    @property
    def output_size(self) -> int:
        """All outputs of a frame but the states: the mask, then the deep filter (if any)."""
        return self.mask_size + self.deep_filter_size

    @property
    def format_version(self) -> int:
        """The record version this model needs: 2 with a spectrum input or deep filter, else 1."""
        return FORMAT_VERSION if self.features.spectrum or self.mask.deep_filter else BASIC_FORMAT_VERSION

    def to_json(self) -> str:
        """The record as JSON text, with the derived latency fields included.

        Version-2 fields are left out when absent, so a gain-only model's record is what it
        was before they existed (and older quietmic versions read it).
        """
        record = asdict(self)
        for section, key in V2_FIELDS.items():
            if record[section][key] is None:
                del record[section][key]
        record = {"format": FORMAT, "format_version": self.format_version, **record}
        record["algorithmic_latency_samples"] = self.algorithmic_latency_samples
        record["algorithmic_latency_ms"] = self.algorithmic_latency_ms
        return json.dumps(record, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "model") -> ModelMetadata:
        """Parse and validate a record; raises :class:`ModelError` naming the bad field."""
        if bracket_depth(text) > MAX_METADATA_NESTING:
            raise ModelError(f"{source}: quietmic metadata is nested too deeply to be a model record; {REEXPORT_HINT}")
        try:
            record = json.loads(text)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, or a number of over 4300 digits
            raise ModelError(f"{source}: quietmic metadata is not valid JSON ({exc}); {REEXPORT_HINT}") from None
        return _parse_record(record, source)

    def validate(self, source: str = "model") -> None:
        """Raise :class:`ModelError` if the record contradicts itself."""
        _check(
            0 < self.sample_rate <= MAX_SAMPLE_RATE,
            source,
            f"sample_rate must be between 1 and {MAX_SAMPLE_RATE} Hz (it is {self.sample_rate})",
        )
        _check(self.window in dsp.WINDOWS, source, f"window must be one of {dsp.WINDOWS}")
        _check(
            0 < self.window_length <= MAX_WINDOW_LENGTH,
            source,
            f"window_length must be between 1 and {MAX_WINDOW_LENGTH} samples (it is {self.window_length})",
        )
        _check(
            0 < self.hop_length < self.window_length,
            source,
            f"hop_length must be positive and shorter than window_length (hop {self.hop_length}, "
            f"window {self.window_length} samples)",
        )
        try:
            dsp.synthesis_window(dsp.analysis_window(self.window, self.window_length), self.hop_length)
        except ValueError as exc:
            raise ModelError(f"{source}: inconsistent quietmic metadata: {exc}; {REEXPORT_HINT}") from None
        _check(
            0 <= self.lookahead_frames <= MAX_LOOKAHEAD_FRAMES,
            source,
            f"lookahead_frames must be between 0 and {MAX_LOOKAHEAD_FRAMES} (it is {self.lookahead_frames})",
        )
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
            _check(len(edges) >= 2, source, f"{what}.band_edges_hz needs at least two edges (one band)")
            _check(edges[-1] <= self.sample_rate / 2, source, f"{what}.band_edges_hz go above Nyquist")
            try:
                dsp.band_pooling_matrix(list(edges), framing)
            except ValueError as exc:
                raise ModelError(
                    f"{source}: inconsistent quietmic metadata: {what}.band_edges_hz: {exc}; {REEXPORT_HINT}"
                ) from None
        self._validate_phase_aware(source)
        names = [self.features.tensor] + [s.input for s in self.states]
        outputs = [self.mask.tensor] + [s.output for s in self.states]
        if self.features.spectrum:
            names.append(self.features.spectrum.tensor)
        if self.mask.deep_filter:
            outputs.append(self.mask.deep_filter.tensor)
        _check(len(set(names)) == len(names), source, "input tensor names must be unique")
        _check(len(set(outputs)) == len(outputs), source, "output tensor names must be unique")
        for state in self.states:
            _check(
                len(state.shape) >= 1 and all(d > 0 for d in state.shape),
                source,
                f"state {state.input!r} has an invalid shape {list(state.shape)}",
            )

    def _validate_phase_aware(self, source: str) -> None:
        """Check the spectrum input and the deep filter (format version 2), if present."""
        n_bins = self.framing.n_bins
        spectrum = self.features.spectrum
        if spectrum is not None:
            _check(
                spectrum.type in dsp.SPECTRUM_TYPES, source, f"features.spectrum.type must be one of {dsp.SPECTRUM_TYPES}"
            )
            _check(
                1 <= spectrum.bins <= n_bins,
                source,
                f"features.spectrum.bins must be between 1 and {n_bins} (the framing's bins; it is {spectrum.bins})",
            )
        deep = self.mask.deep_filter
        if deep is None:
            return
        _check(
            1 <= deep.bins <= n_bins,
            source,
            f"mask.deep_filter.bins must be between 1 and {n_bins} (the framing's bins; it is {deep.bins})",
        )
        _check(
            1 <= deep.order <= MAX_DEEP_FILTER_ORDER,
            source,
            f"mask.deep_filter.order must be between 1 and {MAX_DEEP_FILTER_ORDER} taps (it is {deep.order})",
        )
        _check(
            0 <= deep.lookahead <= min(self.lookahead_frames, deep.order - 1),
            source,
            f"mask.deep_filter.lookahead must be between 0 and the smaller of lookahead_frames and order - 1 "
            f"({min(self.lookahead_frames, deep.order - 1)}; it is {deep.lookahead}): a filter tap beyond the "
            "model's lookahead would need audio that has not arrived",
        )
        _check(
            deep.max_coef > 0 and math.isfinite(deep.max_coef), source, "mask.deep_filter.max_coef must be > 0"
        )


def _check(condition: bool, source: str, message: str) -> None:
    """Raise :class:`ModelError` (``source``, ``message`` and the fix) unless ``condition``."""
    if not condition:
        raise ModelError(f"{source}: inconsistent quietmic metadata: {message}; {REEXPORT_HINT}")


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object"}
_NONE_TYPE = type(None)


def _expected(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = [_TYPE_NAMES.get(k, "null" if k is _NONE_TYPE else k.__name__) for k in kinds]
    return " or ".join(dict.fromkeys(names))


def _field(record: dict[str, Any], key: str, kind: type | tuple[type, ...], source: str, default: Any = ...) -> Any:
    """``record[key]`` if it has type ``kind`` (JSON booleans are not numbers), else a :class:`ModelError`."""
    if key not in record:
        if default is ...:
            raise ModelError(f"{source}: quietmic metadata lacks the field {key!r}; {REEXPORT_HINT}")
        return default
    value = record[key]
    if (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))) or not isinstance(
        value, kind
    ):
        got = "a boolean" if isinstance(value, bool) else _expected(type(value))
        raise ModelError(
            f"{source}: quietmic metadata field {key!r} must be {_expected(kind)}, not {got}; {REEXPORT_HINT}"
        )
    return value


def _edges(record: dict[str, Any], source: str) -> tuple[float, ...] | None:
    edges = _field(record, "band_edges_hz", (list, type(None)), source, None)
    if edges is None:
        return None
    numbers = [_finite_float(e) for e in edges]
    if any(n is None for n in numbers):
        raise ModelError(f"{source}: quietmic metadata band_edges_hz must be finite numbers; {REEXPORT_HINT}")
    return tuple(n for n in numbers if n is not None)


def _finite_float(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` if it is not a number (booleans are not) or not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        return None
    return number if math.isfinite(number) else None


def _max_gain(mask: dict[str, Any], source: str) -> float:
    gain = _finite_float(_field(mask, "max_gain", (int, float), source, 1.0))
    if gain is None:
        raise ModelError(f"{source}: quietmic metadata mask.max_gain must be a finite number; {REEXPORT_HINT}")
    return gain


def _finite_number(section: dict[str, Any], key: str, what: str, source: str, default: float) -> float:
    """``section[key]`` (or ``default``) as a finite float, else a :class:`ModelError` naming ``what``."""
    value = _finite_float(_field(section, key, (int, float), source, default))
    if value is None:
        raise ModelError(f"{source}: quietmic metadata {what} must be a finite number; {REEXPORT_HINT}")
    return value


def _spectrum(features: dict[str, Any], source: str) -> SpectrumSpec | None:
    """The ``features.spectrum`` object of a record (format version 2), or None if it has none."""
    raw = _field(features, "spectrum", (dict, type(None)), source, None)
    if raw is None:
        return None
    return SpectrumSpec(
        type=_field(raw, "type", str, source),
        tensor=_field(raw, "tensor", str, source),
        bins=_field(raw, "bins", int, source),
    )


def _deep_filter(mask: dict[str, Any], source: str) -> DeepFilterSpec | None:
    """The ``mask.deep_filter`` object of a record (format version 2), or None if it has none."""
    raw = _field(mask, "deep_filter", (dict, type(None)), source, None)
    if raw is None:
        return None
    return DeepFilterSpec(
        tensor=_field(raw, "tensor", str, source),
        bins=_field(raw, "bins", int, source),
        order=_field(raw, "order", int, source),
        lookahead=_field(raw, "lookahead", int, source, 0),
        max_coef=_finite_number(raw, "max_coef", "mask.deep_filter.max_coef", source, 1.0),
    )


def _parse_record(record: Any, source: str) -> ModelMetadata:
    if not isinstance(record, dict):
        raise ModelError(f"{source}: quietmic metadata must be a JSON object; {REEXPORT_HINT}")
    if record.get("format") != FORMAT:
        raise ModelError(
            f"{source}: not a quietmic model record (format {_short(record.get('format'))}, "
            f"expected {FORMAT!r}); {REEXPORT_HINT}"
        )
    version = record.get("format_version")
    if not (isinstance(version, int) and not isinstance(version, bool)):
        raise ModelError(
            f"{source}: quietmic metadata format_version must be an integer, not {_short(version)}; {REEXPORT_HINT}"
        )
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{source}: metadata format version {version} is newer than this quietmic supports "
            f"({FORMAT_VERSION}); upgrade quietmic, or export the model again with this quietmic's "
            "'python -m model_export'"
        )
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ModelError(
            f"{source}: metadata format version {version} is not supported (this quietmic reads versions "
            f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}); {REEXPORT_HINT}"
        )
    features = _field(record, "features", dict, source)
    mask = _field(record, "mask", dict, source)
    states_raw = _field(record, "states", list, source)
    states = []
    for item in states_raw:
        if not isinstance(item, dict):
            raise ModelError(f"{source}: quietmic metadata states must be objects; {REEXPORT_HINT}")
        shape = _field(item, "shape", list, source)
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise ModelError(f"{source}: quietmic metadata state shapes must be lists of integers; {REEXPORT_HINT}")
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
            spectrum=_spectrum(features, source),
        ),
        mask=MaskSpec(
            type=_field(mask, "type", str, source),
            tensor=_field(mask, "tensor", str, source),
            max_gain=_max_gain(mask, source),
            band_edges_hz=_edges(mask, source),
            deep_filter=_deep_filter(mask, source),
        ),
        states=tuple(states),
        quantization=_field(record, "quantization", str, source),
        lookahead_frames=_field(record, "lookahead_frames", int, source, 0),
        parameters=_field(record, "parameters", int, source, 0),
        training=_field(record, "training", dict, source, {}),
    )
    if version < meta.format_version:
        raise ModelError(
            f"{source}: inconsistent quietmic metadata: a spectrum input or deep filter needs format_version "
            f"{meta.format_version}, the record says {version}; {REEXPORT_HINT}"
        )
    meta.validate(source)
    stated = record.get("algorithmic_latency_samples")
    if stated is not None and stated != meta.algorithmic_latency_samples:
        raise ModelError(
            f"{source}: inconsistent quietmic metadata: algorithmic_latency_samples is {_short(stated)} "
            f"but window, hop and lookahead give {meta.algorithmic_latency_samples}; {REEXPORT_HINT}"
        )
    return meta


QUOTED_VALUE_CHARS = 60
"""Longest value quoted in a metadata error, in characters."""


def _short(value: Any) -> str:
    """``value`` quoted for a one-line metadata error."""
    return short_repr(value, QUOTED_VALUE_CHARS)


# --- Telling a .tflite file from other files passed by mistake ----------------------------

CONVERT_HINT = (
    "quietmic runs only .tflite files with quietmic metadata: rebuild the model with the Keras layers of "
    "model_export and export it with 'python -m model_export' (pip install 'quietmic[export]')"
)
"""What to do with a model of another format (Keras, ONNX, PyTorch...)."""

_FOREIGN_SUFFIXES = {
    ".keras": sniff.FileKind("a Keras model", model=True),
    ".h5": sniff.FileKind("a Keras/HDF5 model", model=True),
    ".hdf5": sniff.FileKind("a Keras/HDF5 model", model=True),
    ".onnx": sniff.ONNX,
    ".pb": sniff.FileKind("a TensorFlow graph (SavedModel .pb)", model=True),
    ".pt": sniff.FileKind("a PyTorch model", model=True),
    ".pth": sniff.FileKind("a PyTorch model", model=True),
    ".ckpt": sniff.FileKind("a training checkpoint", model=True),
    ".safetensors": sniff.FileKind("a safetensors weights file", model=True),
    ".wav": sniff.FileKind("an audio file", audio=True),
    ".json": sniff.FileKind("a JSON file"),
    ".yaml": sniff.FileKind("a YAML file"),
    ".yml": sniff.FileKind("a YAML file"),
}
"""File name endings of other model formats (and other files), and what to call them."""


def describe_foreign_file(data: bytes, source: str) -> sniff.FileKind | None:
    """What a file that is not a TFLite model seems to be (by its name ending, then its
    first bytes), or ``None`` if it cannot be told."""
    return _FOREIGN_SUFFIXES.get(Path(source).suffix.lower()) or sniff.identify(data)


def not_tflite_error(data: bytes, source: str) -> ModelError:
    """The error for bytes that are not a TFLite model: what they seem to be and what to do."""
    if not data:
        return ModelError(f"{source}: the model file is empty (0 bytes); {REEXPORT_HINT} or copy the file again")
    described = describe_foreign_file(data, source)
    if described is None:
        return ModelError(
            f"{source}: not a TensorFlow Lite model (no TFL3 identifier: the file is corrupt or of another "
            f"kind); {CONVERT_HINT}"
        )
    if described.model:
        return ModelError(f"{source}: this is {described.describe()}, not a TensorFlow Lite model; {CONVERT_HINT}")
    return ModelError(
        f"{source}: this is {described.describe()}, not a TensorFlow Lite model (no TFL3 identifier); pass a quietmic "
        ".tflite model (made by 'python -m model_export')"
    )


# --- Reading the metadata entry out of a .tflite flatbuffer -------------------------------

_TFLITE_IDENTIFIER = b"TFL3"
_TFLITE_IDENTIFIER_OFFSET = 4
_MODEL_BUFFERS_FIELD = 4
_MODEL_METADATA_FIELD = 6
_METADATA_NAME_FIELD = 0
_METADATA_BUFFER_FIELD = 1
_BUFFER_DATA_FIELD = 0
_BUFFER_OFFSET_FIELD = 1
_BUFFER_SIZE_FIELD = 2

CORRUPT_HINT = f"the file is truncated or corrupt; {REEXPORT_HINT} or copy it again"
"""The fix for a damaged model file."""


class _FlatBuffer:
    """Just enough of the flatbuffers wire format to walk a TFLite model's tables.

    Every read is bounds-checked: a position outside the data raises ``IndexError``.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _unpack(self, fmt: str, pos: int) -> int:
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.data):
            raise IndexError(f"flatbuffer read at {pos} outside {len(self.data)} bytes")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def _u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def field_pos(self, table: int, index: int) -> int | None:
        vtable = table - self._unpack("<i", table)
        vtable_size = self._unpack("<H", vtable)
        slot = 4 + 2 * index
        if slot >= vtable_size:
            return None
        offset = self._unpack("<H", vtable + slot)
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
        if start and start + length > len(self.data):
            raise IndexError("flatbuffer string runs past the end of the data")
        return self.data[start : start + length].decode("utf-8") if start else None

    def scalar(self, table: int, index: int, fmt: str, default: int = 0) -> int:
        pos = self.field_pos(table, index)
        return self._unpack(fmt, pos) if pos is not None else default


def read_tflite_metadata(data: bytes, source: str = "model") -> dict[str, bytes]:
    """All metadata entries (name -> raw bytes) of a TFLite flatbuffer.

    Raises :class:`ModelError` if ``data`` is not a readable TFLite model,
    saying what the file seems to be instead (Keras, ONNX, text, empty...).
    """
    identifier_end = _TFLITE_IDENTIFIER_OFFSET + len(_TFLITE_IDENTIFIER)
    if len(data) < identifier_end or data[_TFLITE_IDENTIFIER_OFFSET:identifier_end] != _TFLITE_IDENTIFIER:
        raise not_tflite_error(data, source)
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
                raise ModelError(f"{source}: metadata entry {_short(name)} points past the buffer table; {CORRUPT_HINT}")
            buffer = fb.table_at(buffers_start + 4 * index)
            start, length = fb.vector(buffer, _BUFFER_DATA_FIELD)
            if not start:
                start = fb.scalar(buffer, _BUFFER_OFFSET_FIELD, "<Q")
                length = fb.scalar(buffer, _BUFFER_SIZE_FIELD, "<Q")
            if start + length > len(data):
                raise ModelError(f"{source}: metadata entry {_short(name)} runs past the end of the file; {CORRUPT_HINT}")
            entries[name] = bytes(data[start : start + length])
        return entries
    except (struct.error, IndexError, UnicodeDecodeError):
        raise ModelError(f"{source}: the TensorFlow Lite flatbuffer cannot be read; {CORRUPT_HINT}") from None


def load_metadata(model_bytes: bytes, source: str = "model") -> ModelMetadata:
    """The validated quietmic record of a model file's bytes."""
    entries = read_tflite_metadata(model_bytes, source)
    if METADATA_NAME not in entries:
        raise ModelError(
            f"{source}: this .tflite file has no quietmic metadata (it is not a quietmic model, or was "
            "converted without the exporter); export it with 'python -m model_export' so it describes "
            "its framing, features and states"
        )
    return ModelMetadata.from_json(entries[METADATA_NAME], source)


def load_metadata_file(path: str | Path) -> ModelMetadata:
    """The validated quietmic record of the model file at ``path``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror}; check the path") from None
    return load_metadata(data, str(path))
