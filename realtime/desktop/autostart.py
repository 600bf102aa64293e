"""Starting quietmic with the desktop session: a systemd user unit.

``quietmic autostart enable`` writes ``$XDG_CONFIG_HOME/systemd/user/quietmic.service``
(``quietmic serve`` in the foreground, restarted if it fails, after the sound
server) and enables it with ``systemctl --user``; ``disable`` disables and
removes it. Without a systemd user session the unit is still written and the
message says how to enable it later.
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
SYSTEMCTL_TIMEOUT_SECONDS = 15.0


def unit_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user" / UNIT_NAME


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


def enable(options: Sequence[str] = ()) -> str:
    """Install and enable the unit; a message for the user."""
    path = unit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit_text(options))
    reload = _systemctl("daemon-reload")
    result = _systemctl("enable", UNIT_NAME)
    if reload is None or result is None or result.returncode != 0:
        why = "systemctl is not installed" if reload is None else (result.stderr.strip() if result else "no answer")
        return (f"wrote {path}, but could not enable it ({why}); in your desktop session run: "
                f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}")
    return f"wrote {path} and enabled it: quietmic starts with your session ('quietmic autostart disable' undoes it)"


def disable() -> str:
    """Disable and remove the unit; a message for the user."""
    path = unit_path()
    result = _systemctl("disable", UNIT_NAME)
    existed = path.exists()
    if existed:
        path.unlink()
    _systemctl("daemon-reload")
    if not existed:
        return f"autostart was not enabled ({path} does not exist)"
    note = "" if result is not None and result.returncode == 0 else " (systemctl --user disable did not run here)"
    return f"removed {path}{note}; quietmic no longer starts with your session"
