"""A private PulseAudio server with a virtual microphone, for tests and benchmarks (no sound card).

``with PulseServer(runtime_dir) as server: ...`` runs ``pulseaudio`` on its own
socket (``runtime_dir/pulse/native``; clients find it through
``XDG_RUNTIME_DIR``, see :attr:`PulseServer.env`) with

* ``test_mic_input``: a mono null sink that a test plays "microphone" audio into, and
* ``test_mic``: a remapped source of its monitor, the default source: the
  microphone as quietmic sees it (an ordinary source, not a monitor), e.g. a USB headset;
* ``test_builtin_mic``: a second microphone that stays silent and is never unplugged, as a
  laptop's own;
* ``test_speakers``: the default sink, so nothing plays into quietmic's own sink by chance.

:meth:`restart` kills the server and starts it again on the same socket, as a
crash or a user's ``systemctl --user restart pulseaudio`` would;
:meth:`unplug_mic` / :meth:`plug_mic` remove and bring back the microphone, and
move the default source to the built-in one and back, as desktops do. (Without a
second microphone PulseAudio makes the virtual "quietmic" source the default when
the last one goes, and moves the programs recording it to the microphone when that
returns: a limitation the README states.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

START_TIMEOUT_SECONDS = 15.0
PACTL_TIMEOUT_SECONDS = 10.0
MIC_SINK = "test_mic_input"
MIC_SOURCE = "test_mic"
BUILTIN_MIC_SINK = "test_builtin_mic_input"
BUILTIN_MIC_SOURCE = "test_builtin_mic"
SPEAKERS = "test_speakers"
MONO = ("channels=1", "channel_map=mono")
MIC_CLOCK_MS = 10
"""The test microphone delivers audio in blocks of this many ms (see :meth:`PulseServer._clock_mic`)."""


class PulseServer:
    """A PulseAudio server private to ``runtime_dir`` (see the module docstring).

    :class:`benchmarks.pipewire_server.PipeWireServer` is the same on PipeWire: it
    starts and stops other daemons and shares the devices and ``pactl`` of this class.
    """

    def __init__(self, runtime_dir: Path, rate: int = 48000) -> None:
        self.runtime_dir = Path(runtime_dir)
        self.rate = rate
        self.env = {"XDG_RUNTIME_DIR": str(self.runtime_dir), "PULSE_RUNTIME_PATH": str(self.runtime_dir / "pulse")}
        self.log_path = self.runtime_dir / "pulseaudio.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._mic_clock: subprocess.Popen[bytes] | None = None
        self._mic_module: str | None = None

    def pactl(self, *args: str, check: bool = True) -> str:
        """``pactl ARGS`` on this server; its output. ``check=False``: "" where it fails or hangs (a server
        that is still starting can accept the connection and not answer)."""
        try:
            result = subprocess.run(["pactl", *args], capture_output=True, text=True, env={**os.environ, **self.env},
                                    timeout=PACTL_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            if check:
                raise RuntimeError(f"pactl {' '.join(args)}: no answer within {PACTL_TIMEOUT_SECONDS:g} s") from None
            return ""
        if check and result.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout.strip()

    def start(self) -> None:
        if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
            raise RuntimeError("PulseAudio is not installed: apt-get install pulseaudio pulseaudio-utils libasound2-plugins")
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        command = [
            "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
            "--disable-shm=yes", f"--log-target=file:{self.log_path}",
            "-L", "module-native-protocol-unix",
        ]
        self._process = subprocess.Popen(command, env={**os.environ, **self.env}, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while self.pactl("info", check=False) == "":
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = self.log_path.read_text(errors="replace")[-1500:] if self.log_path.exists() else ""
                self.stop()
                raise RuntimeError(f"pulseaudio did not start: {log}")
            time.sleep(0.1)
        self.make_sinks()
        self._clock_mic()
        self.plug_mic()
        self.pactl("set-default-sink", SPEAKERS)

    def server_pids(self) -> list[int]:
        """The server's own processes (not the test microphone's clock): whose CPU is the server's load."""
        return [self._process.pid] if self._process is not None and self._process.poll() is None else []

    def _clock_mic(self) -> None:
        """Record the microphone's input sink in 10 ms blocks, for good, as a sound card's clock would.

        A PulseAudio null sink that no client records with a short latency renders up to 2 s
        ahead: while the microphone is unplugged the test's audio would be consumed 2 s early,
        and lost to quietmic when the microphone comes back (PipeWire's graph has no such lag).
        """
        self._mic_clock = subprocess.Popen(["parec", "-d", f"{MIC_SINK}.monitor", f"--latency-msec={MIC_CLOCK_MS}"],
                                           env={**os.environ, **self.env}, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)

    def make_sinks(self) -> None:
        """The test speakers, the test microphone's input sink (mono, as a microphone is) and the built-in mic."""
        self.pactl("load-module", "module-null-sink", f"sink_name={SPEAKERS}", f"rate={self.rate}")
        self.pactl("load-module", "module-null-sink", f"sink_name={MIC_SINK}", f"rate={self.rate}", *MONO)
        self.pactl("load-module", "module-null-sink", f"sink_name={BUILTIN_MIC_SINK}", f"rate={self.rate}", *MONO)
        self.pactl("load-module", "module-remap-source", f"master={BUILTIN_MIC_SINK}.monitor", *MONO,
                   f"source_name={BUILTIN_MIC_SOURCE}", "source_properties=device.description=test-builtin-mic")

    def plug_mic(self) -> None:
        """(Re)create the microphone source and make it the default."""
        self._mic_module = self.pactl("load-module", "module-remap-source", f"master={MIC_SINK}.monitor", *MONO,
                                      f"source_name={MIC_SOURCE}", "source_properties=device.description=test-mic")
        self.pactl("set-default-source", MIC_SOURCE)

    def unplug_mic(self) -> None:
        """Remove the microphone source, as unplugging a USB microphone does; the built-in one becomes the default."""
        if self._mic_module is not None:
            self.pactl("unload-module", self._mic_module)
            self._mic_module = None
        self.pactl("set-default-source", BUILTIN_MIC_SOURCE)

    def stop(self) -> None:
        for process in (self._mic_clock, self._process):
            if process is not None:
                process.kill()
                process.wait()
        self._process = self._mic_clock = None
        self._mic_module = None

    def restart(self) -> None:
        """Kill the server and start a fresh one on the same socket."""
        self.stop()
        self.start()

    def __enter__(self) -> PulseServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
