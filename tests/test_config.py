"""Configuration: defaults, file, overrides and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.config import DEFAULT_CONFIG_YAML, Settings, load_settings, parse_config_text
from realtime.errors import ConfigError


def test_documented_defaults_equal_built_in_defaults() -> None:
    assert parse_config_text(DEFAULT_CONFIG_YAML, "defaults") == Settings()


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("")
    settings, source = load_settings(path)
    assert settings == Settings() and source == path


def test_values_are_read_and_overridden(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("atten_lim_db: 12\nblock_size: 256\ninput_device: USB\noutput_device: 3\nbypass: true\n")
    settings, _ = load_settings(path)
    assert settings.atten_lim_db == 12.0 and settings.block_size == 256
    assert settings.input_device == "USB" and settings.output_device == 3 and settings.bypass
    overridden = settings.updated(block_size=128, atten_lim_db=None)
    assert overridden.block_size == 128 and overridden.atten_lim_db == 12.0


def test_xdg_config_home_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "quietmic").mkdir()
    (tmp_path / "quietmic" / "config.yaml").write_text("atten_lim_db: 30\n")
    settings, source = load_settings()
    assert settings.atten_lim_db == 30.0 and source == tmp_path / "quietmic" / "config.yaml"


def test_missing_default_file_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_settings() == (Settings(), None)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("atten_lim_db: 10\nblok_size: 256\n", "line 2: unknown key 'blok_size'"),
        ("block_size: -3\n", "line 1: key 'block_size': expected a block size"),
        ("atten_lim_db: loud\n", "key 'atten_lim_db': expected an attenuation limit"),
        ("bypass: maybe\n", "key 'bypass': expected true or false"),
        ("sample_rate: 44100.5\n", "key 'sample_rate'"),
        ("log_level: chatty\n", "key 'log_level': expected one of"),
        ("- just\n- a list\n", "must be a mapping"),
        ("atten_lim_db: [1\n", "not valid YAML"),
    ],
)
def test_bad_config_gives_one_clear_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert fragment in message and str(path) in message and "\n" not in message


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_bad_command_line_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="command line: key 'block_size'"):
        Settings().updated(block_size=0)
