"""quietmic: real-time speech enhancement with a small quantized mask model (TensorFlow Lite).

Use from Python::

    import realtime

    clean = realtime.enhance(noisy, 48000)          # a whole recording: array in, array out

    enhancer = realtime.Enhancer(sample_rate=48000)  # a stream, block by block
    out = enhancer.process(block)                    # same shape, latency samples late
    rest = enhancer.flush()                          # the last latency samples

The API:

:func:`enhance` (``signal, sample_rate, model="default", *, atten_lim_db=35``)
    Enhance a whole signal: mono (1-D) or ``(frames, channels)``, float or integer PCM (int16
    comes back as int16), at any rate from 8 to 384 kHz (rates the model's framing does not fit,
    such as 22.05 kHz, are resampled with soxr and back, as file mode does). The delay is taken
    out: the result is time-aligned with the input, same shape and dtype.
:class:`Enhancer` (``model="default", sample_rate, *, block_size=None, channels=None,
atten_lim_db=35, bypass=False, fallback=True``)
    The streaming engine: :meth:`~Enhancer.process` a block (any size; the first block's size
    sets the least latency, :attr:`~Enhancer.latency` samples), :meth:`~Enhancer.flush` at the
    end, :meth:`~Enhancer.reset` to start over; ``atten_lim_db``, ``bypass`` may change while
    streaming. One model state per channel.
:func:`enhance_file` (``input_path, output_path, model_path, ...``)
    Enhance an audio file into another, streaming: what ``quietmic enhance`` runs.
:class:`MaskModel`
    A loaded model (``MaskModel("low-latency")``, ``MaskModel("my.tflite")``); its
    ``metadata`` describes it.
:class:`QuietmicError`
    Raised for anything quietmic cannot do, with a message that says what to do instead.

Models are named ``"default"`` (20 ms algorithmic latency) or ``"low-latency"`` (causal, 10 ms),
or given as the path of a ``.tflite`` file exported by ``model_export``. The default
attenuation limit, 35 dB, is the app's (:data:`realtime.default_model.DEFAULT_ATTEN_LIM_DB`);
``atten_lim_db=None`` removes the limit.

``import realtime`` is cheap: the names above are imported on first use, so numpy, TensorFlow
Lite and the audio libraries load only when a model or file is used.

The runtime needs numpy, sounddevice, ai-edge-litert, pyyaml, soundfile, soxr and tqdm; it never
imports TensorFlow.

Its folders are its layers; a module imports only from its own layer and those
below it (``tests/test_layers.py`` checks it):

1. the engine, at the top of this package: :mod:`realtime.enhancer` (the streaming
   :class:`Enhancer`), :mod:`realtime.arrays` (:func:`enhance`: whole signals), :mod:`realtime.resampling`
   (any rate: soxr around the Enhancer, aligned), :mod:`realtime.dsp`,
   :mod:`realtime.model` (:class:`MaskModel`), :mod:`realtime.metadata`, :mod:`realtime.ringbuffer`,
   :mod:`realtime.errors`, :mod:`realtime.sniff` (what kind of file a path holds),
   :mod:`realtime.messages` (one-line error wording), :mod:`realtime.echo` (echo cancellation before the
   denoiser: WebRTC AEC3 from the optional extra ``quietmic[echo]``, imported only when used), :mod:`realtime.nesting` (the guard against
   deeply nested text), :mod:`realtime.default_model` and the bundled models (``realtime/models/``);
2. settings: :mod:`realtime.config` (the config file and its defaults);
3. file work: :mod:`realtime.files`;
4. live audio I/O: :mod:`realtime.live`;
5. the desktop service: :mod:`realtime.desktop`;
6. the command line: :mod:`realtime.cli` (``quietmic``, ``python -m realtime``).

This module itself only names the public objects of the layers (:data:`_PUBLIC`, imported by
name on first use): it is the package's front door, not a module the layers import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from realtime.errors import QuietmicError

if TYPE_CHECKING:
    from realtime.arrays import enhance
    from realtime.enhancer import Enhancer
    from realtime.model import MaskModel

_PUBLIC = {
    "Enhancer": "realtime.enhancer",
    "MaskModel": "realtime.model",
    "enhance": "realtime.arrays",
    "enhance_file": "realtime.files.file_mode",
}
"""Public names imported on first use, by the module that defines them."""

__all__ = ["Enhancer", "MaskModel", "QuietmicError", "enhance", "enhance_file"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import a public name of :data:`_PUBLIC` on first use (PEP 562)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'realtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
