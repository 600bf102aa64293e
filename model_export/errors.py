"""Exceptions raised by model export; their messages say what to do."""

from __future__ import annotations

from realtime.errors import QuietmicError


class ExportError(QuietmicError):
    """A model cannot be built, converted or written."""


class ParityError(ExportError):
    """The converted TFLite model deviates from its Keras reference by more than the tolerance."""
