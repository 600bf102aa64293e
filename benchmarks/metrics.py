"""Speech quality metrics for the quality benchmark, all at 16 kHz and all offline.

* PESQ wide-band (ITU-T P.862.2) with the ``pesq`` package;
* STOI and extended STOI with ``pystoi``;
* scale-invariant SDR in numpy;
* DNSMOS P.835 (SIG, BAK, OVRL; non-intrusive): the ONNX model bundled with ``speechmos``, run
  with ``onnxruntime`` exactly as ``speechmos.dnsmos.run`` does (without its unused P.808 model);
* :func:`estimate_lag`: the delay of one signal behind another by cross-correlation, used both to
  measure each system's raw delay and to check that its compensated output is aligned (residual lag 0).

Each metric returns ``nan`` (never raises) when its package is missing or the signal is
degenerate (PESQ's "no utterance detected", silence), so one bad file cannot sink a run;
:func:`available_metrics` says which ones can run.
"""

from __future__ import annotations

import importlib.util
import math
import warnings

import numpy as np

RATE = 16000
"""Every metric here works at this rate."""

METRICS = ("pesq", "stoi", "estoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
"""The metric names, in table order."""

INTRUSIVE = ("pesq", "stoi", "estoi", "si_sdr")
"""Metrics that compare with the clean reference."""

DNSMOS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
"""Non-intrusive metrics (they only look at the signal under test)."""

_PACKAGE = {"pesq": "pesq", "stoi": "pystoi", "estoi": "pystoi", "si_sdr": "numpy",
            "dnsmos_sig": "speechmos", "dnsmos_bak": "speechmos", "dnsmos_ovrl": "speechmos"}


def available_metrics() -> list[str]:
    """The metrics whose packages are installed."""
    return [m for m in METRICS if importlib.util.find_spec(_PACKAGE[m]) is not None]


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    est = np.asarray(estimate, dtype=np.float64).reshape(-1)
    if len(ref) != len(est):
        raise ValueError(f"reference and estimate differ in length: {len(ref)} vs {len(est)}")
    return ref, est


def si_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-12) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019); both signals are made zero-mean first."""
    ref, est = _pair(reference, estimate)
    ref = ref - ref.mean()
    est = est - est.mean()
    energy = float(np.dot(ref, ref))
    if energy <= eps:
        return math.nan
    target = (np.dot(est, ref) / energy) * ref
    residual = est - target
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(residual, residual) + eps)))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, rate: int = RATE) -> float:
    """Wide-band PESQ (MOS-LQO, about 1.04 to 4.64); ``nan`` if it cannot be computed."""
    try:
        from pesq import pesq
    except ImportError:
        return math.nan
    ref, est = _pair(reference, estimate)
    try:
        return float(pesq(rate, ref, est, "wb"))
    except Exception:  # pesq raises its own errors for silence / no utterance
        return math.nan


def stoi(reference: np.ndarray, estimate: np.ndarray, rate: int = RATE, extended: bool = False) -> float:
    """STOI (or ESTOI with ``extended``), 0 to 1; ``nan`` if it cannot be computed."""
    try:
        from pystoi import stoi as _stoi
    except ImportError:
        return math.nan
    ref, est = _pair(reference, estimate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not enough STFT frames" on very short signals
        try:
            value = float(_stoi(ref, est, rate, extended=extended))
        except Exception:
            return math.nan
    return value if math.isfinite(value) else math.nan


DNSMOS_WINDOW_S = 9.01
"""DNSMOS scores windows of this length (the length its models were trained on)."""

_dnsmos_session = None


def _dnsmos_model():
    """One ONNX Runtime session (one thread) on speechmos's bundled P.835 model ``sig_bak_ovr.onnx``."""
    global _dnsmos_session
    if _dnsmos_session is None:
        from pathlib import Path

        import onnxruntime as ort
        import speechmos

        path = Path(speechmos.__file__).resolve().parent / "dnsmos_models" / "sig_bak_ovr.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        _dnsmos_session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return _dnsmos_session


# speechmos.dnsmos.DNSMOS.get_polyfit_val (non-personalised): raw model outputs -> P.835 MOS.
_POLY_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_POLY_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_POLY_OVR = np.poly1d([-0.06766283, 1.11546468, 0.04602535])


def dnsmos(signal: np.ndarray, rate: int = RATE) -> dict[str, float]:
    """DNSMOS P.835 ``{"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"}`` of one signal (``nan`` if unavailable).

    Exactly what ``speechmos.dnsmos.run(x, 16000)`` returns as ``sig_mos``,
    ``bak_mos`` and ``ovrl_mos`` (same bundled model, windows and polynomial
    mapping): the signal (clipped to [-1, 1]) is repeated up to 9.01 s, scored
    in 9.01 s windows at a 1 s hop, and the window scores are averaged. It skips
    speechmos's P.808 model, whose score is not reported, which makes it about
    3.5 times faster.
    """
    nan = {k: math.nan for k in DNSMOS}
    if importlib.util.find_spec("speechmos") is None or importlib.util.find_spec("onnxruntime") is None:
        return nan
    x = np.clip(np.asarray(signal, dtype=np.float32).reshape(-1), -1.0, 1.0)
    if not np.any(x):
        return nan
    window = int(DNSMOS_WINDOW_S * rate)
    while len(x) < window:
        x = np.append(x, x)
    hops = int(np.floor(len(x) / rate) - DNSMOS_WINDOW_S) + 1
    segments = [x[int(i * rate) : int((i + DNSMOS_WINDOW_S) * rate)] for i in range(hops)]
    segments = [s for s in segments if len(s) == window]
    session = _dnsmos_model()
    raw = np.concatenate([session.run(None, {"input_1": s[None, :]})[0] for s in segments])
    return {"dnsmos_sig": float(np.mean(_POLY_SIG(raw[:, 0]))), "dnsmos_bak": float(np.mean(_POLY_BAK(raw[:, 1]))),
            "dnsmos_ovrl": float(np.mean(_POLY_OVR(raw[:, 2])))}


def score(reference: np.ndarray, estimate: np.ndarray, rate: int = RATE, *, with_dnsmos: bool = True,
          metrics: tuple[str, ...] | list[str] = METRICS) -> dict[str, float]:
    """All requested metrics of ``estimate`` against ``reference`` (same length, ``rate`` Hz)."""
    if rate != RATE:
        raise ValueError(f"metrics run at {RATE} Hz, got {rate}")
    out: dict[str, float] = {}
    if "pesq" in metrics:
        out["pesq"] = pesq_wb(reference, estimate, rate)
    if "stoi" in metrics:
        out["stoi"] = stoi(reference, estimate, rate)
    if "estoi" in metrics:
        out["estoi"] = stoi(reference, estimate, rate, extended=True)
    if "si_sdr" in metrics:
        out["si_sdr"] = si_sdr(reference, estimate)
    if with_dnsmos and any(m in metrics for m in DNSMOS):
        out.update({k: v for k, v in dnsmos(estimate, rate).items() if k in metrics})
    return out


ONSET_FRAME_S = 0.01
"""Frame for onset detection and onset level."""
ONSET_ACTIVE_DB = 35.0
"""A frame is speech when its energy is within this many dB of the loudest frame."""
ONSET_PAUSE_S = 0.1
"""An onset follows at least this long without speech."""
ONSET_WINDOW_S = 0.05
"""The part of a word measured from its onset."""


def onset_loss_db(reference: np.ndarray, estimate: np.ndarray, rate: int = RATE) -> float | None:
    """Mean level (dB) of ``estimate`` against ``reference`` over the first 50 ms of every word onset.

    An onset is a speech frame of ``reference`` after at least 100 ms without speech; 0 dB is a word
    start passed untouched, -6 dB one halved. None when the reference has no onset.
    """
    reference, estimate = _pair(reference, estimate)
    frame = int(ONSET_FRAME_S * rate)
    n = len(reference) // frame
    if n == 0:
        return None
    ref_energy = np.sum(reference[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)
    est_energy = np.sum(estimate[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)
    active = ref_energy > ref_energy.max() * 10.0 ** (-ONSET_ACTIVE_DB / 10.0)
    pause, window = round(ONSET_PAUSE_S / ONSET_FRAME_S), round(ONSET_WINDOW_S / ONSET_FRAME_S)
    losses = []
    for i in range(pause, n - window):
        if active[i] and not active[i - pause : i].any():
            losses.append(10.0 * np.log10((est_energy[i : i + window].sum() + 1e-20) / ref_energy[i : i + window].sum()))
    return float(np.mean(losses)) if losses else None


def estimate_lag(reference: np.ndarray, delayed: np.ndarray, max_lag: int = 4000) -> int:
    """How many samples ``delayed`` lags behind ``reference`` (negative: it leads), within ``max_lag``.

    The peak of the cross-correlation ``sum_n reference[n] * delayed[n + lag]``
    computed with an FFT over the common length. Both are made zero-mean; the
    signals need not be the same length (the common prefix is used).
    """
    n = min(len(reference), len(delayed))
    if n == 0:
        return 0
    a = np.asarray(reference[:n], dtype=np.float64)
    b = np.asarray(delayed[:n], dtype=np.float64)
    a = a - a.mean()
    b = b - b.mean()
    size = 1 << int(math.ceil(math.log2(2 * n)))
    corr = np.fft.irfft(np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size), size)
    max_lag = min(max_lag, n - 1)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([corr[: max_lag + 1], corr[size - max_lag :]])
    return int(lags[int(np.argmax(values))])


def residual_lag(reference: np.ndarray, output: np.ndarray, max_lag: int = 800) -> int:
    """:func:`estimate_lag` of a (supposedly aligned) output against its clean reference."""
    return estimate_lag(reference, output, max_lag)


def band_lag(reference: np.ndarray, output: np.ndarray, band_hz: tuple[float, float] = (1000.0, 4000.0),
             max_lag: int = 800, rate: int = RATE) -> int:
    """:func:`estimate_lag` on both signals band-passed (zero-phase) to ``band_hz``.

    Insensitive to the phase of a high- or low-pass filter at the band's edges
    (e.g. a DC-blocking high-pass leads low frequencies by a few samples).
    """
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, band_hz, btype="band", fs=rate, output="sos")
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(output, dtype=np.float64)
    if min(len(a), len(b)) < 64:
        return estimate_lag(a, b, max_lag)
    return estimate_lag(sosfiltfilt(sos, a), sosfiltfilt(sos, b), max_lag)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """Global SNR of ``noisy`` against ``clean`` in dB: power of clean over power of noisy minus clean."""
    ref, est = _pair(clean, noisy)
    noise = est - ref
    return float(10.0 * np.log10((np.dot(ref, ref) + 1e-20) / (np.dot(noise, noise) + 1e-20)))
