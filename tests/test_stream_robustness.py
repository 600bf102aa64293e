"""Streaming faults: bad samples, overdriven input and a failing model never break the stream.

* Samples that are not audio (NaN, +-Inf, beyond +-MAX_SAMPLE_MAGNITUDE) become
  silence and the model restarts at the first frame clear of them: from then on
  the output is exactly what a freshly started model gives, within
  :data:`RECOVERY_HOPS` hops of the last bad sample.
* Overdriven input (full-scale square waves, DC, values of 10 or 1e6) is
  processed: the output stays finite and within :data:`PEAK_HEADROOM` of the
  input peak.
* When the model fails, the hops pass the input through (same latency, no gap),
  the failure is counted and logged once, and the model is tried again after
  ``MODEL_RETRY_SECONDS``; through :class:`~realtime.live.LiveProcessor` any
  other failing block plays as silence and the stream goes on. The summary and
  the service status report both.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from test_live_logic import BLOCK, RATE, InlineStream, drive, inline_factory

from realtime.config import Settings
from realtime.default_model import resolve_model_path
from realtime.cli import format_status
from realtime.enhancer import ANY_BLOCK_SIZE, MAX_SAMPLE_MAGNITUDE, MODEL_RETRY_SECONDS, Enhancer
from realtime.live.processor import LiveProcessor
from realtime.model import MaskModel
from realtime.desktop.service import Service

RECOVERY_HOPS = 2
"""Output hops, counted from the last bad sample at the output delay, until the output is a fresh
model's: the bad sample leaves the analysis window (the model restarts there), then the
overlap-add of the window's two frames flushes. A deep filter adds the frames its taps reach back."""

def recovery_hops(enhancer: Enhancer) -> int:
    """:data:`RECOVERY_HOPS` plus the frames a deep filter's taps reach back (they still hold the fault)."""
    deep = enhancer.model.metadata.mask.deep_filter
    return RECOVERY_HOPS + (0 if deep is None else deep.order - 1 - deep.lookahead)


PEAK_HEADROOM = 2.0
"""Output peak / (input peak * the model's max gain) never exceeds this. Gains per bin can raise
a frame's peak a little above the input's (up to 1.2x measured on square waves and clipped noise);
this leaves 6 dB."""

EXACT = 1e-6
"""Two float runs of the same arithmetic agree to this (in fact bit for bit)."""

SIMULATED_ERROR = "simulated interpreter failure"
SPEECH_SECONDS = 2.0
FAULT_START_SECONDS = 0.7


def speech_like(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced speech stand-in: 19 harmonics of a gliding 120-160 Hz pitch, 3 Hz syllables, light noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    syllables = 0.5 * (1.0 + np.sin(2 * np.pi * 3.0 * t))
    pitch = 140.0 + 20.0 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20) if k * 160 < rate / 2)
    return (0.07 * syllables * voiced + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def in_blocks(enhancer: Enhancer, signal: np.ndarray, sizes: list[int]) -> np.ndarray:
    """``signal`` through ``enhancer`` in blocks of the given sizes, cycled."""
    out, position, i = [], 0, 0
    while position < len(signal):
        size = sizes[i % len(sizes)]
        out.append(enhancer.process(signal[position : position + size]))
        position, i = position + size, i + 1
    return np.concatenate(out)


def first_clear_hop(last_bad: int, enhancer: Enhancer) -> int:
    """Index of the first hop whose analysis frame holds no sample at or before ``last_bad``."""
    hop, window = enhancer.hop_length, enhancer.framing.window_length
    return (last_bad + window) // hop


MODELS = {
    "default-int8": lambda reference_model: (resolve_model_path(None), 16000),
    "random-16k-float32": lambda reference_model: (reference_model("random", 16000, "float32"), 16000),
    "random-48k-float32": lambda reference_model: (reference_model("random", 48000, "float32"), 48000),
}


@pytest.fixture(params=sorted(MODELS))
def model_and_rate(request: pytest.FixtureRequest, reference_model) -> tuple[Path, int]:
    """(model path, its rate): the installed default model and the float reference models."""
    return MODELS[request.param](reference_model)


# --- samples that are not audio --------------------------------------------------------------

FAULTS = {
    # name: (value or values, first bad sample as seconds past FAULT_START_SECONDS, duration in s)
    "one NaN sample": (np.nan, 0.0013, 0.0),
    "NaN block": (np.nan, 0.0, 0.01),
    "+Inf block": (np.inf, 0.0, 0.01),
    "-Inf samples mid-hop": (-np.inf, 0.0047, 0.002),
    "1 s of NaN": (np.nan, 0.0, 1.0),
    "1e30 block": (1e30, 0.0, 0.01),
    "mixed NaN/Inf/-1e20": ((np.nan, np.inf, -1e20, -np.inf), 0.003, 0.05),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_bad_samples_leave_no_trace_after_a_few_hops(model_and_rate: tuple[Path, int], fault: str) -> None:
    """Output finite throughout; identical to the clean run before the fault; after it, identical to a
    clean run whose model restarted at the first clear frame, from RECOVERY_HOPS hops on."""
    path, rate = model_and_rate
    values, offset, duration = FAULTS[fault]
    clean = speech_like(rate, SPEECH_SECONDS)
    first = int((FAULT_START_SECONDS + offset) * rate)
    last = first + max(int(duration * rate), 1) - 1
    bad = clean.copy()
    bad[first : last + 1] = np.resize(np.asarray(values, dtype=np.float64), last + 1 - first)

    faulty = Enhancer(path, rate, block_size=ANY_BLOCK_SIZE)
    out = in_blocks(faulty, bad, [37, rate // 100, 1, 501])  # odd sizes: bad samples fall mid-hop
    reference = Enhancer(path, rate, block_size=ANY_BLOCK_SIZE)
    restart = first_clear_hop(last, reference) * reference.hop_length
    expected = np.concatenate([reference.process(clean[:restart]), _after_reset(reference, clean[restart:])])

    assert np.isfinite(out).all()
    assert faulty.counters.invalid_samples == last + 1 - first and faulty.counters.model_resets == 1
    assert faulty.model.states_finite()
    latency = faulty.latency
    before = first - first % faulty.hop_length  # output handed out before the fault's hop began
    assert np.max(np.abs(out[:before] - expected[:before])) < EXACT
    recovered = last + 1 + latency + recovery_hops(faulty) * faulty.hop_length
    assert recovered < len(out)
    assert np.max(np.abs(out[recovered:] - expected[recovered:])) < EXACT, "the fault left a trace"
    assert np.max(np.abs(out)) <= PEAK_HEADROOM * np.max(np.abs(clean))  # silence, not a blast


def _after_reset(enhancer: Enhancer, signal: np.ndarray) -> np.ndarray:
    """``signal`` through ``enhancer`` with its model restarted first (buffers kept)."""
    enhancer.model.reset()
    return enhancer.process(signal)


def test_the_recovery_bound_is_tight(reference_model) -> None:
    """One hop earlier than RECOVERY_HOPS allows, the fault still shows: the bound above is not slack."""
    path, rate = reference_model("random", 16000, "float32"), 16000
    clean = speech_like(rate, 1.0)
    hop, window = 160, 320
    last = 50 * hop  # the worst alignment: the frame after it starts a hop later
    assert (last + window) % hop == 0
    first = last - window + 1
    bad = clean.copy()
    bad[first : last + 1] = np.nan
    out = Enhancer(path, rate, block_size=ANY_BLOCK_SIZE).process(bad)
    reference = Enhancer(path, rate, block_size=ANY_BLOCK_SIZE)
    restart = first_clear_hop(last, reference) * reference.hop_length
    expected = np.concatenate([reference.process(clean[:restart]), _after_reset(reference, clean[restart:])])
    recovered = last + 1 + reference.latency + RECOVERY_HOPS * reference.hop_length
    earlier = slice(recovered - reference.hop_length, recovered)
    assert np.max(np.abs(out[earlier] - expected[earlier])) > 1e-3


def test_separate_faults_in_one_block_each_restart_the_model() -> None:
    """Three faults far apart in one call (as a file's big block may hold): three restarts, and between
    and after them the output is that of a clean run restarted at the same three hops."""
    path, rate = resolve_model_path(None), 16000
    clean = speech_like(rate, SPEECH_SECONDS)
    faults = [(int(0.5 * rate), np.nan), (int(1.0 * rate) + 7, np.inf), (int(1.5 * rate) + 101, 1e30)]
    bad = clean.copy()
    for index, value in faults:
        bad[index] = value
    faulty = Enhancer(path, rate, block_size=ANY_BLOCK_SIZE)
    out = faulty.process(bad)
    reference = Enhancer(path, rate, block_size=ANY_BLOCK_SIZE)
    hop, latency = reference.hop_length, reference.latency
    restarts = [first_clear_hop(index, reference) * hop for index, _ in faults]
    pieces = [reference.process(clean[: restarts[0]])]
    for start, stop in zip(restarts, restarts[1:] + [len(clean)]):
        pieces.append(_after_reset(reference, clean[start:stop]))
    expected = np.concatenate(pieces)
    assert faulty.counters.model_resets == len(faults) and faulty.counters.invalid_samples == len(faults)
    for (index, _), (next_index, _) in zip(faults, faults[1:] + [(len(clean), None)]):
        recovered = index + 1 + latency + recovery_hops(faulty) * hop
        untouched = slice(recovered, next_index - next_index % hop)
        assert np.max(np.abs(out[untouched] - expected[untouched])) < EXACT


def test_invalid_samples_are_logged_once(reference_model, caplog: pytest.LogCaptureFixture) -> None:
    enhancer = Enhancer(reference_model("random", 16000, "float32"), 16000, block_size=160)
    block = speech_like(16000, 0.01)
    with caplog.at_level(logging.WARNING, logger="realtime.enhancer"):
        for k in range(50):
            enhancer.process(np.where(np.arange(160) == k, np.nan, block))
    warnings = [r for r in caplog.records if r.name == "realtime.enhancer"]
    assert len(warnings) == 1 and "not audio" in warnings[0].getMessage()
    assert enhancer.counters.invalid_samples == 50


def test_largest_valid_sample_is_processed_not_silenced(reference_model) -> None:
    """+-MAX_SAMPLE_MAGNITUDE itself is audio (just very loud); only beyond it is a fault."""
    enhancer = Enhancer(reference_model("identity", 16000, "float32"), 16000)
    signal = np.zeros(16000)
    signal[::400] = MAX_SAMPLE_MAGNITUDE
    signal[200::400] = -MAX_SAMPLE_MAGNITUDE
    out = enhancer.process(signal)
    latency = enhancer.latency
    assert enhancer.counters.invalid_samples == 0 and enhancer.counters.model_resets == 0
    np.testing.assert_allclose(out[latency:], signal[:-latency], atol=1e-6 * MAX_SAMPLE_MAGNITUDE)


# --- overdriven input ----------------------------------------------------------------------


def _overdriven(name: str, rate: int) -> np.ndarray:
    t = np.arange(rate) / rate
    signals = {
        "square 100 Hz full scale": np.sign(np.sin(2 * np.pi * 100 * t)),
        "square 1 kHz full scale": np.sign(np.sin(2 * np.pi * 1000 * t)),
        "+1 constant": np.ones(rate),
        "-1 constant": -np.ones(rate),
        "+-1 at Nyquist": (-1.0) ** np.arange(rate),
        "speech clipped at 1": np.clip(40 * speech_like(rate, 1.0), -1, 1),
        "speech peaking near 10": 40 * speech_like(rate, 1.0),
        "square at 1e6": 1e6 * np.sign(np.sin(2 * np.pi * 200 * t)),
    }
    return signals[name].astype(np.float32)


@pytest.mark.parametrize(
    "name",
    ["square 100 Hz full scale", "square 1 kHz full scale", "+1 constant", "-1 constant", "+-1 at Nyquist",
     "speech clipped at 1", "speech peaking near 10", "square at 1e6"],
)
def test_overdriven_input_never_blows_up(model_and_rate: tuple[Path, int], name: str) -> None:
    path, rate = model_and_rate
    signal = _overdriven(name, rate)
    enhancer = Enhancer(path, rate, block_size=rate // 100)
    out = in_blocks(enhancer, signal, [rate // 100])
    max_gain = enhancer.model.metadata.mask.max_gain
    assert np.isfinite(out).all()
    assert np.max(np.abs(out)) <= PEAK_HEADROOM * max_gain * np.max(np.abs(signal))
    assert enhancer.counters.invalid_samples == 0 and enhancer.counters.model_resets == 0  # loud audio is still audio


# --- a failing model -----------------------------------------------------------------------


class _FailingInterpreter:
    """Wraps a TFLite interpreter: ``invoke`` raises while the model says so."""

    def __init__(self, interpreter: object, model: FaultyModel) -> None:
        self._interpreter, self._model = interpreter, model

    def invoke(self) -> None:
        if self._model.faulty_now:
            raise RuntimeError(SIMULATED_ERROR)
        self._interpreter.invoke()

    def __getattr__(self, name: str) -> object:
        return getattr(self._interpreter, name)


class FaultyModel(MaskModel):
    """A real model that misbehaves on the step calls (numbered from 0) for which ``failing`` is true.

    kinds: ``raise`` (step raises), ``interpreter`` (the interpreter's invoke raises inside the real
    step), ``bad_mask`` (step returns a mask one value short), ``nan_state`` (a state turns NaN).
    """

    def __init__(self, path: Path, kind: str, failing: Callable[[int], bool]) -> None:
        super().__init__(path)
        self.kind, self.failing = kind, failing
        self.calls = 0
        self.faulty_now = False
        if kind == "interpreter":
            self._interpreter = _FailingInterpreter(self._interpreter, self)

    def step(self, features: np.ndarray) -> np.ndarray:
        self.faulty_now = self.failing(self.calls)
        self.calls += 1
        if self.faulty_now and self.kind == "raise":
            raise RuntimeError(SIMULATED_ERROR)
        mask = super().step(features)
        if self.faulty_now and self.kind == "bad_mask":
            return mask[:-1]
        if self.faulty_now and self.kind == "nan_state":
            self._states[0] = np.full_like(self._states[0], np.nan)
        return mask


FAILURE_KINDS = ["raise", "interpreter", "bad_mask"]
FAIL_AT_HOP = 50
HOP = 160
"""The random 16 kHz model's hop at 16 kHz, in samples (blocks here are one hop)."""


def _reference_with_bypass(path: Path, signal: np.ndarray, bypassed: range, reset_at: int | None) -> np.ndarray:
    """``signal`` through a healthy engine, bypassed on the hops in ``bypassed``, model reset before ``reset_at``."""
    enhancer = Enhancer(path, RATE, block_size=HOP)
    out = []
    for k in range(len(signal) // HOP):
        enhancer.bypass = k in bypassed
        if k == reset_at:
            enhancer.model.reset()
        out.append(enhancer.process(signal[k * HOP : (k + 1) * HOP]))
    return np.concatenate(out)


@pytest.mark.parametrize("kind", FAILURE_KINDS)
def test_a_failing_model_falls_back_to_the_delayed_input(
    reference_model, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Fails for good from hop 50: the input passes through at the same delay, the model is retried once per
    MODEL_RETRY_SECONDS (and only then), every failure is counted, and one error is logged."""
    path = reference_model("random", 16000, "float32")
    model = FaultyModel(path, kind, lambda call: call >= FAIL_AT_HOP)
    enhancer = Enhancer(model, RATE, block_size=HOP)
    signal = speech_like(RATE, 3.0)
    with caplog.at_level(logging.ERROR, logger="realtime.enhancer"):
        out = in_blocks(enhancer, signal, [HOP])
    hops = len(signal) // HOP
    retry = enhancer.model_retry_hops
    assert retry == round(MODEL_RETRY_SECONDS * RATE / HOP)
    expected_failures = -(-(hops - FAIL_AT_HOP) // retry)  # the first failure, then one per retry
    assert enhancer.counters.model_failures == expected_failures and model.calls == FAIL_AT_HOP + expected_failures
    assert enhancer.model_failing
    assert enhancer.model_error.startswith("ValueError") if kind == "bad_mask" else SIMULATED_ERROR in enhancer.model_error
    assert len([r for r in caplog.records if r.name == "realtime.enhancer"]) == 1

    latency = enhancer.latency
    healthy = _reference_with_bypass(path, signal, range(0), None)
    passed = slice((FAIL_AT_HOP + 1) * HOP, len(out))  # output hops made of unmasked frames only
    assert np.max(np.abs(out[passed] - signal[passed.start - latency : passed.stop - latency])) < EXACT
    assert np.max(np.abs(healthy[passed] - signal[passed.start - latency : passed.stop - latency])) > 0.01
    assert np.max(np.abs(out[: FAIL_AT_HOP * HOP] - healthy[: FAIL_AT_HOP * HOP])) < EXACT


@pytest.mark.parametrize("kind", FAILURE_KINDS)
def test_the_model_is_retried_after_the_back_off_and_enhances_again(
    reference_model, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Fails once: the next MODEL_RETRY_SECONDS pass through, then the model runs again from a reset state.
    The output is exactly that of a healthy engine bypassed for those hops: same timeline, no gap, and
    the same overlap-add crossfade (no click) as switching bypass on and off."""
    path = reference_model("random", 16000, "float32")
    enhancer = Enhancer(FaultyModel(path, kind, lambda call: call == FAIL_AT_HOP), RATE, block_size=HOP)
    signal = speech_like(RATE, 3.0)
    with caplog.at_level(logging.WARNING, logger="realtime.enhancer"):
        out = in_blocks(enhancer, signal, [HOP])
    retry_hop = FAIL_AT_HOP + enhancer.model_retry_hops
    expected = _reference_with_bypass(path, signal, range(FAIL_AT_HOP, retry_hop), retry_hop)
    assert np.max(np.abs(out - expected)) < EXACT
    assert enhancer.counters.model_failures == 1 and not enhancer.model_failing
    assert any("runs again" in r.getMessage() for r in caplog.records)


def test_a_non_finite_model_state_resets_the_model(reference_model) -> None:
    """A state turning NaN on one hop: that hop passes through, the model restarts, nothing else changes."""
    path = reference_model("random", 16000, "float32")
    enhancer = Enhancer(FaultyModel(path, "nan_state", lambda call: call == FAIL_AT_HOP), RATE, block_size=HOP)
    signal = speech_like(RATE, 1.0)
    out = in_blocks(enhancer, signal, [HOP])
    expected = _reference_with_bypass(path, signal, range(FAIL_AT_HOP, FAIL_AT_HOP + 1), FAIL_AT_HOP + 1)
    assert np.isfinite(out).all() and enhancer.model.states_finite()
    assert enhancer.counters.model_resets == 1 and enhancer.counters.model_failures == 0
    assert np.max(np.abs(out - expected)) < EXACT


# --- through the live processor --------------------------------------------------------------


def _worker_stream(*args, **kwargs) -> InlineStream:  # noqa: ANN002, ANN003
    """A fake stream for the worker path (a processor made without ``inline``): the test calls the
    processor's callback itself, through ``drive``."""
    return InlineStream(*args, **kwargs)


def _delayed(signal: np.ndarray, delay: int) -> np.ndarray:
    return np.concatenate([np.zeros(delay, np.float32), signal[: len(signal) - delay]])


def stream_through(processor: LiveProcessor, signal: np.ndarray) -> tuple[np.ndarray, dict]:
    """Start ``processor``, feed it ``signal`` in real-time-paced blocks, stop it (which must not raise:
    the stream survived); the output and the summary."""
    processor.start()
    try:
        output = np.concatenate(drive(processor, signal, 0, len(signal) // BLOCK, paced=True))
        assert processor.streaming
    finally:
        processor.stop()
    return output, processor.summary()


def test_live_worker_passes_the_input_through_when_the_model_fails(
    reference_model, caplog: pytest.LogCaptureFixture
) -> None:
    path = reference_model("random", 16000, "float32")
    enhancer = Enhancer(FaultyModel(path, "interpreter", lambda call: call >= FAIL_AT_HOP), RATE, block_size=BLOCK)
    processor = LiveProcessor(enhancer, stream_factory=_worker_stream)
    signal = speech_like(RATE, 2.0)
    with caplog.at_level(logging.WARNING):
        output, summary = stream_through(processor, signal)
    assert summary["model_failures"] >= 1 and summary["model_failing"]
    assert SIMULATED_ERROR in summary["model_error"]
    assert summary["processing_failures"] == 0 and summary["xruns"] == 0
    delay = processor.handover_latency + enhancer.latency
    passed = slice((FAIL_AT_HOP + 2) * BLOCK, len(output))  # one block of hand-over, one of crossfade
    assert np.max(np.abs(output[passed] - _delayed(signal, delay)[passed])) < EXACT
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].name == "realtime.enhancer"
    assert any("the model failed on" in r.getMessage() for r in caplog.records)  # the end-of-stream note


FAILING_BLOCKS = range(40, 45)


class _FailingTap:
    """A block tap whose ``on_input`` raises on FAILING_BLOCKS."""

    def on_input(self, index: int, block: np.ndarray) -> None:
        if index // BLOCK in FAILING_BLOCKS:
            raise ValueError("tap broke")

    def on_output(self, index: int, block: np.ndarray) -> None:
        pass


@pytest.mark.parametrize("source", ["enhancer", "tap"])
def test_live_worker_survives_any_failing_block(
    reference_model, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The failing blocks play as silence; afterwards the output is the input at the same delay."""
    enhancer = Enhancer(reference_model("identity", 16000, "float32"), RATE, block_size=BLOCK)
    processor = LiveProcessor(enhancer, stream_factory=_worker_stream,
                              tap=_FailingTap() if source == "tap" else None)
    if source == "enhancer":
        process, calls = enhancer.process, [0]

        def flaky(block: np.ndarray) -> np.ndarray:
            calls[0] += 1
            if calls[0] - 1 in FAILING_BLOCKS:
                raise FloatingPointError("enhancer broke")
            return process(block)

        enhancer.process = flaky  # type: ignore[method-assign]
    signal = speech_like(RATE, 1.0)
    blocks = len(signal) // BLOCK
    with caplog.at_level(logging.ERROR):
        output, summary = stream_through(processor, signal)
    assert summary["processing_failures"] == len(FAILING_BLOCKS) and summary["callbacks"] == blocks
    assert ("enhancer broke" if source == "enhancer" else "tap broke") in summary["processing_error"]
    assert len([r for r in caplog.records if r.name == "realtime.live.processor"]) == 1

    delay = processor.handover_latency + enhancer.latency
    expected = _delayed(signal, delay)
    # Silence from the first failing block until the reset enhancer's output reaches real input.
    silent_from = (FAILING_BLOCKS.start + 1) * BLOCK
    silent_to = (FAILING_BLOCKS.stop + 1) * BLOCK + enhancer.latency
    expected[silent_from:silent_to] = 0.0
    assert np.max(np.abs(output - expected)) < EXACT


def test_live_inline_stream_passes_the_input_through_when_the_model_fails(reference_model) -> None:
    path = reference_model("random", 16000, "float32")
    enhancer = Enhancer(FaultyModel(path, "raise", lambda call: call >= FAIL_AT_HOP), RATE, block_size=BLOCK)
    factory, streams = inline_factory()
    processor = LiveProcessor(enhancer, stream_factory=factory, inline=True)
    signal = speech_like(RATE, 1.0)
    processor.start()
    try:
        output = np.concatenate([streams[0].block(signal[k * BLOCK : (k + 1) * BLOCK])
                                 for k in range(len(signal) // BLOCK)])
        assert processor.streaming
    finally:
        processor.stop()
    summary = processor.summary()
    assert summary["model_failures"] == 1 and summary["model_failing"] and summary["processing_failures"] == 0
    passed = slice((FAIL_AT_HOP + 1) * BLOCK, len(output))
    assert np.max(np.abs(output[passed] - _delayed(signal, enhancer.latency)[passed])) < EXACT


def test_service_status_reports_the_faults_apart_from_xruns(reference_model) -> None:
    """The model failure, a NaN block and their detail show in the status, and stay counted after the
    stream is closed (reopened streams add to them); they are not xruns."""
    path = reference_model("random", 16000, "float32")
    service = Service(Settings(model=str(path)), backend="none")
    enhancer = Enhancer(FaultyModel(path, "raise", lambda call: call >= 20), RATE, block_size=BLOCK)
    factory, streams = inline_factory()
    processor = LiveProcessor(enhancer, stream_factory=factory, inline=True)
    processor.start()
    service.processor = processor
    signal = speech_like(RATE, 0.5)
    signal[1000:1100] = np.nan
    for k in range(len(signal) // BLOCK):
        streams[0].block(signal[k * BLOCK : (k + 1) * BLOCK])
    status = service.status()
    assert status["faults"] == {"model_failures": 1, "processing_failures": 0, "model_resets": 1,
                                "invalid_input_samples": 100}
    assert status["model_failing"] and SIMULATED_ERROR in status["fault_detail"]
    assert status["xruns"] == 0
    faults_row = next(line for line in format_status(status).splitlines() if line.startswith("faults"))
    assert "MODEL FAILING" in faults_row and "model failures 1" in faults_row and SIMULATED_ERROR in faults_row
    service._close_stream()
    after = service.status()
    assert after["faults"] == status["faults"] and not after["model_failing"]
    assert service.carry_over()["faults"] == status["faults"]
