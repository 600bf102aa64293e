"""Where the background process keeps its files (XDG base directories).

* runtime (``$XDG_RUNTIME_DIR/quietmic``, mode 0700): the pid file and the
  control socket; gone at logout, as they should be.
* state (``$XDG_STATE_HOME/quietmic``, default ``~/.local/state/quietmic``): the log.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from realtime.config import APP_DIR_NAME

PID_FILE_NAME = "quietmic.pid"
SOCKET_NAME = "control.sock"
LOG_FILE_NAME = "quietmic.log"
PRIVATE_DIR_MODE = 0o700


def _private_dir(path: Path) -> Path:
    """``path``, created if needed, readable only by this user."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/quietmic`` (or a per-user folder in the temp directory when it is unset)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or str(Path(tempfile.gettempdir()) / f"quietmic-{os.getuid()}")
    return _private_dir(Path(base) / APP_DIR_NAME)


def state_dir() -> Path:
    """``$XDG_STATE_HOME/quietmic`` (``~/.local/state/quietmic`` when unset)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return _private_dir(Path(base) / APP_DIR_NAME)


def pid_file() -> Path:
    return runtime_dir() / PID_FILE_NAME


def socket_path() -> Path:
    return runtime_dir() / SOCKET_NAME


def log_file() -> Path:
    return state_dir() / LOG_FILE_NAME
