"""Reading and writing WAV files, with atomic writes.

Samples are handed around as float32 ``(frames, channels)`` arrays in [-1, 1];
:class:`WavFormat` remembers the file's sample format so the output can be
written in the same one (PCM 16/24/32-bit or 32-bit float).
"""

from __future__ import annotations

import os
import struct
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from realtime.errors import AudioFileError

PCM = "pcm"
FLOAT = "float"
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_IEEE_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


@dataclass(frozen=True)
class WavFormat:
    """Sample format of a WAV file."""

    kind: str
    bits: int


def _read_format(path: Path) -> WavFormat:
    """Format tag and bit depth from the ``fmt `` chunk."""
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
            raise AudioFileError(f"{path}: not a WAV file (quietmic reads and writes .wav)")
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                raise AudioFileError(f"{path}: WAV file has no 'fmt ' chunk; the file is truncated or corrupt")
            chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"fmt ":
                body = handle.read(size)
                if len(body) < 16:
                    raise AudioFileError(f"{path}: WAV 'fmt ' chunk is truncated")
                tag, _, _, _, _, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                    tag = struct.unpack("<H", body[24:26])[0]
                if tag == _WAVE_FORMAT_PCM:
                    return WavFormat(PCM, bits)
                if tag == _WAVE_FORMAT_IEEE_FLOAT:
                    return WavFormat(FLOAT, bits)
                raise AudioFileError(
                    f"{path}: WAV sample format {tag:#x} is not supported; convert to PCM or float WAV "
                    "(e.g. 'sox in.wav -e signed -b 16 out.wav')"
                )
            handle.seek(size + (size & 1), os.SEEK_CUR)


def read_wav(path: str | Path) -> tuple[np.ndarray, int, WavFormat]:
    """``(samples, sample_rate, format)``; samples are float32 ``(frames, channels)``."""
    wav_path = Path(path)
    if not wav_path.is_file():
        raise AudioFileError(f"input file {wav_path} does not exist")
    fmt = _read_format(wav_path)
    try:
        rate, data = wavfile.read(wav_path)
    except (ValueError, EOFError, OSError) as exc:
        raise AudioFileError(f"{wav_path}: cannot read WAV data ({exc})") from None
    if data.ndim == 1:
        data = data[:, None]
    if data.dtype == np.uint8:
        samples = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype.kind == "i":
        samples = data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    else:
        samples = data.astype(np.float32)
    return samples, int(rate), fmt


def _encode_pcm(samples: np.ndarray, bits: int) -> bytes:
    scale = float(2 ** (bits - 1))
    ints = np.clip(np.round(samples.astype(np.float64) * scale), -scale, scale - 1).astype("<i4")
    if bits == 8:
        return (ints + 128).astype(np.uint8).tobytes()
    if bits == 16:
        return ints.astype("<i2").tobytes()
    if bits == 24:
        return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return ints.tobytes()


def write_wav_atomic(path: str | Path, samples: np.ndarray, sample_rate: int, fmt: WavFormat) -> None:
    """Write ``samples`` (float32 ``(frames, channels)``) to ``path`` atomically.

    The data goes to a temporary file in the same directory, which replaces
    ``path`` only once complete, so ``path`` is never left half-written.
    """
    out_path = Path(path)
    directory = out_path.parent if str(out_path.parent) else Path(".")
    if not directory.is_dir():
        raise AudioFileError(f"output directory {directory} does not exist")
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix=f".{out_path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            if fmt.kind == FLOAT:
                wavfile.write(handle, sample_rate, samples.astype(np.float32))
            else:
                bits = fmt.bits if fmt.bits in (8, 16, 24, 32) else 16
                with wave.open(handle, "wb") as writer:
                    writer.setnchannels(samples.shape[1])
                    writer.setsampwidth(bits // 8)
                    writer.setframerate(sample_rate)
                    writer.writeframes(_encode_pcm(samples, bits))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, out_path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
