"""Starting, stopping and asking the background process (``quietmic start|stop|status|set``).

``start`` runs ``python -m realtime serve`` detached (its own session, no
terminal; output appended to the log file) and waits until its control socket
answers. The service holds a locked pid file, so a second ``start`` (or a second
``serve``) finds it and does not start another. ``stop`` sends SIGTERM and waits
for a clean exit (the virtual microphone removed), and only then kills.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from realtime import control, paths
from realtime.errors import QuietmicError
from realtime.service import running_pid

START_TIMEOUT_SECONDS = 20.0
"""How long ``start`` waits for the service to answer (loading TFLite and opening the stream)."""
STOP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.1
LOG_TAIL_CHARS = 1500


def serve_command(options: Sequence[str]) -> list[str]:
    """The command line of the service process."""
    return [sys.executable, "-m", "realtime", "serve", *options]


def start(options: Sequence[str]) -> dict[str, Any]:
    """Start the service detached with ``options`` (``quietmic serve`` flags); its status once it has
    opened its stream (or found that it cannot yet)."""
    pid = running_pid(paths.pid_file())
    if pid is not None:
        raise QuietmicError(f"quietmic is already running (pid {pid}); 'quietmic restart' restarts it")
    log_path = paths.log_file()
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            serve_command(options),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise QuietmicError(f"quietmic did not start; its log ({log_path}) ends with:\n{_tail(log_path)}")
        try:
            status = control.request(paths.socket_path(), {"command": "status"})["status"]
        except control.NotRunning:
            status = None
        if status is not None and status["state"] != "starting":
            return status  # running, or waiting for its input device (and saying why)
        time.sleep(POLL_SECONDS)
    raise QuietmicError(f"quietmic started (pid {process.pid}) but does not answer; see {log_path}")


def stop() -> int | None:
    """Stop the service cleanly (SIGTERM); returns its pid, or None if none was running."""
    pid = running_pid(paths.pid_file())
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if running_pid(paths.pid_file()) != pid:
            return pid
        time.sleep(POLL_SECONDS)
    os.kill(pid, signal.SIGKILL)
    raise QuietmicError(f"quietmic (pid {pid}) did not stop within {STOP_TIMEOUT_SECONDS:g} s and was killed")


def status() -> dict[str, Any]:
    """The service's status, or ``{"state": "stopped"}``."""
    try:
        return control.request(paths.socket_path(), {"command": "status"})["status"]
    except QuietmicError as exc:  # not running, or between processes (starting, restarting itself)
        pid = running_pid(paths.pid_file())
        if pid is not None:
            return {"state": "starting or not answering", "pid": pid, "detail": str(exc)}
        if not isinstance(exc, control.NotRunning):
            return {"state": "not answering", "detail": str(exc), "log": str(paths.log_file())}
        return {"state": "stopped", "log": str(paths.log_file())}


def set_value(key: str, value: str) -> dict[str, Any]:
    """Change a setting of the running service."""
    return control.request(paths.socket_path(), {"command": "set", "key": key, "value": value})["changed"]


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:].strip()
    except OSError:
        return "(no log)"
