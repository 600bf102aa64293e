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


def process_memory_mb(pid: int) -> dict[str, float]:
    """Memory of process ``pid`` now, in MiB: ``peak_rss`` (VmHWM: counts shared pages, e.g. a JACK
    server's shared memory and the libraries every process maps), ``pss`` (shared pages split among
    the processes that map them) and ``uss`` (private: what the process alone costs).
    From /proc (``status`` and ``smaps_rollup``)."""
    kib: dict[str, int] = {}
    for name in ("status", "smaps_rollup"):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            key, _, rest = line.partition(":")
            fields = rest.split()
            if len(fields) == 2 and fields[1] == "kB":
                kib[key] = int(fields[0])
    return {"peak_rss": kib["VmHWM"] / 1024.0, "pss": kib["Pss"] / 1024.0,
            "uss": (kib["Private_Clean"] + kib["Private_Dirty"]) / 1024.0}
