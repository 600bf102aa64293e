"""Measuring the real delay of a live stream whose output is wired back to its input.

With the output port connected to the input port (a loopback cable, or
``jack_connect`` on a JACK server), a pulse that quietmic *plays* at stream
sample ``p`` comes back in the *input* at ``a1 = p + loop`` (the audio server's
own round trip), passes through quietmic, is played again and comes back at
``a2 = a1 + delay``. ``delay = a2 - a1`` is what a user would measure with a
cable from the speaker to the microphone: quietmic's whole input-to-output delay
including the audio server's buffering. The probe scales the output by
``loop_gain`` so that recirculating pulses die away before the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_AMPLITUDE = 0.5
"""Pulse amplitude (full scale = 1)."""

DEFAULT_LOOP_GAIN = 0.25
"""Output scaling while probing: each trip round the loop is 12 dB quieter."""

DETECTION_FRACTION = 0.5
"""An arrival must reach this fraction of its expected amplitude."""


@dataclass(frozen=True)
class ProbeResult:
    """One pulse's arrivals, in stream samples."""

    pulse_index: int
    first_arrival: int | None
    second_arrival: int | None

    @property
    def loop_delay(self) -> int | None:
        """Samples from playing the pulse to its first return (the audio server's loop)."""
        return None if self.first_arrival is None else self.first_arrival - self.pulse_index

    @property
    def delay(self) -> int | None:
        """Samples between the first and second return: input-to-output delay."""
        if self.first_arrival is None or self.second_arrival is None:
            return None
        return self.second_arrival - self.first_arrival


class LoopbackProbe:
    """Plays pulses into a looped-back stream and records the input to find them again.

    Args:
        sample_rate: stream rate in Hz.
        pulse_indices: stream samples at which pulses are played.
        record_samples: how many input samples to keep (from stream start).
        max_delay: longest delay searched for, in samples.
    """

    def __init__(
        self,
        sample_rate: int,
        pulse_indices: list[int],
        record_samples: int,
        max_delay: int,
        amplitude: float = DEFAULT_AMPLITUDE,
        loop_gain: float = DEFAULT_LOOP_GAIN,
    ) -> None:
        self.sample_rate = sample_rate
        self.pulse_indices = sorted(pulse_indices)
        self.recording = np.zeros(record_samples, dtype=np.float32)
        self.recorded = 0
        self.max_delay = max_delay
        self.amplitude = amplitude
        self.loop_gain = loop_gain

    def on_input(self, index: int, block: np.ndarray) -> None:
        """Keep captured samples (those inside the recording window)."""
        end = min(index + len(block), len(self.recording))
        if end > index:
            self.recording[index:end] = block[: end - index]
            self.recorded = max(self.recorded, end)

    def on_output(self, index: int, block: np.ndarray) -> None:
        """Scale the output by the loop gain and add any pulse that falls in this block."""
        block *= self.loop_gain
        for pulse in self.pulse_indices:
            if index <= pulse < index + len(block):
                block[pulse - index] += self.amplitude

    def results(self) -> list[ProbeResult]:
        """Arrivals of every pulse whose search window has been recorded."""
        results = []
        magnitude = np.abs(self.recording[: self.recorded])
        for pulse in self.pulse_indices:
            first = self._peak(magnitude, pulse + 1, self.amplitude)
            second = None
            if first is not None:
                second = self._peak(magnitude, first + 1, self.amplitude * self.loop_gain)
            results.append(ProbeResult(pulse, first, second))
        return results

    def _peak(self, magnitude: np.ndarray, start: int, expected: float) -> int | None:
        window = magnitude[start : start + self.max_delay]
        if len(window) < self.max_delay or window.max() < DETECTION_FRACTION * expected:
            return None
        return start + int(np.argmax(window))
