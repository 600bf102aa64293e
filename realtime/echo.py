"""Acoustic echo cancellation before the denoiser (issue 19, section 5): :class:`EchoCanceller`.

With speakers instead of headphones the microphone hears what the speakers play, and the far end
hears itself. :class:`EchoCanceller` removes that echo from the microphone signal, given the far-end
*reference*: exactly what the default output plays, sample-aligned in time with the microphone
blocks as they are captured (the canceller finds the acoustic and audio-path delay itself, up to
about half a second; ``delay_hint_ms`` helps it start).

The canceller is WebRTC's AEC3 (the one in Chrome and in PulseAudio/PipeWire's ``echo-cancel``
module with ``aec_method=webrtc``), from the optional package ``pywebrtc-audio`` (a 1 MB wheel that
needs only numpy: ``pip install 'quietmic[echo]'``). It is chosen by measurement
(``python -m benchmarks.echo``): about 20-30 dB of echo return loss enhancement with far-end speech
alone after a second or two, at under 1 % of one core at 16 kHz. In double talk AEC3 favours
removing echo over keeping the near end: its suppressor attenuates the near end wherever echo is
present, and with near end and echo equally loud the near end's PESQ-WB barely beats the echoed
microphone (1.09 against 1.06 in the benchmark; SpeexDSP keeps more, 2.0, but cancels less).

The package is imported lazily: ``import realtime`` never loads it; :func:`available` says whether
it is installed, and constructing an :class:`EchoCanceller` without it raises
:class:`EchoCancellerUnavailable` (a :class:`~realtime.errors.QuietmicError`) that says what to
install.

Blocks of any size go in; AEC3 works on 10 ms frames, so the canceller buffers: its output is
:attr:`EchoCanceller.buffer_delay` samples (10 ms less one sample) behind its input, on top of
AEC3's own delay (:data:`AEC3_DELAY`: 8 ms at 16 kHz, 9 ms at 48 kHz, measured). The output does not depend on
how the signal is split into blocks.
"""

from __future__ import annotations

import importlib
import logging

import numpy as np

from realtime.errors import QuietmicError

LOG = logging.getLogger(__name__)

PACKAGE = "pywebrtc_audio"
"""The module that provides AEC3 (PyPI: ``pywebrtc-audio``)."""
PIP_NAME = "pywebrtc-audio"
"""Its name on PyPI."""
EXTRA = "echo"
"""quietmic's optional extra that installs it (``pip install 'quietmic[echo]'``)."""

FRAME_S = 0.010
"""AEC3's frame length (s): it processes 10 ms at a time."""
AEC3_DELAY = {16000: 128, 32000: 260, 48000: 430}
"""The sample rates the canceller takes (Hz), AEC3's native ones, each with the delay AEC3 itself adds
to the microphone signal (samples, measured with an impulse: 8 ms at 16 kHz, its 64-sample blocks and
their overlap-add; at 32 and 48 kHz also the band-splitting filters);
:attr:`EchoCanceller.buffer_delay` comes on top."""


class EchoCancellerUnavailable(QuietmicError):
    """The optional echo-cancellation package is not installed (the message says how to install it)."""


def available() -> bool:
    """Whether the echo canceller's package (``pywebrtc-audio``) can be imported."""
    try:
        _backend()
    except EchoCancellerUnavailable:
        return False
    return True


def require() -> None:
    """Raise :class:`EchoCancellerUnavailable`, saying what to install, unless the canceller's package is there."""
    _backend()


def _backend():
    """The imported ``pywebrtc_audio`` module, or :class:`EchoCancellerUnavailable` saying what to install."""
    try:
        return importlib.import_module(PACKAGE)
    except ImportError as exc:
        raise EchoCancellerUnavailable(
            f"echo cancellation needs the optional package {PIP_NAME} ({exc}): "
            f"install it with pip install 'quietmic[{EXTRA}]' (or pip install {PIP_NAME})"
        ) from None


class EchoCanceller:
    """WebRTC AEC3 on a mono microphone signal, given the far-end reference, block by block.

    ``sample_rate`` (Hz) is that of both signals: 16, 32 or 48 kHz (:data:`AEC3_DELAY`; resample
    others). ``delay_hint_ms`` is the expected delay of the echo behind the
    reference (ms: output buffering + sound server + speaker-to-microphone); AEC3 estimates the
    delay itself, the hint only helps at the start.
    """

    def __init__(self, sample_rate: int, *, delay_hint_ms: int = 0, block_size: int | None = None) -> None:
        if sample_rate not in AEC3_DELAY:
            rates = ", ".join(f"{r // 1000} kHz" for r in AEC3_DELAY)
            raise QuietmicError(f"echo cancellation works at {rates}, not {sample_rate} Hz")
        if not 0 <= delay_hint_ms <= 1000:
            raise QuietmicError(f"the echo delay hint must be 0 to 1000 ms, not {delay_hint_ms}")
        self.sample_rate = int(sample_rate)
        self.delay_hint_ms = int(delay_hint_ms)
        self.frame = int(round(FRAME_S * self.sample_rate))
        """Samples in one AEC3 frame (10 ms)."""
        if block_size is not None and (block_size <= 0 or block_size % self.frame):
            raise QuietmicError(
                f"echo cancellation takes blocks of whole 10 ms frames ({self.frame} samples at {self.sample_rate} Hz), "
                f"not {block_size}: use a block size of {self.frame} (or leave it unset)"
            )
        self.block_size = block_size
        """Samples per block when every block is whole frames (no buffering delay); None: any size."""
        self._module = _backend()
        self._aec = None
        self.reset()
        LOG.debug("echo canceller: AEC3 (%s) at %d Hz, %d-sample frames, delay hint %d ms",
                  PIP_NAME, self.sample_rate, self.frame, self.delay_hint_ms)

    @property
    def buffer_delay(self) -> int:
        """Samples the output lags the input by because of buffering into 10 ms frames: one frame less one
        sample, none when the blocks are declared whole frames (``block_size``); AEC3's own delay
        (:data:`AEC3_DELAY`) comes on top."""
        return 0 if self.block_size else self.frame - 1

    @property
    def delay(self) -> int:
        """The whole delay of the output behind the microphone input (samples): buffering plus AEC3's own."""
        return self.buffer_delay + AEC3_DELAY[self.sample_rate]

    def reset(self) -> None:
        """Start over: a fresh AEC3 (it re-converges, a second or two) and empty buffers."""
        self._aec = self._module.EchoCanceller(sample_rate=self.sample_rate, num_channels=1,
                                               stream_delay_ms=self.delay_hint_ms)
        self._mic = np.zeros(0, dtype=np.float32)
        self._far = np.zeros(0, dtype=np.float32)
        self._out = np.zeros(self.buffer_delay, dtype=np.float32)

    def process(self, mic_block: np.ndarray, far_block: np.ndarray | None) -> np.ndarray:
        """The microphone block with the echo of the far end removed (float32, same length).

        ``mic_block`` and ``far_block`` are mono float arrays in [-1, 1] of the same length (any, 0
        included; whole frames when the canceller was made with ``block_size``), the far-end samples played while the microphone samples were captured; ``None``
        for ``far_block`` means the speakers are silent. The result is :attr:`buffer_delay` samples
        behind the input (plus AEC3's own delay, :attr:`delay` in all).
        """
        mic = np.asarray(mic_block, dtype=np.float32)
        far = np.zeros_like(mic) if far_block is None else np.asarray(far_block, dtype=np.float32)
        if mic.ndim != 1 or far.shape != mic.shape:
            raise ValueError(f"mic and far blocks must be 1-D and the same length, not {mic.shape} and {far.shape}")
        if self.block_size and len(mic) % self.frame:
            raise ValueError(f"this canceller was made for blocks of whole {self.frame}-sample frames, got {len(mic)}")
        self._mic = np.concatenate([self._mic, mic])
        self._far = np.concatenate([self._far, far])
        whole = len(self._mic) // self.frame * self.frame
        if whole:
            done = self._aec.process(np.ascontiguousarray(self._mic[:whole]), np.ascontiguousarray(self._far[:whole]))
            self._out = np.concatenate([self._out, np.asarray(done, dtype=np.float32)])
            self._mic = self._mic[whole:]
            self._far = self._far[whole:]
        out, self._out = self._out[: len(mic)], self._out[len(mic):]
        return out
