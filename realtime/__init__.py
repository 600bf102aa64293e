"""quietmic's runtime: streaming speech enhancement with a quantized TFLite mask model.

The runtime needs numpy, scipy, sounddevice, ai-edge-litert and pyyaml; it never
imports TensorFlow.
"""

from realtime.enhancer import Enhancer
from realtime.errors import QuietmicError
from realtime.model import MaskModel

__all__ = ["Enhancer", "MaskModel", "QuietmicError"]
__version__ = "0.1.0"
