"""File mode: enhance a WAV file with the same streaming Enhancer as live mode.

The file is fed through :class:`~realtime.enhancer.Enhancer` in blocks of the
live block size (by default the model's hop at the file's rate), so a file
result is exactly what live mode would have produced. The Enhancer's delay is
compensated: the output is time-aligned with the input and has the same
length, sample rate, channel count and sample format. Each channel is enhanced
independently by its own Enhancer (its own model state): a stereo recording
stays stereo.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.audio_file import read_wav, write_wav_atomic
from realtime.enhancer import Enhancer, framing_at_rate
from realtime.errors import AudioFileError
from realtime.model import MaskModel, read_model_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileResult:
    """What :func:`enhance_file` did."""

    frames: int
    channels: int
    sample_rate: int
    block_size: int
    latency_samples: int
    """Enhancer delay that was compensated, in samples."""


def enhance_signal(enhancer: Enhancer, signal: np.ndarray, block_size: int) -> np.ndarray:
    """Enhance a whole mono signal in blocks of ``block_size``; delay-compensated, same length.

    The enhancer is reset first. The signal is followed by enough zeros to flush
    the enhancer's delay, and the first ``enhancer.latency`` output samples are
    dropped.
    """
    enhancer.reset()
    latency = enhancer.latency
    total = len(signal) + latency
    total += (-total) % block_size
    padded = np.zeros(total, dtype=np.float32)
    padded[: len(signal)] = signal
    out = np.empty(total, dtype=np.float32)
    for start in range(0, total, block_size):
        out[start : start + block_size] = enhancer.process(padded[start : start + block_size])
    return out[latency : latency + len(signal)]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def enhance_file(
    input_path: str | Path,
    output_path: str | Path,
    model_path: str | Path,
    *,
    atten_lim_db: float | None = None,
    block_size: int | None = None,
    plot_path: str | Path | None = None,
) -> FileResult:
    """Enhance ``input_path`` into ``output_path`` (WAV); never overwrites the input.

    With ``plot_path``, also write a PNG of the first channel's input and output
    spectrograms and the gains applied (:mod:`realtime.plot`).
    """
    source, target = Path(input_path), Path(output_path)
    if _same_file(source, target) or source.resolve() == target.resolve():
        raise AudioFileError(f"output {target} is the input file; choose another output path")
    samples, rate, fmt = read_wav(source)
    model_bytes = read_model_bytes(model_path)
    models = [MaskModel(model_bytes) for _ in range(samples.shape[1])]
    block = block_size or framing_at_rate(models[0].metadata, rate).hop_length
    enhancers = [Enhancer(model, rate, block_size=block, atten_lim_db=atten_lim_db) for model in models]
    if plot_path is not None:
        enhancers[0].gain_log = []
    out = np.empty_like(samples)
    for channel, enhancer in enumerate(enhancers):
        out[:, channel] = enhance_signal(enhancer, samples[:, channel], block)
    write_wav_atomic(target, out, rate, fmt)
    if plot_path is not None:
        from realtime.plot import plot_enhancement

        gains = np.array(enhancers[0].gain_log)[: -(-len(samples) // enhancers[0].hop_length)]
        plot_enhancement(
            samples[:, 0], out[:, 0], gains, enhancers[0].framing, plot_path, title=f"{source.name} -> {target.name}"
        )
    log.info("enhanced %s -> %s (%d frames, %d channels, %d Hz)", source, target, len(out), out.shape[1], rate)
    return FileResult(len(out), out.shape[1], rate, block, enhancers[0].latency)
