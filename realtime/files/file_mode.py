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
from realtime.resampling import AlignedPipeline, processing_rate, resample

log = logging.getLogger(__name__)

MAX_CHANNELS = 32
"""Most channels enhanced (each gets its own model)."""
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


def _stream(reader: AudioReader, writer, pipeline: AlignedPipeline, chunk: int,  # noqa: ANN001 - an OutputWriter
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


def _make_pipeline(info: AudioInfo, options: _Options) -> tuple[AlignedPipeline, int]:
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
    pipeline = AlignedPipeline(enhancers, info.sample_rate, block, record=options.plot)
    return pipeline, _chunk_frames(options.block_size or block, info.sample_rate)


def _plot(pipeline: AlignedPipeline, plot_path: str | Path, title: str,
          reference: tuple[np.ndarray, int] | None) -> dict[str, float]:
    """Draw the first channel's input, output, what was removed and the gains, at the processing rate."""
    from realtime.files.plot import plot_enhancement

    assert pipeline.recorded is not None
    enhancer = pipeline.enhancers[0]
    noisy = np.concatenate(pipeline.recorded[0])
    enhanced = np.concatenate(pipeline.recorded[1])
    clean = None
    if reference is not None:
        clean = resample(reference[0], reference[1], pipeline.rate)[: len(noisy)]
    assert enhancer.gain_log is not None
    gains = np.array(enhancer.gain_log)[: -(-len(noisy) // enhancer.hop_length)]
    return plot_enhancement(noisy, enhanced, gains, enhancer.framing, plot_path, title=title, reference=clean)


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
            at any rate from :data:`~realtime.resampling.MIN_RATE` to :data:`~realtime.resampling.MAX_RATE` Hz; ``"-"``: standard input.
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
