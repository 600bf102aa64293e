"""Running a quietmic mask model (TFLite) one frame at a time, and checking that it works.

:class:`MaskModel` loads a ``.tflite`` file, reads and validates its metadata
(:mod:`realtime.metadata`), checks that the tensors the metadata names exist
with the stated shapes and float32 types, and then runs one frame per
:meth:`MaskModel.step`, feeding the recurrent states back explicitly (as DTLN's
TFLite path does). Tensors are looked up by their signature names, never by
position. Every problem with the file is a :class:`~realtime.errors.ModelError`
whose one-line message names the file, the problem and the fix.

:func:`check_model` goes further than loading: it runs the model on probe
features (zeros, digital silence, random features over the range real audio
gives) and reports masks or states that are not finite or not of the stated
size. :func:`check_model_file` does the same in a child process, so that a
file which makes TensorFlow Lite itself abort (some damaged int8 models do)
is reported instead of killing the caller (``quietmic info --model F`` uses it).

A phase-aware model (metadata format version 2) takes a second input, the low
band's normalised complex spectrum, and returns a second output, deep-filter
coefficients (:meth:`MaskModel.run`); the check feeds the probes a spectrum too
and checks the coefficients like the mask.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from realtime.dsp import POWER_FLOOR
from realtime.default_model import BUNDLED_MODELS, resolve_model_path
from realtime.errors import ModelError
from realtime.messages import one_line
from realtime.metadata import CONVERT_HINT, CORRUPT_HINT, REEXPORT_HINT, ModelMetadata, load_metadata

log = logging.getLogger(__name__)

DEFAULT_THREADS = 1
"""Interpreter threads: one, since a frame is far too small to split across cores."""

MAX_MODEL_BYTES = 256 * 1024 * 1024
"""Largest model file read, in bytes: quietmic models are well under a megabyte, so a bigger
file is almost surely the wrong one (and is not read into memory)."""

MAX_LISTED_FILES = 3
"""How many ``.tflite`` files inside a directory an error message names."""

_MAX_DETAIL_CHARS = 300
"""Longest TensorFlow Lite message quoted in an error, in characters."""

SAVED_MODEL_FILE = "saved_model.pb"
"""The file that marks a TensorFlow SavedModel directory."""

NOT_A_FLATBUFFER = "not a valid Flatbuffer"
"""What TensorFlow Lite says of a truncated or garbled file (no newer runtime would load it either)."""

DYNAMIC = -1
"""A dimension of unknown size in a tensor's ``shape_signature``."""


class ModelBytes(bytes):
    """The bytes of a model file that remember which file they came from.

    :class:`MaskModel` names ``source`` in its errors when given these bytes, so
    a model read once and loaded several times still reports its path.
    """

    source: str

    def __new__(cls, data: bytes, source: str) -> ModelBytes:
        instance = super().__new__(cls, data)
        instance.source = source
        return instance


def _directory_error(directory: Path) -> ModelError:
    if (directory / SAVED_MODEL_FILE).exists():
        return ModelError(f"model path {directory} is a TensorFlow SavedModel directory, not a .tflite file; {CONVERT_HINT}")
    inside = sorted(p.name for p in directory.glob("*.tflite"))
    if inside:
        shown = ", ".join(inside[:MAX_LISTED_FILES]) + (", ..." if len(inside) > MAX_LISTED_FILES else "")
        return ModelError(f"model path {directory} is a directory; pass one of the .tflite files inside it ({shown})")
    return ModelError(f"model path {directory} is a directory with no .tflite file in it; pass the path of a .tflite model")


def read_model_bytes(path: str | Path) -> ModelBytes:
    """The bytes of a model file, or a :class:`ModelError` saying what is wrong and what to do.

    Refuses directories (naming the ``.tflite`` files inside), devices and pipes,
    and files over :data:`MAX_MODEL_BYTES` bytes, before reading anything.
    """
    model_path = Path(path)
    try:
        if not model_path.exists():
            raise ModelError(
                f"model file {model_path} does not exist; check the path, or pass --model with a .tflite file or "
                f"a bundled model ({', '.join(BUNDLED_MODELS)}), or set 'model:' in the config"
            )
        if model_path.is_dir():
            raise _directory_error(model_path)
        if not model_path.is_file():
            raise ModelError(f"model path {model_path} is not a regular file (a device or a pipe?); pass a .tflite file")
        size = model_path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelError(
                f"{model_path}: {size / 2**20:.0f} MiB is far larger than a quietmic model (at most "
                f"{MAX_MODEL_BYTES / 2**20:.0f} MiB); is it the right file? Pass a .tflite model"
            )
        return ModelBytes(model_path.read_bytes(), str(model_path))
    except OSError as exc:
        raise ModelError(f"cannot read model file {model_path}: {exc.strerror}; check the path and its permissions") from None


TFLITE_BANNER = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
"""What TensorFlow Lite's C++ code writes to the process's stderr each time it loads a model."""


@contextlib.contextmanager
def _without_tflite_banner() -> Iterator[None]:
    """Keep :data:`TFLITE_BANNER` off stderr (file descriptor 2) while a model loads.

    quietmic's messages are one line each; the banner would come before every one
    that follows a model load. Anything else written to stderr meanwhile is passed on.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr to speak of
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = b"".join(line for line in capture.read().splitlines(keepends=True)
                            if not line.startswith(TFLITE_BANNER))
            if kept:
                os.write(2, kept)


def _load_interpreter(data: bytes, source: str, num_threads: int) -> Interpreter:
    try:
        with _without_tflite_banner():
            interpreter = Interpreter(model_content=data, num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        detail = one_line(str(exc), _MAX_DETAIL_CHARS)
        newer = "" if NOT_A_FLATBUFFER in detail else " (or upgrade quietmic, if a newer one made the model)"
        raise ModelError(f"{source}: TensorFlow Lite cannot load this model ({detail}); {CORRUPT_HINT}{newer}") from None
    return interpreter


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if d == DYNAMIC else str(d) for d in shape) + "]"


class _RunError(Exception):
    """A frame could not be run; the message says why (without the file name)."""


class ModelOutputs(NamedTuple):
    """What a model returns for one frame (states aside).

    Attributes:
        mask: ``mask_size`` float32 gains.
        deep_filter: ``2 * order * bins`` float32 deep-filter coefficients
            (:data:`realtime.dsp.DEEP_FILTER_LAYOUT`), or None for a gain-only model.
    """

    mask: np.ndarray
    deep_filter: np.ndarray | None


class MaskModel:
    """A streaming mask model: features of one frame in, one mask out, states kept inside.

    Args:
        model: path of a ``.tflite`` file, the name of a bundled model (``"default"``,
            ``"low-latency"``: :data:`realtime.default_model.BUNDLED_MODELS`; a file of that name in
            the working directory wins), or the file's bytes (:class:`ModelBytes` remember their file).
        num_threads: interpreter threads.
        source: how errors name the model; default: the path, else ``"model"``.
    """

    def __init__(self, model: str | Path | bytes, num_threads: int = DEFAULT_THREADS, source: str | None = None) -> None:
        if isinstance(model, (bytes, bytearray)):
            data = bytes(model)
            source = source or getattr(model, "source", None) or "model"
        elif isinstance(model, (str, os.PathLike)):
            path = resolve_model_path(model)
            source, data = source or str(path), read_model_bytes(path)
        else:
            raise TypeError(
                f"a model is a .tflite path, a bundled model's name ({', '.join(BUNDLED_MODELS)}) or a file's bytes, "
                f"not {type(model).__name__}"
            )
        self.source: str = source
        self._bytes = data
        """The file's bytes, kept for :meth:`clone` (TensorFlow Lite holds on to them anyway)."""
        self._num_threads = num_threads
        self.metadata: ModelMetadata = load_metadata(data, source)
        self._interpreter = _load_interpreter(data, source, num_threads)
        try:
            runner = self._signature_runner()
            inputs = runner.get_input_details()
            outputs = runner.get_output_details()
        except (ValueError, RuntimeError, TypeError, UnicodeDecodeError) as exc:  # names, indices of a damaged file
            raise ModelError(
                f"{source}: TensorFlow Lite cannot read the model's signature "
                f"({one_line(str(exc), _MAX_DETAIL_CHARS)}); {CORRUPT_HINT}"
            ) from None
        meta = self.metadata
        expected_inputs = {meta.features.tensor, *(s.input for s in meta.states)}
        self._resizes: list[tuple[int, tuple[int, ...]]] = []
        self._features_index = self._tensor_index(inputs, meta.features.tensor, (1, meta.feature_size), "input")
        self._mask_shape = (1, meta.mask_size)
        self._mask_index = self._tensor_index(outputs, meta.mask.tensor, self._mask_shape, "output")
        self._spectrum_index: int | None = None
        self._spectrum = np.zeros((1, meta.spectrum_size), dtype=np.float32)
        if meta.features.spectrum is not None:
            expected_inputs.add(meta.features.spectrum.tensor)
            self._spectrum_index = self._tensor_index(
                inputs, meta.features.spectrum.tensor, (1, meta.spectrum_size), "input"
            )
        self._deep_filter_index: int | None = None
        self._deep_filter_shape = (1, meta.deep_filter_size)
        if meta.mask.deep_filter is not None:
            self._deep_filter_index = self._tensor_index(
                outputs, meta.mask.deep_filter.tensor, self._deep_filter_shape, "output"
            )
        self._state_pairs: list[tuple[int, int]] = []
        self._initial_states: list[np.ndarray] = []
        for state in meta.states:
            in_index = self._tensor_index(inputs, state.input, state.shape, "input")
            out_index = self._tensor_index(outputs, state.output, state.shape, "output")
            self._state_pairs.append((in_index, out_index))
            self._initial_states.append(np.zeros(state.shape, dtype=np.float32))
        if set(inputs) != expected_inputs:
            raise ModelError(
                f"{source}: inconsistent quietmic metadata: the model's inputs are {sorted(inputs)} "
                f"but the metadata describes {sorted(expected_inputs)}; {REEXPORT_HINT}"
            )
        self._apply_resizes()
        self._states = [s.copy() for s in self._initial_states]
        self._features = np.zeros((1, meta.feature_size), dtype=np.float32)
        self.parameters = meta.parameters

    def _signature_runner(self) -> Any:
        signatures = self._interpreter.get_signature_list()
        if len(signatures) != 1:
            found = f"{len(signatures)} ({', '.join(sorted(signatures))})" if signatures else "none"
            raise ModelError(
                f"{self.source}: quietmic finds a model's tensors through its one signature, and this model has "
                f"{found}; {REEXPORT_HINT}"
            )
        return self._interpreter.get_signature_runner(next(iter(signatures)))

    def _tensor_index(self, details: dict, name: str, shape: tuple[int, ...], kind: str) -> int:
        """The interpreter index of tensor ``name``, checked against the metadata's ``shape`` and float32.

        A dimension the model leaves open (``shape_signature`` -1) matches any size: an input
        is resized to the stated shape, an output's size is checked on every frame.
        """
        if name not in details:
            raise ModelError(
                f"{self.source}: inconsistent quietmic metadata: the model has no {kind} tensor "
                f"named {name!r} (it has {sorted(details)}); {REEXPORT_HINT}"
            )
        detail = details[name]
        actual = tuple(int(d) for d in detail["shape"])
        signature = tuple(int(d) for d in detail.get("shape_signature", actual)) or actual
        matches = len(signature) == len(shape) and all(s in (d, DYNAMIC) for s, d in zip(signature, shape))
        if not matches:
            raise ModelError(
                f"{self.source}: inconsistent quietmic metadata: {kind} {name!r} has shape "
                f"{_shape_text(signature)}, the metadata says {list(shape)}; {REEXPORT_HINT}"
            )
        if detail["dtype"] != np.float32:
            raise ModelError(
                f"{self.source}: {kind} {name!r} is {np.dtype(detail['dtype']).name}, but quietmic feeds and "
                f"reads float32 tensors (int8 models keep float32 inputs and outputs); {REEXPORT_HINT}"
            )
        if kind == "input" and actual != tuple(shape):
            self._resizes.append((int(detail["index"]), tuple(shape)))
        return int(detail["index"])

    def _apply_resizes(self) -> None:
        if not self._resizes:
            return
        try:
            for index, shape in self._resizes:
                self._interpreter.resize_tensor_input(index, list(shape), strict=True)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"{self.source}: the model's open-sized inputs cannot take the shapes its metadata states "
                f"({one_line(str(exc), _MAX_DETAIL_CHARS)}); {REEXPORT_HINT}"
            ) from None

    def _run(self, features: np.ndarray, spectrum: np.ndarray | None = None) -> ModelOutputs:
        """One frame, states fed back; raises :class:`_RunError` if it cannot run or returns the wrong sizes."""
        interpreter = self._interpreter
        self._features[0] = features
        if self._spectrum_index is not None:
            if spectrum is None:
                raise ValueError(
                    f"{self.source}: this model takes the low band's spectrum as a second input; pass it "
                    "(realtime.dsp.low_band_spectrum) to run() or step()"
                )
            self._spectrum[0] = spectrum
        try:
            interpreter.set_tensor(self._features_index, self._features)
            if self._spectrum_index is not None:
                interpreter.set_tensor(self._spectrum_index, self._spectrum)
            for (in_index, _), state in zip(self._state_pairs, self._states):
                interpreter.set_tensor(in_index, state)
            interpreter.invoke()
        except (ValueError, RuntimeError) as exc:
            raise _RunError(f"running a frame failed ({one_line(str(exc), _MAX_DETAIL_CHARS)})") from None
        mask = interpreter.get_tensor(self._mask_index)
        if mask.shape != self._mask_shape:
            raise _RunError(f"the model returned a mask of shape {list(mask.shape)}, the metadata says {list(self._mask_shape)}")
        deep_filter = None
        if self._deep_filter_index is not None:
            deep_filter = interpreter.get_tensor(self._deep_filter_index)
            if deep_filter.shape != self._deep_filter_shape:
                raise _RunError(
                    f"the model returned deep-filter coefficients of shape {list(deep_filter.shape)}, "
                    f"the metadata says {list(self._deep_filter_shape)}"
                )
            deep_filter = deep_filter[0]
        for i, (_, out_index) in enumerate(self._state_pairs):
            state = interpreter.get_tensor(out_index)
            if state.shape != self._initial_states[i].shape:
                name = self.metadata.states[i].output
                raise _RunError(
                    f"the model returned state {name!r} of shape {list(state.shape)}, "
                    f"the metadata says {list(self._initial_states[i].shape)}"
                )
            self._states[i] = state
        return ModelOutputs(mask[0], deep_filter)

    def run(self, features: np.ndarray, spectrum: np.ndarray | None = None) -> ModelOutputs:
        """Run one frame: ``features`` (``feature_size`` floats) and, for a model with a spectrum
        input, ``spectrum`` (``spectrum_size`` floats) -> mask and deep-filter coefficients.

        The recurrent states are fed back for the next call. Raises
        :class:`ModelError` if the frame cannot be run or the model returns a
        mask, coefficients or a state of another size than its metadata states;
        ``ValueError`` if the model needs a spectrum and none is given.
        """
        try:
            return self._run(features, spectrum)
        except _RunError as exc:
            raise ModelError(f"{self.source}: {exc}; {REEXPORT_HINT}") from None

    def step(self, features: np.ndarray, spectrum: np.ndarray | None = None) -> np.ndarray:
        """Run one frame and return only its mask (``mask_size`` float32); see :meth:`run`."""
        return self.run(features, spectrum).mask

    def clone(self) -> MaskModel:
        """A new, independent model from the same file (fresh states): one per channel of a stream."""
        return MaskModel(self._bytes, num_threads=self._num_threads, source=self.source)

    def reset(self) -> None:
        """Clear the recurrent states (as at load time)."""
        self._states = [s.copy() for s in self._initial_states]

    def states_finite(self) -> bool:
        """Whether every recurrent state value is finite."""
        return all(bool(np.isfinite(s).all()) for s in self._states)

    def nonfinite_states(self) -> list[str]:
        """Output names of the recurrent states holding NaN or Inf."""
        return [spec.output for spec, s in zip(self.metadata.states, self._states) if not np.isfinite(s).all()]


# --- Checking that a model works ------------------------------------------------------------

PROBE_FRAMES = 50
"""Frames run per probe: half a second at a 10 ms hop, long enough for a state to blow up."""

PROBE_SEED = 0
"""Seed of the random probe features (the check is reproducible)."""

RANDOM_FEATURE_RANGE = (math.log10(POWER_FLOOR), 1.0)
"""Range of the random probe features (log10 power): from digital silence (-12, i.e. -120 dB) to
+1 (+10 dB), about 14 dB above the loudest band of a full-scale square wave (-0.4), as
overdriven float input can give: the range real audio covers, with a margin."""

MASK_RANGE_TOLERANCE = 1e-3
"""How far (in gain) a mask may stray outside ``[0, max_gain]`` before the check notes it."""

FeatureSource = Callable[[np.random.Generator, int], np.ndarray]
"""Probe features: ``(rng, feature_size) -> features`` for one frame."""

PROBES: tuple[tuple[str, FeatureSource], ...] = (
    ("zero features", lambda rng, size: np.zeros(size, dtype=np.float32)),
    ("digital silence", lambda rng, size: np.full(size, RANDOM_FEATURE_RANGE[0], dtype=np.float32)),
    ("random features", lambda rng, size: rng.uniform(*RANDOM_FEATURE_RANGE, size).astype(np.float32)),
)
"""The inputs :func:`check_model` runs, each from fresh states for :data:`PROBE_FRAMES` frames."""


SILENT_PROBES = ("zero features", "digital silence")
"""The probes of :data:`PROBES` whose spectrum input (phase-aware models) is all zeros."""


def _probe_spectrum(name: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """The spectrum input that goes with probe ``name``: zeros for the silent probes, else random
    complex values of unit RMS magnitude, as :func:`realtime.dsp.low_band_spectrum` gives; nothing
    (and no random numbers drawn) for a model without a spectrum input (``size`` 0)."""
    if name in SILENT_PROBES or size == 0:
        return np.zeros(size, dtype=np.float32)
    values = rng.standard_normal(size)
    bins = size // 2
    rms = math.sqrt(float(np.sum(values**2)) / bins) or 1.0
    return (values / rms).astype(np.float32)


@dataclass(frozen=True)
class ModelCheck:
    """What running a model on the probe features showed (:func:`check_model`).

    Attributes:
        frames: frames run in all.
        problems: what makes the model unusable (non-finite or wrong-size masks or states, run errors).
        notes: what is odd but handled by the engine (masks outside ``[0, max_gain]`` are clipped).
        mask_min: smallest finite mask value seen (``None`` if none).
        mask_max: largest finite mask value seen (``None`` if none).
    """

    frames: int
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    mask_min: float | None
    mask_max: float | None

    @property
    def valid(self) -> bool:
        """Whether the model ran every probe with finite, right-sized masks and states."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The check as JSON-ready values."""
        return {
            "valid": self.valid,
            "frames": self.frames,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "mask_range": None if self.mask_min is None else [self.mask_min, self.mask_max],
        }

    def error(self, source: str) -> ModelError:
        """The one-line error for an invalid model."""
        return invalid_model_error(source, self.problems)


def invalid_model_error(source: str, problems: Sequence[str]) -> ModelError:
    """The one-line error for a model that ran wrong (``problems``, as :class:`ModelCheck` lists them)."""
    return ModelError(f"{source}: the model is invalid: {'; '.join(problems)}; retrain it or {REEXPORT_HINT}")


def _run_probe(
    model: MaskModel, name: str, source: FeatureSource, frames: int, rng: np.random.Generator
) -> tuple[int, str | None, float, float]:
    """Run one probe from fresh states: (frames run, what went wrong or ``None``, min and max of the masks)."""
    model.reset()
    low, high = math.inf, -math.inf
    size = model.metadata.feature_size
    spectrum_size = model.metadata.spectrum_size
    for frame in range(1, frames + 1):
        try:
            mask, deep_filter = model._run(source(rng, size), _probe_spectrum(name, rng, spectrum_size))
        except _RunError as exc:
            return frame, str(exc), low, high
        if not np.isfinite(mask).all():
            return frame, "the mask holds NaN or Inf", low, high
        if deep_filter is not None and not np.isfinite(deep_filter).all():
            return frame, "the deep-filter coefficients hold NaN or Inf", low, high
        broken = model.nonfinite_states()
        if broken:
            return frame, f"the recurrent state {', '.join(map(repr, broken))} holds NaN or Inf", low, high
        low, high = min(low, float(mask.min(initial=math.inf))), max(high, float(mask.max(initial=-math.inf)))
    return frames, None, low, high


def check_model(model: MaskModel, frames: int = PROBE_FRAMES, seed: int = PROBE_SEED) -> ModelCheck:
    """Run ``model`` on each of :data:`PROBES` for ``frames`` frames and report what goes wrong.

    Each problem says where it first showed, e.g. ``the mask holds NaN or Inf (at frame 1 of
    zero features, frame 1 of random features)``. The model's states are reset before each
    probe and afterwards, so it can be used as loaded. Never raises for a misbehaving
    model: see :attr:`ModelCheck.problems`.
    """
    rng = np.random.default_rng(seed)
    places: dict[str, list[str]] = {}
    total = 0
    low, high = math.inf, -math.inf
    try:
        for name, source in PROBES:
            ran, what, probe_low, probe_high = _run_probe(model, name, source, frames, rng)
            total += ran
            low, high = min(low, probe_low), max(high, probe_high)
            if what is not None:
                places.setdefault(what, []).append(f"frame {ran} of {name}")
    finally:
        model.reset()
    problems = tuple(f"{what} (at {', '.join(where)})" for what, where in places.items())
    notes = []
    max_gain = model.metadata.mask.max_gain
    if low < -MASK_RANGE_TOLERANCE or high > max_gain + MASK_RANGE_TOLERANCE:
        notes.append(f"mask values span [{low:.3g}, {high:.3g}], outside [0, {max_gain:g}]: the engine clips them")
    finite = math.isfinite(low)
    check = ModelCheck(total, problems, tuple(notes), low if finite else None, high if finite else None)
    log.debug("checked %s: %s", model.source, check)
    return check


# --- Checking a file without risking the caller ---------------------------------------------

CHECK_TIMEOUT_S = 120.0
"""Longest a child process may take to load and check a model, in seconds."""

_CHECK_CHILD = """
import json, sys
from dataclasses import asdict
from realtime.errors import ModelError
from realtime.model import MaskModel, check_model
try:
    result = {"check": asdict(check_model(MaskModel(sys.argv[1])))}
except ModelError as exc:
    result = {"error": str(exc)}
print(json.dumps(result))
"""
"""What the child process of :func:`check_model_file` runs: load, check, print JSON."""

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
"""The directory holding the ``realtime`` package (put on the child's ``PYTHONPATH``)."""


def check_model_file(path: str | Path, timeout_s: float = CHECK_TIMEOUT_S) -> ModelCheck:
    """Load the model at ``path`` and :func:`check_model` it in a child process.

    TensorFlow Lite aborts the whole process on some damaged files (e.g. an int8
    tensor retyped in a corrupt file) instead of raising an error; here that
    becomes a :class:`ModelError`, as does every load error. The file and its
    metadata are read first in this process (pure Python, cannot crash).
    """
    source = str(path)
    load_metadata(read_model_bytes(path), source)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHECK_CHILD, source], capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        raise ModelError(
            f"{source}: loading and running the model did not finish within {timeout_s:g} s; {CORRUPT_HINT}"
        ) from None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise ModelError(f"{source}: TensorFlow Lite crashed ({name}) loading or running this model; {CORRUPT_HINT}")
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        detail = one_line(last, _MAX_DETAIL_CHARS)
        raise ModelError(f"{source}: checking the model failed ({detail}); this is a quietmic bug, please report it") from None
    if "error" in result:
        raise ModelError(result["error"])
    fields = result["check"]
    return ModelCheck(
        frames=fields["frames"],
        problems=tuple(fields["problems"]),
        notes=tuple(fields["notes"]),
        mask_min=fields["mask_min"],
        mask_max=fields["mask_max"],
    )


def require_valid_model(path: str | Path) -> None:
    """Raise a :class:`ModelError` unless :func:`check_model_file` finds the model at ``path`` valid.

    Run before loading a model into this process: a damaged file that would
    crash TensorFlow Lite, or a model that makes NaN masks, becomes an error
    that says so instead of a dead process or silent output later.
    """
    check = check_model_file(path)
    if not check.valid:
        raise check.error(str(path))


def load_checked_model(path: str | Path) -> MaskModel:
    """Load the model at ``path`` once :func:`require_valid_model` has run it safely in a child process.

    For long-running processes (the background service, live mode).
    """
    require_valid_model(path)
    return MaskModel(path)
