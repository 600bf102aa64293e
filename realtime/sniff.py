"""Telling what a file is from its first bytes, for errors about files passed by mistake.

Both the WAV reader (:mod:`realtime.files.audio_file`) and the model loader
(:mod:`realtime.metadata`) meet files of the wrong kind: a FLAC recording given
as input, a Keras model or a WAV file given as the model, a text file given as
either. :func:`identify` names such a file from its leading bytes, so that the
error can say what the file is and what to do with it.
"""

from __future__ import annotations

from dataclasses import dataclass

TEXT_SAMPLE_BYTES = 4096
"""How much of a file is looked at to tell whether it is text, in bytes."""

UTF8_LONGEST_CHARACTER_BYTES = 4
"""A UTF-8 character cut at the end of the sample leaves at most this many bytes minus one."""

_TEXT_CONTROL_BYTES = frozenset(range(32)) - {9, 10, 12, 13}
"""Bytes that do not occur in a text file (control characters other than tab, form feed and line ends)."""

_ONNX_PROTOBUF_START = b"\x08"
"""ONNX files are protobufs whose first field is ``ir_version`` (field 1, varint): tag byte 0x08."""

_ONNX_MARKERS = (b"onnx", b"pytorch", b"tf2onnx", b"skl2onnx")
"""Producer names found near the start of ONNX files."""


@dataclass(frozen=True)
class FileKind:
    """What a file seems to be.

    Attributes:
        name: with its article, e.g. ``"a FLAC file"``.
        audio: audio in a format other than WAV (or a WAV file).
        model: a model in a format other than TensorFlow Lite.
        other_riff: a RIFF container of another type than WAVE (AVI, WebP...);
            its name already says that it is not a WAV file.
        guess: what such a file usually holds when passed as a model, e.g.
            ``"a Keras .keras model or a PyTorch checkpoint?"`` (empty if nothing to add).
    """

    name: str
    audio: bool = False
    model: bool = False
    other_riff: bool = False
    guess: str = ""

    def describe(self) -> str:
        """The name with the guess in brackets, e.g. ``"a ZIP archive (a Keras .keras model...?)"``."""
        return f"{self.name} ({self.guess})" if self.guess else self.name


TEXT = FileKind("a text file")
WAV = FileKind("a WAV file", audio=True)
ONNX = FileKind("an ONNX model", model=True)

_MAGIC: tuple[tuple[bytes, FileKind], ...] = (
    (b"fLaC", FileKind("a FLAC file", audio=True)),
    (b"OggS", FileKind("an Ogg (Vorbis/Opus/FLAC) file", audio=True)),
    (b"ID3", FileKind("an MP3 file", audio=True)),
    (b"RIFX", FileKind("a big-endian WAV (RIFX) file", audio=True)),
    (b"caff", FileKind("a Core Audio (CAF) file", audio=True)),
    (b".snd", FileKind("a Sun/NeXT AU file", audio=True)),
    (b"riff\x2e\x91\xcf\x11", FileKind("a Sony Wave64 (W64) file", audio=True)),
    (b"\x1a\x45\xdf\xa3", FileKind("a Matroska/WebM file", audio=True)),
    (b"#!AMR", FileKind("an AMR file", audio=True)),
    (b"MAC ", FileKind("a Monkey's Audio (APE) file", audio=True)),
    (b"wvpk", FileKind("a WavPack file", audio=True)),
    (b"PK\x03\x04", FileKind("a ZIP archive", model=True, guess="a Keras .keras model or a PyTorch checkpoint?")),
    (b"\x89HDF\r\n\x1a\n", FileKind("an HDF5 file", model=True, guess="a Keras .h5 model?")),
    (b"\x80\x02", FileKind("a Python pickle", model=True, guess="a PyTorch or scikit-learn model?")),
    (b"\x89PNG", FileKind("a PNG image")),
    (b"\xff\xd8\xff", FileKind("a JPEG image")),
    (b"GIF8", FileKind("a GIF image")),
    (b"%PDF", FileKind("a PDF document")),
    (b"\x7fELF", FileKind("a program (ELF executable)")),
    (b"MThd", FileKind("a MIDI file (notes, not audio)")),
    (b"\x1f\x8b", FileKind("a gzip archive")),
)
"""Leading bytes of files people pass by mistake, and what to call them."""


def looks_like_text(data: bytes) -> bool:
    """Whether the first :data:`TEXT_SAMPLE_BYTES` of ``data`` are UTF-8 text without control characters."""
    sample = data[:TEXT_SAMPLE_BYTES]
    if not sample or any(byte in _TEXT_CONTROL_BYTES for byte in sample):
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end of the sample is fine
        return exc.start > len(sample) - UTF8_LONGEST_CHARACTER_BYTES
    return True


def _looks_like_onnx(data: bytes) -> bool:
    head = data[:TEXT_SAMPLE_BYTES].lower()
    return data.startswith(_ONNX_PROTOBUF_START) and any(marker in head for marker in _ONNX_MARKERS)


def identify(data: bytes) -> FileKind | None:
    """What a file starting with ``data`` seems to be, or ``None`` if it cannot be told."""
    if data[:4] == b"RIFF":
        if data[8:12] == b"WAVE":
            return WAV
        return FileKind(f"a RIFF file of type {data[8:12].decode('latin-1')!r}, not a WAV file", other_riff=True)
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return FileKind("an AIFF file", audio=True)
    if data[4:8] == b"ftyp":
        return FileKind("an MP4/M4A file", audio=True)
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:  # an MPEG audio frame sync
        return FileKind("an MP3 or AAC file", audio=True)
    if _looks_like_onnx(data):
        return ONNX
    if looks_like_text(data):
        return TEXT
    return None
