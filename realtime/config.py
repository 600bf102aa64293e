"""quietmic's settings: documented defaults, a YAML file, and command-line overrides.

Precedence: built-in defaults < the config file < command-line flags. The file is
``$XDG_CONFIG_HOME/quietmic/config.yaml`` (``~/.config/quietmic/config.yaml``)
when it exists, or the one given with ``--config``. It is read with
``yaml.safe_load`` semantics; an unknown key or a bad value is reported on one
line naming the file, the line and the key.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from realtime.errors import ConfigError

CONFIG_FILE_NAME = "config.yaml"
APP_DIR_NAME = "quietmic"
LOG_LEVELS = ("debug", "info", "warning", "error")

DEFAULT_CONFIG_YAML = """\
# quietmic configuration (YAML). Every key is optional; these are the defaults.

# Model file (.tflite exported by model_export). null: the model installed with quietmic.
model: null

# Audio devices, by index or by a part of the name (see `quietmic devices`).
# null: the system's default input / output device.
input_device: null
output_device: null

# Which channel of the input device carries the microphone (0 = first).
input_channel: 0

# Device sample rate in Hz. null: the input device's default rate.
# It must equal the audio server's rate (JACK cannot resample).
sample_rate: null

# Samples per audio callback. null: the model's hop at the device rate (10 ms),
# which adds no buffering delay. Smaller blocks lower the device delay but
# cost more CPU per second and, if not a divisor of the hop, add buffering.
block_size: null

# Most attenuation applied to any frequency, in dB. null: no limit.
# 0 passes the input through unchanged (only delayed).
atten_lim_db: null

# Pass the microphone through without denoising (same delay).
bypass: false

# Log verbosity: debug, info, warning or error.
log_level: info
"""


@dataclass(frozen=True)
class Settings:
    """Effective settings (see :data:`DEFAULT_CONFIG_YAML` for their meaning)."""

    model: str | None = None
    input_device: int | str | None = None
    output_device: int | str | None = None
    input_channel: int = 0
    sample_rate: int | None = None
    block_size: int | None = None
    atten_lim_db: float | None = None
    bypass: bool = False
    log_level: str = "info"

    def updated(self, **overrides: Any) -> Settings:
        """A copy with the given values validated and applied; ``None`` values are ignored."""
        changes = {}
        for key, value in overrides.items():
            if value is None:
                continue
            changes[key] = validate_value(key, value, "command line")
        return replace(self, **changes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_path(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected the path of a .tflite model file or null")
    return str(Path(value).expanduser())


def _device(value: Any) -> int | str | None:
    if value is None:
        return None
    if _is_int(value) and value >= 0:
        return value
    if isinstance(value, str) and value.strip():
        return int(value) if value.strip().isdigit() else value
    raise ValueError("expected a device index (0, 1, ...), a part of a device name, or null")


def _channel(value: Any) -> int:
    if _is_int(value) and 0 <= value:
        return value
    raise ValueError("expected a channel number >= 0 (0 = first channel)")


def _sample_rate(value: Any) -> int | None:
    if value is None:
        return None
    if _is_int(value) and 8000 <= value <= 384000:
        return value
    raise ValueError("expected a sample rate in Hz between 8000 and 384000, or null")


def _block_size(value: Any) -> int | None:
    if value is None:
        return None
    if _is_int(value) and 16 <= value <= 16384:
        return value
    raise ValueError("expected a block size in samples between 16 and 16384, or null")


def _atten(value: Any) -> float | None:
    if value is None:
        return None
    if (_is_int(value) or isinstance(value, float)) and not math.isnan(value) and 0 <= value <= 200:
        return float(value)
    raise ValueError("expected an attenuation limit in dB between 0 and 200, or null for no limit")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


def _log_level(value: Any) -> str:
    if isinstance(value, str) and value.lower() in LOG_LEVELS:
        return value.lower()
    raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "model": _optional_path,
    "input_device": _device,
    "output_device": _device,
    "input_channel": _channel,
    "sample_rate": _sample_rate,
    "block_size": _block_size,
    "atten_lim_db": _atten,
    "bypass": _bool,
    "log_level": _log_level,
}
assert set(_VALIDATORS) == {f.name for f in fields(Settings)}


def validate_value(key: str, value: Any, where: str) -> Any:
    """The validated value of ``key``, or a :class:`ConfigError` naming ``where`` and the key."""
    if key not in _VALIDATORS:
        raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(_VALIDATORS))}")
    try:
        return _VALIDATORS[key](value)
    except ValueError as exc:
        raise ConfigError(f"{where}: key {key!r}: {exc} (got {value!r})") from None


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/quietmic/config.yaml`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP_DIR_NAME / CONFIG_FILE_NAME


def parse_config_text(text: str, source: str) -> Settings:
    """Settings from YAML text; errors name ``source``, the line and the key."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    if data is None:
        return Settings()
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{source}: the config must be a mapping of keys to values (key: value lines)")
    lines = {
        key_node.value: key_node.start_mark.line + 1
        for key_node, _ in root.value
        if isinstance(key_node, yaml.ScalarNode)
    }
    values = {}
    for key, value in data.items():
        where = f"{source}, line {lines.get(key, '?')}"
        if not isinstance(key, str):
            raise ConfigError(f"{where}: keys must be names, got {key!r}")
        values[key] = validate_value(key, value, where)
    return Settings(**values)


def load_settings(path: str | Path | None = None) -> tuple[Settings, Path | None]:
    """Settings from ``path``, or from the default file if it exists, else the defaults.

    Returns the settings and the file they came from (``None`` for defaults).
    An explicitly given ``path`` must exist.
    """
    if path is None:
        candidate = default_config_path()
        if not candidate.exists():
            return Settings(), None
        config_path = candidate
    else:
        config_path = Path(path).expanduser()
        if not config_path.exists():
            raise ConfigError(f"config file {config_path} does not exist; check the --config path")
    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc}") from None
    return parse_config_text(text, str(config_path)), config_path
