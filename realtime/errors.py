"""Exceptions that carry a message meant for the user.

Every error quietmic raises on purpose is a :class:`QuietmicError`; the command
line prints its message on one line and exits non-zero, without a traceback.
"""

from __future__ import annotations


class QuietmicError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class ModelError(QuietmicError):
    """A model file is missing, unreadable, or its metadata is inconsistent."""


class ConfigError(QuietmicError):
    """A configuration file or value is invalid."""


class AudioFileError(QuietmicError):
    """An audio file cannot be read or written."""


class DeviceError(QuietmicError):
    """An audio device or the audio server cannot be used."""
