"""The streaming enhancer: one object for live audio, files and benchmarks.

``Enhancer.process(block)`` takes a block of mono samples of any size and
returns a block of the same size; all state (input framing, overlap-add tail,
recurrent model states) persists across calls, and ``reset()`` clears it. The
output is the enhanced input delayed by exactly :attr:`Enhancer.latency`
samples, whatever the block sizes.

Per hop (the model's hop duration at the device rate):

1. the newest window of input is analysed (normalised STFT, :mod:`realtime.dsp`);
2. features are computed from the bin power and the model returns a mask;
3. the mask is spread onto the bins, limited by the attenuation limit, and
   applied to the spectrum (``lookahead_frames`` older, if the model looks ahead);
4. the frame is synthesised and overlap-added.

Latency, in samples at the device rate:

* algorithmic = ``window - hop`` (overlap-add) ``+ lookahead_frames * hop``;
* buffering = ``hop - gcd(block, hop)`` (0 when blocks are multiples of the hop):
  output is primed with that many zeros so every call can return a full block
  even when a block does not complete a hop.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from realtime import dsp
from realtime.errors import QuietmicError
from realtime.metadata import ModelMetadata
from realtime.model import MaskModel
from realtime.ringbuffer import RingBuffer

log = logging.getLogger(__name__)


def framing_at_rate(metadata: ModelMetadata, sample_rate: int) -> dsp.Framing:
    """The model's framing at ``sample_rate`` Hz, or a :class:`QuietmicError` saying why not."""
    try:
        return metadata.framing.at_rate(sample_rate)
    except ValueError as exc:
        raise QuietmicError(
            f"model {metadata.name!r} cannot run at {sample_rate} Hz: {exc}; use a rate at which its "
            f"{1000 * metadata.window_length / metadata.sample_rate:g} ms window and "
            f"{1000 * metadata.hop_length / metadata.sample_rate:g} ms hop are whole samples "
            "(16000, 44100 and 48000 Hz are)"
        ) from None


class Enhancer:
    """Streaming speech enhancer around a :class:`~realtime.model.MaskModel`.

    Args:
        model: a loaded model or the path of a ``.tflite`` model file.
        sample_rate: rate of the audio passed to :meth:`process`, in Hz. The STFT
            runs at this rate with the model's window and hop durations.
        block_size: the block size (samples) the caller will use. Every block
            passed to :meth:`process` must then be a multiple of
            ``gcd(block_size, hop)``; in exchange the buffering latency is the
            least possible. ``None`` accepts any block size at the cost of up
            to ``hop - 1`` samples of buffering.
        atten_lim_db: most attenuation applied anywhere, in dB (``None``: no
            limit; ``0``: the output is the delayed input).
        bypass: pass the input through (delayed by the same latency) without
            running the model.
    """

    def __init__(
        self,
        model: MaskModel | str | Path,
        sample_rate: int,
        *,
        block_size: int | None = None,
        atten_lim_db: float | None = None,
        bypass: bool = False,
    ) -> None:
        self.model = model if isinstance(model, MaskModel) else MaskModel(model)
        meta = self.model.metadata
        self.sample_rate = int(sample_rate)
        self.framing = framing_at_rate(meta, self.sample_rate)
        hop = self.framing.hop_length
        if block_size is not None and block_size < 1:
            raise ValueError(f"block_size must be a positive number of samples, got {block_size}")
        self.block_size = block_size
        self.granularity = math.gcd(block_size, hop) if block_size else 1
        """Every block length must be a multiple of this many samples."""
        self.lookahead_frames = meta.lookahead_frames
        self.algorithmic_latency = self.framing.framing_latency + self.lookahead_frames * hop
        """Samples of delay from framing and lookahead."""
        self.buffering_latency = hop - self.granularity
        """Samples of delay from matching the caller's block size to the hop."""

        self._analysis, self._synthesis = self.framing.windows()
        self._features = dsp.FeatureExtractor(
            meta.features.type,
            self.framing,
            meta.framing,
            list(meta.features.band_edges_hz) if meta.features.band_edges_hz else None,
        )
        self._spread = dsp.gain_spreading_matrix(
            meta.mask.type,
            self.framing,
            meta.framing,
            list(meta.mask.band_edges_hz) if meta.mask.band_edges_hz else None,
        )
        self._max_gain = np.float32(meta.mask.max_gain)
        self.atten_lim_db = atten_lim_db
        self.bypass = bypass

        window = self.framing.window_length
        self._frame = np.zeros(window)
        self._ola = np.zeros(window)
        self._pending = np.zeros(hop)
        self._pending_count = 0
        self._spectra = np.zeros((self.lookahead_frames + 1, self.framing.n_bins), dtype=np.complex128)
        self._frame_index = 0
        self._output = RingBuffer(self.buffering_latency + hop)
        self.last_gains = np.ones(self.framing.n_bins, dtype=np.float32)
        """Bin gains applied to the most recent frame (for inspection and plots)."""
        self.last_mask = np.ones(meta.mask_size, dtype=np.float32)
        """Raw model mask of the most recent frame."""
        self.gain_log: list[np.ndarray] | None = None
        """Set to a list to collect the bin gains of every hop (for plots); None collects nothing."""
        self.stage_seconds: np.ndarray | None = None
        """Set to ``np.zeros(3)`` to add up the seconds spent per hop in analysis (framing + STFT),
        inference (features, model, gains) and synthesis (masking, inverse FFT, overlap-add);
        None (the default) times nothing."""
        self.hops_processed = 0
        self.model_resets = 0
        """How often the model state was reset because it turned non-finite."""
        self.reset()

    # --- settings that may change while streaming -------------------------------------------

    @property
    def atten_lim_db(self) -> float | None:
        """Most attenuation in dB (``None``: unlimited)."""
        return self._atten_lim_db

    @atten_lim_db.setter
    def atten_lim_db(self, value: float | None) -> None:
        self._floor = np.float32(dsp.attenuation_floor(value))
        self._atten_lim_db = value

    @property
    def latency(self) -> int:
        """Total delay of :meth:`process` output behind its input, in samples."""
        return self.algorithmic_latency + self.buffering_latency

    @property
    def latency_ms(self) -> float:
        """:attr:`latency` in milliseconds."""
        return 1000.0 * self.latency / self.sample_rate

    @property
    def hop_length(self) -> int:
        """Model hop at the device rate, in samples."""
        return self.framing.hop_length

    # --- streaming ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all past audio: buffers, overlap-add tail and model states."""
        self._frame[:] = 0.0
        self._ola[:] = 0.0
        self._pending_count = 0
        self._spectra[:] = 0.0
        self._frame_index = 0
        self._output.clear()
        self._output.write_zeros(self.buffering_latency)
        self.model.reset()

    def process(self, block: np.ndarray) -> np.ndarray:
        """Enhance one block of mono samples; returns a float32 block of the same length."""
        samples = np.asarray(block)
        if samples.ndim != 1:
            if samples.ndim == 2 and samples.shape[1] == 1:
                samples = samples[:, 0]
            else:
                raise ValueError(f"process() takes mono blocks (1-D), got shape {samples.shape}")
        if len(samples) % self.granularity:
            raise ValueError(
                f"block of {len(samples)} samples is not a multiple of {self.granularity} "
                f"(this Enhancer was made for blocks of {self.block_size}); create it with block_size=None "
                "to accept any size"
            )
        if not np.isfinite(samples).all():
            samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
        hop = self.framing.hop_length
        out = np.empty(len(samples), dtype=np.float32)
        position = filled = 0
        while position < len(samples):
            take = min(hop - self._pending_count, len(samples) - position)
            self._pending[self._pending_count : self._pending_count + take] = samples[position : position + take]
            self._pending_count += take
            position += take
            if self._pending_count == hop:
                self._pending_count = 0
                self._output.write(self._process_hop(self._pending))
                # Hand out as many samples as came in so far: the ring never holds more than priming + hop.
                filled += self._output.read_into(out[filled:position])
        filled += self._output.read_into(out[filled:])
        if filled != len(out):  # cannot happen: the priming covers every legal block sequence
            raise RuntimeError(f"internal error: enhancer output ran short by {len(out) - filled} samples")
        return out

    def _process_hop(self, new_samples: np.ndarray) -> np.ndarray:
        """Analyse, mask and synthesise one hop; returns ``hop`` finished output samples."""
        timing = self.stage_seconds is not None
        if timing:
            started = time.perf_counter()
        hop = self.framing.hop_length
        frame = self._frame
        frame[:-hop] = frame[hop:]
        frame[-hop:] = new_samples
        spectrum = np.fft.rfft(frame * self._analysis)
        self._spectra[self._frame_index % len(self._spectra)] = spectrum
        self._frame_index += 1
        if timing:
            analysed = time.perf_counter()
        gains = None if self.bypass else self._gains(spectrum.real**2 + spectrum.imag**2)
        if timing:
            inferred = time.perf_counter()
        # With lookahead, this frame's mask applies to the oldest stored spectrum.
        target = self._spectra[self._frame_index % len(self._spectra)]
        if gains is not None:
            target = target * gains
        if self.gain_log is not None:
            self.gain_log.append(np.ones(self.framing.n_bins, np.float32) if gains is None else gains.copy())
        self._ola += np.fft.irfft(target, n=len(frame)) * self._synthesis
        finished = self._ola[:hop].astype(np.float32)
        self._ola[:-hop] = self._ola[hop:]
        self._ola[-hop:] = 0.0
        self.hops_processed += 1
        if timing:
            done = time.perf_counter()
            self.stage_seconds += (analysed - started, inferred - analysed, done - inferred)
        return finished

    def _gains(self, power: np.ndarray) -> np.ndarray:
        """Bin gains for one frame from its bin power."""
        mask = self.model.step(self._features(power))
        if not np.isfinite(mask).all() or not self.model.states_finite():
            # A non-finite state would poison every later frame: start the model afresh.
            self.model.reset()
            self.model_resets += 1
            mask = np.ones_like(mask)
        self.last_mask = mask
        gains = self._spread @ np.clip(mask, 0.0, self._max_gain)
        if self._floor > 0:
            gains = self._floor + (1.0 - self._floor) * gains
        self.last_gains = gains
        return gains
