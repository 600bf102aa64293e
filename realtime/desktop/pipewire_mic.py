"""The "quietmic" virtual microphone on PipeWire, fed through PipeWire's JACK API: the lowest latency.

On PipeWire the service makes the virtual microphone a PipeWire virtual source
(``pactl load-module module-null-sink media.class=Audio/Source/Virtual
sink_name=quietmic``): programs list it, through pipewire-pulse and natively, as
the microphone "quietmic", exactly like the PulseAudio path's remapped source.
quietmic's stream is PortAudio's JACK host API on pipewire-jack
(:mod:`realtime.live.pipewire_jack`): a JACK client, ``quietmic-enhancer``, whose
callback runs in the PipeWire graph's cycle. Its output port is linked to the
virtual source's input port and the microphone's capture port to its input port
(``pw-link``, which names ports by PipeWire node name, as ``pactl`` names
sources); every other link of its ports is cut, so nothing of quietmic's reaches
the speakers.

In the graph the microphone, quietmic and the program recording the virtual
source run in one cycle. The virtual microphone's delay is the enhancer's latency,
the hand-over to the next cycle (one quantum, and up to a hop more where the
quantum is no multiple of the hop: :mod:`realtime.live.processor`) and what the
virtual source adds (a quantum; 256 samples where the quantum was 480). Measured
by one JACK client recording both the microphone and "quietmic"
(:mod:`benchmarks.pipewire_probe`), default model at 48 kHz: 40.0 ms at the quantum
quietmic asks for (PipeWire 0.3.65 rounds one hop, 480, down to 256), against
46.7 ms through pipewire-pulse on the same server; 72 ms with the quantum forced to 1024.

Everything else is the PulseAudio path's (:class:`~realtime.desktop.virtual_mic.PulseVirtualMic`):
the service counts the programs recording "quietmic" (its source-outputs), sleeps
while nobody does (its JACK stream closed, the microphone released), follows the
default microphone, and removes the module on stop (a killed process's module at
the next start).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass

from realtime.desktop import virtual_mic
from realtime.desktop.virtual_mic import MONITOR_SUFFIX, SOURCE_DESCRIPTION, SOURCE_NAME, PulseVirtualMic
from realtime.errors import DeviceError
from realtime.live import pipewire_jack
from realtime.live.portaudio_scan import name_jack_client, sounddevice
from realtime.live.processor import LiveProcessor

log = logging.getLogger(__name__)

CLIENT_NAME = "quietmic-enhancer"
"""quietmic's JACK client (a PipeWire node): not "quietmic", the virtual source's name, which PortAudio
would take for one device with it."""
VIRTUAL_SOURCE_CLASS = "Audio/Source/Virtual"
PW_LINK_TIMEOUT_SECONDS = 5.0
LINKED_TO, LINKED_FROM = "|->", "|<-"
"""How ``pw-link -l`` marks the ports an output port feeds and those an input port is fed from."""
MONITOR_PORT_PREFIX = "monitor_"
"""A sink's monitor ports (``monitor_FL``...): the source ``<sink>.monitor``; a source's capture ports are the others."""
PATH_NAME = "pipewire-jack"
"""The path's name in logs, the status and the benchmark."""


def _pw_link(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["pw-link", *args], capture_output=True, text=True, timeout=PW_LINK_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(["pw-link", *args], 1, "", str(exc))


def output_ports(node: str) -> list[str]:
    """Output ports (``node:port``) of PipeWire node ``node`` (named by its node.name, as pactl names it)."""
    return [line.strip() for line in _pw_link("--output").stdout.splitlines() if line.strip().startswith(f"{node}:")]


def input_ports(node: str) -> list[str]:
    """Input ports (``node:port``) of PipeWire node ``node``."""
    return [line.strip() for line in _pw_link("--input").stdout.splitlines() if line.strip().startswith(f"{node}:")]


def links(node: str) -> list[tuple[str, str]]:
    """The links of ``node``'s ports, as ``(output port, input port)`` pairs."""
    found: set[tuple[str, str]] = set()
    port = None
    for line in _pw_link("--links").stdout.splitlines():
        text = line.strip()
        if not line.startswith(" "):
            port = text
        elif port is not None and text.startswith((LINKED_TO, LINKED_FROM)):
            other = text[len(LINKED_TO):].strip()
            pair = (port, other) if text.startswith(LINKED_TO) else (other, port)
            if pair[0].startswith(f"{node}:") or pair[1].startswith(f"{node}:"):
                found.add(pair)
    return sorted(found)


def capture_ports(source: str) -> list[str]:
    """The ports that carry what source ``source`` (a pactl source name) records: a source's capture
    ports, or for a sink's monitor (``<sink>.monitor``) that sink's monitor ports."""
    if virtual_mic.is_monitor(source):
        return [p for p in output_ports(source[: -len(MONITOR_SUFFIX)]) if p.split(":", 1)[1].startswith(MONITOR_PORT_PREFIX)]
    return [p for p in output_ports(source) if not p.split(":", 1)[1].startswith(MONITOR_PORT_PREFIX)]


PIPEWIRE_MARK = "PipeWire"
"""What ``pactl info``'s server name holds on pipewire-pulse (e.g. "PulseAudio (on PipeWire 0.3.65)")."""


def unavailable(server: str) -> str | None:
    """Why the PipeWire-JACK path cannot be used on ``server`` (``pactl info``'s name for it); None: it can."""
    if PIPEWIRE_MARK not in server:
        return f"the audio server is {server}, not PipeWire"
    if pipewire_jack.find_libjack() is None:
        return f"PipeWire's JACK library is missing ({pipewire_jack.INSTALL_HINT})"
    if shutil.which("pw-link") is None:
        return "pw-link is missing (it comes with PipeWire's tools: install pipewire-bin)"
    return None


@dataclass
class PipeWireJackMic(PulseVirtualMic):
    """A PipeWire virtual source that quietmic's JACK client feeds (see the module docstring)."""

    kind = "pipewire"

    def create(self) -> None:
        """Make the virtual source (removing stale quietmic modules first); raises :class:`DeviceError`."""
        self.remove_stale()
        self.modules = []
        self.modules.append(virtual_mic.load_null_sink(SOURCE_NAME, SOURCE_DESCRIPTION, self.rate,
                                                       media_class=VIRTUAL_SOURCE_CLASS))
        self.index = virtual_mic.source_index()
        log.info("virtual microphone %r ready on %s (module %s), fed through %s", SOURCE_NAME,
                 virtual_mic.pulse_server_name(), self.modules, PATH_NAME)

    def prepare_portaudio(self, block: int, rate: int) -> None:
        """Before PortAudio loads: bind it to pipewire-jack, asking for a quantum of ``block`` samples at
        ``rate`` Hz, and name its JACK client. Once per process: naming the client again would re-initialise
        PortAudio, which aborts where the server has gone (:mod:`realtime.live.portaudio_scan`). Raises
        :class:`DeviceError`."""
        if pipewire_jack.in_use():
            return
        pipewire_jack.use_pipewire_jack(block, rate)
        if not name_jack_client(CLIENT_NAME):
            log.warning("this PortAudio cannot name its JACK client: the node is PortAudio's")

    def wake(self) -> None:
        """Nothing to keep awake: the graph runs while the virtual source is recorded."""

    def sleep(self) -> None:
        """Nothing to stop (the service closes its stream)."""

    def portaudio_device(self) -> int:
        """PortAudio's JACK device of the virtual source (the stream's output, and its input until :meth:`link`)."""
        sd = sounddevice()
        for api in sd.query_hostapis():
            if "JACK" not in api["name"]:
                continue
            for index in api["devices"]:
                if sd.query_devices(index)["name"] == SOURCE_NAME:
                    return int(index)
        raise DeviceError(f"PortAudio's JACK host API does not list the virtual source {SOURCE_NAME!r} "
                          "(it came after PortAudio started)")

    def link(self, source: str, input_channel: int) -> None:
        """Link the microphone ``source`` (port ``input_channel``) to quietmic's input and quietmic's output to
        the virtual source; cut every other link of quietmic's ports (PortAudio's own). Raises :class:`DeviceError`."""
        mic = capture_ports(source)
        if input_channel >= len(mic):
            raise DeviceError(f"input_channel {input_channel} does not exist on {source!r} ({len(mic)} channels; "
                              "channels count from 0)")
        ours_in = input_ports(CLIENT_NAME)
        ours_out = output_ports(CLIENT_NAME)
        target = input_ports(SOURCE_NAME)
        if input_channel >= len(ours_in) or not ours_out or not target:
            raise DeviceError(f"quietmic's ports ({ours_in + ours_out}) or the virtual source's ({target}) are missing")
        wanted = {(mic[input_channel], ours_in[input_channel]), (ours_out[0], target[0])}
        current = set(links(CLIENT_NAME))
        for output, input_ in sorted(current - wanted):
            _pw_link("--disconnect", output, input_)
        for output, input_ in sorted(wanted - current):
            made = _pw_link(output, input_)
            if made.returncode != 0 and output not in {o for o, i in links(CLIENT_NAME) if i == input_}:
                raise DeviceError(f"cannot link {output} to {input_}: {made.stderr.strip()}")
        log.info("linked %s -> %s -> %s (cut %s)", mic[input_channel], CLIENT_NAME, target[0],
                 ", ".join(f"{o} -> {i}" for o, i in sorted(current - wanted)) or "nothing")

    def describe(self) -> str:
        return f"PipeWire source {SOURCE_NAME!r} through {PATH_NAME} ({virtual_mic.pulse_server_name()})"


def choose(backend: str) -> PulseVirtualMic:
    """The virtual microphone for a PulseAudio-compatible server: on PipeWire with pipewire-jack, the JACK path
    (``auto`` or ``pipewire``), else the PulseAudio path, saying why (``auto``); ``pipewire`` without it raises
    :class:`DeviceError`."""
    if backend == "pulse":
        return PulseVirtualMic()
    server = virtual_mic.pulse_server_name()
    why_not = unavailable(server)
    if why_not is None:
        return PipeWireJackMic()
    if backend == "pipewire":
        raise DeviceError(f"--backend pipewire cannot be used: {why_not}")
    if PIPEWIRE_MARK in server:
        log.info("PipeWire without its JACK API: the virtual microphone goes through pipewire-pulse, a few ms "
                 "slower (%s)", why_not)
    return PulseVirtualMic()


def link_or_stop(mic: PipeWireJackMic, processor: LiveProcessor, source: str, input_channel: int) -> None:
    """:meth:`PipeWireJackMic.link` for a stream just started; if linking fails, the stream is stopped
    (it would record the virtual source itself) and the :class:`DeviceError` raised."""
    try:
        mic.link(source, input_channel)
    except DeviceError:
        processor.stop()
        raise
