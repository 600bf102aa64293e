"""quietmic's settings: documented defaults, a YAML file, and command-line overrides.

Precedence: built-in defaults < the config file < command-line flags. The file is
``$XDG_CONFIG_HOME/quietmic/config.yaml`` (``~/.config/quietmic/config.yaml``)
when it exists, or the one given with ``--config``. It is read with
``yaml.safe_load`` semantics; every problem (YAML syntax, a top level that is
not a mapping, a duplicate, unknown or misspelt key, a value of the wrong type
or out of range, a file that is not UTF-8 text) is a :class:`ConfigError` of one
line naming the file and line (the option, for command-line values) and the key.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from realtime.default_model import DEFAULT_ATTEN_LIM_DB
from realtime.errors import ConfigError
from realtime.messages import one_line, short_repr
from realtime.nesting import bracket_depth

CONFIG_FILE_NAME = "config.yaml"
APP_DIR_NAME = "quietmic"
LOG_LEVELS = ("debug", "info", "warning", "error")

DEFAULT_CONFIG_YAML = """\
# quietmic configuration (YAML). Every key is optional; these are the defaults.

# Model: a .tflite file exported by model_export, or a model bundled with quietmic by
# name: default (20 ms algorithmic latency) or low-latency (causal, 10 ms).
# null: the default model.
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
# 0 passes the input through unchanged (only delayed). The default, 35, keeps
# a faint trace of the noise, which spares the speech around it; it scored best
# on validation mixtures (python -m benchmarks.attenuation).
atten_lim_db: 35

# Pass the microphone through without denoising (same delay).
bypass: false

# Speaker-side denoising (PulseAudio or PipeWire): the background service adds an
# output called "quietmic speakers"; what programs play into it is denoised and
# played on your real output (for noisy callers). Same model and attenuation limit.
speakers: false

# Echo cancellation (PulseAudio or PipeWire), for speakers instead of headphones: the
# background service removes from the microphone what your output plays (WebRTC's AEC3,
# before the denoiser), so the other side of a call does not hear itself. Needs the
# optional package: pip install 'quietmic[echo]'.
echo_cancel: false

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
    atten_lim_db: float | None = DEFAULT_ATTEN_LIM_DB
    bypass: bool = False
    speakers: bool = False
    echo_cancel: bool = False
    log_level: str = "info"

    def updated(self, **overrides: Any) -> Settings:
        """A copy with the given command-line values validated and applied; ``None`` values are ignored.

        Errors name the command-line option (``--block-size``) of the key.
        """
        changes = {}
        for key, value in overrides.items():
            if value is None:
                continue
            changes[key] = validate_value(key, value, "command line", label=f"option {option_name(key)}")
        return replace(self, **changes)


def option_name(key: str) -> str:
    """The command-line option of a setting: ``block_size`` -> ``--block-size``."""
    return "--" + key.replace("_", "-")


# --- Validating one value -------------------------------------------------------------------

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 384_000
"""Accepted device sample rates, in Hz."""

MIN_BLOCK_SIZE = 16
MAX_BLOCK_SIZE = 16_384
"""Accepted samples per audio callback."""

MAX_ATTEN_LIM_DB = 200.0
"""Largest attenuation limit, in dB (200 dB is already far below any audible level)."""

MAX_CHANNEL = 255
"""Highest input channel number (0 = first); no audio interface has more channels."""

MAX_DEVICE_INDEX = 4095
"""Highest audio device index accepted."""

MAX_TEXT_CHARS = 4096
"""Longest device name or model path accepted, in characters (Linux's PATH_MAX)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any, what: str) -> str:
    """A non-empty, single-line string of at most :data:`MAX_TEXT_CHARS` characters, else ``ValueError``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected {what}")
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"expected {what}; this is {len(value)} characters long, at most {MAX_TEXT_CHARS} are accepted")
    if "\x00" in value or "\n" in value:
        raise ValueError(f"expected {what}, on one line and without NUL characters")
    return value


def _optional_path(value: Any) -> str | None:
    if value is None:
        return None
    return str(Path(_text(value, "the path of a .tflite model file or null")).expanduser())


def _device(value: Any) -> int | str | None:
    if value is None:
        return None
    expected = f"a device index (0 to {MAX_DEVICE_INDEX}), a part of a device name, or null"
    if _is_int(value) and 0 <= value <= MAX_DEVICE_INDEX:
        return value
    if isinstance(value, str):
        name = _text(value, expected).strip()
        if not (name.isascii() and name.isdigit()):
            return name
        if int(name) <= MAX_DEVICE_INDEX:
            return int(name)
    raise ValueError(f"expected {expected}")


def _channel(value: Any) -> int:
    if _is_int(value) and 0 <= value <= MAX_CHANNEL:
        return value
    raise ValueError(f"expected a channel number between 0 and {MAX_CHANNEL} (0 = first channel)")


def _sample_rate(value: Any) -> int | None:
    if value is None:
        return None
    if _is_int(value) and MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
        return value
    raise ValueError(f"expected a sample rate in Hz, a whole number between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE}, or null")


def _block_size(value: Any) -> int | None:
    if value is None:
        return None
    if _is_int(value) and MIN_BLOCK_SIZE <= value <= MAX_BLOCK_SIZE:
        return value
    raise ValueError(
        f"expected a block size in samples, a whole number between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}, or null"
    )


def _atten(value: Any) -> float | None:
    if value is None:
        return None
    expected = f"expected an attenuation limit in dB between 0 and {MAX_ATTEN_LIM_DB:g}, or null for no limit"
    if not (_is_int(value) or isinstance(value, float)):
        raise ValueError(expected)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{expected}, not NaN or infinity")
    if not 0 <= value <= MAX_ATTEN_LIM_DB:  # compared before converting: a huge integer cannot become a float
        raise ValueError(expected)
    return float(value)


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
    "speakers": _bool,
    "echo_cancel": _bool,
    "log_level": _log_level,
}
assert set(_VALIDATORS) == {f.name for f in fields(Settings)}

_BOOLEAN_KEYS = frozenset({"bypass", "speakers", "echo_cancel"})

_YAML_BOOLEAN_HINT = "; note that YAML reads yes/no/on/off/true/false as booleans"


SUGGESTION_CUTOFF = 0.5
"""Least :mod:`difflib` similarity (0 to 1) for an unknown key to get a "did you mean" suggestion."""


def suggest_key(key: str) -> str:
    """`` (did you mean 'block_size'?)`` for a misspelt key, or ``""``."""
    matches = difflib.get_close_matches(key.lower(), list(_VALIDATORS), n=1, cutoff=SUGGESTION_CUTOFF)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def validate_value(key: str, value: Any, where: str, *, label: str | None = None) -> Any:
    """The validated value of ``key``, or a :class:`ConfigError` naming ``where`` and the setting.

    Args:
        where: where the value came from (``"config.yaml, line 3"``, ``"quietmic set atten_lim_db"``).
        label: how the message names the setting; default ``key 'name'``.
    """
    if key not in _VALIDATORS:
        raise ConfigError(
            one_line(
                f"{where}: unknown key {short_repr(key)}{suggest_key(key)}; known keys: {', '.join(sorted(_VALIDATORS))}"
            )
        )
    try:
        return _VALIDATORS[key](value)
    except ValueError as exc:
        hint = _YAML_BOOLEAN_HINT if isinstance(value, bool) and key not in _BOOLEAN_KEYS else ""
        name = label or f"key {key!r}"
        raise ConfigError(one_line(f"{where}: {name}: {exc} (got {short_repr(value)}){hint}")) from None


def parse_setting(key: str, text: str) -> Any:
    """A ``quietmic set KEY VALUE`` value (YAML syntax: ``12``, ``true``, ``null``), validated.

    A model is a path (``default`` or ``null``: the installed model).
    """
    if key == "model":
        value = None if text.strip().lower() in ("", "null", "default") else text
    else:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
    return validate_value(key, value, "quietmic set", label=key)


# --- Reading a config file ------------------------------------------------------------------

MAX_CONFIG_BYTES = 1024 * 1024
"""Largest config file read, in bytes: a config is a few lines, so anything bigger is the wrong file."""

_SYNTAX_HINT = "fix the syntax: each setting is a 'key: value' line (see 'quietmic config')"


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/quietmic/config.yaml`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP_DIR_NAME / CONFIG_FILE_NAME


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, max(position, 0)) + 1


def _yaml_error(exc: yaml.YAMLError, text: str, source: str) -> ConfigError:
    """One line saying where the YAML syntax breaks (line, column) and what is wrong."""
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        return ConfigError(
            f"{source}, line {_line_of(text, exc.position)}: the character #x{char:04x} is not allowed in YAML "
            "(is this a text file?); remove it"
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else source
        problem = exc.problem or exc.context or "syntax error"
        context = ""
        if exc.context and exc.context_mark is not None and exc.problem:
            context = f" ({exc.context} started on line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        return ConfigError(one_line(f"{where}: not valid YAML: {problem}{context}; {_SYNTAX_HINT}"))
    return ConfigError(one_line(f"{source}: not valid YAML: {str(exc)[:200]}; {_SYNTAX_HINT}"))


MAX_FLOW_NESTING = 64
"""Deepest ``[`` / ``{`` nesting accepted; a config nests one level. Checked before parsing, since
PyYAML takes about a second to reach its recursion limit on a line of a thousand brackets."""


def _compose(text: str, source: str) -> tuple[yaml.Node | None, yaml.SafeLoader]:
    """The YAML node tree of ``text`` and the loader to construct it with."""
    if bracket_depth(text) > MAX_FLOW_NESTING:
        raise ConfigError(f"{source}: nested too deeply to be a config file; {_SYNTAX_HINT}")
    try:
        loader = yaml.SafeLoader(text)  # checks the characters first
        return loader.get_single_node(), loader
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, source) from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config file; {_SYNTAX_HINT}") from None


_KINDS = {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean"}
"""How messages name the YAML values a config file might hold instead of a mapping."""


def _check_duplicates(root: yaml.MappingNode, source: str) -> dict[str, int]:
    """Line of each top-level key; a :class:`ConfigError` for a key given twice (YAML would keep the last)."""
    lines: dict[str, int] = {}
    for key_node, _ in root.value:
        if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str"):
            continue
        line = key_node.start_mark.line + 1
        if key_node.value in lines:
            raise ConfigError(
                one_line(
                    f"{source}, line {line}: key {short_repr(key_node.value)} is given twice (first on line "
                    f"{lines[key_node.value]}); YAML would silently keep only the last one: remove one of them"
                )
            )
        lines[key_node.value] = line
    return lines


def _first_odd_key_line(root: yaml.MappingNode) -> int | None:
    """Line of the first top-level key that is not a plain string (``1:``, ``null:``), if any."""
    for key_node, _ in root.value:
        if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str"):
            return key_node.start_mark.line + 1
    return None


def parse_config_text(text: str, source: str) -> Settings:
    """Settings from YAML text; errors name ``source``, the line and the key.

    Raises :class:`ConfigError` (one line) for invalid YAML, a top level that is
    not a mapping, duplicate, unknown or non-string keys, and invalid values.
    """
    root, loader = _compose(text, source)
    try:
        if root is None:
            return Settings()
        if not isinstance(root, yaml.MappingNode):
            data = loader.construct_document(root)
            if data is None:  # an explicit null document, like an empty file
                return Settings()
            kind = _KINDS.get(type(data), type(data).__name__)
            raise ConfigError(
                one_line(
                    f"{source}, line {root.start_mark.line + 1}: the config must be a mapping of keys to values ('key: value' "
                    f"lines), but it holds {kind} ({short_repr(data)}); is it the right file? See 'quietmic config'"
                )
            )
        lines = _check_duplicates(root, source)
        merge_line = next(
            (k.start_mark.line + 1 for k, _ in root.value if k.tag == "tag:yaml.org,2002:merge"), None
        )
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, source) from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config file; {_SYNTAX_HINT}") from None
    finally:
        loader.dispose()
    values = {}
    for key, value in data.items():
        line = lines.get(key, merge_line) if isinstance(key, str) else _first_odd_key_line(root)
        where = f"{source}, line {line}" if line is not None else source
        if not isinstance(key, str):
            raise ConfigError(one_line(f"{where}: keys must be names, got {short_repr(key)}; see 'quietmic config'"))
        values[key] = validate_value(key, value, where)
    return Settings(**values)


def _read_config(config_path: Path) -> str:
    """The text of a config file, or a :class:`ConfigError` saying what is wrong with the file."""
    if config_path.is_dir():
        raise ConfigError(
            f"config path {config_path} is a directory, not a file; pass --config FILE "
            f"(the file is normally {default_config_path()})"
        )
    try:
        with config_path.open("rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}; check its permissions") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {config_path} is over {MAX_CONFIG_BYTES // 1024} KiB, far more than a config file holds; "
            "is it the right file? (see 'quietmic config')"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{config_path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "is it the right file? Save it as UTF-8 text"
        ) from None


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
    return parse_config_text(_read_config(config_path), str(config_path)), config_path


# --- Writing one setting ----------------------------------------------------------------------


def _yaml_scalar(value: Any) -> str:
    """``value`` as one line of YAML (quoted where YAML would read it otherwise)."""
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf).removesuffix("\n").removesuffix("\n...")


def with_setting(text: str, key: str, value: Any, source: str) -> str:
    """``text`` (a config file's YAML) with ``key`` set to ``value``: the value's text is replaced where
    the key is, comments and every other key kept as they were; a missing key is appended."""
    validate_value(key, value, source)
    root, loader = _compose(text, source)
    loader.dispose()
    new = _yaml_scalar(value)
    if isinstance(root, yaml.MappingNode):
        for key_node, value_node in root.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                start, end = value_node.start_mark.index, value_node.end_mark.index
                if isinstance(value_node, yaml.ScalarNode) and not value_node.value and start == end:
                    new = " " + new  # "key:" with nothing after it
                return text[:start] + new + text[end:]
    elif root is not None:
        parse_config_text(text, source)  # raises: the file is not a mapping
    separator = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{separator}{key}: {new}\n"


def save_setting(path: Path, key: str, value: Any) -> None:
    """Set ``key`` to ``value`` in the config file at ``path`` (made from the commented defaults if missing).

    The file is checked before and after (a :class:`ConfigError` leaves it untouched) and replaced
    atomically, keeping its permissions.
    """
    exists = path.exists()
    text = _read_config(path) if exists else DEFAULT_CONFIG_YAML
    if exists:
        parse_config_text(text, str(path))
    updated = with_setting(text, key, value, str(path))
    if getattr(parse_config_text(updated, str(path)), key) != validate_value(key, value, str(path)):
        raise ConfigError(f"{path}: could not write {key}; set it by hand (see 'quietmic config')")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(updated, encoding="utf-8")
        if exists:
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc.strerror}; check its permissions") from None
