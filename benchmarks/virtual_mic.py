"""The background process measured on a private PulseAudio server: delay, reconnect time, CPU, drift.

    python -m benchmarks.virtual_mic [--model F] [--minutes 5] [--idle-seconds 60] [--servers pulseaudio,pipewire]
        [--backend auto] [--quantum N] [--soak-minutes M] [--json OUT]

Starts a private PulseAudio server with a test microphone
(:mod:`benchmarks.pulse_server`), runs ``quietmic start --backend auto`` on it
(``--backend``: as the service takes it; on PipeWire ``auto`` is the pipewire-jack
path where it is installed, and the JSON's ``path`` says which ran) and measures, with a probe client (:mod:`benchmarks.pulse_probe`) that plays
into the test microphone and records a source in the same stream:

* **delay through the virtual microphone**: the lag of voiced bursts recorded
  from "quietmic" minus the lag recorded from the microphone itself (the
  probe's and the server's share); on PipeWire measured by one JACK client that
  records both in the same callbacks (:mod:`benchmarks.pipewire_probe`,
  ``delay_method`` "jack-probe"; the pulse probe's figure is kept as
  ``delay_ms_pulse_probe``: its two streams' buffers differ by a quantum or more);
* **drift**: that lag, burst by burst (one a second) for ``--minutes``;
* **reconnect time**: the microphone is unplugged (its source removed) and
  plugged back; the time until quietmic streams again, and until audio flows
  through the virtual microphone again;
* **CPU use** of the background process over the drift run (its own figure in
  ``quietmic status``), and its xruns;
* **idle cost**: with nobody recording from "quietmic", the CPU of the service and
  what it adds to the server's (the server's CPU measured before quietmic started
  is subtracted), each averaged over ``--idle-seconds``, and whether the microphone
  is released (no quietmic stream records it);
* **xrun soak** (``--soak-minutes M``): M minutes of streaming, then M more while a
  CPU-stress process (:mod:`benchmarks.cpu_stress`) keeps the last core busy; the
  xruns quietmic counts in each (``xruns_soak``, ``xruns_soak_cpu_stress``);
* **resume**: a program (``parec``) is launched to record "quietmic" while a vowel
  plays into the microphone; the milliseconds until its first sound arrives (wall
  clock, its own start-up included), and how much silence its recording starts with.

``--servers pulseaudio,pipewire`` runs it all on each server (default: both that
are installed); the JSON has one object per server. ``--quantum N`` runs the
PipeWire graph at N samples whatever its clients ask for (``clock.force-quantum``;
default: the quantum the server and its clients settle on).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.cpu_stress import CpuStress
from benchmarks.live_delay import delay_by_correlation, voiced_burst
from benchmarks.machine import process_memory_mb
from benchmarks.pipewire_server import PipeWireServer
from benchmarks.pulse_probe import PROBE_PLAYBACK_BLOCKS, WARMUP_SECONDS, listening, play_and_record
from benchmarks.pulse_server import MIC_SINK, MIC_SOURCE, PulseServer
from realtime.desktop import pipewire_mic, virtual_mic
from realtime.desktop.pipewire_mic import PATH_NAME
from realtime.live.pipewire_jack import find_libjack
from realtime.desktop.virtual_mic import SOURCE_NAME

RATE = 48000
BLOCK = 480
"""The probe's block (samples)."""
INTERVAL_SECONDS = 1.0
MAX_LAG_SECONDS = 0.5
MIN_CORRELATION = 0.5
CREEP_SHARE = 0.2
"""Creep compares the median delay of the last fifth of the drift run with the first fifth's."""
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
RECONNECT_LIMIT_SECONDS = 10.0
REPLUG_PROBE_SECONDS = 6.0
"""Length of the probe that runs across the plug."""
REPLUG_AFTER_SECONDS = 1.5
"""The microphone is plugged back this far into the probe's vowel (its fade-in is over)."""
REPLUG_SOUND_LEVEL = 1e-3
"""Recorded samples above this (-60 dBFS) count as sound: without a microphone the virtual one
carries digital silence, and a denoiser soon turns a steady vowel down by 20-30 dB."""


def burst_train(seconds: float) -> np.ndarray:
    """A voiced burst at the start of every second."""
    interval = int(INTERVAL_SECONDS * RATE)
    train = np.zeros(int(seconds) * interval, dtype=np.float32)
    burst = voiced_burst(RATE)
    for start in range(0, len(train), interval):
        train[start : start + len(burst)] = burst
    return train


def burst_lags(played: np.ndarray, recorded: np.ndarray) -> list[int | None]:
    """The lag of each burst of ``played`` in ``recorded`` (None when not found)."""
    interval = int(INTERVAL_SECONDS * RATE)
    max_lag = int(MAX_LAG_SECONDS * RATE)
    lags: list[int | None] = []
    for start in range(0, len(played) - interval + 1, interval):
        reference = played[start : start + interval]
        window = recorded[start : start + interval + max_lag]
        if len(window) < interval + max_lag:
            break
        lag, correlation = delay_by_correlation(reference, window[: interval + max_lag], max_lag)
        lags.append(lag if correlation >= MIN_CORRELATION else None)
    return lags


def creep_ms(lags: list[int | None]) -> float | None:
    """How much later the bursts came at the end of the run than at its start, in ms.

    Median lag of the last :data:`CREEP_SHARE` of the bursts minus that of the
    first: a delay that keeps growing shows here, a brief excursion that is
    caught up does not (it shows in the max - min drift).
    """
    share = max(1, int(len(lags) * CREEP_SHARE))
    first = [lag for lag in lags[:share] if lag is not None]
    last = [lag for lag in lags[-share:] if lag is not None]
    if not first or not last:
        return None
    return 1000.0 * (float(np.median(last)) - float(np.median(first))) / RATE


class Quietmic:
    """``quietmic`` commands against the server in ``env``."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, **env}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "realtime", *args], capture_output=True, text=True,
                              env=self.env, timeout=60)

    def status(self) -> dict[str, Any]:
        return json.loads(self("status", "--json").stdout)

    def wait_until(self, condition: Callable[[dict[str, Any]], bool], limit: float, what: str) -> float:
        """Seconds until ``condition(status)`` holds (polled); a RuntimeError after ``limit`` seconds."""
        start = time.monotonic()
        while not condition(current := self.status()):
            if time.monotonic() - start > limit:
                raise RuntimeError(f"quietmic did not reach {what} within {limit} s: {current}")
            time.sleep(0.02)
        return time.monotonic() - start

    def wait_for(self, state: str, limit: float) -> float:
        """Seconds until the service's state is ``state``."""
        return self.wait_until(lambda status: status["state"] == state, limit, repr(state))


def measure_replug(server: PulseServer, quietmic: Quietmic, through: list[int]) -> tuple[float, float | None]:
    """Plug the microphone back (it is unplugged) while a probe plays a vowel into it and records "quietmic".

    Returns (seconds from the plug until the service ran again, by the time its
    ``quietmic status`` gives for the change; seconds from the plug until the
    sound played into the microphone came out of the virtual microphone - None
    if none did). The probe asks for the plug when it hands sample ``k`` of the
    vowel to the server; the recording is digital silence while quietmic has no
    microphone, and its first sound, moved back by the probe's round trip through
    quietmic (``through``, samples), is vowel sample ``p``: audio flowed again
    ``(p - k)`` samples after the plug, plus the probe's playback buffer (the
    plug came that much before sample ``k`` was heard; counted in, so the
    figure errs long). Timed on the probe's sample clock, this leaves out the
    recording client's own buffering.
    """
    vowel = voiced_burst(RATE, seconds=REPLUG_PROBE_SECONDS)
    plug_index = int(REPLUG_AFTER_SECONDS * RATE)
    plug_now = threading.Event()
    recorded: list[np.ndarray] = []
    probe = threading.Thread(target=lambda: recorded.append(
        play_and_record(vowel, SOURCE_NAME, MIC_SINK, tail_seconds=0.0, mark=(plug_index, plug_now))))
    probe.start()
    if not plug_now.wait(REPLUG_PROBE_SECONDS + WARMUP_SECONDS + RECONNECT_LIMIT_SECONDS):
        raise RuntimeError("the replug probe did not start")
    plugged_at = time.time()
    server.plug_mic()
    quietmic.wait_for("running", RECONNECT_LIMIT_SECONDS)
    reconnect_s = quietmic.status()["state_since"] - plugged_at
    probe.join()
    loud = np.flatnonzero(np.abs(recorded[0]) > REPLUG_SOUND_LEVEL) if recorded else []
    if not len(loud) or not through:
        return reconnect_s, None
    first_played = loud[0] - int(np.median(through))
    return reconnect_s, (first_played - plug_index + PROBE_PLAYBACK_BLOCKS * BLOCK) / RATE


SERVERS = {"pulseaudio": (PulseServer, "pulseaudio"), "pipewire": (PipeWireServer, "pipewire-pulse")}
"""Server kind -> (private server class, the program that must be installed)."""
IDLE_LIMIT_SECONDS = 10.0
"""Most time for the service to go idle once nobody records (it waits 2 s, then closes its streams)."""
RESUME_PROBE_SECONDS = 3.0
"""How long the resume probe records."""
RESUME_LEAD_SECONDS = 0.5
"""The vowel plays this long into the microphone before the probe starts recording."""
RESUME_TRIES = 5
"""Wake-ups measured; ``resume_ms`` is their median (None if any brought no sound)."""


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (from /proc; a process that has gone counts 0)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_percent(pids: list[int], seconds: float) -> float:
    """CPU of ``pids`` over the next ``seconds``, in % of one core."""
    before = _cpu_seconds(pids)
    time.sleep(seconds)
    return 100.0 * (_cpu_seconds(pids) - before) / seconds


def mic_streams() -> int:
    """Streams recording the test microphone (quietmic's, while it streams), counted as the service counts
    its listeners (``pactl`` on the server this process's environment names)."""
    index = virtual_mic.source_index(MIC_SOURCE)
    return (virtual_mic.streams_recording(index) or 0) if index is not None else 0


def _feed(player: subprocess.Popen[bytes], signal: np.ndarray) -> None:
    """Write ``signal`` to a ``pacat`` player's stdin (it blocks at the pace of playback; ends when killed)."""
    try:
        assert player.stdin is not None
        player.stdin.write(signal.tobytes())
        player.stdin.close()
    except (BrokenPipeError, ValueError, OSError):
        pass


def measure_resume(env: dict[str, str]) -> tuple[float | None, float | None]:
    """A program starts recording "quietmic" (the service idle, a vowel playing into the microphone).

    Returns (milliseconds from the program's launch until its first sound arrives, wall clock, the
    program's own start-up included; milliseconds of silence at the start of its recording, on the
    recording's clock), None where no sound came within :data:`RESUME_PROBE_SECONDS`.
    """
    vowel = voiced_burst(RATE, seconds=RESUME_LEAD_SECONDS + RESUME_PROBE_SECONDS + 1.0)
    full_env = {**os.environ, **env}
    raw = ["--raw", "--format=float32le", f"--rate={RATE}", "--channels=1", "--latency-msec=10"]
    player = subprocess.Popen(["pacat", "-d", MIC_SINK, *raw], stdin=subprocess.PIPE, env=full_env,
                              stderr=subprocess.DEVNULL)
    feeder = threading.Thread(target=lambda: _feed(player, vowel), daemon=True)  # pacat takes it in real time
    feeder.start()
    chunk = BLOCK * 4  # bytes of one 10 ms block of float32 samples
    arrivals: list[tuple[float, bytes]] = []
    try:
        time.sleep(RESUME_LEAD_SECONDS)
        launched = time.monotonic()
        recorder = subprocess.Popen(["parec", "-d", SOURCE_NAME, *raw], stdout=subprocess.PIPE, env=full_env,
                                    stderr=subprocess.DEVNULL, bufsize=0)
        assert recorder.stdout is not None
        while time.monotonic() - launched < RESUME_PROBE_SECONDS:
            data = recorder.stdout.read(chunk)
            if not data:
                break
            arrivals.append((time.monotonic() - launched, data))
        recorder.terminate()
        recorder.wait()
    finally:
        player.kill()
        player.wait()
    position = 0
    for arrived, data in arrivals:
        samples = np.frombuffer(data[: len(data) // 4 * 4], dtype=np.float32)
        loud = np.flatnonzero(np.abs(samples) > REPLUG_SOUND_LEVEL)
        if len(loud):
            return 1000.0 * arrived, 1000.0 * (position + loud[0]) / RATE
        position += len(samples)
    return None, None


def measure_idle(server: PulseServer, quietmic: Quietmic, pid: int, seconds: float) -> dict[str, Any]:
    """With nobody recording "quietmic": the service's CPU, what it adds to the server's, whether the mic is free."""
    quietmic.wait_for("idle", IDLE_LIMIT_SECONDS)
    time.sleep(1.0)  # the last stream's teardown
    server_pids = server.server_pids()
    before = _cpu_seconds([pid]), _cpu_seconds(server_pids)
    time.sleep(seconds)
    service_cpu = 100.0 * (_cpu_seconds([pid]) - before[0]) / seconds
    server_cpu = 100.0 * (_cpu_seconds(server_pids) - before[1]) / seconds
    # On PipeWire's JACK path quietmic's hold on the microphone is a link, not a recording stream: counted too.
    links = {"mic_links_while_idle": len(pipewire_mic.links(MIC_SOURCE))} if isinstance(server, PipeWireServer) else {}
    return {"idle_cpu_percent": service_cpu, "server_cpu_percent_with_quietmic_idle": server_cpu,
            "mic_streams_while_idle": mic_streams(), "state_while_idle": quietmic.status()["state"], **links}


GRAPH_PROBE_SECONDS = 6.0
"""Bursts the PipeWire graph probe plays (one a second)."""


def graph_delay(env: dict[str, str]) -> dict[str, Any]:
    """On PipeWire: the virtual microphone's delay measured by :mod:`benchmarks.pipewire_probe` (one JACK client
    records the microphone and "quietmic" in the same callbacks: exact to the sample, where two pulse probe
    streams differ by their own buffering). Empty where pipewire-jack is not installed."""
    if find_libjack() is None:
        return {}
    probe = subprocess.run([sys.executable, "-m", "benchmarks.pipewire_probe", "--seconds", str(GRAPH_PROBE_SECONDS)],
                           capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    if probe.returncode != 0:
        raise RuntimeError(f"the PipeWire graph probe failed: {probe.stderr[-2000:]}")
    return json.loads(probe.stdout.strip().splitlines()[-1])


def measure_soak(quietmic: Quietmic, minutes: float) -> dict[str, Any]:
    """Xruns quietmic counts while it streams ``minutes``, then ``minutes`` more with the last core kept busy."""
    first = quietmic.status()["xruns"]
    time.sleep(60.0 * minutes)
    middle = quietmic.status()["xruns"]
    with CpuStress(STRESS_CPU):
        time.sleep(60.0 * minutes)
    last = quietmic.status()
    return {"soak_minutes": minutes, "xruns_soak": middle - first, "xruns_soak_cpu_stress": last["xruns"] - middle,
            "counters_after_soak": last["counters"]}


STRESS_CPU = (os.cpu_count() or 1) - 1
"""The core the soak's CPU-stress process keeps busy (the last: "the other core" of a 2-core machine)."""


def measure(model: str | None, minutes: float, workdir: Path, server_kind: str = "pulseaudio",
            idle_seconds: float = 60.0, backend: str = "auto", quantum: int | None = None,
            soak_minutes: float = 0.0) -> dict[str, Any]:
    """Run every measurement on a fresh private server of ``server_kind``, quietmic started with
    ``--backend backend``, the PipeWire graph at ``quantum`` samples if given; the figures."""
    if quantum is not None and server_kind != "pipewire":
        raise ValueError("--quantum is PipeWire's (clock.force-quantum); PulseAudio has no graph quantum")
    server = SERVERS[server_kind][0](workdir / "run", rate=RATE)
    server.start()
    if quantum is not None:
        server.force_quantum(quantum)
    env = {**server.env, "XDG_STATE_HOME": str(workdir / "state"), "XDG_CONFIG_HOME": str(workdir / "config")}
    os.environ.update(env)  # the probe's libpulse connects to this server
    quietmic = Quietmic(env)
    listener = contextlib.ExitStack()
    try:
        server_alone = cpu_percent(server.server_pids(), idle_seconds) if idle_seconds else None
        # Told which microphone to use, quietmic waits for it while it is unplugged (following the default, it
        # would switch to the built-in one and back).
        started = quietmic("start", "--backend", backend, "--input-device", MIC_SOURCE,
                           *(["--model", model] if model else []))
        if started.returncode != 0:
            raise RuntimeError(f"quietmic start failed: {started.stderr}")
        pid = quietmic.status()["pid"]
        idle = measure_idle(server, quietmic, pid, idle_seconds) if idle_seconds else {}
        if idle:
            idle["server_idle_cpu_percent"] = idle["server_cpu_percent_with_quietmic_idle"] - server_alone
            idle["server_cpu_percent_without_quietmic"] = server_alone
        resumes = []
        for _ in range(RESUME_TRIES):  # the first wake-up after the start, then more: the figure varies
            quietmic.wait_for("idle", IDLE_LIMIT_SECONDS)
            resumes.append(measure_resume(env))
        arrived = [r[0] for r in resumes if r[0] is not None]
        resume_ms = float(np.median(arrived)) if len(arrived) == len(resumes) else None
        listener.enter_context(listening(SOURCE_NAME, env))  # a program records "quietmic": the service streams
        quietmic.wait_for("running", RECONNECT_LIMIT_SECONDS)
        short = burst_train(5)
        direct = [lag for lag in burst_lags(short, play_and_record(short, MIC_SOURCE, MIC_SINK)) if lag is not None]
        through = [lag for lag in burst_lags(short, play_and_record(short, SOURCE_NAME, MIC_SINK)) if lag is not None]
        delay_ms = (1000.0 * (np.median(through) - np.median(direct)) / RATE) if direct and through else None
        graph_probe = graph_delay(env) if server_kind == "pipewire" else {}

        # Unplug and plug back, with a probe running across the plug.
        server.unplug_mic()
        quietmic.wait_for("waiting for the input device", RECONNECT_LIMIT_SECONDS)
        reconnect_s, flowing = measure_replug(server, quietmic, through)
        before = quietmic.status()

        # Drift.
        train = burst_train(minutes * 60.0)
        lags = burst_lags(train, play_and_record(train, SOURCE_NAME, MIC_SINK))
        after = quietmic.status()
        memory = process_memory_mb(pid)  # the service, streaming
        soak = measure_soak(quietmic, soak_minutes) if soak_minutes else {}
        found = [lag for lag in lags if lag is not None]
        series_ms = [None if lag is None else 1000.0 * lag / RATE for lag in lags]
        return {
            "server_kind": server_kind,
            "path": PATH_NAME if PATH_NAME in str(after.get("virtual_microphone")) else "pulse",
            "quantum": quantum,
            "delay_ms": graph_probe.get("delay_ms", delay_ms),
            "delay_method": "jack-probe" if graph_probe else "pulse-probe",
            "delay_ms_pulse_probe": delay_ms,
            "delay_ms_jack_probe_each": graph_probe.get("delay_ms_each"),
            "direct_round_trip_ms": 1000.0 * float(np.median(direct)) / RATE if direct else None,
            "through_round_trip_ms": 1000.0 * float(np.median(through)) / RATE if through else None,
            "stated_latency_ms": after["latency_ms"],
            "reconnect_seconds": reconnect_s,
            "audio_back_seconds": flowing,
            "drift_minutes": minutes,
            "drift_ms": 1000.0 * (max(found) - min(found)) / RATE if found else None,
            "creep_ms": creep_ms(lags),
            "drift_series_ms": series_ms,
            "bursts_lost": sum(1 for lag in lags if lag is None),
            "cpu_percent_average": after["cpu_percent_average"],
            "cpu_percent_now": after["cpu_percent"],
            "xruns_during_drift": after["xruns"] - before["xruns"],
            "xruns": after["xruns"],
            "service_memory_mb": {k: round(v, 1) for k, v in memory.items()},
            "resume_ms": resume_ms,
            "resume_ms_each": [r[0] for r in resumes],
            "resume_silence_in_recording_ms_each": [r[1] for r in resumes],
            "resume_before_first_sound": "silence",
            "idle_seconds": idle_seconds,
            **idle,
            "counters": after["counters"],
            "server": after.get("virtual_microphone"),
            **soak,
            "model": after["model"],
        }
    finally:
        listener.close()
        quietmic("stop")
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file (default: the installed model)")
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the drift run")
    parser.add_argument("--idle-seconds", type=float, default=60.0,
                        help="length of each idle-CPU measurement (0: skip them)")
    parser.add_argument("--servers", default="pulseaudio,pipewire",
                        help="comma-separated: pulseaudio, pipewire (those not installed are skipped)")
    parser.add_argument("--backend", default="auto", choices=("auto", "pulse", "pipewire"),
                        help="quietmic's --backend (default auto: on PipeWire the pipewire-jack path if installed)")
    parser.add_argument("--quantum", type=int, metavar="N",
                        help="PipeWire only: force the graph's quantum to N samples (e.g. 256, 1024)")
    parser.add_argument("--soak-minutes", type=float, default=0.0, metavar="M",
                        help="xrun soak: M minutes streaming, then M more with a CPU-stress process (0: skip)")
    parser.add_argument("--json", metavar="OUT", help="JSON output (default: benchmarks/results/virtual_mic.json)")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in SERVERS]
    if unknown:
        parser.error(f"unknown server {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    results: dict[str, Any] = {}
    for kind in kinds:
        if shutil.which(SERVERS[kind][1]) is None:
            print(f"{kind}: {SERVERS[kind][1]} is not installed; skipped", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory(prefix="qm-vm-") as tmp:
            results[kind] = measure(args.model, args.minutes, Path(tmp), kind, args.idle_seconds, args.backend,
                                    args.quantum if kind == "pipewire" else None, args.soak_minutes)
    results["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = Path(args.json) if args.json else DEFAULT_OUT / "virtual_mic.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    def fmt(value: Any, unit: str, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f} {unit}"

    for kind in kinds:
        result = results.get(kind)
        if result is None:
            continue
        quantum = f", quantum forced to {result['quantum']}" if result["quantum"] else ""
        print(f"quietmic background process on {kind} ({result['model']['name']}, {result['model']['quantization']}; "
              f"path {result['path']}{quantum})")
        print(f"  delay through the virtual microphone  {fmt(result['delay_ms'], 'ms')}  (stated by quietmic: "
              f"{fmt(result['stated_latency_ms'], 'ms')}; probe round trip direct "
              f"{fmt(result['direct_round_trip_ms'], 'ms')}, through quietmic {fmt(result['through_round_trip_ms'], 'ms')})")
        if result.get("idle_seconds"):
            print(f"  idle (nobody records quietmic, {result['idle_seconds']:g} s): service "
                  f"{fmt(result['idle_cpu_percent'], '% of one core', 2)}, added to the server "
                  f"{fmt(result['server_idle_cpu_percent'], '%', 2)} (server alone "
                  f"{fmt(result['server_cpu_percent_without_quietmic'], '%', 2)}); streams on the microphone: "
                  f"{result['mic_streams_while_idle']}, links to it: {result.get('mic_links_while_idle', '-')}")
        each = ", ".join(fmt(v, "", 0).strip() for v in result["resume_ms_each"])
        print(f"  resume: first sound {fmt(result['resume_ms'], 'ms', 0)} (median; each: {each} ms) after a program "
              "is launched to record quietmic (its start-up included; silence before it)")
        print(f"  reconnect after the microphone came back  {fmt(result['reconnect_seconds'], 's', 2)} "
              f"(audio through the virtual microphone again after {fmt(result['audio_back_seconds'], 's', 2)})")
        print(f"  drift over {result['drift_minutes']:g} min  {fmt(result['drift_ms'], 'ms', 2)} max - min, "
              f"creep {fmt(result['creep_ms'], 'ms', 2)} (last fifth - first fifth) "
              f"({len(result['drift_series_ms'])} bursts, {result['bursts_lost']} lost)")
        print(f"  CPU while streaming  {fmt(result['cpu_percent_average'], '% of one core')} average; "
              f"xruns during the drift run {result['xruns_during_drift']}")
        if result.get("soak_minutes"):
            print(f"  xrun soak  {result['xruns_soak']} in {result['soak_minutes']:g} min, "
                  f"{result['xruns_soak_cpu_stress']} in {result['soak_minutes']:g} min with a CPU-stress process")
        memory = result["service_memory_mb"]
        print(f"  memory of the service  private (USS) {memory['uss']:.1f} MiB, PSS {memory['pss']:.1f} MiB, "
              f"peak RSS {memory['peak_rss']:.1f} MiB")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
