"""The streaming enhancer: one object for live audio, files and benchmarks.

``Enhancer.process(block)`` takes a block of samples (mono, 1-D, or ``(frames,
channels)``) and returns a float32 block of the same shape; all state (input
framing, overlap-add tail, recurrent model states, one set per channel) persists
across calls, ``flush()`` returns the rest of the stream and ``reset()`` clears it.
The output is the enhanced input delayed by exactly :attr:`Enhancer.latency`
samples, whatever the block sizes.

Each channel has its own model and state: channel 0 is the Enhancer itself, the
others are Enhancers of their own (:attr:`Enhancer.channel_enhancers`) that it
feeds with the same settings.

Per hop (the model's hop duration at the device rate):

1. the newest window of input is analysed (normalised STFT, :mod:`realtime.dsp`);
2. features are computed from the bin power and the model returns a mask;
3. the mask is spread onto the bins, limited by the attenuation limit, and
   applied to the spectrum (``lookahead_frames`` older, if the model looks ahead);
4. the frame is synthesised and overlap-added.

Phase-aware models (metadata format version 2) also get the low band's complex
spectrum (:func:`realtime.dsp.low_band_spectrum`) and return deep-filter
coefficients: the low band of the frame being shaped becomes ``gain * X`` plus a
complex FIR filter over the stored spectra of the frames around it
(:func:`realtime.dsp.deep_filter_offsets`: e.g. the previous, the same and the
next frame). The filter's future taps never reach past the newest frame (the
metadata refuses a filter lookahead beyond ``lookahead_frames``), so it adds no
latency. Under an attenuation limit the output is ``floor * X + (1 - floor) *
estimate`` in every bin (:func:`realtime.dsp.scale_deep_filter`): for gain-only
models exactly the old limit, computed as before.

Faults never stop the stream or poison later output:

* samples that are not audio, non-finite (NaN, +-Inf) or beyond
  +-:data:`MAX_SAMPLE_MAGNITUDE`, are replaced with silence, and the model
  restarts (reset states) at the first frame clear of them: the fault leaves no
  trace in its memory, so the output is a freshly started model's at once;
* when a model state turns non-finite, the model is reset;
* a deep filter also reads the spectra of the frames before the one it shapes
  (silenced samples give finite spectra): after invalid input, the output is a
  freshly started model's once the invalid samples are older than the filter's
  oldest tap;
* when running the model fails (``MaskModel.step`` or ``run`` raises), the hop passes the
  input through unmasked (same latency, no gap: the overlap-add crossfades), the
  failure is counted and logged once per episode, and the model is tried again
  (from a reset state) after :data:`MODEL_RETRY_SECONDS`.

Latency, in samples at the device rate:

* algorithmic = ``window - hop`` (overlap-add) ``+ lookahead_frames * hop``;
* buffering = ``hop - gcd(block, hop)`` (0 when blocks are multiples of the hop):
  output is primed with that many zeros so every call can return a full block
  even when a block does not complete a hop. ``block`` is the block size declared
  (``block_size=N``) or, by default, the size of the first block fed; with
  ``block_size="any"`` blocks of any size are accepted, at ``hop - 1`` samples.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np

from realtime import dsp
from realtime.default_model import DEFAULT_ATTEN_LIM_DB, DEFAULT_MODEL_NAME
from realtime.errors import ModelError, QuietmicError
from realtime.metadata import ModelMetadata
from realtime.model import MaskModel
from realtime.ringbuffer import RingBuffer

log = logging.getLogger(__name__)

MAX_SAMPLE_MAGNITUDE = 1e15
"""Largest input sample magnitude treated as audio (300 dB above full scale); larger ones are
faults, like NaN. Up to it the power of a frame (at most ``(window * MAX_SAMPLE_MAGNITUDE) ** 2``)
fits float32 features for any window up to 18000 samples: no input can overflow them to Inf."""

MODEL_RETRY_SECONDS = 1.0
"""After the model fails, the input passes through unmasked for this long (seconds of audio)
before the model is tried again."""

ANY_BLOCK_SIZE = "any"
"""The ``block_size`` that accepts blocks of any size, one call to the next, at the cost of
``hop - 1`` samples of buffering delay."""

BlockSize = int | Literal["any"] | None
"""What ``block_size`` takes: samples per block, :data:`ANY_BLOCK_SIZE`, or None (the first block's)."""


def _is_count(value: object) -> bool:
    """Whether ``value`` is a whole number (not a bool): a count of samples or channels."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def checked_sample_rate(sample_rate: object, model: object = None) -> int:
    """``sample_rate`` as a whole number of Hz, or a TypeError/ValueError saying what to pass."""
    if sample_rate is None:
        if _is_count(model):
            raise TypeError(
                f"Enhancer({model}) passes {model} as the model; the sample rate comes second: "
                f"Enhancer(sample_rate={model}) or Enhancer('default', {model})"
            )
        raise TypeError("Enhancer needs the sample rate of the audio, in Hz: Enhancer(sample_rate=48000)")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real) or sample_rate != int(sample_rate):
        raise ValueError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def _check_block_size(block_size: object) -> None:
    """Refuse a ``block_size`` that is neither a positive count, None nor :data:`ANY_BLOCK_SIZE`."""
    if block_size is None or block_size == ANY_BLOCK_SIZE or (_is_count(block_size) and block_size >= 1):
        return
    raise ValueError(
        f"block_size must be a positive number of samples, None (the first block's) or {ANY_BLOCK_SIZE!r} "
        f"(any size), got {block_size!r}"
    )


def framing_at_rate(metadata: ModelMetadata, sample_rate: int) -> dsp.Framing:
    """The model's framing at ``sample_rate`` Hz, or a :class:`QuietmicError` saying why not."""
    try:
        return metadata.framing.at_rate(sample_rate)
    except ValueError as exc:
        raise QuietmicError(
            f"model {metadata.name!r} cannot run at {sample_rate} Hz: {exc}; use a rate at which its "
            f"{1000 * metadata.window_length / metadata.sample_rate:g} ms window and "
            f"{1000 * metadata.hop_length / metadata.sample_rate:g} ms hop are whole samples "
            "(16000, 44100 and 48000 Hz are), or resample the audio to one"
        ) from None


def hop_at_rate(metadata: ModelMetadata, sample_rate: int) -> int:
    """The model's hop at ``sample_rate`` Hz, in samples: the block size that adds no buffering delay.

    Raises a :class:`QuietmicError` saying why when the model's framing does not fit that rate
    (see :func:`framing_at_rate`).
    """
    return framing_at_rate(metadata, sample_rate).hop_length


@dataclass
class EnhancerCounters:
    """What an :class:`Enhancer` counted since it was made (:meth:`Enhancer.reset` keeps the counts)."""

    hops: int = 0
    """Hops analysed, masked and synthesised."""
    model_resets: int = 0
    """How often the model was reset because a state turned non-finite or after invalid input."""
    invalid_samples: int = 0
    """Input samples that were non-finite or beyond +-MAX_SAMPLE_MAGNITUDE (replaced with 0)."""
    model_failures: int = 0
    """Hops on which running the model raised an error (those hops passed the input through)."""

    def __add__(self, other: EnhancerCounters) -> EnhancerCounters:
        """The counts of both, added field by field (the channels of one stream)."""
        return EnhancerCounters(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


class Enhancer:
    """Streaming speech enhancer around a :class:`~realtime.model.MaskModel`.

    ``Enhancer(sample_rate=48000)`` runs the bundled default model with the app's settings;
    feed it blocks with :meth:`process` and end the stream with :meth:`flush`.

    Args:
        model: a loaded model, the path of a ``.tflite`` model file (or its bytes), or the name
            of a bundled model (``"default"``, ``"low-latency"``). None: the default model.
        sample_rate: rate of the audio passed to :meth:`process`, in Hz. The STFT runs at this
            rate with the model's window and hop durations; rates at which they are not whole
            samples are refused (resample the audio first).
        block_size: samples per block. None (the default): the size of the first block passed
            to :meth:`process`. Every later block must then be a multiple of
            ``gcd(block_size, hop)``; in exchange the buffering latency is the least possible
            for that block size (none for whole hops). :data:`ANY_BLOCK_SIZE` (``"any"``) accepts
            any size, one call to the next, at the cost of ``hop - 1`` samples of buffering.
        channels: channels per block, each enhanced by its own copy of the model with its own
            state (blocks of shape ``(frames, channels)``). None: the first block's (1-D: one).
        atten_lim_db: most attenuation applied anywhere, in dB; the app's default
            (:data:`~realtime.default_model.DEFAULT_ATTEN_LIM_DB`, 35 dB) unless given.
            ``None``: no limit; ``0``: the output is the delayed input.
        bypass: pass the input through (delayed by the same latency) without
            running the model.
        fallback: when running the model fails, pass the input through and try the
            model again later (live audio); False raises a :class:`ModelError`.

    The first non-empty block fixes what was not declared (block size, channel count) for the
    Enhancer's life; :meth:`reset` keeps them. Inspection attributes (``last_gains``,
    ``last_mask``, ``gain_log``, ``stage_seconds``, ``model_error``, ``model_failing``) are
    channel 0's; :attr:`counters` adds up all channels.
    """

    def __init__(
        self,
        model: MaskModel | str | Path | bytes | None = DEFAULT_MODEL_NAME,
        sample_rate: int | None = None,
        *,
        block_size: BlockSize = None,
        channels: int | None = None,
        atten_lim_db: float | None = DEFAULT_ATTEN_LIM_DB,
        bypass: bool = False,
        fallback: bool = True,
    ) -> None:
        self._followers: list[Enhancer] = []
        """The Enhancers of channels 1 and up (channel 0 is this one)."""
        self.sample_rate = checked_sample_rate(sample_rate, model)
        if not isinstance(model, (MaskModel, str, os.PathLike, bytes)) and model is not None:
            raise TypeError(
                f"model must be a MaskModel, a .tflite path or a bundled model's name, not {type(model).__name__}"
            )
        _check_block_size(block_size)
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1):
            raise ValueError(f"channels must be a positive number (or None: the first block's), got {channels!r}")
        self.model = model if isinstance(model, MaskModel) else MaskModel(DEFAULT_MODEL_NAME if model is None else model)
        self.fallback = fallback
        meta = self.model.metadata
        self.framing = framing_at_rate(meta, self.sample_rate)
        hop = self.framing.hop_length
        self._block_size_given: BlockSize = block_size
        """``block_size`` as given (the channels' Enhancers are made with it)."""
        self.block_size: int | None = int(block_size) if _is_count(block_size) else None
        """Samples per block: as declared, else the first block's once it came; None before it, or for "any"."""
        self._granularity: int | None = (
            math.gcd(self.block_size, hop) if self.block_size else 1 if block_size == ANY_BLOCK_SIZE else None
        )
        self.lookahead_frames = meta.lookahead_frames
        self.algorithmic_latency = self.framing.framing_latency + self.lookahead_frames * hop
        """Samples of delay from framing and lookahead."""

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
        self._spectrum_bins = meta.features.spectrum.bins if meta.features.spectrum else 0
        self._deep = meta.mask.deep_filter
        history = 0
        """Stored spectra older than the frame being shaped that the deep filter reads."""
        if self._deep is not None:
            offsets = dsp.deep_filter_offsets(self._deep.order, self._deep.lookahead)
            history = -offsets[0]
            self._deep_bins = min(self._deep.bins, self.framing.n_bins)
            """Device bins the filter shapes (fewer than the model's on a device below its low band's top)."""
            ring = self.lookahead_frames + history + 1
            self._tap_rows = [np.asarray(offsets) + (index - 1 - self.lookahead_frames) for index in range(ring)]
            """Ring rows of the filter's taps, oldest first, by ``frame count % ring size`` (the count after
            the newest frame is stored): precomputed, as every hop needs them."""
            for rows in self._tap_rows:
                rows %= ring
        self.last_deep_filter = np.zeros((self._deep.order, self._deep.bins) if self._deep else (0, 0), np.complex128)
        """Complex deep-filter coefficients applied to the most recent frame (``[order, bins]``, after
        clipping and the attenuation limit); empty for a gain-only model."""

        window = self.framing.window_length
        self._frame = np.zeros(window)
        self._ola = np.zeros(window)
        self._pending = np.zeros(hop)
        self._pending_count = 0
        self._spectra = np.zeros((self.lookahead_frames + history + 1, self.framing.n_bins), dtype=np.complex128)
        """Ring of the newest spectra: frame ``m`` is at ``m % len``; the frame shaped is ``lookahead_frames``
        older than the newest, the deep filter reaches ``history`` frames further back."""
        self._frame_index = 0
        self._output = RingBuffer(2 * hop)
        """Finished output not yet handed out: at most the priming (under a hop) plus one hop."""
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
        self._counters = EnhancerCounters()
        self.model_error: str | None = None
        """The most recent model error (``"Type: message"``), None if the model never failed."""
        self.model_failing = False
        """Whether the model is failing now: hops pass the input through until a retry succeeds."""
        self.model_retry_hops = max(1, round(MODEL_RETRY_SECONDS * self.sample_rate / hop))
        """Hops passed through after a model failure before the model is tried again."""
        self._retry_hop = 0
        self._failure_episodes = 0
        self._consumed = 0
        """Input samples taken into complete hops since the last reset."""
        self._last_invalid: int | None = None
        """Input sample index of the latest invalid sample whose frames are still to come (None: none)."""
        self._channels: int | None = None
        self._channels_declared = channels is not None
        self._two_d = False
        """Whether the latest non-empty block was 2-D (``(frames, channels)``): :meth:`flush` answers alike."""
        self.reset()
        if channels is not None:
            self._set_channels(int(channels))

    # --- settings that may change while streaming -------------------------------------------

    @property
    def atten_lim_db(self) -> float | None:
        """Most attenuation in dB (``None``: unlimited)."""
        return self._atten_lim_db

    @atten_lim_db.setter
    def atten_lim_db(self, value: float | None) -> None:
        self._floor = np.float32(dsp.attenuation_floor(value))
        self._atten_lim_db = value
        for follower in self._followers:
            follower.atten_lim_db = value

    @property
    def bypass(self) -> bool:
        """Whether the input passes through (delayed by the same latency) without running the model."""
        return self._bypass

    @bypass.setter
    def bypass(self, value: bool) -> None:
        self._bypass = bool(value)
        for follower in self._followers:
            follower.bypass = value

    @property
    def fallback(self) -> bool:
        """On a model error, pass the input through and retry later (live); False raises a
        :class:`ModelError` instead (files: an output that is partly not enhanced is no result)."""
        return self._fallback

    @fallback.setter
    def fallback(self, value: bool) -> None:
        self._fallback = bool(value)
        for follower in self._followers:
            follower.fallback = value

    # --- what it is --------------------------------------------------------------------------

    @property
    def granularity(self) -> int:
        """Every block length must be a multiple of this many samples: ``gcd(block_size, hop)``."""
        if self._granularity is None:
            raise QuietmicError(
                "this Enhancer takes its block size, and with it its latency, from the first block passed to "
                "process(): pass a block first, or make it with block_size=N (samples per block)"
            )
        return self._granularity

    @property
    def buffering_latency(self) -> int:
        """Samples of delay from matching the caller's block size to the hop: ``hop - granularity``."""
        return self.hop_length - self.granularity

    @property
    def latency(self) -> int:
        """Total delay of :meth:`process` output behind its input, in samples (known once the block
        size is: declared, or after the first block)."""
        return self.algorithmic_latency + self.buffering_latency

    @property
    def latency_ms(self) -> float:
        """:attr:`latency` in milliseconds."""
        return 1000.0 * self.latency / self.sample_rate

    @property
    def hop_length(self) -> int:
        """Model hop at the device rate, in samples."""
        return self.framing.hop_length

    @property
    def channels(self) -> int | None:
        """Channels per block, each with its own model state: as declared, else the first block's
        (None before it)."""
        return self._channels

    @property
    def channel_enhancers(self) -> list[Enhancer]:
        """One Enhancer per channel, channel 0 (this one) first."""
        return [self, *self._followers]

    @property
    def counters(self) -> EnhancerCounters:
        """Hops, model resets, invalid input samples and model failures so far, all channels added
        up (:meth:`reset` keeps the counts)."""
        total = self._counters
        for follower in self._followers:
            total = total + follower._counters
        return total

    # --- streaming ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all past audio, of every channel: buffers, overlap-add tail and model states.

        The block size and channel count stay as they were (declared, or fixed by the first block).
        """
        self._frame[:] = 0.0
        self._ola[:] = 0.0
        self._pending_count = 0
        self._spectra[:] = 0.0
        self._frame_index = 0
        self._output.clear()
        if self._granularity is not None:
            self._output.write_zeros(self.buffering_latency)
        self.model.reset()
        self._retry_hop = 0  # a failing model is tried again at once
        self._consumed = 0
        self._last_invalid = None
        for follower in self._followers:
            follower.reset()

    def process(self, block: np.ndarray) -> np.ndarray:
        """Enhance one block; returns float32 samples of the same shape, :attr:`latency` samples late.

        Args:
            block: mono samples (1-D) or ``(frames, channels)``, full scale +-1; any real dtype
                (integers are taken as they are: scale int16/int32 audio to +-1 first, or use
                :func:`realtime.enhance`). The first non-empty block fixes the block size and the
                channel count unless they were declared.

        Raises:
            ValueError: for a block of another shape than the Enhancer's, or one whose length is
                not a multiple of :attr:`granularity`; the stream is left untouched.
        """
        samples = np.asarray(block)
        if samples.ndim not in (1, 2) or (samples.ndim == 2 and samples.shape[1] == 0):
            raise ValueError(
                f"process() takes blocks of shape (frames,) or (frames, channels), got shape {samples.shape}"
            )
        frames = samples.shape[0]
        channels = 1 if samples.ndim == 1 else samples.shape[1]
        if frames:
            self._check_block(frames, channels)
            self._two_d = samples.ndim == 2
        elif self._channels is not None and channels != self._channels:
            self._refuse_channels(channels)
        if samples.ndim == 1:
            return self._process_channel(samples)
        out = np.empty(samples.shape, dtype=np.float32)
        for index, enhancer in enumerate(self.channel_enhancers):
            out[:, index] = enhancer._process_channel(samples[:, index])
        return out

    def flush(self) -> np.ndarray:
        """End the stream: returns the last :attr:`latency` samples of output, then :meth:`reset`.

        After blocks totalling ``N`` samples, :meth:`process` has returned ``N`` samples: the
        enhanced input up to ``latency`` samples before its end, behind ``latency`` samples of
        start-up silence. ``flush()`` returns the rest (float32, ``(latency,)``, or ``(latency,
        channels)`` if the blocks were 2-D): drop the first ``latency`` samples of all the output
        and the enhanced stream lines up with its input, same length. The Enhancer is then ready
        for a new stream (same block size and channels). Before any block: an empty array.
        """
        if self._granularity is None:  # no block yet: nothing to flush
            channels = self._channels or 1
            return np.zeros((0, channels) if channels > 1 else 0, dtype=np.float32)
        latency, granularity = self.latency, self.granularity
        feed = -(-latency // granularity) * granularity
        channels = self._channels or 1
        zeros = np.zeros((feed, channels) if self._two_d or channels > 1 else feed, dtype=np.float32)
        rest = self.process(zeros)[:latency]
        self.reset()
        return rest

    def _check_block(self, frames: int, channels: int) -> None:
        """Fix what the first block decides, and refuse a block that does not fit; changes no audio state."""
        if self._channels is None:
            self._set_channels(channels)
        elif channels != self._channels:
            self._refuse_channels(channels)
        if self._granularity is None:
            for enhancer in self.channel_enhancers:
                enhancer._set_block_size(frames)
        if frames % self._granularity:
            if self._block_size_given is None:
                made = f"took its block size from its first block ({self.block_size} samples)"
            else:
                made = f"was made for blocks of {self.block_size}"
            raise ValueError(
                f"block of {frames} samples is not a multiple of {self._granularity}: this Enhancer {made}; "
                f"pass blocks whose length is a multiple of {self._granularity}, or make it with "
                f"block_size={ANY_BLOCK_SIZE!r} to accept any size (at up to {self.hop_length - 1} samples more delay)"
            )

    def _refuse_channels(self, channels: int) -> None:
        """Refuse a block with another channel count than the Enhancer's."""
        raise ValueError(
            f"block of {channels} channel(s), but this Enhancer has {self._channels} (one model state each, "
            f"{'as made' if self._channels_declared else 'from its first block'}); pass blocks of shape "
            f"(frames, {self._channels}), or make another Enhancer for this layout"
        )

    def _set_channels(self, channels: int) -> None:
        """Make the Enhancers of channels 1 and up (each with its own copy of the model)."""
        self._channels = channels
        self._followers = [
            Enhancer(
                self.model.clone(),
                self.sample_rate,
                block_size=self._block_size_given,
                channels=1,
                atten_lim_db=self.atten_lim_db,
                bypass=self.bypass,
                fallback=self.fallback,
            )
            for _ in range(channels - 1)
        ]
        if channels > 1:
            log.debug("enhancing %d channels, each with its own model state", channels)

    def _set_block_size(self, frames: int) -> None:
        """Take the block size from the first block (``frames`` samples) and prime the output for it."""
        self.block_size = frames
        self._granularity = math.gcd(frames, self.hop_length)
        self._output.write_zeros(self.buffering_latency)
        log.debug(
            "block size %d samples (from the first block): %d samples of buffering delay", frames, self.buffering_latency
        )

    def _process_channel(self, samples: np.ndarray) -> np.ndarray:
        """Enhance one channel's block (1-D, already checked); float32 of the same length."""
        invalid = None
        if len(samples) and not float(np.max(np.abs(samples))) <= MAX_SAMPLE_MAGNITUDE:  # also true for NaN
            samples, invalid = self._silence_invalid(samples)
        hop = self.framing.hop_length
        out = np.empty(len(samples), dtype=np.float32)
        position = filled = 0
        while position < len(samples):
            take = min(hop - self._pending_count, len(samples) - position)
            if invalid is not None:
                self._note_invalid(invalid[position : position + take])
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

    def _silence_invalid(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``samples`` with the invalid ones (non-finite or beyond +-MAX_SAMPLE_MAGNITUDE) set to 0,
        and where they were (a boolean mask); counts them and logs the first."""
        with np.errstate(invalid="ignore"):
            invalid = ~(np.abs(samples) <= MAX_SAMPLE_MAGNITUDE)  # True for NaN and +-Inf
        if self._counters.invalid_samples == 0:
            log.warning(
                "the input has samples that are not audio (NaN, Inf or beyond +-%g): they are replaced with "
                "silence and the model restarts after them; check the audio source",
                MAX_SAMPLE_MAGNITUDE,
            )
        self._counters.invalid_samples += int(np.count_nonzero(invalid))
        return np.where(invalid, 0.0, samples), invalid

    def _note_invalid(self, invalid: np.ndarray) -> None:
        """Remember the last invalid sample of the chunk about to enter the pending hop (``invalid``: its
        mask), so that the model restarts at the first frame clear of it."""
        where = np.flatnonzero(invalid)
        if len(where):
            self._last_invalid = self._consumed + self._pending_count + int(where[-1])

    def _process_hop(self, new_samples: np.ndarray) -> np.ndarray:
        """Analyse, mask and synthesise one hop; returns ``hop`` finished output samples."""
        timing = self.stage_seconds is not None
        if timing:
            started = time.perf_counter()
        hop = self.framing.hop_length
        frame = self._frame
        frame[:-hop] = frame[hop:]
        frame[-hop:] = new_samples
        self._consumed += hop
        if self._last_invalid is not None and self._consumed - len(frame) > self._last_invalid:
            self._restart_model()  # the first frame clear of the invalid samples
        spectrum = np.fft.rfft(frame * self._analysis)
        self._spectra[self._frame_index % len(self._spectra)] = spectrum
        self._frame_index += 1
        if timing:
            analysed = time.perf_counter()
        outputs = None if self.bypass else self._guarded_outputs(spectrum)
        gains = None if outputs is None else outputs[0]
        if timing:
            inferred = time.perf_counter()
        # With lookahead, this frame's mask applies to the frame lookahead_frames older than this one.
        target = self._spectra[(self._frame_index - 1 - self.lookahead_frames) % len(self._spectra)]
        if gains is not None:
            target = target * gains
            if outputs[1] is not None:
                target[: self._deep_bins] += self._filtered_low_band(outputs[1])
        if self.gain_log is not None:
            self.gain_log.append(np.ones(self.framing.n_bins, np.float32) if gains is None else gains.copy())
        self._ola += np.fft.irfft(target, n=len(frame)) * self._synthesis
        finished = self._ola[:hop].astype(np.float32)
        self._ola[:-hop] = self._ola[hop:]
        self._ola[-hop:] = 0.0
        self._counters.hops += 1
        if timing:
            done = time.perf_counter()
            self.stage_seconds += (analysed - started, inferred - analysed, done - inferred)
        return finished

    def _restart_model(self) -> None:
        """Reset the model states after invalid input, so the fault leaves nothing in its memory."""
        self._last_invalid = None
        self.model.reset()
        self._counters.model_resets += 1

    def _filtered_low_band(self, coefficients: np.ndarray) -> np.ndarray:
        """The deep filter's output for the frame being shaped: ``[deep bins]`` complex."""
        taps = self._spectra[self._tap_rows[self._frame_index % len(self._spectra)], : self._deep_bins]
        return dsp.apply_deep_filter(taps, coefficients[:, : self._deep_bins])

    def _guarded_outputs(self, spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Bin gains and deep-filter coefficients (None for a gain-only model) for one frame, or
        None (pass it through) while the model is failing."""
        if self.model_failing and self._counters.hops < self._retry_hop:
            return None
        try:
            outputs = self._gains(spectrum)
        except Exception as exc:  # noqa: BLE001 - any model error: fall back to pass-through
            if not self.fallback:
                raise ModelError(f"{self.model.source}: running the model failed ({type(exc).__name__}: {exc}); "
                                 f"check it with 'quietmic info --model {self.model.source}'") from exc
            self._model_failed(exc)
            return None
        if self.model_failing:
            self.model_failing = False
            log.warning("the model runs again; enhancing again (%d failed hops so far)", self._counters.model_failures)
        return outputs

    def _model_failed(self, exc: Exception) -> None:
        """Count a model failure, log it once per episode, and back off before the next try."""
        self._counters.model_failures += 1
        self.model_error = f"{type(exc).__name__}: {exc}"
        if not self.model_failing:
            self.model_failing = True
            self._failure_episodes += 1
            log.error(
                "running the model failed (%s): passing the input through unenhanced, trying again every %g s",
                self.model_error,
                MODEL_RETRY_SECONDS,
                exc_info=self._failure_episodes == 1,  # the traceback once; later episodes in one line
            )
        self._retry_hop = self._counters.hops + self.model_retry_hops
        self.model.reset()  # a failed step may have left the states half-updated

    def _gains(self, spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Bin gains and complex deep-filter coefficients (``[order, bins]``, None for a gain-only
        model) for one frame from its spectrum."""
        features = self._features(spectrum.real**2 + spectrum.imag**2)
        if self._spectrum_bins or self._deep is not None:
            low_band = dsp.low_band_spectrum(spectrum, self._spectrum_bins) if self._spectrum_bins else None
            mask, flat = self.model.run(features, low_band)
        else:  # a gain-only model, run as it always was
            mask, flat = self.model.step(features), None
        if (
            not np.isfinite(mask).all()
            or (flat is not None and not np.isfinite(flat).all())
            or not self.model.states_finite()
        ):
            # A non-finite state would poison every later frame: start the model afresh.
            self.model.reset()
            self._counters.model_resets += 1
            mask = np.ones_like(mask)
            flat = None if flat is None else np.zeros_like(flat)
        self.last_mask = mask
        gains = self._spread @ np.clip(mask, 0.0, self._max_gain)
        if self._floor > 0:
            gains = dsp.raise_to_floor(gains, self._floor)
        self.last_gains = gains
        coefficients = None
        if self._deep is not None:
            assert flat is not None  # MaskModel returns coefficients for a model with a deep filter
            limit = self._deep.max_coef
            clipped = np.minimum(np.maximum(flat, -limit), limit)  # np.clip, at half its cost on small arrays
            coefficients = dsp.deep_filter_coefficients(clipped, self._deep.order, self._deep.bins)
            if self._floor > 0:
                coefficients = dsp.scale_deep_filter(coefficients, float(self._floor))
            self.last_deep_filter = coefficients
        return gains, coefficients
