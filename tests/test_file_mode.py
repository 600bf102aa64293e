"""File mode: same engine, aligned output, same format, atomic, never over the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from realtime.files.audio_file import read_wav
from realtime.errors import AudioFileError
from realtime.files.file_mode import enhance_file


def write_test_wav(path: Path, rate: int, channels: int, dtype: str, seconds: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(11)
    t = np.arange(int(rate * seconds)) / rate
    data = np.stack([0.3 * np.sin(2 * np.pi * (300 + 200 * c) * t) + 0.02 * rng.standard_normal(len(t)) for c in range(channels)], axis=1)
    if dtype == "int16":
        stored = np.round(data * 32767).astype(np.int16)
    else:
        stored = data.astype(np.float32)
    wavfile.write(path, rate, stored if channels > 1 else stored[:, 0])
    return stored


@pytest.mark.parametrize("rate,channels,dtype", [(16000, 1, "int16"), (48000, 2, "float32"), (44100, 2, "int16")])
def test_identity_file_round_trip(reference_model, tmp_path: Path, rate: int, channels: int, dtype: str) -> None:
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    stored = write_test_wav(source, rate, channels, dtype)
    before = source.read_bytes()
    result = enhance_file(source, target, reference_model("identity", 16000, "float32"))
    assert source.read_bytes() == before
    out_rate, out = wavfile.read(target)
    out = out if out.ndim == 2 else out[:, None]
    assert out_rate == rate and out.dtype == np.dtype(dtype) and out.shape == (len(stored), channels)
    tolerance = 1 if dtype == "int16" else 1e-5
    assert np.max(np.abs(out.astype(np.float64) - stored.reshape(out.shape).astype(np.float64))) <= tolerance
    assert result.latency_samples > 0
    assert {p.name for p in tmp_path.iterdir()} == {"in.wav", "out.wav"}  # no temporary file left


def test_stereo_channels_are_enhanced_independently(reference_model, tmp_path: Path) -> None:
    model = reference_model("random", 48000)
    source = tmp_path / "stereo.wav"
    write_test_wav(source, 48000, 2, "float32")
    enhance_file(source, tmp_path / "stereo_out.wav", model)
    _, data = wavfile.read(source)
    wavfile.write(tmp_path / "left.wav", 48000, data[:, 0])
    enhance_file(tmp_path / "left.wav", tmp_path / "left_out.wav", model)
    stereo, _, _ = read_wav(tmp_path / "stereo_out.wav")
    left, _, _ = read_wav(tmp_path / "left_out.wav")
    assert np.array_equal(stereo[:, 0], left[:, 0])


def test_refuses_to_overwrite_the_input(reference_model, tmp_path: Path) -> None:
    source = tmp_path / "in.wav"
    write_test_wav(source, 16000, 1, "int16")
    before = source.read_bytes()
    with pytest.raises(AudioFileError, match="is the input file"):
        enhance_file(source, source, reference_model("identity", 16000, "float32"))
    assert source.read_bytes() == before


def test_failed_write_leaves_no_file(reference_model, tmp_path: Path) -> None:
    source = tmp_path / "in.wav"
    write_test_wav(source, 16000, 1, "int16")
    with pytest.raises(AudioFileError, match="does not exist"):
        enhance_file(source, tmp_path / "missing_dir" / "out.wav", reference_model("identity", 16000, "float32"))
    assert [p.name for p in tmp_path.iterdir()] == ["in.wav"]
