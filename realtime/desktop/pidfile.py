"""The service's pid file: one service per user, and how ``stop`` / ``status`` find it.

Kept apart from :mod:`realtime.desktop.service` so that the commands that only look
for the service (``status``, ``stop``, ``set``) import neither numpy nor the model runtime.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from realtime.errors import QuietmicError


class AlreadyRunning(QuietmicError):
    """Another quietmic service holds the pid file."""


PID_FD_ENV = "QUIETMIC_PID_FD"
"""Environment variable naming the pid file's descriptor, still locked, that a restart of the service's
process (:class:`realtime.desktop.service.RestartRequired`) inherits
(so that no ``stop`` or ``start`` finds the service gone while it restarts)."""


class PidFile:
    """An exclusively locked pid file: held for the service's life, so a second one cannot start.

    Args:
        path: the pid file.
        inherited_fd: its descriptor, locked by this process before it re-executed itself (see :meth:`keep_across_exec`).
    """

    def __init__(self, path: Path, inherited_fd: int | None = None) -> None:
        self.path = path
        if inherited_fd is not None:
            self._fd = inherited_fd
            os.set_inheritable(inherited_fd, False)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already: succeeds at once
            return
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(self._fd, 32).decode(errors="replace").strip()
            os.close(self._fd)
            raise AlreadyRunning(f"quietmic is already running (pid {other or '?'}); 'quietmic stop' stops it") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def keep_across_exec(self) -> int:
        """Let the locked descriptor survive ``exec`` (the lock goes with it); its number."""
        os.set_inheritable(self._fd, True)
        return self._fd

    def release(self) -> None:
        """Remove the pid file and let go of its lock."""
        self.path.unlink(missing_ok=True)
        os.close(self._fd)


def running_pid(path: Path) -> int | None:
    """The pid of the service holding ``path``, or None if none does."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
