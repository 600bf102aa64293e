"""Whole signals in memory: :func:`enhance` (one call, array in, array out) and :func:`enhance_signal`.

Both run the streaming :class:`~realtime.enhancer.Enhancer` over the whole signal and take its
delay out: the output is time-aligned with the input and has its length. The result does not
depend on the block size the signal is fed in (declaring a block size only removes buffering
delay, which is taken out anyway), so it is exactly what a live stream would have produced.

:func:`enhance` also takes the audio as it comes: mono (1-D) or ``(frames, channels)``, each
channel with its own model state; integer samples (int8/16/32/64 scaled by ``2 ** (bits - 1)``,
unsigned ones around their midpoint, as WAV stores 8-bit audio) come back in their own dtype,
rounded and clipped; floating-point samples come back in their own float dtype (float64 in,
float64 out). The engine runs on float32 samples, as live audio comes, whatever the input's dtype.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from realtime.default_model import DEFAULT_ATTEN_LIM_DB, DEFAULT_MODEL_NAME

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from realtime.enhancer import Enhancer
    from realtime.model import MaskModel

log = logging.getLogger(__name__)

MAX_CHANNELS = 32
"""Most channels :func:`enhance` takes (each loads its own copy of the model); more suggests an
array given as ``(channels, frames)``."""


def enhance_signal(enhancer: Enhancer, signal: np.ndarray, block_size: int) -> np.ndarray:
    """Enhance a whole float signal (1-D mono or ``(frames, channels)``) in blocks of ``block_size``
    samples; delay-compensated, same shape, float32.

    The enhancer is reset first; the signal is zero-padded to whole blocks, fed block by block,
    then :meth:`~realtime.enhancer.Enhancer.flush`\\ ed, and the first ``enhancer.latency`` output
    samples are dropped. The enhancer's channel count must match the signal's.
    """
    samples = np.asarray(signal)
    frames = samples.shape[0]
    if frames == 0:
        return np.zeros(samples.shape, dtype=np.float32)
    enhancer.reset()
    total = frames + (-frames) % block_size
    padded = np.zeros((total, *samples.shape[1:]), dtype=np.float32)  # as live audio comes
    padded[:frames] = samples
    out = [enhancer.process(padded[start : start + block_size]) for start in range(0, total, block_size)]
    out.append(enhancer.flush())
    latency = enhancer.latency
    return np.concatenate(out)[latency : latency + frames]


def _as_float(signal: np.ndarray) -> np.ndarray:
    """``signal`` as floating-point samples at full scale +-1 (a float input is returned as it is)."""
    kind = signal.dtype.kind
    if kind == "f":
        return signal
    bits = 8 * signal.dtype.itemsize
    work = np.float32 if bits <= 16 else np.float64  # exact for int16; int32 needs float64's mantissa
    scale = work(2.0 ** (bits - 1))
    if kind == "i":
        return signal.astype(work) / scale
    return (signal.astype(work) - scale) / scale  # unsigned: around the midpoint (8-bit WAV)


def _as_dtype(enhanced: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float32 ``enhanced`` samples back in the input's ``dtype`` (integers rounded and clipped)."""
    if dtype.kind == "f":
        return enhanced.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    bits = 8 * dtype.itemsize
    scale = 2.0 ** (bits - 1)
    values = np.rint(enhanced.astype(np.float64) * scale + (scale if dtype.kind == "u" else 0.0))
    # The largest float64 that is not above info.max (int64's max itself rounds up to 2 ** 63).
    top = float(info.max) if float(info.max) <= info.max else float(np.nextafter(float(info.max), 0.0))
    return np.clip(values, float(info.min), top).astype(dtype)


def _checked_signal(signal: ArrayLike) -> np.ndarray:
    """``signal`` as an array of real samples, 1-D or ``(frames, channels)``; else an error saying why."""
    array = np.asarray(signal)
    if array.dtype.kind not in "fiu":
        raise TypeError(
            f"enhance() takes real audio samples (float, or integer PCM such as int16), got dtype {array.dtype}"
        )
    if array.ndim not in (1, 2):
        raise ValueError(
            f"enhance() takes mono samples (1-D) or (frames, channels), got an array of shape {array.shape}"
        )
    if array.ndim == 2:
        channels = array.shape[1]
        if channels == 0:
            raise ValueError(f"the signal has no channels (shape {array.shape}); pass (frames, channels)")
        if channels > MAX_CHANNELS:
            raise ValueError(
                f"the signal has shape {array.shape}: {channels} channels? enhance() takes (frames, channels) "
                f"with at most {MAX_CHANNELS} channels; if it is (channels, frames), pass signal.T"
            )
    return array


def enhance(
    signal: ArrayLike,
    sample_rate: int,
    model: MaskModel | str | Path | None = DEFAULT_MODEL_NAME,
    *,
    atten_lim_db: float | None = DEFAULT_ATTEN_LIM_DB,
) -> np.ndarray:
    """Enhance a whole recording: array in, array out, time-aligned and of the same shape.

    Args:
        signal: mono samples (1-D) or ``(frames, channels)``; each channel is enhanced by its own
            copy of the model. Floats at full scale +-1, or integer PCM (int16, int32, uint8...).
        sample_rate: the signal's rate, in Hz, from 8000 to 384000. Where the model's window
            and hop are whole samples (8, 16, 32, 44.1, 48, 96 kHz... for the bundled 20 ms / 10 ms
            models) the signal is enhanced as it is, exactly as a live stream would be; at other
            rates (11025, 22050 Hz...) it is resampled with soxr to the nearest rate that fits
            (:func:`realtime.resampling.processing_rate`), enhanced and resampled back, aligned.
        model: ``"default"``, ``"low-latency"`` (bundled models), the path of a ``.tflite``
            model, or a loaded :class:`~realtime.model.MaskModel`.
        atten_lim_db: most attenuation applied anywhere, in dB (the app's default, 35 dB);
            None: no limit.

    Returns:
        The enhanced signal, same shape; in the input's dtype (integers rounded and clipped,
        floats in their own precision).

    Raises:
        QuietmicError: the model cannot be loaded, ``sample_rate`` is out of range, or the model fails while
            running (no partly enhanced result is returned).
        TypeError, ValueError: the signal is not audio samples of a shape described above.
    """
    # Imported here: the enhancer loads TensorFlow Lite, which `import realtime` does not.
    from realtime.enhancer import Enhancer, checked_sample_rate
    from realtime.model import MaskModel
    from realtime.resampling import processing_rate

    array = _checked_signal(signal)
    channels = 1 if array.ndim == 1 else array.shape[1]
    loaded = model if isinstance(model, MaskModel) else MaskModel(DEFAULT_MODEL_NAME if model is None else model)
    rate = processing_rate(loaded.metadata, checked_sample_rate(sample_rate))
    if rate == sample_rate:
        enhancer = Enhancer(loaded, rate, channels=channels, atten_lim_db=atten_lim_db, fallback=False)
        if array.shape[0] == 0:  # nothing to enhance (the model and rate were checked all the same)
            return array.copy()
        enhanced = enhance_signal(enhancer, _as_float(array), enhancer.hop_length)
    else:
        if array.shape[0] == 0:
            return array.copy()
        enhanced = _enhance_resampled(loaded, _as_float(array), sample_rate, rate, atten_lim_db)
    log.debug(
        "enhanced %d frames x %d channels at %d Hz (%d Hz in the model) with %s",
        array.shape[0], channels, sample_rate, rate, loaded.source,
    )
    return _as_dtype(enhanced, array.dtype)


def _enhance_resampled(
    model: MaskModel, signal: np.ndarray, sample_rate: int, rate: int, atten_lim_db: float | None
) -> np.ndarray:
    """``signal`` at ``sample_rate`` Hz enhanced at ``rate`` Hz between two soxr resamplers; aligned, float32.

    Each channel gets its own Enhancer (its own state) on a clone of ``model``, as file mode does.
    """
    from realtime.enhancer import Enhancer, hop_at_rate
    from realtime.resampling import AlignedPipeline

    frames = signal.shape[0]
    columns = signal.reshape(frames, -1).astype(np.float32, copy=False)
    hop = hop_at_rate(model.metadata, rate)
    models = [model if channel == 0 else model.clone() for channel in range(columns.shape[1])]
    pipeline = AlignedPipeline(
        [Enhancer(m, rate, block_size=hop, atten_lim_db=atten_lim_db, fallback=False) for m in models],
        sample_rate, hop,
    )
    out = pipeline.process(np.ascontiguousarray(columns), last=True)[:frames]
    if len(out) < frames:  # resampling rounding: at most a frame or two
        out = np.concatenate([out, np.zeros((frames - len(out), out.shape[1]), np.float32)])
    return out.reshape(signal.shape)
