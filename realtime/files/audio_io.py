"""Reading and writing audio files of any format libsndfile knows, streamed, and standard input/output.

:func:`open_audio` opens an input for reading in chunks of float32 ``(frames, channels)`` samples:

* PCM and float WAV (RIFF, RF64, BW64) through quietmic's own reader,
  :class:`~realtime.files.audio_file.WavReader`, which does better than libsndfile on such files
  (see :mod:`realtime.files.audio_file`: recorders that never wrote the length, truncation warnings,
  the exact header kept for the output);
* everything else through **soundfile** (libsndfile): WAV in A-law, mu-law, ADPCM or GSM, Wave64,
  FLAC, Ogg Vorbis, Opus, MP3, AIFF, CAF, AU...

:func:`open_output` writes the format the output's extension names (:data:`OUTPUT_EXTENSIONS`;
a name without an extension is WAV), keeping the input's sample format where that format can hold
it (:func:`output_subtype`); files are replaced atomically. ``-`` is standard input or output:
standard input is copied to a temporary file first (formats need seeking), standard output gets
WAV, whose header is written first.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

import numpy as np

from realtime import sniff
from realtime.errors import AudioFileError
from realtime.files.audio_file import (
    FLOAT,
    PCM,
    SNIFF_BYTES,
    AtomicOutput,
    AtomicWavWriter,
    StreamWavWriter,
    UnsupportedWavEncoding,
    WavFormat,
    WavReader,
    open_input,
)

log = logging.getLogger(__name__)

STDIO = "-"
"""The name that means standard input (as the input) or standard output (as the output)."""

STDIN_NAME = "stdin"
"""File name standard input is copied to (inside a private temporary directory), as messages show it."""

WAV = "WAV"
"""libsndfile's name of the WAV container."""

OUTPUT_EXTENSIONS: dict[str, tuple[str, str | None]] = {
    ".wav": (WAV, None),
    ".wave": (WAV, None),
    ".rf64": ("RF64", None),
    ".w64": ("W64", None),
    ".flac": ("FLAC", None),
    ".ogg": ("OGG", "VORBIS"),
    ".oga": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aiff": ("AIFF", None),
    ".aif": ("AIFF", None),
    ".aifc": ("AIFF", None),
    ".caf": ("CAF", None),
    ".au": ("AU", None),
    ".snd": ("AU", None),
}
"""Output extension -> (libsndfile container, fixed subtype or None to keep the input's where possible)."""

AUDIO_EXTENSIONS = frozenset(OUTPUT_EXTENSIONS) | {".mp2", ".mpga", ".sd2", ".voc", ".htk", ".paf", ".svx",
                                                   ".nist", ".sph", ".ircam", ".sf", ".xi", ".pvf", ".avr"}
"""Extensions of the files a directory given as input contributes (what libsndfile reads)."""

SUBTYPE_WAV_FORMATS: dict[str, WavFormat] = {
    "PCM_U8": WavFormat(PCM, 8),
    "PCM_S8": WavFormat(PCM, 8),
    "PCM_16": WavFormat(PCM, 16),
    "PCM_24": WavFormat(PCM, 24),
    "PCM_32": WavFormat(PCM, 32),
    "FLOAT": WavFormat(FLOAT, 32),
    "DOUBLE": WavFormat(FLOAT, 64),
}
"""libsndfile sample formats that quietmic's own WAV writer writes (WAV 8-bit is unsigned: PCM_S8 -> PCM_U8)."""

HIGH_RESOLUTION_SUBTYPES = frozenset({"PCM_24", "PCM_32", "FLOAT", "DOUBLE"})
"""Inputs finer than 16 bits: written as 24-bit PCM where the output cannot keep their format."""

LOSSY_SUBTYPES = frozenset({"VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III"})
"""Compressed inputs: written as 16-bit PCM to a lossless output."""

FALLBACK_SUBTYPE = "PCM_16"
HIGH_RESOLUTION_FALLBACK = "PCM_24"


@dataclass(frozen=True)
class AudioInfo:
    """What an input holds."""

    sample_rate: int
    """Hz."""
    channels: int
    frames: int
    """Frames of audio (one sample per channel each), as the file says."""
    container: str
    """libsndfile's name of the container: ``WAV``, ``RF64``, ``FLAC``, ``OGG``, ``MP3``..."""
    subtype: str
    """libsndfile's name of the sample format: ``PCM_16``, ``FLOAT``, ``ULAW``, ``VORBIS``..."""
    wav_format: WavFormat | None = None
    """The exact WAV sample format, for files read by quietmic's own WAV reader (kept for a WAV output)."""
    warnings: tuple[str, ...] = field(default=())
    """Damage read around (truncation, unset sizes), one sentence each."""

    @property
    def seconds(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate

    def describe(self) -> str:
        """E.g. ``"FLAC, PCM_24"``."""
        return f"{self.container}, {self.subtype}"


class AudioReader(Protocol):
    """An input opened for reading in chunks (what :func:`open_audio` returns)."""

    path: Path
    info: AudioInfo

    def read(self, frames: int) -> np.ndarray:
        """Up to ``frames`` more frames as float32 ``(n, channels)``; ``n == 0`` at the end."""
        ...

    def close(self) -> None:
        """Close the input."""
        ...

    def __enter__(self) -> AudioReader: ...

    def __exit__(self, *exc: object) -> None: ...


def _wav_subtype(fmt: WavFormat) -> str:
    """libsndfile's name of a WAV sample format."""
    if fmt.kind == FLOAT:
        return "FLOAT" if fmt.bits == 32 else "DOUBLE"
    return "PCM_U8" if fmt.bits == 8 else f"PCM_{fmt.bits}"


class _WavSource:
    """:class:`WavReader` as an :class:`AudioReader`."""

    def __init__(self, reader: WavReader, container: str) -> None:
        self._reader = reader
        self.path = reader.path
        wav = reader.info
        self.info = AudioInfo(wav.sample_rate, wav.channels, wav.frames, container, _wav_subtype(wav.format),
                              wav.format, wav.warnings)

    def read(self, frames: int) -> np.ndarray:
        return self._reader.read(frames)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> _WavSource:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class SoundFileReader:
    """An input read through libsndfile (:mod:`soundfile`), in chunks."""

    def __init__(self, path: Path, head: bytes, wav_refusal: str | None = None) -> None:
        """``wav_refusal``: why quietmic's own WAV reader left the file to libsndfile (for the error)."""
        import soundfile

        self.path = path
        try:
            self._file = soundfile.SoundFile(str(path))
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            if wav_refusal is not None:
                raise AudioFileError(f"{wav_refusal} (libsndfile: {_libsndfile_message(exc)})") from None
            raise _unreadable_error(path, head, exc) from None
        self.info = AudioInfo(self._file.samplerate, self._file.channels, max(0, self._file.frames),
                              self._file.format, self._file.subtype)
        self._error = soundfile.LibsndfileError

    def read(self, frames: int) -> np.ndarray:
        try:
            return self._file.read(frames, dtype="float32", always_2d=True)
        except (self._error, RuntimeError) as exc:
            raise AudioFileError(f"cannot decode {self.path}: {_libsndfile_message(exc)}; the file is damaged") from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SoundFileReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _libsndfile_message(exc: Exception) -> str:
    """libsndfile's own sentence from a soundfile error, on one line."""
    text = str(getattr(exc, "error_string", "") or exc)
    return " ".join(text.split()).rstrip(".")


def _unreadable_error(path: Path, head: bytes, exc: Exception) -> AudioFileError:
    """The error for an input libsndfile cannot open: what the file seems to be, and what to do."""
    kind = sniff.identify(head)
    convert = f"convert it first, e.g. 'ffmpeg -i {path} out.wav'"
    detail = _libsndfile_message(exc)
    if kind is None:
        return AudioFileError(f"{path} is not an audio file quietmic can read (libsndfile: {detail}); {convert}")
    if kind.audio:
        return AudioFileError(f"{path} is {kind.name}, which quietmic cannot decode (libsndfile: {detail}); {convert}")
    if kind.other_riff:
        return AudioFileError(f"{path} is {kind.name}; quietmic enhances audio files")
    return AudioFileError(f"{path} is {kind.name}, not audio; quietmic enhances audio files")


def open_audio(path: str | Path) -> AudioReader:
    """Open the audio file at ``path`` for reading in chunks (see the module's docstring for which reader).

    Raises :class:`AudioFileError` with a message for the user when it cannot be read.
    """
    source = Path(path)
    handle, size = open_input(source)  # refuses missing files, directories and pipes in words
    try:
        head = handle.read(SNIFF_BYTES)
    finally:
        handle.close()
    if size == 0:
        raise AudioFileError(f"{source} is empty (0 bytes), not an audio file")
    wav_refusal = None
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        try:
            return _WavSource(WavReader(source), WAV if head[:4] == b"RIFF" else "RF64")
        except UnsupportedWavEncoding as exc:
            log.debug("%s; reading it with libsndfile", exc)
            wav_refusal = str(exc)
    return SoundFileReader(source, head, wav_refusal)


# --- standard input ----------------------------------------------------------------------------


class StdinCopy:
    """Standard input copied to a private temporary file (``.../stdin``), removed on exit.

    Formats need seeking (headers at the end, lengths), so a pipe is read to its end first.
    """

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self.path = Path()

    def __enter__(self) -> Path:
        stream = self._stream if self._stream is not None else sys.stdin.buffer
        if stream.isatty():
            raise AudioFileError(
                "the input '-' is standard input, which is a terminal; pipe audio in, "
                "e.g. 'quietmic enhance - out.wav < in.wav'"
            )
        self._directory = tempfile.TemporaryDirectory(prefix="quietmic-")
        self.path = Path(self._directory.name) / STDIN_NAME
        try:
            with self.path.open("wb") as copy:
                shutil.copyfileobj(stream, copy)
        except OSError as exc:
            self._directory.cleanup()
            raise AudioFileError(f"cannot copy standard input to {self.path}: {exc.strerror or exc}; "
                                 "free space in the temporary directory ($TMPDIR)") from None
        return self.path

    def __exit__(self, *_exc: object) -> None:
        if self._directory is not None:
            self._directory.cleanup()


# --- output formats ---------------------------------------------------------------------------------


def output_container(path: str | Path) -> tuple[str, str | None]:
    """``(container, fixed subtype or None)`` for an output path, from its extension (none: WAV).

    Raises :class:`AudioFileError` for an extension quietmic cannot write.
    """
    if str(path) == STDIO:
        return WAV, None
    suffix = Path(path).suffix.lower()
    if not suffix:
        return WAV, None
    if suffix not in OUTPUT_EXTENSIONS:
        raise AudioFileError(
            f"cannot tell which format to write from the name {Path(path).name!r}; end it in one of "
            f"{', '.join(sorted(OUTPUT_EXTENSIONS))}"
        )
    return OUTPUT_EXTENSIONS[suffix]


def output_subtype(info: AudioInfo, container: str, fixed: str | None) -> str:
    """The sample format to write ``container`` in: the input's where the container can hold it.

    Otherwise 24-bit PCM for inputs finer than 16 bits and 16-bit PCM for the rest (compressed
    inputs included), or the container's own (``fixed``: Vorbis, Opus, MP3).
    """
    if fixed is not None:
        return fixed
    import soundfile

    preferred = [info.subtype]
    if info.subtype in HIGH_RESOLUTION_SUBTYPES:
        preferred.append(HIGH_RESOLUTION_FALLBACK)
    preferred += [FALLBACK_SUBTYPE, soundfile.default_subtype(container)]
    for subtype in preferred:
        if subtype not in LOSSY_SUBTYPES and soundfile.check_format(container, subtype):
            return subtype
    raise AudioFileError(f"libsndfile cannot write {container} files here")  # no container lacks PCM_16


def wav_format_for(info: AudioInfo) -> WavFormat | None:
    """The WAV sample format quietmic's own writer writes for this input, or None (libsndfile writes it)."""
    if info.wav_format is not None:
        return info.wav_format
    if info.subtype in LOSSY_SUBTYPES:
        return WavFormat(PCM, 16)
    return SUBTYPE_WAV_FORMATS.get(info.subtype)


class AtomicSoundFileWriter(AtomicOutput):
    """Writes any format libsndfile writes to ``path``, atomically (see :class:`AtomicOutput`)."""

    def __init__(self, path: str | Path, sample_rate: int, channels: int, container: str, subtype: str) -> None:
        super().__init__(path)
        self.sample_rate, self.channels, self.container, self.subtype = sample_rate, channels, container, subtype
        self._file = None

    def _begin(self, handle: BinaryIO) -> None:
        import soundfile

        try:
            self._file = soundfile.SoundFile(handle, "w", self.sample_rate, self.channels, self.subtype,
                                             format=self.container)
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
            raise AudioFileError(
                f"cannot write {self.path} as {self.container} {self.subtype} at {self.sample_rate} Hz with "
                f"{self.channels} channel(s) (libsndfile: {_libsndfile_message(exc)}); choose another format, "
                "e.g. a .wav or .flac name"
            ) from None

    def _encode(self, handle: BinaryIO, samples: np.ndarray) -> None:
        assert self._file is not None
        self._file.write(np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0))

    def _end(self, handle: BinaryIO) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc_type is not None and self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - the file is being discarded anyway
                pass
            self._file = None
        super().__exit__(exc_type, exc, traceback)


class OutputWriter(Protocol):
    """What :func:`open_output` returns: a context manager taking float ``(frames, channels)`` chunks."""

    written: int

    def write(self, samples: np.ndarray) -> None: ...

    def __enter__(self) -> OutputWriter: ...

    def __exit__(self, *exc: object) -> None: ...


def open_output(path: str | Path, info: AudioInfo, sample_rate: int | None = None) -> OutputWriter:
    """A writer for ``path`` (``-``: standard output, WAV) of ``info.frames`` frames like ``info``'s.

    The format is the one the extension names; a WAV output keeps the input's WAV header format
    when it has one. Nothing is created until the writer's ``with`` block is entered.
    """
    rate = sample_rate or info.sample_rate
    container, fixed = output_container(path)
    if str(path) == STDIO:
        if sys.stdout.isatty():
            raise AudioFileError("the output '-' is standard output, which is a terminal; redirect it, "
                                 "e.g. 'quietmic enhance in.wav - > out.wav' or '| aplay'")
        fmt = wav_format_for(info) or WavFormat(PCM, 16)
        return StreamWavWriter(sys.stdout.buffer, rate, info.channels, fmt, info.frames)
    if container == WAV:
        fmt = wav_format_for(info)
        if fmt is not None:
            return AtomicWavWriter(path, rate, info.channels, fmt, info.frames)
    subtype = output_subtype(info, container, fixed)
    return AtomicSoundFileWriter(path, rate, info.channels, container, subtype)
