"""A picture of what the enhancer did: input and output spectrograms and the gain mask.

Needs matplotlib (``pip install 'quietmic[plot]'``); the rest of the runtime does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime import dsp
from realtime.errors import QuietmicError

DB_FLOOR = -100.0
"""Lowest level shown in the spectrograms, dB relative to full scale."""

GAIN_FLOOR_DB = -40.0
"""Lowest gain shown in the mask panel, dB."""


def _db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10.0 * np.log10(power + dsp.POWER_FLOOR), DB_FLOOR)


def plot_enhancement(
    noisy: np.ndarray,
    enhanced: np.ndarray,
    gains: np.ndarray,
    framing: dsp.Framing,
    path: str | Path,
    title: str = "",
) -> None:
    """Write a PNG with the input and output spectrograms (dB) and the gains (dB) over time.

    ``gains`` is ``(hops, n_bins)``: the gain applied to each bin of each frame.
    The gain of frame ``m`` acts on the output ``window - hop`` samples later, so
    it is drawn against the input's time axis, where the frame was analysed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise QuietmicError("--plot needs matplotlib: pip install 'quietmic[plot]'") from None
    rate = framing.sample_rate
    hop_s = framing.hop_length / rate
    top_khz = rate / 2000.0
    noisy_power = np.abs(dsp.stft(noisy, framing)) ** 2
    enhanced_power = np.abs(dsp.stft(enhanced, framing)) ** 2
    fig, axes = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True)
    panels = [
        (_db(noisy_power), "input (dBFS)", "magma", (DB_FLOOR, 0.0)),
        (_db(enhanced_power), "output (dBFS)", "magma", (DB_FLOOR, 0.0)),
        (np.maximum(20.0 * np.log10(np.maximum(gains, 1e-10)), GAIN_FLOOR_DB), "applied gain (dB)", "viridis",
         (GAIN_FLOOR_DB, 0.0)),
    ]
    for axis, (values, label, cmap, (low, high)) in zip(axes, panels):
        extent = (0.0, len(values) * hop_s, 0.0, top_khz)
        image = axis.imshow(values.T, origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=low, vmax=high)
        axis.set_ylabel("kHz")
        axis.set_title(label, loc="left", fontsize=10)
        fig.colorbar(image, ax=axis, pad=0.01)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
