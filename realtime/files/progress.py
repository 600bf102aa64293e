"""A progress bar over seconds of audio, on standard error (tqdm), or nothing.

Like most command-line tools, quietmic shows it when standard error is a terminal; ``--progress``
shows it anyway and ``--no-progress`` never (:func:`wanted`). tqdm is imported only when a bar is
shown, so a run without one does not pay for it.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

BAR_FORMAT = "{desc}{percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}, {rate_fmt}]"
"""The bar: done and total in seconds of audio, and how many seconds of audio go by per second."""

MIN_INTERVAL_S = 0.2
"""Least time between two redraws, seconds."""


def wanted(flag: bool | None) -> bool:
    """Whether to show a bar: ``flag`` if given, else whether standard error is a terminal."""
    if flag is not None:
        return flag
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class Progress:
    """Seconds of audio done out of ``total_seconds``; a no-op when not ``enabled``.

    Use as a context manager; :meth:`advance` adds seconds done, :meth:`note` prints a line
    above the bar (or plain, without one).
    """

    def __init__(self, total_seconds: float, enabled: bool, description: str = "") -> None:
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            tqdm.monitor_interval = 0  # no monitor thread: batch mode forks workers
            self._bar = tqdm(total=total_seconds, desc=description, unit="s", bar_format=BAR_FORMAT,
                             file=sys.stderr, mininterval=MIN_INTERVAL_S, dynamic_ncols=True, leave=False)

    def advance(self, seconds: float) -> None:
        """Add ``seconds`` of audio done."""
        if self._bar is not None:
            self._bar.update(seconds)

    def note(self, line: str) -> None:
        """Print ``line`` on standard error without breaking the bar."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
