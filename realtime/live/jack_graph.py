"""The JACK graph, through libjack: is a server running, and cut what PortAudio connected.

PortAudio's JACK backend connects a stream's output ports to the device's ports
(``system:playback_*``) when it starts. For the service that would play the
microphone on the speakers: its output ports are a virtual microphone that
programs connect to, so the service cuts those connections right after the stream
starts (:func:`disconnect_outputs`). Each call opens its own short-lived client
(never starting a server), so nothing here holds state between calls.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from realtime.live.portaudio_scan import load_libjack

log = logging.getLogger(__name__)

JACK_NO_START_SERVER = 0x01
"""libjack's ``JackNoStartServer``: never start a server by asking."""
JACK_PORT_IS_OUTPUT = 0x2
"""libjack's ``JackPortIsOutput`` port flag."""
CLIENT_NAME = b"quietmic-graph"


def _names(jack: Any, array: Any) -> list[str]:
    """The strings of a NULL-terminated ``const char **`` from libjack, which is then freed."""
    names: list[str] = []
    if not array:
        return names
    index = 0
    while array[index] is not None:
        names.append(array[index].decode(errors="replace"))
        index += 1
    jack.free(ctypes.cast(array, ctypes.c_void_p))
    return names


def _open_client() -> tuple[Any, int] | None:
    jack = load_libjack()
    if jack is None:
        return None
    status = ctypes.c_int(0)
    client = jack.client_open(CLIENT_NAME, JACK_NO_START_SERVER, ctypes.byref(status))
    return (jack, client) if client else None


def server_running() -> bool:
    """Whether a JACK server (``JACK_DEFAULT_SERVER``'s, else the default) accepts clients."""
    opened = _open_client()
    if opened is None:
        return False
    jack, client = opened
    jack.client_close(client)
    return True


def disconnect_outputs(client_name: str) -> list[tuple[str, str]]:
    """Cut every connection from ``client_name``'s output ports; returns the ``(output, input)`` pairs cut."""
    opened = _open_client()
    if opened is None:
        return []
    jack, client = opened
    cut: list[tuple[str, str]] = []
    try:
        pattern = f"^{client_name}:".encode()
        for port_name in _names(jack, jack.get_ports(client, pattern, None, JACK_PORT_IS_OUTPUT)):
            port = jack.port_by_name(client, port_name.encode())
            if not port:
                continue
            for other in _names(jack, jack.port_connections(client, port)):
                if jack.disconnect(client, port_name.encode(), other.encode()) == 0:
                    cut.append((port_name, other))
    finally:
        jack.client_close(client)
    if cut:
        log.info("cut %d JACK connections PortAudio made from %s to playback: %s", len(cut), client_name,
                 ", ".join(f"{a} -> {b}" for a, b in cut))
    return cut
