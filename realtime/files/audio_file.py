"""Streaming WAV reading, atomic output files, WAV writing.

Most formats are read and written through libsndfile (:mod:`realtime.files.audio_io`). PCM and float
WAV files are read here instead, where this reader does better than libsndfile: a recorder that never
wrote the data length (size 0) is read as far as its audio goes where libsndfile reads an empty file;
a truncated file or a partial last frame is read with a warning that says so; and the exact header
(``WAVE_FORMAT_EXTENSIBLE`` valid bits and channel mask) is kept for the output. WAV files in other
encodings (A-law, mu-law, ADPCM, GSM...) raise :class:`UnsupportedWavEncoding`, and go to libsndfile.

:class:`WavReader` parses the RIFF (or RF64/BW64) chunks itself and hands out
the audio in chunks of frames, so a file of any length is read in bounded
memory. It reads PCM (8/16/24/32-bit containers), IEEE float (32/64-bit) and
``WAVE_FORMAT_EXTENSIBLE`` files of either, skips chunks it does not know
(honouring the pad byte after odd-sized chunks), and refuses anything else with
an :class:`~realtime.errors.AudioFileError` that says what the file is. Damage it can read around (a data chunk shorter than its
header says, a size left unset by a recorder that never finished, a partial
last frame) is read as far as the audio goes, with a warning.

:class:`AtomicOutput` writes to a temporary file beside the output and
renames it over the output only once complete (:class:`AtomicWavWriter` writes WAV so); on any error or interrupt the
temporary file is removed, so the output is either the whole new file or
untouched. Files whose data would pass the 4 GiB RIFF limit are written as RF64.

Samples are handed around as float32 ``(frames, channels)`` arrays in [-1, 1];
:class:`WavFormat` remembers the file's sample format so the output can be
written in the same one.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Iterator

import numpy as np

from realtime import sniff
from realtime.errors import AudioFileError

log = logging.getLogger(__name__)

PCM = "pcm"
FLOAT = "float"

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
KSDATAFORMAT_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
"""Bytes 2..15 of every ``KSDATAFORMAT_SUBTYPE_*`` GUID; bytes 0..1 hold the format tag."""

UNSUPPORTED_ENCODINGS = {
    0x0002: "Microsoft ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0016: "ITU G.723 ADPCM",
    0x0031: "GSM 6.10",
    0x0040: "ITU G.721 ADPCM",
    0x0050: "MPEG audio",
    0x0055: "MP3",
    0x0161: "Windows Media Audio",
    0x1610: "AAC",
    0xF1AC: "FLAC",
}
"""Names of WAV encodings this reader leaves to libsndfile, by format tag (for messages)."""

CONVERT_HINT = "convert it to a 16-bit PCM WAV file first, e.g. 'ffmpeg -i {path} -c:a pcm_s16le out.wav'"

RIFF_HEADER_BYTES = 12
CHUNK_HEADER_BYTES = 8
FMT_MIN_BYTES = 16
FMT_EXTENSIBLE_BYTES = 40
DS64_MIN_BYTES = 24
DS64_CHUNK_BYTES = 36
"""Size of the ``ds64`` chunk quietmic writes (header and body, no size table)."""
FACT_CHUNK_BYTES = 12
FMT_READ_LIMIT = 1024
"""Most bytes of a ``fmt `` chunk read (a valid one has at most 40; the rest is ignored)."""
UNSET_SIZE_32 = 0xFFFFFFFF
"""A 32-bit chunk size of all ones: 'see the ds64 chunk' in RF64, 'unknown' from streaming recorders."""
MAX_RIFF_BYTES = 0xFFFFFFFF
"""Largest RIFF size field; a file whose RIFF payload would be larger is written as RF64."""
PCM_CONTAINER_BYTES = (1, 2, 3, 4)
FLOAT_BITS = (32, 64)
PCM_8_BIT_OFFSET = 128
"""8-bit WAV samples are unsigned: this value is silence."""
SNIFF_BYTES = 512
"""Bytes looked at to tell what a file that is not a WAV file is."""


class UnsupportedWavEncoding(AudioFileError):
    """A WAV file whose samples are not PCM or float (A-law, ADPCM...): libsndfile may decode it."""


@dataclass(frozen=True)
class WavFormat:
    """Sample format of a WAV file.

    ``bits`` is the container size (8, 16, 24, 32 or 64); ``valid_bits`` and
    ``channel_mask`` are kept from a ``WAVE_FORMAT_EXTENSIBLE`` header (None
    otherwise), so that such a file is written back the same way.
    """

    kind: str
    bits: int
    valid_bits: int | None = None
    channel_mask: int | None = None

    @property
    def sample_bytes(self) -> int:
        """Bytes per sample of one channel."""
        return self.bits // 8

    @property
    def extensible(self) -> bool:
        """Whether the header is ``WAVE_FORMAT_EXTENSIBLE``."""
        return self.channel_mask is not None

    def describe(self) -> str:
        """E.g. ``"24-bit PCM"`` or ``"32-bit float"``."""
        return f"{self.bits}-bit {'float' if self.kind == FLOAT else 'PCM'}"


@dataclass(frozen=True)
class WavInfo:
    """What the header of a WAV file says, corrected by what is really in the file."""

    sample_rate: int
    """Hz."""
    channels: int
    frames: int
    """Whole frames of audio present (one sample per channel each)."""
    format: WavFormat
    data_offset: int
    """Byte offset of the first audio frame."""
    warnings: tuple[str, ...] = field(default=())
    """Damage read around (truncation, unset sizes), one sentence each."""

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame (the header's block align)."""
        return self.channels * self.format.sample_bytes

    @property
    def seconds(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


# --- telling what a file is --------------------------------------------------------------


def _not_wav_error(path: Path, head: bytes) -> AudioFileError:
    kind = sniff.identify(head)
    if kind is None:
        return AudioFileError(
            f"{path} is not a WAV file (it has no RIFF/WAVE header); quietmic enhances audio files"
        )
    if kind.audio:
        return AudioFileError(
            f"{path} is {kind.name}, not a WAV file; read it with realtime.files.audio_io.open_audio"
        )
    if kind.other_riff:
        return AudioFileError(f"{path} is {kind.name}; quietmic enhances audio files")
    return AudioFileError(f"{path} is {kind.name}, not audio; quietmic enhances audio files")


# --- parsing the header ------------------------------------------------------------------


def open_input(path: Path) -> tuple[BinaryIO, int]:
    """The opened file and its size in bytes, or an error saying why it cannot be read."""
    try:
        if not path.exists():
            raise AudioFileError(f"input file {path} does not exist")
        if path.is_dir():
            raise AudioFileError(f"input {path} is a directory, not an audio file")
        if not path.is_file():
            raise AudioFileError(f"input {path} is not a regular file (a device or a pipe?); pass an audio file, or '-' to read standard input")
        handle = path.open("rb")
    except OSError as exc:
        raise AudioFileError(f"cannot read {path}: {exc.strerror or exc}; check the path and its permissions") from None
    return handle, os.fstat(handle.fileno()).st_size


def _parse_fmt(path: Path, body: bytes) -> tuple[WavFormat, int, int]:
    """``(format, channels, sample_rate)`` from the body of a ``fmt `` chunk."""
    if len(body) < FMT_MIN_BYTES:
        raise AudioFileError(f"{path}: the WAV 'fmt ' chunk is cut short ({len(body)} bytes); the file is corrupt")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", body[:FMT_MIN_BYTES])
    valid_bits = mask = None
    if tag == WAVE_FORMAT_EXTENSIBLE:
        if len(body) < FMT_EXTENSIBLE_BYTES:
            raise AudioFileError(f"{path}: the WAV_FORMAT_EXTENSIBLE header is cut short; the file is corrupt")
        valid_bits, mask = struct.unpack("<HI", body[18:24])
        subformat = body[24:40]
        if subformat[2:] != KSDATAFORMAT_GUID_TAIL:
            raise UnsupportedWavEncoding(
                f"{path}: unknown WAV sub-format {subformat.hex()}; {CONVERT_HINT.format(path=path)}"
            )
        tag = struct.unpack("<H", subformat[:2])[0]
    if tag not in (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT):
        name = UNSUPPORTED_ENCODINGS.get(tag, "an unknown encoding")
        raise UnsupportedWavEncoding(
            f"{path}: the WAV audio is {name} (format tag {tag:#06x}), which quietmic cannot decode; "
            + CONVERT_HINT.format(path=path)
        )
    if channels == 0:
        raise AudioFileError(f"{path}: the WAV header says 0 channels; the file is corrupt")
    if rate == 0:
        raise AudioFileError(f"{path}: the WAV header says a sample rate of 0 Hz; the file is corrupt")
    kind = PCM if tag == WAVE_FORMAT_PCM else FLOAT
    container = -(-bits // 8)
    consistent = (
        (kind == PCM and 1 <= bits <= 32 and container in PCM_CONTAINER_BYTES)
        or (kind == FLOAT and bits in FLOAT_BITS)
    ) and block_align == channels * container
    if not consistent:
        raise AudioFileError(
            f"{path}: the WAV header is inconsistent or unsupported ({bits}-bit {'PCM' if kind == PCM else 'float'}, "
            f"{channels} channel(s), "
            f"{block_align} bytes per frame); quietmic reads 8/16/24/32-bit PCM and 32/64-bit float; "
            + CONVERT_HINT.format(path=path)
        )
    return WavFormat(kind, container * 8, valid_bits, mask), channels, rate


def _looks_like_chunk_header(header: bytes, room: int) -> bool:
    """Whether 8 bytes look like a chunk header (ASCII id, size that fits in ``room`` bytes)."""
    if len(header) < CHUNK_HEADER_BYTES:
        return False
    chunk_id, size = header[:4], struct.unpack("<I", header[4:8])[0]
    return all(0x20 <= byte < 0x7F for byte in chunk_id) and size <= room


@dataclass
class _Scan:
    """State of the chunk walk in :func:`parse_wav_header`."""

    fmt: tuple[WavFormat, int, int] | None = None
    data: tuple[int, int] | None = None
    ds64_data_bytes: int | None = None
    warnings: list[str] = field(default_factory=list)


def _data_extent(path: Path, handle: BinaryIO, scan: _Scan, start: int, size: int, file_size: int) -> int:
    """Bytes of audio in a data chunk at ``start`` whose header says ``size``; notes damage in ``scan``."""
    available = file_size - start
    declared = size
    if size == UNSET_SIZE_32 and scan.ds64_data_bytes is not None:
        declared = scan.ds64_data_bytes
    elif size == UNSET_SIZE_32 or (size == 0 and available > 0):
        handle.seek(start)
        follower = handle.read(CHUNK_HEADER_BYTES)
        if size == 0 and _looks_like_chunk_header(follower, available - CHUNK_HEADER_BYTES):
            return 0  # a genuinely empty data chunk followed by another chunk
        scan.warnings.append(
            f"{path}: the WAV header leaves the audio length unset (a recording that was not finished?); "
            f"reading the {available} bytes up to the end of the file"
        )
        return available
    if declared > available:
        scan.warnings.append(
            f"{path}: the file is truncated: the header announces {declared} bytes of audio but only {available} "
            "are there; reading what is there"
        )
        return available
    return declared


def parse_wav_header(path: Path, handle: BinaryIO, file_size: int) -> WavInfo:
    """Walk the chunks of an opened WAV file; the handle is left anywhere."""
    if file_size == 0:
        raise AudioFileError(f"{path} is empty (0 bytes), not a WAV file")
    head = handle.read(SNIFF_BYTES)
    if head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        raise _not_wav_error(path, head)
    rf64 = head[:4] != b"RIFF"
    scan = _Scan()
    position = RIFF_HEADER_BYTES
    while position + CHUNK_HEADER_BYTES <= file_size and (scan.fmt is None or scan.data is None):
        handle.seek(position)
        chunk_id, size = struct.unpack("<4sI", handle.read(CHUNK_HEADER_BYTES))
        start = position + CHUNK_HEADER_BYTES
        if chunk_id == b"ds64" and rf64:
            body = handle.read(min(size, FMT_READ_LIMIT))
            if len(body) < DS64_MIN_BYTES:
                raise AudioFileError(f"{path}: the RF64 'ds64' chunk is cut short; the file is corrupt")
            scan.ds64_data_bytes = struct.unpack("<Q", body[8:16])[0]
        elif chunk_id == b"fmt ":
            if scan.fmt is not None:
                raise AudioFileError(f"{path}: the WAV file has two 'fmt ' chunks; the file is corrupt")
            scan.fmt = _parse_fmt(path, handle.read(min(size, FMT_READ_LIMIT)))
        elif chunk_id == b"data" and scan.data is None:
            size = _data_extent(path, handle, scan, start, size, file_size)
            scan.data = (start, size)
        position = start + size + (size & 1)
    return _finish_scan(path, scan, file_size)


def _finish_scan(path: Path, scan: _Scan, file_size: int) -> WavInfo:
    if scan.fmt is None:
        raise AudioFileError(f"{path}: the WAV file has no 'fmt ' chunk; the file is truncated or corrupt")
    if scan.data is None:
        raise AudioFileError(
            f"{path}: the WAV file has no 'data' chunk: it ends after {file_size} bytes, inside its header; "
            "the file is truncated or corrupt"
        )
    fmt, channels, rate = scan.fmt
    start, data_bytes = scan.data
    frame_bytes = channels * fmt.sample_bytes
    frames, partial = divmod(data_bytes, frame_bytes)
    if partial:
        scan.warnings.append(f"{path}: the audio ends in a partial frame ({partial} bytes); it is ignored")
    return WavInfo(rate, channels, frames, fmt, start, tuple(scan.warnings))


# --- decoding and encoding samples ----------------------------------------------------------


def decode_samples(raw: bytes, fmt: WavFormat, channels: int) -> np.ndarray:
    """Float32 ``(frames, channels)`` samples from whole frames of WAV data."""
    width = fmt.sample_bytes
    if fmt.kind == FLOAT:
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf (handled downstream)
            values = np.frombuffer(raw, dtype=f"<f{width}").astype(np.float32)
    elif width == 1:
        values = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - PCM_8_BIT_OFFSET) / PCM_8_BIT_OFFSET
    elif width == 3:
        triplets = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        padded = np.zeros((len(triplets), 4), dtype=np.uint8)
        padded[:, 1:] = triplets  # the sample in the top 24 bits of a little-endian int32
        values = (padded.view("<i4")[:, 0] >> 8).astype(np.float32) / float(2**23)
    else:
        values = (np.frombuffer(raw, dtype=f"<i{width}").astype(np.float64) / float(2 ** (8 * width - 1))).astype(
            np.float32
        )
    return values.reshape(-1, channels)


def encode_samples(samples: np.ndarray, fmt: WavFormat) -> bytes:
    """WAV data bytes for float ``(frames, channels)`` samples; PCM is rounded and clipped."""
    if fmt.kind == FLOAT:
        return np.ascontiguousarray(samples, dtype=f"<f{fmt.sample_bytes}").tobytes()
    scale = float(2 ** (fmt.bits - 1))
    values = np.nan_to_num(np.asarray(samples, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    ints = np.clip(np.round(values * scale), -scale, scale - 1).astype("<i8")
    if fmt.bits == 8:
        return (ints + PCM_8_BIT_OFFSET).astype(np.uint8).tobytes()
    if fmt.bits == 24:
        return np.ascontiguousarray(ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]).tobytes()
    return ints.astype(f"<i{fmt.sample_bytes}").tobytes()


# --- reading -------------------------------------------------------------------------------


class WavReader:
    """A WAV file opened for reading in chunks of frames.

    Use as a context manager. Header damage it cannot read around raises
    :class:`AudioFileError` on construction; damage it can is logged as
    warnings (also in ``info.warnings``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle, self.file_size = open_input(self.path)
        try:
            self.info = parse_wav_header(self.path, self._handle, self.file_size)
            self._handle.seek(self.info.data_offset)
        except OSError as exc:
            self._handle.close()
            raise AudioFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        except BaseException:
            self._handle.close()
            raise
        for warning in self.info.warnings:
            log.warning("%s", warning)
        self.position = 0
        """Frames read so far."""

    def read(self, frames: int) -> np.ndarray:
        """Up to ``frames`` more frames as float32 ``(n, channels)``; ``n == 0`` at the end."""
        info = self.info
        wanted = max(0, min(frames, info.frames - self.position))
        try:
            raw = self._handle.read(wanted * info.frame_bytes)
        except OSError as exc:
            raise AudioFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        got = len(raw) // info.frame_bytes
        if got < wanted:  # the file shrank while being read
            log.warning("%s: the file ended early (changed while being read?); the audio stops there", self.path)
            self.position = info.frames
        else:
            self.position += got
        return decode_samples(raw[: got * info.frame_bytes], info.format, info.channels)

    def chunks(self, frames: int) -> Iterator[np.ndarray]:
        """The rest of the audio in chunks of ``frames`` frames (the last may be shorter)."""
        while True:
            chunk = self.read(frames)
            if not len(chunk):
                return
            yield chunk

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def __enter__(self) -> WavReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def read_wav(path: str | Path) -> tuple[np.ndarray, int, WavFormat]:
    """A whole WAV file: ``(samples, sample_rate, format)``, samples float32 ``(frames, channels)``.

    Loads everything into memory: for long files use :class:`WavReader`.
    """
    with WavReader(path) as reader:
        return reader.read(reader.info.frames), reader.info.sample_rate, reader.info.format


# --- writing -------------------------------------------------------------------------------


def wav_header(sample_rate: int, channels: int, fmt: WavFormat, frames: int) -> bytes:
    """The bytes before the audio of a WAV file of ``frames`` frames (RF64 if it needs to be)."""
    data_bytes = frames * channels * fmt.sample_bytes
    pad = data_bytes & 1
    block_align = channels * fmt.sample_bytes
    tag = WAVE_FORMAT_IEEE_FLOAT if fmt.kind == FLOAT else WAVE_FORMAT_PCM
    common = struct.pack("<HIIHH", channels, sample_rate, sample_rate * block_align, block_align, fmt.bits)
    if fmt.extensible:
        extension = struct.pack("<HHI", 22, fmt.valid_bits or fmt.bits, fmt.channel_mask or 0)
        body = struct.pack("<H", WAVE_FORMAT_EXTENSIBLE) + common + extension + struct.pack("<H", tag)
        body += KSDATAFORMAT_GUID_TAIL
    elif fmt.kind == FLOAT:
        body = struct.pack("<H", tag) + common + struct.pack("<H", 0)
    else:
        body = struct.pack("<H", tag) + common
    chunks = b"fmt " + struct.pack("<I", len(body)) + body
    has_fact = fmt.kind == FLOAT or fmt.extensible
    riff_size = 4 + len(chunks) + (FACT_CHUNK_BYTES if has_fact else 0) + CHUNK_HEADER_BYTES + data_bytes + pad
    large = riff_size > MAX_RIFF_BYTES
    if has_fact:
        chunks += b"fact" + struct.pack("<II", 4, UNSET_SIZE_32 if large else frames)
    if not large:
        return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + b"data" + struct.pack("<I", data_bytes)
    ds64_body = struct.pack("<QQQI", riff_size + DS64_CHUNK_BYTES, data_bytes, frames, 0)
    ds64 = b"ds64" + struct.pack("<I", len(ds64_body)) + ds64_body
    return (
        b"RF64" + struct.pack("<I", UNSET_SIZE_32) + b"WAVE" + ds64 + chunks + b"data"
        + struct.pack("<I", UNSET_SIZE_32)
    )


def _new_file_mode(target: Path) -> int:
    """Permission bits for the output: those of the file it replaces, else what the umask allows."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


class AtomicOutput:
    """A file written to ``path`` atomically: whole or not at all.

    The bytes go to a hidden temporary file in the output's directory
    (``.NAME.XXXX.tmp``), which replaces ``path`` when the ``with`` block ends
    normally. If the block raises (including ``KeyboardInterrupt``) the temporary
    file is deleted and ``path`` is left as it was. Subclasses write the audio:
    :meth:`_begin` once the temporary file is open, :meth:`_encode` per chunk,
    :meth:`_end` before it is synced and renamed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.written = 0
        """Frames written so far."""
        self.temp_path: Path | None = None
        self._handle: BinaryIO | None = None

    def _check_target(self) -> Path:
        """The output's directory, after checking the output can be written there."""
        directory = self.path.parent
        if not directory.is_dir():
            raise AudioFileError(f"output directory {directory} does not exist; create it or choose another output path")
        if self.path.is_dir():
            raise AudioFileError(f"output {self.path} is a directory; give a file name, e.g. {self.path / 'out.wav'}")
        return directory

    def _begin(self, handle: BinaryIO) -> None:
        """Start the file (e.g. its header) in the opened temporary file."""

    def _encode(self, handle: BinaryIO, samples: np.ndarray) -> None:
        raise NotImplementedError

    def _end(self, handle: BinaryIO) -> None:
        """Finish the file once every frame was written (e.g. a pad byte)."""

    def __enter__(self) -> AtomicOutput:
        directory = self._check_target()
        try:
            fd, name = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise AudioFileError(
                f"cannot write to directory {directory}: {exc.strerror or exc}; choose another output path"
            ) from None
        self.temp_path = Path(name)
        self._handle = os.fdopen(fd, "w+b")
        try:
            os.fchmod(fd, _new_file_mode(self.path))
            self._begin(self._handle)
        except BaseException:
            self._discard()
            raise
        return self

    def write(self, samples: np.ndarray) -> None:
        """Append float ``(frames, channels)`` samples."""
        if self._handle is None:
            raise RuntimeError(f"{type(self).__name__}.write() outside its 'with' block")
        try:
            self._encode(self._handle, samples)
        except OSError as exc:
            raise AudioFileError(f"cannot write {self.path}: {exc.strerror or exc}; nothing was written") from None
        self.written += len(samples)

    def _commit(self) -> None:
        assert self._handle is not None and self.temp_path is not None
        self._end(self._handle)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.temp_path, self.path)
        self.temp_path = None

    def _discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self.temp_path is not None:
            self.temp_path.unlink(missing_ok=True)
            self.temp_path = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                self._commit()
        except OSError as error:
            raise AudioFileError(f"cannot write {self.path}: {error.strerror or error}; nothing was written") from None
        finally:
            self._discard()


class AtomicWavWriter(AtomicOutput):
    """Writes a WAV file of a known number of frames to ``path``, atomically (see :class:`AtomicOutput`).

    The header is written first, so exactly ``frames`` frames must be written.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int, fmt: WavFormat, frames: int) -> None:
        super().__init__(path)
        self.sample_rate, self.channels, self.format, self.frames = sample_rate, channels, fmt, frames

    def _begin(self, handle: BinaryIO) -> None:
        handle.write(wav_header(self.sample_rate, self.channels, self.format, self.frames))

    def _encode(self, handle: BinaryIO, samples: np.ndarray) -> None:
        if self.written + len(samples) > self.frames:
            raise RuntimeError(f"more frames written than the {self.frames} announced")
        handle.write(encode_samples(samples, self.format))

    def _end(self, handle: BinaryIO) -> None:
        if self.written != self.frames:
            raise RuntimeError(f"internal error: {self.written} frames written, {self.frames} announced")
        if (self.frames * self.channels * self.format.sample_bytes) & 1:
            handle.write(b"\x00")  # the pad byte after an odd-sized data chunk


class StreamWavWriter:
    """Writes a WAV file of a known number of frames to an open binary stream (standard output).

    A stream cannot be replaced atomically: an interrupted run leaves a short file. The header
    comes first and announces ``frames`` frames, so a pipe can be written without seeking.
    """

    def __init__(self, stream: BinaryIO, sample_rate: int, channels: int, fmt: WavFormat, frames: int,
                 name: str = "standard output") -> None:
        self.stream, self.format, self.frames, self.name = stream, fmt, frames, name
        self.channels = channels
        self.written = 0
        """Frames written so far."""
        self._header = wav_header(sample_rate, channels, fmt, frames)

    def __enter__(self) -> StreamWavWriter:
        self._put(self._header)
        return self

    def _put(self, data: bytes) -> None:
        try:
            self.stream.write(data)
        except BrokenPipeError:
            raise AudioFileError(f"{self.name} was closed by the program reading it; the output stops there") from None
        except OSError as exc:
            raise AudioFileError(f"cannot write {self.name}: {exc.strerror or exc}") from None

    def write(self, samples: np.ndarray) -> None:
        """Append float ``(frames, channels)`` samples."""
        if self.written + len(samples) > self.frames:
            raise RuntimeError(f"more frames written than the {self.frames} announced")
        self._put(encode_samples(samples, self.format))
        self.written += len(samples)

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        if exc_type is None:
            if (self.frames * self.channels * self.format.sample_bytes) & 1:
                self._put(b"\x00")
            try:
                self.stream.flush()
            except BrokenPipeError:
                raise AudioFileError(f"{self.name} was closed by the program reading it") from None


def write_wav_atomic(path: str | Path, samples: np.ndarray, sample_rate: int, fmt: WavFormat) -> None:
    """Write float32 ``(frames, channels)`` ``samples`` to ``path`` atomically (see :class:`AtomicWavWriter`)."""
    with AtomicWavWriter(path, sample_rate, samples.shape[1], fmt, len(samples)) as writer:
        writer.write(samples)
