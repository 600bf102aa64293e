"""Speaker-side denoising: the "quietmic speakers" output, denoised on its way to the real one.

With the ``speakers`` setting on (``quietmic start --speakers``, ``quietmic set speakers on``)
the service adds a null sink ``quietmic_speakers`` (shown as "quietmic speakers") on the
PulseAudio or PipeWire (pipewire-pulse) server. A program chooses it as its output (a call
program's speaker setting, or the desktop's default output); quietmic records the sink's
monitor, runs it through an :class:`~realtime.enhancer.Enhancer` of its own (its own model
state; the service's model, attenuation limit and bypass) and plays the result to the real
output (:func:`choose_output`): the server's default sink, unless that is one of quietmic's
own sinks, in which case the real sink it played to last, else the first other one. It never
plays into its own sinks (this one, or the virtual microphone's internal feed), so it cannot
make a loop; with no other sink it plays nowhere and says so in its status.

The sink is mono, as the engine is: the server mixes each program's stream down once as it
mixes them (PulseAudio and PipeWire mix stereo down to mono with different gains), and spreads
the mono result over the real output's channels. A stereo sink would carry two channels only
for quietmic to mix them down itself, and stereo placement is lost either way.

Like the microphone side, the chain streams only while some program plays into the sink
(the sink's streams are counted on the server's events): with nothing playing for
:data:`IDLE_AFTER_SECONDS` it closes its streams and waits (state ``idle``: no stream, no
CPU; the server suspends the idle sink). The first moment of a sound that wakes it (until its
streams are open: tens of ms) is not heard. A stream that dies (server restart) is reopened;
the sink is made again on a new server. Turned off, the chain closes its streams and unloads
the sink: the server moves the programs that played into it to the default output.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from realtime.config import Settings
from realtime.desktop import virtual_mic
from realtime.desktop.stream_state import StallWatch, StreamState, StreamTotals
from realtime.errors import QuietmicError

if TYPE_CHECKING:  # numpy and the model: not for 'quietmic status' or 'stop', which import this module
    from realtime.live.processor import LiveProcessor
    from realtime.model import MaskModel

log = logging.getLogger(__name__)

SINK_NAME = "quietmic_speakers"
SINK_DESCRIPTION = "quietmic speakers"
"""What output lists show: programs (or the desktop's default output) choose it to be denoised."""
MONITOR = SINK_NAME + virtual_mic.MONITOR_SUFFIX
OWN_SINKS = (SINK_NAME, virtual_mic.SINK_NAME)
"""quietmic's own sinks: the speaker chain never plays into them (that would loop, or send the
other side of a call into the call)."""
MODULE_ARGUMENTS = (f"sink_name={SINK_NAME}",)
"""The argument that names the sink's module (how one left by a killed process is found)."""
STREAM_NAMES = ("quietmic speakers", "denoised speakers")
"""The chain's (recording, playback) streams as the server's mixer lists them."""

IDLE_AFTER_SECONDS = 2.0
"""With nothing playing into the sink this long, the chain closes its streams (as the microphone side does)."""
IDLE_POLL_SECONDS = 30.0
"""While idle, counts the sink's streams this often even without an event (events may be missed)."""
CHECK_SECONDS = 5.0
"""While running, looks at the sink's streams and the default output this often even without an event."""
SUPERVISE_SECONDS = 0.1
"""How often the running chain looks at its stream."""
RETRY_SECONDS = 0.5
"""Pause between attempts to open the stream or make the sink, when an attempt failed."""
STOP_TIMEOUT_SECONDS = 5.0
"""How long :meth:`SpeakerChain.stop` waits for the chain's thread (it closes a stream and unloads a module)."""

LIVE_SETTINGS = ("atten_lim_db", "bypass")
"""Settings applied to the running enhancer at once."""
STREAM_SETTINGS = ("model", "block_size", "sample_rate")
"""Settings that reopen the chain's stream (the devices are the microphone side's business)."""

NEEDS_PULSE = ("speaker-side denoising needs a PulseAudio or PipeWire (pipewire-pulse) server, and this service "
               "runs {where}; start quietmic on PulseAudio/PipeWire ('quietmic restart --backend pulse --speakers'), "
               "or turn it off: 'quietmic set speakers off'")
"""The status detail (and ``set`` refusal) where there is no PulseAudio-compatible server; ``{where}`` says what runs."""
NO_OUTPUT = ("no real output to play to: the only sinks are quietmic's own; connect speakers or headphones "
             "(quietmic never plays into its own sinks)")


def choose_output(default: str | None, sinks: list[str], current: str | None = None) -> str | None:
    """The sink the chain plays to: ``default`` (the server's default sink) if it is a real one, else
    ``current`` (where it plays now) if it still is there, else the first real sink in ``sinks``; None
    when every sink is quietmic's own (:data:`OWN_SINKS`). A desktop whose default output is "quietmic
    speakers" (so that every program is denoised) keeps its real output this way."""
    real = [sink for sink in sinks if sink not in OWN_SINKS]
    for candidate in (default, current):
        if candidate in real:
            return candidate
    return real[0] if real else None


def stale_modules() -> list[str]:
    """Indices of speaker sinks' modules on the server (any process's: left by a killed one, when no service runs)."""
    return virtual_mic.modules_with(*MODULE_ARGUMENTS)


def off_status(detail: str, state: str = "off") -> dict[str, Any]:
    """The status of a chain that does not run: ``off``, or ``unavailable`` (see :data:`NEEDS_PULSE`)."""
    return {"enabled": state != "off", "state": state, "detail": detail}


class SpeakerChain:
    """``quietmic_speakers`` -> its own Enhancer -> the real output, while programs play (see the module docstring).

    Args:
        model: the chain's own model (a :meth:`~realtime.model.MaskModel.clone` of the service's:
            its state is the chain's alone).
        settings: the service's settings (model, block size, attenuation limit, bypass).
        rate: stream and sink rate in Hz.
    """

    def __init__(self, model: MaskModel, settings: Settings, rate: int) -> None:
        self.rate = rate
        self._model = model
        self._settings = settings
        self._lock = threading.Lock()
        self._processor: LiveProcessor | None = None
        self._module: str | None = None
        self._output: str | None = None
        """The real sink the chain plays (or played last) to."""
        self._players = 0
        """Streams playing into the sink when last counted."""
        self._past = StreamTotals()
        self.lost_streams = 0
        self.reconnects = 0
        self.stream = StreamState(since=time.monotonic(), what="speakers", logger=log)
        self._stop = threading.Event()
        self._reopen = threading.Event()
        self._events: virtual_mic.ServerEvents | None = None
        self._thread: threading.Thread | None = None

    # --- control (the service's threads) ---------------------------------------------------------

    def start(self) -> None:
        """Make the sink (removing one a killed quietmic left) and start the chain's thread.

        Raises a :class:`~realtime.errors.DeviceError` when the server refuses the sink.
        """
        self._create_sink()
        self._thread = threading.Thread(target=self._run, name="quietmic-speakers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the streams and unload the sink (the server moves its programs to the default output)."""
        self._stop.set()
        events = self._events
        if events is not None:
            events.poke()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
            if self._thread.is_alive():
                log.warning("the speaker chain did not stop within %g s", STOP_TIMEOUT_SECONDS)
            self._thread = None
        else:
            self._remove_sink()

    def update(self, key: str, settings: Settings, model: MaskModel | None = None, rate: int | None = None) -> None:
        """Follow the service's setting ``key`` (already in ``settings``): the attenuation limit and bypass
        at once, a new ``model`` (the chain's own clone), block size or ``rate`` by reopening the stream."""
        with self._lock:
            self._settings = settings
            self._model = model if model is not None else self._model
            self.rate = rate if rate is not None else self.rate
            processor = self._processor
        if key in LIVE_SETTINGS:
            if processor is not None:
                setattr(processor.enhancer, key, getattr(settings, key))
        elif key in STREAM_SETTINGS:
            self._reopen.set()
            if self._events is not None:
                self._events.poke()

    def status(self) -> dict[str, Any]:
        """On, state, where it plays, streams playing into it, its own xruns and faults (no None values)."""
        with self._lock:
            processor = self._processor
        totals, extra = self._past, {}
        if processor is not None:
            summary = processor.summary()
            totals = totals.plus(summary)
            extra = {"latency_ms": summary["stated_latency_ms"], "model_failing": summary["model_failing"]}
        return {
            "enabled": True,
            "state": self.stream.state,
            "detail": self.stream.detail,
            "state_seconds": round(time.monotonic() - self.stream.since, 1),
            "sink": SINK_NAME,
            "output": self._output or "",
            "playing_streams": self._players,
            "xruns": sum(totals.xruns().values()),
            "counters": totals.xruns(),
            "faults": totals.faults(),
            "lost_streams": self.lost_streams,
            "reconnects": self.reconnects,
            **extra,
        }

    # --- the chain's thread ------------------------------------------------------------------------

    def _run(self) -> None:
        watch = StallWatch()
        last_check, unheard_since = 0.0, None
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if self._processor is None:
                    if self._someone_plays() and self._open():
                        watch, last_check, unheard_since = StallWatch(), now, None
                    continue
                if self._reopen.is_set():
                    self._reopen.clear()
                    self._close()
                    continue
                why = watch.lost(self._processor, now)
                if why is not None:
                    log.warning("speakers: %s (the output went away, or the audio server did)", why)
                    self.lost_streams += 1
                    self.stream.set("reconnecting", why)
                    self._close()
                    continue
                if self._events_changed() or now - last_check > CHECK_SECONDS:
                    last_check = now
                    if self._count_players() == 0:
                        unheard_since = unheard_since or now
                    else:
                        unheard_since = None
                    wanted = self._choose_output()
                    if wanted != self._output:
                        log.info("speakers: the output changed to %s: following it", wanted)
                        self._close()
                        continue
                if unheard_since is not None and now - unheard_since >= IDLE_AFTER_SECONDS:
                    if self._count_players() == 0:
                        log.info("nothing plays into %s: closing the speaker streams", SINK_NAME)
                        self._close()
                        continue
                    unheard_since = None
                self._stop.wait(SUPERVISE_SECONDS)
        except Exception:  # the service goes on without its speaker side; the status says why
            log.exception("the speaker chain failed")
            self.stream.set("failed", "see the log; 'quietmic set speakers off' then 'on' starts it again")
        finally:
            self._close()
            if self._events is not None:
                self._events.stop()
            self._remove_sink()
            if self.stream.state != "failed":
                self.stream.set("off")

    def _someone_plays(self) -> bool:
        """With no stream open: make the sink if the server lacks it (a restarted server), and count the
        programs playing into it; while none does, wait (idle) for the server's next event. Whether one plays."""
        try:
            if virtual_mic.sink_index(SINK_NAME) is None:
                self._create_sink()
        except QuietmicError as exc:
            self.stream.set("waiting for the audio server", str(exc))
            self._wait_for_event(RETRY_SECONDS)
            return False
        if self._count_players():
            return True
        self.stream.set("idle", f"no program plays into {SINK_DESCRIPTION!r}; nothing runs")
        self._wait_for_event(IDLE_POLL_SECONDS)
        return False

    def _open(self) -> bool:
        """Open the chain's stream to the real output; False (and why in the status) if it cannot yet."""
        from realtime.live.from_settings import build_processor  # numpy and the model, on first use
        from realtime.live.pulse_stream import PulseDuplexStream

        output = self._choose_output()
        if output is None:
            self.stream.set("no output", NO_OUTPUT)
            self._wait_for_event(RETRY_SECONDS)
            return False
        with self._lock:
            settings, model, rate = self._settings, self._model, self.rate
            self._reopen.clear()  # this stream has the settings
        factory = functools.partial(PulseDuplexStream, device=(MONITOR, output), stream_names=STREAM_NAMES)
        try:
            # The monitor is mono (the sink is): channel 0, whatever the microphone's input_channel is.
            processor = build_processor(model, replace(settings, input_channel=0), rate, devices=(MONITOR, output),
                                        stream_factory=factory, inline=PulseDuplexStream.processes_inline)
            processor.start()
        except (QuietmicError, ValueError) as exc:
            self.stream.set("waiting for the output", str(exc))
            self._wait_for_event(RETRY_SECONDS)
            return False
        with self._lock:
            self._processor, self._output = processor, output
        if self.lost_streams > self.reconnects:
            self.reconnects += 1
        self.stream.set("running", f"{SINK_DESCRIPTION} -> {output} at {rate} Hz")
        return True

    def _close(self) -> None:
        with self._lock:
            processor, self._processor = self._processor, None
        if processor is None:
            return
        self._past = self._past.plus(processor.summary())
        try:
            processor.stop()
        except QuietmicError as exc:
            log.warning("speakers: %s", exc)

    def _choose_output(self) -> str | None:
        return choose_output(virtual_mic.default_sink(), virtual_mic.sinks(), self._output)

    def _count_players(self) -> int:
        """Streams playing into the sink now (0 without the sink or a server); one or two ``pactl`` calls.
        The chain's own streams never play into it."""
        index = virtual_mic.sink_index(SINK_NAME)
        self._players = (virtual_mic.streams_playing(index) or 0) if index is not None else 0
        return self._players

    def _create_sink(self) -> None:
        """Make the sink, after removing any left by a killed quietmic (or by a server that forgot ours)."""
        stale = stale_modules()
        if stale:
            log.info("removing stale quietmic speaker sinks (modules %s)", stale)
            virtual_mic.unload_modules(stale)
        self._module = virtual_mic.load_null_sink(SINK_NAME, SINK_DESCRIPTION, self.rate)
        log.info("speaker output %r ready (module %s)", SINK_DESCRIPTION, self._module)

    def _remove_sink(self) -> None:
        """Unload the sink: found by its name, since after a server restart the module index it had means nothing."""
        if self._module is not None:
            virtual_mic.unload_modules(stale_modules())
            self._module = None

    def _server_events(self) -> virtual_mic.ServerEvents:
        """The watcher of the server's sink events, (re)started if it is not running."""
        self._events = virtual_mic.watching(self._events, virtual_mic.SPEAKER_EVENTS)
        return self._events

    def _events_changed(self) -> bool:
        return self._server_events().changed()

    def _wait_for_event(self, timeout: float) -> None:
        """Sleep until the server reports a change, a stop or a reopen comes, or ``timeout`` seconds pass."""
        events = self._server_events()
        events.wait(timeout)
        if not events.alive and not self._stop.is_set():  # no server to watch: no busy loop while it is away
            self._stop.wait(RETRY_SECONDS)
