"""Model export: real .tflite files written by model_export, checked through the runtime.

Conversion is slow (seconds per model), so each model is exported at most once
per test module (the ``export`` fixture caches them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="model export needs the 'export' extra (tensorflow)")

from ai_edge_litert import schema_py_generated as schema  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from model_export import contract, signals  # noqa: E402
from model_export.convert import convert_step_model, run_step_model  # noqa: E402
from model_export.errors import ExportError, ParityError  # noqa: E402
from model_export.exporter import ExportResult, export_model  # noqa: E402
from model_export.keras_models import GRU_STATE, IDENTITY_STATE  # noqa: E402
from model_export.parity import (  # noqa: E402
    FLOAT32_TOLERANCE,
    INT8_TOLERANCE,
    ParityReport,
    ParityTolerance,
    check_parity,
)
from model_export import __main__ as cli  # noqa: E402
from model_export.references import REFERENCES, build_reference  # noqa: E402
from model_export.tflite_metadata import BUFFER_ALIGNMENT, buffer_alignments, embed_metadata  # noqa: E402
from realtime import dsp  # noqa: E402
from realtime.errors import ModelError  # noqa: E402
from realtime.metadata import METADATA_NAME, load_metadata, read_tflite_metadata  # noqa: E402
from realtime.model import MaskModel  # noqa: E402

REPO_ROOT = Path(__file__).parent.parent
TEST_CLIP_SECONDS = 2.0
TEST_CLIP_SEED = 4242
INT8_STEP = 1.0 / 256
"""Resolution of an int8 tensor spanning [0, 1]."""

Exporter = Callable[[str, int, str], ExportResult]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Exporter:
    """``export(kind, sample_rate, quantization)``: the reference model, exported once per module."""
    directory = tmp_path_factory.mktemp("models")
    cache: dict[tuple[str, int, str], ExportResult] = {}

    def get(kind: str, sample_rate: int, quantization: str) -> ExportResult:
        key = (kind, sample_rate, quantization)
        if key not in cache:
            models = build_reference(kind, sample_rate, seed=0)
            cache[key] = export_model(models, directory / f"{kind}-{sample_rate}-{quantization}.tflite", quantization)
        return cache[key]

    return get


def _masks(path: Path, seconds: float = TEST_CLIP_SECONDS) -> np.ndarray:
    """Masks ``[frames, M]`` of the model at ``path`` over a synthetic clip, run by the runtime."""
    model = MaskModel(path)
    audio = signals.synthetic_audio(model.metadata.sample_rate, seconds, TEST_CLIP_SEED)
    return np.stack([model.step(frame) for frame in signals.audio_features(audio, model.metadata)])


def test_metadata_round_trips_through_the_file(export: Exporter) -> None:
    result = export("random", 16000, "int8")
    data = result.path.read_bytes()
    meta = load_metadata(data)
    assert meta == result.metadata
    assert len(data) == result.size_bytes
    framing = dsp.Framing(16000, 320, 160, dsp.SQRT_HANN)
    assert (meta.sample_rate, meta.window_length, meta.hop_length, meta.window) == (16000, 320, 160, "sqrt_hann")
    assert meta.lookahead_frames == 0 and meta.algorithmic_latency_samples == 160
    edges = tuple(dsp.erb_band_edges(32, framing))
    assert meta.features.type == dsp.FEATURE_LOG_POWER_BANDS and meta.features.band_edges_hz == edges
    assert meta.mask.type == dsp.MASK_BAND_GAIN and meta.mask.band_edges_hz == edges
    assert (meta.features.tensor, meta.mask.tensor) == ("features", "mask")
    assert [(s.input, s.output, s.shape) for s in meta.states] == [(GRU_STATE, GRU_STATE + "_out", (1, 128))]
    assert meta.quantization == "int8"
    assert 90_000 <= meta.parameters <= 120_000
    assert meta.training["kind"] == "reference" and meta.training["reference"] == "random"
    assert meta.training["seed"] == 0
    figures = meta.training["export"]
    assert figures["parity_max_abs"] == result.parity.max_abs
    assert figures["parity_mean_abs"] == result.parity.mean_abs
    assert figures["parity_frames"] == result.parity.frames > 100
    entries = schema.ModelT.InitFromPackedBuf(bytearray(data), 0).metadata
    assert [e.name for e in entries].count(METADATA_NAME.encode()) == 1  # re-stamping replaced it
    model = MaskModel(result.path)
    assert model.metadata == meta
    assert model.step(np.zeros(meta.feature_size)).shape == (meta.mask_size,)


def test_48khz_model_has_48khz_framing_and_bands(export: Exporter) -> None:
    meta = load_metadata(export("identity", 48000, "float32").path.read_bytes())
    assert (meta.sample_rate, meta.window_length, meta.hop_length) == (48000, 960, 480)
    assert meta.features.band_edges_hz == tuple(dsp.erb_band_edges(32, meta.framing))
    assert meta.features.band_edges_hz[-1] == 24000.0


def test_float32_parity_is_within_tolerance(export: Exporter) -> None:
    result = export("random", 16000, "float32")
    assert result.parity.max_abs <= FLOAT32_TOLERANCE.max_abs
    assert result.parity.mean_abs <= FLOAT32_TOLERANCE.mean_abs
    assert result.metadata.quantization == "float32"
    figures = load_metadata(result.path.read_bytes()).training["export"]
    assert figures["parity_max_abs"] == result.parity.max_abs
    assert figures["parity_tolerance_max_abs"] == FLOAT32_TOLERANCE.max_abs


def test_int8_parity_is_within_tolerance(export: Exporter) -> None:
    result = export("random", 16000, "int8")
    assert 0.0 < result.parity.max_abs <= INT8_TOLERANCE.max_abs
    assert 0.0 < result.parity.mean_abs <= INT8_TOLERANCE.mean_abs
    assert result.size_bytes < export("random", 16000, "float32").size_bytes / 2


def test_identity_float32_mask_is_exactly_one(export: Exporter) -> None:
    result = export("identity", 16000, "float32")
    masks = _masks(result.path)
    assert masks.dtype == np.float32
    assert np.all(masks == 1.0)
    assert result.parity.max_abs == 0.0


def test_identity_int8_mask_is_one_within_a_step(export: Exporter) -> None:
    masks = _masks(export("identity", 16000, "int8").path)
    assert np.all(np.abs(masks - 1.0) <= INT8_STEP)


@pytest.mark.parametrize("quantization", ["float32", "int8"])
def test_identity_state_survives_conversion_and_is_used(export: Exporter, quantization: str) -> None:
    result = export("identity", 16000, quantization)
    runner = Interpreter(model_path=str(result.path)).get_signature_runner()
    assert set(runner.get_input_details()) == {"features", IDENTITY_STATE}
    assert set(runner.get_output_details()) == {"mask", IDENTITY_STATE + "_out"}
    features = np.full((1, 32), -6.0, dtype=np.float32)
    low = runner(features=features, **{IDENTITY_STATE: np.full((1, 1), -8.0, np.float32)})
    high = runner(features=features, **{IDENTITY_STATE: np.full((1, 1), -4.0, np.float32)})
    assert high[IDENTITY_STATE + "_out"][0, 0] > low[IDENTITY_STATE + "_out"][0, 0] + 1.0


@pytest.mark.parametrize("quantization", ["float32", "int8"])
def test_random_masks_lie_in_unit_range_and_vary(export: Exporter, quantization: str) -> None:
    masks = _masks(export("random", 16000, quantization).path)
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    assert masks.std(axis=0).mean() > 0.01  # varies over time
    assert masks.std(axis=1).mean() > 0.01  # varies over bands


def test_exported_buffers_are_aligned(export: Exporter) -> None:
    offsets = buffer_alignments(export("random", 16000, "int8").path.read_bytes())
    assert offsets and all(offset % BUFFER_ALIGNMENT == 0 for offset in offsets)


def test_cli_writes_a_reference_model(tmp_path: Path) -> None:
    out = tmp_path / "random.tflite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "model_export", "reference", "random", "--sample-rate", "16000", "-o", str(out)]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(out) in done.stdout and "parity" in done.stdout and "int8" in done.stdout
    meta = load_metadata(out.read_bytes())
    assert meta.name == "reference-random-gru" and meta.quantization == "int8"
    assert meta.training["export"]["parity_max_abs"] <= INT8_TOLERANCE.max_abs


def test_cli_reference_choices_match_the_references() -> None:
    assert cli.REFERENCE_CHOICES == REFERENCES


def test_cli_rejects_a_rate_without_whole_sample_hops(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "x.tflite"
    command = [sys.executable, "-m", "model_export", "reference", "identity", "--sample-rate", "22050", "-o", str(out)]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "error:" in done.stderr and "22050" in done.stderr
    assert not out.exists()


def test_tflite_without_quietmic_metadata_is_refused() -> None:
    models = build_reference("identity", 16000)
    bare = convert_step_model(models, "float32")
    assert METADATA_NAME not in read_tflite_metadata(bare)
    with pytest.raises(ModelError, match="no quietmic metadata"):
        load_metadata(bare)
    with pytest.raises(ModelError, match="no quietmic metadata"):
        MaskModel(bare)
    stamped = embed_metadata(bare, models.metadata)
    assert load_metadata(stamped) == models.metadata


def test_keras_step_model_matches_sequence_model() -> None:
    models = build_reference("random", 16000, seed=3)
    features = signals.synthetic_features(models.metadata, 0.5, [1])[0]
    step_masks, states = run_step_model(models, features)
    sequence_masks = np.asarray(models.sequence(features[None]))[0]
    np.testing.assert_allclose(step_masks, sequence_masks, atol=1e-5)
    assert states[0].shape == (len(features), 1, 128)
    assert np.all(states[0][0] == 0.0) and np.any(states[0][-1] != 0.0)


def test_random_reference_is_seeded() -> None:
    a, b, c = (build_reference("random", 16000, seed=s) for s in (7, 7, 8))
    for wa, wb in zip(a.step.get_weights(), b.step.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a.step.get_weights(), c.step.get_weights()))


def test_standard_framing() -> None:
    assert contract.standard_framing(16000) == dsp.Framing(16000, 320, 160, dsp.SQRT_HANN)
    assert contract.standard_framing(48000) == dsp.Framing(48000, 960, 480, dsp.SQRT_HANN)
    with pytest.raises(ValueError, match="divisible by 100"):
        contract.standard_framing(22050)


def test_a_longer_window_keeps_the_hop_and_gives_finer_bins() -> None:
    framing = contract.standard_framing(16000, window_ms=30.0)
    assert framing == dsp.Framing(16000, 480, 160, dsp.SQRT_HANN)
    assert framing.n_bins == 241
    assert contract.standard_framing(48000, window_ms=30.0) == dsp.Framing(48000, 1440, 480, dsp.SQRT_HANN)
    metadata = contract.bin_model_metadata("wide", "1", 16000, (contract.state_spec("s", 4),), {}, window_ms=30.0)
    assert (metadata.window_length, metadata.hop_length, metadata.feature_size) == (480, 160, 241)
    assert metadata.algorithmic_latency_ms == 20.0
    with pytest.raises(ValueError, match="at least two"):
        contract.standard_framing(16000, window_ms=15.0)


def test_parity_above_tolerance_raises() -> None:
    check_parity(ParityReport(max_abs=0.01, mean_abs=0.001, frames=10), "int8")
    with pytest.raises(ParityError, match="above the tolerance"):
        check_parity(ParityReport(max_abs=1e-3, mean_abs=1e-6, frames=10), "float32")
    with pytest.raises(ParityError, match="above the tolerance"):
        check_parity(ParityReport(max_abs=0.05, mean_abs=0.02, frames=10), "int8")
    with pytest.raises(ParityError, match="above the tolerance"):
        check_parity(ParityReport(max_abs=0.01, mean_abs=0.001, frames=10), "int8", ParityTolerance(0.005, 0.01))


def test_export_refuses_a_missing_directory(tmp_path: Path) -> None:
    models = build_reference("identity", 16000)
    with pytest.raises(ExportError, match="does not exist"):
        export_model(models, tmp_path / "missing" / "model.tflite", "float32")
