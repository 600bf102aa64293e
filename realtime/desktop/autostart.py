"""Starting quietmic with the desktop session: a systemd user unit, or an XDG autostart entry.

``quietmic autostart enable`` writes ``$XDG_CONFIG_HOME/systemd/user/quietmic.service``
(``quietmic serve`` in the foreground, restarted if it fails, after the sound
server) and enables it with ``systemctl --user``. Where no systemd user manager
answers (no systemd, or no session bus), it says so and writes an XDG autostart
entry instead (``$XDG_CONFIG_HOME/autostart/quietmic.desktop``, ``quietmic start``),
which desktop sessions run at login. ``disable`` removes whichever exists.

Both name the Python quietmic is installed in (the venv's interpreter): moving or
deleting that environment breaks them. :func:`broken` says so (``quietmic status``
shows it), and ``quietmic autostart enable`` again fixes it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

UNIT_NAME = "quietmic.service"
DESKTOP_ENTRY_NAME = "quietmic.desktop"
SYSTEMCTL_TIMEOUT_SECONDS = 15.0


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config"))


def unit_path() -> Path:
    return _config_home() / "systemd" / "user" / UNIT_NAME


def desktop_entry_path() -> Path:
    return _config_home() / "autostart" / DESKTOP_ENTRY_NAME


def desktop_entry_text(options: Sequence[str] = ()) -> str:
    """The XDG autostart entry: ``python -m realtime start`` with this Python, at login."""
    command = shlex.join([sys.executable, "-m", "realtime", "start", *options])
    return f"""[Desktop Entry]
Type=Application
Name=quietmic
Comment=Noise suppression for the microphone (virtual microphone "quietmic")
Exec={command}
Terminal=false
X-GNOME-Autostart-enabled=true
"""


def unit_text(options: Sequence[str] = ()) -> str:
    """The unit file: ``python -m realtime serve`` with this Python (the one quietmic is installed in)."""
    command = shlex.join([sys.executable, "-m", "realtime", "serve", *options])
    return f"""[Unit]
Description=quietmic: noise suppression for the microphone (virtual microphone "quietmic")
After=pipewire-pulse.service pulseaudio.service
Wants=pipewire-pulse.service

[Service]
ExecStart={command}
Restart=on-failure
RestartSec=2

[Install]
WantedBy=default.target
"""


def _systemctl(*args: str) -> subprocess.CompletedProcess[str] | None:
    if shutil.which("systemctl") is None:
        return None
    try:
        return subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True,
                              timeout=SYSTEMCTL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return None


def _failure(result: subprocess.CompletedProcess[str] | None) -> str | None:
    """Why a ``systemctl --user`` call did not work, or None if it did."""
    if result is None:
        return "systemctl is not installed or did not answer"
    if result.returncode != 0:
        return result.stderr.strip().splitlines()[0] if result.stderr.strip() else f"exit status {result.returncode}"
    return None


def enable(options: Sequence[str] = ()) -> str:
    """Install and enable the unit, or the XDG autostart entry where no systemd user manager answers;
    a message for the user that says which, and what it runs."""
    runs = f"it runs {sys.executable}: after moving or deleting that environment, run 'quietmic autostart enable' again"
    why = _failure(_systemctl("daemon-reload"))  # fails without a user manager, where 'enable' alone may not
    if why is None:
        path = unit_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(unit_text(options))
        why = _failure(_systemctl("daemon-reload")) or _failure(_systemctl("enable", UNIT_NAME))
        if why is None:
            desktop_entry_path().unlink(missing_ok=True)  # one way to start, not two
            return (f"wrote {path} and enabled it with systemctl --user: quietmic starts with your session "
                    f"('quietmic autostart disable' undoes it); {runs}")
        path.unlink()
    entry = desktop_entry_path()
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(desktop_entry_text(options))
    return (f"systemd's user manager did not answer ({why}), so wrote the XDG autostart entry {entry} instead: "
            f"desktop sessions (GNOME, KDE, Xfce...) start quietmic at login ('quietmic autostart disable' "
            f"undoes it); {runs}")


def broken() -> str | None:
    """What is wrong with an installed autostart, if anything: the Python it names has gone."""
    for path in (unit_path(), desktop_entry_path()):
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("ExecStart=", "Exec=")):
                python = shlex.split(line.split("=", 1)[1])[0]
                if not Path(python).exists():
                    return (f"autostart ({path}) runs {python}, which no longer exists; "
                            "run 'quietmic autostart enable' again")
    return None


def disable() -> str:
    """Disable and remove the unit and the autostart entry; a message for the user."""
    path, entry = unit_path(), desktop_entry_path()
    removed = []
    if path.exists():
        why = _failure(_systemctl("disable", UNIT_NAME))
        path.unlink()
        _systemctl("daemon-reload")
        removed.append(f"{path}" + (f" (systemctl --user disable did not run: {why})" if why else ""))
    if entry.exists():
        entry.unlink()
        removed.append(str(entry))
    if not removed:
        return f"autostart was not enabled ({path} and {entry} do not exist)"
    return f"removed {' and '.join(removed)}; quietmic no longer starts with your session"
