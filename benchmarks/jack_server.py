"""Start and stop a JACK server with the dummy driver (real-time pace, no sound card)."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from realtime.live.portaudio_scan import rescan, sounddevice

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 20.0
PORT_WAIT_SECONDS = 5.0
SERVER_NAME_POOL = tuple(f"quietmic-jack-{k}" for k in range(4))
"""Names the project's JACK servers take, the first free one each (CI's, the tests', the benchmarks').

A server of its own name for each user: two processes sharing a name share one server, and one's stop
pulls it from under the other. A *bounded* set of names, because JACK keeps every server in a registry
of 8 slots (in /dev/shm) and frees the slot of a server that was killed only when a server of the same
name starts again: servers of ever new names that get killed would use the registry up ("Too many
servers already active"), as a test run that crashed once did."""
PARENT_DEATH_SIGNAL = signal.SIGTERM
"""What a server started here gets when the process that started it dies (a clean stop: its slot is freed)."""
_PR_SET_PDEATHSIG = 1
"""Linux prctl option: the signal sent to this process when its parent thread exits."""


def reinitialise_portaudio() -> None:
    """Make PortAudio (if loaded) rescan host APIs, attaching to or detaching from JACK.

    Raises :class:`realtime.live.portaudio_scan.PortAudioOrphaned` (instead of aborting) if
    PortAudio holds a client of a JACK server that has gone.
    """
    if "sounddevice" in sys.modules:
        rescan(release_jack=True)  # the benchmark controls its servers: none goes away meanwhile


def _die_with_parent() -> None:
    """In a child before exec: get :data:`PARENT_DEATH_SIGNAL` when the starting process dies (Linux)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL))


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
    sd = sounddevice()

    for api in sd.query_hostapis():
        if "JACK" in api["name"] and api["default_input_device"] >= 0:
            return int(api["default_input_device"])
    return None


class JackServer:
    """``with JackServer(48000, 480): ...`` runs ``jackd --no-realtime -d dummy`` meanwhile.

    Clients in this process find it through ``JACK_DEFAULT_SERVER``, which is set
    while the server runs. PortAudio attaches to JACK when it initialises, so it
    is re-initialised after the server starts and before it stops. The server's
    messages go to a log file, where :meth:`xruns` counts its xrun reports.
    """

    def __init__(self, sample_rate: int, period: int, name: str | None = None) -> None:
        self.sample_rate = sample_rate
        self.period = period
        self.name = name
        """The server's name: given, or the first free one of :data:`SERVER_NAME_POOL` at the first start (kept
        for restarts, so that clients find the server again under the same name)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._previous_default: str | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    def start(self) -> None:
        if shutil.which("jackd") is None:
            raise RuntimeError("jackd is not installed: apt-get install jackd2 libportaudio2")
        if self.name is not None:
            self._launch(self.name)
        else:
            failures = []
            for name in SERVER_NAME_POOL:
                if jack_running(name):
                    continue
                try:
                    self._launch(name)
                except RuntimeError as exc:  # taken meanwhile by another run, or no registry slot
                    failures.append(f"{name}: {exc}")
                    continue
                self.name = name
                break
            else:
                raise RuntimeError("no JACK server name of " + ", ".join(SERVER_NAME_POOL) + " is free: "
                                   + ("; ".join(failures) or "all run; stop some"))
        self._previous_default = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        reinitialise_portaudio()
        log.info("JACK server %s at %d Hz, period %d", self.name, self.sample_rate, self.period)

    def _launch(self, name: str) -> None:
        """Start jackd as ``name`` and wait until it answers; RuntimeError (nothing left running) if it does not."""
        command = ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(self.sample_rate), "-p", str(self.period)]
        self._log = tempfile.NamedTemporaryFile(prefix="jackd-", suffix=".log")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:  # e.g. the name is taken by another server
                messages = self.messages()[-500:]
                self._end_process()
                raise RuntimeError(f"jackd exited: {messages}")
            if jack_running(name):
                if self._process.poll() is None:  # the server that answers is ours
                    return
                self._end_process()
                raise RuntimeError(f"another JACK server named {name} is running; stop it or pick another name")
            time.sleep(0.1)
        self._end_process()
        raise RuntimeError("jackd did not start within 20 s")

    def _end_process(self) -> None:
        """Stop the jackd process (cleanly, so JACK frees its registry slot) and close its log."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def messages(self) -> str:
        """What the server has printed so far."""
        return Path(self._log.name).read_text(errors="replace") if self._log is not None else ""

    def xruns(self) -> int:
        """Xruns the server has reported so far (its "XRun" messages)."""
        return sum(1 for line in self.messages().splitlines() if "xrun" in line.lower())

    def crash(self) -> None:
        """Kill the server (SIGKILL: no goodbye to its clients), as a crash would; this process's PortAudio lets
        go of it first (only other processes meet the crash). :meth:`start` brings it back under the same name,
        which also frees the killed server's slot in JACK's registry."""
        if self._process is not None:
            os.environ["JACK_DEFAULT_SERVER"] = "quietmic-no-server"
            reinitialise_portaudio()
            self._process.kill()
            self._process.wait()
            self._process = None
        self.stop()

    def stop(self) -> None:
        """Detach PortAudio from the server, then stop it (the server stops even if detaching fails)."""
        try:
            if self._process is not None:
                os.environ["JACK_DEFAULT_SERVER"] = "quietmic-no-server"
                reinitialise_portaudio()
        finally:
            self._end_process()
            if self._previous_default is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = self._previous_default

    def __enter__(self) -> JackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _jack_tool(server_name: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one of JACK's command-line tools against ``server_name`` (None: the default server)."""
    env = dict(os.environ)
    if server_name is not None:
        env["JACK_DEFAULT_SERVER"] = server_name
    return subprocess.run(list(args), capture_output=True, text=True, env=env)


def list_ports(server_name: str | None = None) -> list[str]:
    """Every port on the server (``client:port`` names; JACK port names have no spaces here)."""
    return _jack_tool(server_name, "jack_lsp").stdout.split()


def wait_for_new_client(
    before: list[str], server_name: str | None = None, timeout: float = START_TIMEOUT_SECONDS
) -> str:
    """Wait until a client with input and output ports appears that was not in ``before``; its name."""
    known = {port.split(":", 1)[0] for port in before}
    deadline = time.monotonic() + timeout
    while True:
        clients: dict[str, set[str]] = {}
        for port in list_ports(server_name):
            client, name = port.split(":", 1)
            clients.setdefault(client, set()).add(name)
        new = [c for c, names in clients.items() if c not in known and "in_0" in names and "out_0" in names]
        if new:
            return new[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"no new JACK client appeared within {timeout:g} s; clients: {sorted(clients)}")
        time.sleep(0.05)


def wire(connections: list[tuple[str, str]], server_name: str | None = None) -> None:
    """Connect each ``(output port, input port)`` pair after removing every other link into those inputs."""
    for _, destination in connections:
        for port in _jack_tool(server_name, "jack_lsp", "-c", destination).stdout.split()[1:]:
            _jack_tool(server_name, "jack_disconnect", port, destination)
    for source, destination in connections:
        if _jack_tool(server_name, "jack_connect", source, destination).returncode != 0:
            raise RuntimeError(f"jack_connect {source} {destination} failed")


def connect_loopback(server_name: str | None = None) -> tuple[str, str]:
    """Wire this process's PortAudio output port 0 to its input port 0 (instead of the dummy capture).

    Waits for the ports to appear; returns ``(output port, input port)``.
    """
    deadline = time.monotonic() + PORT_WAIT_SECONDS
    while True:
        ports = list_ports(server_name)
        outs = [p for p in ports if p.startswith("PortAudio") and p.endswith(":out_0")]
        ins = [p for p in ports if p.startswith("PortAudio") and p.endswith(":in_0")]
        if outs and ins:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the PortAudio JACK ports did not appear; ports: {ports}")
        time.sleep(0.05)
    if len(outs) != 1 or len(ins) != 1:
        raise RuntimeError(f"several PortAudio clients on the JACK server: {outs} {ins}")
    wire([(outs[0], ins[0])], server_name)
    return outs[0], ins[0]
