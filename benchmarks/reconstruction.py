"""Reconstruction error of the engine with the identity model (mask = 1).

    python -m benchmarks.reconstruction [--model identity.tflite]

Runs noise-plus-tones audio through the Enhancer at 16, 44.1 and 48 kHz with
several block sizes (including ones that do not divide the hop) and prints the
largest absolute difference between the output and the input delayed by the
stated latency. Without ``--model`` the float32 identity reference model is
exported to a temporary file (needs the ``[export]`` extra).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.hop_cost import noise_and_tones
from realtime.enhancer import Enhancer

RATES = (16000, 44100, 48000)
BLOCKS = (1, 64, 160, 441, 480, 1000)
SECONDS = 2.0


def reconstruction_error(model: str | Path, rate: int, block: int) -> tuple[float, int]:
    """(max |output - delayed input|, latency in samples) for one rate and block size."""
    enhancer = Enhancer(model, rate)
    signal = noise_and_tones(rate, SECONDS)
    out = np.concatenate([enhancer.process(signal[i : i + block]) for i in range(0, len(signal), block)])
    latency = enhancer.latency
    return float(np.max(np.abs(out[latency:] - signal[: len(signal) - latency]))), latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="identity model file; default: export the float32 identity reference")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from benchmarks.loopback import export_identity

            model = export_identity(16000, Path(tmp))
        print(f"{'rate':>6} {'block':>6} {'latency':>8} {'max abs error':>14}")
        for rate in RATES:
            for block in BLOCKS:
                error, latency = reconstruction_error(model, rate, block)
                print(f"{rate:>6} {block:>6} {latency:>8} {error:>14.3e}")


if __name__ == "__main__":
    main()
