"""Shared fixtures: real model files made by the exporter, once per test session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

ModelFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def reference_model(tmp_path_factory: pytest.TempPathFactory) -> ModelFactory:
    """``reference_model(kind, sample_rate, quantization)``: path of an exported reference model.

    Each distinct model is exported once per session with
    ``python -m model_export reference`` (the command users run).
    """
    made: dict[tuple[str, int, str], Path] = {}
    directory = tmp_path_factory.mktemp("models")

    def make(kind: str, sample_rate: int, quantization: str = "int8") -> Path:
        key = (kind, sample_rate, quantization)
        if key not in made:
            path = directory / f"{kind}-{sample_rate}-{quantization}.tflite"
            command = [
                sys.executable, "-m", "model_export", "reference", kind,
                "--sample-rate", str(sample_rate), "--quantization", quantization, "-o", str(path),
            ]
            result = subprocess.run(command, capture_output=True, text=True)
            assert result.returncode == 0, f"export failed:\n{result.stdout}\n{result.stderr}"
            made[key] = path
        return made[key]

    return make
