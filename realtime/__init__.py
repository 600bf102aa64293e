"""quietmic's runtime: streaming speech enhancement with a quantized TFLite mask model.

The runtime needs numpy, scipy, sounddevice, ai-edge-litert and pyyaml; it never
imports TensorFlow.

Its folders are its layers; a module imports only from its own layer and those
below it (``tests/test_layers.py`` checks it):

1. the engine, at the top of this package: :mod:`realtime.enhancer` (the streaming
   :class:`Enhancer`), :mod:`realtime.dsp`, :mod:`realtime.model` (:class:`MaskModel`),
   :mod:`realtime.metadata`, :mod:`realtime.ringbuffer`, :mod:`realtime.errors`,
   :mod:`realtime.sniff` (what kind of file a path holds), :mod:`realtime.messages` (one-line
   error wording), :mod:`realtime.nesting` (the guard against deeply nested text),
   :mod:`realtime.default_model` and the bundled models (``realtime/models/``);
2. settings: :mod:`realtime.config` (the config file and its defaults);
3. file work: :mod:`realtime.files`;
4. live audio I/O: :mod:`realtime.live`;
5. the desktop service: :mod:`realtime.desktop`;
6. the command line: :mod:`realtime.cli` (``quietmic``, ``python -m realtime``).
"""

from realtime.enhancer import Enhancer
from realtime.errors import QuietmicError
from realtime.model import MaskModel

__all__ = ["Enhancer", "MaskModel", "QuietmicError"]
__version__ = "0.1.0"
