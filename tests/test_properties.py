"""Property-based tests (hypothesis): STFT/overlap-add, the Enhancer's block handling,
the sample ring buffer and the features.

Each property holds for *any* input hypothesis draws from the stated ranges, not only for
the hand-picked cases of test_dsp.py, test_enhancer.py and test_ringbuffer.py.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from realtime import dsp
from realtime.default_model import resolve_model_path
from realtime.enhancer import ANY_BLOCK_SIZE, Enhancer
from realtime.errors import ModelError
from realtime.ringbuffer import RingBuffer

# --- settings ------------------------------------------------------------------------------------

DSP_EXAMPLES = 100
"""Examples per pure-numpy property (each takes well under a millisecond to a few ms)."""

ENHANCER_EXAMPLES = 40
"""Examples per Enhancer property (each runs a real TFLite model over up to ~1 s of audio)."""

FAST = settings(max_examples=DSP_EXAMPLES, deadline=None)
ENHANCER = settings(max_examples=ENHANCER_EXAMPLES, deadline=None)

# --- framings ------------------------------------------------------------------------------------

DEVICE_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000)
"""Sample rates (Hz) a device or file may have."""

MODEL_FRAMINGS = (
    dsp.Framing(16000, 320, 160, dsp.SQRT_HANN),  # 20 ms / 10 ms: the default model's framing
    dsp.Framing(16000, 480, 160, dsp.SQRT_HANN),  # 30 ms / 10 ms: 2/3 overlap
    dsp.Framing(16000, 512, 128, dsp.HANN),  # 32 ms / 8 ms: 75 % overlap, Hann
    dsp.Framing(48000, 960, 480, dsp.SQRT_HANN),  # a 48 kHz model
)


def _supported_device_framings() -> list[dsp.Framing]:
    """Every model framing above at every device rate where its durations are whole samples."""
    framings = []
    for model in MODEL_FRAMINGS:
        for rate in DEVICE_RATES:
            try:
                framings.append(model.at_rate(rate))
            except ValueError:
                continue  # e.g. 10 ms at 22050 Hz is 220.5 samples: the engine refuses that rate
    return framings


SUPPORTED_FRAMINGS = _supported_device_framings()

MAX_ARBITRARY_WINDOW = 1024
"""Longest window (samples) of the arbitrary framings drawn."""


@st.composite
def arbitrary_framings(draw: st.DrawFn) -> dsp.Framing:
    """Any window/hop (samples) that the model metadata would accept: a hop shorter than the
    window whose overlap-added squared window is large enough to invert."""
    window = draw(st.sampled_from(dsp.WINDOWS))
    length = draw(st.integers(2, MAX_ARBITRARY_WINDOW))
    hop = draw(st.integers(1, length - 1))
    try:
        dsp.synthesis_window(dsp.analysis_window(window, length), hop)
    except ValueError:
        hop = max(1, length // 2)  # half-window overlap always inverts for both windows
    return dsp.Framing(16000, length, hop, window)


framings = st.one_of(st.sampled_from(SUPPORTED_FRAMINGS), arbitrary_framings())

# --- signals -------------------------------------------------------------------------------------

SIGNAL_KINDS = ("noise", "dc_offset", "clipped", "silence", "impulses", "tone")
CLIP_DRIVE = 8.0
"""Gain applied to unit noise before clipping at full scale: most samples end up at +-1."""
DC_LEVEL = 0.5
"""DC offset (fraction of the amplitude) of the "dc_offset" signals."""
IMPULSE_SPACING = 97
"""Samples between the impulses of the "impulses" signals (prime: not aligned to any hop)."""


def make_signal(kind: str, length: int, amplitude: float, seed: int) -> np.ndarray:
    """A float64 test signal of ``length`` samples with peak about ``amplitude`` (full scale = 1)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(length)
    if kind == "noise":
        return amplitude * noise / 4.0
    if kind == "dc_offset":
        return amplitude * (DC_LEVEL + 0.1 * noise)
    if kind == "clipped":
        return amplitude * np.clip(CLIP_DRIVE * noise, -1.0, 1.0)
    if kind == "silence":
        return np.zeros(length)
    if kind == "impulses":
        signal = np.zeros(length)
        signal[::IMPULSE_SPACING] = amplitude * np.sign(noise[::IMPULSE_SPACING])
        return signal
    if kind == "tone":
        return amplitude * np.sin(2 * np.pi * rng.uniform(0.0, 0.5) * np.arange(length))
    raise ValueError(kind)


def log_uniform(low_exponent: float, high_exponent: float) -> st.SearchStrategy[float]:
    """``10 ** e`` for ``e`` uniform in the given range (amplitudes over many decades)."""
    return st.floats(low_exponent, high_exponent).map(lambda e: float(10.0**e))


# --- STFT and overlap-add ------------------------------------------------------------------------

RECONSTRUCTION_RTOL = 1e-9
"""Largest error of istft(stft(x)) relative to the peak of x.

Everything is float64 (eps 2.2e-16). A rfft/irfft round trip of an N-sample frame errs by
about eps * log2(N) of the frame's L2 norm, at most eps * log2(N) * sqrt(N) * peak per sample:
< 1e-12 * peak for N <= 1920 (20 ms at 96 kHz). The synthesis window divides by the
overlapped squared window, at worst by the 1e-3 that synthesis_window accepts, which can
amplify that error up to 1000 times: 1e-9 * peak bounds the worst accepted framing. (Typical
errors are ~1e-15 * peak; a framing or indexing bug gives errors of order the peak.)"""

OLA_ATOL = 1e-12
"""Tolerance of the overlap-added analysis*synthesis product around 1: it is a sum of at
most window/hop <= 1023 terms of size <= 1, rounded at eps = 2.2e-16 each (<= 2.3e-13)."""


@FAST
@given(
    framing=framings,
    kind=st.sampled_from(SIGNAL_KINDS),
    windows_long=st.floats(0.0, 4.0),
    amplitude=log_uniform(-30, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_stft_then_istft_reconstructs_any_signal(
    framing: dsp.Framing, kind: str, windows_long: float, amplitude: float, seed: int
) -> None:
    """Any signal (empty, shorter or longer than a window; 1e-30 to 1e30 full scale; DC,
    clipped, silent) comes back from istft(stft(x)) sample-exact in position."""
    length = int(windows_long * framing.window_length)
    signal = make_signal(kind, length, amplitude, seed)
    spectra = dsp.stft(signal, framing)
    hop, window = framing.hop_length, framing.window_length
    assert spectra.shape == (math.ceil((length + window - hop) / hop), framing.n_bins)
    assert len(dsp.istft(spectra, framing)) >= length  # the default length keeps every sample
    out = dsp.istft(spectra, framing, length=length)
    assert out.shape == signal.shape
    peak = float(np.max(np.abs(signal), initial=0.0))
    assert np.max(np.abs(out - signal), initial=0.0) <= RECONSTRUCTION_RTOL * peak


@FAST
@given(
    window=st.sampled_from(dsp.WINDOWS),
    length=st.integers(2, MAX_ARBITRARY_WINDOW),
    hop_fraction=st.floats(0.0, 1.0),
)
def test_synthesis_window_gives_unity_overlap_add_or_is_refused(window: str, length: int, hop_fraction: float) -> None:
    """For every window and hop (1..window samples), synthesis_window either refuses with a
    message about overlap, or returns a finite window whose product with the analysis
    window overlap-adds to exactly 1 at every sample."""
    hop = max(1, min(length, round(hop_fraction * length)))
    analysis = dsp.analysis_window(window, length)
    try:
        synthesis = dsp.synthesis_window(analysis, hop)
    except ValueError as exc:
        assert "overlap" in str(exc)
        return
    assert np.isfinite(synthesis).all()
    periods = 3  # steady state: every sample of the middle window is covered by all its frames
    total = np.zeros((2 * periods + 1) * length + hop)
    for start in range(0, len(total) - length + 1, hop):
        total[start : start + length] += analysis * synthesis
    steady = total[periods * length : (periods + 1) * length]
    assert np.max(np.abs(steady - 1.0)) <= OLA_ATOL


@FAST
@given(framing=framings)
def test_scaled_windows_keep_unity_overlap_add(framing: dsp.Framing) -> None:
    """Framing.windows() normalises the analysis window to unit sum and compensates in the
    synthesis window: their product still overlap-adds to 1 (any supported framing)."""
    analysis, synthesis = framing.windows()
    assert analysis.sum() == pytest.approx(1.0, abs=1e-12)
    hop, length = framing.hop_length, framing.window_length
    product = analysis * synthesis
    folded = np.zeros(hop)
    for start in range(0, length, hop):  # sample n gets product[n + m * hop] from every frame m
        chunk = product[start : start + hop]
        folded[: len(chunk)] += chunk
    assert np.max(np.abs(folded - 1.0)) <= OLA_ATOL


# --- features ------------------------------------------------------------------------------------

FEATURE_BANDS = 32
FEATURE_MODEL_FRAMING = dsp.Framing(16000, 320, 160)
FEATURE_DEVICE_RATES = (8000, 16000, 44100, 48000, 96000)
FEATURE_TOLERANCE = 1e-5
"""Slack (log10 units) for float32 rounding of features up to ~38.5 (one ulp there is 3.8e-6)."""


def _extractor(feature_type: str, rate: int) -> tuple[dsp.FeatureExtractor, int]:
    """An extractor for the 16 kHz model framing running at ``rate`` Hz, and its input bin count."""
    device = FEATURE_MODEL_FRAMING.at_rate(rate)
    edges = dsp.erb_band_edges(FEATURE_BANDS, FEATURE_MODEL_FRAMING)
    return dsp.FeatureExtractor(feature_type, device, FEATURE_MODEL_FRAMING, edges), device.n_bins


EXTRACTORS = [_extractor(kind, rate) for kind in dsp.FEATURE_TYPES for rate in FEATURE_DEVICE_RATES]
EXTRACTOR_IDS = [f"{kind}-{rate}" for kind in dsp.FEATURE_TYPES for rate in FEATURE_DEVICE_RATES]


@st.composite
def extractors_and_power(draw: st.DrawFn) -> tuple[dsp.FeatureExtractor, np.ndarray]:
    """An extractor and a ``(frames, n_bins)`` array of non-negative bin power (float32 or
    float64, anywhere from 0 through subnormals to the dtype's largest value, and +inf)."""
    extractor, n_bins = draw(st.sampled_from(EXTRACTORS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    width = np.dtype(dtype).itemsize * 8
    elements = st.floats(0.0, allow_nan=False, allow_infinity=True, width=width)
    frames = draw(st.integers(1, 3))
    power = draw(hnp.arrays(dtype, (frames, n_bins), elements=elements))
    return extractor, power


@FAST
@given(case=extractors_and_power())
def test_features_are_finite_and_bounded_for_any_power(case: tuple[dsp.FeatureExtractor, np.ndarray]) -> None:
    """Zero, tiny, huge (up to the largest float) and infinite power all give finite float32
    features between log10(POWER_FLOOR) and log10(POWER_CEILING), rising with power."""
    extractor, power = case
    features = extractor(power)
    assert features.dtype == np.float32 and features.shape == (len(power), extractor.size)
    assert np.isfinite(features).all()
    assert features.min() >= math.log10(dsp.POWER_FLOOR) - FEATURE_TOLERANCE
    assert features.max() <= math.log10(dsp.POWER_CEILING) + FEATURE_TOLERANCE
    with np.errstate(over="ignore"):
        louder = extractor(power * 4)  # may overflow to inf: still clamped
    assert np.isfinite(louder).all()
    assert (louder >= features - FEATURE_TOLERANCE).all()


@pytest.mark.parametrize("extractor,n_bins", EXTRACTORS, ids=EXTRACTOR_IDS)
def test_features_of_zero_power_sit_at_the_floor(extractor: dsp.FeatureExtractor, n_bins: int) -> None:
    """Digital silence: every feature is log10(POWER_FLOOR) (-120 dB), finite."""
    features = extractor(np.zeros((2, n_bins)))
    assert np.allclose(features, math.log10(dsp.POWER_FLOOR), atol=FEATURE_TOLERANCE)


# --- the Enhancer's block handling ---------------------------------------------------------------

ENHANCER_RATES = (8000, 16000, 32000, 44100, 48000, 96000)
"""Device rates (Hz) at which 20 ms / 10 ms (the test models' framing) are whole samples."""

IDENTITY_RTOL = 1e-5
"""Largest error of the identity model's output (vs the delayed input) relative to the input peak.

The identity mask is exactly 1.0, but the band-gain spreading matrix is float32 (its rows
sum to 1 within a few float32 ulps, ~1e-7 relative), and the output is rounded to float32
(6e-8 relative). Both errors scale with the signal, so the bound is relative; any framing
or alignment error is of the order of the peak itself."""

MAX_BLOCKS = 10
"""Most blocks per drawn block sequence."""

MAX_BLOCK = 4000
"""Longest block drawn (samples): more than two windows at 96 kHz (1920 samples)."""

NON_FINITE_VALUES = (np.nan, np.inf, -np.inf)

block_sizes_any = st.lists(
    st.one_of(st.just(0), st.just(1), st.integers(2, 200), st.integers(200, MAX_BLOCK)),
    min_size=1,
    max_size=MAX_BLOCKS,
)
"""Block sequences for ``block_size=None``: empty blocks, single samples, blocks shorter than a
hop and blocks longer than the window."""


@pytest.fixture(scope="module")
def model_paths(reference_model) -> dict[str, Path]:
    """``identity``: the float32 identity reference model (16 kHz, 20 ms / 10 ms);
    ``default``: the installed default model (a real, trained, int8 model)."""
    paths = {"identity": reference_model("identity", 16000, "float32")}
    try:
        paths["default"] = resolve_model_path(None)
    except ModelError:
        pass
    return paths


def model_path(model_paths: dict[str, Path], kind: str) -> Path:
    """The model file of ``kind``; skips the test when it is the default model and none is installed."""
    if kind not in model_paths:
        pytest.skip("no default model is installed")
    return model_paths[kind]


def run_blocks(enhancer: Enhancer, signal: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Process ``signal`` cut into consecutive blocks of ``sizes`` (which sum to its length)."""
    outputs = []
    position = 0
    for size in sizes:
        block = signal[position : position + size]
        out = enhancer.process(block)
        assert out.dtype == np.float32 and out.shape == block.shape
        outputs.append(out)
        position += size
    assert position == len(signal)
    return np.concatenate(outputs) if outputs else np.zeros(0, dtype=np.float32)


def delayed(signal: np.ndarray, latency: int) -> np.ndarray:
    """``signal`` delayed by ``latency`` samples (zeros first), same length."""
    return np.concatenate([np.zeros(latency), signal])[: len(signal)]


def assert_is_delayed_input(out: np.ndarray, signal: np.ndarray, latency: int) -> None:
    peak = float(np.max(np.abs(signal), initial=0.0))
    error = np.max(np.abs(out - delayed(signal, latency)), initial=0.0)
    assert error <= IDENTITY_RTOL * peak, f"identity output differs from the input delayed by {latency}: {error}"


signal_kinds = st.sampled_from(SIGNAL_KINDS)
audio_amplitudes = st.one_of(st.just(1.0), log_uniform(-6, 0))
"""Full scale, or anything down to -120 dBFS."""


@pytest.mark.parametrize("kind", ["identity", "default"])
@ENHANCER
@given(
    rate=st.sampled_from(ENHANCER_RATES),
    sizes=block_sizes_any,
    signal_kind=signal_kinds,
    amplitude=audio_amplitudes,
    seed=st.integers(0, 2**32 - 1),
)
def test_any_block_sequence_gives_the_one_big_block_output(
    model_paths, kind: str, rate: int, sizes: list[int], signal_kind: str, amplitude: float, seed: int
) -> None:
    """With block_size=None, cutting the input into any blocks gives exactly (bit for bit) the
    output of one big block; reset() then the same input gives it again; the identity model's
    output is the input delayed by ``latency``."""
    path = model_path(model_paths, kind)
    signal = make_signal(signal_kind, sum(sizes), amplitude, seed).astype(np.float32)
    whole = Enhancer(path, rate, block_size=ANY_BLOCK_SIZE).process(signal)
    streaming = Enhancer(path, rate, block_size=ANY_BLOCK_SIZE)
    pieces = run_blocks(streaming, signal, sizes)
    np.testing.assert_array_equal(pieces, whole)

    streaming.process(make_signal("noise", streaming.framing.window_length + 7, 1.0, seed + 1).astype(np.float32))
    streaming.reset()
    np.testing.assert_array_equal(streaming.process(signal), whole)

    hop = streaming.hop_length
    lookahead = streaming.lookahead_frames * hop  # the default model looks one hop ahead
    assert streaming.latency == streaming.framing.window_length - hop + lookahead + hop - 1
    if kind == "identity":
        assert_is_delayed_input(whole, signal, streaming.latency)


@st.composite
def declared_block_cases(draw: st.DrawFn) -> tuple[int, int, list[int], int]:
    """``(rate, block_size, sizes, refused_at)``: block sizes that are multiples (including 0)
    of gcd(block_size, hop), and the index before which a non-multiple block is sent."""
    rate = draw(st.sampled_from(ENHANCER_RATES))
    hop = rate // 100  # 10 ms
    block_size = draw(st.one_of(st.sampled_from([hop, hop // 2, 2 * hop, 64, 128, 256, 441, 1024]), st.integers(1, 3 * hop)))
    granularity = math.gcd(block_size, hop)
    multiples = st.integers(0, MAX_BLOCK // granularity).map(lambda k: k * granularity)
    sizes = draw(st.lists(st.one_of(st.just(block_size), multiples), min_size=1, max_size=MAX_BLOCKS))
    refused_at = draw(st.integers(0, len(sizes)))
    return rate, block_size, sizes, refused_at


@pytest.mark.parametrize("kind", ["identity", "default"])
@ENHANCER
@given(case=declared_block_cases(), signal_kind=signal_kinds, amplitude=audio_amplitudes, seed=st.integers(0, 2**32 - 1))
def test_declared_block_size_accepts_any_multiple_of_the_granularity(
    model_paths, kind: str, case: tuple[int, int, list[int], int], signal_kind: str, amplitude: float, seed: int
) -> None:
    """With a declared block_size, any sequence of multiples of gcd(block_size, hop) gives the
    one-big-block output; a block that is not a multiple is refused with ValueError and leaves
    the stream untouched; declaring the block size only removes buffering delay (hop - gcd
    samples less than block_size=None), it never changes the audio."""
    rate, block_size, sizes, refused_at = case
    path = model_path(model_paths, kind)
    signal = make_signal(signal_kind, sum(sizes), amplitude, seed).astype(np.float32)
    streaming = Enhancer(path, rate, block_size=block_size)
    granularity = streaming.granularity
    assert granularity == math.gcd(block_size, streaming.hop_length)
    assert streaming.buffering_latency == streaming.hop_length - granularity

    outputs = []
    position = 0
    for index, size in enumerate(sizes):
        if index == refused_at and granularity > 1:
            with pytest.raises(ValueError, match="not a multiple"):
                streaming.process(np.ones(granularity + 1, dtype=np.float32))
        outputs.append(streaming.process(signal[position : position + size]))
        assert len(outputs[-1]) == size
        position += size
    pieces = np.concatenate(outputs)

    whole = Enhancer(path, rate, block_size=block_size).process(signal)
    np.testing.assert_array_equal(pieces, whole)

    any_size = Enhancer(path, rate, block_size=ANY_BLOCK_SIZE).process(signal)  # "any": granularity - 1 samples later
    shift = granularity - 1
    np.testing.assert_array_equal(any_size[shift:], whole[: len(whole) - shift])
    assert not any_size[:shift].any()
    if kind == "identity":
        assert_is_delayed_input(whole, signal, streaming.latency)


@st.composite
def signals_with_non_finite_samples(draw: st.DrawFn) -> tuple[np.ndarray, list[int]]:
    """Noisy speech-level audio with NaN, +Inf and -Inf samples at random places, and block
    sizes (some 0) that cut it at random points."""
    length = draw(st.integers(1, 3 * MAX_BLOCK))
    signal = make_signal("noise", length, 0.5, draw(st.integers(0, 2**32 - 1))).astype(np.float32)
    positions = draw(st.lists(st.integers(0, length - 1), min_size=1, max_size=20))
    for position in positions:
        signal[position] = draw(st.sampled_from(NON_FINITE_VALUES))
    cuts = sorted(draw(st.lists(st.integers(0, length), max_size=MAX_BLOCKS)))
    sizes = np.diff([0, *cuts, length]).tolist()
    return signal, sizes


def nan_at_both_ends() -> tuple[np.ndarray, list[int]]:
    """241 samples with NaN first and last, cut into 240 + 1 (found by hypothesis, kept as an example)."""
    signal = make_signal("noise", 241, 0.5, 0).astype(np.float32)
    signal[[0, 240]] = np.nan
    return signal, [240, 1]


@ENHANCER
@given(rate=st.sampled_from(ENHANCER_RATES), case=signals_with_non_finite_samples())
@example(rate=8000, case=nan_at_both_ends())
def test_non_finite_samples_neither_escape_nor_depend_on_block_sizes(
    model_paths, rate: int, case: tuple[np.ndarray, list[int]]
) -> None:
    """NaN and Inf samples anywhere: the real model's output stays finite, its states stay
    finite, and the output still does not depend on how the input was cut into blocks."""
    signal, sizes = case
    path = model_path(model_paths, "default")
    streaming = Enhancer(path, rate, block_size=ANY_BLOCK_SIZE)
    pieces = run_blocks(streaming, signal, sizes)
    assert np.isfinite(pieces).all()
    assert streaming.model.states_finite()
    np.testing.assert_array_equal(pieces, Enhancer(path, rate, block_size=ANY_BLOCK_SIZE).process(signal))


# --- the ring buffer -----------------------------------------------------------------------------

MAX_RING_CAPACITY = 64
MAX_RING_COUNT = 2 * MAX_RING_CAPACITY + 3
"""Counts drawn for ring operations: up to more than twice the largest capacity."""

UNTOUCHED = -1.0
"""Value that read_into must leave in ``out`` beyond the samples it read (the ring only
ever holds positive sample numbers or zeros)."""

ring_counts = st.integers(0, MAX_RING_COUNT)


class RingBufferMachine(RuleBasedStateMachine):
    """Any interleaving of write / write_zeros / read_into / skip / clear behaves like a deque
    bounded at ``capacity``: same counts, same samples, FIFO order across wrap-around."""

    @initialize(capacity=st.integers(1, MAX_RING_CAPACITY))
    def make_ring(self, capacity: int) -> None:
        self.ring = RingBuffer(capacity)
        self.model: deque[float] = deque()
        self.next_sample = 1.0  # every written sample is a distinct number, exact in float32
        self.last_counts = (0, 0)

    def _space(self) -> int:
        return self.ring.capacity - len(self.model)

    @rule(count=ring_counts, dtype=st.sampled_from([np.float32, np.float64]))
    def write(self, count: int, dtype: type) -> None:
        samples = np.arange(self.next_sample, self.next_sample + count, dtype=dtype)
        self.next_sample += count
        expected = min(count, self._space())
        assert self.ring.write(samples) == expected
        self.model.extend(float(s) for s in samples[:expected])
        samples[:] = np.nan  # the ring holds a copy: changing the caller's array changes nothing

    @rule(count=ring_counts)
    def write_zeros(self, count: int) -> None:
        expected = min(count, self._space())
        assert self.ring.write_zeros(count) == expected
        self.model.extend([0.0] * expected)

    @rule(count=ring_counts)
    def read_into(self, count: int) -> None:
        out = np.full(count, UNTOUCHED, dtype=np.float32)
        expected = min(count, len(self.model))
        assert self.ring.read_into(out) == expected
        assert list(out[:expected]) == [self.model.popleft() for _ in range(expected)]
        assert (out[expected:] == UNTOUCHED).all()

    @rule(count=ring_counts)
    def skip(self, count: int) -> None:
        expected = min(count, len(self.model))
        assert self.ring.skip(count) == expected
        for _ in range(expected):
            self.model.popleft()

    @rule()
    def clear(self) -> None:
        self.ring.clear()
        self.model.clear()

    @rule(count=st.integers(1, MAX_RING_COUNT))
    def negative_counts_are_refused(self, count: int) -> None:
        before = (self.ring.write_count, self.ring.read_count)
        with pytest.raises(ValueError, match="negative"):
            self.ring.write_zeros(-count)
        with pytest.raises(ValueError, match="negative"):
            self.ring.skip(-count)
        assert (self.ring.write_count, self.ring.read_count) == before

    @invariant()
    def counts_match_the_model(self) -> None:
        ring = self.ring
        assert ring.available == len(self.model)
        assert 0 <= ring.available <= ring.capacity
        assert ring.free == ring.capacity - ring.available
        counts = (ring.write_count, ring.read_count)
        assert counts[0] >= self.last_counts[0] and counts[1] >= self.last_counts[1]  # counters only grow
        self.last_counts = counts


RingBufferMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
TestRingBufferProperties = RingBufferMachine.TestCase
