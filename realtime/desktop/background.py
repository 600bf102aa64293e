"""Starting, stopping and asking the background process (``quietmic start|stop|status|set``).

``start`` runs ``python -m realtime serve`` detached (its own session, no
terminal; output appended to the log file) and waits until its control socket
answers. The service holds a locked pid file, so a second ``start`` (or a second
``serve``) finds it and does not start another. ``stop`` sends SIGTERM and returns
only once the process has exited (the virtual microphone removed); after
:data:`STOP_TIMEOUT_SECONDS` it kills it, and still waits for it to be gone. The
pid file's lock is released before the interpreter and PortAudio shut down, so
it cannot tell that the process has gone: ``stop`` watches the process itself.
A virtual microphone left on the sound server by a process that was killed is
removed by the next ``stop`` (and by the service when it starts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from realtime.desktop import control, paths, speakers, virtual_mic
from realtime.errors import QuietmicError
from realtime.desktop.pidfile import running_pid

START_TIMEOUT_SECONDS = 20.0
"""How long ``start`` waits for the service to answer (loading TFLite and opening the stream)."""
STOP_TIMEOUT_SECONDS = 10.0
"""How long ``stop`` waits for a clean exit before it kills the process."""
KILLED_EXIT_SECONDS = 5.0
"""How long a killed process may take to disappear (the kernel frees its memory)."""
POLL_SECONDS = 0.1
RESEND_SECONDS = 1.0
"""``stop`` sends SIGTERM again this often: one that arrives while the service re-executes itself (its
recovery from a JACK server that went away) can be lost with the old process image."""
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


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, from /proc), or None if it has gone or is a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    state, started = fields[0], fields[19]
    return None if state in ("Z", "X") else started


def _wait_gone(pid: int, started: str | None, seconds: float, resend: signal.Signals | None = None) -> bool:
    """Wait up to ``seconds`` until process ``pid`` (started at ``started``) has exited; whether it has.

    With ``resend``, that signal is sent again every :data:`RESEND_SECONDS` while it runs.
    """
    begun = time.monotonic()
    sent = begun
    while True:
        now = _start_time(pid)
        if now is None or now != started:  # gone, a zombie, or the pid is another process's now
            return True
        clock = time.monotonic()
        if clock - begun >= seconds:
            return False
        if resend is not None and clock - sent >= RESEND_SECONDS:
            try:
                os.kill(pid, resend)
            except ProcessLookupError:
                return True
            sent = clock
        time.sleep(POLL_SECONDS)


def stop() -> int | None:
    """Stop the service (SIGTERM) and wait until its process has exited; its pid, or None if none ran.

    A process that does not exit within :data:`STOP_TIMEOUT_SECONDS` is killed
    (and waited for too). With no service running, a virtual microphone left by
    a killed one is removed.
    """
    pid = running_pid(paths.pid_file())
    if pid is None:
        remove_stale_virtual_mic()
        return None
    started = _start_time(pid)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    if _wait_gone(pid, started, STOP_TIMEOUT_SECONDS, resend=signal.SIGTERM):
        return pid
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return pid
    _wait_gone(pid, started, KILLED_EXIT_SECONDS)
    remove_stale_virtual_mic()
    raise QuietmicError(f"quietmic (pid {pid}) did not stop within {STOP_TIMEOUT_SECONDS:g} s and was killed")


def stale_virtual_mic() -> bool:
    """Whether a PulseAudio/PipeWire server holds a quietmic virtual microphone (or speaker output) while no
    service runs."""
    return (running_pid(paths.pid_file()) is None and virtual_mic.pulse_available()
            and bool(virtual_mic.quietmic_modules() or speakers.stale_modules()))


def remove_stale_virtual_mic() -> bool:
    """Remove a virtual microphone (and speaker output) left by a service that was killed; whether there was one."""
    if not stale_virtual_mic():
        return False
    virtual_mic.PulseVirtualMic().remove_stale()
    virtual_mic.unload_modules(speakers.stale_modules())
    return True


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
        if stale_virtual_mic():
            return {"state": "stopped", "log": str(paths.log_file()),
                    "detail": "a quietmic virtual microphone left by a process that was killed is still on the "
                              "sound server; 'quietmic stop' removes it"}
        return {"state": "stopped", "log": str(paths.log_file())}


def set_value(key: str, value: str, persist: bool = True) -> dict[str, Any]:
    """Change a setting of the running service, and save it in its config file if ``persist``.

    Returns the service's answer: ``changed`` (``{key: value}``) and ``saved_to`` (the file, or None).
    Raises :class:`~realtime.desktop.control.NotRunning` when no service runs.
    """
    return control.request(paths.socket_path(), {"command": "set", "key": key, "value": value, "persist": persist})


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:].strip()
    except OSError:
        return "(no log)"
