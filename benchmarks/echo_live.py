"""The echo benchmark's live variant: the service's echo cancellation on a private sound server.

``python -m benchmarks.echo`` runs it after the offline rooms (``--servers pulseaudio,pipewire``;
``--servers none`` skips it). On a private PulseAudio or PipeWire server (no sound card): the room is
a loopback from the default output's monitor into the test microphone (:data:`ROOM_DELAY_MS`, unity
gain: the echo as loud as the far end, as in the offline rig), the service runs with the denoiser
bypassed (``--bypass``: the canceller alone is measured) and a program records the virtual
microphone while the benchmark plays the far end on the default output (and the near end into the
test microphone). Measured with ``echo_cancel`` off and on, at 48 kHz:

* ``erle_db``: far end alone for :data:`FAR_ONLY_S` s; the virtual microphone's power with the
  canceller off over its power with it on, over the frames where the echo is active, after
  :data:`CONVERGED_S` s;
* ``pesq_wb_double_talk``: :data:`LEAD_S` s of far end, then the near end over it; PESQ-WB (16 kHz)
  of the virtual microphone during the double talk against the near end alone, each recording aligned
  to it by cross-correlation: ``mic`` (canceller off), ``canceller`` (on), and with the speakers
  silent ``near_only_through_canceller`` (on) and ``near_only_without_canceller`` (off: what the
  recording chain itself costs, its glitches on a loaded machine included);
* ``delay_ms``: the delay the service states for its canceller (AEC3's own, measured in
  :mod:`realtime.echo`); ``service_cpu_percent`` off and on: the service's CPU while it streams
  (its status; a loaded machine inflates both).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from benchmarks import echo_room as room_rig
from benchmarks.metrics import pesq_wb
from benchmarks.pulse_probe import lag_and_correlation, listening, play_and_record
from benchmarks.pulse_server import MIC_SINK, MIC_SOURCE, SPEAKERS
from benchmarks.virtual_mic import SERVERS, Quietmic, _feed
from realtime.desktop.virtual_mic import SOURCE_NAME

LOG = logging.getLogger("benchmarks.echo")

RATE = 48000
"""The servers' and the service's rate (Hz)."""
UPSAMPLE = RATE // room_rig.RATE
"""The rig's 16 kHz speech to the servers' rate, and back for PESQ."""
ROOM_DELAY_MS = 40
"""The loopback's latency: the audio path and the room, speakers to microphone (ms)."""
FAR_ONLY_S = 12.0
"""Far end alone (s)."""
CONVERGED_S = 4.0
"""ERLE counts from this time on (s)."""
LEAD_S = 4.0
"""Far end alone before the double talk (s)."""
DOUBLE_TALK_S = 8.0
"""Double talk scored by PESQ (s)."""
START_LIMIT_S = 20.0
"""Most time for the service to stream for the recording program (s)."""
MAX_LAG = RATE // 2
"""Largest delay searched when aligning a recording with the near end (samples)."""
CPU_SAMPLE_AT_S = 6.0
"""When, into the far-end run, the service's CPU figure is read (s): its status averages the last 2 s."""


def _up(x: np.ndarray) -> np.ndarray:
    return resample_poly(x, UPSAMPLE, 1).astype(np.float32)


def _down(x: np.ndarray) -> np.ndarray:
    return resample_poly(x, 1, UPSAMPLE).astype(np.float32)


@contextlib.contextmanager
def _feeding(sink: str, signal: np.ndarray, start: threading.Event) -> Any:
    """``signal`` (float32 at :data:`RATE`) played into ``sink`` by ``pacat`` from when ``start`` is set (the
    recording has begun, so the whole of it is recorded) while the block runs."""
    players: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()

    def feed() -> None:
        while not start.wait(0.05):
            if stop.is_set():
                return
        player = subprocess.Popen(["pacat", "-d", sink, "--raw", "--format=float32le", f"--rate={RATE}",
                                   "--channels=1", "--latency-msec=20"], stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        players.append(player)
        _feed(player, signal)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield
    finally:
        stop.set()
        feeder.join(timeout=1.0)
        for player in players:
            player.kill()
            player.wait()


def _aligned(reference: np.ndarray, recorded: np.ndarray) -> np.ndarray:
    """``recorded`` moved so that it lines up with ``reference`` (same length)."""
    lag, _ = lag_and_correlation(reference, recorded, MAX_LAG)
    out = recorded[max(lag, 0):]
    return np.concatenate([out, np.zeros(max(0, len(reference) - len(out)), np.float32)])[: len(reference)]


def _record(quietmic: Quietmic, cancel: bool, far: np.ndarray, near: np.ndarray | None) -> tuple[np.ndarray, float]:
    """The virtual microphone while ``far`` plays on the speakers (and ``near`` into the microphone, started
    with it), echo cancellation ``cancel``; and the service's CPU percent during it."""
    result = quietmic("set", "echo_cancel", "on" if cancel else "off", "--temporary")
    if result.returncode != 0:
        raise RuntimeError(f"quietmic set echo_cancel: {result.stderr}")
    with listening(SOURCE_NAME):
        quietmic.wait_until(lambda s: s["state"] == "running" and s["echo_cancel"]["enabled"] == cancel
                            and (not cancel or s["echo_cancel"]["reference"] is not None), START_LIMIT_S,
                            f"streaming with echo_cancel {'on' if cancel else 'off'}")
        cpu: list[float] = []
        timer = threading.Timer(CPU_SAMPLE_AT_S, lambda: cpu.append(quietmic.status()["cpu_percent"]))
        timer.start()
        began = threading.Event()
        with _feeding(MIC_SINK, near, began) if near is not None else contextlib.nullcontext():
            recorded = play_and_record(far, SOURCE_NAME, SPEAKERS, mark=(0, began))
        timer.join()
    return recorded, (cpu[0] if cpu else float("nan"))


def measure_live(server_kind: str, far16: np.ndarray, near16: np.ndarray) -> dict[str, Any]:
    """Every live figure on a fresh private server of ``server_kind`` (far and near end at 16 kHz)."""
    with tempfile.TemporaryDirectory(prefix=f"quietmic-echo-{server_kind}-") as folder:
        workdir = Path(folder)
        server = SERVERS[server_kind][0](workdir / "run", rate=RATE)
        server.start()
        saved = dict(os.environ)
        env = {**server.env, "XDG_STATE_HOME": str(workdir / "state"), "XDG_CONFIG_HOME": str(workdir / "config")}
        os.environ.update(env)  # the probe's libpulse and pactl connect to this server
        quietmic = Quietmic(env)
        try:
            server.pactl("load-module", "module-loopback", f"source={SPEAKERS}.monitor", f"sink={MIC_SINK}",
                         f"latency_msec={ROOM_DELAY_MS}")
            started = quietmic("start", "--backend", "pulse", "--bypass", "--input-device", MIC_SOURCE)
            if started.returncode != 0:
                raise RuntimeError(f"quietmic start failed: {started.stderr}")
            far = _up(far16[: int(FAR_ONLY_S * room_rig.RATE)])
            off, cpu_off = _record(quietmic, False, far, None)
            on, cpu_on = _record(quietmic, True, far, None)
            echo_status = quietmic.status()["echo_cancel"]
            delay_ms = echo_status["delay_ms"]
            converged = int(CONVERGED_S * RATE)
            erle = room_rig.erle_db(off[converged:], on[converged:], rate=RATE)

            lead = int(LEAD_S * RATE)
            near = _up(near16[: int(DOUBLE_TALK_S * room_rig.RATE)])
            near_full = np.concatenate([np.zeros(lead, np.float32), near])
            far_dt = _up(far16[: len(near_full) // UPSAMPLE])
            scored = {}
            silent = np.zeros_like(far_dt)
            for name, cancel, far_end in (("mic", False, far_dt), ("canceller", True, far_dt),
                                          ("near_only_through_canceller", True, silent),
                                          ("near_only_without_canceller", False, silent)):
                recorded, _ = _record(quietmic, cancel, far_end, near_full)
                talk = _aligned(near_full, recorded)[lead:]
                scored[name] = round(pesq_wb(_down(near), _down(talk)), 3)
            LOG.info("live %s: ERLE %.1f dB, PESQ %s", server_kind, erle, scored)
            return {"erle_db": erle, "pesq_wb_double_talk": scored, "delay_ms": delay_ms,
                    "reference_starved_blocks": echo_status["reference_starved_blocks"],
                    "service_cpu_percent": {"off": cpu_off, "on": cpu_on},
                    "server": quietmic.status()["virtual_microphone"], "room_delay_ms": ROOM_DELAY_MS,
                    "rate": RATE}
        finally:
            quietmic("stop")
            server.stop()
            os.environ.clear()
            os.environ.update(saved)
            time.sleep(0.2)
