"""A guard against deeply nested text, checked before a parser recurses into it.

JSON and YAML parsers recurse once per ``[`` or ``{``: PyYAML takes about a second to reach Python's
recursion limit on a line of a thousand brackets, and a JSON record nested deeper than the limit
raises RecursionError. The config reader (:mod:`realtime.config`) and the model-record reader
(:mod:`realtime.metadata`) refuse such text up front, by this bound.
"""

from __future__ import annotations


def bracket_depth(text: str | bytes) -> int:
    """Deepest ``[`` / ``{`` nesting in ``text`` (bytes are read as UTF-8).

    An upper bound of the real nesting: brackets inside strings and comments count too, and a
    closing bracket with nothing open is ignored.
    """
    depth = deepest = 0
    for char in text.decode("utf-8", "replace") if isinstance(text, bytes) else text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest
