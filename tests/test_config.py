"""Configuration: defaults, file, overrides and one-line errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from realtime.config import DEFAULT_CONFIG_YAML, Settings, load_settings, parse_config_text, validate_value
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


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_bad_command_line_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="command line: option --block-size: expected a block size"):
        Settings().updated(block_size=0)


# --- Every invalid key or value is reported with where it is ------------------------------

MAX_MESSAGE_CHARS = 400
"""A config error is one readable line: long or nested values are cut short."""


def config_error(path: Path) -> str:
    """The message of the ConfigError that loading ``path`` must raise."""
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


@pytest.mark.parametrize(
    "text,fragment",
    [
        # unknown keys, with a suggestion when one is close
        ("blok_size: 256\n", "line 1: unknown key 'blok_size' (did you mean 'block_size'?)"),
        ("bypass: true\nATTEN_LIM_DB: 3\n", "line 2: unknown key 'ATTEN_LIM_DB' (did you mean 'atten_lim_db'?)"),
        ("denoise_harder: 3\n", "line 1: unknown key 'denoise_harder'; known keys: atten_lim_db, block_size"),
        ("1: 2\n", "line 1: keys must be names, got 1"),
        ("null: 2\n", "line 1: keys must be names, got None"),
        # wrong types
        ("block_size: '256'\n", "line 1: key 'block_size': expected a block size in samples"),
        ("bypass: 1\n", "line 1: key 'bypass': expected true or false (got 1)"),
        ("input_channel: first\n", "key 'input_channel': expected a channel number"),
        ("model: 5\n", "key 'model': expected the path of a .tflite model file or null (got 5)"),
        ("log_level: [debug]\n", "key 'log_level': expected one of debug, info, warning, error (got ['debug'])"),
        ("sample_rate: 48k\n", "key 'sample_rate': expected a sample rate in Hz"),
        ("sample_rate: 48000.0\n", "key 'sample_rate': expected a sample rate in Hz, a whole number"),
        ("input_device: {name: usb}\n", "key 'input_device': expected a device index"),
        # out of range
        ("sample_rate: 1000\n", "key 'sample_rate': expected a sample rate in Hz, a whole number between 8000 and 384000"),
        ("sample_rate: 1000000\n", "(got 1000000)"),
        ("block_size: 8\n", "key 'block_size': expected a block size in samples, a whole number between 16 and 16384"),
        ("input_channel: -1\n", "key 'input_channel': expected a channel number between 0 and 255"),
        ("input_channel: 256\n", "(got 256)"),
        ("atten_lim_db: -4\n", "key 'atten_lim_db': expected an attenuation limit in dB between 0 and 200"),
        ("atten_lim_db: 201\n", "(got 201)"),
        ("input_device: 5000\n", "key 'input_device': expected a device index (0 to 4095)"),
        ("output_device: -2\n", "key 'output_device': expected a device index"),
        # huge values
        ("block_size: " + "9" * 500 + "\n", "key 'block_size': expected a block size"),
        ("atten_lim_db: 1" + "0" * 500 + "\n", "key 'atten_lim_db': expected an attenuation limit"),
        ("atten_lim_db: 1.0e+400\n", "not NaN or infinity (got inf)"),
        ("atten_lim_db: 1e400\n", "expected an attenuation limit in dB between 0 and 200, or null for no limit (got '1e400')"),
        ("input_device: " + "x" * 5000 + "\n", "this is 5000 characters long, at most 4096 are accepted"),
        ('model: "a\\0b.tflite"\n', "on one line and without NUL characters"),
        # YAML booleans where numbers are expected
        ("block_size: yes\n", "(got True); note that YAML reads yes/no/on/off/true/false as booleans"),
        ("atten_lim_db: off\n", "(got False); note that YAML reads yes/no/on/off/true/false as booleans"),
        ("input_channel: no\n", "key 'input_channel'"),
        # NaN and infinity
        ("atten_lim_db: .nan\n", "key 'atten_lim_db': expected an attenuation limit in dB between 0 and 200, or null "
         "for no limit, not NaN or infinity (got nan)"),
        ("atten_lim_db: .inf\n", "not NaN or infinity (got inf)"),
        ("atten_lim_db: -.inf\n", "not NaN or infinity (got -inf)"),
        # duplicate keys (YAML itself would keep the last silently)
        ("bypass: true\nblock_size: 256\nbypass: false\n", "line 3: key 'bypass' is given twice (first on line 1)"),
        # YAML syntax, with line and column
        ("atten_lim_db: [1\n", "line 2, column 1: not valid YAML: expected ',' or ']'"),
        ("bypass: true\n  block_size: 3\n", "line 2, column 13: not valid YAML: mapping values are not allowed here"),
        ("\tbypass: true\n", "line 1, column 1: not valid YAML: found character '\\t' that cannot start any token"),
        ("bypass: true\n---\nbypass: false\n", "line 2, column 1: not valid YAML: but found another document"),
        ("model: !!python/object:os.system x\n", "could not determine a constructor"),
        ("bypass: true\nmodel: \x00\n", "line 2: the character #x0000 is not allowed in YAML"),
        ("[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
        # not a mapping
        ("- just\n- a list\n", "must be a mapping of keys to values"),
        ("hello world\n", "but it holds text ('hello world'); is it the right file?"),
        ("42\n", "but it holds a number (42)"),
        # values that are long or refer to themselves stay short
        ("atten_lim_db: &loop [*loop]\n", "key 'atten_lim_db': expected an attenuation limit"),
        ("input_device: [" + ", ".join(["1"] * 1000) + "]\n", "key 'input_device'"),
        # the first cases this suite had
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
def test_every_bad_config_is_one_line_naming_where(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    message = config_error(path)
    assert fragment in message, message
    assert message.startswith(str(path)) and "\n" not in message and len(message) < MAX_MESSAGE_CHARS, message


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "# only a comment\n", "null\n", "~\n", "---\n", "\ufeffbypass: false\n", "bypass: false # the default\n"],
    ids=["empty", "blank lines", "comment", "null", "tilde", "document marker", "UTF-8 BOM", "trailing comment"],
)
def test_files_without_settings_give_the_defaults(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_settings(path) == (Settings(), path)


@pytest.mark.parametrize(
    "content,fragment",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1: not UTF-8 text (byte 0x89 at offset 0)"),
        ("bypass: true\nmodel: caf\xe9.tflite\n".encode("latin-1"), "line 2: not UTF-8 text (byte 0xe9 at offset 23)"),
        ("bypass: true\n".encode("utf-16"), "not UTF-8 text (byte 0xff at offset 0)"),
        (b"bypass: true\n" + b"# padding\n" * 120_000, "is over 1024 KiB"),
        (b"\x00\x01\x02\x03", "the character #x0000 is not allowed in YAML (is this a text file?)"),
    ],
    ids=["binary", "latin-1", "UTF-16", "huge", "control bytes"],
)
def test_files_that_are_not_config_text_are_refused(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    message = config_error(path)
    assert fragment in message and str(path) in message and "\n" not in message, message


def test_a_directory_as_config_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=f"config path {tmp_path} is a directory, not a file; pass --config FILE"):
        load_settings(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "quietmic" / "config.yaml").mkdir(parents=True)
    with pytest.raises(ConfigError, match="config.yaml is a directory"):
        load_settings()


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        ({"atten_lim_db": float("nan")}, "command line: option --atten-lim-db: expected an attenuation limit"),
        ({"atten_lim_db": float("inf")}, "not NaN or infinity (got inf)"),
        ({"block_size": 3}, "command line: option --block-size: expected a block size"),
        ({"sample_rate": 44}, "command line: option --sample-rate: expected a sample rate"),
        ({"input_channel": -1}, "command line: option --input-channel: expected a channel number"),
        ({"input_device": ""}, "command line: option --input-device: expected a device index"),
        ({"model": "  "}, "command line: option --model: expected the path of a .tflite model"),
        ({"loudness": 3}, "command line: unknown key 'loudness'"),
    ],
)
def test_bad_command_line_values_name_the_option(overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings().updated(**overrides)
    assert fragment in str(info.value)


def test_bad_option_through_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from realtime import cli

    args = ["enhance", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--atten-lim-db", "nan"]
    assert cli.main(args) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("quietmic: error: command line: option --atten-lim-db:") and "\n" not in err


@pytest.mark.parametrize(
    "key,text,fragment",
    [
        ("block_size", "yes", "quietmic set: block_size: expected a block size"),
        ("atten_lim_db", ".nan", "not NaN or infinity (got nan)"),
        ("bypass", "[true", "quietmic set: bypass: expected true or false"),
    ],
)
def test_bad_set_values_name_the_setting(key: str, text: str, fragment: str) -> None:
    from realtime.config import parse_setting

    with pytest.raises(ConfigError) as info:
        parse_setting(key, text)
    assert fragment in str(info.value)


def test_built_in_defaults_are_valid_and_safe() -> None:
    defaults = Settings()
    for field in fields(Settings):
        value = getattr(defaults, field.name)
        assert validate_value(field.name, value, "defaults") == value, field.name
    # Safe: denoising on with the validated attenuation limit, first channel, the installed model, info logging.
    assert defaults == Settings(model=None, input_channel=0, atten_lim_db=35.0, bypass=False, log_level="info")


# --- quietmic set saves to the config file (issue 19, section 3) --------------------------------


def test_a_saved_setting_keeps_comments_and_other_keys(tmp_path: Path) -> None:
    from realtime.config import save_setting

    path = tmp_path / "config.yaml"
    path.write_text("# my microphone setup\nlog_level: debug   # while testing\natten_lim_db: 20  # was 35\n"
                    "sample_rate: 48000\nmodel:\n")
    save_setting(path, "atten_lim_db", 12.0)
    save_setting(path, "model", "low-latency")
    save_setting(path, "input_device", "usb mic: 2")
    assert path.read_text() == ("# my microphone setup\nlog_level: debug   # while testing\natten_lim_db: 12.0  # was 35\n"
                                "sample_rate: 48000\nmodel: low-latency\ninput_device: 'usb mic: 2'\n")
    settings, _ = load_settings(path)
    assert (settings.atten_lim_db, settings.model, settings.input_device, settings.log_level, settings.sample_rate) == (
        12.0, "low-latency", "usb mic: 2", "debug", 48000)


def test_saving_to_a_missing_file_writes_the_commented_defaults(tmp_path: Path) -> None:
    from realtime.config import save_setting

    path = tmp_path / "new" / "config.yaml"
    save_setting(path, "atten_lim_db", None)
    text = path.read_text()
    assert "# quietmic configuration" in text and "atten_lim_db: null\n" in text
    assert load_settings(path)[0] == Settings(atten_lim_db=None)


def test_a_bad_value_or_a_broken_file_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    from realtime.config import save_setting

    path = tmp_path / "config.yaml"
    path.write_text("atten_lim_db: 20\n")
    with pytest.raises(ConfigError, match="atten_lim_db"):
        save_setting(path, "atten_lim_db", -3)
    path.write_text("atten_lim_db: [20\n")
    with pytest.raises(ConfigError, match="line"):
        save_setting(path, "bypass", True)
    assert path.read_text() == "atten_lim_db: [20\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
