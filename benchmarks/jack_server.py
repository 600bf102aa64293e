"""Start and stop a JACK server with the dummy driver (real-time pace, no sound card)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from types import TracebackType

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 20.0
PORT_WAIT_SECONDS = 5.0
BENCHMARK_SERVER_NAME = "quietmic-bench"
"""Server name, so a benchmark server does not clash with one already running."""


def reinitialise_portaudio() -> None:
    """Make PortAudio (if loaded) rescan host APIs, attaching to or detaching from JACK."""
    sounddevice = sys.modules.get("sounddevice")
    if sounddevice is not None:
        sounddevice._terminate()
        sounddevice._initialize()


def jack_running(server_name: str | None = None) -> bool:
    """Whether a JACK server (the default one, or ``server_name``) is running."""
    command = ["jack_wait", "-c"] + (["-s", server_name] if server_name else [])
    try:
        answer = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return answer.strip() == "running"


def jack_device_index() -> int | None:
    """PortAudio's JACK device index, or None if PortAudio sees no JACK server."""
    import sounddevice as sd

    for api in sd.query_hostapis():
        if "JACK" in api["name"] and api["default_input_device"] >= 0:
            return int(api["default_input_device"])
    return None


class JackServer:
    """``with JackServer(48000, 480): ...`` runs ``jackd --no-realtime -d dummy`` meanwhile.

    Clients in this process find it through ``JACK_DEFAULT_SERVER``, which is set
    while the server runs. PortAudio attaches to JACK when it initialises, so it
    is re-initialised after the server starts and before it stops.
    """

    def __init__(self, sample_rate: int, period: int, name: str = BENCHMARK_SERVER_NAME) -> None:
        self.sample_rate = sample_rate
        self.period = period
        self.name = name
        self._process: subprocess.Popen[bytes] | None = None
        self._previous_default: str | None = None

    def start(self) -> None:
        if shutil.which("jackd") is None:
            raise RuntimeError("jackd is not installed: apt-get install jackd2 libportaudio2")
        command = ["jackd", "-n", self.name, "--no-realtime", "-d", "dummy", "-r", str(self.sample_rate), "-p", str(self.period)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if jack_running(self.name):
                break
            if self._process.poll() is not None:
                raise RuntimeError(f"jackd exited: {self._process.stderr.read().decode(errors='replace')[-500:]}")
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("jackd did not start within 20 s")
        self._previous_default = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        reinitialise_portaudio()
        log.info("JACK server %s at %d Hz, period %d", self.name, self.sample_rate, self.period)

    def stop(self) -> None:
        if self._process is not None:
            os.environ["JACK_DEFAULT_SERVER"] = "quietmic-no-server"
            reinitialise_portaudio()
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._previous_default is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = self._previous_default

    def __enter__(self) -> JackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def connect_loopback(server_name: str | None = None) -> tuple[str, str]:
    """Wire this process's PortAudio output port 0 to its input port 0 (instead of the dummy capture).

    Waits for the ports to appear; returns ``(output port, input port)``.
    """
    env = dict(os.environ)
    if server_name is not None:
        env["JACK_DEFAULT_SERVER"] = server_name

    def jack(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), capture_output=True, text=True, env=env)

    deadline = time.monotonic() + PORT_WAIT_SECONDS
    while True:
        ports = jack("jack_lsp").stdout.split()
        outs = [p for p in ports if p.startswith("PortAudio") and p.endswith(":out_0")]
        ins = [p for p in ports if p.startswith("PortAudio") and p.endswith(":in_0")]
        if outs and ins:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the PortAudio JACK ports did not appear; ports: {ports}")
        time.sleep(0.05)
    if len(outs) != 1 or len(ins) != 1:
        raise RuntimeError(f"several PortAudio clients on the JACK server: {outs} {ins}")
    for port in jack("jack_lsp", "-c", ins[0]).stdout.split()[1:]:
        jack("jack_disconnect", port, ins[0])
    if jack("jack_connect", outs[0], ins[0]).returncode != 0:
        raise RuntimeError(f"jack_connect {outs[0]} {ins[0]} failed")
    return outs[0], ins[0]
