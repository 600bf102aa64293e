"""The live path through a real sounddevice stream on a JACK server (dummy driver).

quietmic's output port is connected back to its input port. A pulse played at
a known sample returns once after the server's own loop, then again after going
through quietmic: the gap between the two returns is the real input-to-output
delay, which must match what quietmic states within one block.

``.ci/run`` starts ``jackd --no-realtime -d dummy -r 48000 -p 480`` and sets
QUIETMIC_REQUIRE_JACK=1, so there a missing server fails instead of skipping.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from realtime.enhancer import Enhancer
from realtime.latency_probe import LoopbackProbe
from realtime.live import LiveProcessor

JACK_RATE = 48000
"""The rate .ci/run starts the JACK server at."""

RUN_SECONDS = 5.0
PULSE_SECONDS = (1.0, 2.5, 4.0)
MAX_DELAY_SECONDS = 0.3
PORT_WAIT_SECONDS = 5.0

pytestmark = pytest.mark.audio_server


def _jack_running() -> bool:
    try:
        answer = subprocess.run(["jack_wait", "-c"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return answer.strip() == "running"


@pytest.fixture
def jack_device() -> int:
    """Index of the JACK device; skips (or fails under CI) without a server."""
    import sounddevice as sd

    if not _jack_running():
        if os.environ.get("QUIETMIC_REQUIRE_JACK"):
            pytest.fail("no JACK server is running; .ci/run should have started one")
        pytest.skip("no JACK server running (start: jackd --no-realtime -d dummy -r 48000 -p 480 &)")
    sd._terminate()  # PortAudio lists host APIs at initialisation: re-scan to see the server
    sd._initialize()
    for api in sd.query_hostapis():
        if "JACK" in api["name"] and api["default_input_device"] >= 0:
            return int(api["default_input_device"])
    pytest.fail("a JACK server runs but PortAudio has no JACK device; is libportaudio2 built with JACK?")


def _connect_loopback() -> None:
    """Wire our output port 0 to our input port 0 instead of the dummy capture port."""
    deadline = time.monotonic() + PORT_WAIT_SECONDS
    while True:
        ports = subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split()
        outs = [p for p in ports if p.startswith("PortAudio") and p.endswith(":out_0")]
        ins = [p for p in ports if p.startswith("PortAudio") and p.endswith(":in_0")]
        if outs and ins:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"quietmic's JACK ports did not appear; ports: {ports}")
        time.sleep(0.05)
    assert len(outs) == 1 and len(ins) == 1, f"several PortAudio clients on the server: {outs} {ins}"
    subprocess.run(["jack_disconnect", "system:capture_1", ins[0]], capture_output=True)
    subprocess.run(["jack_connect", outs[0], ins[0]], check=True, capture_output=True)


@pytest.mark.parametrize("block", [480, 256])
def test_impulse_returns_after_stated_latency_without_xruns(reference_model, jack_device: int, block: int) -> None:
    enhancer = Enhancer(reference_model("identity", 48000, "float32"), JACK_RATE, block_size=block)
    pulses = [int(s * JACK_RATE) for s in PULSE_SECONDS]
    probe = LoopbackProbe(
        JACK_RATE, pulses, record_samples=int(RUN_SECONDS * JACK_RATE), max_delay=int(MAX_DELAY_SECONDS * JACK_RATE)
    )
    processor = LiveProcessor(enhancer, block, input_device=jack_device, output_device=jack_device, tap=probe)
    with processor:
        _connect_loopback()
        time.sleep(RUN_SECONDS + 0.2)
    results = probe.results()
    stated = processor.stated_latency
    delays = [r.delay for r in results]
    assert all(d is not None for d in delays), f"a pulse did not come back: {results}"
    for delay in delays:
        assert abs(delay - stated) <= block, f"measured {delays} samples, stated {stated}"
    assert len(set(delays)) == 1, f"the delay changed while running: {delays}"
    counters = processor.counters
    assert counters.callbacks >= RUN_SECONDS * JACK_RATE / block * 0.9
    assert counters.xruns == 0, f"xruns counted: {processor.summary()}"
    print(f"block {block}: measured {delays[0]} samples, stated {stated}; {processor.summary()}")
