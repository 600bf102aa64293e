"""Fuzz tests of the config loader: whatever the file holds, the answer is Settings or one ConfigError line.

Random text, random YAML-ish ``key: value`` lines built from YAML's tricky
tokens, random mappings dumped as YAML, and random bytes written to a file:
:func:`parse_config_text` / :func:`load_settings` return :class:`Settings` or
raise :class:`ConfigError` (one line, naming the source), never anything else.
Valid settings written as YAML read back unchanged.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from realtime.config import (
    MAX_ATTEN_LIM_DB,
    MAX_BLOCK_SIZE,
    MAX_CHANNEL,
    MAX_DEVICE_INDEX,
    MAX_SAMPLE_RATE,
    MIN_BLOCK_SIZE,
    MIN_SAMPLE_RATE,
    Settings,
    load_settings,
    parse_config_text,
    validate_value,
)
from realtime.errors import ConfigError

SOURCE = "fuzz.yaml"
KEYS = [f.name for f in fields(Settings)]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

YAML_TOKENS = [
    "yes", "no", "on", "off", "true", "False", "null", "~", "", ".nan", ".inf", "-.inf", "1.0e+400", "1e400",
    "0x10", "0o17", "017", "1_000", "48000", "48000.0", "-1", "0", "12", "200.0", "1:30", "2001-12-14",
    "[1, 2", "{a: 1}", "[]", "{}", "'quoted'", '"\\0"', '"\\u00e9"', "&a [*a]", "*undefined", "!!binary aGk=",
    "!!python/object:os.system x", "|\n  block", ">-\n  folded", "? complex", "- item", "#comment", "%YAML 1.1",
    "---", "...", "\t", "\x00", "\x85", "\ufeff", "é", "USB Mic", "default", "model.tflite", "~/m.tflite",
    "1" + "0" * 400, "-" + "9" * 400, "x" * 5000, "[" * 2000 + "]" * 2000, "{a: " * 2000 + "}" * 2000,
]
"""Values YAML reads in surprising ways (booleans, NaN, octal, sexagesimal, dates, tags, anchors, numbers
beyond float range, very long text, very deep nesting)."""

MAX_MESSAGE_CHARS = 600
"""An error stays one readable line, whatever the value (the source name and known keys included)."""


def check_answer(text_or_path: str | Path, load: Any) -> Settings | None:
    """Call ``load``; return the Settings, or None after checking the ConfigError is one line naming the source."""
    try:
        result = load(text_or_path)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < MAX_MESSAGE_CHARS, repr(message[:2000])
        assert str(text_or_path) in message or SOURCE in message, message
        return None
    settings_ = result[0] if isinstance(result, tuple) else result
    assert isinstance(settings_, Settings)
    return settings_


def parse(text: str) -> Settings:
    return parse_config_text(text, SOURCE)


@FUZZ
@given(st.text())
def test_random_text_gives_settings_or_a_config_error(text: str) -> None:
    check_answer(text, parse)


line = st.builds(
    lambda indent, key, sep, value: f"{indent}{key}{sep}{value}",
    st.sampled_from(["", "", "", " ", "  ", "\t"]),
    st.one_of(st.sampled_from(KEYS), st.sampled_from(YAML_TOKENS), st.text(max_size=12)),
    st.sampled_from([": ", ":", " : ", ": ", ":\n  "]),
    st.one_of(st.sampled_from(YAML_TOKENS), st.text(max_size=20), st.integers().map(str), st.floats().map(repr)),
)


@FUZZ
@given(st.lists(line, max_size=12))
def test_yaml_ish_lines_give_settings_or_a_config_error(lines: list[str]) -> None:
    check_answer("\n".join(lines) + "\n", parse)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300) | st.integers(max_value=-(10**300)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.integers(4000, 6000).map(lambda n: "a" * n),  # around the longest name or path accepted
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
mappings = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=15), st.integers()), values, max_size=9)


NESTED_LONG_NUMBERS = {"model": {f"k{i}": {f"j{j}": -(10**300) for j in range(4)} for i in range(4)}}
"""Found by this test in CI: a value quoted in full ran past MAX_MESSAGE_CHARS."""


@FUZZ
@given(mappings)
@example(NESTED_LONG_NUMBERS)
def test_random_mappings_give_validated_settings_or_a_config_error(mapping: dict[Any, Any]) -> None:
    """A mapping is accepted exactly when every key is known and every value valid, and then read as given."""
    result = check_answer(yaml.safe_dump(mapping), parse)

    def valid(key: Any, value: Any) -> bool:
        try:
            validate_value(key, value, SOURCE)
        except ConfigError:
            return False
        return True

    all_valid = all(isinstance(k, str) and valid(k, v) for k, v in mapping.items())
    assert (result is not None) == all_valid, mapping
    if result is not None:
        for key, value in mapping.items():
            assert getattr(result, key) == validate_value(key, value, SOURCE)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_in_a_config_file_give_settings_or_a_config_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    check_answer(path, load_settings)


valid_settings = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["/opt/models/m.tflite", "model.tflite", "dir with space/é.tflite"]) | st.none(),
        "input_device": st.integers(0, MAX_DEVICE_INDEX) | st.sampled_from(["USB Mic", "hw:1,0", "quietmic"]) | st.none(),
        "output_device": st.integers(0, MAX_DEVICE_INDEX) | st.none(),
        "input_channel": st.integers(0, MAX_CHANNEL),
        "sample_rate": st.integers(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE) | st.none(),
        "block_size": st.integers(MIN_BLOCK_SIZE, MAX_BLOCK_SIZE) | st.none(),
        "atten_lim_db": st.floats(0, MAX_ATTEN_LIM_DB) | st.integers(0, int(MAX_ATTEN_LIM_DB)) | st.none(),
        "bypass": st.booleans(),
        "log_level": st.sampled_from(["debug", "info", "warning", "error", "INFO"]),
    },
)


@FUZZ
@given(valid_settings, st.booleans())
def test_valid_settings_read_back_unchanged(values: dict[str, Any], flow_style: bool) -> None:
    result = parse(yaml.safe_dump(values, default_flow_style=flow_style, allow_unicode=True))
    for key, value in values.items():
        got = getattr(result, key)
        if isinstance(value, float):
            assert math.isclose(got, value)
        elif key == "log_level":
            assert got == value.lower()
        else:
            assert got == value
    for key in set(KEYS) - set(values):
        assert getattr(result, key) == getattr(Settings(), key)
