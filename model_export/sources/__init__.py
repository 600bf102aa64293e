"""Readers for the archive formats that game packages hide their audio in.

Each reader takes the bytes (or the path) of one archive file found inside a
Debian package and returns the wanted members as ``{inner_name: bytes}``:

* :mod:`model_export.sources.queen` - ``queen.1c`` of Flight of the Amazon Queen.
* :mod:`model_export.sources.sky` - ``sky.dsk``/``sky.dnr`` of Beneath a Steel Sky
  (RNC-packed speech, :mod:`model_export.sources.rnc`).
* :mod:`model_export.sources.zipped` - zip archives (0 A.D.'s ``public.zip``,
  Warzone 2100's ``.wz``, UFO:AI's ``.pk3``).

:data:`CONTAINERS` maps the container names used by
:class:`model_export.corpus.SourceSpec` to these readers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from model_export.sources import queen, rnc, sky, zipped

ContainerReader = Callable[[Path, Sequence[str]], dict[str, bytes]]
"""``reader(archive_path, inner_patterns) -> {inner_name: bytes}``."""

CONTAINERS: dict[str, ContainerReader] = {
    "queen": queen.read_members,
    "sky": sky.read_members,
    "zip": zipped.read_members,
}
"""Container name -> reader."""

COMPANIONS: dict[str, tuple[str, ...]] = {"sky": (sky.INDEX_NAME,)}
"""Files a container reader needs next to its archive (copied out of the package with it)."""

__all__ = ["COMPANIONS", "CONTAINERS", "ContainerReader", "queen", "rnc", "sky", "zipped"]
