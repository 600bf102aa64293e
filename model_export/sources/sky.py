"""Beneath a Steel Sky's resource files (``sky.dnr`` index, ``sky.dsk`` data): the CD speech.

``sky.dnr`` (little-endian): a 4-byte entry count, then 8-byte entries: a
2-byte file number, a 3-byte offset and a 3-byte size field. When bit 23 of
the offset is set, the other 23 bits count 16-byte units (:data:`OFFSET_UNIT`);
the low 22 bits of the size field are the stored size in bytes.

Files numbered from :data:`SPEECH_FIRST` to :data:`SPEECH_LAST` include the
spoken lines: a 22-byte resource header followed by an RNC method 1 stream
(:mod:`model_export.sources.rnc`) that unpacks to 8-bit unsigned PCM at
:data:`SPEECH_RATE` Hz. Files in that range without an RNC stream (palettes)
are skipped. Lines are returned as 8-bit WAV files named
``speech/<number>.wav``, which libsndfile reads.

The speakers of the lines are not recorded in these files, so the lines are
labelled by block of :data:`SPEAKER_BLOCK` file numbers (neighbouring lines of
one scene); :data:`CAST_SIZE` bounds the count of distinct voices.
"""

from __future__ import annotations

import fnmatch
import io
import logging
import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from model_export.sources import rnc

LOG = logging.getLogger("quietmic.corpus.sky")

INDEX_NAME = "sky.dnr"
"""The index file, next to ``sky.dsk``."""

ENTRY_SIZE = 8
OFFSET_IN_UNITS_FLAG = 1 << 23
OFFSET_UNIT = 16
"""Bytes per offset unit when :data:`OFFSET_IN_UNITS_FLAG` is set."""
SIZE_MASK = (1 << 22) - 1

RESOURCE_HEADER_SIZE = 22
"""Bytes of the game's resource header before the RNC stream."""

SPEECH_FIRST = 50000
SPEECH_LAST = 59999
SPEECH_RATE = 11025
"""Sample rate of the speech (Hz), 8-bit unsigned mono."""

SPEAKER_BLOCK = 1000
"""File numbers per speaker label (one label per block: lines of one stretch of the game)."""

CAST_SIZE = 5
"""Assumed lower bound of the distinct voice actors of the CD version; used as the talker cap."""


class SkyFormatError(ValueError):
    """The files are not Beneath a Steel Sky's ``sky.dnr``/``sky.dsk``."""


@dataclass(frozen=True)
class Entry:
    number: int
    offset: int
    size: int


def parse_index(data: bytes) -> list[Entry]:
    """The entries of a ``sky.dnr`` index."""
    if len(data) < 4:
        raise SkyFormatError("sky.dnr is too short")
    (count,) = struct.unpack("<I", data[:4])
    if len(data) < 4 + count * ENTRY_SIZE:
        raise SkyFormatError(f"sky.dnr announces {count} entries but holds {(len(data) - 4) // ENTRY_SIZE}")
    entries = []
    for i in range(count):
        raw = data[4 + i * ENTRY_SIZE : 4 + (i + 1) * ENTRY_SIZE]
        number = int.from_bytes(raw[0:2], "little")
        offset = int.from_bytes(raw[2:5], "little")
        size = int.from_bytes(raw[5:8], "little") & SIZE_MASK
        if offset & OFFSET_IN_UNITS_FLAG:
            offset = (offset & (OFFSET_IN_UNITS_FLAG - 1)) * OFFSET_UNIT
        entries.append(Entry(number, offset, size))
    return entries


def pcm_u8_to_wav(pcm: bytes, rate: int = SPEECH_RATE) -> bytes:
    """8-bit unsigned mono PCM as the bytes of a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def speech_lines(index: bytes, disk: bytes) -> dict[int, bytes]:
    """``{file_number: pcm_u8}`` of the spoken lines; lines that fail to unpack are logged and skipped."""
    out: dict[int, bytes] = {}
    failed = 0
    for e in parse_index(index):
        if not SPEECH_FIRST <= e.number <= SPEECH_LAST or e.offset + e.size > len(disk):
            continue
        stored = disk[e.offset : e.offset + e.size]
        stream = stored[RESOURCE_HEADER_SIZE:]
        if not stream.startswith(rnc.MAGIC):
            continue
        try:
            out[e.number] = rnc.decompress(stream)
        except rnc.RncError as exc:
            failed += 1
            LOG.debug("sky file %d: %s", e.number, exc)
    if failed:
        LOG.warning("%d Beneath a Steel Sky speech files failed to unpack and are skipped", failed)
    return out


def read_members(path: Path, patterns: Sequence[str]) -> dict[str, bytes]:
    """Spoken lines of the ``sky.dsk`` at ``path`` (its ``sky.dnr`` alongside) matching ``patterns``,
    as WAV bytes named ``speech/<number>.wav``."""
    path = Path(path)
    index_path = path.with_name(INDEX_NAME)
    if not index_path.exists():
        raise SkyFormatError(f"{index_path} is missing (it must be next to {path.name})")
    lines = speech_lines(index_path.read_bytes(), path.read_bytes())
    out = {}
    for number, pcm in sorted(lines.items()):
        name = f"speech/{number}.wav"
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            out[name] = pcm_u8_to_wav(pcm)
    return out


def speaker(name: str) -> str:
    """Speaker label of ``speech/<number>.wav``: its block of :data:`SPEAKER_BLOCK` numbers."""
    number = int(Path(name).stem)
    return f"block-{(number - SPEECH_FIRST) // SPEAKER_BLOCK}"
