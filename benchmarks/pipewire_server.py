"""A private PipeWire server with a virtual microphone, for tests and benchmarks (no sound card).

The PipeWire counterpart of :class:`benchmarks.pulse_server.PulseServer`, with the
same interface and the same devices. ``with PipeWireServer(runtime_dir) as server: ...``
runs, each in its own process group and all private to ``runtime_dir``:

* ``dbus-daemon``: a session bus (``runtime_dir/bus``); WirePlumber 0.4 exits without one;
* ``pipewire``: the graph (``runtime_dir/pipewire-0``), clocked at ``rate``;
* ``wireplumber``: the session manager, with its ALSA, V4L2, libcamera and Bluetooth
  monitors turned off, so no real device is probed or taken;
* ``pipewire-pulse``: the PulseAudio protocol (``runtime_dir/pulse/native``), which
  quietmic, ``pactl`` and libpulse clients find through ``XDG_RUNTIME_DIR`` (see
  :attr:`PipeWireServer.env`).

Their configuration and state live under ``runtime_dir`` (``config/``, ``state/``);
the user's own (``~/.config/pipewire``, ``~/.config/wireplumber``) is not read.
As on the PulseAudio server, ``pactl load-module`` makes

* ``test_mic_input``: a null sink that a test plays "microphone" audio into, and
* ``test_mic``: a remapped source of its monitor, the default source: the
  microphone as quietmic sees it (an ordinary source, not a monitor);
* ``test_speakers``: the default sink, so nothing plays into quietmic's own sink by chance.

:meth:`restart` kills every process (SIGKILL) and starts them again on the same
runtime directory, as a crash or a user's ``systemctl --user restart pipewire``
would; :meth:`unplug_mic` / :meth:`plug_mic` remove and bring back the microphone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.pulse_server import SPEAKERS, PulseServer

START_TIMEOUT_SECONDS = 15.0
"""How long :meth:`PipeWireServer.start` waits for each step (socket, ``pactl info``, session manager)."""
STOP_TIMEOUT_SECONDS = 5.0
"""How long :meth:`PipeWireServer.stop` waits for a killed process to be reaped."""
POLL_SECONDS = 0.05
SERVER_NAME_MARK = "PipeWire"
"""What ``pactl info``'s "Server Name" holds on pipewire-pulse (e.g. "PulseAudio (on PipeWire 0.3.65)")."""
DAEMONS = ("pipewire", "wireplumber", "pipewire-pulse")
REQUIRED_TOOLS = ("dbus-daemon", *DAEMONS, "pactl")
INSTALL_HINT = "apt-get install pipewire pipewire-pulse wireplumber pulseaudio-utils dbus"
PIPEWIRE_SOCKET = "pipewire-0"
BUS_SOCKET = "bus"
PULSE_DIRECTORY = "pulse"
PULSE_SOCKET = f"{PULSE_DIRECTORY}/native"
CLIENT_CONFIG = "pulse-client.conf"
CLIENT_CONFIG_TEXT = "autospawn = no\n"
STALE_FILES = (BUS_SOCKET, PIPEWIRE_SOCKET, f"{PIPEWIRE_SOCKET}.lock", PULSE_SOCKET, f"{PULSE_DIRECTORY}/pid")
"""Sockets and locks a killed server leaves behind in the runtime directory (removed before a start)."""
DAEMON_ENV_DROPPED = ("DISPLAY", "WAYLAND_DISPLAY", "PULSE_SERVER", "PIPEWIRE_REMOTE", "DBUS_SESSION_BUS_ADDRESS")
"""Variables of the caller's desktop that the daemons must not see (X11 bell module, the real session bus)."""
LOG_TAIL_CHARACTERS = 1500

WIREPLUMBER_MAIN_OVERRIDE = """\
-- quietmic test server: no hardware. Loaded after 50-*-config.lua, before 90-enable-all.lua.
alsa_monitor.enabled = false
v4l2_monitor.enabled = false
libcamera_monitor.enabled = false
"""
WIREPLUMBER_BLUETOOTH_OVERRIDE = """\
-- quietmic test server: no hardware. Loaded after 50-bluez-config.lua.
bluez_monitor.enabled = false
"""
OVERRIDE_NAME = "51-quietmic-test"


class PipeWireServer(PulseServer):
    """A PipeWire server (with WirePlumber and pipewire-pulse) private to ``runtime_dir`` (see the module docstring).

    Args:
        runtime_dir: directory for the sockets, configuration, state and log (made if missing).
        rate: the graph's clock rate and the test devices' rate, in Hz.
    """

    def __init__(self, runtime_dir: Path, rate: int = 48000) -> None:
        super().__init__(runtime_dir, rate)
        self.env.update({
            "PIPEWIRE_RUNTIME_DIR": str(self.runtime_dir),
            "PULSE_CLIENTCONFIG": str(self.runtime_dir / CLIENT_CONFIG),
        })
        # PULSE_CLIENTCONFIG turns libpulse's autospawn off: a client of a user other than root that
        # finds no server (before start() is done, or during restart()) would otherwise start a real
        # pulseaudio on this runtime directory, which takes pipewire-pulse's socket.
        self.log_path = self.runtime_dir / "pipewire.log"
        """The daemons' stdout and stderr, all four appended to one file."""
        self._config_home = self.runtime_dir / "config"
        self._state_home = self.runtime_dir / "state"
        self._bus_address = f"unix:path={self.runtime_dir / BUS_SOCKET}"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        """Start the bus, PipeWire, WirePlumber and pipewire-pulse, then make the test devices.

        Returns once ``pactl`` reaches pipewire-pulse, WirePlumber accepts a default
        sink, and ``test_mic`` is the default source; raises ``RuntimeError`` (with
        the end of :attr:`log_path`) when a step does not finish within
        :data:`START_TIMEOUT_SECONDS`.
        """
        missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not installed: {INSTALL_HINT}")
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write_config()
        self._remove_stale_files()
        try:
            self._spawn("dbus-daemon", "dbus-daemon", "--session", "--nofork", "--nopidfile",
                        f"--address={self._bus_address}")
            self._wait_for(lambda: (self.runtime_dir / BUS_SOCKET).exists(), "the session bus socket")
            self._spawn("pipewire", "pipewire")
            self._wait_for(lambda: (self.runtime_dir / PIPEWIRE_SOCKET).exists(), "the PipeWire socket")
            self._spawn("wireplumber", "wireplumber")
            self._spawn("pipewire-pulse", "pipewire-pulse")
            # pactl only once the socket is there: a pactl that finds no server may make the pulse directory
            # itself, and pipewire-pulse's stat-then-mkdir of it then fails ("File exists") and exits.
            self._wait_for(lambda: (self.runtime_dir / PULSE_SOCKET).exists(), "the pipewire-pulse socket")
            self._wait_for(lambda: SERVER_NAME_MARK in self.pactl("info", check=False), "pipewire-pulse")
            self.make_sinks()
            # pipewire-pulse answers "Not supported" until WirePlumber has made the "default" metadata.
            self._wait_for(self._default_sink_taken, "WirePlumber")
            self.plug_mic()
        except BaseException:
            self.stop()
            raise

    def force_quantum(self, frames: int) -> None:
        """Run the graph at a quantum of ``frames`` samples whatever its clients ask for (0: back to
        the quantum they ask for), as ``pw-metadata -n settings 0 clock.force-quantum`` does for a user."""
        result = subprocess.run(["pw-metadata", "-n", "settings", "0", "clock.force-quantum", str(frames)],
                                capture_output=True, text=True, env=self._daemon_env(), timeout=START_TIMEOUT_SECONDS)
        if result.returncode != 0:
            raise RuntimeError(f"pw-metadata could not force the quantum: {result.stderr.strip()}")

    def server_pids(self) -> list[int]:
        """PipeWire, WirePlumber and pipewire-pulse (not the session bus)."""
        return [process.pid for name, process in self._processes.items()
                if name != "dbus-daemon" and process.poll() is None]

    def _write_config(self) -> None:
        """Configuration: no hardware monitors in WirePlumber, the graph clocked at :attr:`rate`, no autospawn."""
        files = {
            f"wireplumber/main.lua.d/{OVERRIDE_NAME}.lua": WIREPLUMBER_MAIN_OVERRIDE,
            f"wireplumber/bluetooth.lua.d/{OVERRIDE_NAME}.lua": WIREPLUMBER_BLUETOOTH_OVERRIDE,
            f"pipewire/pipewire.conf.d/{OVERRIDE_NAME}.conf": (
                f"context.properties = {{\n    default.clock.rate = {self.rate}\n"
                f"    default.clock.allowed-rates = [ {self.rate} ]\n}}\n"
            ),
        }
        (self.runtime_dir / CLIENT_CONFIG).write_text(CLIENT_CONFIG_TEXT)
        (self.runtime_dir / PULSE_DIRECTORY).mkdir(exist_ok=True, mode=0o700)
        for relative, text in files.items():
            path = self._config_home / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self._state_home.mkdir(parents=True, exist_ok=True)

    def _remove_stale_files(self) -> None:
        """Sockets of a killed server: without this, a new socket's appearance could not be told from an old one."""
        for relative in STALE_FILES:
            (self.runtime_dir / relative).unlink(missing_ok=True)

    def _daemon_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in DAEMON_ENV_DROPPED}
        env.update(self.env)
        env.update({
            "XDG_CONFIG_HOME": str(self._config_home),
            "XDG_STATE_HOME": str(self._state_home),
            "DBUS_SESSION_BUS_ADDRESS": self._bus_address,
        })
        return env

    def _spawn(self, name: str, *command: str) -> None:
        """Start ``command`` in a new session (its own process group), output to :attr:`log_path`."""
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self._processes[name] = subprocess.Popen(command, env=self._daemon_env(), stdin=subprocess.DEVNULL,
                                                     stdout=log, stderr=log, start_new_session=True)

    def _wait_for(self, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready()`` until true; fail when it takes :data:`START_TIMEOUT_SECONDS` or a process exits."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not ready():
            dead = [name for name, process in self._processes.items() if process.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"no answer after {START_TIMEOUT_SECONDS:g} s"
                raise RuntimeError(f"the PipeWire test server did not start ({what}: {why}); "
                                   f"log {self.log_path}:\n{self._log_tail()}")
            time.sleep(POLL_SECONDS)

    def _default_sink_taken(self) -> bool:
        """Make :data:`SPEAKERS` the default sink; whether the server took it (it needs WirePlumber for that)."""
        self.pactl("set-default-sink", SPEAKERS, check=False)
        return self.pactl("get-default-sink", check=False) == SPEAKERS

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARACTERS:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """Kill every process group this server started (SIGKILL) and reap them."""
        for process in reversed(list(self._processes.values())):
            if process.returncode is not None:
                continue  # exited and reaped: its pid may belong to someone else by now
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the group: also whatever a daemon started
            except ProcessLookupError:
                pass
        for name, process in self._processes.items():
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"{name} (pid {process.pid}) survived SIGKILL; end it by hand") from None
        self._processes.clear()
        self._mic_module = None
