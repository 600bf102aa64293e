"""The virtual microphone's delay inside the PipeWire graph, sample-exact: one JACK client records both sides.

    python -m benchmarks.pipewire_probe [--seconds 5] [--play IN.npy --out OUT.npy]   (in a PipeWire server's environment)

A probe client on PipeWire's JACK API (:mod:`realtime.live.pipewire_jack`) plays
voiced bursts, one a second, into the test microphone's sink and, in the same
callbacks, records the test microphone (input 0) and the virtual microphone
"quietmic" (input 1). Both recordings share the probe's clock and buffering, so the
lag of each burst on input 1 minus its lag on input 0 is quietmic's delay, to the
sample. (Two pipewire-pulse probe streams, one per source, differ by their own
buffering, which varies by a quantum or more from stream to stream: on PipeWire
that swamps the figure.)

The probe is a JACK link, not a recording stream: quietmic streams only while a
program records "quietmic" (the caller keeps one recording). It runs in a
process of its own because pipewire-jack must be loaded before PortAudio.
``--play`` plays a signal of the caller's instead and writes both recordings
(the tests compare the virtual microphone's with file mode's output).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

import numpy as np

from benchmarks.live_delay import delay_by_correlation, voiced_burst
from benchmarks.pulse_server import MIC_SINK, MIC_SOURCE
from realtime.desktop import pipewire_mic
from realtime.desktop.virtual_mic import SOURCE_NAME
from realtime.live.pipewire_jack import use_pipewire_jack
from realtime.live.portaudio_scan import name_jack_client, sounddevice

RATE = 48000
LATENCY_FRAMES = 480
"""The latency the probe asks PipeWire for (quietmic's block: it does not lower the quantum below quietmic's)."""
CLIENT_NAME = "quietmic-delay-probe"
INTERVAL_SECONDS = 1.0
MAX_LAG_SECONDS = 0.4
MIN_CORRELATION = 0.5
LINK_SETTLE_SECONDS = 1.0
"""Silence played after the links are made, before the first burst."""


def _device() -> int:
    """A JACK device with two inputs and an output: any will do, as :func:`_relink` makes the probe's links
    (PortAudio's own, made at the start, carry the probe's silence until then)."""
    sd = sounddevice()
    for index, info in enumerate(sd.query_devices()):
        if ("JACK" in sd.query_hostapis(info["hostapi"])["name"] and info["max_input_channels"] >= 2
                and info["max_output_channels"] >= 1):
            return index
    raise RuntimeError("no JACK device with two inputs and an output on this PipeWire server")


def _relink(through: str = SOURCE_NAME) -> None:
    """Probe output -> the test microphone's sink; the test microphone -> in_0, ``through`` -> in_1; nothing else."""
    outs, ins = pipewire_mic.output_ports(CLIENT_NAME), pipewire_mic.input_ports(CLIENT_NAME)
    wanted = {(outs[0], pipewire_mic.input_ports(MIC_SINK)[0]),
              (pipewire_mic.capture_ports(MIC_SOURCE)[0], ins[0]),
              (pipewire_mic.output_ports(through)[0], ins[1])}
    current = set(pipewire_mic.links(CLIENT_NAME))
    for pair in current - wanted:
        pipewire_mic._pw_link("--disconnect", *pair)
    for pair in wanted - current:
        pipewire_mic._pw_link(*pair)


def burst_lags(played: np.ndarray, recorded: np.ndarray) -> list[int | None]:
    """Lag (samples) of each second's burst of ``played`` in ``recorded`` (None: not found)."""
    interval, max_lag = int(INTERVAL_SECONDS * RATE), int(MAX_LAG_SECONDS * RATE)
    lags: list[int | None] = []
    for start in range(0, len(played) - interval - max_lag + 1, interval):
        lag, correlation = delay_by_correlation(played[start: start + interval],
                                                recorded[start: start + interval + max_lag], max_lag)
        lags.append(lag if correlation >= MIN_CORRELATION else None)
    return lags


def play_and_record(signal: np.ndarray, through: str = SOURCE_NAME) -> np.ndarray:
    """Play ``signal`` into the test microphone; what the microphone (column 0) and ``through`` (column 1)
    carried meanwhile, sample-aligned with ``signal`` and as long (after :data:`LINK_SETTLE_SECONDS` of
    silence while the links are made, left out)."""
    use_pipewire_jack(LATENCY_FRAMES, RATE)
    name_jack_client(CLIENT_NAME)
    sd = sounddevice()
    settle = int(LINK_SETTLE_SECONDS * RATE)
    played = np.concatenate([np.zeros(settle, dtype=np.float32), signal.astype(np.float32)])
    recorded = np.zeros((len(played), 2), dtype=np.float32)
    position = [0]
    started = [False]

    def callback(indata: np.ndarray, outdata: np.ndarray, frames: int, _time: object, _status: object) -> None:
        if not started[0]:
            outdata[:] = 0.0
            return
        start = position[0]
        n = max(0, min(frames, len(played) - start))
        outdata[:n, 0] = played[start: start + n]
        outdata[n:] = 0.0
        recorded[start: start + n] = indata[:n, :2]
        position[0] = start + n

    with sd.Stream(samplerate=RATE, blocksize=0, device=_device(), channels=(2, 1), dtype="float32",
                   callback=callback):
        _relink(through)
        started[0] = True
        while position[0] < len(played):
            time.sleep(0.1)
    return recorded[settle:]


def measure(seconds: float, through: str = SOURCE_NAME) -> dict[str, object]:
    """Play ``seconds`` of bursts; quietmic's delay (median over the bursts found on both inputs), in ms."""
    interval = int(INTERVAL_SECONDS * RATE)
    bursts = int(seconds)
    played = np.zeros((bursts + 1) * interval, dtype=np.float32)
    burst = voiced_burst(RATE)
    for k in range(bursts):
        played[k * interval: k * interval + len(burst)] = burst
    recorded = play_and_record(played, through)
    direct = burst_lags(played, recorded[:, 0])
    through_lags = burst_lags(played, recorded[:, 1])
    pairs = [b - a for a, b in zip(direct, through_lags) if a is not None and b is not None]
    return {"delay_ms": 1000.0 * float(np.median(pairs)) / RATE if pairs else None,
            "delay_ms_each": [1000.0 * p / RATE for p in pairs], "bursts": bursts,
            "bursts_lost": bursts - len(pairs)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="bursts to play (one a second)")
    parser.add_argument("--through", default=SOURCE_NAME, help="the node whose first output port is measured")
    parser.add_argument("--play", metavar="IN.npy", help="play this float32 signal instead of bursts, and ...")
    parser.add_argument("--out", metavar="OUT.npy", help="... write what the two inputs recorded here (n x 2)")
    args = parser.parse_args(argv)
    if args.play:
        np.save(args.out, play_and_record(np.load(args.play), args.through))
        return 0
    print(json.dumps(measure(args.seconds, args.through)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
