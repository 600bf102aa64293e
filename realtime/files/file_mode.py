"""File mode: enhance a WAV file with the same streaming Enhancer as live mode.

The file is streamed: read in chunks (:class:`~realtime.files.audio_file.WavReader`),
fed through :class:`~realtime.enhancer.Enhancer` in blocks of the live block
size (by default the model's hop at the file's rate), and written chunk by
chunk to a temporary file that replaces the output only once complete
(:class:`~realtime.files.audio_file.AtomicWavWriter`). Memory use does not grow with
the file's length. A file result is exactly what live mode would have produced.

The Enhancer's delay is compensated: the output is time-aligned with the input
and has the same length, sample rate, channel count and sample format. Each
channel is enhanced independently by its own Enhancer (its own model state): a
stereo recording stays stereo.

At rates where the model's window and hop are not whole numbers of samples
(11025 and 22050 Hz for a 10 ms hop) the audio is resampled by a small integer
factor to a rate where they are (44100 Hz), enhanced there, and resampled back,
with streaming polyphase filters whose delays are compensated too.

NaN and Inf samples are silenced by the Enhancer, as in live mode (and before
resampling, where needed). If the model fails on any frame, nothing is written.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import firwin, upfirdn

from realtime.files.audio_file import AtomicWavWriter, WavInfo, WavReader
from realtime.enhancer import Enhancer, hop_at_rate
from realtime.errors import AudioFileError, QuietmicError
from realtime.metadata import ModelMetadata, load_metadata
from realtime.model import MaskModel, read_model_bytes

log = logging.getLogger(__name__)

MIN_FILE_RATE = 8_000
"""Lowest sample rate enhanced, Hz (narrow-band telephone speech)."""
MAX_FILE_RATE = 384_000
"""Highest sample rate enhanced, Hz."""
MAX_CHANNELS = 32
"""Most channels enhanced (each gets its own model)."""
MAX_RESAMPLE_FACTOR = 8
"""Largest integer factor a file is upsampled by to reach a rate the model's framing fits."""
RESAMPLER_HALF_TAPS_PER_FACTOR = 10
"""Half length of the resampling low-pass filter, in taps per unit of the factor (as scipy's resample_poly)."""
RESAMPLER_KAISER_BETA = 5.0
"""Kaiser window shape of the resampling filter (as scipy's resample_poly)."""
CHUNK_SECONDS = 0.5
"""Audio read, enhanced and written at a time, seconds (rounded up to whole blocks)."""
PLOT_MAX_SECONDS = 600.0
"""Longest file --plot draws (the plot needs the whole first channel and its gains in memory), seconds."""


@dataclass(frozen=True)
class FileResult:
    """What :func:`enhance_file` did."""

    frames: int
    channels: int
    sample_rate: int
    block_size: int
    """Enhancer block size in samples at the processing rate."""
    latency_samples: int
    """Enhancer delay that was compensated, in samples at the processing rate."""
    processing_rate: int = 0
    """Hz at which the enhancer ran (the file's rate unless it had to be resampled)."""
    invalid_samples: int = 0
    """NaN or Inf input samples, replaced with silence."""
    warnings: tuple[str, ...] = field(default=())
    """Damage in the input that was read around (truncation, unset sizes)."""


# --- rates -----------------------------------------------------------------------------------


def resample_factor(metadata: ModelMetadata, sample_rate: int, source: str = "the file") -> int:
    """The least integer factor ``k`` such that the model's framing fits ``k * sample_rate`` Hz.

    1 for rates that run directly (8, 16, 32, 44.1, 48, 96 kHz for a 10 ms hop);
    4 for 11025 Hz and 2 for 22050 Hz. Raises :class:`AudioFileError` (naming
    ``source``) when the rate is out of range or no factor up to
    :data:`MAX_RESAMPLE_FACTOR` works.
    """
    convert = f"resample it first, e.g. 'ffmpeg -i {source} -ar 48000 out.wav'"
    if not MIN_FILE_RATE <= sample_rate <= MAX_FILE_RATE:
        raise AudioFileError(
            f"{source}: the sample rate {sample_rate} Hz is outside the {MIN_FILE_RATE}..{MAX_FILE_RATE} Hz quietmic "
            f"enhances; {convert}"
        )
    for factor in range(1, MAX_RESAMPLE_FACTOR + 1):
        try:
            metadata.framing.at_rate(sample_rate * factor)
        except ValueError:
            continue
        return factor
    hop_ms = 1000 * metadata.hop_length / metadata.sample_rate
    raise AudioFileError(f"{source}: the sample rate {sample_rate} Hz does not fit the model's {hop_ms:g} ms hop; {convert}")


def _lowpass(factor: int) -> np.ndarray:
    """Low-pass FIR (unity DC gain) with its cut-off at the Nyquist frequency of the lower rate."""
    half = RESAMPLER_HALF_TAPS_PER_FACTOR * factor
    return firwin(2 * half + 1, 1.0 / factor, window=("kaiser", RESAMPLER_KAISER_BETA))


class StreamUpsampler:
    """Upsamples by an integer factor, chunk by chunk, with the filter state carried over.

    ``process(x)`` returns ``factor * len(x)`` samples; the output lags the input
    by :attr:`delay` samples (at the high rate). Factor 1 passes samples through.
    """

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self._taps = _lowpass(factor) * factor if factor > 1 else np.ones(1)
        self.delay = (len(self._taps) - 1) // 2
        self._history = np.zeros(-(-len(self._taps) // factor))

    def process(self, samples: np.ndarray) -> np.ndarray:
        """The high-rate samples for ``samples`` (float64)."""
        if self.factor == 1:
            return np.asarray(samples, dtype=np.float64)
        kept = len(self._history)
        segment = np.concatenate([self._history, samples])
        high = upfirdn(self._taps, segment, up=self.factor)
        self._history = segment[-kept:]
        return high[kept * self.factor : (kept + len(samples)) * self.factor]


class StreamDecimator:
    """Low-pass filters and keeps every ``factor``-th sample, starting at sample ``offset``, chunk by chunk.

    Output ``m`` is the filtered input at index ``offset + m * factor``, centred
    (the filter's own delay is taken out), so choosing ``offset`` compensates any
    delay before this stage, even one that is not a multiple of ``factor``.
    Factor 1 is a pure delay of ``offset`` samples.
    """

    def __init__(self, factor: int, offset: int) -> None:
        self.factor = factor
        taps = _lowpass(factor) if factor > 1 else np.ones(1)
        self._reversed = taps[::-1].copy()
        half = (len(taps) - 1) // 2
        self.delay = offset + half
        """Input samples before the first output's centre: the delay this stage takes out."""
        self._next = offset + half
        """Input index at which the next output's filter window ends."""
        self._buffer = np.zeros(len(taps) - 1)
        self._buffer_start = -(len(taps) - 1)
        """Input index of ``_buffer[0]`` (the zeros before the stream started have negative indices)."""

    def process(self, samples: np.ndarray) -> np.ndarray:
        """The output samples that ``samples`` completed (possibly none), float64."""
        taps = len(self._reversed)
        buffer = np.concatenate([self._buffer, samples])
        end = self._buffer_start + len(buffer)
        count = 0 if self._next >= end else (end - 1 - self._next) // self.factor + 1
        out = np.empty(0)
        if count:
            first = self._next - taps + 1 - self._buffer_start
            windows = sliding_window_view(buffer, taps)[first : first + (count - 1) * self.factor + 1 : self.factor]
            out = windows @ self._reversed
            self._next += count * self.factor
        keep_from = min(max(self._next - taps + 1 - self._buffer_start, 0), len(buffer))
        self._buffer = buffer[keep_from:]
        self._buffer_start += keep_from
        return out


class ChannelPipeline:
    """One channel's path: upsample (if needed), enhance, decimate back, with every delay compensated.

    Fed consecutive chunks at the file's rate (each a multiple of the block
    size), it returns the aligned output so far; feeding zeros after the end
    flushes the rest. Output sample ``i`` is the enhanced input sample ``i``.
    """

    def __init__(self, enhancer: Enhancer, factor: int, *, record: bool = False) -> None:
        self.enhancer = enhancer
        self.upsampler = StreamUpsampler(factor)
        self.decimator = StreamDecimator(factor, self.upsampler.delay + enhancer.latency)
        self.recorded: tuple[list[np.ndarray], list[np.ndarray]] | None = ([], []) if record else None
        """With ``record``: the enhancer's input and output chunks at the processing rate (for plots)."""

    @property
    def input_delay(self) -> int:
        """Delay of the enhancer's input behind the file, samples at the processing rate."""
        return self.upsampler.delay

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Aligned float32 output completed by this chunk (fewer samples than fed at first)."""
        high = self.upsampler.process(samples)
        enhanced = self.enhancer.process(high.astype(np.float32))
        if self.recorded is not None:
            self.recorded[0].append(high.astype(np.float32))
            self.recorded[1].append(enhanced)
        return self.decimator.process(enhanced.astype(np.float64)).astype(np.float32)


# --- the file --------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_input(source: Path, target: Path, info: WavInfo, plot: bool) -> None:
    """Refuse, before any work, what cannot be enhanced."""
    if _same_file(source, target) or source.resolve() == target.resolve():
        raise AudioFileError(f"output {target} is the input file; choose another output path")
    if info.frames == 0:
        raise AudioFileError(f"{source} contains no audio (0 frames); nothing to enhance")
    if info.channels > MAX_CHANNELS:
        raise AudioFileError(
            f"{source} has {info.channels} channels; quietmic enhances at most {MAX_CHANNELS}: split it, "
            f"e.g. 'ffmpeg -i {source} -af \"pan=mono|c0=c0\" channel0.wav'"
        )
    if plot and info.seconds > PLOT_MAX_SECONDS:
        raise AudioFileError(
            f"--plot draws files of up to {PLOT_MAX_SECONDS:g} s; {source} lasts {info.seconds:.0f} s: "
            "enhance it without --plot, or plot a shorter excerpt"
        )
    if plot and importlib.util.find_spec("matplotlib") is None:
        raise QuietmicError("--plot needs matplotlib: pip install 'quietmic[plot]'")


def _chunk_frames(block: int, sample_rate: int) -> int:
    """Frames per chunk: about :data:`CHUNK_SECONDS`, a whole number of blocks."""
    return block * max(1, math.ceil(CHUNK_SECONDS * sample_rate / block))


def _replace_invalid(chunk: np.ndarray) -> tuple[np.ndarray, int]:
    """``chunk`` with NaN and Inf replaced by 0, and how many there were (before resampling, which would
    smear one bad sample over the filter's length)."""
    finite = np.isfinite(chunk)
    if finite.all():
        return chunk, 0
    return np.where(finite, chunk, np.float32(0.0)), int(chunk.size - np.count_nonzero(finite))


def _stream(reader: WavReader, writer: AtomicWavWriter, pipelines: list[ChannelPipeline], chunk: int) -> int:
    """Feed the file (then zeros) through the pipelines into the writer; returns the invalid samples replaced.

    At the model's own rates the Enhancer sees the samples as they are and deals with
    NaN and Inf itself, as it does live; only the resampling path replaces them first.
    """
    frames, channels = reader.info.frames, reader.info.channels
    factor = pipelines[0].upsampler.factor
    most_fed = frames + chunk + math.ceil((pipelines[0].decimator.delay + factor) / factor)
    invalid = fed = 0
    while writer.written < frames:
        if fed > most_fed:  # cannot happen: the pipelines' delays are known
            raise RuntimeError(f"internal error: {fed} frames fed but only {writer.written} came out")
        fed += chunk
        samples = reader.read(chunk)
        if len(samples) < chunk:
            samples = np.concatenate([samples, np.zeros((chunk - len(samples), channels), np.float32)])
        if factor > 1:
            samples, bad = _replace_invalid(samples)
            if bad and not invalid:
                log.warning("%s: the input has NaN or Inf samples; they are replaced with silence", reader.path)
            invalid += bad
        out = np.stack([pipe.process(samples[:, c]) for c, pipe in enumerate(pipelines)], axis=1)
        writer.write(out[: frames - writer.written])
    return invalid


@dataclass(frozen=True)
class _Options:
    """How to enhance: the model file and the user's settings."""

    model_path: str | Path
    atten_lim_db: float | None
    block_size: int | None
    """Samples at the file's rate; None: the model's hop."""
    plot: bool


def _make_pipelines(source: Path, info: WavInfo, options: _Options) -> tuple[list[ChannelPipeline], int]:
    """One pipeline per channel, and the chunk size (frames at the file's rate)."""
    model_bytes = read_model_bytes(options.model_path)
    metadata = load_metadata(model_bytes, str(options.model_path))
    factor = resample_factor(metadata, info.sample_rate, str(source))  # refuses a rate before loading any model
    rate = info.sample_rate * factor
    block = options.block_size * factor if options.block_size else hop_at_rate(metadata, rate)
    models = [MaskModel(model_bytes) for _ in range(info.channels)]
    if factor > 1:
        log.info("%d Hz does not fit the model's framing: enhancing at %d Hz (x%d)", info.sample_rate, rate, factor)
    pipelines = []
    for channel, model in enumerate(models):
        enhancer = Enhancer(model, rate, block_size=block, atten_lim_db=options.atten_lim_db, fallback=False)
        record = options.plot and channel == 0
        if record:
            enhancer.gain_log = []
        pipelines.append(ChannelPipeline(enhancer, factor, record=record))
    # A chunk at the file's rate is a whole number of blocks at the processing rate, and whole blocks itself.
    return pipelines, _chunk_frames(block, info.sample_rate)


def _plot(pipeline: ChannelPipeline, frames: int, factor: int, plot_path: str | Path, title: str) -> None:
    """Draw the first channel's input, output and gains at the processing rate."""
    from realtime.files.plot import plot_enhancement

    assert pipeline.recorded is not None
    enhancer = pipeline.enhancer
    high_in = np.concatenate(pipeline.recorded[0])
    high_out = np.concatenate(pipeline.recorded[1])
    start, length = pipeline.input_delay, frames * factor
    noisy = high_in[start : start + length]
    enhanced = high_out[start + enhancer.latency : start + enhancer.latency + length]
    assert enhancer.gain_log is not None
    gains = np.array(enhancer.gain_log)[: -(-length // enhancer.hop_length)]
    plot_enhancement(noisy, enhanced, gains, enhancer.framing, plot_path, title=title)


def enhance_file(
    input_path: str | Path,
    output_path: str | Path,
    model_path: str | Path,
    *,
    atten_lim_db: float | None = None,
    block_size: int | None = None,
    plot_path: str | Path | None = None,
) -> FileResult:
    """Enhance ``input_path`` into ``output_path`` (WAV), streaming; never touches the input.

    ``block_size`` is in samples at the file's rate (None: the model's hop).
    With ``plot_path``, also write a PNG of the first channel's input and output
    spectrograms and the gains applied (:mod:`realtime.files.plot`); files longer than
    :data:`PLOT_MAX_SECONDS` are refused then. Raises :class:`QuietmicError`
    subclasses with a message for the user for anything that cannot be done;
    the output is then left as it was.
    """
    source, target = Path(input_path), Path(output_path)
    if block_size is not None and block_size < 1:
        raise QuietmicError(f"block size must be a positive number of samples, got {block_size}")
    with WavReader(source) as reader:
        info = reader.info
        _check_input(source, target, info, plot_path is not None)
        # The temporary output is made first: a bad output path is reported before any work.
        with AtomicWavWriter(target, info.sample_rate, info.channels, info.format, info.frames) as writer:
            options = _Options(model_path, atten_lim_db, block_size, plot_path is not None)
            pipelines, chunk = _make_pipelines(source, info, options)
            factor = pipelines[0].upsampler.factor
            invalid = _stream(reader, writer, pipelines, chunk)
            invalid += sum(pipe.enhancer.counters.invalid_samples for pipe in pipelines)
            if plot_path is not None:  # inside the writer's block: a failed plot leaves no output
                _plot(pipelines[0], info.frames, factor, plot_path, f"{source.name} -> {target.name}")
    first = pipelines[0].enhancer
    log.debug(
        "enhanced %s -> %s (%d frames, %d channels, %d Hz, %s)",
        source, target, info.frames, info.channels, info.sample_rate, info.format.describe(),
    )
    return FileResult(
        info.frames, info.channels, info.sample_rate, first.block_size or first.hop_length, first.latency,
        first.sample_rate, invalid, info.warnings,
    )
