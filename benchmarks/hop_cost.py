"""Per-hop processing time of the Enhancer, in-process, on one pinned core.

    python -m benchmarks.hop_cost --model random.tflite [--rate 48000] [--seconds 30]

Feeds noise-plus-tones audio one hop at a time (the live block size) and times
every ``Enhancer.process`` call with ``time.perf_counter``. Prints median, p99,
p99.9 and max in milliseconds and the real-time factor (processing time /
audio time).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from realtime.enhancer import Enhancer, framing_at_rate
from realtime.model import MaskModel

WARMUP_HOPS = 50
"""Hops processed before timing starts (caches, allocator, interpreter warm-up)."""


@dataclass(frozen=True)
class HopCost:
    """Per-hop processing time statistics (milliseconds) and real-time factor."""

    sample_rate: int
    hop: int
    hops: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    rtf: float


def pin_to_one_core() -> int | None:
    """Pin this process to one CPU (the last one it may use); returns it, or None if unsupported."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
        return cpus[-1]
    except (AttributeError, OSError):
        return None


def noise_and_tones(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Noise plus a few tones at -20 dBFS-ish levels, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    tones = sum(0.05 * np.sin(2 * np.pi * f * t) for f in (180.0, 440.0, 1250.0, 3300.0))
    return (tones + 0.03 * rng.standard_normal(len(t))).astype(np.float32)


def measure_hop_cost(model: str | Path, sample_rate: int, seconds: float) -> tuple[HopCost, np.ndarray]:
    """Time ``Enhancer.process`` hop by hop over ``seconds`` of audio; returns stats and raw times (s)."""
    mask_model = MaskModel(model)
    hop = framing_at_rate(mask_model.metadata, sample_rate).hop_length
    enhancer = Enhancer(mask_model, sample_rate, block_size=hop)
    signal = noise_and_tones(sample_rate, seconds + WARMUP_HOPS * hop / sample_rate)
    blocks = signal[: len(signal) // hop * hop].reshape(-1, hop)
    times = np.empty(len(blocks) - WARMUP_HOPS)
    for i, block in enumerate(blocks):
        start = time.perf_counter()
        enhancer.process(block)
        if i >= WARMUP_HOPS:
            times[i - WARMUP_HOPS] = time.perf_counter() - start
    ms = times * 1000.0
    cost = HopCost(
        sample_rate=sample_rate,
        hop=hop,
        hops=len(times),
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        p999_ms=float(np.percentile(ms, 99.9)),
        max_ms=float(ms.max()),
        mean_ms=float(ms.mean()),
        rtf=float(times.sum() / (len(times) * hop / sample_rate)),
    )
    return cost, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model file (.tflite)")
    parser.add_argument("--rate", type=int, default=48000, help="sample rate in Hz")
    parser.add_argument("--seconds", type=float, default=30.0, help="audio duration to process")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    cpu = pin_to_one_core()
    cost, _ = measure_hop_cost(args.model, args.rate, args.seconds)
    if args.json:
        print(json.dumps({**asdict(cost), "cpu": cpu}, indent=2))
        return
    print(f"model {args.model} at {cost.sample_rate} Hz, hop {cost.hop} samples, {cost.hops} hops, pinned to CPU {cpu}")
    print(
        f"per-hop ms: p50 {cost.p50_ms:.4f}  p99 {cost.p99_ms:.4f}  p99.9 {cost.p999_ms:.4f}  "
        f"max {cost.max_ms:.4f}  mean {cost.mean_ms:.4f}   RTF {cost.rtf:.4f}"
    )


if __name__ == "__main__":
    main()
