"""One-line messages about what the user handed in: text folded onto one line, values quoted short.

Config errors (:mod:`realtime.config`), model-record errors (:mod:`realtime.metadata`) and TensorFlow
Lite's own messages quoted in model errors (:mod:`realtime.model`) are all one line that names the
problem, however long, multi-line, nested or self-referencing the text or value behind it.
"""

from __future__ import annotations

import reprlib
from typing import Any

MAX_QUOTED_CHARS = 200
"""Longest quotation of a value in a message, in characters: a few nested mappings of long numbers
would still make the short ``repr`` run to many lines' worth."""

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 2, 4, 4
"""``repr`` for messages: long, nested (or self-referencing) values stay short."""

ELLIPSIS = "..."


def _cut(text: str, max_chars: int | None) -> str:
    """``text``, or its first characters and :data:`ELLIPSIS` when it is over ``max_chars`` long."""
    if max_chars is None or len(text) <= max_chars:
        return text
    return text[: max_chars - len(ELLIPSIS)] + ELLIPSIS


def one_line(text: str, max_chars: int | None = None) -> str:
    """``text`` with each run of white space (line breaks included) made one space, cut to
    ``max_chars`` characters if given (None: any length)."""
    return _cut(" ".join(text.split()), max_chars)


def short_repr(value: Any, max_chars: int = MAX_QUOTED_CHARS) -> str:
    """``value`` as messages quote it: a short ``repr`` (long strings, deep or long containers
    elided), at most ``max_chars`` characters."""
    return _cut(_SHORT.repr(value), max_chars)
