"""File mode under bad input and faults: every case is enhanced correctly or refused in one line.

Covers the chunked WAV reader (formats, damage, other file types, a hypothesis
fuzz of random and mutated files), the atomic writer (RF64, failures, Ctrl-C),
rates that need resampling, odd sample values, and bounded memory on a long file.
Every CLI call also checks that the input file was not modified.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.io import wavfile

from realtime.files import audio_file, file_mode
from realtime.files.audio_file import AtomicWavWriter, WavFormat, WavReader, read_wav
from realtime.cli import main
from realtime.config import DEFAULT_ATTEN_LIM_DB
from realtime.enhancer import Enhancer
from realtime.errors import AudioFileError
from realtime.arrays import enhance_signal
from realtime.model import MaskModel

RATE = 16_000
TAG_PCM, TAG_FLOAT, TAG_EXTENSIBLE = 1, 3, 0xFFFE
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
TFLITE_BANNER = "INFO: Created TensorFlow Lite"
"""A line the TFLite runtime prints to stderr itself when a model loads (not quietmic's)."""
RESAMPLED_SNR_DB = 40.0
"""Least signal-to-error ratio of identity-model output at rates that are resampled, dB."""
FUZZ_CALL_SECONDS = 5.0
"""A reader call on a fuzzed file taking longer than this counts as a hang."""


# --- building WAV files byte by byte --------------------------------------------------------


def chunk(chunk_id: bytes, body: bytes, size: int | None = None) -> bytes:
    """A RIFF chunk (with its pad byte when the body is odd-sized)."""
    return chunk_id + struct.pack("<I", len(body) if size is None else size) + body + b"\0" * (len(body) % 2)


def fmt_body(tag: int, channels: int, rate: int, bits: int, block_align: int | None = None, sub_tag: int = 1) -> bytes:
    """A ``fmt `` chunk body; ``tag`` EXTENSIBLE wraps ``sub_tag``."""
    align = channels * (-(-bits // 8)) if block_align is None else block_align
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if tag == TAG_EXTENSIBLE:
        body += struct.pack("<HHI", 22, bits, 0x3) + struct.pack("<H", sub_tag) + GUID_TAIL
    return body


def wav_bytes(
    payload: bytes,
    fmt: bytes,
    *,
    data_size: int | None = None,
    before: bytes = b"",
    after_fmt: bytes = b"",
    after: bytes = b"",
) -> bytes:
    """A RIFF/WAVE file: optional chunks around ``fmt `` and ``data`` (``data_size`` overrides the size field)."""
    body = b"WAVE" + before + chunk(b"fmt ", fmt) + after_fmt
    body += b"data" + struct.pack("<I", len(payload) if data_size is None else data_size) + payload
    body += b"\0" * (len(payload) % 2) + after
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pcm16(samples: np.ndarray) -> bytes:
    return np.round(np.asarray(samples) * 32767).astype("<i2").tobytes()


def pcm24(samples: np.ndarray) -> bytes:
    ints = np.round(np.asarray(samples, dtype=np.float64) * (2**23 - 1)).astype("<i4")
    return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def tones(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    """Band-limited test audio in [-0.6, 0.6], float64 ``(frames, channels)``: tones below 0.3 x Nyquist."""
    t = np.arange(int(rate * seconds)) / rate
    top = 0.3 * rate / 2
    return np.stack(
        [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.2 * np.sin(2 * np.pi * top * t + c) for c in range(channels)],
        axis=1,
    )


def write_wav(path: Path, samples: np.ndarray, rate: int, kind: str) -> None:
    """Write ``samples`` (float ``(frames, channels)``) as ``kind``: uint8/int16/int24/int32/float32/float64/ext24."""
    channels = samples.shape[1]
    interleaved = samples.reshape(-1)
    if kind == "int24":
        path.write_bytes(wav_bytes(pcm24(interleaved), fmt_body(TAG_PCM, channels, rate, 24)))
    elif kind == "ext24":
        path.write_bytes(wav_bytes(pcm24(interleaved), fmt_body(TAG_EXTENSIBLE, channels, rate, 24)))
    elif kind == "uint8":
        wavfile.write(path, rate, np.round(samples * 127 + 128).astype(np.uint8))
    elif kind in ("int16", "int32"):
        scale = 2 ** (np.iinfo(kind).bits - 1) - 1
        wavfile.write(path, rate, np.round(samples * scale).astype(kind))
    else:
        wavfile.write(path, rate, samples.astype(kind))


LSB = {"uint8": 1 / 128, "int16": 1 / 32768, "int24": 2**-23, "ext24": 2**-23, "int32": 2e-7, "float32": 2e-7,
       "float64": 2e-7}
"""Tolerance of the identity model's output per sample format (one step; float32 processing for the rest)."""


# --- running the CLI ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity(reference_model: Callable[..., Path]) -> Path:
    return reference_model("identity", RATE, "float32")


@pytest.fixture(scope="module")
def random_model(reference_model: Callable[..., Path]) -> Path:
    return reference_model("random", RATE)


def snapshot(path: Path) -> tuple[bytes, int] | None:
    """Bytes and mtime (ns) of a file, None if it is not a regular file."""
    return (path.read_bytes(), path.stat().st_mtime_ns) if path.is_file() else None


def enhance(capsys: pytest.CaptureFixture[str], source: Path, target: Path, model: Path, *extra: str) -> tuple[int, str]:
    """``quietmic enhance`` in-process; returns ``(exit code, stderr)`` and checks the input is unchanged."""
    before = snapshot(source)
    code = main(["enhance", str(source), str(target), "--model", str(model), *extra])
    assert snapshot(source) == before, "the input file was modified"
    return code, capsys.readouterr().err


def assert_refused(code: int, err: str, fragment: str) -> None:
    """Exit 1 with exactly one line, the error, naming ``fragment``; no traceback."""
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("quietmic: error: ") and fragment in lines[0], lines[0]


def no_leftovers(directory: Path, allowed: set[str]) -> None:
    """Only the ``allowed`` names are in ``directory`` (no temporary output files)."""
    assert {p.name for p in directory.iterdir()} <= allowed, sorted(p.name for p in directory.iterdir())


# --- inputs refused in one line -------------------------------------------------------------------

VALID_PAYLOAD = pcm16(tones(RATE, 0.1)[:, 0])
VALID_WAV = wav_bytes(VALID_PAYLOAD, fmt_body(TAG_PCM, 1, RATE, 16))

BAD_INPUTS: dict[str, tuple[bytes | None, str]] = {
    "empty file": (b"", "is empty (0 bytes)"),
    "header only, 0 frames": (wav_bytes(b"", fmt_body(TAG_PCM, 1, RATE, 16)), "contains no audio (0 frames)"),
    "RIFF header only": (VALID_WAV[:12], "has no 'fmt ' chunk"),
    "cut inside fmt chunk": (VALID_WAV[:30], "'fmt ' chunk is cut short"),
    "cut inside data header": (VALID_WAV[:40], "has no 'data' chunk: it ends after 40 bytes"),
    "random bytes": (np.random.default_rng(5).bytes(4000), "is not an audio file quietmic can read"),
    "RIFF/WAVE then garbage": (b"RIFF\x10\x00\x00\x00WAVE" + bytes(range(200, 256)) * 8, "has no 'fmt ' chunk"),
    "text": (b"Hello, this is not audio.\nJust some notes.\n" * 20, "is a text file, not audio"),
    "PNG image": (b"\x89PNG\r\n\x1a\n" + bytes(200), "is a PNG image, not audio"),
    "damaged FLAC": (b"fLaC\x00\x00\x00\x22" + bytes(200), "is a FLAC file, which quietmic cannot decode"),
    "damaged Ogg": (b"OggS\x00\x02" + bytes(200), "is an Ogg (Vorbis/Opus/FLAC) file, which quietmic cannot decode"),
    "damaged MP3 with ID3 tag": (b"ID3\x04\x00\x00" + bytes(200), "is an MP3 file, which quietmic cannot decode"),
    "damaged AIFF": (b"FORM\x00\x00\x01\x00AIFFCOMM" + bytes(200), "is an AIFF file, which quietmic cannot decode"),
    "MP4/AAC (libsndfile has no AAC)": (b"\x00\x00\x00\x20ftypM4A " + bytes(200), "is an MP4/M4A file, which quietmic"),
    "AVI (RIFF, not WAVE)": (b"RIFF\x00\x01\x00\x00AVI LIST" + bytes(200), "RIFF file of type 'AVI ', not a WAV file"),
    "MS ADPCM with a header libsndfile refuses": (wav_bytes(bytes(800), fmt_body(2, 1, 8000, 4, 256)),
                                                   "Microsoft ADPCM (format tag 0x0002), which quietmic cannot decode"),
    "IMA ADPCM with a header libsndfile refuses": (wav_bytes(bytes(800), fmt_body(0x11, 1, 8000, 4, 256)),
                                                    "IMA ADPCM (format tag 0x0011), which quietmic cannot decode"),
    "16-bit float": (wav_bytes(bytes(800), fmt_body(TAG_FLOAT, 1, RATE, 16)), "inconsistent or unsupported"),
    "block align wrong": (wav_bytes(bytes(800), fmt_body(TAG_PCM, 2, RATE, 16, block_align=3)), "3 bytes per frame"),
    "0 channels": (wav_bytes(bytes(800), fmt_body(TAG_PCM, 0, RATE, 16, block_align=2)), "0 channels"),
    "0 Hz": (wav_bytes(bytes(800), fmt_body(TAG_PCM, 1, 0, 16)), "sample rate of 0 Hz"),
    "4 kHz": (wav_bytes(VALID_PAYLOAD, fmt_body(TAG_PCM, 1, 4000, 16)), "outside the 8000..384000 Hz"),
    "33 channels": (wav_bytes(bytes(66 * 100), fmt_body(TAG_PCM, 33, RATE, 16)), "at most 32"),
    "missing file": (None, "does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_in_one_line(capsys, identity: Path, tmp_path: Path, case: str) -> None:
    content, fragment = BAD_INPUTS[case]
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    if content is not None:
        source.write_bytes(content)
    code, err = enhance(capsys, source, target, identity)
    assert_refused(code, err, fragment)
    no_leftovers(tmp_path, {"in.wav"})


@pytest.mark.parametrize("case", ["damaged FLAC", "4 kHz"])
def test_refusal_through_the_real_command_is_one_line(identity: Path, tmp_path: Path, case: str) -> None:
    """The whole stderr of the process is the one error line (refusals come before any model loads)."""
    content, fragment = BAD_INPUTS[case]
    source = tmp_path / "in.wav"
    if content is not None:
        source.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "realtime", "enhance", str(source), str(tmp_path / "out.wav"), "--model", str(identity)],
        capture_output=True, text=True, timeout=120,
    )
    assert_refused(result.returncode, result.stderr, fragment)
    no_leftovers(tmp_path, {"in.wav"})


@pytest.mark.parametrize("kind", ["directory", "named pipe"])
def test_directory_or_pipe_as_input_is_refused(capsys, identity: Path, tmp_path: Path, kind: str) -> None:
    source = tmp_path / "in"
    if kind == "directory":
        source.mkdir()
    else:
        os.mkfifo(source)  # opening it would block: it must be refused unopened
    code, err = enhance(capsys, source, tmp_path / "out.wav", identity)
    assert_refused(code, err, "is a directory" if kind == "directory" else "is not a regular file")
    assert not (tmp_path / "out.wav").exists()


# --- bad outputs -------------------------------------------------------------------------------

BAD_OUTPUTS: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "missing directory": (lambda d, src: d / "missing" / "out.wav", "output directory"),
    "the input itself": (lambda d, src: src, "is the input file"),
    "the input by another spelling": (lambda d, src: d / "." / src.name, "is the input file"),
    "a symlink to the input": (lambda d, src: _link(d / "link.wav", src, symbolic=True), "is the input file"),
    "a hard link to the input": (lambda d, src: _link(d / "hard.wav", src, symbolic=False), "is the input file"),
    "a directory": (lambda d, src: d, "is a directory; give a file name"),
    "a directory no file can be made in": (lambda d, src: Path("/proc/quietmic-out.wav"), "cannot write to directory"),
}


def _link(link: Path, target: Path, *, symbolic: bool) -> Path:
    if symbolic:
        link.symlink_to(target)
    else:
        os.link(target, link)
    return link


@pytest.mark.parametrize("case", list(BAD_OUTPUTS))
def test_bad_output_is_refused_and_nothing_written(capsys, identity: Path, tmp_path: Path, case: str) -> None:
    make, fragment = BAD_OUTPUTS[case]
    source = tmp_path / "in.wav"
    source.write_bytes(VALID_WAV)
    target = make(tmp_path, source)
    names = {p.name for p in tmp_path.iterdir()}
    code, err = enhance(capsys, source, target, identity)
    assert_refused(code, err, fragment)
    no_leftovers(tmp_path, names)
    assert source.read_bytes() == VALID_WAV


def test_read_only_output_directory_is_refused(capsys, identity: Path, tmp_path: Path) -> None:
    source, locked = tmp_path / "in.wav", tmp_path / "locked"
    source.write_bytes(VALID_WAV)
    locked.mkdir()
    locked.chmod(0o500)
    try:
        probe = locked / "probe"
        try:
            probe.touch()
        except PermissionError:
            pass
        else:
            probe.unlink()
            pytest.skip("running as root: a read-only directory is still writable")
        code, err = enhance(capsys, source, locked / "out.wav", identity)
        assert_refused(code, err, "cannot write to directory")
    finally:
        locked.chmod(0o700)


def test_write_failure_midway_leaves_nothing(identity: Path, tmp_path: Path) -> None:
    """A file-size limit makes the write fail part-way (as a full disk would)."""
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    wavfile.write(source, RATE, np.round(tones(RATE, 8.0)[:, 0] * 32767).astype(np.int16))
    limit = 100_000

    def limit_file_size() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "realtime", "enhance", str(source), str(target), "--model", str(identity)],
        capture_output=True, text=True, preexec_fn=limit_file_size, timeout=120,
    )
    lines = [line for line in result.stderr.splitlines() if not line.startswith(TFLITE_BANNER)]
    assert result.returncode == 1 and lines == [f"quietmic: error: cannot write {target}: File too large; nothing was written"]
    no_leftovers(tmp_path, {"in.wav"})


# --- damaged files that can be read around ----------------------------------------------------------

AUDIO = pcm16(tones(RATE, 0.5)[:, 0])
FMT16 = fmt_body(TAG_PCM, 1, RATE, 16)
DAMAGED: dict[str, tuple[bytes, int, str]] = {
    "data shorter than its header says": (wav_bytes(AUDIO, FMT16, data_size=len(AUDIO) * 3), len(AUDIO) // 2,
                                          "truncated"),
    "data size unset (0xFFFFFFFF)": (wav_bytes(AUDIO, FMT16, data_size=0xFFFFFFFF), len(AUDIO) // 2, "unset"),
    "data size 0 (recorder never finished)": (wav_bytes(AUDIO, FMT16, data_size=0), len(AUDIO) // 2, "unset"),
    "partial last frame": (wav_bytes(AUDIO + b"\x01", FMT16), len(AUDIO) // 2, "partial frame"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_file_is_enhanced_with_a_warning(capsys, caplog, identity: Path, tmp_path: Path, case: str) -> None:
    content, frames, warning = DAMAGED[case]
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    source.write_bytes(content)
    code, _ = enhance(capsys, source, target, identity)
    assert code == 0
    assert any(warning in record.getMessage() for record in caplog.records if record.levelname == "WARNING")
    rate, out = wavfile.read(target)
    expected = np.frombuffer(AUDIO, "<i2")
    assert rate == RATE and len(out) == frames and np.max(np.abs(out.astype(int) - expected)) <= 1


def test_empty_data_chunk_followed_by_another_chunk_has_no_audio(tmp_path: Path) -> None:
    """Size 0 is only 'unknown length' when no chunk follows: here the file really has no audio."""
    content = wav_bytes(b"", FMT16, after=chunk(b"LIST", b"INFOISFT" + b"\x04\x00\x00\x00abc\x00"))
    (tmp_path / "in.wav").write_bytes(content)
    with WavReader(tmp_path / "in.wav") as reader:
        assert reader.info.frames == 0 and reader.info.warnings == ()


def test_unknown_and_odd_sized_chunks_are_skipped(tmp_path: Path) -> None:
    samples = tones(RATE, 0.05)[:, 0]
    odd = chunk(b"LIST", b"INFOIART\x05\x00\x00\x00quiet")  # 17 bytes + pad byte
    content = wav_bytes(pcm16(samples), FMT16, before=chunk(b"JUNK", bytes(27)), after_fmt=odd + chunk(b"bext", bytes(3)))
    (tmp_path / "in.wav").write_bytes(content)
    decoded, rate, fmt = read_wav(tmp_path / "in.wav")
    assert rate == RATE and fmt == WavFormat("pcm", 16) and decoded.shape == (len(samples), 1)
    assert np.max(np.abs(decoded[:, 0] - samples)) <= 1 / 32768


# --- formats, rates and channel counts ---------------------------------------------------------------

FORMATS = ["uint8", "int16", "int24", "ext24", "int32", "float32", "float64"]


@pytest.mark.parametrize("kind", FORMATS)
def test_every_sample_format_round_trips(capsys, identity: Path, tmp_path: Path, kind: str) -> None:
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    signal_in = tones(48_000, 0.3, channels=2)
    write_wav(source, signal_in, 48_000, kind)
    code, _ = enhance(capsys, source, target, identity)
    assert code == 0
    with WavReader(source) as reader_in, WavReader(target) as reader_out:
        assert reader_out.info.format == reader_in.info.format
        assert (reader_out.info.sample_rate, reader_out.info.channels) == (48_000, 2)
        expected, got = reader_in.read(10**7), reader_out.read(10**7)
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= LSB[kind] + 1e-7


@pytest.mark.parametrize("rate", [8000, 11025, 12345, 22050, 32000, 44100, 48000, 96000])
def test_every_rate_keeps_rate_length_and_content(capsys, identity: Path, tmp_path: Path, rate: int) -> None:
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    signal_in = tones(rate, 0.7)
    signal_in[rate // 3, 0] += 0.3  # a click: misalignment would show
    write_wav(source, signal_in, rate, "float32")
    code, err = enhance(capsys, source, target, identity)
    assert code == 0
    out_rate, out = wavfile.read(target)
    assert out_rate == rate and out.shape == (len(signal_in),)
    error = out - signal_in[:, 0].astype(np.float32)
    if rate in RESAMPLED:  # resampled with soxr to a rate the model's framing fits, and back
        assert f"enhanced at {RESAMPLED[rate]} Hz" in err
        snr = 10 * np.log10(np.sum(signal_in**2) / np.sum(error**2))
        assert snr >= RESAMPLED_SNR_DB
    else:
        assert np.max(np.abs(error)) <= 1e-6


RESAMPLED = {11025: 44100, 12345: 12400, 22050: 44100}
"""Rates the model's 10 ms hop does not fit, and the rate each is enhanced at."""


def test_resampled_rate_with_a_custom_block_size(capsys, identity: Path, tmp_path: Path) -> None:
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    signal_in = tones(22_050, 0.5)
    write_wav(source, signal_in, 22_050, "int16")
    code, _ = enhance(capsys, source, target, identity, "--block-size", "256")
    assert code == 0
    _, out = wavfile.read(target)
    error = out / 32767 - signal_in[:, 0]
    assert len(out) == len(signal_in) and 10 * np.log10(np.sum(signal_in**2) / np.sum(error**2)) >= RESAMPLED_SNR_DB


def test_six_channels_are_each_kept(capsys, identity: Path, tmp_path: Path) -> None:
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    signal_in = tones(48_000, 0.3, channels=6)
    write_wav(source, signal_in, 48_000, "int16")
    code, _ = enhance(capsys, source, target, identity)
    assert code == 0
    _, stored = wavfile.read(source)
    _, out = wavfile.read(target)
    assert out.shape == stored.shape == (len(signal_in), 6)
    assert np.max(np.abs(out.astype(int) - stored.astype(int))) <= 1


# --- odd sample values ----------------------------------------------------------------------------


def test_nan_and_inf_samples_are_silenced(capsys, random_model: Path, tmp_path: Path) -> None:
    """Output is finite, and exactly what the live Enhancer makes of the same samples."""
    signal_in = tones(RATE, 1.0, channels=2).astype(np.float32)
    bad = signal_in.copy()
    bad[4000:4400, 0] = np.nan
    bad[9000::997, 1] = np.inf
    bad[9500::1231, 1] = -np.inf
    wavfile.write(tmp_path / "bad.wav", RATE, bad)
    code, err = enhance(capsys, tmp_path / "bad.wav", tmp_path / "bad_out.wav", random_model)
    assert code == 0 and f"{int(np.sum(~np.isfinite(bad)))} NaN/Inf samples replaced with silence" in err
    _, out_bad = wavfile.read(tmp_path / "bad_out.wav")
    assert np.isfinite(out_bad).all()
    for channel in range(bad.shape[1]):
        enhancer = Enhancer(MaskModel(random_model), RATE, atten_lim_db=DEFAULT_ATTEN_LIM_DB)  # the CLI's default
        live = enhance_signal(enhancer, bad[:, channel], enhancer.hop_length)
        np.testing.assert_array_equal(out_bad[:, channel], live)


def test_a_failing_model_writes_no_output(capsys, random_model: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Live, a failing model passes the input through; a file would silently not be enhanced: refused."""
    wavfile.write(tmp_path / "in.wav", RATE, tones(RATE, 0.5).astype(np.float32))
    (tmp_path / "out.wav").write_bytes(b"earlier output")

    def fail(self: MaskModel, features: np.ndarray) -> np.ndarray:
        raise RuntimeError("simulated interpreter failure")

    monkeypatch.setattr(MaskModel, "step", fail)
    code, err = enhance(capsys, tmp_path / "in.wav", tmp_path / "out.wav", random_model)
    assert_refused(code, err, "running the model failed (RuntimeError: simulated interpreter failure)")
    assert (tmp_path / "out.wav").read_bytes() == b"earlier output"
    assert not list(tmp_path.glob(".out.wav.*"))


def test_huge_float64_values_do_not_blow_up(capsys, random_model: Path, tmp_path: Path) -> None:
    signal_in = tones(RATE, 0.5)
    signal_in[100:200] = 1e300  # beyond float32: becomes Inf, then silence
    signal_in[300:400] = -1e12
    wavfile.write(tmp_path / "in.wav", RATE, signal_in)
    code, _ = enhance(capsys, tmp_path / "in.wav", tmp_path / "out.wav", random_model)
    _, out = wavfile.read(tmp_path / "out.wav")
    assert code == 0 and out.dtype == np.float64 and np.isfinite(out).all()


@pytest.mark.parametrize("kind", ["int16", "float32"])
def test_full_scale_square_wave_stays_bounded(capsys, random_model: Path, tmp_path: Path, kind: str) -> None:
    t = np.arange(RATE) / RATE
    square = np.sign(np.sin(2 * np.pi * 150 * t))[:, None]
    write_wav(tmp_path / "in.wav", square, RATE, kind)
    code, _ = enhance(capsys, tmp_path / "in.wav", tmp_path / "out.wav", random_model)
    out, _, _ = read_wav(tmp_path / "out.wav")
    # The model's mask is at most 1: the output cannot be much louder than the input.
    assert code == 0 and np.isfinite(out).all() and np.max(np.abs(out)) <= 2.0
    assert np.sqrt(np.mean(out**2)) <= 1.0 + 1e-3


def test_dc_offset_passes_and_stays_bounded(capsys, identity: Path, random_model: Path, tmp_path: Path) -> None:
    signal_in = 0.5 + 0.2 * tones(RATE, 0.6)
    write_wav(tmp_path / "in.wav", signal_in, RATE, "float32")
    assert enhance(capsys, tmp_path / "in.wav", tmp_path / "id.wav", identity)[0] == 0
    assert enhance(capsys, tmp_path / "in.wav", tmp_path / "rnd.wav", random_model)[0] == 0
    _, same = wavfile.read(tmp_path / "id.wav")
    _, denoised = wavfile.read(tmp_path / "rnd.wav")
    assert np.max(np.abs(same - signal_in[:, 0])) <= 1e-6
    assert np.isfinite(denoised).all() and np.max(np.abs(denoised)) <= 2 * np.max(np.abs(signal_in))


def test_digital_silence_stays_silent(capsys, random_model: Path, tmp_path: Path) -> None:
    wavfile.write(tmp_path / "in.wav", RATE, np.zeros(RATE, np.int16))
    assert enhance(capsys, tmp_path / "in.wav", tmp_path / "out.wav", random_model)[0] == 0
    _, out = wavfile.read(tmp_path / "out.wav")
    assert len(out) == RATE and not out.any()


def test_very_quiet_input_does_not_blow_up(capsys, random_model: Path, tmp_path: Path) -> None:
    quiet = 10 ** (-80 / 20) * np.random.default_rng(3).standard_normal((RATE, 1))
    write_wav(tmp_path / "in.wav", quiet, RATE, "float32")
    assert enhance(capsys, tmp_path / "in.wav", tmp_path / "out.wav", random_model)[0] == 0
    _, out = wavfile.read(tmp_path / "out.wav")
    assert np.isfinite(out).all() and np.sqrt(np.mean(out**2)) <= 1.01 * np.sqrt(np.mean(quiet**2))


# --- plots ----------------------------------------------------------------------------------------


def test_plot_works_at_a_resampled_rate(capsys, identity: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    source = tmp_path / "in.wav"
    write_wav(source, tones(11_025, 0.5), 11_025, "int16")
    code, _ = enhance(capsys, source, tmp_path / "out.wav", identity, "--plot", str(tmp_path / "plot.png"))
    assert code == 0 and (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")
    assert len(wavfile.read(tmp_path / "out.wav")[1]) == int(11_025 * 0.5)


def test_plot_refuses_long_files_before_any_work(
    capsys, identity: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in.wav"
    write_wav(source, tones(RATE, 0.5), RATE, "int16")
    monkeypatch.setattr(file_mode, "PLOT_MAX_SECONDS", 0.25)
    code, err = enhance(capsys, source, tmp_path / "out.wav", identity, "--plot", str(tmp_path / "plot.png"))
    assert_refused(code, err, "--plot draws files of up to 0.25 s; ")
    no_leftovers(tmp_path, {"in.wav"})


# --- the writer ------------------------------------------------------------------------------------


def test_writer_uses_rf64_past_the_riff_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over 4 GiB cannot be tested directly: the limit is lowered so that a small file crosses it."""
    samples = tones(RATE, 0.2, channels=2).astype(np.float32)
    monkeypatch.setattr(audio_file, "MAX_RIFF_BYTES", 1000)
    for fmt in (WavFormat("pcm", 24), WavFormat("float", 32)):
        audio_file.write_wav_atomic(tmp_path / "big.wav", samples, RATE, fmt)
        raw = (tmp_path / "big.wav").read_bytes()
        assert raw[:4] == b"RF64" and raw[12:16] == b"ds64"
        decoded, rate, read_fmt = read_wav(tmp_path / "big.wav")
        assert (rate, read_fmt) == (RATE, fmt) and np.max(np.abs(decoded - samples)) <= 2**-23


def test_writer_failure_keeps_the_old_output(tmp_path: Path) -> None:
    target = tmp_path / "out.wav"
    target.write_bytes(b"previous result")
    with pytest.raises(ZeroDivisionError):
        with AtomicWavWriter(target, RATE, 1, WavFormat("pcm", 16), 1000) as writer:
            writer.write(np.zeros((500, 1), np.float32))
            1 / 0
    assert target.read_bytes() == b"previous result"
    no_leftovers(tmp_path, {"out.wav"})


# --- long files: bounded memory and interrupts ------------------------------------------------------


def write_long_wav(path: Path, rate: int, seconds: int, dtype: str) -> None:
    """A long mono tone file written a second at a time (never whole in memory)."""
    stored = np.dtype(dtype).newbyteorder("<")
    tag = TAG_FLOAT if stored.kind == "f" else TAG_PCM
    payload_bytes = rate * seconds * stored.itemsize
    t = np.arange(rate) / rate
    second = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * np.random.default_rng(1).standard_normal(rate)
    block = (second if tag == TAG_FLOAT else np.round(second * 32767)).astype(stored).tobytes()
    fmt = chunk(b"fmt ", fmt_body(tag, 1, rate, 8 * stored.itemsize))
    with path.open("wb") as handle:
        handle.write(b"RIFF" + struct.pack("<I", 4 + len(fmt) + 8 + payload_bytes) + b"WAVE" + fmt)
        handle.write(b"data" + struct.pack("<I", payload_bytes))
        for _ in range(seconds):
            handle.write(block)


MEMORY_SCRIPT = """
import resource, sys
from realtime.cli import main

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

short, long_, out, model = sys.argv[1:]
assert main(["enhance", short, out, "--model", model]) == 0
warm = peak_kib()
assert main(["enhance", long_, out, "--model", model]) == 0
print(warm, peak_kib())
"""
LONG_SECONDS = 75
LONG_RATE = 96_000
MEMORY_GROWTH_LIMIT_MIB = 24
"""Peak RSS growth allowed for a 75 s, 96 kHz float64 file (55 MiB on disk, 27 MiB as float32 samples)."""


def test_long_file_is_streamed_in_bounded_memory(identity: Path, tmp_path: Path) -> None:
    short, long_ = tmp_path / "short.wav", tmp_path / "long.wav"
    write_long_wav(short, LONG_RATE, 1, "float64")
    write_long_wav(long_, LONG_RATE, LONG_SECONDS, "float64")
    file_mib = long_.stat().st_size / 2**20
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(short), str(long_), str(tmp_path / "out.wav"), str(identity)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    warm_kib, peak_kib = map(int, result.stdout.split())
    growth_mib = (peak_kib - warm_kib) / 1024
    # Loading the whole file would take at least its bytes plus the float32 input and output copies.
    assert file_mib > 2 * MEMORY_GROWTH_LIMIT_MIB
    assert growth_mib < MEMORY_GROWTH_LIMIT_MIB, f"peak RSS grew {growth_mib:.1f} MiB for a {file_mib:.0f} MiB file"
    with WavReader(tmp_path / "out.wav") as reader:
        assert reader.info.frames == LONG_RATE * LONG_SECONDS


def _default_interrupt_handling() -> None:
    """In the child: SIGINT as in a terminal. A test run started in the background of a
    non-interactive shell inherits SIGINT ignored, and Python then keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _temporary_outputs(directory: Path) -> Iterator[Path]:
    return directory.glob(".out.wav.*.tmp")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_midway_leaves_the_old_output(random_model: Path, tmp_path: Path, signum: int) -> None:
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    write_long_wav(source, RATE, 300, "int16")
    target.write_bytes(b"result of an earlier run")
    before = snapshot(source)
    process = subprocess.Popen(
        [sys.executable, "-m", "realtime", "enhance", str(source), str(target), "--model", str(random_model)],
        stderr=subprocess.PIPE, text=True, preexec_fn=_default_interrupt_handling,
    )
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 100_000 for p in _temporary_outputs(tmp_path)):  # enhancing has begun
        assert process.poll() is None and time.monotonic() < deadline, "enhancing did not start or ended too soon"
        time.sleep(0.02)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    lines = [line for line in stderr.splitlines() if not line.startswith(TFLITE_BANNER)]
    assert process.returncode == 130 and lines == ["quietmic: interrupted"], stderr
    assert target.read_bytes() == b"result of an earlier run"
    assert not list(_temporary_outputs(tmp_path)) and snapshot(source) == before


# --- fuzzing the reader -----------------------------------------------------------------------------


class Hang(Exception):
    """A reader call ran past FUZZ_CALL_SECONDS."""


def read_guarded(path: Path) -> np.ndarray | None:
    """Read a whole file: samples, or None for an AudioFileError; any other exception or a hang fails."""

    def alarm(_signum: int, _frame: object) -> None:
        raise Hang(f"reading {path} took over {FUZZ_CALL_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, FUZZ_CALL_SECONDS)
    try:
        with WavReader(path) as reader:
            samples = reader.read(reader.info.frames)
            assert samples.dtype == np.float32 and samples.shape == (reader.info.frames, reader.info.channels)
            assert reader.info.frames * reader.info.frame_bytes <= reader.file_size
            return samples
    except AudioFileError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _seed_files() -> list[bytes]:
    audio = tones(8000, 0.01, channels=2)
    return [
        VALID_WAV[:400],
        wav_bytes(pcm24(audio.reshape(-1)), fmt_body(TAG_EXTENSIBLE, 2, 8000, 24),
                  after_fmt=chunk(b"LIST", b"INFOx")),
        wav_bytes(audio.astype("<f4").tobytes(), fmt_body(TAG_FLOAT, 2, 8000, 32), before=chunk(b"JUNK", bytes(5))),
        b"RF64\xff\xff\xff\xffWAVE" + chunk(b"ds64", struct.pack("<QQQI", 0, 160, 40, 0))
        + chunk(b"fmt ", fmt_body(TAG_PCM, 2, 8000, 16)) + chunk(b"data", bytes(160), size=0xFFFFFFFF),
    ]


SEEDS = _seed_files()
HEADER_FIELDS = [(4, "<I"), (16, "<I"), (20, "<H"), (22, "<H"), (24, "<I"), (32, "<H"), (34, "<H"), (40, "<I")]
"""(offset, struct format) of the RIFF size and the fmt/data fields of a canonical header."""
INTERESTING = [0, 1, 2, 3, 7, 8, 24, 0x7FFF, 0xFFFF, 0xFFFE, 0x7FFFFFFF, 0xFFFFFFFF]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 450), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 450), st.just(0)),
    st.tuples(st.just("field"), st.integers(0, len(HEADER_FIELDS) - 1), st.sampled_from(INTERESTING)),
)


def mutate(content: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(content)
    for kind, where, value in mutations:
        if kind == "flip" and where < len(data):
            data[where] ^= value
        elif kind == "truncate":
            del data[where:]
        elif kind == "field":
            offset, form = HEADER_FIELDS[where]
            width = struct.calcsize(form)
            if offset + width <= len(data):
                data[offset : offset + width] = struct.pack(form, value & (256**width - 1))
    return bytes(data)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(prefix=st.sampled_from([b"", b"RIFF\x00\x00\x00\x00WAVE", b"RF64\xff\xff\xff\xffWAVE"]),
       content=st.binary(max_size=600))
def test_fuzz_random_bytes(tmp_path: Path, prefix: bytes, content: bytes) -> None:
    path = tmp_path / "fuzz.wav"
    path.write_bytes(prefix + content)
    read_guarded(path)


@FUZZ
@given(seed=st.sampled_from(range(len(SEEDS))), mutations=st.lists(mutation, min_size=1, max_size=4))
def test_fuzz_mutated_wav_files(tmp_path: Path, seed: int, mutations: list[tuple[str, int, int]]) -> None:
    path = tmp_path / "fuzz.wav"
    path.write_bytes(mutate(SEEDS[seed], mutations))
    read_guarded(path)


def test_fuzz_seeds_are_valid(tmp_path: Path) -> None:
    """The mutation seeds themselves read (so the fuzz starts from real files)."""
    for index, content in enumerate(SEEDS):
        (tmp_path / f"{index}.wav").write_bytes(content)
        samples = read_guarded(tmp_path / f"{index}.wav")
        assert samples is not None and len(samples) > 0
