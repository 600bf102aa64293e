"""File mode: enhance an audio file with the same streaming Enhancer as live mode.

The file is streamed: read in chunks (:func:`~realtime.files.audio_io.open_audio`: any format
libsndfile reads, PCM and float WAV through quietmic's own reader), fed through
:class:`~realtime.enhancer.Enhancer` in blocks of the live block size (by default the model's hop at
the file's rate), and written chunk by chunk in the format the output's name says, to a temporary
file that replaces the output only once complete (:func:`~realtime.files.audio_io.open_output`).
Memory use does not grow with the file's length. A file result is exactly what live mode would have
produced. ``-`` reads standard input or writes WAV to standard output.

The Enhancer's delay is compensated: the output is time-aligned with the input and has the same
length, sample rate, channel count and (where the output's format can hold it) sample format. Each
channel is enhanced independently by its own Enhancer (its own model state): a stereo recording
stays stereo.

At rates where the model's window and hop are not whole numbers of samples (11025, 22050 or 12345 Hz
for a 10 ms hop) the audio is resampled with soxr, streaming, to a rate where they are
(:func:`processing_rate`: an integer multiple such as 44100 Hz if one is near, else the next rate that
fits), enhanced there, and resampled back; soxr's streams are aligned (no delay to compensate) and
the Enhancer's delay is taken out between them.

NaN and Inf samples are silenced by the Enhancer, as in live mode (and before resampling, where
needed). If the model fails on any frame, nothing is written.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from realtime.config import DEFAULT_ATTEN_LIM_DB
from realtime.default_model import is_bundled_model, resolve_model_path
from realtime.enhancer import Enhancer, hop_at_rate
from realtime.errors import AudioFileError, QuietmicError
from realtime.files.audio_io import STDIO, AudioInfo, AudioReader, StdinCopy, open_audio, open_output
from realtime.metadata import ModelMetadata, load_metadata
from realtime.model import MaskModel, read_model_bytes, require_valid_model

log = logging.getLogger(__name__)

MIN_FILE_RATE = 8_000
"""Lowest sample rate enhanced, Hz (narrow-band telephone speech; below it there is no speech band to enhance)."""
MAX_FILE_RATE = 384_000
"""Highest sample rate enhanced, Hz."""
MAX_CHANNELS = 32
"""Most channels enhanced (each gets its own model)."""
MAX_RESAMPLE_FACTOR = 8
"""Largest integer factor tried first to reach a rate the model's framing fits (11025 Hz -> x4 = 44100 Hz)."""
RESAMPLE_QUALITY = "HQ"
"""soxr's quality preset: 20-bit precision, pass band to 91 % of the lower Nyquist frequency."""
CHUNK_SECONDS = 0.5
"""Audio read, enhanced and written at a time, seconds (rounded up to whole blocks)."""
PLOT_MAX_SECONDS = 600.0
"""Longest file --plot draws (the plot needs the whole first channel and its gains in memory), seconds."""

ProgressCallback = Callable[[float], None]
"""Called with the seconds of input audio just enhanced (increments, not totals)."""


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
    input_format: str = ""
    """libsndfile's names of the input's container and sample format, e.g. ``"FLAC, PCM_24"``."""
    figures: dict[str, float] = field(default_factory=dict)
    """With a plot: what it shows in numbers (:func:`realtime.files.plot.enhancement_figures`)."""


# --- rates -----------------------------------------------------------------------------------


def _fits(metadata: ModelMetadata, sample_rate: int) -> bool:
    """Whether the model's window and hop are whole numbers of samples at ``sample_rate`` Hz."""
    try:
        metadata.framing.at_rate(sample_rate)
    except ValueError:
        return False
    return True


def processing_rate(metadata: ModelMetadata, sample_rate: int, source: str = "the file") -> int:
    """The rate, Hz, at which a file at ``sample_rate`` Hz is enhanced.

    ``sample_rate`` itself where the model's framing fits it (8, 16, 32, 44.1, 48, 96 kHz for a
    10 ms hop); else the least integer multiple up to :data:`MAX_RESAMPLE_FACTOR` that fits
    (11025 and 22050 Hz: 44100 Hz); else the least rate above it that fits (12345 Hz: 12400 Hz).
    Raises :class:`AudioFileError` (naming ``source``) when the rate is out of range.
    """
    if not MIN_FILE_RATE <= sample_rate <= MAX_FILE_RATE:
        raise AudioFileError(
            f"{source}: the sample rate {sample_rate} Hz is outside the {MIN_FILE_RATE}..{MAX_FILE_RATE} Hz quietmic "
            f"enhances; resample it first, e.g. 'ffmpeg -i {source} -ar 48000 out.wav'"
        )
    for factor in range(1, MAX_RESAMPLE_FACTOR + 1):
        if _fits(metadata, sample_rate * factor):
            return sample_rate * factor
    # The window and hop are whole samples exactly at the multiples of this step (100 Hz for 20/10 ms).
    step = metadata.sample_rate // math.gcd(metadata.sample_rate, math.gcd(metadata.window_length, metadata.hop_length))
    rate = -(-sample_rate // step) * step
    assert _fits(metadata, rate), f"{rate} Hz should fit the model's framing"
    return rate


class FilePipeline:
    """All channels' path through the engine: resample (if needed), enhance, resample back; aligned.

    Fed consecutive chunks of ``(frames, channels)`` samples at the file's rate, it returns the
    aligned output so far (fewer frames than fed at first: the enhancer's delay); the call with
    ``last=True`` flushes the rest, so that in all the output has the input's length (give or take
    a frame of resampling rounding, which the caller trims or pads). Output frame ``i`` is the
    enhanced input frame ``i``.
    """

    def __init__(self, enhancers: list[Enhancer], file_rate: int, block_size: int, *, record: bool = False) -> None:
        self.enhancers = enhancers
        self.file_rate = file_rate
        self.rate = enhancers[0].sample_rate
        """Processing rate, Hz."""
        self.block_size = block_size
        """Samples per Enhancer.process call, at the processing rate."""
        channels = len(enhancers)
        self.resampling = self.rate != file_rate
        if self.resampling:
            import soxr

            self._up = soxr.ResampleStream(file_rate, self.rate, channels, dtype="float32", quality=RESAMPLE_QUALITY)
            self._down = soxr.ResampleStream(self.rate, file_rate, channels, dtype="float32", quality=RESAMPLE_QUALITY)
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
        """Aligned float32 output at the file's rate completed by ``chunk`` (the rest too with ``last``)."""
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


# --- the file --------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and a.samefile(b)
    except OSError:
        return False


def _check_input(source: Path, target: Path | str, info: AudioInfo, plot: bool) -> None:
    """Refuse, before any work, what cannot be enhanced."""
    if str(target) != STDIO:
        target = Path(target)
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
        from realtime.files.plot import install_hint

        raise QuietmicError(f"--plot needs matplotlib: {install_hint()}")


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


def _stream(reader: AudioReader, writer, pipeline: FilePipeline, chunk: int,  # noqa: ANN001 - an OutputWriter
            progress: ProgressCallback | None) -> int:
    """Feed the file through the pipeline into the writer; returns the invalid samples replaced.

    At the model's own rates the Enhancer sees the samples as they are and deals with NaN and Inf
    itself, as it does live; only the resampling path replaces them first. A file that ends before
    its header said (a decoder's estimate, a file shrinking while read) is padded with silence.
    """
    frames, channels, rate = reader.info.frames, reader.info.channels, reader.info.sample_rate
    invalid = read = 0
    while read < frames:
        samples = reader.read(min(chunk, frames - read))
        last = len(samples) == 0 or read + len(samples) >= frames
        if len(samples) == 0:
            log.warning("%s: the audio ends %d frames before its header says; padded with silence",
                        reader.path, frames - read)
            samples = np.zeros((frames - read, channels), np.float32)
        read += len(samples)
        if pipeline.resampling:
            samples, bad = _replace_invalid(samples)
            if bad and not invalid:
                log.warning("%s: the input has NaN or Inf samples; they are replaced with silence", reader.path)
            invalid += bad
        out = pipeline.process(np.ascontiguousarray(samples, dtype=np.float32), last=last)
        out = out[: frames - writer.written]
        if last and writer.written + len(out) < frames:  # resampling rounding: at most a frame or two
            out = np.concatenate([out, np.zeros((frames - writer.written - len(out), channels), np.float32)])
        writer.write(out)
        if progress is not None:
            progress(len(samples) / rate)
    return invalid


@dataclass(frozen=True)
class _Options:
    """How to enhance: the model and the user's settings."""

    model_bytes: bytes
    metadata: ModelMetadata
    rate: int
    """Processing rate, Hz (:func:`processing_rate`)."""
    atten_lim_db: float | None
    block_size: int | None
    """Samples at the file's rate; None: the model's hop."""
    plot: bool


def _make_pipeline(info: AudioInfo, options: _Options) -> tuple[FilePipeline, int]:
    """The pipeline for all channels, and the chunk size (frames at the file's rate)."""
    rate = options.rate
    if options.block_size:
        block = max(1, round(options.block_size * rate / info.sample_rate))
    else:
        block = hop_at_rate(options.metadata, rate)
    if rate != info.sample_rate:
        log.debug("%d Hz does not fit the model's framing: enhancing at %d Hz", info.sample_rate, rate)
    enhancers = []
    for channel in range(info.channels):
        enhancer = Enhancer(MaskModel(options.model_bytes), rate, block_size=block,
                            atten_lim_db=options.atten_lim_db, fallback=False)
        if options.plot and channel == 0:
            enhancer.gain_log = []
        enhancers.append(enhancer)
    pipeline = FilePipeline(enhancers, info.sample_rate, block, record=options.plot)
    return pipeline, _chunk_frames(options.block_size or block, info.sample_rate)


def _plot(pipeline: FilePipeline, plot_path: str | Path, title: str,
          reference: tuple[np.ndarray, int] | None) -> dict[str, float]:
    """Draw the first channel's input, output, what was removed and the gains, at the processing rate."""
    from realtime.files.plot import plot_enhancement

    assert pipeline.recorded is not None
    enhancer = pipeline.enhancers[0]
    noisy = np.concatenate(pipeline.recorded[0])
    enhanced = np.concatenate(pipeline.recorded[1])
    clean = None
    if reference is not None:
        clean = _at_rate(reference[0], reference[1], pipeline.rate)[: len(noisy)]
    assert enhancer.gain_log is not None
    gains = np.array(enhancer.gain_log)[: -(-len(noisy) // enhancer.hop_length)]
    return plot_enhancement(noisy, enhanced, gains, enhancer.framing, plot_path, title=title, reference=clean)


def _at_rate(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """A mono signal at ``target`` Hz (soxr, in one go)."""
    if rate == target:
        return samples
    import soxr

    return soxr.resample(samples, rate, target, quality=RESAMPLE_QUALITY)


def _read_reference(path: str | Path) -> tuple[np.ndarray, int]:
    """The first channel of a clean reference file, float32, and its rate."""
    with open_audio(path) as reader:
        samples = reader.read(reader.info.frames)
        return samples[:, 0].copy(), reader.info.sample_rate


def enhance_file(
    input_path: str | Path,
    output_path: str | Path,
    model: str | Path | None = None,
    *,
    atten_lim_db: float | None = DEFAULT_ATTEN_LIM_DB,
    block_size: int | None = None,
    plot_path: str | Path | None = None,
    reference_path: str | Path | None = None,
    progress: ProgressCallback | None = None,
    check_model: bool = True,
) -> FileResult:
    """Enhance the audio file ``input_path`` into ``output_path``, streaming; never touches the input.

    Args:
        input_path: any format libsndfile reads (WAV, FLAC, Ogg Vorbis, Opus, MP3, AIFF...),
            at any rate from :data:`MIN_FILE_RATE` to :data:`MAX_FILE_RATE` Hz; ``"-"``: standard input.
        output_path: written in the format its extension names (none: WAV), same rate, length and
            channels, and the input's sample format where that format holds it; replaced
            atomically. ``"-"``: WAV to standard output.
        model: a ``.tflite`` file or a bundled model's name (``"default"``, ``"low-latency"``);
            None: the default model.
        atten_lim_db: most attenuation in dB (None: no limit); the default is the app's.
        block_size: samples per Enhancer call at the file's rate (None: the model's hop).
        plot_path: also write a PNG of the first channel's input, output and removed spectrograms
            and the gains applied (:mod:`realtime.files.plot`); files longer than
            :data:`PLOT_MAX_SECONDS` are refused then.
        reference_path: with ``plot_path``, the clean speech the input was made from: the plot
            then gives the SI-SDR of the input and the output.
        progress: called with the seconds of audio done after every chunk.
        check_model: first load and run the model in a child process (:func:`realtime.model.require_valid_model`),
            so that a damaged file cannot crash this process; bundled models are checked before they ship.

    Raises :class:`QuietmicError` subclasses with a message for the user for anything that cannot be
    done; the output is then left as it was.
    """
    if block_size is not None and block_size < 1:
        raise QuietmicError(f"block size must be a positive number of samples, got {block_size}")
    if reference_path is not None and plot_path is None:
        raise QuietmicError("a reference is only used by the plot; give --plot FILE.png with --reference")
    model_path = resolve_model_path(model)
    if str(input_path) == STDIO:
        with StdinCopy() as copy:
            return _enhance_path(copy, output_path, model_path, atten_lim_db, block_size, plot_path, reference_path,
                                 progress, check_model)
    return _enhance_path(Path(input_path), output_path, model_path, atten_lim_db, block_size, plot_path,
                         reference_path, progress, check_model)


def _enhance_path(source: Path, target: str | Path, model_path: Path, atten_lim_db: float | None,
                  block_size: int | None, plot_path: str | Path | None, reference_path: str | Path | None,
                  progress: ProgressCallback | None, check_model: bool) -> FileResult:
    """:func:`enhance_file` once the input is a file and the model a path."""
    with open_audio(source) as reader:
        info = reader.info
        _check_input(source, target, info, plot_path is not None)
        model_bytes = read_model_bytes(model_path)
        metadata = load_metadata(model_bytes, str(model_path))
        rate = processing_rate(metadata, info.sample_rate, str(source))  # refused before any model runs
        reference = None if reference_path is None else _read_reference(reference_path)
        writer = open_output(target, info)  # a name quietmic cannot write is refused before any model runs
        if check_model and not is_bundled_model(model_path):
            require_valid_model(model_path)  # in a child process: a damaged model must not crash this one
        # The output is opened first: a bad output path is reported before any work.
        with writer:
            options = _Options(model_bytes, metadata, rate, atten_lim_db, block_size, plot_path is not None)
            pipeline, chunk = _make_pipeline(info, options)
            invalid = _stream(reader, writer, pipeline, chunk, progress)
            invalid += sum(enhancer.counters.invalid_samples for enhancer in pipeline.enhancers)
            figures: dict[str, float] = {}
            if plot_path is not None:  # inside the writer's block: a failed plot leaves no output
                name = "stdout" if str(target) == STDIO else Path(target).name
                figures = _plot(pipeline, plot_path, f"{source.name} -> {name}", reference)
    first = pipeline.enhancers[0]
    log.debug("enhanced %s -> %s (%d frames, %d channels, %d Hz, %s)",
              source, target, info.frames, info.channels, info.sample_rate, info.describe())
    return FileResult(
        info.frames, info.channels, info.sample_rate, first.block_size or first.hop_length, first.latency,
        first.sample_rate, invalid, info.warnings, info.describe(), figures,
    )
