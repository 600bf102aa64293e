"""The quietmic command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from realtime.default_model import DEFAULT_MODEL_PATH

REPO = Path(__file__).resolve().parent.parent


def quietmic(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "realtime", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_info_json_reports_metadata(reference_model) -> None:
    path = reference_model("random", 16000)
    result = quietmic("info", "--model", str(path), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["quantization"] == "int8" and info["sample_rate"] == 16000
    assert info["algorithmic_latency_ms"] == 10.0 and info["parameters"] > 50_000
    assert info["states"] and info["feature_size"] == info["mask_size"]


def test_info_text(reference_model) -> None:
    result = quietmic("info", "--model", str(reference_model("identity", 16000, "float32")))
    assert result.returncode == 0 and "algorithmic" in result.stdout and "float32" in result.stdout


def test_enhance_writes_aligned_output(reference_model, tmp_path: Path) -> None:
    rate = 16000
    signal = (0.2 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    wavfile.write(tmp_path / "in.wav", rate, signal)
    model = reference_model("identity", 16000, "float32")
    result = quietmic("enhance", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--model", str(model))
    assert result.returncode == 0, result.stderr
    _, out = wavfile.read(tmp_path / "out.wav")
    assert np.max(np.abs(out - signal)) < 1e-5


def test_missing_default_model_is_explained(tmp_path: Path) -> None:
    if DEFAULT_MODEL_PATH.exists():
        pytest.skip("a default model is installed")
    wavfile.write(tmp_path / "in.wav", 16000, np.zeros(1600, dtype=np.float32))
    for args in (("enhance", str(tmp_path / "in.wav"), str(tmp_path / "out.wav")), ("run",)):
        result = quietmic(*args)
        assert result.returncode == 1
        assert "no default model is installed" in result.stderr and "--model" in result.stderr
        assert "Traceback" not in result.stderr


def test_bad_config_is_one_line_without_traceback(tmp_path: Path, reference_model) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("atten_lim_db: -4\n")
    result = quietmic("info", "--config", str(config), "--model", str(reference_model("identity", 16000, "float32")))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "line 1: key 'atten_lim_db'" in result.stderr


def test_model_without_metadata_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"\x00" * 64)
    result = quietmic("info", "--model", str(bogus))
    assert result.returncode == 1 and "not a TensorFlow Lite model" in result.stderr
    result = quietmic("info", "--model", str(tmp_path / "missing.tflite"))
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "quietmic"
    assert script.exists(), "pip install -e . should install the quietmic console script"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0 and "quietmic" in result.stdout


def test_readme_and_ci_use_the_same_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    command = ci.split('TEST_COMMAND="', 1)[1].split('"\n', 1)[0]
    assert command in (REPO / "README.md").read_text()


def test_enhance_plot_writes_a_png(reference_model, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rate = 16000
    rng = np.random.default_rng(3)
    signal = (0.2 * np.sin(2 * np.pi * 300 * np.arange(rate) / rate) + 0.02 * rng.standard_normal(rate)).astype(np.float32)
    wavfile.write(tmp_path / "in.wav", rate, signal)
    plot = tmp_path / "what.png"
    model = reference_model("random", 16000)
    result = quietmic("enhance", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--model", str(model), "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


@pytest.mark.parametrize("command", ["status", "stop", "config", "set --temporary atten_lim_db 20"])
def test_service_commands_import_neither_numpy_nor_the_model_runtime(command: str, tmp_path: Path) -> None:
    """The commands that only talk to the service start fast: no numpy, LiteRT or PortAudio (issue 18, section 4)."""
    probe = ("import sys\nfrom realtime import cli\ntry:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "heavy = [m for m in ('numpy', 'ai_edge_litert', 'sounddevice', 'scipy') if m in sys.modules]\n"
             "print('HEAVY', heavy, file=sys.stderr)")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "XDG_STATE_HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", probe, *command.split()], capture_output=True, text=True, env=env,
                          timeout=60)
    assert "HEAVY []" in done.stderr, done.stderr
