"""Flight of the Amazon Queen's resource archive (``queen.1c``) and its speaker names.

Layout (all integers big-endian), as measured on the Debian package's file:

* 9 bytes: the magic ``QTBLCEM10``;
* 4 bytes: archive flags/version (not needed here);
* 2 bytes: the number of entries ``n``;
* ``n`` entries of :data:`ENTRY_SIZE` (21) bytes: a 12-byte name (DOS 8.3,
  NUL-padded), a 1-byte bundle number, a 4-byte absolute offset and a 4-byte size;
* the data of the entries.

Entries named ``*.SB`` are spoken lines: MP3 (MPEG-2.5 layer III, 11.025 kHz,
16 kbit/s, mono), which libsndfile decodes.

Speaker labels (:func:`speaker`) come from the line names:

* ``JOE*.SB`` and dialogue lines whose role letter (the 7th character) is ``J``
  are Joe King, the player character (``joe``);
* dialogue lines ``NN????P?.SB`` (role letter ``P``, the person Joe talks to) are
  labelled by the two-digit prefix ``NN`` (``person-NN``): one label per dialogue
  group. A character may own several groups, so the labels over-count the cast;
  :data:`CAST_SIZE` bounds the count;
* cutaway (cut-scene) lines ``C*.SB`` mix several speakers and share one label
  (``cutaways``).
"""

from __future__ import annotations

import fnmatch
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

MAGIC = b"QTBLCEM10"
"""First bytes of ``queen.1c``."""

HEADER_SIZE = len(MAGIC) + 4 + 2
"""Magic, flags, entry count: the entry table starts here (bytes)."""

NAME_SIZE = 12
"""Bytes of an entry's NUL-padded name."""

ENTRY_SIZE = NAME_SIZE + 1 + 4 + 4
"""Bytes of one entry: name, bundle, offset, size."""

CAST_SIZE = 31
"""Distinct speaking characters: the 30 character names of the game's dialogue (``*.DOG``) files
plus Joe. Used as an upper bound on the number of distinct talkers of this source."""


class QueenFormatError(ValueError):
    """The data is not a ``queen.1c`` archive."""


@dataclass(frozen=True)
class Entry:
    """One resource of the archive."""

    name: str
    bundle: int
    offset: int
    size: int


def parse_index(data: bytes) -> list[Entry]:
    """The entry table of a ``queen.1c`` archive held in ``data``."""
    if not data.startswith(MAGIC):
        raise QueenFormatError(f"not a queen.1c archive: starts with {data[:len(MAGIC)]!r}, expected {MAGIC!r}")
    if len(data) < HEADER_SIZE:
        raise QueenFormatError("queen.1c archive truncated in its header")
    (count,) = struct.unpack(">H", data[HEADER_SIZE - 2 : HEADER_SIZE])
    table_end = HEADER_SIZE + count * ENTRY_SIZE
    if len(data) < table_end:
        raise QueenFormatError(f"queen.1c archive truncated: {count} entries need {table_end} bytes, have {len(data)}")
    entries = []
    for i in range(count):
        raw = data[HEADER_SIZE + i * ENTRY_SIZE : HEADER_SIZE + (i + 1) * ENTRY_SIZE]
        name = raw[:NAME_SIZE].split(b"\0", 1)[0].decode("ascii", errors="replace")
        bundle, offset, size = struct.unpack(">BII", raw[NAME_SIZE:])
        if offset < table_end or offset + size > len(data):
            raise QueenFormatError(f"entry {name!r} points outside the archive ({offset}+{size} of {len(data)})")
        entries.append(Entry(name, bundle, offset, size))
    return entries


def read_members(path: Path, patterns: Sequence[str]) -> dict[str, bytes]:
    """Bytes of the entries of the archive at ``path`` whose names match ``patterns`` (case-insensitive)."""
    data = Path(path).read_bytes()
    wanted = [p.upper() for p in patterns]
    return {e.name: data[e.offset : e.offset + e.size] for e in parse_index(data)
            if any(fnmatch.fnmatchcase(e.name.upper(), p) for p in wanted)}


def speaker(name: str) -> str:
    """Speaker label of a spoken line's entry name (see the module docstring)."""
    stem = name.upper().rsplit(".", 1)[0]
    if stem.startswith("JOE"):
        return "joe"
    if stem.startswith("C"):
        return "cutaways"
    if len(stem) == 8 and stem[6] == "J":
        return "joe"
    if len(stem) == 8 and stem[6] == "P" and stem[:2].isdigit():
        return f"person-{stem[:2]}"
    return "other"
