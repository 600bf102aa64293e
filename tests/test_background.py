"""The background process: control socket, pid file, settings, autostart unit, and a real service on JACK."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realtime.desktop import autostart, control
from realtime.errors import ConfigError, QuietmicError
from realtime.config import parse_setting
from realtime.desktop.pidfile import AlreadyRunning, PidFile, running_pid
from realtime.desktop.service import StreamTotals


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Private XDG runtime/state/config folders for this test (and the processes it starts)."""
    env = {}
    for name in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        folder = tmp_path / name.lower()
        folder.mkdir(mode=0o700)
        monkeypatch.setenv(name, str(folder))
        env[name] = str(folder)
    return env


def test_control_socket_answers_its_user_only_and_reports_errors(tmp_path: Path) -> None:
    def handler(message: dict) -> dict:
        if message.get("command") == "boom":
            raise QuietmicError("no such thing")
        return {"ok": True, "echo": message}

    path = tmp_path / "control.sock"
    server = control.ControlServer(path, handler)
    try:
        assert (path.stat().st_mode & 0o777) == 0o600
        assert control.request(path, {"command": "hello", "x": 1})["echo"] == {"command": "hello", "x": 1}
        with pytest.raises(QuietmicError, match="no such thing"):
            control.request(path, {"command": "boom"})
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # not JSON: refused, server survives
        raw.connect(str(path))
        raw.sendall(b"this is not json\n")
        assert json.loads(raw.recv(4096))["ok"] is False
        raw.close()
        assert control.request(path, {"command": "again"})["ok"]
        with pytest.raises(QuietmicError, match="another quietmic"):
            control.ControlServer(path, handler)
    finally:
        server.close()
    assert not path.exists()
    with pytest.raises(control.NotRunning, match="quietmic start"):
        control.request(path, {"command": "status"})


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: a process that was killed
    server = control.ControlServer(path, lambda m: {"ok": True})
    try:
        assert control.request(path, {"command": "ping"})["ok"]
    finally:
        server.close()


def test_pid_file_admits_one_process(tmp_path: Path) -> None:
    path = tmp_path / "quietmic.pid"
    assert running_pid(path) is None
    held = PidFile(path)
    try:
        assert running_pid(path) == os.getpid()
        child = subprocess.run(
            [sys.executable, "-c", f"from realtime.desktop.pidfile import PidFile; PidFile(__import__('pathlib').Path({str(path)!r}))"],
            capture_output=True, text=True,
        )
        assert child.returncode != 0 and "already running" in child.stderr
        with pytest.raises(AlreadyRunning):
            PidFile(path)  # a second lock from this process too (another open file description)
    finally:
        held.release()
    assert running_pid(path) is None and not path.exists()


def test_stream_totals_add_up_key_by_key_and_survive_a_restart() -> None:
    """The service's xruns and faults: every stream's summary adds to them, and a restarted process
    goes on from the status's ``counters`` and ``faults``."""
    summary = {"input_overflows": 2, "output_underflows": 0, "late_blocks": 3, "model_failures": 1,
               "processing_failures": 0, "model_resets": 4, "invalid_input_samples": 100, "callbacks": 999}
    totals = StreamTotals().plus(summary).plus(summary)
    assert totals.xruns() == {"input_overflows": 4, "output_underflows": 0, "late_blocks": 6}
    assert totals.faults() == {"model_failures": 2, "processing_failures": 0, "model_resets": 8,
                               "invalid_input_samples": 200}
    assert StreamTotals.carried(totals.xruns(), {**totals.faults(), "unknown": 7}) == totals


def test_set_values_are_parsed_and_validated() -> None:
    assert parse_setting("atten_lim_db", "20") == 20.0
    assert parse_setting("atten_lim_db", "null") is None
    assert parse_setting("bypass", "true") is True
    assert parse_setting("input_device", "2") == 2
    assert parse_setting("input_device", "USB Mic") == "USB Mic"
    assert parse_setting("model", "default") is None
    with pytest.raises(ConfigError, match="atten_lim_db"):
        parse_setting("atten_lim_db", "-5")
    with pytest.raises(ConfigError, match="true or false"):
        parse_setting("bypass", "maybe")


def _fake_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exit_status: int) -> None:
    """A ``systemctl`` on PATH that answers every call with ``exit_status`` (a user manager that works, or not)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(f"#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit {exit_status}\n"
                    if exit_status else "#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_autostart_with_systemd_writes_and_enables_the_unit(xdg: dict[str, str], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_systemctl(tmp_path, monkeypatch, 0)
    message = autostart.enable()
    path = autostart.unit_path()
    assert path.is_relative_to(xdg["XDG_CONFIG_HOME"]) and path.exists()
    text = path.read_text()
    assert f"ExecStart={sys.executable} -m realtime serve" in text and "WantedBy=default.target" in text
    assert str(path) in message and "enabled" in message and sys.executable in message
    assert not autostart.desktop_entry_path().exists()
    assert autostart.broken() is None
    assert "removed" in autostart.disable() and not path.exists()
    assert "was not enabled" in autostart.disable()


def test_autostart_without_a_user_manager_says_so_and_writes_an_xdg_entry(
        xdg: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_systemctl(tmp_path, monkeypatch, 1)
    message = autostart.enable()
    entry = autostart.desktop_entry_path()
    assert "did not answer" in message and "Failed to connect to bus" in message and str(entry) in message
    assert "enabled it" not in message
    assert not autostart.unit_path().exists()
    assert f"Exec={sys.executable} -m realtime start" in entry.read_text()
    assert autostart.broken() is None
    # The environment quietmic was installed in moved away: the entry names a Python that is gone.
    entry.write_text(entry.read_text().replace(sys.executable, str(tmp_path / "moved" / "python3")))
    assert "no longer exists" in (autostart.broken() or "")
    assert str(entry) in autostart.disable() and not entry.exists()


def _quietmic(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "realtime", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.audio_server
def test_background_service_on_jack(reference_model, xdg: dict[str, str], tmp_path: Path) -> None:
    """start / status / set / second start / stop, and recovery when the JACK server restarts."""
    from benchmarks.jack_server import JackServer, jack_running

    if not jack_running() and not os.environ.get("QUIETMIC_REQUIRE_JACK"):
        pytest.skip("no JACK server (start: jackd --no-realtime -d dummy -r 48000 -p 480 &)")
    model = reference_model("random", 16000)
    server = JackServer(48000, 480)
    server.start()
    env = {"JACK_DEFAULT_SERVER": server.name}
    try:
        started = _quietmic("start", "--backend", "jack", "--model", str(model), env=env)
        assert started.returncode == 0, started.stderr
        assert "quietmic started" in started.stdout
        status = json.loads(_quietmic("status", "--json", env=env).stdout)
        assert status["state"] == "running" and status["sample_rate"] == 48000
        assert status["virtual_microphone"].startswith("JACK ports quietmic:")
        ports = subprocess.run(["jack_lsp"], capture_output=True, text=True, env={**os.environ, **env}).stdout
        assert "quietmic:out_0" in ports
        # The virtual microphone's ports: programs connect to them; the microphone never reaches the speakers.
        connections = subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True,
                                     env={**os.environ, **env}).stdout
        outputs = connections.split("quietmic:out_0", 1)[1].split("\nquietmic:", 1)[0]
        assert "playback" not in outputs, connections
        assert _quietmic("set", "atten_lim_db", "12", env=env).returncode == 0
        assert json.loads(_quietmic("status", "--json", env=env).stdout)["atten_lim_db"] == 12.0
        bad = _quietmic("set", "atten_lim_db", "loud", env=env)
        assert bad.returncode == 1 and "atten_lim_db" in bad.stderr
        second = _quietmic("start", "--backend", "jack", "--model", str(model), env=env)
        assert second.returncode == 1 and "already running" in second.stderr

        # The audio server goes away and comes back: the service waits, then streams again.
        server.stop()
        deadline = time.monotonic() + 10
        while json.loads(_quietmic("status", "--json", env=env).stdout)["state"] == "running":
            assert time.monotonic() < deadline, "the service did not notice that the server went away"
            time.sleep(0.2)
        server.start()
        back = time.monotonic()
        while True:
            status = json.loads(_quietmic("status", "--json", env=env).stdout)
            if status["state"] == "running":
                break
            assert time.monotonic() - back < 10, f"no reconnect: {status}"
            time.sleep(0.2)
        assert status["reconnects"] >= 1 and status["lost_streams"] >= 1
    finally:
        stopped = _quietmic("stop", env=env)
        server.stop()
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert _quietmic("status", env=env).returncode == 3
    log = (Path(xdg["XDG_STATE_HOME"]) / "quietmic" / "quietmic.log").read_text()
    assert "input lost" in log and "input back" in log
