"""Bad model files get one clear line (file, problem, fix) and a non-zero exit; `quietmic info` validates.

Every bad file here is made from a real exported model (cut, corrupted, or with
its metadata record rewritten in place) or by TensorFlow itself (int8 I/O,
NaN masks, exploding states, Keras files), and is passed to the real command
line: ``quietmic info --model F`` and ``quietmic enhance in.wav out.wav --model F``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.io import wavfile

from realtime import cli
from realtime.errors import ModelError
from realtime.metadata import METADATA_NAME, ModelMetadata, read_tflite_metadata
from realtime.model import PROBE_FRAMES, PROBES, MaskModel, check_model, check_model_file, read_model_bytes

RATE = 16000
FIX = re.compile(r"python -m model_export|re-export|check the path|pass (one of )?(a|the) |copy it again|upgrade quietmic")
"""Every error line says what to do: one of these fixes."""

Record = dict[str, Any]


# --- Making bad model files -----------------------------------------------------------------


def metadata_record(data: bytes) -> Record:
    return json.loads(read_tflite_metadata(data)[METADATA_NAME])


def with_metadata_text(data: bytes, text: bytes) -> bytes:
    """``data`` with its quietmic metadata payload replaced in place by ``text`` (padded with spaces).

    JSON ignores trailing whitespace, so a record written compactly fits in the
    space of the exporter's indented one; the flatbuffer is otherwise untouched.
    """
    payload = read_tflite_metadata(data)[METADATA_NAME]
    start = data.find(payload)
    assert start > 0 and data.count(payload) == 1
    assert len(text) <= len(payload), f"replacement of {len(text)} bytes does not fit in {len(payload)}"
    return data[:start] + text + b" " * (len(payload) - len(text)) + data[start + len(payload) :]


def with_record(data: bytes, edit: Callable[[Record], Any]) -> bytes:
    record = metadata_record(data)
    edit(record)
    return with_metadata_text(data, json.dumps(record, separators=(",", ":")).encode())


def without_metadata(data: bytes) -> bytes:
    """A valid TFLite model whose quietmic entry is renamed, so it has no quietmic metadata."""
    name = METADATA_NAME.encode()
    assert data.count(name) == 1
    return data.replace(name, name[:-1] + b"X")


def set_path(path: str, value: Any) -> Callable[[Record], None]:
    """An edit setting ``record[a][b]...`` for ``path`` ``"a.b"`` (list indices as numbers)."""

    def edit(record: Record) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = record
        for part in parents:
            target = target[part]
        target[last] = value

    return edit


def delete(key: str) -> Callable[[Record], None]:
    return lambda record: record.pop(key)


def add_ghost_state(record: Record) -> None:
    record["states"].append({"input": "ghost", "output": "ghost_out", "shape": [1, 4]})


def drop_last_band(record: Record) -> None:
    record["features"]["band_edges_hz"] = record["features"]["band_edges_hz"][:-1]


METADATA_CASES: list[tuple[str, Callable[[Record], Any], str]] = [
    ("wrong feature tensor name", set_path("features.tensor", "feats"), "no input tensor named 'feats'"),
    ("wrong mask tensor name", set_path("mask.tensor", "gains"), "no output tensor named 'gains'"),
    ("wrong state shape", set_path("states.0.shape", [1, 7]), "has shape [1, 1], the metadata says [1, 7]"),
    ("wrong feature count", drop_last_band, "input 'features' has shape [1, 32], the metadata says [1, 31]"),
    ("state pair that does not exist", add_ghost_state, "no input tensor named 'ghost'"),
    ("state the metadata forgets", set_path("states", []), "the model's inputs are"),
    ("state output that does not exist", set_path("states.0.output", "nowhere"), "no output tensor named 'nowhere'"),
    ("hop larger than the window", set_path("hop_length", 640), "hop_length must be positive and shorter than window_length"),
    ("unknown feature type", set_path("features.type", "mfcc"), "features.type must be one of"),
    ("unknown mask type", set_path("mask.type", "complex_ratio"), "mask.type must be one of"),
    ("unknown window", set_path("window", "kaiser"), "window must be one of"),
    ("zero sample rate", set_path("sample_rate", 0), "sample_rate must be between 1 and"),
    ("negative sample rate", set_path("sample_rate", -16000), "sample_rate must be between 1 and"),
    ("sample rate as text", set_path("sample_rate", "16000"), "'sample_rate' must be an integer, not a string"),
    ("sample rate as a boolean", set_path("sample_rate", True), "'sample_rate' must be an integer, not a boolean"),
    ("sample rate as a float", set_path("sample_rate", 16000.5), "'sample_rate' must be an integer, not a number"),
    ("features not an object", set_path("features", [1, 2]), "'features' must be an object, not a list"),
    ("state not an object", set_path("states", ["gru"]), "states must be objects"),
    ("state shape of text", set_path("states.0.shape", ["1", "1"]), "state shapes must be lists of integers"),
    ("empty state shape dimension", set_path("states.0.shape", [1, 0]), "has an invalid shape [1, 0]"),
    ("missing field", delete("hop_length"), "lacks the field 'hop_length'"),
    ("huge window", set_path("window_length", 10**12), "window_length must be between 1 and"),
    ("negative lookahead", set_path("lookahead_frames", -1), "lookahead_frames must be between 0 and"),
    ("huge lookahead", set_path("lookahead_frames", 10**9), "lookahead_frames must be between 0 and"),
    ("no band edges", set_path("features.band_edges_hz", []), "needs at least two edges"),
    ("band edges above Nyquist", set_path("mask.band_edges_hz.32", 96000.0), "go above Nyquist"),
    ("NaN band edge", set_path("features.band_edges_hz.3", float("nan")), "must be finite numbers"),
    ("zero max gain", set_path("mask.max_gain", 0), "mask.max_gain must be > 0"),
    ("unknown quantization", set_path("quantization", "int4"), "quantization must be one of"),
    ("duplicate tensor names", set_path("features.tensor", "level_state"), "input tensor names must be unique"),
    ("wrong stated latency", set_path("algorithmic_latency_samples", 999), "algorithmic_latency_samples is 999"),
    ("version from the future", set_path("format_version", 99), "newer than this quietmic supports"),
    ("version as text", set_path("format_version", "1"), "format_version must be an integer"),
    ("another format", set_path("format", "other-model"), "not a quietmic model record"),
    ("training not an object", set_path("training", "yesterday"), "'training' must be an object, not a string"),
]


@pytest.fixture(scope="module")
def identity_bytes(reference_model) -> bytes:
    return reference_model("identity", RATE, "float32").read_bytes()


@pytest.fixture(scope="module")
def input_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "in.wav"
    rng = np.random.default_rng(0)
    wavfile.write(path, RATE, (0.1 * rng.standard_normal(RATE // 10)).astype(np.float32))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``quietmic ARGS`` in this process (an unexpected exception fails the test with its traceback)."""
    capsys.readouterr()
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(capsys: pytest.CaptureFixture[str], model: Path, fragment: str, input_wav: Path) -> None:
    """``info`` and ``enhance`` both refuse ``model`` with one line naming it, ``fragment`` and a fix."""
    output = input_wav.parent / f"out-{model.name}.wav"
    for args in (("info", "--model", str(model)), ("enhance", str(input_wav), str(output), "--model", str(model))):
        code, _, err = run_cli(capsys, *args)
        lines = err.strip().splitlines()
        assert code == cli.EXIT_ERROR, (args, err)
        assert len(lines) == 1 and lines[0].startswith("quietmic: error: "), err
        assert str(model) in lines[0], f"the message does not name the file: {lines[0]}"
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
        assert FIX.search(lines[0]), f"no fix offered: {lines[0]}"
    assert not output.exists()


# --- Files that are not (complete) quietmic models ------------------------------------------


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


ONNX_HEADER = b"\x08\x08\x12\x07pytorch\x1a\x052.1.0:\x00B\x02\x10\x11"
"""A minimal ONNX ModelProto: ir_version 8, producer "pytorch" 2.1.0, an empty graph, opset 17."""


def test_files_that_are_not_models_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, input_wav: Path, identity_bytes: bytes
) -> None:
    rng = np.random.default_rng(1)
    saved_model = tmp_path / "saved"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"\x08\x01")
    with_models = tmp_path / "models"
    with_models.mkdir()
    (with_models / "a.tflite").write_bytes(identity_bytes)
    cases = [
        (tmp_path / "missing.tflite", "does not exist"),
        (with_models, "is a directory; pass one of the .tflite files inside it (a.tflite)"),
        (saved_model, "is a TensorFlow SavedModel directory"),
        (tmp_path, "is a directory"),
        (write(tmp_path / "empty.tflite", b""), "the model file is empty (0 bytes)"),
        (write(tmp_path / "random.tflite", rng.bytes(4096)), "not a TensorFlow Lite model (no TFL3 identifier"),
        (write(tmp_path / "notes.tflite", b"model: the big one\nthreshold: 3\n" * 20), "this is a text file"),
        (write(tmp_path / "model.onnx", ONNX_HEADER), "this is an ONNX model"),
        (write(tmp_path / "exported.bin", ONNX_HEADER), "this is an ONNX model"),
        (write(tmp_path / "weights.pt", b"PK\x03\x04" + rng.bytes(200)), "this is a PyTorch model"),
        (write(tmp_path / "in.wav.tflite", input_wav.read_bytes()), "this is a WAV file, not a TensorFlow Lite model"),
        (write(tmp_path / "bare.tflite", without_metadata(identity_bytes)), "has no quietmic metadata"),
        (Path(os.devnull), "is not a regular file"),
    ]
    for model, fragment in cases:
        assert_refused(capsys, model, fragment, input_wav)


def test_fifo_and_oversized_files_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.tflite"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(ModelError, match="is not a regular file"):
        read_model_bytes(fifo)
    huge = tmp_path / "huge.tflite"
    with huge.open("wb") as stream:
        stream.truncate(300 * 2**20)  # sparse: no disk used
    with pytest.raises(ModelError, match=r"far larger than a quietmic model"):
        read_model_bytes(huge)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_model_is_refused(tmp_path: Path, identity_bytes: bytes) -> None:
    path = write(tmp_path / "locked.tflite", identity_bytes)
    path.chmod(0)
    with pytest.raises(ModelError, match="cannot read model file .*Permission denied"):
        MaskModel(path)


TRUNCATION_POINTS = (0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
"""Where the truncated copies of a real model are cut, as fractions of its length."""


@pytest.mark.parametrize("kind,quantization", [("identity", "float32"), ("random", "int8")])
def test_truncated_models_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, input_wav: Path, reference_model, kind: str, quantization: str
) -> None:
    data = reference_model(kind, RATE, quantization).read_bytes()
    cuts = sorted({int(f * len(data)) for f in TRUNCATION_POINTS} | {7, len(data) - 1})
    for cut in cuts:
        path = write(tmp_path / f"cut-{cut}.tflite", data[:cut])
        fragment = "not a TensorFlow Lite model" if cut < 8 else "truncated or corrupt"
        assert_refused(capsys, path, fragment, input_wav)


@pytest.mark.parametrize("name,edit,fragment", METADATA_CASES, ids=[c[0] for c in METADATA_CASES])
def test_inconsistent_metadata_is_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    input_wav: Path,
    identity_bytes: bytes,
    name: str,
    edit: Callable[[Record], Any],
    fragment: str,
) -> None:
    path = write(tmp_path / "bad-metadata.tflite", with_record(identity_bytes, edit))
    assert_refused(capsys, path, fragment, input_wav)


@pytest.mark.parametrize(
    "text,fragment",
    [
        (b'{"format": "quietmic-model", "format_', "quietmic metadata is not valid JSON"),
        (b"\xff\xfe\x00garbage", "quietmic metadata is not valid JSON"),
        (b"[1, 2, 3]", "quietmic metadata must be a JSON object"),
        (b"[" * 500 + b"]" * 500, "nested too deeply"),
    ],
    ids=["cut JSON", "not UTF-8", "JSON list", "deep nesting"],
)
def test_metadata_that_is_not_a_record_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, input_wav: Path, identity_bytes: bytes, text: bytes, fragment: str
) -> None:
    path = write(tmp_path / "bad-json.tflite", with_metadata_text(identity_bytes, text))
    assert_refused(capsys, path, fragment, input_wav)


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_models_load_cleanly_or_give_a_model_error(identity_bytes: bytes, flips: list[tuple[float, int]]) -> None:
    """Fuzz: bytes changed anywhere in a real model: it loads and runs, or a ModelError names the problem.

    In this process, so derandomized: TensorFlow Lite aborts the process on some damaged int8
    models (see :func:`test_a_model_that_crashes_tensorflow_lite_is_reported`); this float
    model survived thousands of random corruptions when the test was written.
    """
    data = bytearray(identity_bytes)
    for where, value in flips:
        data[int(where * len(data))] = value
    try:
        model = MaskModel(bytes(data), source="corrupt.tflite")
    except ModelError as exc:
        assert str(exc).startswith("corrupt.tflite: ") and "\n" not in str(exc)
        return
    check = check_model(model, frames=3)
    assert check.valid or all(isinstance(p, str) and p for p in check.problems)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**400) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


def record_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a JSON record (dict keys and list indices), the root included."""
    paths = [prefix]
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        paths += record_paths(child, prefix + (key,))
    return paths


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_metadata_records_give_metadata_or_a_model_error(identity_bytes: bytes, data: st.DataObject) -> None:
    """Fuzz: any field of a real record replaced by any JSON value (or removed): metadata or one ModelError line."""
    record = metadata_record(identity_bytes)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(record_paths(record)))
        if not path:
            record = data.draw(json_values)
            continue
        parent = record
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values)
        if not isinstance(record, (dict, list)):
            break
    try:
        meta = ModelMetadata.from_json(json.dumps(record), "fuzz.tflite")
    except ModelError as exc:
        assert str(exc).startswith("fuzz.tflite: ") and "\n" not in str(exc) and FIX.search(str(exc)), str(exc)
        return
    assert meta.feature_size > 0 and meta.mask_size > 0 and meta.hop_length < meta.window_length


@pytest.mark.parametrize(
    "text",
    ['{"format": "quietmic-model", "format_version": 1, "sample_rate": ' + "9" * 5000 + "}", "[" * 100_000, "\ud800"],
    ids=["number of 5000 digits", "100000 brackets", "lone surrogate"],
)
def test_pathological_metadata_text_gives_a_model_error(text: str) -> None:
    with pytest.raises(ModelError, match="^fuzz.tflite: quietmic metadata (is not valid JSON|is nested too deeply)"):
        ModelMetadata.from_json(text, "fuzz.tflite")


# --- Models TensorFlow makes wrong on purpose -----------------------------------------------

CRAFT_SCRIPT = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from pathlib import Path
import numpy as np
import tensorflow as tf
import keras
from model_export import contract
from model_export.tflite_metadata import embed_metadata

out = Path(sys.argv[1])
meta = contract.band_model_metadata("crafted", "1", 16000, (contract.state_spec("s", 4),), {"kind": "test"})
size = meta.feature_size

def convert(step_fn, int8_io=False):
    specs = [tf.TensorSpec((1, size), tf.float32, name="features"), tf.TensorSpec((1, 4), tf.float32, name="s")]

    @tf.function(input_signature=specs, autograph=False)
    def step(features, s):
        mask, s_out = step_fn(features, s)
        return {"mask": tf.identity(mask, name="mask"), "s_out": tf.identity(s_out, name="s_out")}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([step.get_concrete_function()], tf.Module())
    if int8_io:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            {"features": rng.uniform(-12, 4, (1, size)).astype(np.float32),
             "s": rng.uniform(-1, 1, (1, 4)).astype(np.float32)} for _ in range(20))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return embed_metadata(bytes(converter.convert()), meta)

weights = tf.constant(np.full((size, 4), 0.01, np.float32))
models = {
    "int8-io": (lambda f, s: (tf.sigmoid(f * 0.1), tf.tanh(s * 0.5 + tf.matmul(f, weights))), True),
    "nan-mask": (lambda f, s: (tf.sqrt(-1.0 - tf.abs(f)), s * 0.5), False),
    "exploding-state": (lambda f, s: (tf.sigmoid(f), s * 1e30 + 1.0), False),
    "dynamic-mask": (lambda f, s: (tf.reshape(tf.boolean_mask(f, f > 0.0), (1, -1)), s), False),
    "mask-out-of-range": (lambda f, s: (f * 2.0 + 1.0, s), False),
}
for name, (step_fn, int8_io) in models.items():
    (out / f"{name}.tflite").write_bytes(convert(step_fn, int8_io))
keras_model = keras.Sequential([keras.Input((size,)), keras.layers.Dense(4)])
keras_model.save(out / "model.keras")
keras_model.save(out / "model.h5")
"""
"""Writes models with int8 I/O, NaN masks, exploding states, a data-dependent mask size and
masks outside [0, 1] (all with consistent quietmic metadata), and a Keras model as .keras and .h5."""


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("needs TensorFlow (pip install 'quietmic[export]')")
    directory = tmp_path_factory.mktemp("crafted")
    done = subprocess.run(
        [sys.executable, "-c", CRAFT_SCRIPT, str(directory)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return directory


@pytest.mark.parametrize(
    "name,fragment",
    [
        ("int8-io.tflite", "input 'features' is int8, but quietmic feeds and reads float32 tensors"),
        ("model.keras", "this is a Keras model, not a TensorFlow Lite model"),
        ("model.h5", "this is a Keras/HDF5 model, not a TensorFlow Lite model"),
    ],
)
def test_models_of_the_wrong_kind_are_refused(
    capsys: pytest.CaptureFixture[str], crafted: Path, input_wav: Path, name: str, fragment: str
) -> None:
    assert_refused(capsys, crafted / name, fragment, input_wav)


def test_keras_file_is_refused_even_when_named_tflite(
    capsys: pytest.CaptureFixture[str], crafted: Path, tmp_path: Path, input_wav: Path
) -> None:
    renamed = write(tmp_path / "model.tflite", (crafted / "model.keras").read_bytes())
    assert_refused(capsys, renamed, "a Keras .keras model", input_wav)
    renamed = write(tmp_path / "other.tflite", (crafted / "model.h5").read_bytes())
    assert_refused(capsys, renamed, "a Keras .h5 model", input_wav)


@pytest.mark.parametrize(
    "name,problem",
    [
        ("nan-mask.tflite", "the mask holds NaN or Inf (at frame 1 of zero features, frame 1 of digital silence, "
         "frame 1 of random features)"),
        ("exploding-state.tflite", "the recurrent state 's_out' holds NaN or Inf (at frame 3 of zero features"),
        ("dynamic-mask.tflite", "the model returned a mask of shape [1, 0], the metadata says [1, 32] (at frame 1 of "
         "zero features, frame 1 of digital silence)"),
    ],
)
def test_info_reports_a_model_that_runs_wrong_as_invalid(
    capsys: pytest.CaptureFixture[str], crafted: Path, name: str, problem: str
) -> None:
    path = crafted / name
    code, out, err = run_cli(capsys, "info", "--model", str(path))
    assert code == cli.EXIT_ERROR
    assert "check          INVALID" in out and problem in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"quietmic: error: {path}: the model is invalid: " in lines[0] and problem in lines[0]
    assert FIX.search(lines[0])
    code, out, _ = run_cli(capsys, "info", "--model", str(path), "--json")
    info = json.loads(out)
    assert code == cli.EXIT_ERROR and info["valid"] is False and info["check"]["valid"] is False
    assert any(problem in p for p in info["check"]["problems"])


def retyped_add_outputs(data: bytes) -> list[bytes]:
    """Copies of an int8 model, each with one ADD output declared float32 (as a damaged file might)."""
    flatbuffers = pytest.importorskip("flatbuffers")
    from ai_edge_litert import schema_py_generated as schema

    def unpack() -> Any:
        return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)

    model = unpack()
    graph = model.subgraphs[0]
    add = {i for i, code in enumerate(model.operatorCodes) if schema.BuiltinOperator.ADD in (code.builtinCode, code.deprecatedBuiltinCode)}
    targets = [out for op in graph.operators if op.opcodeIndex in add for out in op.outputs if graph.tensors[out].type == schema.TensorType.INT8]
    copies = []
    for index in targets:
        damaged = unpack()
        tensor = damaged.subgraphs[0].tensors[index]
        tensor.type, tensor.quantization = schema.TensorType.FLOAT32, None
        builder = flatbuffers.Builder(1024)
        builder.Finish(damaged.Pack(builder), file_identifier=b"TFL3")
        copies.append(bytes(builder.Output()))
    return copies


def test_a_model_that_crashes_tensorflow_lite_is_reported(capsys: pytest.CaptureFixture[str], crafted: Path, tmp_path: Path) -> None:
    """TensorFlow Lite aborts (SIGABRT) on some damaged int8 files; `info` checks in a child process and says so."""
    crashed = []
    for i, data in enumerate(retyped_add_outputs((crafted / "int8-io.tflite").read_bytes())):
        path = write(tmp_path / f"damaged-{i}.tflite", data)
        with pytest.raises(ModelError) as error:
            check_model_file(path)  # never loaded in this process: it could abort pytest
        assert str(error.value).startswith(f"{path}: ")
        if "TensorFlow Lite crashed (SIGABRT)" in str(error.value):
            crashed.append(path)
    if not crashed:
        pytest.skip("this TensorFlow Lite no longer aborts on the damaged models")
    code, _, err = run_cli(capsys, "info", "--model", str(crashed[0]))
    assert code == cli.EXIT_ERROR
    expected = f"quietmic: error: {crashed[0]}: TensorFlow Lite crashed (SIGABRT) loading or running this " \
        "model; the file is truncated or corrupt; re-export the model with 'python -m model_export' or copy it again"
    assert err.strip() == expected
    # `enhance` checks the model in a child process too, before loading it here (where it would abort pytest).
    source = tmp_path / "in.wav"
    wavfile.write(source, 16000, np.zeros(1600, dtype=np.float32))
    code, _, err = run_cli(capsys, "enhance", str(source), str(tmp_path / "out.wav"), "--model", str(crashed[0]))
    assert code == cli.EXIT_ERROR
    assert err.strip() == expected
    assert not (tmp_path / "out.wav").exists()


def test_wrong_size_output_is_caught_on_every_frame(crafted: Path) -> None:
    model = MaskModel(crafted / "dynamic-mask.tflite")
    positive = np.ones(model.metadata.feature_size, dtype=np.float32)
    assert model.step(positive).shape == (model.metadata.mask_size,)  # all features kept: right size
    with pytest.raises(ModelError, match=r"dynamic-mask.tflite: the model returned a mask of shape \[1, 16\]"):
        model.step(np.where(np.arange(model.metadata.feature_size) % 2, 1.0, -1.0).astype(np.float32))


def test_masks_outside_the_gain_range_are_noted_not_refused(capsys: pytest.CaptureFixture[str], crafted: Path) -> None:
    code, out, err = run_cli(capsys, "info", "--model", str(crafted / "mask-out-of-range.tflite"), "--json")
    info = json.loads(out)
    assert code == 0 and info["valid"] is True, err
    assert info["check"]["notes"] and "the engine clips them" in info["check"]["notes"][0]
    low, high = info["check"]["mask_range"]
    assert low < 0 and high > 1


# --- Valid models ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind,quantization", [("identity", "float32"), ("random", "int8")])
def test_info_validates_a_good_model(capsys: pytest.CaptureFixture[str], reference_model, kind: str, quantization: str) -> None:
    path = reference_model(kind, RATE, quantization)
    code, out, err = run_cli(capsys, "info", "--model", str(path), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["valid"] is True and info["check"]["problems"] == [] and info["check"]["notes"] == []
    assert info["check"]["frames"] == PROBE_FRAMES * len(PROBES)
    low, high = info["check"]["mask_range"]
    assert 0.0 <= low <= high <= 1.0
    if kind == "identity":
        assert low == high == 1.0
    code, out, _ = run_cli(capsys, "info", "--model", str(path))
    assert code == 0 and f"check          valid (ran {PROBE_FRAMES * len(PROBES)} probe frames" in out


def test_check_leaves_the_model_as_loaded(reference_model) -> None:
    path = reference_model("random", RATE, "int8")
    checked, fresh = MaskModel(path), MaskModel(path)
    assert check_model(checked).valid
    rng = np.random.default_rng(5)
    for _ in range(5):
        features = rng.uniform(-12, 0, checked.metadata.feature_size).astype(np.float32)
        np.testing.assert_array_equal(checked.step(features), fresh.step(features))


def test_model_bytes_remember_their_file(reference_model) -> None:
    path = reference_model("identity", RATE, "float32")
    data = read_model_bytes(path)
    assert MaskModel(data).source == str(path)
    with pytest.raises(ModelError, match=f"^{re.escape(str(path))}: .*no quietmic metadata"):
        MaskModel(type(data)(without_metadata(data), str(path)))


@pytest.mark.parametrize("args", [("info", "--model", "{bad}"), ("info", "--model", "{bad}", "--json")])
def test_real_command_line_exits_non_zero_without_traceback(tmp_path: Path, identity_bytes: bytes, args: tuple[str, ...]) -> None:
    bad = write(tmp_path / "cut.tflite", identity_bytes[: len(identity_bytes) // 2])
    done = subprocess.run(
        [sys.executable, "-m", "realtime", *(a.format(bad=bad) for a in args)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("quietmic: error:")]
    assert len(errors) == 1 and str(bad) in errors[0] and "truncated or corrupt" in errors[0]
    if "--json" in args:
        record = json.loads(done.stdout)
        assert record["valid"] is False and "truncated or corrupt" in record["problems"][0]


def test_loading_a_model_writes_nothing_to_stderr() -> None:
    """TensorFlow Lite's "Created ... XNNPACK delegate" banner would precede every one-line error after a load."""
    code = ("import sys; from realtime.model import MaskModel; from realtime.default_model import resolve_model_path; "
            "MaskModel(resolve_model_path(None)); print('loaded', file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "loaded\n", result.stderr


def test_the_running_service_refuses_a_model_that_would_crash_or_fail_it(
    crafted: Path, reference_model, tmp_path: Path
) -> None:
    """``quietmic set model F`` checks F in a child process first: without that, a damaged file would abort
    the service (and this test run), and a NaN-mask model would pass audio through unenhanced for good."""
    from realtime.config import Settings
    from realtime.desktop.service import Service

    service = Service(Settings(model=str(reference_model("random", 16000, "float32"))), backend="none")
    before = service.model_path
    damaged = [write(tmp_path / f"damaged-{i}.tflite", data)
               for i, data in enumerate(retyped_add_outputs((crafted / "int8-io.tflite").read_bytes()))]
    for path in [crafted / "nan-mask.tflite", *damaged]:
        with pytest.raises(ModelError, match=re.escape(str(path))):
            service.set("model", str(path))
        assert service.model_path == before and service.settings.model == str(before)
