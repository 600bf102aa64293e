"""The virtual microphone on PipeWire through PipeWire's JACK API (pipewire-jack), and what it relies on.

On a private PipeWire server (:mod:`benchmarks.pipewire_server`) ``quietmic start``
(``--backend auto``) takes the pipewire-jack path: the enhanced signal comes out of
"quietmic" (recorded by a JACK probe, :mod:`benchmarks.pipewire_probe`, whose
real-time thread does not lose quanta as a pipewire-pulse probe does on a loaded
machine), quietmic's node is linked to the microphone and the virtual source and
nothing else (never the speakers), and while nobody records it holds no port at
all (the microphone is released). Without a server: the path's choice and the
processor's callbacks of the server's period. Nothing here asserts a time: the
service is waited for with generous limits (``.ci/run`` installs pipewire-jack).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from math import gcd
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest

from benchmarks.pulse_probe import lag_and_correlation, listening, windowed_correlations
from benchmarks.pulse_server import MIC_SINK, MIC_SOURCE, SPEAKERS
from benchmarks.virtual_mic import Quietmic
from realtime.arrays import enhance_signal
from realtime.config import DEFAULT_ATTEN_LIM_DB
from realtime.desktop import pipewire_mic, virtual_mic
from realtime.desktop.pipewire_mic import CLIENT_NAME, PipeWireJackMic
from realtime.desktop.virtual_mic import SOURCE_NAME, PulseVirtualMic
from realtime.enhancer import Enhancer
from realtime.errors import DeviceError
from realtime.live import pipewire_jack
from realtime.live.processor import LiveProcessor
from test_virtual_mic import (BLOCK, CLOSER, IDLE_LIMIT_SECONDS, MATCH, MATCHED_FRACTION, MAX_LAG, RATE,
                              RECONNECT_LIMIT_SECONDS, SLIP, WINDOW, _follow_the_microphone_and_the_server,
                              noisy_speech, pulse, quietmic, status)

__all__ = ["pulse"]  # the fixture, shared with test_virtual_mic

JACK_PATH = pipewire_mic.PATH_NAME
SIGNAL_TRIES = 3
"""Recordings before the signal is said not to match file mode: on a loaded 2-core machine a late block now and
then spoils a stretch or two of one recording (one run matched 17 stretches of 19); a wrong signal fails every try."""
PROBE_TIMEOUT_SECONDS = 120


def _needs_pipewire_jack() -> None:
    if pipewire_jack.find_libjack() is None or shutil.which("pipewire-pulse") is None:
        if os.environ.get("QUIETMIC_REQUIRE_PULSE"):
            pytest.fail("pipewire-jack is not installed; .ci/run installs it")
        pytest.skip("pipewire-jack (and pipewire-pulse) not installed: apt-get install pipewire-jack pipewire-pulse")


def _streaming() -> None:
    Quietmic({}).wait_until(lambda s: s["state"] == "running" and s["input"] == MIC_SOURCE,
                            RECONNECT_LIMIT_SECONDS, "streaming for the listener")


def _eventually(condition: Callable[[], bool]) -> bool:
    """Whether ``condition()`` holds within :data:`RECONNECT_LIMIT_SECONDS` (the service links its ports right
    after its stream starts, and they go as it closes)."""
    deadline = time.monotonic() + RECONNECT_LIMIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _probe(signal: np.ndarray, tmp_path: Path) -> np.ndarray:
    """What the microphone (column 0) and "quietmic" (column 1) carried while ``signal`` played into the microphone."""
    played, recorded = tmp_path / "played.npy", tmp_path / "recorded.npy"
    np.save(played, signal.astype(np.float32))
    probe = subprocess.run([sys.executable, "-m", "benchmarks.pipewire_probe", "--play", str(played), "--out",
                            str(recorded)], capture_output=True, text=True, timeout=PROBE_TIMEOUT_SECONDS)
    assert probe.returncode == 0, probe.stderr
    return np.load(recorded)


@pytest.mark.audio_server
@pytest.mark.parametrize("pulse", ["pipewire"], indirect=True)
def test_on_pipewire_the_virtual_microphone_is_fed_through_jack(pulse, reference_model, tmp_path: Path) -> None:
    _needs_pipewire_jack()
    model = reference_model("random", 16000)
    assert quietmic("start", "--model", str(model)).returncode == 0
    Quietmic({}).wait_for("idle", IDLE_LIMIT_SECONDS)
    assert JACK_PATH in status()["virtual_microphone"], status()
    sources = pulse.pactl("list", "short", "sources")
    assert f"\t{SOURCE_NAME}\t" in sources  # programs list it as a microphone ...
    assert f"\t{SOURCE_NAME}\t" not in pulse.pactl("list", "short", "sinks")  # ... and not as an output
    signal = noisy_speech()
    with listening(SOURCE_NAME):
        _streaming()
        mic_port = pipewire_mic.capture_ports(MIC_SOURCE)[0]
        ours = {(mic_port, f"{CLIENT_NAME}:in_0"), (f"{CLIENT_NAME}:out_0", pipewire_mic.input_ports(SOURCE_NAME)[0])}
        _eventually(lambda: set(pipewire_mic.links(CLIENT_NAME)) == ours)
        assert set(pipewire_mic.links(CLIENT_NAME)) == ours  # the microphone in, the virtual source out: nothing else
        assert not any(SPEAKERS in port for link in pipewire_mic.links(CLIENT_NAME) for port in link)
        expected = enhance_signal(Enhancer(model, RATE, block_size=BLOCK, atten_lim_db=DEFAULT_ATTEN_LIM_DB), signal,
                                  BLOCK)
        for _ in range(SIGNAL_TRIES):
            recorded = _probe(signal, tmp_path)[:, 1]
            lag, _ = lag_and_correlation(expected, recorded, MAX_LAG)
            with_output = windowed_correlations(expected, recorded, lag, WINDOW, SLIP)
            matched = float(np.mean(with_output > MATCH))
            if matched >= MATCHED_FRACTION:
                break
    with_input = windowed_correlations(signal, recorded, lag, WINDOW, SLIP)
    assert matched >= MATCHED_FRACTION, f"only {matched:.0%} of the stretches match file mode: {with_output.round(3)}"
    assert np.median(1.0 - with_input) > CLOSER * np.median(1.0 - with_output)  # enhanced, not passed through

    assert quietmic("stop").returncode == 0
    assert f"\t{SOURCE_NAME}\t" not in pulse.pactl("list", "short", "sources")  # removed on stop
    assert "quietmic" not in pulse.pactl("list", "short", "modules")


@pytest.mark.audio_server
@pytest.mark.parametrize("pulse", ["pipewire"], indirect=True)
def test_on_pipewire_the_microphone_is_linked_only_while_a_program_records(pulse, reference_model) -> None:
    _needs_pipewire_jack()
    assert quietmic("start", "--model", str(reference_model("random", 16000))).returncode == 0
    Quietmic({}).wait_for("idle", IDLE_LIMIT_SECONDS)
    for _ in range(2):  # and again: the second wake-up is no different
        assert pipewire_mic.output_ports(CLIENT_NAME) == [] and pipewire_mic.links(CLIENT_NAME) == []
        with listening(SOURCE_NAME):
            _streaming()
            assert _eventually(lambda: any(output.startswith(f"{MIC_SOURCE}:")
                                           for output, _ in pipewire_mic.links(CLIENT_NAME)))
        Quietmic({}).wait_for("idle", IDLE_LIMIT_SECONDS)
        assert _eventually(lambda: not pipewire_mic.output_ports(CLIENT_NAME))  # the stream closed: no port
    assert pipewire_mic.links(CLIENT_NAME) == []
    maps = Path(f"/proc/{status()['pid']}/maps").read_text()  # PortAudio bound to PipeWire's libjack, no other
    jacks = {line.split()[-1] for line in maps.splitlines() if "/libjack.so" in line}
    assert jacks and all("pipewire" in path for path in jacks), jacks


@pytest.mark.audio_server
@pytest.mark.parametrize("pulse", ["pipewire"], indirect=True)
def test_on_pipewire_the_jack_path_survives_an_unplugged_microphone_and_a_restarted_server(pulse, reference_model) -> None:
    _needs_pipewire_jack()
    assert quietmic("start", "--model", str(reference_model("random", 16000))).returncode == 0
    with listening(SOURCE_NAME):
        Quietmic({}).wait_for("running", RECONNECT_LIMIT_SECONDS)
        assert JACK_PATH in status()["virtual_microphone"]
        _follow_the_microphone_and_the_server(pulse)  # the restart: PortAudio's JACK client is lost, the process restarts
    assert JACK_PATH in status()["virtual_microphone"]  # the restarted process took the same path


# --- without a server ---------------------------------------------------------------------------


@pytest.fixture
def server_says(monkeypatch: pytest.MonkeyPatch):
    """``server_says(name, libjack)``: what ``pactl info`` names the server, and whether pipewire-jack is there."""

    def fake(name: str, libjack: bool) -> None:
        monkeypatch.setattr(virtual_mic, "pulse_server_name", lambda: name)
        monkeypatch.setattr(pipewire_jack, "find_libjack", lambda: Path("/lib/libjack.so.0") if libjack else None)
        monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")

    return fake


PIPEWIRE_NAME = "PulseAudio (on PipeWire 0.3.65)"


def test_auto_takes_the_jack_path_on_pipewire_with_pipewire_jack(server_says) -> None:
    server_says(PIPEWIRE_NAME, libjack=True)
    assert isinstance(pipewire_mic.choose("auto"), PipeWireJackMic)
    assert type(pipewire_mic.choose("pulse")) is PulseVirtualMic  # asked for: the PulseAudio path


def test_without_pipewire_jack_auto_falls_back_and_says_what_to_install(server_says, caplog) -> None:
    server_says(PIPEWIRE_NAME, libjack=False)
    with caplog.at_level(logging.INFO, logger="realtime.desktop.pipewire_mic"):
        assert type(pipewire_mic.choose("auto")) is PulseVirtualMic
    assert "pipewire-jack" in caplog.text
    with pytest.raises(DeviceError, match="pipewire-jack"):
        pipewire_mic.choose("pipewire")


def test_pulseaudio_keeps_the_pulseaudio_path(server_says, caplog) -> None:
    server_says("pulseaudio", libjack=True)
    with caplog.at_level(logging.INFO, logger="realtime.desktop.pipewire_mic"):
        assert type(pipewire_mic.choose("auto")) is PulseVirtualMic
    assert caplog.text == ""
    with pytest.raises(DeviceError, match="not PipeWire"):
        pipewire_mic.choose("pipewire")


LOGIC_RATE = 16000
LOGIC_BLOCK = 160
OK_STATUS = SimpleNamespace(input_overflow=False, output_underflow=False)


def test_callbacks_of_the_servers_period_settle_their_delay_again_when_it_changes(reference_model) -> None:
    """PipeWire's quantum is rarely the enhancer's block and changes while streaming: the hand-over grows to
    what each period needs, without a late block, and the output is the input at one fixed delay."""
    enhancer = Enhancer(reference_model("identity", LOGIC_RATE, "float32"), LOGIC_RATE, block_size=LOGIC_BLOCK)
    processor = LiveProcessor(enhancer, host_blocks=True)
    processor._wake_fd = os.eventfd(0, os.EFD_NONBLOCK)
    processor._out_ring.write_zeros(processor.handover_latency)
    worker = threading.Thread(target=processor._work, daemon=True)
    worker.start()
    periods = [96] * 400 + [400] * 100  # 2.4 s at a period that is no multiple of the block, then 2.5 s at another
    rng = np.random.default_rng(0)
    signal = (0.1 * rng.standard_normal(sum(periods))).astype(np.float32)
    out, position = [], 0
    try:
        for frames in periods:
            outdata = np.zeros((frames, 1), dtype=np.float32)
            processor._callback(signal[position: position + frames, None], outdata, frames, None, OK_STATUS)
            out.append(outdata[:, 0].copy())
            position += frames
            deadline = time.monotonic() + 2
            while (processor._times_count * LOGIC_BLOCK != processor._in_ring.read_count
                   or processor._in_ring.available >= LOGIC_BLOCK) and time.monotonic() < deadline:
                time.sleep(0.0005)  # as in real time: what can be processed is, before the next callback
    finally:
        processor._stop.set()
        worker.join()
        os.close(processor._wake_fd)
    assert processor.counters.late_blocks == 0
    assert processor.handover_latency >= 400 + LOGIC_BLOCK - gcd(400, LOGIC_BLOCK)
    output, delay = np.concatenate(out), processor.handover_latency + enhancer.latency
    tail = slice(len(output) - 150 * 400 // 2, len(output))
    assert np.max(np.abs(output[tail] - signal[tail.start - delay: tail.stop - delay])) < 1e-5
