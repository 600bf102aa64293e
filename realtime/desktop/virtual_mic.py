"""The "quietmic" virtual microphone that other programs record from.

PulseAudio and PipeWire (through pipewire-pulse) get the same setup, made with
``pactl``: a null sink ``quietmic_output`` that quietmic plays the clean voice
into, and a remapped source ``quietmic`` (description "quietmic") of that sink's
monitor. Programs list the source as an ordinary microphone, even ones that hide
monitor sources, and see it appear and disappear while they run (no restart).
While a program records from it, quietmic records the sink's monitor in 10 ms blocks
and discards them (:class:`~realtime.live.pulse_stream.MonitorClock`): that keeps the
null sink rendering every 10 ms, so quietmic's stream into it starts at once after a
reconnect instead of waiting for a sink that sleeps up to 2 s. While nobody records
from it, the service stops that clock and its own streams
and suspends the sink (:meth:`PulseVirtualMic.sleep` says why), and resumes it
when a program records again. Those streams are
counted (:meth:`PulseVirtualMic.recording_streams`) on the server's events. The sink is
described as "quietmic internal feed (not a speaker)": it is listed among the outputs,
and a program that plays into it would send its sound into the call.
Both modules are unloaded on stop; modules left by a process that was killed are
found by their names and removed before new ones are made.

On a plain JACK server there is nothing to create: quietmic's JACK client
(named ``quietmic``) has output ports that other JACK clients connect to.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from realtime.errors import DeviceError
from realtime.live.portaudio_scan import name_jack_client, sounddevice

log = logging.getLogger(__name__)

SINK_NAME = "quietmic_output"
SOURCE_NAME = "quietmic"
SOURCE_DESCRIPTION = "quietmic"
SINK_DESCRIPTION = "quietmic internal feed (not a speaker)"
"""What output lists show for the sink quietmic plays into: no program should choose it as a speaker."""
MONO = ("channels=1", "channel_map=mono")
"""The sink and the source are mono, as quietmic's output is: a stereo pair would be mixed down
by whoever records it, and PipeWire sums the two channels (+3 dB) where PulseAudio averages them."""

PACTL_TIMEOUT_SECONDS = 5.0
CLOCK_BLOCK = 480
"""The sink renders in periods of this many samples (10 ms at 48 kHz) while quietmic runs."""


def _pactl(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=PACTL_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(["pactl", *args], 1, "", str(exc))


def pulse_available() -> bool:
    """Whether a PulseAudio-compatible server (PulseAudio, or PipeWire's pipewire-pulse) answers."""
    return shutil.which("pactl") is not None and _pactl("info").returncode == 0


def pulse_server_name() -> str:
    """E.g. "pulseaudio" or "PulseAudio (on PipeWire 0.3.65)"."""
    for line in _pactl("info").stdout.splitlines():
        if line.startswith("Server Name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _default(kind: str) -> str | None:
    """The server's default ``kind`` (``source`` or ``sink``) by name, or None."""
    result = _pactl(f"get-default-{kind}")
    if result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip()
    prefix = f"Default {kind.capitalize()}:"
    for line in _pactl("info").stdout.splitlines():  # pactl < 15 has no get-default-source / -sink
        if line.startswith(prefix):
            return line.split(":", 1)[1].strip()
    return None


def default_source() -> str | None:
    """The server's default source (microphone) name, or None."""
    return _default("source")


def default_sink() -> str | None:
    """The server's default sink (speakers, headphones) name, or None."""
    return _default("sink")


def _names(kind: str) -> list[str]:
    """Names of the server's ``kind`` (``sources`` or ``sinks``)."""
    return [line.split("\t")[1] for line in _pactl("list", "short", kind).stdout.splitlines() if "\t" in line]


def sources() -> list[str]:
    """Names of the server's sources."""
    return _names("sources")


def sinks() -> list[str]:
    """Names of the server's sinks."""
    return _names("sinks")


def _index(kind: str, name: str) -> str | None:
    """The server's index of the ``kind`` (``sources`` or ``sinks``) called ``name`` (None: no such one, or no server)."""
    listing = _pactl("list", "short", kind)
    return next((fields[0] for fields in (line.split("\t") for line in listing.stdout.splitlines())
                 if len(fields) > 1 and fields[1] == name), None)


def source_index(source: str = SOURCE_NAME) -> str | None:
    """The server's index of ``source`` (None: no such source, or no server)."""
    return _index("sources", source)


def sink_index(sink: str) -> str | None:
    """The server's index of ``sink`` (None: no such sink, or no server)."""
    return _index("sinks", sink)


def _streams_on(kind: str, index: str) -> int | None:
    """How many ``kind`` (``source-outputs`` or ``sink-inputs``) are connected to the device of server index
    ``index`` (the second column of pactl's short listing names it); None when no server answers."""
    streams = _pactl("list", "short", kind)
    if streams.returncode != 0:
        return None
    return sum(1 for line in streams.stdout.splitlines() if line.split("\t")[1:2] == [index])


def streams_recording(index: str) -> int | None:
    """How many streams record from the source of server index ``index``; None when no server answers.

    A level meter (pavucontrol's, a desktop's mic indicator) counts as a stream: it records too.
    """
    return _streams_on("source-outputs", index)


def streams_playing(index: str) -> int | None:
    """How many streams play into the sink of server index ``index``; None when no server answers."""
    return _streams_on("sink-inputs", index)


MONITOR_SUFFIX = ".monitor"
"""PulseAudio (and pipewire-pulse) name a sink's monitor source ``<sink>.monitor``."""


def is_monitor(source: str) -> bool:
    """Whether ``source`` is the monitor of a sink (what plays to speakers), not a microphone."""
    return source.endswith(MONITOR_SUFFIX)


MICROPHONE_EVENTS = ("source", "source-output", "server")
"""What the microphone side watches: sources, recording streams, the server (its default source)."""
SPEAKER_EVENTS = ("sink", "sink-input", "server")
"""What the speaker side watches: sinks, playing streams, the server (its default sink)."""


class ServerEvents:
    """Watches ``pactl subscribe`` in a thread; :meth:`changed` says whether one of ``facilities``
    changed (by default a source, a recording stream (source-output) or the server).

    Reacting to events (a microphone removed or added, the default changed) takes
    milliseconds where polling would take a second, and costs nothing while idle.

    Args:
        facilities: the kinds of object whose events count, as ``pactl subscribe`` names them
            (``source``, ``sink-input``, ``server``...).
    """

    def __init__(self, facilities: tuple[str, ...] = MICROPHONE_EVENTS) -> None:
        self._marks = tuple(f" on {facility} " for facility in facilities)
        """How pactl's lines name them: "Event 'new' on source-output #12"."""
        self._events = threading.Condition()
        self._count = 0
        """Events so far (each line of pactl's, a poke, the watcher's end)."""
        self._seen = 0
        """Events that :meth:`wait` or :meth:`changed` have reported (the rest are news)."""
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._process = subprocess.Popen(["pactl", "subscribe"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                             text=True)
        except OSError:
            return
        self._thread = threading.Thread(target=self._read, name="quietmic-pulse-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            if any(mark in line for mark in self._marks):
                self.poke()
        self.poke()  # the server went away (or pactl ended): look

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a change; whether one came (it counts as seen). Counted, not
        flagged: an event that comes while the caller looks at the last one is news for the next wait."""
        with self._events:
            self._events.wait_for(lambda: self._count != self._seen, timeout)
            came, self._seen = self._count != self._seen, self._count
        return came

    def poke(self) -> None:
        """Wake whoever waits in :meth:`wait` now (e.g. to stop)."""
        with self._events:
            self._count += 1
            self._events.notify_all()

    def changed(self) -> bool:
        """Whether something changed since the last call."""
        with self._events:
            came, self._seen = self._count != self._seen, self._count
        return came

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def watching(events: ServerEvents | None, facilities: tuple[str, ...] = MICROPHONE_EVENTS) -> ServerEvents:
    """``events`` while its watcher runs; else (none yet, or the server went away) a new, started watcher of
    ``facilities``, the old one stopped."""
    if events is not None and events.alive:
        return events
    if events is not None:
        events.stop()
    events = ServerEvents(facilities)
    events.start()
    return events


def modules_with(*arguments: str) -> list[str]:
    """Indices of loaded modules whose arguments include any of ``arguments`` (``sink_name=NAME``), any process's."""
    ids = []
    for line in _pactl("list", "short", "modules").stdout.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and any(argument in parts[2].split() for argument in arguments):
            ids.append(parts[0])
    return ids


MODULE_ARGUMENTS = (f"sink_name={SINK_NAME}", f"source_name={SOURCE_NAME}", f"sink_name={SOURCE_NAME}")
"""The arguments that name the virtual microphone's modules (how stale ones are found); the last names
the PipeWire path's virtual source (:mod:`realtime.desktop.pipewire_mic`)."""


def quietmic_modules() -> list[str]:
    """Indices of loaded modules that belong to a quietmic virtual microphone (any process's)."""
    return modules_with(*MODULE_ARGUMENTS)


def unload_modules(modules: list[str]) -> None:
    """Unload ``modules`` (server indices), newest first."""
    for module in reversed(modules):
        _pactl("unload-module", module)


def load_null_sink(name: str, description: str, rate: int, media_class: str | None = None) -> str:
    """Load a mono null sink ``name`` shown as ``description`` at ``rate`` Hz; its module index.
    ``media_class`` (PipeWire only) makes it another kind of node, e.g. ``Audio/Source/Virtual``: a source.

    Raises a :class:`DeviceError` with the server's answer when it refuses.
    """
    sink = _pactl(
        "load-module", "module-null-sink", *([f"media.class={media_class}"] if media_class else []),
        f"sink_name={name}", f"rate={rate}", *MONO,
        f"sink_properties='device.description=\"{description}\"'",  # quoted: descriptions have spaces
    )
    if sink.returncode != 0:
        raise DeviceError(f"cannot create the {description!r} sink: {sink.stderr.strip() or sink.stdout.strip()}")
    return sink.stdout.strip()


@dataclass
class PulseVirtualMic:
    """The null sink + remapped source pair on a PulseAudio-compatible server."""

    modules: list[str] = field(default_factory=list)

    kind = "pulse"

    rate: int = 48000
    """The sink's rate: quietmic's stream rate, so that nothing is resampled on the way."""

    clock_block: int = CLOCK_BLOCK
    """Block of the client that keeps the sink rendering (see :class:`~realtime.live.pulse_stream.MonitorClock`)."""

    clock: Any = None
    """The :class:`~realtime.live.pulse_stream.MonitorClock` that keeps the sink rendering while awake."""

    index: str | None = None
    """The source's index on the server (what recording streams name), looked up when it is made."""

    suspended: bool = False
    """Whether quietmic suspended the sink (:meth:`sleep`)."""

    def recording_streams(self) -> int | None:
        """How many streams record from the virtual microphone (one ``pactl`` call); None when no server answers.
        After a server restart the index is stale and the count 0 until the service makes the source again."""
        return streams_recording(self.index) if self.index is not None else 0

    def create(self) -> None:
        """Make the sink and the source (removing stale ones first); raises :class:`DeviceError`."""
        self.remove_stale()
        self.modules = []  # ids of a server that has gone mean nothing now
        self.suspended = False  # a new sink runs
        self.modules.append(load_null_sink(SINK_NAME, SINK_DESCRIPTION, self.rate))
        source = _pactl(
            "load-module", "module-remap-source", f"master={SINK_NAME}{MONITOR_SUFFIX}", f"source_name={SOURCE_NAME}", *MONO,
            f"source_properties=device.description={SOURCE_DESCRIPTION}",
        )
        if source.returncode != 0:
            self.remove()
            raise DeviceError(f"cannot create the quietmic source: {source.stderr.strip() or source.stdout.strip()}")
        self.modules.append(source.stdout.strip())
        self.index = source_index()
        log.info("virtual microphone %r ready on %s (modules %s)", SOURCE_NAME, pulse_server_name(), self.modules)

    def wake(self) -> None:
        """Resume the sink and keep it rendering in short periods while quietmic streams into it (see the
        module docstring). The clock connects beside the stream: waiting for it first made no difference
        to the resume time."""
        if self.suspended:
            _pactl("suspend-sink", SINK_NAME, "0")
            self.suspended = False
        if self.clock is None:  # after a server restart the running one reconnects by itself
            from realtime.live.pulse_stream import MonitorClock  # numpy: not for 'quietmic status' or 'stop'

            self.clock = MonitorClock(SINK_NAME + MONITOR_SUFFIX, self.rate, self.clock_block)
            self.clock.start()

    def sleep(self) -> None:
        """Nobody records from the virtual microphone: stop the sink's clock and suspend the sink (once).

        Suspended by quietmic, not left to the server's module-suspend-on-idle (not every setup loads it):
        a PulseAudio null sink that nobody records with a short latency renders in periods of up to 2 s,
        and a short latency requested later takes effect only when the period under way ends, so woken
        after some seconds idle quietmic's first audio reached a new listener 1.1-1.5 s late. A sink
        resumed from suspension starts a period at once: 95-131 ms from the listener's launch (PipeWire,
        which has no such periods: 131-262 ms either way; private servers, a vowel into the test mic).
        """
        self._stop_clock()
        if not self.suspended:
            _pactl("suspend-sink", SINK_NAME, "1")
            self.suspended = True

    def _stop_clock(self) -> None:
        if self.clock is not None:
            self.clock.stop()
            self.clock = None

    def remove(self) -> None:
        """Stop the sink's clock and unload the modules this object loaded (newest first)."""
        self._stop_clock()
        unload_modules(self.modules)
        self.modules.clear()

    def remove_stale(self) -> None:
        """Unload quietmic modules left by a process that did not stop cleanly."""
        stale = quietmic_modules()
        if stale:
            log.info("removing stale quietmic modules %s", stale)
        unload_modules(stale)

    def exists(self) -> bool:
        """Whether the source is there (a restarted server has forgotten it)."""
        return SOURCE_NAME in sources()

    def describe(self) -> str:
        return f"PulseAudio source {SOURCE_NAME!r} ({pulse_server_name()})"


@dataclass
class JackPorts:
    """On plain JACK the virtual microphone is quietmic's own client's output ports."""

    kind = "jack"

    def create(self) -> None:
        """Name quietmic's JACK client (PortAudio re-initialises to use the name if it has initialised already).

        Raises :class:`~realtime.live.portaudio_scan.PortAudioOrphaned` if PortAudio cannot re-initialise in this process.
        """
        if not name_jack_client(SOURCE_NAME):
            log.warning("this PortAudio cannot name its JACK client: the ports are PortAudio's")

    def remove(self) -> None:
        pass

    def remove_stale(self) -> None:
        pass

    def exists(self) -> bool:
        return True

    def describe(self) -> str:
        return f"JACK ports {SOURCE_NAME}:out_0 / out_1"


def jack_device() -> int | None:
    """PortAudio's JACK device (index), or None when PortAudio reaches no JACK server."""
    sd = sounddevice()

    for api in sd.query_hostapis():
        if "JACK" in api["name"] and api["devices"]:
            return int(api["default_input_device"] if api["default_input_device"] >= 0 else api["devices"][0])
    return None


def jack_available() -> bool:
    """Whether PortAudio reaches a JACK server."""
    return jack_device() is not None


def detect(prefer: str = "auto") -> PulseVirtualMic | JackPorts | None:
    """The virtual-microphone backend: ``auto`` tries PulseAudio/PipeWire, then JACK; ``none``: None."""
    if prefer not in ("auto", "pulse", "jack", "none"):
        raise DeviceError(f"unknown virtual microphone backend {prefer!r}; use auto, pulse, jack or none")
    if prefer == "pulse":
        if not pulse_available():
            raise DeviceError("no PulseAudio or PipeWire (pipewire-pulse) server answers 'pactl info'")
        return PulseVirtualMic()
    if prefer == "jack":
        return JackPorts()  # also while the server is down: the service waits for it
    if prefer == "auto":
        if pulse_available():
            return PulseVirtualMic()
        if jack_available():
            return JackPorts()
    return None
