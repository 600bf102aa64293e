"""realtime.echo: the echo canceller before the denoiser (issue 19, section 5).

The signals are synthetic (no corpus needed): a speech-like far end (noise shaped by a syllable-rate
envelope and a low-pass) through a short decaying impulse response with an audio-path delay, and a
different speech-like near end. No timing is asserted. The tests that run AEC3 skip when the optional
package (``pip install 'quietmic[echo]'``) is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from realtime import echo
from realtime.errors import QuietmicError

RATE = 16000
needs_aec = pytest.mark.skipif(not echo.available(),
                               reason=f"optional package {echo.PIP_NAME} not installed (pip install 'quietmic[echo]')")


def speech_like(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    """Noise with a 4 Hz syllable envelope (pauses included) and a gentle low-pass, at about -26 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    x = rng.standard_normal(n)
    x = np.convolve(x, np.ones(4) / 4, mode="same")  # tilt the spectrum down a little
    t = np.arange(n) / rate
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    envelope *= np.repeat(rng.uniform(0.2, 1.0, n // rate + 1), rate)[:n]  # loudness varies by the second
    y = x * envelope
    return (y * 0.05 / np.sqrt(np.mean(y**2))).astype(np.float32)


def room_echo(far: np.ndarray, delay_ms: float = 40.0, rt60_s: float = 0.15, seed: int = 1) -> np.ndarray:
    """``far`` through the audio path (a delay) and a small room (direct path + decaying tail), 6 dB down."""
    rng = np.random.default_rng(seed)
    d = int(delay_ms * RATE / 1000)
    tail = rng.standard_normal(int(rt60_s * RATE)) * np.exp(-6.9 * np.arange(int(rt60_s * RATE)) / (rt60_s * RATE))
    h = np.zeros(d + 16 + len(tail))
    h[d] = 1.0
    h[d + 16 :] = 0.3 * tail / np.sqrt(np.sum(tail**2))
    return (0.5 * np.convolve(far, h)[: len(far)]).astype(np.float32)


def power_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-20))


@needs_aec
def test_removes_a_simulated_echo_after_convergence() -> None:
    far = speech_like(10.0, seed=2)
    mic = room_echo(far)
    out = echo.EchoCanceller(RATE).process(mic, far)
    late = slice(4 * RATE, None)  # converged: AEC3 needs a second or two
    erle = power_db(mic[late]) - power_db(out[late])
    assert erle >= 15.0, f"echo return loss enhancement {erle:.1f} dB after 4 s"


@needs_aec
def test_keeps_near_end_speech_when_the_far_end_is_silent() -> None:
    near = speech_like(4.0, seed=3)
    canceller = echo.EchoCanceller(RATE)
    out = canceller.process(near, np.zeros_like(near))
    aligned = out[canceller.delay :]
    ref = near[: len(aligned)]
    # AEC3 high-passes (about 100 Hz): compare above it; level within 1.5 dB, waveform nearly the same
    spectrum_in = np.abs(np.fft.rfft(ref))
    spectrum_out = np.abs(np.fft.rfft(aligned))
    band = np.fft.rfftfreq(len(ref), 1 / RATE) > 300
    gain_db = 20 * np.log10(np.sum(spectrum_out[band]) / np.sum(spectrum_in[band]))
    assert abs(gain_db) < 1.5, f"near end changed level by {gain_db:.1f} dB"
    coherent = np.dot(spectrum_in[band], spectrum_out[band]) / np.sqrt(
        np.dot(spectrum_in[band], spectrum_in[band]) * np.dot(spectrum_out[band], spectrum_out[band]))
    assert coherent > 0.98
    assert not np.any(out[: canceller.buffer_delay]), "the buffered start is silence"


@needs_aec
def test_none_far_block_is_a_silent_far_end() -> None:
    near = speech_like(1.0, seed=4)
    a = echo.EchoCanceller(RATE).process(near, None)
    b = echo.EchoCanceller(RATE).process(near, np.zeros_like(near))
    np.testing.assert_array_equal(a, b)


@needs_aec
@pytest.mark.parametrize("rate", sorted(echo.AEC3_DELAY))
def test_any_block_split_gives_the_same_output(rate: int) -> None:
    far = speech_like(2.0, seed=5, rate=rate)
    mic = room_echo(far[: len(far)]) if rate == RATE else 0.5 * np.roll(far, rate // 25)
    mic = (mic + speech_like(2.0, seed=6, rate=rate)).astype(np.float32)
    whole = echo.EchoCanceller(rate).process(mic, far)
    canceller = echo.EchoCanceller(rate)
    rng = np.random.default_rng(7)
    parts, i = [], 0
    while i < len(mic):
        k = int(rng.choice([0, 1, 7, canceller.frame - 1, canceller.frame, 333, 2048]))
        parts.append(canceller.process(mic[i : i + k], far[i : i + k]))
        assert len(parts[-1]) == len(mic[i : i + k])
        i += k
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@needs_aec
@pytest.mark.parametrize("rate", sorted(echo.AEC3_DELAY))
def test_blocks_of_whole_frames_add_no_buffering_delay(rate: int) -> None:
    """A live stream's blocks are whole 10 ms frames: declared, the canceller adds only AEC3's own delay, and
    gives the any-split output earlier by exactly the buffering it saves."""
    far = speech_like(2.0, seed=10, rate=rate)
    mic = (0.5 * np.roll(far, rate // 25) + speech_like(2.0, seed=11, rate=rate)).astype(np.float32)
    framed = echo.EchoCanceller(rate, block_size=echo.EchoCanceller(rate).frame)
    assert framed.buffer_delay == 0 and framed.delay == echo.AEC3_DELAY[rate]
    out = np.concatenate([framed.process(mic[i : i + framed.frame], far[i : i + framed.frame])
                          for i in range(0, len(mic), framed.frame)])
    buffered = echo.EchoCanceller(rate)
    np.testing.assert_array_equal(buffered.process(mic, far)[buffered.buffer_delay :], out[: len(mic) - buffered.buffer_delay])
    with pytest.raises(ValueError, match="whole"):
        framed.process(mic[:7], far[:7])
    with pytest.raises(QuietmicError, match="whole 10 ms frames"):
        echo.EchoCanceller(rate, block_size=framed.frame + 1)


@needs_aec
def test_reset_starts_over() -> None:
    far = speech_like(1.0, seed=8)
    mic = room_echo(far) + speech_like(1.0, seed=9)
    canceller = echo.EchoCanceller(RATE)
    first = canceller.process(mic, far)
    canceller.reset()
    np.testing.assert_array_equal(canceller.process(mic, far), first)


@needs_aec
def test_delay_is_the_measured_one() -> None:
    for rate in echo.AEC3_DELAY:
        canceller = echo.EchoCanceller(rate)
        x = np.zeros(rate, np.float32)
        x[rate // 2] = 0.5
        out = canceller.process(x, None)
        assert int(np.argmax(np.abs(out))) - rate // 2 == canceller.delay


def test_rejects_rates_and_shapes_it_cannot_take(monkeypatch) -> None:
    with pytest.raises(QuietmicError, match="16 kHz"):
        echo.EchoCanceller(44100)
    if echo.available():
        with pytest.raises(ValueError):
            echo.EchoCanceller(RATE).process(np.zeros(10, np.float32), np.zeros(11, np.float32))


def test_missing_package_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, echo.PACKAGE, None)  # makes the import fail
    assert not echo.available()
    with pytest.raises(echo.EchoCancellerUnavailable) as info:
        echo.EchoCanceller(RATE)
    assert isinstance(info.value, QuietmicError)
    message = str(info.value)
    assert "quietmic[echo]" in message and echo.PIP_NAME in message


def test_importing_realtime_does_not_load_the_canceller() -> None:
    code = ("import sys, realtime, realtime.echo; "
            f"assert {echo.PACKAGE!r} not in sys.modules, 'loaded on import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_benchmark_rooms_have_their_delay_and_direct_to_reverberant_ratio() -> None:
    from benchmarks import echo_room

    for room in echo_room.ROOMS:
        h = echo_room.impulse_response(room, np.random.default_rng(0))
        direct = int(np.argmax(np.abs(h)))
        assert direct == round(room.total_delay_ms * echo_room.RATE / 1000)
        drr = 10 * np.log10(h[direct] ** 2 / np.sum(np.delete(h, direct) ** 2))
        assert abs(drr - room.drr_db) < 1e-6
    x = speech_like(1.0, seed=10)
    assert abs(echo_room.active_level_db(echo_room.at_level(x, -30.0)) + 30.0) < 1e-3
    assert abs(echo_room.erle_db(x, 0.1 * x) - 20.0) < 1e-3


def test_start_with_echo_cancel_and_no_package_says_what_to_install(monkeypatch, tmp_path) -> None:
    """``quietmic start --echo-cancel`` without the canceller's package refuses before starting anything."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path),
           "PYTHONPATH": str(tmp_path)}
    (tmp_path / f"{echo.PACKAGE}.py").write_text("raise ImportError('not installed here')\n")  # hides the real one
    result = subprocess.run([sys.executable, "-m", "realtime", "start", "--echo-cancel"], capture_output=True,
                            text=True, env=env, timeout=60, cwd=str(tmp_path))
    assert result.returncode != 0
    assert "pip install 'quietmic[echo]'" in result.stderr, result.stderr
