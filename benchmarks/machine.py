"""The machine a benchmark runs on: its description, and pinning work to one core."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata as _metadata
from pathlib import Path
from typing import Callable, Iterator, Sequence


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cpus() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def machine_info(packages: Sequence[str] = ()) -> dict:
    """CPU, usable CPUs, OS, Python and the installed versions of ``packages`` (None: not installed)."""
    versions = {}
    for name in packages:
        try:
            versions[name] = _metadata.version(name)
        except _metadata.PackageNotFoundError:
            versions[name] = None
    return {"cpu": cpu_model(), "cpus_usable": len(usable_cpus()), "os": platform.platform(),
            "python": platform.python_version(), "packages": versions}


def pin(cpu: int | None) -> None:
    """Run this process on ``cpu`` only (None, or a system without affinity: leave it)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run this process on ``cpu`` only while the ``with`` block runs, then restore its CPUs."""
    before = usable_cpus()
    pin(cpu)
    try:
        yield
    finally:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, before)


def pin_child(cpu: int | None) -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that pins the child to ``cpu``."""
    return lambda: pin(cpu)
