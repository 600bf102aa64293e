"""The background service: live denoising into the virtual microphone, supervised and controllable.

``quietmic serve`` runs it in the foreground (systemd runs that); ``quietmic
start`` runs it detached (:mod:`realtime.desktop.background`). The service

* waits for a PulseAudio/PipeWire or JACK server (it never falls back to playing the
  microphone on the speakers; only ``--backend none`` asks for that), creates the
  virtual microphone (:mod:`realtime.desktop.virtual_mic`) and streams the real
  microphone through the :class:`~realtime.enhancer.Enhancer` into it;
* on PulseAudio/PipeWire, streams only while a program records from the virtual
  microphone: with nobody recording for :data:`IDLE_AFTER_SECONDS` it closes its
  streams (the microphone is released, the sink may suspend) and sleeps until a
  program starts recording (state ``idle``);
* on JACK, cuts the connections PortAudio makes from its output ports to the
  playback ports: programs connect to them;
* supervises the stream: when the input device or the audio server goes away
  (unplug, suspend, server restart) it says so in its status and log, keeps
  running, and reopens the stream as soon as it can (retrying every
  :data:`RETRY_SECONDS`); on PulseAudio/PipeWire it follows a change of the
  default microphone;
* answers the control socket (:mod:`realtime.desktop.control`): ``status``, ``set`` (the
  attenuation limit and bypass take effect at once; the input device, model,
  block size and rate reopen the stream; ``speakers`` adds or removes the speaker
  side), ``stop``;
* with the ``speakers`` setting, on PulseAudio/PipeWire, runs the speaker side beside
  it (:mod:`realtime.desktop.speakers`: the "quietmic speakers" output, denoised by an
  enhancer of its own on its way to the real output, in a thread of its own).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import resource
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator


from realtime import echo
from realtime.desktop import pipewire_mic, speakers, virtual_mic
from realtime.desktop.stream_state import StallWatch, StreamState, StreamTotals
from realtime.config import Settings, default_config_path, parse_setting, save_setting
from realtime.default_model import resolve_model_path
from realtime.enhancer import framing_at_rate, hop_at_rate
from realtime.errors import DeviceError, QuietmicError
from realtime.live import jack_graph, pipewire_jack
from realtime.live.from_settings import build_processor, device_rate
from realtime.live.processor import LiveProcessor
from realtime.model import load_checked_model
from realtime.live.portaudio_scan import PortAudioOrphaned, portaudio_errors, rescan, sounddevice
from realtime.live.pulse_stream import PulseDuplexStream

log = logging.getLogger(__name__)

SUPERVISE_SECONDS = 0.1
"""How often the main loop looks at the stream."""
RETRY_SECONDS = 0.5
"""Pause between attempts to reopen a lost stream."""
SOURCE_POLL_SECONDS = 5.0
"""Looks at the PulseAudio sources this often even without an event (events may be missed)."""
IDLE_AFTER_SECONDS = 2.0
"""With nobody recording from the virtual microphone this long, the service closes its streams."""
IDLE_POLL_SECONDS = 30.0
"""While idle, counts the virtual microphone's recording streams this often even without an event."""
SERVER_WAIT_SECONDS = 1.0
"""While no audio server runs, looks for one this often."""
PULSE_RATE = 48000
"""Stream rate on PulseAudio/PipeWire (the server resamples anything else)."""
LIVE_SETTINGS = ("atten_lim_db", "bypass")
"""Settings applied to the running enhancer without reopening the stream."""
STREAM_SETTINGS = ("input_device", "output_device", "input_channel", "model", "block_size", "sample_rate", "echo_cancel")
"""Settings that reopen the stream."""
ECHO_NEEDS_PULSE = ("echo cancellation needs PulseAudio or PipeWire (it records what the speakers play from the "
                    "server): restart with 'quietmic restart --backend pulse --echo-cancel'")
"""Why ``echo_cancel`` cannot run on plain JACK or with ``--backend none``."""
SERVICE_SETTINGS = ("speakers",)
"""Settings that add or remove a part of the service (the speaker side, :mod:`realtime.desktop.speakers`)."""


class RestartRequired(Exception):
    """PortAudio cannot go on in this process: the JACK stream died (the server went away, or dropped
    quietmic's client), or PortAudio holds a client of a JACK server that has gone. PortAudio's JACK
    backend hangs closing such a stream and aborts re-initialising (:mod:`realtime.live.portaudio_scan`),
    so the service process restarts itself (same pid, state carried over) and reconnects when the
    server is back.

    Args:
        why: what happened, for the log.
        backend: the virtual-microphone backend the restarted process uses (``jack``, ``pipewire`` or ``none``).
    """

    def __init__(self, why: str, backend: str) -> None:
        super().__init__(why)
        self.backend = backend


CARRY_ENV = "QUIETMIC_SERVICE_CARRY"
"""Environment variable that carries the service's counters across such a restart."""


class Service:
    """Live denoising into the virtual microphone until :meth:`request_stop`.

    Args:
        settings: the effective settings (config file + command line).
        config_path: the config file ``set`` saves to (default: the user's, :func:`~realtime.config.default_config_path`).
        backend: ``auto``, ``pulse``, ``pipewire`` (PipeWire through pipewire-jack; ``auto`` picks it on PipeWire),
            ``jack`` or ``none`` (play to the output device, no virtual mic).
    """

    def __init__(self, settings: Settings, backend: str = "auto", carried: dict[str, Any] | None = None,
                 config_path: Path | None = None) -> None:
        self.settings = settings
        self.config_path = config_path if config_path is not None else default_config_path()
        """Where ``set`` saves what it changes (the config file the service was started with)."""
        self.backend_choice = backend
        self.virtual_mic: virtual_mic.PulseVirtualMic | virtual_mic.JackPorts | None = None
        self.processor: LiveProcessor | None = None
        self.model_path = resolve_model_path(settings.model)
        self.model = load_checked_model(self.model_path)
        self.stream = StreamState(since=time.monotonic(), logger=log)
        self.started_at = time.monotonic()
        self._process_started = self.started_at
        self.reconnects = 0
        self.lost_streams = 0
        self._past = StreamTotals()
        """What the streams closed so far (in this process or, carried over, before its restart) counted."""
        self._stop = threading.Event()
        self._reopen = threading.Event()
        self._lock = threading.Lock()
        self._input_source: str | None = None
        self._last_default_check = 0.0
        self._events: virtual_mic.ServerEvents | None = None
        self._cpu_mark = (time.monotonic(), _cpu_seconds())
        self._cpu_percent = 0.0
        self._stream_dead = False
        self._listeners: int | None = None
        """Streams recording from the virtual microphone when last counted (None: not counted / no server)."""
        self._listeners_counted = 0.0
        self._listeners_stale = True
        self._unheard_since: float | None = None
        self._waking = False
        """The stream opens because a program started recording after an idle spell."""
        self.speakers: speakers.SpeakerChain | None = None
        """The speaker side, while the ``speakers`` setting is on and a PulseAudio-compatible server runs."""
        self._speakers_lock = threading.Lock()
        """Held while the speaker side is turned on or off (from the main loop or a ``set``)."""
        self._speakers_error = ""
        """Why the speaker side did not start, when it did not."""
        self._echo_error = ""
        """Why echo cancellation, though on, does not run (for the status); "" when it runs or is off."""
        if carried:
            self.started_at = time.monotonic() - float(carried.get("uptime_seconds", 0.0))
            self.reconnects = int(carried.get("reconnects", 0))
            self.lost_streams = int(carried.get("lost_streams", 0))
            self._past = StreamTotals.carried(carried.get("counters", {}), carried.get("faults", {}))
            self._set_state(str(carried.get("state", "reconnecting")), str(carried.get("detail", "")))
            self.stream.since = time.monotonic() - float(carried.get("state_seconds", 0.0))

    def carry_over(self) -> dict[str, Any]:
        """What a restarted service process needs to go on counting (see :class:`RestartRequired`)."""
        status = self.status()
        return {key: status[key] for key in ("uptime_seconds", "reconnects", "lost_streams", "counters", "state",
                                             "detail", "state_seconds", "faults")}

    # --- control -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()
        events = self._events
        if events is not None:
            events.poke()  # an idle service sleeps on the server's events

    @property
    def stopping(self) -> bool:
        """Whether a stop has been asked for."""
        return self._stop.is_set()

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """Answer one control request (runs in the control thread)."""
        command = message.get("command")
        if command == "ping":
            return {"ok": True}
        if command == "status":
            return {"ok": True, "status": self.status()}
        if command == "stop":
            self.request_stop()
            return {"ok": True}
        if command == "set":
            key, value = message.get("key"), message.get("value")
            if not isinstance(key, str) or not isinstance(value, str):
                raise QuietmicError("set needs a key and a value, e.g. 'quietmic set atten_lim_db 20'")
            parsed = parse_setting(key, value)
            changed = self.set(key, parsed)
            if not message.get("persist", True):
                return {"ok": True, "changed": changed, "saved_to": None}
            save_setting(self.config_path, key, parsed)
            return {"ok": True, "changed": changed, "saved_to": str(self.config_path)}
        raise QuietmicError(f"unknown command {command!r}; the commands are status, set and stop")

    def set(self, key: str, value: Any) -> dict[str, Any]:
        """Change one setting while running; returns ``{key: value}``."""
        if key not in LIVE_SETTINGS + STREAM_SETTINGS + SERVICE_SETTINGS:
            raise QuietmicError(f"{key} cannot be changed while running; change it in the config and restart")
        if key == "speakers" and value and self._speakers_unavailable():
            raise QuietmicError(self._speakers_unavailable())
        if key == "echo_cancel" and value:
            self._check_echo_cancel()
        if key == "input_device" and value is not None:
            self._check_input_device(value)
        if key == "model":
            path = resolve_model_path(value)
            model = load_checked_model(path)  # load (and validate) before anything changes
            framing_at_rate(model.metadata, self._rate())
            with self._lock:
                self.model, self.model_path = model, path
        with self._lock:
            self.settings = replace(self.settings, **{key: value})
            processor = self.processor
        if key in SERVICE_SETTINGS:
            self._apply_speakers()
        elif key in LIVE_SETTINGS:
            if processor is not None:
                setattr(processor.enhancer, key, value)
        else:
            self._reopen.set()
        chain = self.speakers
        if chain is not None and key in speakers.LIVE_SETTINGS + speakers.STREAM_SETTINGS:
            chain.update(key, self.settings, self.model.clone() if key == "model" else None,
                         self._rate() if self._pulse() else None)
        log.info("set %s = %r", key, value)
        return {key: value}

    def _check_echo_cancel(self) -> None:
        """Raise a :class:`QuietmicError` saying what to do where echo cancellation cannot run."""
        if isinstance(self.virtual_mic, virtual_mic.JackPorts) or self.backend_choice in ("jack", "none"):
            raise QuietmicError(ECHO_NEEDS_PULSE)
        echo.require()

    def _echo_reference(self) -> str | None:
        """The far end for echo cancellation: the monitor of the sink the speakers play (the default output,
        unless that is one of quietmic's own: then the real one the speaker side would choose); None when off,
        or when it cannot run here (the reason is kept for the status)."""
        self._echo_error = ""
        if not self.settings.echo_cancel:
            return None
        try:
            self._check_echo_cancel()
        except QuietmicError as exc:
            self._echo_error = str(exc)
            return None
        sink = speakers.choose_output(virtual_mic.default_sink(), virtual_mic.sinks())
        if sink is None:
            self._echo_error = "no output device (sink) whose sound to remove"
            return None
        return sink + virtual_mic.MONITOR_SUFFIX

    def _echo_status(self, processor: LiveProcessor | None) -> dict[str, Any]:
        """The echo canceller's part of the status."""
        stage = processor.echo if processor is not None else None
        if stage is None:
            detail = self._echo_error or "it starts with the stream, when a program records from the virtual microphone"
            return {"enabled": self.settings.echo_cancel, "reference": None, "detail": detail}
        return {"enabled": True, "reference": stage.reference_source,
                "delay_ms": round(1000.0 * stage.delay / processor.sample_rate, 1),
                "reference_starved_blocks": stage.starved_blocks, "detail": ""}

    def _speakers_unavailable(self) -> str:
        """Why the speaker side cannot run here (no PulseAudio-compatible server); "" where it can."""
        if isinstance(self.virtual_mic, virtual_mic.JackPorts) or self.backend_choice == "jack":
            return speakers.NEEDS_PULSE.format(where="on plain JACK")
        if self.backend_choice == "none":
            return speakers.NEEDS_PULSE.format(where="with --backend none")
        return ""

    def _apply_speakers(self) -> None:
        """Start or stop the speaker side as the ``speakers`` setting says (once the server is there).

        Raises a :class:`~realtime.errors.DeviceError` when the server refuses its sink (the status says so;
        ``set speakers on`` tries again)."""
        with self._speakers_lock:
            wanted = self.settings.speakers and self._pulse() and not self._stop.is_set()
            chain = self.speakers
            if wanted and chain is None:
                chain = speakers.SpeakerChain(self.model.clone(), self.settings, self._rate())
                try:
                    chain.start()
                except QuietmicError as exc:
                    self._speakers_error = str(exc)
                    raise
                self.speakers, self._speakers_error = chain, ""
            elif not wanted and chain is not None:
                self.speakers = None
                chain.stop()

    def _start_speakers(self) -> None:
        """Start the speaker side if the setting asks for it; where it cannot run, say why in the log (and status)."""
        if not self.settings.speakers or self._stop.is_set():
            return
        unavailable = self._speakers_unavailable()
        if unavailable:
            log.warning("%s", unavailable)
            return
        try:
            self._apply_speakers()
        except QuietmicError as exc:
            log.warning("speakers: %s; 'quietmic set speakers on' tries again", exc)

    def _speakers_status(self) -> dict[str, Any]:
        """The speaker side's part of the status (see :meth:`speakers.SpeakerChain.status`)."""
        chain = self.speakers
        if chain is not None:
            return chain.status()
        if not self.settings.speakers:
            return speakers.off_status("'quietmic set speakers on' adds a denoised 'quietmic speakers' output")
        unavailable = self._speakers_unavailable()
        if unavailable:
            return speakers.off_status(unavailable, "unavailable")
        if self._speakers_error:
            return speakers.off_status(f"{self._speakers_error}; 'quietmic set speakers on' tries again", "failed")
        return speakers.off_status("it starts once the PulseAudio/PipeWire server answers", "waiting for the audio server")

    def _check_input_device(self, value: int | str) -> None:
        """Refuse an input device that does not exist, listing those that do (nothing changes)."""
        if self._pulse():
            names = [n for n in virtual_mic.sources() if n != virtual_mic.SOURCE_NAME]
            if _matching_source(str(value), names) is not None:  # what the stream would open
                return
            microphones = [n for n in names if not virtual_mic.is_monitor(n)]
            raise QuietmicError(f"no microphone {value!r} on the audio server; the microphones are: "
                                f"{', '.join(microphones) or 'none'} (a part of a name is enough)")
        sd = sounddevice()
        try:
            sd.query_devices(value, "input")
        except (ValueError, sd.PortAudioError):
            inputs = [f"{i}: {d['name']}" for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]
            raise QuietmicError(f"no input device {value!r}; the input devices are: {'; '.join(inputs) or 'none'} "
                                "(an index or a part of a name)") from None

    def status(self) -> dict[str, Any]:
        """State, devices, model, latency, CPU use, glitches and uptime."""
        with self._lock:
            processor = self.processor
            settings = self.settings
        now = time.monotonic()
        totals = self._past
        latency_ms, model_failing, fault_detail = None, False, ""
        if processor is not None:
            summary = processor.summary()
            totals = totals.plus(summary)
            latency_ms = summary["stated_latency_ms"]
            model_failing = summary["model_failing"]
            fault_detail = "; ".join(f"{what}: {summary[key]}" for what, key in
                                     (("model", "model_error"), ("processing", "processing_error")) if summary[key])
        return {
            "state": self.stream.state,
            "detail": self.stream.detail,
            "state_seconds": round(now - self.stream.since, 1),
            "state_since": round(time.time() - (now - self.stream.since), 3),
            "pid": os.getpid(),
            "uptime_seconds": round(now - self.started_at, 1),
            "virtual_microphone": self.virtual_mic.describe() if self.virtual_mic else None,
            "input": self._input_source if self._pulse() else settings.input_device,
            "model": {"path": str(self.model_path), "name": self.model.metadata.name,
                      "quantization": self.model.metadata.quantization},
            "sample_rate": processor.sample_rate if processor else None,
            "block_size": processor.block_size if processor else None,
            "latency_ms": latency_ms,
            "atten_lim_db": settings.atten_lim_db,
            "bypass": settings.bypass,
            "cpu_percent": round(self._cpu_percent, 2),
            "cpu_percent_average": round(100.0 * _cpu_seconds() / max(now - self._process_started, 1e-9), 2),
            "xruns": sum(totals.xruns().values()),
            "counters": totals.xruns(),
            "faults": totals.faults(),
            "model_failing": model_failing,
            "fault_detail": fault_detail,
            "lost_streams": self.lost_streams,
            "reconnects": self.reconnects,
            "echo_cancel": self._echo_status(processor),
            "speakers": self._speakers_status(),
        }

    # --- the main loop -----------------------------------------------------------------------

    def run(self) -> None:
        """Stream until :meth:`request_stop`; never gives up on a lost device."""
        try:
            self.virtual_mic = self._wait_for_server()
            if self.virtual_mic is not None:
                with self._restart_if_orphaned():
                    self.virtual_mic.create()
            elif not self._stop.is_set():
                log.info("--backend none: playing to the output device, no virtual microphone")
            self._start_speakers()
            self._loop()
        finally:
            with self._lock:
                self.settings = replace(self.settings, speakers=False)
            self._apply_speakers()  # off: its streams closed, its sink removed
            if self._events is not None:
                self._events.stop()
            self._close_stream()
            if self.virtual_mic is not None:
                self.virtual_mic.remove()
            if not self._stream_dead:
                self._set_state("stopped")

    def _wait_for_server(self) -> virtual_mic.PulseVirtualMic | virtual_mic.JackPorts | None:
        """The virtual-microphone backend, once its server answers (``jack`` waits in the stream loop instead;
        ``none``: None at once). Returns None if a stop comes first."""
        if self.backend_choice in ("jack", "none"):
            return virtual_mic.detect(self.backend_choice)
        while not self._stop.is_set():
            if virtual_mic.pulse_available():
                try:
                    return pipewire_mic.choose(self.backend_choice)
                except QuietmicError as exc:  # --backend pipewire on a server that cannot take it
                    self._set_state("waiting for the audio server", str(exc))
                    self._stop.wait(SERVER_WAIT_SECONDS)
                    continue
            if self.backend_choice == "auto" and jack_graph.server_running():
                with self._restart_if_orphaned():
                    rescan()  # PortAudio learns of a server only when it initialises
                found = virtual_mic.detect("jack") if virtual_mic.jack_available() else None
                if found is not None:
                    return found
            which = "PulseAudio/PipeWire" if self.backend_choice == "pulse" else "PulseAudio/PipeWire or JACK"
            self._set_state("waiting for the audio server",
                            f"no {which} server answers yet; the virtual microphone appears when one starts")
            self._stop.wait(SERVER_WAIT_SECONDS)
        return None

    def _loop(self) -> None:
        watch = StallWatch()
        while not self._stop.is_set():
            now = time.monotonic()
            self._measure_cpu(now)
            if self.processor is None:
                if self._pulse() and self._count_listeners(now) == 0:
                    self._idle()
                    self._waking = True
                    continue
                if self._open_stream():
                    watch = StallWatch()
                elif self._pulse():  # try again at once when a source comes or goes
                    events = self._server_events()
                    events.wait(RETRY_SECONDS)
                    if not events.alive:  # no server to watch (its watcher ended at once): no busy loop
                        self._stop.wait(RETRY_SECONDS)
                else:
                    self._stop.wait(RETRY_SECONDS)
                continue
            if self._reopen.is_set():
                self._reopen.clear()
                self._close_stream()
                continue
            why = watch.lost(self.processor, now)
            if why is not None:
                log.warning("input lost: %s (device unplugged, suspended, or the audio server went away)", why)
                self.lost_streams += 1
                self._set_state("reconnecting", why)
                if self._portaudio_jack():  # server gone, or it dropped our client
                    raise self._restart_required(why)
                self._close_stream()
                continue
            if self._pulse() and self._unheard_since is not None and now - self._unheard_since >= IDLE_AFTER_SECONDS:
                self._listeners_stale = True
                if self._count_listeners(now) == 0:
                    log.info("nobody records from the virtual microphone: releasing the microphone")
                    self._close_stream()
                    continue
            if self._pulse() and self._pulse_check_due(now):
                self._listeners_stale = True
                if self._count_listeners(now) == 0:
                    self._unheard_since = self._unheard_since or now
                if self._input_source not in virtual_mic.sources():
                    log.warning("input lost: the microphone %s went away", self._input_source)
                    self.lost_streams += 1
                    self._close_stream()
                    self._set_state("reconnecting", f"the microphone {self._input_source} went away")
                    continue
                wanted = self._choose_source()
                if wanted is not None and wanted != self._input_source:
                    log.info("the default microphone changed to %s: following it", wanted)
                    self._close_stream()
                    continue
            self._stop.wait(SUPERVISE_SECONDS)

    def _count_listeners(self, now: float) -> int | None:
        """Streams recording from the virtual microphone: counted again after a server event or every
        :data:`IDLE_POLL_SECONDS`, else as last counted. None when the server does not answer."""
        if self._listeners_stale or now - self._listeners_counted >= IDLE_POLL_SECONDS:
            assert isinstance(self.virtual_mic, virtual_mic.PulseVirtualMic)
            self._listeners = self.virtual_mic.recording_streams()
            self._listeners_counted, self._listeners_stale = now, False
            log.debug("%s stream(s) record from the virtual microphone", self._listeners)
            if self._listeners:
                self._unheard_since = None
        return self._listeners

    def _idle(self) -> None:
        """Nobody records from the virtual microphone: keep it listed, hold no stream, sleep until an event."""
        assert isinstance(self.virtual_mic, virtual_mic.PulseVirtualMic)
        try:
            if not self.virtual_mic.exists():
                self.virtual_mic.create()  # a restarted server forgot it
                self.stream.since = time.monotonic()  # idle again since now, on the new server
        except QuietmicError as exc:
            self._set_state("waiting for the audio server", str(exc))
            self._stop.wait(RETRY_SECONDS)
            self._listeners_stale = True
            return
        self.virtual_mic.sleep()
        self._set_state("idle", "nobody records from the virtual microphone; the microphone is released")
        events = self._server_events()
        self._listeners_stale = events.wait(IDLE_POLL_SECONDS)
        if not events.alive:  # the server went: no busy loop while it is away
            self._stop.wait(RETRY_SECONDS)

    def _pulse_check_due(self, now: float) -> bool:
        """Whether to look at the server's sources now: on an event, or every few seconds regardless."""
        if self._server_events().changed() or now - self._last_default_check > SOURCE_POLL_SECONDS:
            self._last_default_check = now
            return True
        return False

    def _server_events(self) -> virtual_mic.ServerEvents:
        """The watcher of the PulseAudio server's events, (re)started if it is not running."""
        self._events = virtual_mic.watching(self._events)
        return self._events

    def _pulse(self) -> bool:
        return isinstance(self.virtual_mic, virtual_mic.PulseVirtualMic)

    def _portaudio_jack(self) -> bool:
        """Whether the stream is PortAudio's on a JACK API (plain JACK, or PipeWire's): a lost one needs a restart."""
        return isinstance(self.virtual_mic, (virtual_mic.JackPorts, pipewire_mic.PipeWireJackMic))

    def _portaudio_backend(self) -> str:
        """The backend a restarted process keeps: JACK ports, PipeWire's JACK API, or none (an output device)."""
        if isinstance(self.virtual_mic, pipewire_mic.PipeWireJackMic):
            return "pipewire"
        return "jack" if isinstance(self.virtual_mic, virtual_mic.JackPorts) else "none"

    def _restart_required(self, why: str) -> RestartRequired:
        """PortAudio cannot go on in this process: the stream is dead (closing it would hang), and the
        process restarts with the backend it has (see :class:`RestartRequired`)."""
        self._stream_dead = True
        return RestartRequired(why, self._portaudio_backend())

    @contextlib.contextmanager
    def _restart_if_orphaned(self) -> Iterator[None]:
        """Turn PortAudio's refusal to re-scan in this process (:class:`PortAudioOrphaned`) into a restart."""
        try:
            yield
        except PortAudioOrphaned as exc:
            raise self._restart_required(str(exc)) from None

    def _rate(self, input_device: int | str | None = None) -> int:
        """The stream rate: the setting, else 48 kHz on PulseAudio, else ``input_device``'s (default: the setting's;
        on PipeWire's JACK API the graph's)."""
        if self.settings.sample_rate:
            return self.settings.sample_rate
        if self._pulse() and not isinstance(self.virtual_mic, pipewire_mic.PipeWireJackMic):
            return PULSE_RATE
        return device_rate(self.settings.input_device if input_device is None else input_device)

    def _choose_source(self) -> str | None:
        """The PulseAudio source to record: the configured one, else the default unless it is quietmic's own."""
        names = [n for n in virtual_mic.sources() if n != virtual_mic.SOURCE_NAME]  # never our own output
        wanted = self.settings.input_device
        if wanted is not None:
            return _matching_source(str(wanted), names)
        default = virtual_mic.default_source()
        # PulseAudio makes a sink's monitor the default when the last microphone goes away: recording
        # it would send the speakers (the other side of the call) back into the call. Only
        # input_device picks a monitor (quietmic's own sink's monitor is one too).
        if default and default != virtual_mic.SOURCE_NAME and not virtual_mic.is_monitor(default):
            return default
        if self._input_source in names:  # quietmic itself became the default: keep the real microphone
            return self._input_source
        real = [n for n in names if not virtual_mic.is_monitor(n)]
        return real[0] if real else None

    def _open_stream(self) -> bool:
        """Try to open the stream once; False (and the reason in the status) if it cannot yet."""
        try:
            with self._lock:
                settings, model = self.settings, self.model
            input_device, output_device = settings.input_device, settings.output_device
            factory, inline, pipewire = None, False, None
            if self._pulse():
                assert isinstance(self.virtual_mic, virtual_mic.PulseVirtualMic)
                # Woken by a program that records from the virtual microphone (so it exists), the service
                # opens the microphone it used last at once; the supervision loop follows a change of the
                # default within a few seconds. Each pactl call costs tens of ms on a busy machine.
                waking, self._waking = self._waking and self._input_source is not None, False
                if not waking and not self.virtual_mic.exists():
                    self.virtual_mic.create()  # a restarted server forgot it
                source = self._input_source if waking else self._choose_source()
                if source is None:
                    raise DeviceError("no microphone (PulseAudio source) found")
                self._input_source = input_device = source
                if isinstance(self.virtual_mic, pipewire_mic.PipeWireJackMic):
                    pipewire = self.virtual_mic
                    try:
                        pipewire.prepare_portaudio(settings.block_size or hop_at_rate(model.metadata, PULSE_RATE),
                                                   PULSE_RATE)
                    except pipewire_jack.LibjackTaken as exc:  # JACK2's libjack was loaded looking for a server
                        raise self._restart_required(str(exc)) from None
                    with self._restart_if_orphaned():
                        rescan()  # PipeWire restarted: only a new process reaches the new one
                    output_device = pipewire.portaudio_device()  # the stream's input too, until linked to the mic
                else:
                    output_device = virtual_mic.SINK_NAME
                    factory = functools.partial(PulseDuplexStream, device=(source, virtual_mic.SINK_NAME))
                    inline = PulseDuplexStream.processes_inline
                self.virtual_mic.wake()
            else:
                with self._restart_if_orphaned():
                    rescan()  # a device or server may have come (back)
                if isinstance(self.virtual_mic, virtual_mic.JackPorts):
                    jack = virtual_mic.jack_device()
                    if jack is None:
                        raise DeviceError("the JACK server is not running")
                    input_device = jack if input_device is None else input_device
                    output_device = jack  # the virtual microphone is quietmic's own JACK output ports
            portaudio_input = output_device if pipewire is not None else input_device
            rate = self._rate(portaudio_input)  # on JACK: the server's rate, not the system default's
            reference = self._echo_reference() if self._pulse() else None
            stream = {"stream_factory": factory, "inline": inline, "host_blocks": pipewire is not None}
            try:
                processor = build_processor(model, settings, rate, devices=(portaudio_input, output_device),
                                            echo_reference=reference, **stream)
            except QuietmicError as exc:  # the echo canceller cannot run: the microphone goes on without it
                if reference is None:
                    raise
                self._echo_error = str(exc)
                log.warning("echo cancellation: %s; streaming without it", exc)
                processor = build_processor(model, settings, rate, devices=(portaudio_input, output_device), **stream)
            processor.start()
            if pipewire is not None:
                pipewire_mic.link_or_stop(pipewire, processor, input_device, settings.input_channel)
            if isinstance(self.virtual_mic, virtual_mic.JackPorts):  # programs connect; never the speakers
                jack_graph.disconnect_outputs(virtual_mic.SOURCE_NAME)
        except (QuietmicError, ValueError, *portaudio_errors()) as exc:
            self._set_state("waiting for the input device", str(exc))
            return False
        with self._lock:
            self.processor = processor
        if self.lost_streams > self.reconnects:
            self.reconnects += 1
            log.info("input back after %.1f s", time.monotonic() - self.stream.since)
        self._set_state("running", f"{input_device if input_device is not None else 'default input'} at {rate} Hz")
        return True

    def _close_stream(self) -> None:
        with self._lock:
            processor, self.processor = self.processor, None
        if processor is None:
            return
        self._past = self._past.plus(processor.summary())
        if self._stream_dead:
            return  # PortAudio would hang closing it; the process restarts instead
        try:
            processor.stop()
        except DeviceError as exc:
            log.warning("%s", exc)

    def _set_state(self, state: str, detail: str = "") -> None:
        self.stream.set(state, detail)

    def _measure_cpu(self, now: float) -> None:
        mark_time, mark_cpu = self._cpu_mark
        if now - mark_time >= 2.0:
            cpu = _cpu_seconds()
            self._cpu_percent = 100.0 * (cpu - mark_cpu) / (now - mark_time)
            self._cpu_mark = (now, cpu)


def _matching_source(wanted: str, names: list[str]) -> str | None:
    """The source ``wanted`` names among ``names``: that name, else the first containing it. A part of a
    name picks a microphone, not a sink's monitor ("usb" must not pick "usb_speakers.monitor"), unless
    it says "monitor"."""
    if wanted in names:
        return wanted
    matches = [n for n in names if wanted in n and (not virtual_mic.is_monitor(n) or "monitor" in wanted)]
    return matches[0] if matches else None


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
