"""The Python API a developer reaches for: ``realtime.enhance``, ``realtime.Enhancer`` and the README's
"Use from Python" snippet.

Alignment and dtype checks use the float32 identity reference model (its output is the input, delayed);
channel and block-split checks use the bundled default model (a real, trained int8 model), bit for bit.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import realtime
from realtime.config import Settings
from realtime.default_model import DEFAULT_ATTEN_LIM_DB, DEFAULT_MODEL_PATH, MODELS_DIR
from realtime.enhancer import ANY_BLOCK_SIZE, Enhancer
from realtime.errors import ModelError, QuietmicError
from realtime.model import MaskModel

REPO = Path(__file__).resolve().parent.parent

RATE = 16000
"""Hz: the reference models' rate (the default model runs here too)."""

HOP = 160
"""The 10 ms hop at :data:`RATE`, in samples."""

IDENTITY_TOLERANCE = 1e-5
"""Largest error of the float32 identity model's output against its input (full scale 1)."""

HEAVY_MODULES = ("ai_edge_litert", "sounddevice", "scipy")
"""What ``import realtime`` must not load: TensorFlow Lite, PortAudio, scipy."""


def noisy_speech(frames: int, channels: int | None = None, seed: int = 0) -> np.ndarray:
    """Tones and noise at speech level, float32: ``(frames,)`` or ``(frames, channels)`` (each channel other)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / RATE
    columns = [
        0.2 * np.sin(2 * np.pi * (220 + 70 * c) * t) + 0.05 * rng.standard_normal(frames)
        for c in range(channels or 1)
    ]
    signal = np.stack(columns, axis=1).astype(np.float32)
    return signal if channels else signal[:, 0]


@pytest.fixture(scope="module")
def identity(reference_model) -> Path:
    return reference_model("identity", RATE, "float32")


def run_blocks(enhancer: Enhancer, signal: np.ndarray, sizes: list[int]) -> np.ndarray:
    """``signal`` through ``enhancer`` in consecutive blocks of ``sizes`` (cycled), then flushed."""
    out, position, index = [], 0, 0
    while position < len(signal):
        size = min(sizes[index % len(sizes)], len(signal) - position)
        out.append(enhancer.process(signal[position : position + size]))
        position += size
        index += 1
    out.append(enhancer.flush())
    return np.concatenate(out)


# --- import realtime ---------------------------------------------------------------------------


def test_import_realtime_loads_no_model_runtime_audio_library_or_scipy() -> None:
    code = (
        "import sys, realtime\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
        "realtime.enhance, realtime.QuietmicError\n"  # naming the whole-signal call loads no model either
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["", ""], f"import realtime loaded: {result.stdout!r}"


def test_the_public_names_are_importable_from_the_package() -> None:
    from realtime import Enhancer as Lazy
    from realtime import enhance

    assert Lazy is Enhancer and enhance is realtime.enhance
    assert realtime.MaskModel is MaskModel and realtime.QuietmicError is QuietmicError
    for name in realtime.__all__:
        assert getattr(realtime, name) is not None and name in dir(realtime)
    with pytest.raises(AttributeError, match="no attribute 'enhancer_of_doom'"):
        realtime.enhancer_of_doom  # noqa: B018
    for name in ("enhance", "Enhancer", "flush", "process", "latency"):
        assert name in realtime.__doc__, f"the package docstring does not map {name}"


# --- realtime.enhance --------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [0, 1, 159, 161, RATE + 7])
def test_enhance_returns_the_input_aligned_and_of_the_same_length(identity: Path, frames: int) -> None:
    signal = noisy_speech(frames)
    out = realtime.enhance(signal, RATE, identity, atten_lim_db=None)
    assert out.shape == signal.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, signal, atol=IDENTITY_TOLERANCE)


@pytest.mark.parametrize(
    ("dtype", "tolerance"),
    [
        (np.float32, IDENTITY_TOLERANCE),
        (np.float64, IDENTITY_TOLERANCE),
        (np.float16, 1e-3),  # float16's own resolution
        (np.int16, 1),  # one LSB
        (np.int32, 2**31 * IDENTITY_TOLERANCE),
        (np.uint8, 1),
    ],
)
def test_enhance_returns_the_input_dtype(identity: Path, dtype: type, tolerance: float) -> None:
    signal = noisy_speech(RATE // 2)
    kind = np.dtype(dtype).kind
    if kind == "f":
        samples = signal.astype(dtype)
    else:
        info = np.iinfo(dtype)
        scale = 2.0 ** (8 * np.dtype(dtype).itemsize - 1)
        samples = np.clip(np.rint(signal * scale + (scale if kind == "u" else 0)), info.min, info.max).astype(dtype)
    out = realtime.enhance(samples, RATE, identity, atten_lim_db=None)
    assert out.dtype == np.dtype(dtype) and out.shape == samples.shape
    assert np.max(np.abs(out.astype(np.float64) - samples.astype(np.float64))) <= tolerance


def test_int16_full_scale_is_clipped_not_wrapped(identity: Path) -> None:
    square = np.where(np.arange(RATE // 4) % 40 < 20, 32767, -32768).astype(np.int16)
    out = realtime.enhance(square, RATE, identity, atten_lim_db=None)
    assert out.dtype == np.int16
    assert np.max(np.abs(out.astype(np.int32) - square.astype(np.int32))) <= 1  # no wrap-around to the other sign


def test_enhance_stereo_is_each_channel_enhanced_alone() -> None:
    stereo = noisy_speech(RATE, channels=2)
    out = realtime.enhance(stereo, RATE)
    assert out.shape == stereo.shape and out.dtype == np.float32
    for channel in range(2):
        np.testing.assert_array_equal(out[:, channel], realtime.enhance(stereo[:, channel], RATE))
    assert not np.array_equal(out[:, 0], out[:, 1])
    single = realtime.enhance(stereo[:, :1], RATE)
    assert single.shape == (RATE, 1)
    np.testing.assert_array_equal(single[:, 0], out[:, 0])


def test_enhance_uses_the_apps_defaults() -> None:
    signal = noisy_speech(RATE // 2)
    expected = realtime.enhance(signal, RATE, DEFAULT_MODEL_PATH, atten_lim_db=Settings().atten_lim_db)
    np.testing.assert_array_equal(realtime.enhance(signal, RATE), expected)
    assert not np.array_equal(realtime.enhance(signal, RATE, atten_lim_db=None), expected)


def test_enhance_equals_the_stream_of_any_block_size() -> None:
    """The one call is exactly a stream in any blocks, flushed and with its latency dropped."""
    signal = noisy_speech(RATE)
    whole = realtime.enhance(signal, RATE)
    for sizes in ([HOP], [256], [1000], [37, 501]):
        block_size = ANY_BLOCK_SIZE if len(sizes) > 1 else None
        enhancer = Enhancer(sample_rate=RATE, block_size=block_size)
        streamed = run_blocks(enhancer, signal, sizes)
        np.testing.assert_array_equal(streamed[enhancer.latency :], whole)


@pytest.mark.parametrize(
    ("signal", "error", "message"),
    [
        (np.zeros((2, RATE)), ValueError, r"pass signal\.T"),
        (np.zeros((RATE, 2, 1)), ValueError, r"1-D\) or \(frames, channels\)"),
        (np.zeros((RATE, 0)), ValueError, "no channels"),
        (np.zeros(RATE, dtype=complex), TypeError, "real audio samples"),
        (np.array(["a", "b"]), TypeError, "real audio samples"),
    ],
)
def test_enhance_refuses_what_is_not_audio_and_says_what_to_pass(signal: np.ndarray, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        realtime.enhance(signal, RATE)


@pytest.mark.parametrize("rate", [11025, 22050, 44099])
def test_any_rate_is_enhanced_as_file_mode_enhances_it(identity: Path, tmp_path: Path, rate: int) -> None:
    """At rates the model's framing does not fit, the one call resamples (soxr) as file mode does: same samples,
    same shape, aligned (the identity model gives the input back through the two resamplers)."""
    import soundfile

    signal = noisy_speech(rate, channels=2)
    out = realtime.enhance(signal, rate)
    assert out.shape == signal.shape and out.dtype == np.float32
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    soundfile.write(source, signal, rate, subtype="FLOAT")
    realtime.enhance_file(source, target)
    np.testing.assert_array_equal(out, soundfile.read(target, dtype="float32")[0])
    tones = np.sin(2 * np.pi * 220 * np.arange(rate) / rate) + 0.5 * np.sin(2 * np.pi * 1000 * np.arange(rate) / rate)
    passed = realtime.enhance(0.2 * tones, rate, identity, atten_lim_db=None)  # well inside soxr's pass band
    inner = slice(rate // 10, -rate // 10)  # the resamplers' start and end transients aside
    assert np.max(np.abs(passed[inner] - 0.2 * tones[inner])) < 0.01 * np.max(np.abs(0.2 * tones))


@pytest.mark.parametrize("rate", [4000, 400_000])
def test_a_rate_out_of_range_is_refused_with_what_to_do(rate: int) -> None:
    with pytest.raises(QuietmicError, match=rf"{rate} Hz is outside the 8000..384000 Hz.*resample it"):
        realtime.enhance(np.zeros(rate), rate)


def test_the_enhancer_refuses_a_rate_the_model_cannot_run_at_and_says_what_to_do() -> None:
    with pytest.raises(QuietmicError, match=r"cannot run at 22050 Hz.*resample the audio"):
        Enhancer(sample_rate=22050)


@pytest.mark.parametrize("rate", [0, -16000, 16000.5, "16000"])
def test_a_sample_rate_that_is_no_rate_is_refused(rate: object) -> None:
    with pytest.raises(ValueError, match="sample_rate must be a"):
        realtime.enhance(np.zeros(100), rate)  # type: ignore[arg-type]


# --- models by name ----------------------------------------------------------------------------


def test_models_are_taken_by_name_path_or_object() -> None:
    default = Enhancer(sample_rate=48000)
    assert Path(default.model.source) == DEFAULT_MODEL_PATH
    assert Enhancer("default", 48000).model.source == default.model.source
    assert Enhancer(None, 48000).model.source == default.model.source
    low = Enhancer("low-latency", 48000)
    assert Path(low.model.source) == MODELS_DIR / "low-latency.tflite"
    assert low.algorithmic_latency < default.algorithmic_latency
    model = MaskModel("low-latency")
    assert Enhancer(model, 48000).model is model
    assert Enhancer(str(DEFAULT_MODEL_PATH), 48000).model.metadata == default.model.metadata
    assert Enhancer(DEFAULT_MODEL_PATH.read_bytes(), 48000).model.metadata == default.model.metadata
    assert model.clone().metadata == model.metadata and model.clone() is not model


def test_the_enhancer_has_the_apps_attenuation_limit() -> None:
    enhancer = Enhancer(sample_rate=48000)
    assert enhancer.atten_lim_db == DEFAULT_ATTEN_LIM_DB == Settings().atten_lim_db == 35.0
    assert Enhancer(sample_rate=48000, atten_lim_db=None).atten_lim_db is None


def test_model_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist.*bundled model \\(default, low-latency\\)"):
        Enhancer(tmp_path / "missing.tflite", 48000)
    with pytest.raises(TypeError, match=r"Enhancer\(sample_rate=48000\)"):
        Enhancer(48000)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs the sample rate"):
        Enhancer()
    with pytest.raises(TypeError, match="not list"):
        Enhancer([1, 2], 48000)  # type: ignore[arg-type]


# --- the streaming Enhancer --------------------------------------------------------------------


@pytest.mark.parametrize("block", [HOP, 2 * HOP, 80, 64, 100, 1, 441])
def test_the_first_block_sets_the_least_latency_for_its_size(block: int) -> None:
    enhancer = Enhancer(sample_rate=RATE)
    with pytest.raises(QuietmicError, match="first block"):
        enhancer.latency  # noqa: B018 - unknown before the first block
    enhancer.process(np.zeros(block, np.float32))
    declared = Enhancer(sample_rate=RATE, block_size=block)
    assert enhancer.latency == declared.latency == enhancer.algorithmic_latency + HOP - math.gcd(block, HOP)
    assert enhancer.block_size == block
    assert Enhancer(sample_rate=RATE, block_size=ANY_BLOCK_SIZE).latency == enhancer.algorithmic_latency + HOP - 1
    whole_hops = Enhancer(sample_rate=RATE)
    whole_hops.process(np.zeros(3 * HOP, np.float32))
    assert whole_hops.buffering_latency == 0  # blocks of whole hops: no buffering at all


def test_later_blocks_must_fit_the_first_one(identity: Path) -> None:
    enhancer = Enhancer(identity, RATE)
    first = enhancer.process(noisy_speech(64))
    assert enhancer.granularity == 32
    enhancer.process(np.zeros(96, np.float32))  # a multiple of gcd(64, 160)
    with pytest.raises(ValueError, match="not a multiple of 32.*first block.*block_size='any'"):
        enhancer.process(np.zeros(100, np.float32))
    enhancer.reset()  # keeps the block size
    np.testing.assert_array_equal(enhancer.process(noisy_speech(64)), first)


@pytest.mark.parametrize("sizes", [[HOP], [64], [7], [1000, 3, 480]])
def test_flush_returns_the_last_latency_samples(identity: Path, sizes: list[int]) -> None:
    any_size = len(sizes) > 1
    signal = noisy_speech(RATE // 2 + (33 if any_size else 0))  # whole blocks, unless any size goes
    enhancer = Enhancer(identity, RATE, block_size=ANY_BLOCK_SIZE if any_size else None, atten_lim_db=None)
    out = run_blocks(enhancer, signal, sizes)
    latency = enhancer.latency
    assert len(out) == len(signal) + latency
    np.testing.assert_allclose(out[latency:], signal, atol=IDENTITY_TOLERANCE)
    np.testing.assert_allclose(out[:latency], 0.0, atol=IDENTITY_TOLERANCE)  # nothing arrives early
    # After the flush the Enhancer is fresh: the same stream gives the same output.
    np.testing.assert_array_equal(run_blocks(enhancer, signal, sizes), out)


def test_flush_before_any_block_returns_nothing() -> None:
    assert Enhancer(sample_rate=RATE).flush().shape == (0,)
    assert Enhancer(sample_rate=RATE, channels=2).flush().shape == (0, 2)


@pytest.mark.parametrize("sizes", [[HOP], [480], [80, 240, 0, 400], [1, 999, 2, 38]])
def test_a_stereo_stream_is_each_channel_alone_whatever_the_blocks(sizes: list[int]) -> None:
    stereo = noisy_speech(RATE, channels=2, seed=4)
    any_size = sizes == [1, 999, 2, 38]
    block_size = ANY_BLOCK_SIZE if any_size else math.gcd(*sizes) if len(sizes) > 1 else None
    streaming = Enhancer(sample_rate=RATE, block_size=block_size)
    pieces = run_blocks(streaming, stereo, sizes)
    assert pieces.shape == (RATE + streaming.latency, 2) and streaming.channels == 2
    whole = Enhancer(sample_rate=RATE, block_size=block_size).process(stereo)
    np.testing.assert_array_equal(pieces[:RATE], whole)
    hops = 0
    for channel in range(2):
        mono = Enhancer(sample_rate=RATE, block_size=block_size)
        np.testing.assert_array_equal(run_blocks(mono, stereo[:, channel], sizes), pieces[:, channel])
        hops += mono.counters.hops
    assert streaming.counters.hops == hops  # counted on both channels


def test_channels_are_fixed_and_settings_reach_every_channel() -> None:
    enhancer = Enhancer(sample_rate=RATE, channels=2, block_size=HOP)
    assert enhancer.channels == 2 and len(enhancer.channel_enhancers) == 2
    first, second = (e.model for e in enhancer.channel_enhancers)
    assert first is not second  # one model state per channel
    with pytest.raises(ValueError, match=r"block of 1 channel\(s\), but this Enhancer has 2.*\(frames, 2\)"):
        enhancer.process(np.zeros(HOP, np.float32))
    with pytest.raises(ValueError, match="has 2"):
        enhancer.process(np.zeros((HOP, 3), np.float32))
    enhancer.atten_lim_db, enhancer.bypass = 0.0, True
    assert all(e.atten_lim_db == 0.0 and e.bypass for e in enhancer.channel_enhancers)
    stereo = noisy_speech(4 * HOP, channels=2)
    out = np.concatenate([enhancer.process(stereo), enhancer.flush()])
    np.testing.assert_allclose(out[enhancer.latency :], stereo, atol=IDENTITY_TOLERANCE)  # bypass: the input


def test_a_mono_enhancer_takes_frames_by_one_columns() -> None:
    signal = noisy_speech(RATE // 4)
    flat = Enhancer(sample_rate=RATE).process(signal)
    column = Enhancer(sample_rate=RATE).process(signal[:, None])
    assert column.shape == (len(signal), 1)
    np.testing.assert_array_equal(column[:, 0], flat)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"block_size": 0}, "block_size must be a positive number"),
        ({"block_size": "some"}, "block_size must be"),
        ({"channels": 0}, "channels must be a positive number"),
    ],
)
def test_bad_settings_are_refused(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Enhancer(sample_rate=RATE, **arguments)  # type: ignore[arg-type]


# --- the README --------------------------------------------------------------------------------


def readme_python_snippet() -> str:
    """The first ``python`` code block of the README's "Use from Python" section."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Use from Python\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README's 'Use from Python' section has no python code block"
    return match.group(1)


def test_the_readme_snippet_runs() -> None:
    snippet = readme_python_snippet()
    for name in ("realtime.enhance(", "realtime.Enhancer(", ".process(", ".flush()", "np.stack"):
        assert name in snippet
    namespace: dict[str, object] = {}
    exec(compile(snippet, "README.md: Use from Python", "exec"), namespace)  # noqa: S102 - our own README
    noisy, clean, stereo, pcm = (namespace[name] for name in ("noisy", "clean", "stereo", "pcm"))
    assert isinstance(clean, np.ndarray) and clean.shape == noisy.shape  # type: ignore[union-attr]
    assert pcm.dtype == np.int16 and stereo.shape == (len(noisy), 2)  # type: ignore[union-attr]
