"""A do-nothing audio client: copies its input to its output in the audio callback.

    python -m benchmarks.jack_passthrough --rate 48000 --block 480 [--device N]

Run beside ``quietmic run`` on the same JACK server, it is the reference for
what any extra client in the chain costs (the server's hop from one client to
the next), so that a measurement can tell quietmic's own delay apart from it.
Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, required=True, help="sample rate in Hz (the server's)")
    parser.add_argument("--block", type=int, required=True, help="block size in samples")
    parser.add_argument("--device", type=int, help="PortAudio device index (default: the default device)")
    args = parser.parse_args()

    from realtime.live.portaudio_scan import sounddevice

    sd = sounddevice()

    def copy(indata: np.ndarray, outdata: np.ndarray, _frames: int, _time: Any, _status: Any) -> None:
        outdata[:] = indata

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with sd.Stream(
        samplerate=args.rate, blocksize=args.block, device=args.device, channels=1, dtype="float32", callback=copy
    ):
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
