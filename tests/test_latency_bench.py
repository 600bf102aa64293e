"""The latency benchmark: its measuring parts, and a whole ``--quick`` run on JACK."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sp_signal

from benchmarks import latency
from benchmarks.live_delay import MIN_CORRELATION, delay_by_correlation, voiced_burst
from realtime.default_model import DEFAULT_MODEL_PATH
from realtime.model import MaskModel

QUICK_TIMEOUT_SECONDS = 600
"""Only against a hang: the quick run takes about two minutes."""


def test_correlation_finds_the_lag_through_a_zero_phase_mask() -> None:
    rate = 48000
    burst = voiced_burst(rate)
    reference = np.concatenate([np.zeros(1000, np.float32), burst, np.zeros(20000, np.float32)])
    # What a mask model does: real, non-negative gains per STFT frame (here: time-varying, per bin).
    _, _, spectrum = sp_signal.stft(reference, nperseg=960, noverlap=480)
    rng = np.random.default_rng(0)
    _, masked = sp_signal.istft(spectrum * rng.uniform(0.05, 1.0, spectrum.shape), nperseg=960, noverlap=480)
    lag = 1234
    delayed = np.concatenate([np.zeros(lag), masked[: len(reference) - lag]]).astype(np.float32)
    found, correlation = delay_by_correlation(reference, delayed, max_lag=5000)
    assert found == lag
    assert correlation > MIN_CORRELATION


def test_correlation_of_unrelated_signals_is_low() -> None:
    rng = np.random.default_rng(1)
    _, correlation = delay_by_correlation(voiced_burst(16000), rng.standard_normal(6400).astype(np.float32), 1000)
    assert correlation < MIN_CORRELATION


@pytest.mark.parametrize("rate", [16000, 48000])
def test_algorithmic_latency_is_verified_by_impulses(reference_model, rate: int) -> None:
    model = MaskModel(reference_model("random", 16000))
    info = latency.algorithmic_latency(model, rate)
    assert info["algorithmic_latency_ms"] == pytest.approx(10.0)
    assert info["impulse_verified"] and info["file_mode_aligned"]
    assert info["impulse_delays_ms"] == pytest.approx([10.0] * len(info["impulse_offsets"]))


def test_bar_checks_read_the_figures() -> None:
    entry = {"hop_ms": 10.0, "algorithmic_latency_ms": 10.0, "hop_time_ms": {"p99": 0.4}, "rtf": 0.01,
             "blocks": {"480": {"e2e_latency_ms": 21.0, "xruns": 0, "idle": {"server_xruns": 0}}}}
    result = {"rates": {"48000": entry}, "settings": {"live_seconds": 60},
              "drift_ms": 0.0, "drift": {"minutes": 10, "block_ms": 10.0}}
    checks = {c["check"].split()[0]: c["ok"] for c in latency.check_bar(result)}
    assert checks == {"p99": True, "RTF": True, "end-to-end": False, "zero": True, "drift": True}


@pytest.mark.audio_server
@pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="no default model is installed")
def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    if shutil.which("jackd") is None:
        if os.environ.get("QUIETMIC_REQUIRE_JACK"):
            pytest.fail("jackd is not installed; .ci/run installs jackd2")
        pytest.skip("jackd is not installed (apt-get install jackd2 libportaudio2)")
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.latency", "--quick", "--out", str(out), "--json", str(tmp_path / "l.json")],
        capture_output=True, text=True, timeout=QUICK_TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "l.json").read_text())
    assert set(result["rates"]) == {"16000", "48000"}
    for rate, entry in result["rates"].items():
        for key in ("algorithmic_latency_ms", "rtf", "rss_mb"):
            assert entry[key] > 0, (rate, key)
        assert set(entry["hop_time_ms"]) >= {"p50", "p99", "p999", "max"}
        assert entry["impulse_verified"] and entry["file_mode_aligned"]
        assert entry["identity"]["rtf"] > 0
        (block, live), = entry["blocks"].items()
        assert set(live) >= {"e2e_latency_ms", "xruns", "e2e_latency_ms_loaded", "xruns_loaded"}
        # The delay measured between quietmic's ports is the delay it states (engine + hand-over).
        assert live["e2e_latency_ms"] == pytest.approx(live["stated_latency_ms"], abs=0.1), (rate, block)
        assert live["e2e_latency_ms_loaded"] is not None
        periods = live["client_hop_ms"] / (1000.0 * int(block) / int(rate))
        assert periods == pytest.approx(round(periods), abs=0.01)  # the server hands over whole periods
    assert result["drift_ms"] is not None and result["drift"]["samples"] >= 20
    assert (out / "latency.md").read_text().startswith("# quietmic latency benchmark")
    assert "PASS" in done.stdout or "FAIL" in done.stdout
    if result["plots"]:
        assert all(Path(p).stat().st_size > 0 for p in result["plots"])
