"""What the service's streams report: their state, their glitch and fault totals, and whether they still run.

The microphone side (:mod:`realtime.desktop.service`) and the speaker side
(:mod:`realtime.desktop.speakers`) each keep one of each, so that ``quietmic status``
reports them alike.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from realtime.live.processor import LiveProcessor  # numpy: not for 'quietmic status' or 'stop'

log = logging.getLogger(__name__)

STALL_SECONDS = 1.0
"""A stream whose callback has not run for this long is dead (a vanished server does not always say so)."""
FIRST_CALLBACK_SECONDS = 3.0
"""A new stream may take this long to call back the first time (servers prebuffer)."""
XRUN_KEYS = ("input_overflows", "output_underflows", "late_blocks")
"""Glitches the status counts as xruns (see :class:`~realtime.live.processor.StreamCounters`)."""
FAULT_KEYS = ("model_failures", "processing_failures", "model_resets", "invalid_input_samples")
"""Processing faults the stream survived (see :mod:`realtime.live.processor`), counted in the status apart from xruns."""


@dataclass(frozen=True)
class StreamTotals:
    """Xruns and survived faults summed over streams: the service's closed streams, carried across a
    restart of its process, plus the running one for its status. The names are those of
    :meth:`LiveProcessor.summary <realtime.live.processor.LiveProcessor.summary>`."""

    input_overflows: int = 0
    output_underflows: int = 0
    late_blocks: int = 0
    model_failures: int = 0
    processing_failures: int = 0
    model_resets: int = 0
    invalid_input_samples: int = 0

    @classmethod
    def carried(cls, counters: Mapping[str, Any], faults: Mapping[str, Any]) -> StreamTotals:
        """The totals of a status's ``counters`` and ``faults`` (as the service's ``carry_over`` passes them on)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: int(value) for key, value in {**counters, **faults}.items() if key in known})

    def plus(self, summary: Mapping[str, Any]) -> StreamTotals:
        """These totals with one stream's (its :meth:`~realtime.live.processor.LiveProcessor.summary`) added."""
        return StreamTotals(**{f.name: getattr(self, f.name) + int(summary[f.name]) for f in fields(self)})

    def xruns(self) -> dict[str, int]:
        """The xrun counts by kind (the status's ``counters``)."""
        return {key: getattr(self, key) for key in XRUN_KEYS}

    def faults(self) -> dict[str, int]:
        """The fault counts by kind (the status's ``faults``)."""
        return {key: getattr(self, key) for key in FAULT_KEYS}


assert {f.name for f in fields(StreamTotals)} == {*XRUN_KEYS, *FAULT_KEYS}


@dataclass
class StreamState:
    """What a stream of the service is doing, for ``status``: the state, why, and since when (monotonic seconds).

    Args:
        what: how the log names the stream (``""``: the service's own; ``"speakers"``).
        logger: the log its changes go to (its owner's).
    """

    state: str = "starting"
    detail: str = ""
    since: float = 0.0
    what: str = ""
    logger: logging.Logger = field(default=log, repr=False)

    def set(self, state: str, detail: str = "") -> None:
        """Change the state (logged); ``since`` moves only when the state itself changes."""
        if (state, detail) != (self.state, self.detail):
            if state != self.state:
                self.since = time.monotonic()
            self.state, self.detail = state, detail
            self.logger.info("%sstate: %s%s", f"{self.what} " if self.what else "", state, f" ({detail})" if detail else "")


class StallWatch:
    """Tells a stream that stopped calling back (or ended) from one that runs: the service's supervision
    loops ask :meth:`lost` every few tenths of a second. Make a new one for each stream opened."""

    def __init__(self) -> None:
        self._callbacks = -1
        self._progress = time.monotonic()

    def lost(self, processor: LiveProcessor, now: float) -> str | None:
        """Why the stream is lost (it ended, or its callback has not run for :data:`STALL_SECONDS`, or
        :data:`FIRST_CALLBACK_SECONDS` at its start); None while it runs. ``now``: ``time.monotonic()``."""
        seen = processor.counters.callbacks
        if seen != self._callbacks:
            self._callbacks, self._progress = seen, now
        patience = STALL_SECONDS if seen > 0 else FIRST_CALLBACK_SECONDS
        if not processor.streaming:
            return "the stream stopped"
        if now - self._progress > patience:
            return "the audio callback stopped running"
        return None
