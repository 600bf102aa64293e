"""PortAudio (through sounddevice) that re-scans its devices without aborting when a JACK server goes.

Why this module exists
----------------------
PortAudio learns which devices and servers exist only when it initialises, so
code that waits for a device or a JACK server to (re)appear re-initialises it
(``sounddevice._terminate(); sounddevice._initialize()``). PortAudio 19.6 and
19.7 (Debian's ``libportaudio2``) *assert*, in the JACK host API's
``Terminate``, that ``jack_deactivate()`` and ``jack_client_close()`` succeed.
When the JACK server that PortAudio's client was connected to has gone
(stopped, crashed, restarted: the client is orphaned), both calls fail and the
whole process aborts with SIGABRT::

    python: src/hostapi/jack/pa_jack.c:820: Terminate: Assertion `err == 0' failed.

sounddevice also terminates PortAudio at interpreter exit, so a process that
merely outlived its JACK server aborts when it exits. (Reproduce: start
``jackd -n x -d dummy``, ``import sounddevice`` with ``JACK_DEFAULT_SERVER=x``,
stop the server, call ``sounddevice._terminate()``.)

A check just before terminating cannot make that safe: the server can go in
the milliseconds the terminate takes (``jack_deactivate`` waits for the server's
next cycle), and a service that re-scanned every half second while waiting for a
usable stream hit that window within a few server losses. So the rules this
module enforces are:

* **PortAudio is terminated only while it holds no JACK client**, or on
  request (:func:`rescan` with ``release_jack``) by code that controls the
  server's life (the benchmarks, which start and stop their own servers).
  While PortAudio holds a client of a live JACK server, a re-scan keeps the
  device list it has: JACK's devices stay current as long as the server runs.
* **A client of a server that has gone is never terminated.** Each time
  PortAudio initialises and finds a JACK server, a *watch* client (libjack
  through ctypes: no ports, never activated, invisible in the graph) is opened
  on the same server. A question asked through it (a round trip over JACK's
  socket) tells whether the server PortAudio attached to is still the one
  running; a restarted server is a new one, and the old connection fails.
  :func:`rescan` then raises :class:`PortAudioOrphaned`: the caller carries on
  in a new process (the background service re-executes itself, keeping its pid
  and counters). At exit, an orphaned PortAudio is left to the kernel instead
  of being terminated.
* quietmic's JACK client is named before PortAudio first initialises
  (:func:`name_jack_client`), so naming it costs no re-initialisation.

What remains is the server dying during the few milliseconds of PortAudio's own
initialisation (its error path makes the same assertion): PortAudio initialises
only when the process starts and, while it holds no JACK client, when a
re-scan is asked for.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import sys
import threading
from types import ModuleType

from realtime.live import pipewire_jack

log = logging.getLogger(__name__)

JACK_NO_START_SERVER = 0x01
"""libjack's ``JackNoStartServer`` option: never start a server to watch."""
WATCH_CLIENT_NAME = b"quietmic-watch"
"""Name of the watch client (JACK appends a number if it is taken)."""


class PortAudioOrphaned(RuntimeError):
    """PortAudio holds a client of a JACK server that has gone; only a new process can re-scan."""


class _Libjack:
    """The few libjack functions the watch needs (ctypes declarations)."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self.client_open = library.jack_client_open
        self.client_open.restype = ctypes.c_void_p
        self.client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        self.client_close = library.jack_client_close
        self.client_close.restype = ctypes.c_int
        self.client_close.argtypes = [ctypes.c_void_p]
        self.client_name = library.jack_get_client_name
        self.client_name.restype = ctypes.c_char_p
        self.client_name.argtypes = [ctypes.c_void_p]
        self.uuid_for_name = library.jack_get_uuid_for_client_name
        self.uuid_for_name.restype = ctypes.c_void_p
        self.uuid_for_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.free = library.jack_free
        self.free.restype = None
        self.free.argtypes = [ctypes.c_void_p]
        # The graph (realtime.live.jack_graph): port names are returned as NULL-terminated arrays
        # that the caller frees with jack_free.
        self.get_ports = library.jack_get_ports
        self.get_ports.restype = ctypes.POINTER(ctypes.c_char_p)
        self.get_ports.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
        self.port_by_name = library.jack_port_by_name
        self.port_by_name.restype = ctypes.c_void_p
        self.port_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.port_connections = library.jack_port_get_all_connections
        self.port_connections.restype = ctypes.POINTER(ctypes.c_char_p)
        self.port_connections.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.disconnect = library.jack_disconnect
        self.disconnect.restype = ctypes.c_int
        self.disconnect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]


def load_libjack() -> _Libjack | None:
    """libjack's functions that quietmic uses, or None where libjack is missing or lacks them."""
    name = ctypes.util.find_library("jack")
    if name is None:
        return None
    try:
        return _Libjack(ctypes.CDLL(name))
    except (OSError, AttributeError) as exc:  # a libjack without these functions: nothing to watch with
        log.debug("libjack unusable for the server watch: %s", exc)
        return None


class JackWatch:
    """A client on the JACK server PortAudio attached to; says whether that server is still there."""

    def __init__(self, libjack: _Libjack) -> None:
        self._jack = libjack
        status = ctypes.c_int(0)
        self._client: int | None = libjack.client_open(WATCH_CLIENT_NAME, JACK_NO_START_SERVER, ctypes.byref(status))

    @property
    def opened(self) -> bool:
        return bool(self._client)

    def server_alive(self) -> bool:
        """Whether the server this client connected to still answers (a round trip; a restarted server does not)."""
        if not self._client:
            return False
        uuid = self._jack.uuid_for_name(self._client, self._jack.client_name(self._client))
        if uuid:
            self._jack.free(uuid)
        return bool(uuid)

    def close(self) -> None:
        if self._client:
            self._jack.client_close(self._client)  # fails (harmlessly) when the server has gone
            self._client = None


class _Guard:
    """PortAudio's state as far as re-scanning is concerned (one per process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.libjack: _Libjack | None = None
        self.libjack_loaded = False
        self.watch: JackWatch | None = None
        self.jack_attached = False
        """PortAudio's last initialisation found a JACK server (so it holds a client of it)."""
        self.exit_hook = False
        self.seen = False
        """The state of PortAudio's current initialisation has been looked at."""


_guard = _Guard()


def _has_jack(sd: ModuleType) -> bool:
    return any("JACK" in api["name"] for api in sd.query_hostapis())


def _watch_new_state(sd: ModuleType) -> None:
    """After an initialisation: watch the JACK server PortAudio found, if it found one (lock held)."""
    if _guard.watch is not None:
        _guard.watch.close()
        _guard.watch = None
    _guard.jack_attached = _has_jack(sd)
    if not _guard.jack_attached:
        return
    if not _guard.libjack_loaded:
        _guard.libjack, _guard.libjack_loaded = load_libjack(), True
    if _guard.libjack is not None:
        watch = JackWatch(_guard.libjack)
        _guard.watch = watch if watch.opened else None
    if not _guard.exit_hook:
        # Registered after sounddevice's own exit handler, so it runs first (atexit is last in, first out).
        atexit.register(_at_exit, sd)
        _guard.exit_hook = True


def _orphaned() -> bool:
    """Whether PortAudio holds a JACK client whose server has gone (lock held).

    Without a watch (no usable libjack, or the watch could not connect) an attached
    PortAudio counts as orphaned: the safe side is a new process.
    """
    if not _guard.jack_attached:
        return False
    if pipewire_jack.server_replaced():  # pipewire-jack's watch client answers from its own copy of the graph
        return True
    return _guard.watch is None or not _guard.watch.server_alive()


def sounddevice() -> ModuleType:
    """The sounddevice module, its PortAudio's JACK server watched (import it through this, not directly).

    PortAudio initialises when sounddevice is first imported; the watch opens on the
    server named by ``JACK_DEFAULT_SERVER`` then. If something imported sounddevice
    directly before, the watch opens on today's server, which may not be the one
    PortAudio attached to: if it cannot connect, a re-scan is refused (the safe side).
    """
    imported_before = "sounddevice" in sys.modules
    import sounddevice as sd

    with _guard.lock:
        if not _guard.seen:
            if imported_before:
                log.warning("sounddevice was imported before realtime.live.portaudio_scan: its JACK server is watched late")
            _watch_new_state(sd)
            _guard.seen = True
    return sd


def portaudio_errors() -> tuple[type[Exception], ...]:
    """What a PortAudio call can raise: sounddevice's ``PortAudioError`` once sounddevice is loaded,
    else nothing (an ``except portaudio_errors():`` that does not load PortAudio for a stream that
    does not use it, such as the libpulse one)."""
    module = sys.modules.get("sounddevice")
    return (module.PortAudioError,) if module is not None else ()


def orphaned() -> bool:
    """Whether PortAudio holds a client of a JACK server that has gone (then :func:`rescan` cannot work)."""
    sounddevice()
    with _guard.lock:
        return _orphaned()


def rescan(release_jack: bool = False) -> ModuleType:
    """Re-initialise PortAudio so it sees devices and servers that came (back); returns sounddevice.

    While PortAudio holds a client of a live JACK server it is kept (see the module's
    docstring), unless ``release_jack``: then the caller vouches that the server
    will not go away meanwhile (it controls the server).

    Raises :class:`PortAudioOrphaned` instead of aborting when PortAudio holds a
    client of a JACK server that has gone: carry on in a new process.
    """
    sd = sounddevice()
    with _guard.lock:
        if _orphaned():
            raise PortAudioOrphaned(
                "the JACK server PortAudio was connected to has gone; PortAudio cannot re-scan in this process")
        if _guard.jack_attached and not release_jack:
            return sd
        sd._terminate()
        sd._initialize()
        _watch_new_state(sd)
    return sd


_jack_client_name: bytes | None = None
"""The name given to PortAudio's JACK client (PortAudio keeps the pointer: kept alive here)."""


def name_jack_client(name: str) -> bool:
    """Name PortAudio's JACK client; whether this PortAudio can.

    Best called before anything imports sounddevice: then the name applies from
    PortAudio's first initialisation. Afterwards, PortAudio is re-initialised
    (with ``release_jack``) if it holds a JACK client, for the name to apply.
    """
    global _jack_client_name
    loaded = "sounddevice" in sys.modules
    library_name = sys.modules["sounddevice"]._libname if loaded else ctypes.util.find_library("portaudio")
    if library_name is None:
        return False
    try:
        set_name = ctypes.CDLL(library_name).PaJack_SetClientName
    except (OSError, AttributeError):
        return False
    set_name.argtypes = [ctypes.c_char_p]
    _jack_client_name = name.encode()
    if set_name(_jack_client_name) != 0:
        return False
    if loaded and _guard.jack_attached:
        rescan(release_jack=True)
    return True


def _at_exit(sd: ModuleType) -> None:
    """Skip sounddevice's exit-time terminate if it would abort (PortAudio orphaned)."""
    with _guard.lock:
        if _orphaned():
            atexit.unregister(sd._exit_handler)
            log.debug("PortAudio's JACK server has gone: leaving PortAudio to the kernel at exit")
        if _guard.watch is not None:
            _guard.watch.close()
            _guard.watch = None
