"""Where quietmic finds its model (a file, one of the models bundled with the package, or the
default), and the attenuation limit the default model is run with.

This module imports nothing heavy: the settings (:mod:`realtime.config`) and the package's own
import take their defaults from here without loading numpy or TensorFlow Lite.
"""

from __future__ import annotations

from pathlib import Path

from realtime.errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent / "models"
"""Where the bundled models are installed (inside the wheel)."""

BUNDLED_MODELS = {
    "default": "default.tflite",
    "low-latency": "low-latency.tflite",
}
"""Bundled models by the name ``--model`` (and ``model:`` in the config) accepts instead of a path:
``default`` (20 ms algorithmic latency, one 10 ms frame of lookahead) and ``low-latency``
(causal, 10 ms). How each was trained and how they compare: the README."""

DEFAULT_MODEL_NAME = "default"
"""The bundled model used when none is given."""

DEFAULT_MODEL_PATH = MODELS_DIR / BUNDLED_MODELS[DEFAULT_MODEL_NAME]
"""The model used when none is given."""

DEFAULT_ATTEN_LIM_DB = 35.0
"""Default attenuation limit, in dB, of the app and the library alike: the best PESQ-WB on the corpus's
validation mixtures for the default model at no cost in SI-SDR (``python -m benchmarks.attenuation``,
``benchmarks/results/attenuation.json``)."""

NO_DEFAULT_MODEL_HELP = (
    "no default model is installed with this quietmic; make one with "
    "'python -m model_export reference random --sample-rate 48000 -o model.tflite' "
    "(needs: pip install 'quietmic[export]') and pass it with --model model.tflite "
    "or set 'model:' in the config file"
)


def resolve_model_path(path: str | Path | None) -> Path:
    """The model file to use.

    ``None`` is the installed default; the name of a bundled model (:data:`BUNDLED_MODELS`)
    is its file, unless a file of that name exists in the working directory (a path always
    wins); anything else is a path.
    """
    if path is None:
        if not DEFAULT_MODEL_PATH.is_file():
            raise ModelError(NO_DEFAULT_MODEL_HELP)
        return DEFAULT_MODEL_PATH
    name = str(path)
    if name in BUNDLED_MODELS and not Path(name).exists():
        bundled = MODELS_DIR / BUNDLED_MODELS[name]
        if not bundled.is_file():
            raise ModelError(f"the bundled model {name!r} is not installed with this quietmic ({bundled} is missing); "
                             "reinstall quietmic or pass a .tflite file with --model")
        return bundled
    return Path(path).expanduser()


def is_bundled_model(path: str | Path) -> bool:
    """Whether ``path`` is one of the model files installed with the package (:data:`BUNDLED_MODELS`).

    Those are run through :func:`realtime.model.check_model_file` by the test suite before they ship
    (``tests/test_default_model.py``), so file work loads them without checking them again in a child
    process (which costs most of a short file's run time).
    """
    try:
        resolved = Path(path).resolve()
    except OSError:
        return False
    return resolved.parent == MODELS_DIR and resolved.name in BUNDLED_MODELS.values()
