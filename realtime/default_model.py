"""Where quietmic finds its model when none is given."""

from __future__ import annotations

from pathlib import Path

from realtime.errors import ModelError

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "default.tflite"
"""The model installed with the package (shipped inside the wheel)."""

NO_DEFAULT_MODEL_HELP = (
    "no default model is installed with this quietmic; make one with "
    "'python -m model_export reference random --sample-rate 48000 -o model.tflite' "
    "(needs: pip install 'quietmic[export]') and pass it with --model model.tflite "
    "or set 'model:' in the config file"
)


def resolve_model_path(path: str | Path | None) -> Path:
    """The model file to use: ``path`` if given, else the installed default."""
    if path is not None:
        return Path(path).expanduser()
    if not DEFAULT_MODEL_PATH.is_file():
        raise ModelError(NO_DEFAULT_MODEL_HELP)
    return DEFAULT_MODEL_PATH
