"""A preallocated sample ring buffer, safe for one writer and one reader thread.

The writer copies samples in and then advances ``write_count``; the reader copies
samples out and then advances ``read_count``. Each counter has a single owner and
only grows, so no lock is needed: under CPython a reader sees a new
``write_count`` only after the samples it covers were written. This lets the
audio callback push and pull samples without locks, allocation or waiting.
"""

from __future__ import annotations

import numpy as np


def _check_count(count: int, action: str) -> None:
    """Refuse a negative sample count: it would move a counter backwards and corrupt the ring."""
    if count < 0:
        raise ValueError(f"cannot {action} a negative number of samples ({count}); pass a count >= 0")


class RingBuffer:
    """Fixed-capacity FIFO of float32 samples (mono).

    Args:
        capacity: the most samples it can hold.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring buffer capacity must be at least 1 sample, got {capacity}")
        self.capacity = capacity
        self._data = np.zeros(capacity, dtype=np.float32)
        self.write_count = 0
        """Samples written since creation (owned by the writer)."""
        self.read_count = 0
        """Samples read or skipped since creation (owned by the reader)."""

    @property
    def available(self) -> int:
        """Samples that can be read now."""
        return self.write_count - self.read_count

    @property
    def free(self) -> int:
        """Samples that can be written now."""
        return self.capacity - self.available

    def write(self, samples: np.ndarray) -> int:
        """Append as many of ``samples`` as fit; returns how many were written."""
        count = min(len(samples), self.free)
        start = self.write_count % self.capacity
        first = min(count, self.capacity - start)
        self._data[start : start + first] = samples[:first]
        self._data[: count - first] = samples[first:count]
        self.write_count += count
        return count

    def write_zeros(self, count: int) -> int:
        """Append up to ``count`` zero samples; returns how many were written.

        Raises ``ValueError`` for a negative ``count``.
        """
        _check_count(count, "write")
        count = min(count, self.free)
        start = self.write_count % self.capacity
        first = min(count, self.capacity - start)
        self._data[start : start + first] = 0.0
        self._data[: count - first] = 0.0
        self.write_count += count
        return count

    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` from the front of the buffer; returns how many samples were read.

        Samples of ``out`` beyond that count are left untouched.
        """
        count = min(len(out), self.available)
        start = self.read_count % self.capacity
        first = min(count, self.capacity - start)
        out[:first] = self._data[start : start + first]
        out[first:count] = self._data[: count - first]
        self.read_count += count
        return count

    def skip(self, count: int) -> int:
        """Drop up to ``count`` samples from the front; returns how many were dropped.

        Raises ``ValueError`` for a negative ``count``.
        """
        _check_count(count, "skip")
        count = min(count, self.available)
        self.read_count += count
        return count

    def clear(self) -> None:
        """Empty the buffer. Only safe while no other thread uses it."""
        self.read_count = self.write_count
