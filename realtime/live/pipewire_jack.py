"""PortAudio's JACK host API on PipeWire, through pipewire-jack's libjack.

PipeWire ships a libjack of its own (Debian's ``pipewire-jack`` puts it in
``/usr/lib/<arch>/pipewire-0.3/jack``, where ``pw-jack`` finds it; Fedora and Arch
install it as the system's libjack). Its soname is JACK's (``libjack.so.0``), so
once it is loaded into the process (:func:`use_pipewire_jack`, with
``RTLD_GLOBAL``) the libportaudio loaded afterwards binds to it, and PortAudio's
JACK host API becomes a client of the PipeWire graph: every PipeWire node is a
JACK "client", its ports JACK ports; a JACK client's process callback runs in the
graph's cycle, one quantum long.

The graph's quantum is the smallest latency its nodes ask for (clamped by the
server's settings): quietmic asks for one block (``PIPEWIRE_LATENCY``, read when
its client connects, i.e. when PortAudio initialises), so that a desktop with
nothing else playing runs at quietmic's block and the JACK callback gets whole
blocks.

This must happen before anything loads libportaudio (``import sounddevice``:
:mod:`realtime.live.portaudio_scan`); afterwards the process's libjack is
whatever PortAudio loaded.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import sys
import sysconfig
from pathlib import Path

from realtime.errors import DeviceError

log = logging.getLogger(__name__)

LIBJACK_SONAME = "libjack.so.0"
PIPEWIRE_JACK_DIRS = tuple(
    f"{prefix}/pipewire-0.3/jack"
    for prefix in (f"/usr/lib/{sysconfig.get_config_var('MULTIARCH') or ''}".rstrip("/"), "/usr/lib64", "/usr/lib")
)
"""Where distributions put pipewire-jack's libjack when it does not replace the system's (Debian, Ubuntu)."""
SYSTEM_LIBJACK_DIRS = (f"/usr/lib/{sysconfig.get_config_var('MULTIARCH') or ''}".rstrip("/"), "/usr/lib64", "/usr/lib")
"""Where the system's libjack lives: pipewire-jack's on Fedora and Arch, JACK2's elsewhere."""
PIPEWIRE_MARK = b"PipeWire"
"""pipewire-jack's libjack holds this string (its version: "3.0.0.0 (using PipeWire 0.3.65)"); JACK2's does not."""
LATENCY_ENV = "PIPEWIRE_LATENCY"
"""PipeWire clients read the latency they ask for ("frames/rate") from this variable when they connect."""
JACK_SERVER_ENV = "JACK_DEFAULT_SERVER"
"""Names a JACK server for JACK2's libjack; pipewire-jack would take it for a PipeWire remote that does not exist."""
INSTALL_HINT = "install pipewire-jack (Debian/Ubuntu: apt-get install pipewire-jack)"

MAPS = Path("/proc/self/maps")
"""The libraries this process has loaded (Linux)."""


class LibjackTaken(DeviceError):
    """This process loaded another libjack (JACK2's) or PortAudio already: only a new process can use
    pipewire-jack's (a library's soname binds once per process)."""


_loaded: ctypes.CDLL | None = None
"""pipewire-jack's libjack, once loaded (kept: unloading it under PortAudio would crash)."""

DEFAULT_REMOTE = "pipewire-0"
"""The PipeWire server's socket in its runtime directory (``PIPEWIRE_REMOTE`` names another)."""
PEERCRED = struct.Struct("3i")
"""``struct ucred`` (pid, uid, gid) as ``SO_PEERCRED`` returns it."""
_server: tuple[int, int, int] | None = None
"""The PipeWire server PortAudio's JACK client connected to: its socket's device and inode, and its pid."""


def _server_identity() -> tuple[int, int, int] | None:
    """The PipeWire server answering now: its socket (device, inode) and the pid behind it; None: none answers.

    A restarted server is a new process (and, unless systemd holds the socket, a new socket), so its
    identity differs. pipewire-jack's own clients cannot tell: they answer JACK's questions from a
    local copy of the graph, even after the server has gone.
    """
    remote = os.environ.get("PIPEWIRE_REMOTE", DEFAULT_REMOTE)
    runtime = os.environ.get("PIPEWIRE_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR") or ""
    path = Path(remote) if remote.startswith("/") else Path(runtime) / remote
    try:
        status = path.stat()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(str(path))
            pid, _uid, _gid = PEERCRED.unpack(probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size))
    except OSError:
        return None
    return status.st_dev, status.st_ino, pid


def server_replaced() -> bool:
    """Whether PortAudio is bound to pipewire-jack here and the PipeWire server its client connected to has
    gone (stopped, or restarted: another process now). Then PortAudio's client is an orphan: terminating
    PortAudio would abort (:mod:`realtime.live.portaudio_scan`), and only a new process reaches the server."""
    return _loaded is not None and _server_identity() != _server


def _holds_pipewire_mark(path: Path) -> bool:
    try:
        return PIPEWIRE_MARK in path.read_bytes()
    except OSError:
        return False


def find_libjack() -> Path | None:
    """pipewire-jack's libjack (a file), or None where pipewire-jack is not installed.

    The system's libjack is looked at, not loaded: loading JACK2's would bind PortAudio to it for
    the life of the process.
    """
    for directory in PIPEWIRE_JACK_DIRS:
        candidate = Path(directory) / LIBJACK_SONAME
        if candidate.exists():
            return candidate
    for directory in SYSTEM_LIBJACK_DIRS:
        candidate = Path(directory) / LIBJACK_SONAME
        if candidate.exists() and _holds_pipewire_mark(candidate.resolve()):
            return candidate
    return None


def use_pipewire_jack(latency_frames: int, rate: int) -> Path:
    """Load pipewire-jack's libjack for PortAudio, asking PipeWire for a quantum of ``latency_frames``
    samples at ``rate`` Hz (unless ``PIPEWIRE_LATENCY`` is set already: the user's choice wins).
    Returns the library's path; calling it again is harmless.

    Raises :class:`DeviceError` (saying what to do) where pipewire-jack is not installed, or where
    PortAudio is loaded already and so is bound to another libjack.
    """
    global _loaded, _server
    path = find_libjack()
    if path is None:
        raise DeviceError(f"PipeWire's JACK library is not installed: {INSTALL_HINT}")
    if _loaded is not None:
        return path
    if "sounddevice" in sys.modules:
        raise LibjackTaken("PortAudio was loaded before pipewire-jack's libjack")
    other = _other_libjack(path)
    if other is not None:
        raise LibjackTaken(f"this process has loaded another libjack ({other}) before pipewire-jack's")
    os.environ.setdefault(LATENCY_ENV, f"{latency_frames}/{rate}")
    if os.environ.pop(JACK_SERVER_ENV, None) is not None:
        log.info("%s is meaningless on PipeWire: ignored", JACK_SERVER_ENV)
    _server = _server_identity()  # PortAudio's client connects to this one when it initialises, next
    try:
        _loaded = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise DeviceError(f"cannot load PipeWire's JACK library {path}: {exc}; reinstall pipewire-jack") from None
    log.info("PortAudio's JACK host API talks to PipeWire through %s (asking for a quantum of %s)", path,
             os.environ[LATENCY_ENV])
    return path


def _other_libjack(ours: Path) -> str | None:
    """A libjack this process has mapped that is not ``ours`` (None: none, or no /proc)."""
    try:
        lines = MAPS.read_text().splitlines()
    except OSError:
        return None
    mapped = {line.split()[-1] for line in lines if "/libjack.so" in line}
    theirs = {name for name in mapped if Path(name).resolve() != ours.resolve()}
    return min(theirs) if theirs else None


def in_use() -> bool:
    """Whether this process loaded pipewire-jack's libjack."""
    return _loaded is not None
