"""Per-hop processing time of the Enhancer (or of a peer), in-process, on one pinned core.

    python -m benchmarks.hop_cost --model random.tflite [--rate 48000] [--seconds 30]

Feeds noise-plus-tones audio one hop at a time (the live block size) and times
every ``Enhancer.process`` call with ``time.perf_counter``. Prints median, p99,
p99.9 and max in milliseconds, the real-time factor (processing time / audio
time) and the mean split of a hop between analysis (framing + STFT), inference
(features, model, gains) and synthesis (masking, inverse FFT, overlap-add).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.machine import pinned, usable_cpus
from realtime.enhancer import Enhancer, hop_at_rate
from realtime.model import MaskModel

WARMUP_HOPS = 50
"""Hops processed before timing starts (caches, allocator, interpreter warm-up)."""
STAGES = ("analysis", "inference", "synthesis")
"""The parts of a hop timed by :attr:`realtime.enhancer.Enhancer.stage_seconds`."""


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
    stages_ms: dict[str, float] | None = None
    """Mean milliseconds per hop in each of :data:`STAGES` (quietmic only)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def noise_and_tones(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Noise plus a few tones at -20 dBFS-ish levels, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    tones = sum(0.05 * np.sin(2 * np.pi * f * t) for f in (180.0, 440.0, 1250.0, 3300.0))
    return (tones + 0.03 * rng.standard_normal(len(t))).astype(np.float32)


def time_hops(process: Callable[[np.ndarray], Any], sample_rate: int, hop: int, seconds: float) -> np.ndarray:
    """Seconds each ``process(block)`` call takes over ``seconds`` of audio in blocks of ``hop``.

    :data:`WARMUP_HOPS` untimed calls come first.
    """
    signal = noise_and_tones(sample_rate, seconds + WARMUP_HOPS * hop / sample_rate)
    blocks = signal[: len(signal) // hop * hop].reshape(-1, hop)
    times = np.empty(len(blocks) - WARMUP_HOPS)
    clock = time.perf_counter
    for i, block in enumerate(blocks):
        start = clock()
        process(block)
        if i >= WARMUP_HOPS:
            times[i - WARMUP_HOPS] = clock() - start
    return times


def summarise(times: np.ndarray, sample_rate: int, hop: int, stages_ms: dict[str, float] | None = None) -> HopCost:
    """Statistics of per-hop ``times`` (seconds)."""
    ms = times * 1000.0
    return HopCost(
        sample_rate=sample_rate,
        hop=hop,
        hops=len(times),
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        p999_ms=float(np.percentile(ms, 99.9)),
        max_ms=float(ms.max()),
        mean_ms=float(ms.mean()),
        rtf=float(times.sum() / (len(times) * hop / sample_rate)),
        stages_ms=stages_ms,
    )


def measure_hop_cost(
    model: str | Path | MaskModel, sample_rate: int, seconds: float, *, bypass: bool = False
) -> tuple[HopCost, np.ndarray]:
    """Time ``Enhancer.process`` hop by hop over ``seconds`` of audio; returns stats and raw times (s)."""
    mask_model = model if isinstance(model, MaskModel) else MaskModel(model)
    hop = hop_at_rate(mask_model.metadata, sample_rate)
    enhancer = Enhancer(mask_model, sample_rate, block_size=hop, bypass=bypass)
    enhancer.stage_seconds = np.zeros(len(STAGES))
    times = time_hops(enhancer.process, sample_rate, hop, seconds)
    per_hop = enhancer.stage_seconds * 1000.0 / enhancer.counters.hops
    stages = {name: float(value) for name, value in zip(STAGES, per_hop)}
    return summarise(times, sample_rate, hop, stages), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model file (.tflite)")
    parser.add_argument("--rate", type=int, default=48000, help="sample rate in Hz")
    parser.add_argument("--seconds", type=float, default=30.0, help="audio duration to process")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    cpu = usable_cpus()[-1]
    with pinned(cpu):
        cost, _ = measure_hop_cost(args.model, args.rate, args.seconds)
    if args.json:
        print(json.dumps({**cost.as_dict(), "cpu": cpu}, indent=2))
        return
    print(f"model {args.model} at {cost.sample_rate} Hz, hop {cost.hop} samples, {cost.hops} hops, pinned to CPU {cpu}")
    print(
        f"per-hop ms: p50 {cost.p50_ms:.4f}  p99 {cost.p99_ms:.4f}  p99.9 {cost.p999_ms:.4f}  "
        f"max {cost.max_ms:.4f}  mean {cost.mean_ms:.4f}   RTF {cost.rtf:.4f}"
    )
    assert cost.stages_ms is not None
    print("mean split ms: " + "  ".join(f"{k} {v:.4f}" for k, v in cost.stages_ms.items()))


if __name__ == "__main__":
    main()
