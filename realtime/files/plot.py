"""A picture of what the enhancer did: input, output and removed spectrograms, the gain mask, and figures.

:func:`enhancement_figures` puts numbers on it (numpy only): how many dB of noise were removed in the
pauses between words, how much the speech level changed, and the SI-SDR of input and output when the
clean reference is known. :func:`plot_enhancement` draws the spectrograms on a log-frequency axis
and prints those numbers in the title. Drawing needs matplotlib (``quietmic[plot]``); the rest of
the runtime does not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from realtime import dsp
from realtime.errors import QuietmicError

DB_FLOOR = -100.0
"""Lowest level shown in the spectrograms, dB relative to full scale."""

GAIN_FLOOR_DB = -40.0
"""Lowest gain shown in the mask panel, dB."""

PAUSE_FRACTION = 0.2
"""The quietest input frames taken as the pauses between words (where only noise is), as a fraction."""

SPEECH_FRACTION = 0.2
"""The loudest input frames taken as speech, as a fraction."""

SILENT_FRAME_POWER = 1e-12
"""Frames with less input power than this (about -120 dBFS) are digital silence: not counted as pauses."""

MAX_COLUMNS = 2000
"""Most time columns drawn per spectrogram; longer files are averaged down to it."""

LOWEST_HZ = 50.0
"""Bottom of the log-frequency axis, Hz (at least one bin above DC)."""

FIGURE_SIZE_IN = (11.0, 11.0)
FIGURE_DPI = 100


def install_hint() -> str:
    """How to install matplotlib into the Python running quietmic: from a clone, its ``plot`` extra."""
    root = Path(__file__).resolve().parents[2]
    python = sys.executable or "python3"
    if (root / "pyproject.toml").is_file():
        return f"{python} -m pip install -e '{root}[plot]'"
    return f"{python} -m pip install matplotlib"


def _db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10.0 * np.log10(power + dsp.POWER_FLOOR), DB_FLOOR)


def si_sdr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio of ``estimate`` against ``reference``, dB."""
    length = min(len(estimate), len(reference))
    estimate = np.asarray(estimate[:length], np.float64)
    reference = np.asarray(reference[:length], np.float64)
    energy = float(reference @ reference)
    if energy <= 0.0:
        return float("nan")
    target = (float(estimate @ reference) / energy) * reference
    error = estimate - target
    return float(10.0 * np.log10((target @ target + dsp.POWER_FLOOR) / (error @ error + dsp.POWER_FLOOR)))


def enhancement_figures(
    noisy: np.ndarray, enhanced: np.ndarray, framing: dsp.Framing, reference: np.ndarray | None = None
) -> dict[str, float]:
    """What the enhancer did, in numbers (all dB).

    * ``noise_removed_between_words_db``: input over output power in the pauses (the quietest
      :data:`PAUSE_FRACTION` of the input's frames, digital silence left out);
    * ``speech_level_change_db``: output over input power in the loudest :data:`SPEECH_FRACTION`
      of frames (near 0: the speech is kept);
    * with ``reference`` (the clean speech): ``si_sdr_input_db``, ``si_sdr_output_db`` and
      ``si_sdr_improvement_db``.
    """
    power_in = np.sum(np.abs(dsp.stft(noisy, framing)) ** 2, axis=1)
    power_out = np.sum(np.abs(dsp.stft(enhanced, framing)) ** 2, axis=1)
    frames = min(len(power_in), len(power_out))
    power_in, power_out = power_in[:frames], power_out[:frames]
    figures: dict[str, float] = {}
    audible = np.flatnonzero(power_in > SILENT_FRAME_POWER)
    if len(audible):
        order = audible[np.argsort(power_in[audible])]
        count = max(1, int(PAUSE_FRACTION * len(order)))
        pauses, speech = order[:count], order[-max(1, int(SPEECH_FRACTION * len(order))):]
        figures["noise_removed_between_words_db"] = float(
            10.0 * np.log10(power_in[pauses].sum() / (power_out[pauses].sum() + dsp.POWER_FLOOR))
        )
        figures["speech_level_change_db"] = float(
            10.0 * np.log10((power_out[speech].sum() + dsp.POWER_FLOOR) / power_in[speech].sum())
        )
    if reference is not None:
        figures["si_sdr_input_db"] = si_sdr_db(noisy, reference)
        figures["si_sdr_output_db"] = si_sdr_db(enhanced, reference)
        figures["si_sdr_improvement_db"] = figures["si_sdr_output_db"] - figures["si_sdr_input_db"]
    return figures


def describe_figures(figures: dict[str, float]) -> str:
    """The figures as one line, e.g. ``noise removed between words 18.2 dB; speech level -0.4 dB``."""
    parts = []
    if "noise_removed_between_words_db" in figures:
        parts.append(f"noise removed between words {figures['noise_removed_between_words_db']:.1f} dB")
        parts.append(f"speech level {figures['speech_level_change_db']:+.1f} dB")
    if "si_sdr_output_db" in figures:
        parts.append(f"SI-SDR {figures['si_sdr_input_db']:.1f} -> {figures['si_sdr_output_db']:.1f} dB "
                     f"({figures['si_sdr_improvement_db']:+.1f})")
    return "; ".join(parts)


def _columns(values: np.ndarray) -> np.ndarray:
    """``(frames, bins)`` averaged over groups of frames down to at most :data:`MAX_COLUMNS` rows."""
    group = -(-len(values) // MAX_COLUMNS)
    if group <= 1:
        return values
    usable = len(values) // group * group
    return values[:usable].reshape(-1, group, values.shape[1]).mean(axis=1)


def plot_enhancement(
    noisy: np.ndarray,
    enhanced: np.ndarray,
    gains: np.ndarray,
    framing: dsp.Framing,
    path: str | Path,
    title: str = "",
    reference: np.ndarray | None = None,
) -> dict[str, float]:
    """Write a PNG of the input, output and removed (input minus output) spectrograms and the gains.

    Frequencies are on a log axis from :data:`LOWEST_HZ` to the Nyquist frequency. ``gains`` is
    ``(hops, n_bins)``: the gain applied to each bin of each frame, drawn against the input's time
    axis, where the frame was analysed. ``noisy`` and ``enhanced`` are aligned, at
    ``framing.sample_rate``; ``reference`` (the clean speech, same rate) adds SI-SDR to the figures.
    Returns :func:`enhancement_figures`, which the title also shows.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        raise QuietmicError(f"--plot needs matplotlib: {install_hint()}") from None
    length = min(len(noisy), len(enhanced))
    noisy, enhanced = noisy[:length], enhanced[:length]
    figures = enhancement_figures(noisy, enhanced, framing, reference)
    rate = framing.sample_rate
    hop_s = framing.hop_length / rate
    bin_hz = rate / framing.window_length
    first_bin = max(1, int(np.ceil(LOWEST_HZ / bin_hz)))
    edges_hz = (np.arange(first_bin, framing.n_bins + 1) - 0.5) * bin_hz
    edges_hz[-1] = min(edges_hz[-1], rate / 2)

    def power(signal: np.ndarray) -> np.ndarray:
        return _columns(np.abs(dsp.stft(signal, framing)) ** 2)

    panels = [
        (_db(power(noisy)), "input (dBFS)", "magma", (DB_FLOOR, 0.0)),
        (_db(power(enhanced)), "output (dBFS)", "magma", (DB_FLOOR, 0.0)),
        (_db(power(noisy - enhanced)), "removed: input - output (dBFS)", "magma", (DB_FLOOR, 0.0)),
        (np.maximum(20.0 * np.log10(np.maximum(_columns(gains), 1e-10)), GAIN_FLOOR_DB), "applied gain (dB)",
         "viridis", (GAIN_FLOOR_DB, 0.0)),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=FIGURE_SIZE_IN, sharex=True)
    khz = FuncFormatter(lambda hz, _pos: f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}")
    for axis, (values, label, cmap, (low, high)) in zip(axes, panels):
        seconds = len(noisy) / rate if values.shape[0] else 0.0
        times = np.linspace(0.0, max(seconds, hop_s), values.shape[0] + 1)
        image = axis.pcolormesh(times, edges_hz, values[:, first_bin:].T, cmap=cmap, vmin=low, vmax=high,
                                shading="flat", rasterized=True)
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(khz)
        axis.set_ylabel("Hz")
        axis.set_title(label, loc="left", fontsize=10)
        fig.colorbar(image, ax=axis, pad=0.01)
    axes[-1].set_xlabel("time (s)")
    summary = describe_figures(figures)
    fig.suptitle("\n".join(filter(None, [title, summary])), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)
    return figures
