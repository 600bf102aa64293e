"""Enhancing audio at any rate: resample with soxr to a rate the model's framing fits, enhance, resample back.

The model's window and hop are whole numbers of samples only at some rates (8, 16, 32, 44.1, 48,
96 kHz... for a 20 ms / 10 ms model). :func:`processing_rate` picks the rate a signal at any other
rate is enhanced at, and :class:`AlignedPipeline` streams the signal through soxr, the channels'
:class:`~realtime.enhancer.Enhancer`\\ s and soxr back, taking the Enhancer's delay out between
the two resamplers (soxr's streams are themselves aligned): output sample ``i`` is input sample
``i`` enhanced. :func:`realtime.enhance` (arrays) and file mode (:mod:`realtime.files.file_mode`)
both run on it. soxr is imported only when a signal needs resampling.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from realtime.errors import QuietmicError

if TYPE_CHECKING:
    from realtime.enhancer import Enhancer
    from realtime.metadata import ModelMetadata

MIN_RATE = 8_000
"""Lowest sample rate enhanced, Hz (narrow-band telephone speech; below it there is no speech band to enhance)."""
MAX_RATE = 384_000
"""Highest sample rate enhanced, Hz."""
MAX_RESAMPLE_FACTOR = 8
"""Largest integer factor tried first to reach a rate the model's framing fits (11025 Hz -> x4 = 44100 Hz)."""
RESAMPLE_QUALITY = "HQ"
"""soxr's quality preset: 20-bit precision, pass band to 91 % of the lower Nyquist frequency."""


def fits_framing(metadata: ModelMetadata, sample_rate: int) -> bool:
    """Whether the model's window and hop are whole numbers of samples at ``sample_rate`` Hz."""
    try:
        metadata.framing.at_rate(sample_rate)
    except ValueError:
        return False
    return True


def processing_rate(metadata: ModelMetadata, sample_rate: int, source: str = "the signal") -> int:
    """The rate, Hz, at which audio at ``sample_rate`` Hz is enhanced.

    ``sample_rate`` itself where the model's framing fits it (8, 16, 32, 44.1, 48, 96 kHz for a
    10 ms hop); else the least integer multiple up to :data:`MAX_RESAMPLE_FACTOR` that fits
    (11025 and 22050 Hz: 44100 Hz); else the least rate above it that fits (12345 Hz: 12400 Hz).
    Raises :class:`QuietmicError` (naming ``source``) when the rate is outside
    :data:`MIN_RATE`..:data:`MAX_RATE`.
    """
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise QuietmicError(
            f"{source}: the sample rate {sample_rate} Hz is outside the {MIN_RATE}..{MAX_RATE} Hz quietmic "
            "enhances; resample it to 16000 or 48000 Hz first"
        )
    for factor in range(1, MAX_RESAMPLE_FACTOR + 1):
        if fits_framing(metadata, sample_rate * factor):
            return sample_rate * factor
    # The window and hop are whole samples exactly at the multiples of this step (100 Hz for 20/10 ms).
    step = metadata.sample_rate // math.gcd(metadata.sample_rate, math.gcd(metadata.window_length, metadata.hop_length))
    rate = -(-sample_rate // step) * step
    assert fits_framing(metadata, rate), f"{rate} Hz should fit the model's framing"
    return rate


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` (mono, or ``(frames, channels)``) at ``target`` Hz, in one go (soxr)."""
    if rate == target:
        return samples
    import soxr

    return soxr.resample(samples, rate, target, quality=RESAMPLE_QUALITY)


class AlignedPipeline:
    """All channels' path through the engine: resample (if needed), enhance, resample back; aligned.

    Fed consecutive chunks of ``(frames, channels)`` float32 samples at the signal's rate, it
    returns the aligned output so far (fewer frames than fed at first: the enhancer's delay); the
    call with ``last=True`` flushes the rest, so that in all the output has the input's length (give
    or take a frame of resampling rounding, which the caller trims or pads). Output frame ``i`` is
    the enhanced input frame ``i``. ``enhancers`` holds one mono Enhancer per channel, all at the
    processing rate (:func:`processing_rate`).
    """

    def __init__(self, enhancers: list[Enhancer], signal_rate: int, block_size: int, *, record: bool = False) -> None:
        self.enhancers = enhancers
        self.signal_rate = signal_rate
        """The signal's rate, Hz."""
        self.rate = enhancers[0].sample_rate
        """Processing rate, Hz."""
        self.block_size = block_size
        """Samples per Enhancer.process call, at the processing rate."""
        channels = len(enhancers)
        self.resampling = self.rate != signal_rate
        if self.resampling:
            import soxr

            self._up = soxr.ResampleStream(signal_rate, self.rate, channels, dtype="float32", quality=RESAMPLE_QUALITY)
            self._down = soxr.ResampleStream(self.rate, signal_rate, channels, dtype="float32", quality=RESAMPLE_QUALITY)
        self._pending = np.zeros((0, channels), np.float32)
        """Processing-rate samples waiting for a whole block."""
        self._to_drop = enhancers[0].latency
        """Enhancer output samples still to drop (its delay)."""
        self._produced = 0
        """Processing-rate input samples so far (the length the aligned enhanced stream must reach)."""
        self._kept = 0
        """Aligned enhanced samples so far, at the processing rate."""
        self.recorded: tuple[list[np.ndarray], list[np.ndarray]] | None = ([], []) if record else None
        """With ``record``: the first channel's enhancer input and aligned output at the processing rate (plots)."""

    @property
    def latency(self) -> int:
        """The Enhancer's delay that is compensated, samples at the processing rate."""
        return self.enhancers[0].latency

    def _enhance(self, samples: np.ndarray) -> np.ndarray:
        """The aligned enhanced samples completed by ``samples`` (processing rate), all channels."""
        buffered = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        whole = len(buffered) - len(buffered) % self.block_size
        self._pending = buffered[whole:]
        out = np.empty((whole, len(self.enhancers)), np.float32)
        for start in range(0, whole, self.block_size):
            block = buffered[start : start + self.block_size]
            for channel, enhancer in enumerate(self.enhancers):
                out[start : start + self.block_size, channel] = enhancer.process(block[:, channel])
        drop = min(self._to_drop, whole)
        self._to_drop -= drop
        return out[drop:]

    def process(self, chunk: np.ndarray, *, last: bool = False) -> np.ndarray:
        """Aligned float32 output at the signal's rate completed by ``chunk`` (the rest too with ``last``)."""
        high = self._up.resample_chunk(chunk, last=last) if self.resampling else chunk
        self._produced += len(high)
        enhanced = [self._enhance(high)]
        if last:  # zeros through the enhancer until its delay is flushed
            zeros = np.zeros((self.block_size, len(self.enhancers)), np.float32)
            while self._kept + sum(map(len, enhanced)) < self._produced:
                enhanced.append(self._enhance(zeros))
        aligned = np.concatenate(enhanced)[: self._produced - self._kept]
        if self.recorded is not None:
            self.recorded[0].append(high[:, 0].copy())
            self.recorded[1].append(aligned[:, 0].copy())
        self._kept += len(aligned)
        return self._down.resample_chunk(aligned, last=last) if self.resampling else aligned
