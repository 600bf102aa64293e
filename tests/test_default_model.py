"""The default model shipped inside the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from realtime.default_model import DEFAULT_MODEL_PATH
from realtime.enhancer import Enhancer
from realtime.metadata import load_metadata_file

FLOAT_TWIN = DEFAULT_MODEL_PATH.with_name("default-float32.tflite")
MAX_PARAMETERS = 250_000
MAX_HOP_MS = 10.0
MAX_LATENCY_MS = 20.0

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="no default model is installed")


def test_default_model_contract() -> None:
    meta = load_metadata_file(DEFAULT_MODEL_PATH)
    assert meta.quantization == "int8"
    assert 0 < meta.parameters <= MAX_PARAMETERS
    assert 1000 * meta.hop_length / meta.sample_rate <= MAX_HOP_MS
    assert meta.algorithmic_latency_ms <= MAX_LATENCY_MS
    training = meta.training
    assert training["kind"] == "trained" and "model_export.train" in training["command"]
    assert "seed" in training and training["corpus"]["hours"]["speech"]["train"] > 1.0
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
