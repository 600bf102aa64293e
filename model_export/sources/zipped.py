"""Members of zip archives (``.zip``, ``.wz``, ``.pk3``) by shell pattern."""

from __future__ import annotations

import fnmatch
import zipfile
from pathlib import Path
from typing import Sequence


class ZipReadError(ValueError):
    """The file is not a readable zip archive."""


def read_members(path: Path, patterns: Sequence[str]) -> dict[str, bytes]:
    """Bytes of the regular files in the zip at ``path`` whose names match one of ``patterns``.

    Patterns are shell patterns on the member name (``*`` crosses ``/``), matched
    case-sensitively.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ZipReadError(f"{path} is not a readable zip archive: {exc}") from exc
    out: dict[str, bytes] = {}
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            if any(fnmatch.fnmatchcase(info.filename, p) for p in patterns):
                out[info.filename] = archive.read(info)
    return out
