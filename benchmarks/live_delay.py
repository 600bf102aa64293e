"""End-to-end delay, xruns and memory of a live ``quietmic run`` process on a JACK server.

:func:`measure_live` starts a JACK server (dummy driver: real-time pace, no
sound card; period = the block size), a ``quietmic run`` process pinned to one
core, a do-nothing pass-through client (:mod:`benchmarks.jack_passthrough`)
and a probe client in this process, and wires them::

    probe:out_0 -> quietmic:in_0      quietmic:out_0 -> probe:in_0       (through quietmic)
    probe:out_1 -> passthrough:in_0   passthrough:out_0 -> probe:in_1    (reference)

The probe plays the same vowel-like burst on both outputs once per interval and
records both inputs; the lag of channel 0 behind channel 1 is quietmic's own
delay from its input port to its output port: framing, lookahead, block
buffering and the hand-over between its audio callback and its worker. The
reference path cancels what the server charges for any client in a chain (a
JACK client's output reaches the next client one period later; a pass-through
client costs exactly that). That charge is measured too, before quietmic is
wired in, with the reference path against a direct wire::

    probe:out_0 -> passthrough:in_0   passthrough:out_0 -> probe:in_0
    probe:out_1 -> probe:in_1

so quietmic's own delay plus this client hop is what inserting quietmic costs a
user on this server.

Bursts rather than clicks: a denoiser may rightly remove a click, but it keeps
a voiced sound. The lag is the peak of the cross-correlation of the two
channels. A mask model multiplies each STFT frame by real, non-negative gains,
a zero-phase filter, so the correlation still peaks at the true lag; the
identity model gives the same lag with a correlation of 1.

Xruns are counted in the measurement window (after the wiring has settled):
quietmic's own counters (input overflows, output underflows, late blocks; read
through ``quietmic run --summary-json`` and SIGUSR1) and the server's xrun
reports.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import fft as sp_fft
from scipy import signal as sp_signal

from benchmarks.cpu_stress import CpuStress
from benchmarks.jack_server import JackServer, jack_device_index, list_ports, wait_for_new_client, wire
from benchmarks.machine import pin_child, process_memory_mb

log = logging.getLogger(__name__)

BURST_SECONDS = 0.4
"""Length of one probe burst."""
BURST_LEVEL = 0.3
"""Peak level of a burst (full scale 1), a loud-ish voice."""
F0_HZ = (110.0, 180.0)
"""Pitch glide of the burst (start, end); a glide keeps the correlation from locking onto a pitch period."""
FORMANTS_HZ = ((730.0, 80.0), (1090.0, 90.0), (2440.0, 120.0))
"""(centre, bandwidth) of the burst's formant resonators: an /a/ vowel."""
BURST_TAPER = 0.25
"""Fraction of the burst spent fading in and out (Tukey window)."""
MIN_CORRELATION = 0.5
"""A burst whose normalised correlation peak is below this counts as lost."""
MAX_DELAY_SECONDS = 0.3
"""Longest delay searched for."""
DEFAULT_INTERVAL_SECONDS = 1.0
"""One burst, hence one delay sample, per interval."""
SETTLE_SECONDS = 2.0
"""Measurement starts this long after the wiring (quietmic's hand-over settles in its first 0.5 s)."""
CALIBRATION_BURSTS = 2
"""Bursts timed for the server's client hop."""
STOP_TIMEOUT_SECONDS = 15.0
SNAPSHOT_TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 0.1


def voiced_burst(sample_rate: int, seconds: float = BURST_SECONDS, level: float = BURST_LEVEL) -> np.ndarray:
    """A synthetic vowel: a glottal pulse train with a pitch glide through three formants, float32."""
    n = int(sample_rate * seconds)
    f0 = np.linspace(F0_HZ[0], F0_HZ[1], n)
    cycles = np.cumsum(f0 / sample_rate)
    voice = np.diff(np.floor(cycles), prepend=0.0)  # a unit pulse at the start of each pitch period
    for centre, bandwidth in FORMANTS_HZ:
        radius = np.exp(-np.pi * bandwidth / sample_rate)
        angle = 2.0 * np.pi * centre / sample_rate
        voice = sp_signal.lfilter([1.0 - radius], [1.0, -2.0 * radius * np.cos(angle), radius**2], voice)
    voice *= sp_signal.windows.tukey(n, BURST_TAPER)
    return (level * voice / np.abs(voice).max()).astype(np.float32)


def delay_by_correlation(reference: np.ndarray, delayed: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag (samples, 0..max_lag) of ``delayed`` behind ``reference`` and the normalised correlation there."""
    size = sp_fft.next_fast_len(len(reference) + len(delayed))
    spectrum = sp_fft.rfft(delayed, size) * np.conj(sp_fft.rfft(reference, size))
    correlation = sp_fft.irfft(spectrum, size)[: max_lag + 1]
    lag = int(np.argmax(correlation))
    energy = float(np.sqrt(np.dot(reference, reference) * np.dot(delayed, delayed)))
    return lag, float(correlation[lag] / energy) if energy > 0 else 0.0


@dataclass(frozen=True)
class DelaySample:
    """One burst's measurement."""

    seconds: float
    """When the burst was played, in seconds since the probe started."""
    delay: int | None
    """Lag of quietmic's output behind its input, in samples (None: burst lost)."""
    correlation: float


class DelayProbe:
    """The probe client: plays a burst per interval on two outputs, records two inputs.

    The audio callback only copies numbers (plays the pattern, queues the input);
    :meth:`collect` finds the delays outside it.
    """

    def __init__(self, sample_rate: int, block: int, device: int, interval_seconds: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.sample_rate = sample_rate
        self.block = block
        self.device = device
        self.interval = int(interval_seconds * sample_rate)
        burst = voiced_burst(sample_rate)
        if len(burst) + 2 * int(MAX_DELAY_SECONDS * sample_rate) > self.interval:
            raise ValueError(f"interval of {interval_seconds} s is too short for a burst and its delay")
        pattern = np.zeros(self.interval, dtype=np.float32)
        pattern[: len(burst)] = burst
        self._pattern = np.concatenate([pattern] * (2 + block // self.interval))
        self._played = 0
        self._queue: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self.status_flags = 0
        """Callbacks the audio server flagged (over/underflow): the probe's own glitches."""
        self._recording = np.zeros((0, 2), dtype=np.float32)
        self._recording_start = 0  # stream sample index of self._recording[0]
        self._next_interval = 0
        self._stream: Any = None

    @property
    def played(self) -> int:
        """Samples played so far."""
        return self._played

    def _callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        start = self._played % self.interval
        outdata[:, 0] = self._pattern[start : start + frames]
        outdata[:, 1] = outdata[:, 0]
        self._played += frames
        self._queue.put(indata.copy())
        if status:
            self.status_flags += 1

    def start(self) -> None:
        from realtime.live.portaudio_scan import sounddevice

        sd = sounddevice()

        self._stream = sd.Stream(
            samplerate=self.sample_rate,
            blocksize=self.block,
            device=(self.device, self.device),
            channels=2,
            dtype="float32",
            callback=self._callback,
        )
        self._stream.start()

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    def skip_until(self, sample: int) -> None:
        """Do not measure bursts played before stream sample ``sample``."""
        self._next_interval = max(self._next_interval, -(-sample // self.interval))

    def collect(self, seconds: float, on_sample: Callable[[DelaySample], None] | None = None) -> list[DelaySample]:
        """Keep recording for ``seconds``; the delay of every burst whose interval was recorded meanwhile."""
        deadline = time.monotonic() + seconds
        samples: list[DelaySample] = []
        max_lag = int(MAX_DELAY_SECONDS * self.sample_rate)
        while time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            blocks = []
            while not self._queue.empty():
                blocks.append(self._queue.get())
            if blocks:
                self._recording = np.concatenate([self._recording, *blocks])
            while True:
                begin = self._next_interval * self.interval - self._recording_start
                end = begin + self.interval
                if end > len(self._recording):
                    break
                if begin >= 0:
                    window = self._recording[begin:end]
                    lag, corr = delay_by_correlation(window[:, 1], window[:, 0], max_lag)
                    sample = DelaySample(
                        seconds=self._next_interval * self.interval / self.sample_rate,
                        delay=lag if corr >= MIN_CORRELATION else None,
                        correlation=corr,
                    )
                    samples.append(sample)
                    if on_sample is not None:
                        on_sample(sample)
                self._next_interval += 1
            keep_from = max(0, min(len(self._recording), self._next_interval * self.interval - self._recording_start))
            self._recording = self._recording[keep_from:]
            self._recording_start += keep_from
        return samples

    def check_alive(self) -> None:
        """The probe runs in this process: nothing to check."""

    def __enter__(self) -> DelayProbe:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ClientProcess:
    """An audio client in a child process (optionally pinned to ``cpu``); its output goes to a log file."""

    def __init__(self, command: list[str], cpu: int | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="quietmic-bench-")
        self.log_path = Path(self._dir.name) / "client.log"
        self.command = command
        self.cpu = cpu
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "wb") as log_file:
            self._process = subprocess.Popen(self.command, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=pin_child(self.cpu))

    def check_alive(self) -> None:
        """Raise with the client's own messages if it has exited."""
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"{' '.join(self.command[:4])} exited: {self.log_path.read_text(errors='replace')[-1500:]}")

    def stop(self) -> str:
        """Stop it as a user would (Ctrl-C); returns what it printed."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGINT)
                try:
                    self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        self._dir.cleanup()
        return text

    def __enter__(self) -> ClientProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PassThroughProcess(ClientProcess):
    """:mod:`benchmarks.jack_passthrough` on the JACK device: the reference client."""

    def __init__(self, sample_rate: int, block: int, device: int) -> None:
        super().__init__(
            [sys.executable, "-m", "benchmarks.jack_passthrough", "--rate", str(sample_rate), "--block", str(block),
             "--device", str(device)]
        )


class QuietmicProcess(ClientProcess):
    """A ``quietmic run`` process on the JACK device, pinned to ``cpu``; counters via SIGUSR1."""

    def __init__(self, model: str | Path, sample_rate: int, block: int, device: int, cpu: int | None) -> None:
        self._summary_dir = tempfile.TemporaryDirectory(prefix="quietmic-bench-")
        self.summary_path = Path(self._summary_dir.name) / "summary.json"
        super().__init__(
            [
                sys.executable, "-m", "realtime", "run", "--model", str(model), "--sample-rate", str(sample_rate),
                "--block-size", str(block), "--input-device", str(device), "--output-device", str(device),
                "--summary-json", str(self.summary_path),
            ],
            cpu,
        )

    def snapshot(self) -> dict[str, Any]:
        """quietmic's counters now (it writes them on SIGUSR1)."""
        self.check_alive()
        self.summary_path.unlink(missing_ok=True)
        assert self._process is not None
        self._process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT_SECONDS
        while not self.summary_path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("quietmic run did not answer SIGUSR1 with its summary")
            time.sleep(0.02)
        return json.loads(self.summary_path.read_text())

    def memory_mb(self) -> dict[str, float]:
        """Peak RSS, PSS and private memory (USS) of the process now, in MiB (:func:`benchmarks.machine.process_memory_mb`)."""
        assert self._process is not None
        return process_memory_mb(self._process.pid)

    def stop(self) -> str:
        text = super().stop()
        self._summary_dir.cleanup()
        return text


@dataclass
class LiveResult:
    """One live run: delays over time, glitches, memory."""

    sample_rate: int
    block: int
    loaded: bool
    seconds: float
    stated_latency_ms: float
    """quietmic's own delay by its arithmetic: Enhancer latency + hand-over (no audio-server part)."""
    client_hop_ms: float | None
    """What the server charges for one more client in a chain (pass-through against a direct wire)."""
    delays: list[DelaySample] = field(default_factory=list)
    xruns: int = 0
    """quietmic's input overflows + output underflows + late blocks in the window."""
    server_xruns: int = 0
    probe_glitches: int = 0
    rss_mb: float = 0.0
    """Peak RSS (counts shared pages: JACK's shared memory, libraries)."""
    uss_mb: float = 0.0
    """Private memory at the end of the window: what the process alone costs."""
    pss_mb: float = 0.0
    quietmic_summary: dict[str, Any] = field(default_factory=dict)
    """quietmic's own figures at the end of the window (``quietmic run --summary-json``)."""

    def delays_ms(self) -> list[float]:
        return [1000.0 * s.delay / self.sample_rate for s in self.delays if s.delay is not None]

    @property
    def lost(self) -> int:
        return sum(1 for s in self.delays if s.delay is None)

    def summary(self) -> dict[str, Any]:
        ms = self.delays_ms()
        return {
            "sample_rate": self.sample_rate,
            "block": self.block,
            "loaded": self.loaded,
            "seconds": self.seconds,
            "stated_latency_ms": round(self.stated_latency_ms, 3),
            "client_hop_ms": None if self.client_hop_ms is None else round(self.client_hop_ms, 3),
            "e2e_latency_ms": round(float(np.median(ms)), 3) if ms else None,
            "e2e_latency_ms_min": round(min(ms), 3) if ms else None,
            "e2e_latency_ms_max": round(max(ms), 3) if ms else None,
            "bursts": len(self.delays),
            "bursts_lost": self.lost,
            "min_correlation": round(min((s.correlation for s in self.delays), default=0.0), 3),
            "xruns": self.xruns,
            "server_xruns": self.server_xruns,
            "probe_glitches": self.probe_glitches,
            "rss_mb": round(self.rss_mb, 1),
            "uss_mb": round(self.uss_mb, 1),
            "pss_mb": round(self.pss_mb, 1),
            "quietmic": self.quietmic_summary,
        }


def measure_live(
    model: str | Path,
    sample_rate: int,
    block: int,
    seconds: float,
    *,
    loaded_seconds: float = 0.0,
    quietmic_cpu: int | None = None,
    stress_cpu: int | None = None,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    on_sample: Callable[[DelaySample], None] | None = None,
) -> list[LiveResult]:
    """Run ``quietmic run`` on a fresh JACK server: ``seconds`` of measurement on an idle machine, then
    ``loaded_seconds`` (if any) while a :class:`~benchmarks.cpu_stress.CpuStress` keeps ``stress_cpu`` busy.

    Returns one result per window (idle, then loaded).
    """
    with JackServer(sample_rate, block) as server:
        server_name = server.name
        device = jack_device_index()
        if device is None:
            raise RuntimeError("PortAudio sees no JACK device; is libportaudio2 built with JACK support?")
        with contextlib.ExitStack() as stack:
            p = _start_client(stack, PassThroughProcess(sample_rate, block, device), server_name)
            quietmic = QuietmicProcess(model, sample_rate, block, device, quietmic_cpu)
            q = _start_client(stack, quietmic, server_name)
            probe = DelayProbe(sample_rate, block, device, interval_seconds)
            c = _start_client(stack, probe, server_name)
            # The server's charge for one more client: pass-through path against a direct wire.
            wire([(f"{c}:out_0", f"{p}:in_0"), (f"{p}:out_0", f"{c}:in_0"), (f"{c}:out_1", f"{c}:in_1")], server_name)
            probe.skip_until(probe.played + int(SETTLE_SECONDS * sample_rate))
            hops = [s.delay for s in probe.collect(SETTLE_SECONDS + CALIBRATION_BURSTS * interval_seconds)]
            client_hop = _agreed_delay(hops)
            wire(
                [
                    (f"{c}:out_0", f"{q}:in_0"),
                    (f"{q}:out_0", f"{c}:in_0"),
                    (f"{c}:out_1", f"{p}:in_0"),
                    (f"{p}:out_0", f"{c}:in_1"),
                ],
                server_name,
            )

            def window(length: float, loaded: bool) -> LiveResult:
                probe.skip_until(probe.played + int(SETTLE_SECONDS * sample_rate))
                probe.collect(SETTLE_SECONDS)
                first = quietmic.snapshot()
                server_first, glitches_first = server.xruns(), probe.status_flags
                delays = probe.collect(length, on_sample)
                last = quietmic.snapshot()
                return LiveResult(
                    sample_rate=sample_rate,
                    block=block,
                    loaded=loaded,
                    seconds=length,
                    stated_latency_ms=float(last["enhancer_latency_ms"]) + float(last["handover_ms"]),
                    client_hop_ms=None if client_hop is None else 1000.0 * client_hop / sample_rate,
                    delays=delays,
                    xruns=int(last["xruns"]) - int(first["xruns"]),
                    server_xruns=server.xruns() - server_first,
                    probe_glitches=probe.status_flags - glitches_first,
                    rss_mb=(memory := quietmic.memory_mb())["peak_rss"],
                    uss_mb=memory["uss"],
                    pss_mb=memory["pss"],
                    quietmic_summary=last,
                )

            results = [window(seconds, loaded=False)]
            if loaded_seconds > 0:
                with CpuStress(stress_cpu):
                    results.append(window(loaded_seconds, loaded=True))
    return results


def _agreed_delay(delays: list[int | None]) -> int | None:
    """The delay every measurement agrees on, or None (lost or inconsistent bursts)."""
    found = {d for d in delays if d is not None}
    return found.pop() if len(found) == 1 and None not in delays else None


def _start_client(stack: contextlib.ExitStack, client: Any, server_name: str) -> str:
    """Start ``client`` (stopped when ``stack`` closes); its JACK client name once its ports exist."""
    before = list_ports(server_name)
    stack.enter_context(client)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while True:
        client.check_alive()
        try:
            return wait_for_new_client(before, server_name, timeout=1.0)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
