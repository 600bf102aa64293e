"""The lock-free sample ring shared by the audio callback and the worker."""

from __future__ import annotations

import threading

import numpy as np

from realtime.ringbuffer import RingBuffer


def test_fifo_order_across_wraparound() -> None:
    ring = RingBuffer(10)
    data = np.arange(100, dtype=np.float32)
    out = []
    position = 0
    rng = np.random.default_rng(3)
    while position < len(data) or ring.available:
        position += ring.write(data[position : position + int(rng.integers(1, 8))])
        chunk = np.zeros(int(rng.integers(1, 8)), dtype=np.float32)
        out.append(chunk[: ring.read_into(chunk)])
    assert np.array_equal(np.concatenate(out), data)


def test_write_stops_when_full_and_skip_drops() -> None:
    ring = RingBuffer(4)
    assert ring.write(np.ones(6, dtype=np.float32)) == 4
    assert ring.free == 0
    assert ring.skip(3) == 3
    assert ring.write_zeros(5) == 3
    out = np.full(8, 9.0, dtype=np.float32)
    assert ring.read_into(out) == 4
    assert list(out[:5]) == [1.0, 0.0, 0.0, 0.0, 9.0]


def test_one_writer_one_reader_thread_lose_nothing() -> None:
    ring = RingBuffer(257)
    total = 50_000
    received = np.zeros(total, dtype=np.float32)

    def writer() -> None:
        position = 0
        while position < total:
            position += ring.write(np.arange(position, min(position + 100, total), dtype=np.float32))

    thread = threading.Thread(target=writer)
    thread.start()
    got = 0
    chunk = np.zeros(64, dtype=np.float32)
    while got < total:
        count = ring.read_into(chunk)
        received[got : got + count] = chunk[:count]
        got += count
    thread.join()
    assert np.array_equal(received, np.arange(total, dtype=np.float32))
