"""Input-to-output delay through a real audio server, output looped back to input.

    python -m benchmarks.loopback [--model F] [--rate 48000] [--blocks 64 128 256 480] [--seconds 10]

For each block size it starts a JACK server (dummy driver, period = block
size), runs quietmic's live processor on it with its output port wired to its
input port, plays pulses and times their returns (see
:mod:`benchmarks.latency_probe`), and prints the measured delay against the delay
quietmic states, plus the xruns counted. Without ``--model`` the identity
reference model is exported to a temporary file (needs the ``[export]`` extra):
a pulse passes it unchanged; a denoising model may remove a pulse.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.jack_server import JackServer, connect_loopback, jack_device_index
from realtime.enhancer import Enhancer
from benchmarks.latency_probe import LoopbackProbe
from realtime.live.processor import LiveProcessor

PULSE_INTERVAL_SECONDS = 1.0
FIRST_PULSE_SECONDS = 1.0
MAX_DELAY_SECONDS = 0.3


def measure_loopback(model: str | Path, sample_rate: int, block: int, seconds: float) -> dict[str, Any]:
    """Run the live path for ``seconds`` on a fresh JACK server; returns delays and counters."""
    pulses = [
        int(t * sample_rate)
        for t in _arange(FIRST_PULSE_SECONDS, seconds - MAX_DELAY_SECONDS, PULSE_INTERVAL_SECONDS)
    ]
    probe = LoopbackProbe(sample_rate, pulses, int(seconds * sample_rate), int(MAX_DELAY_SECONDS * sample_rate))
    with JackServer(sample_rate, block) as server:
        device = jack_device_index()
        if device is None:
            raise RuntimeError("PortAudio sees no JACK device; is libportaudio2 built with JACK support?")
        enhancer = Enhancer(model, sample_rate, block_size=block)
        processor = LiveProcessor(enhancer, input_device=device, output_device=device, tap=probe)
        with processor:
            connect_loopback(server.name)
            time.sleep(seconds + 0.1)
    delays = [r.delay for r in probe.results()]
    measured = [d for d in delays if d is not None]
    to_ms = 1000.0 / sample_rate
    return {
        "sample_rate": sample_rate,
        "block": block,
        "stated_ms": processor.stated_latency * to_ms,
        "enhancer_ms": enhancer.latency * to_ms,
        "handover_ms": processor.handover_latency * to_ms,
        "audio_api_ms": (processor.stream_latency[0] + processor.stream_latency[1]) * 1000.0,
        "measured_ms": [d * to_ms for d in measured],
        "pulses_lost": len(delays) - len(measured),
        "xruns": processor.counters.xruns,
        "summary": processor.summary(),
    }


def _arange(start: float, stop: float, step: float) -> list[float]:
    values, value = [], start
    while value < stop:
        values.append(value)
        value += step
    return values


def export_identity(sample_rate: int, directory: Path) -> Path:
    """The float32 identity reference model at ``sample_rate`` in ``directory`` (needs the ``[export]`` extra).

    Raises ``subprocess.CalledProcessError`` when the export fails.
    """
    path = directory / f"identity-{sample_rate}.tflite"
    subprocess.run(
        [sys.executable, "-m", "model_export", "reference", "identity", "--sample-rate", str(sample_rate),
         "--quantization", "float32", "-o", str(path)],
        check=True, capture_output=True,
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file; default: the identity reference model")
    parser.add_argument("--rate", type=int, default=48000, help="sample rate in Hz")
    parser.add_argument("--blocks", type=int, nargs="+", default=[64, 128, 256, 480], help="block sizes (samples)")
    parser.add_argument("--seconds", type=float, default=10.0, help="run time per block size")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or export_identity(args.rate, Path(tmp))
        results = [measure_loopback(model, args.rate, block, args.seconds) for block in args.blocks]
    print(f"{'block':>6} {'stated ms':>10} {'measured ms (min/max)':>22} {'lost':>5} {'xruns':>6}   parts (enhancer + hand-over + audio API)")
    for r in results:
        span = f"{min(r['measured_ms']):.2f}/{max(r['measured_ms']):.2f}" if r["measured_ms"] else "-"
        print(
            f"{r['block']:>6} {r['stated_ms']:>10.2f} {span:>22} {r['pulses_lost']:>5} {r['xruns']:>6}   "
            f"{r['enhancer_ms']:.2f} + {r['handover_ms']:.2f} + {r['audio_api_ms']:.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
