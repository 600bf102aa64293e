"""The background process's control socket: one JSON request, one JSON answer, per connection.

The socket is a Unix stream socket in the user's runtime directory (mode 0600
inside a 0700 folder), and the server also checks each caller's user id
(``SO_PEERCRED``): only the user who started quietmic can control it. Nothing
listens on the network.

Requests are ``{"command": "status"}``, ``{"command": "set", "key": K, "value": V}``
and ``{"command": "stop"}``; answers are ``{"ok": true, ...}`` or
``{"ok": false, "error": "what went wrong"}``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Any, Callable

from realtime.errors import QuietmicError

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1 << 16
"""Longest request or answer accepted."""
CLIENT_TIMEOUT_SECONDS = 5.0
ACCEPT_POLL_SECONDS = 0.5
SOCKET_MODE = 0o600

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class NotRunning(QuietmicError):
    """Nothing answers on the control socket."""


def _read_message(connection: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_MESSAGE_BYTES:
            raise ValueError("message too long")
    message = json.loads(data.decode("utf-8"))
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message


def _send_message(connection: socket.socket, message: dict[str, Any]) -> None:
    connection.sendall(json.dumps(message).encode("utf-8") + b"\n")


def _peer_uid(connection: socket.socket) -> int:
    creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class ControlServer:
    """Answers requests on ``path`` with ``handler`` in a background thread until :meth:`close`."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        if path.exists():
            if _answers(path):
                raise QuietmicError(f"another quietmic answers on {path}; stop it first ('quietmic stop')")
            path.unlink()  # left over by a process that died
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous_umask = os.umask(0o177)
        try:
            self._socket.bind(str(path))
        finally:
            os.umask(previous_umask)
        os.chmod(path, SOCKET_MODE)
        self._socket.listen(8)
        self._socket.settimeout(ACCEPT_POLL_SECONDS)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="quietmic-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._closed.is_set():
                    return
                raise
            with connection:
                connection.settimeout(CLIENT_TIMEOUT_SECONDS)
                try:
                    if _peer_uid(connection) != os.getuid():
                        _send_message(connection, {"ok": False, "error": "permission denied"})
                        continue
                    request = _read_message(connection)
                    answer = self.handler(request)
                except QuietmicError as exc:
                    answer = {"ok": False, "error": str(exc)}
                except (ValueError, OSError) as exc:
                    answer = {"ok": False, "error": f"bad request: {exc}"}
                except Exception as exc:  # a bug in a handler must not take the audio down
                    log.exception("control request failed")
                    answer = {"ok": False, "error": f"internal error: {exc}"}
                try:
                    _send_message(connection, answer)
                except OSError:
                    pass

    def close(self) -> None:
        """Stop answering and remove the socket file."""
        self._closed.set()
        self._socket.close()
        self._thread.join(timeout=2 * ACCEPT_POLL_SECONDS)
        self.path.unlink(missing_ok=True)


def request(path: Path, message: dict[str, Any], timeout: float = CLIENT_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Send one request to the process listening on ``path``; its answer.

    Raises :class:`NotRunning` when nothing listens there, and
    :class:`QuietmicError` with the process's message when it refuses.
    """
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        connection.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        connection.close()
        raise NotRunning("quietmic is not running in the background; start it with 'quietmic start'") from None
    with connection:
        try:
            _send_message(connection, message)
            answer = _read_message(connection)
        except (OSError, ValueError) as exc:
            raise QuietmicError(f"the quietmic process did not answer properly ({exc}); see 'quietmic status'") from None
    if not answer.get("ok", False):
        raise QuietmicError(str(answer.get("error", "the quietmic process refused the request")))
    return answer


def _answers(path: Path) -> bool:
    try:
        request(path, {"command": "ping"}, timeout=1.0)
        return True
    except QuietmicError:
        return False
