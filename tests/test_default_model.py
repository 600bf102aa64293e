"""The default model shipped inside the package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.io import wavfile

from model_export import DEFAULT_FLOAT_TWIN
from realtime.default_model import BUNDLED_MODELS, DEFAULT_MODEL_PATH, MODELS_DIR, resolve_model_path
from realtime.enhancer import Enhancer
from realtime.metadata import load_metadata_file

REPO = Path(__file__).resolve().parent.parent

FLOAT_TWIN = DEFAULT_FLOAT_TWIN
LOW_LATENCY_MS = 10.0
"""Algorithmic latency of the bundled ``low-latency`` model: the 10 ms overlap-add alone, no lookahead."""
MAX_PARAMETERS = 300_000
MAX_HOP_MS = 10.0
MAX_LATENCY_MS = 20.0

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="no default model is installed")


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_bundled_models_meet_the_contract(name: str) -> None:
    path = MODELS_DIR / BUNDLED_MODELS[name]
    assert path.is_file(), f"{path} is not installed; pyproject's package-data must include it"
    meta = load_metadata_file(path)
    assert meta.quantization == "int8"
    assert 0 < meta.parameters <= MAX_PARAMETERS
    assert 1000 * meta.hop_length / meta.sample_rate <= MAX_HOP_MS
    assert meta.algorithmic_latency_ms <= MAX_LATENCY_MS
    training = meta.training
    assert training["kind"] == "trained" and "model_export.train" in training["command"]
    assert "seed" in training and training["corpus"]["hours"]["speech"]["train"] > 1.0
    # The metadata names the config that reproduces the model.
    config_file = f"model_export/configs/{name.replace('-', '_')}.yaml"
    assert training["config_file"] == config_file
    assert training["config"]["export"]["output"] == f"realtime/models/{BUNDLED_MODELS[name]}"
    if f"--config {config_file}" not in training["command"]:
        # Trained with another config (an experiment's, chosen on validation) and installed with this one's
        # --export-checkpoint: the two must be the same training, apart from where the exports go.
        assert f"--config {config_file} --export-checkpoint" in training["exported_from_checkpoint"]
        trained_with = training["command"].split("--config ", 1)[1].split()[0]
        same = [yaml.safe_load((REPO / path).read_text()) for path in (trained_with, config_file)]
        for config in same:
            config.pop("export")
        assert same[0] == same[1], f"{trained_with} and {config_file} differ in more than their exports"
    if name == "low-latency":
        assert meta.lookahead_frames == 0 and meta.algorithmic_latency_ms == LOW_LATENCY_MS


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_bundled_models_pass_the_child_process_check(name: str) -> None:
    """File mode loads bundled models without this check (``is_bundled_model``): it is made here, before they ship."""
    from realtime.default_model import is_bundled_model
    from realtime.model import check_model_file

    path = MODELS_DIR / BUNDLED_MODELS[name]
    assert is_bundled_model(path)
    check = check_model_file(path)
    assert check.valid, check.problems


def test_default_model_has_a_float_twin() -> None:
    meta = load_metadata_file(DEFAULT_MODEL_PATH)
    twin = load_metadata_file(FLOAT_TWIN)
    assert twin.quantization == "float32" and twin.parameters == meta.parameters


@pytest.mark.parametrize("rate", [16000, 48000])
def test_default_model_runs_at_device_rates(rate: int) -> None:
    enhancer = Enhancer(DEFAULT_MODEL_PATH, rate)
    rng = np.random.default_rng(0)
    noise = (0.05 * rng.standard_normal(rate)).astype(np.float32)
    out = enhancer.process(noise)
    assert np.isfinite(out).all()
    latency = enhancer.latency
    # Steady white noise is not speech: the model attenuates it.
    assert np.std(out[latency + rate // 2 :]) < 0.7 * np.std(noise[rate // 2 :])


def test_enhance_without_model_uses_the_default(tmp_path: Path) -> None:
    rate = 16000
    rng = np.random.default_rng(1)
    wavfile.write(tmp_path / "in.wav", rate, (0.05 * rng.standard_normal(rate)).astype(np.float32))
    result = subprocess.run(
        [sys.executable, "-m", "realtime", "enhance", str(tmp_path / "in.wav"), str(tmp_path / "out.wav")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert wavfile.read(tmp_path / "out.wav")[1].shape == (rate,)


def test_bundled_model_names_resolve_unless_a_file_of_that_name_exists(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path(None) == DEFAULT_MODEL_PATH
    assert resolve_model_path("low-latency") == MODELS_DIR / "low-latency.tflite"
    assert resolve_model_path("default") == DEFAULT_MODEL_PATH
    (tmp_path / "low-latency").write_bytes(b"")  # a path always wins over a name
    assert resolve_model_path("low-latency") == Path("low-latency")
    assert resolve_model_path("other.tflite") == Path("other.tflite")


def test_run_and_info_take_a_bundled_model_by_name() -> None:
    result = subprocess.run([sys.executable, "-m", "realtime", "info", "--model", "low-latency", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["path"] == str(MODELS_DIR / "low-latency.tflite") and info["valid"]
    assert info["algorithmic_latency_ms"] == LOW_LATENCY_MS


def test_detached_service_gets_the_bundled_file_not_a_relative_name(tmp_path: Path, monkeypatch) -> None:
    from realtime.cli import _service_options, build_parser

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["start", "--model", "low-latency"])
    options = _service_options(args)
    assert options[options.index("--model") + 1] == str(MODELS_DIR / "low-latency.tflite")
