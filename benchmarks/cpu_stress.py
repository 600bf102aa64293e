"""A CPU-stress process that keeps one core busy while a measurement runs.

``with CpuStress(cpu=0): ...`` starts a separate Python process pinned to
``cpu`` that multiplies float matrices in a loop (arithmetic plus memory
traffic, like a video call's encoder or a browser tab) and stops it afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.machine import pin_child

STRESS_MATRIX_SIZE = 256
"""Side of the square float64 matrices multiplied in the loop (512 KiB each: beyond L2)."""

_STRESS_CODE = f"""
import numpy as np
a = np.random.default_rng(0).standard_normal(({STRESS_MATRIX_SIZE}, {STRESS_MATRIX_SIZE}))
while True:
    a = np.tanh(a @ a)
"""


class CpuStress:
    """Keep ``cpu`` busy (one thread) while the ``with`` block runs; ``cpu=None`` lets it float."""

    def __init__(self, cpu: int | None) -> None:
        self.cpu = cpu
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self._process = subprocess.Popen([sys.executable, "-c", _STRESS_CODE], env=env, preexec_fn=pin_child(self.cpu))

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def __enter__(self) -> CpuStress:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
