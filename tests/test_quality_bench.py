"""The quality benchmark's pieces on synthetic signals (no network; real data only if present)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks import eval_sets, metrics, peers

RATE = 16000


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


# --- metrics ---------------------------------------------------------------------------------------


def test_si_sdr_is_high_for_identical_and_drops_with_noise() -> None:
    _, clean = peers.test_signal(2.0)
    assert metrics.si_sdr(clean, clean) > 80.0
    assert metrics.si_sdr(clean, 0.3 * clean) > 80.0  # scale-invariant
    noise = _noise(len(clean), 1) * float(np.std(clean))
    values = [metrics.si_sdr(clean, clean + g * noise) for g in (0.01, 0.1, 0.3, 1.0)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert abs(values[-1]) < 1.0  # equal power: about 0 dB
    assert abs(metrics.si_sdr(clean, clean + 0.1 * noise) - 20.0) < 1.0
    assert math.isnan(metrics.si_sdr(np.zeros(100), np.ones(100)))


@pytest.mark.parametrize("shift", [0, 1, 37, -25, 480])
def test_lag_estimator_finds_a_known_shift(shift: int) -> None:
    x = np.convolve(_noise(RATE, 2), np.ones(4) / 4, mode="same")
    delayed = np.roll(x, shift)
    assert metrics.estimate_lag(x, delayed, max_lag=1000) == shift
    _, clean = peers.test_signal(1.5)
    assert metrics.estimate_lag(clean, np.roll(clean, shift), max_lag=1000) == shift


def test_onset_level_sees_cut_word_starts() -> None:
    _, clean = peers.test_signal(4.0)
    assert metrics.onset_loss_db(clean, clean) == 0.0
    assert metrics.onset_loss_db(clean, 0.5 * clean) == pytest.approx(-6.02, abs=0.01)
    # "Words" of 300 ms after 300 ms pauses; a slow gate that mutes the first 25 ms of each word
    # removes half of the 50 ms measured from every onset: -3 dB.
    rng = np.random.default_rng(0)
    words = np.zeros(16000 * 3)
    gated = words.copy()
    for start in range(4800, len(words) - 4800, 9600):
        words[start : start + 4800] = 0.1 * rng.standard_normal(4800)
        gated[start + 400 : start + 4800] = words[start + 400 : start + 4800]
    assert metrics.onset_loss_db(words, gated) == pytest.approx(-3.0, abs=0.2)
    assert metrics.onset_loss_db(np.zeros(1600), np.zeros(1600)) is None


def test_snr_and_intrusive_metrics_behave() -> None:
    noisy, clean = peers.test_signal(3.0, snr_db=5.0)
    assert abs(metrics.snr_db(clean, noisy) - 5.0) < 0.2
    scores = metrics.score(clean, noisy, with_dnsmos=False)
    assert set(scores) == set(metrics.INTRUSIVE)
    for name in ("pesq", "stoi", "estoi"):
        if name in metrics.available_metrics():
            perfect = metrics.score(clean, clean, with_dnsmos=False)[name]
            assert perfect > scores[name]


@pytest.mark.skipif(importlib.util.find_spec("speechmos") is None, reason="speechmos not installed")
def test_dnsmos_matches_speechmos() -> None:
    noisy, _ = peers.test_signal(3.0, snr_db=5.0)
    ours = metrics.dnsmos(noisy)
    assert all(1.0 <= v <= 5.0 for v in ours.values())
    pytest.importorskip("librosa")
    pytest.importorskip("requests")
    from speechmos import dnsmos

    theirs = dnsmos.run(noisy, RATE)
    assert ours["dnsmos_sig"] == pytest.approx(theirs["sig_mos"], abs=1e-4)
    assert ours["dnsmos_bak"] == pytest.approx(theirs["bak_mos"], abs=1e-4)
    assert ours["dnsmos_ovrl"] == pytest.approx(theirs["ovrl_mos"], abs=1e-4)


# --- adapters --------------------------------------------------------------------------------------


def _peer(name: str, reference_model) -> peers.Peer:
    if name.startswith("quietmic"):
        quant = "int8" if name.endswith("int8") else "float32"
        return peers.make_peer(name, {name: reference_model("random", RATE, quant)})
    try:
        return peers.make_peer(name)
    except peers.PeerUnavailable as exc:
        pytest.skip(f"{name}: {exc}")


@pytest.mark.parametrize("name", peers.SYSTEMS)
def test_adapter_returns_same_length_aligned_output(name: str, reference_model) -> None:
    peer = _peer(name, reference_model)
    noisy, clean = peers.test_signal(2.0, snr_db=10.0)
    odd = noisy[: len(noisy) - 77]  # not a whole number of blocks
    out = peer.process(odd)
    assert out.shape == odd.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
    check = peers.check_peer(peer, seconds=2.0)
    assert check["same_length"]
    # The adapter's delay is what the system really does, and removing it leaves no lag.
    assert abs(check["measured_raw_delay"] - peer.delay) <= 2, check
    assert abs(check["residual_lag"]) <= 2, check  # WebRTC's high-pass leads by 1-2 samples broadband
    assert check["residual_lag_band"] == 0, check
    # Processing is deterministic from a fresh state.
    assert np.array_equal(peer.process(odd), out)
    assert peer.algorithmic_latency_ms == pytest.approx(1000 * peer.delay / peer.native_rate)


@pytest.mark.parametrize("name", ["dtln", "gtcrn"])
def test_onnx_peers_denoise(name: str) -> None:
    peer = _peer(name, None)
    check = peers.check_peer(peer, seconds=3.0)
    assert check["si_sdr_out"] > check["si_sdr_noisy"] + 1.0, check


def test_unknown_system_is_refused() -> None:
    with pytest.raises(ValueError):
        peers.make_peer("nope")
    with pytest.raises(peers.PeerUnavailable):
        peers.make_peer("quietmic-int8", {"quietmic-int8": "/nonexistent/model.tflite"})


# --- evaluation sets -------------------------------------------------------------------------------


def test_align_pair_removes_a_known_lag() -> None:
    _, clean = peers.test_signal(2.0)
    noise = 0.01 * _noise(len(clean) + 50, 3)
    noisy = np.concatenate([np.zeros(19, np.float32), clean, np.zeros(31, np.float32)]) + noise
    a, c, lag = eval_sets.align_pair(noisy, clean)
    assert lag == 19 and len(a) == len(c) == len(clean)
    assert metrics.estimate_lag(c, a, 100) == 0


SPEAR = eval_sets.SPEAR_DIR


@pytest.mark.skipif(not (SPEAR / "Noisy_Recordings").is_dir(), reason="SpEAR not present")
def test_spear_pairing_finds_the_expected_pairs() -> None:
    pairs = eval_sets.spear_pairs()
    ids = {p.id for p in pairs}
    assert len(pairs) == 32
    for sentence in ("bigtips", "butter", "draw", "peaches", "scholars"):
        assert sum(p.info["sentence"] == sentence for p in pairs) == 6
    assert {"tips_f16r1", "vega_pinkr1", "scholars_white", "peaches_factoryr1"} <= ids
    assert {p.info["noise"] for p in pairs} == set(eval_sets.SPEAR_NOISES)
    for p in pairs:
        assert p.info["clean_file"] == f"{p.info['sentence']}r1_16.wav"
        assert len(p.noisy) == len(p.clean) == min(p.info["length_noisy"], p.info["length_clean"]) - abs(p.info["align_lag"])
        assert p.info["align_lag"] == 0
        assert -2.0 < p.info["snr_db"] < 15.0
    lombard = eval_sets.lombard_pairs()
    assert len(lombard) == 5 and all(p.info["clean_file"] == "T_" + p.info["noisy_file"] for p in lombard)
    sweep = eval_sets.spear_sweep_pairs()
    assert not ids & {p.id for p in sweep}
    for p in sweep:  # the file name's number is the SNR
        assert abs(p.info["snr_db"] - p.info["nominal_snr_db"]) < 1.5, p.id
    quick = eval_sets.load_set("spear", quick=True)
    assert 0 < len(quick) < len(pairs)


def _fake_corpus(tmp_path: Path):
    path = Path(__file__).with_name("test_corpus.py")
    spec = importlib.util.spec_from_file_location("_quality_fake_corpus", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        writer = module.write_fake_cache
    except Exception as exc:  # the helper belongs to the corpus tests
        pytest.skip(f"no fake corpus helper: {exc}")
    writer(tmp_path / "cache")
    from model_export.corpus import load_corpus

    return tmp_path / "cache", load_corpus(tmp_path / "cache")


def test_synthetic_set_is_deterministic_and_stratified(tmp_path: Path) -> None:
    _, corpus = _fake_corpus(tmp_path)
    snrs = (-5.0, 5.0, 20.0)
    a = eval_sets.synthetic_pairs(corpus, snrs=snrs, per_snr=3, seconds=1.5)
    b = eval_sets.synthetic_pairs(corpus, snrs=snrs, per_snr=2, seconds=1.5)
    assert len(a) == 9 and len(b) == 6
    for p in a:
        assert len(p.noisy) == len(p.clean) == int(1.5 * RATE)
        assert p.info["kind"] == "noisy" and "rt60" not in p.info
        assert p.info["mix_snr_db"] == p.info["stratum_snr_db"]
    for snr in snrs:  # measured on the final pair (after band limits): close to the stratum
        measured = [p.info["active_snr_db"] for p in a if p.info["stratum_snr_db"] == snr]
        assert abs(np.median(measured) - snr) < 2.0, measured
    # A smaller set is a prefix of each stratum of a larger one.
    a_by_id = {p.id: p for p in a}
    for p in b:
        assert np.array_equal(p.noisy, a_by_id[p.id].noisy) and np.array_equal(p.clean, a_by_id[p.id].clean)
    bins = eval_sets.snr_bins(a)
    assert [x for _, x, _ in bins] == list(snrs) and all(len(i) == 3 for _, _, i in bins)


def test_snr_bins_merge_small_bins() -> None:
    pairs = [eval_sets.Pair("s", str(i), np.zeros(1), np.zeros(1), {"snr_db": v})
             for i, v in enumerate([-0.5, 1.0, 1.2, 2.0, 3.0, 4.0, 4.5, 13.0])]
    bins = eval_sets.snr_bins(pairs)
    assert sorted(i for _, _, idx in bins for i in idx) == list(range(len(pairs)))
    assert all(len(idx) >= 3 for _, _, idx in bins)


# --- the whole benchmark, tiny -------------------------------------------------------------------


def test_quality_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    from benchmarks import quality

    cache, _ = _fake_corpus(tmp_path)
    out = tmp_path / "results"
    systems = "noisy,webrtc-ns" if importlib.util.find_spec("webrtc_noise_gain") else "noisy"
    code = quality.main(["--systems", systems, "--sets", "synthetic,clean", "--quick", "--per-snr", "1", "--seconds", "1.5",
                         "--corpus-cache", str(cache), "--jobs", "1", "--no-dnsmos", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "quality.json").read_text())
    assert result["systems_run"] == systems.split(",")
    summary = result["summary"]["synthetic"]["systems"]
    assert summary["noisy"]["n"] == 6 and summary["noisy"]["residual_lag_max_abs"] == 0
    clean = result["summary"]["clean"]["systems"]["noisy"]
    assert clean["si_sdr"] > 60 and clean["onset_db"] == 0.0  # untouched speech scores as untouched
    assert len(result["rows"]) == (6 + clean["n"]) * len(systems.split(","))
    text = (out / "quality.md").read_text()
    assert "## Results" in text and "| noisy |" in text
    if importlib.util.find_spec("matplotlib"):
        assert (out / "quality_pesq_vs_snr.png").stat().st_size > 0
        assert (out / "quality_spectrograms.png").stat().st_size > 0
    # The report can be rewritten from the JSON, with a note added.
    assert quality.main(["--render-only", "--out", str(out), "--note", "hello from the test"]) == 0
    assert "- hello from the test" in (out / "quality.md").read_text()
    assert json.loads((out / "quality.json").read_text())["user_notes"] == ["hello from the test"]


# --- spear-all, narrowband ratio and the bar ---------------------------------------------------------


@pytest.mark.skipif(not (SPEAR / "Lombard").is_dir(), reason="SpEAR not present")
def test_spear_all_is_every_spear_pair_once() -> None:
    from benchmarks import quality

    set_pairs = {"spear": eval_sets.spear_pairs(), "spear-lombard": eval_sets.lombard_pairs()}
    members = quality._members(set_pairs, "spear-all")
    assert len(members) == 32 + 5 == 37
    assert len({(s, p.id) for s, _, p in members}) == 37
    assert quality.summary_sets({**set_pairs, "clean": []}) == ["spear", "spear-lombard", "spear-all", "clean"]


def _row(set_name: str, index: int, system: str, si_sdr: float, si_sdr_in: float, **more) -> dict:
    return {"set": set_name, "index": index, "id": f"x{index}", "system": system, "si_sdr": si_sdr,
            "si_sdr_in": si_sdr_in, "residual_lag": 0, "residual_lag_band": 0, **more}


def test_summary_combines_sets_and_the_narrowband_ratio_uses_the_same_mixtures() -> None:
    from benchmarks import quality

    pair = lambda s, i, kind: eval_sets.Pair(s, f"x{i}", np.zeros(4), np.zeros(4),
                                             {"snr_db": 0.0, "stratum_snr_db": 0.0, "noise_kind": kind})
    set_pairs = {"spear": [pair("spear", 0, "a")], "spear-lombard": [pair("spear-lombard", 0, "a")],
                 "ood": [pair("ood", 0, "pink"), pair("ood", 1, "music")],
                 "ood-nb8k": [pair("ood-nb8k", 0, "pink"), pair("ood-nb8k", 1, "music")]}
    rows = [_row("spear", 0, "q", 10.0, 5.0, pesq=2.0), _row("spear-lombard", 0, "q", 4.0, 1.0, pesq=3.0),
            _row("ood", 0, "q", 10.0, 0.0), _row("ood", 1, "q", 20.0, 10.0),
            _row("ood-nb8k", 0, "q", 8.0, 0.0), _row("ood-nb8k", 1, "q", 14.0, 10.0),
            _row("ood-nb8k", 0, "noisy", 0.0, 0.0)]
    summary = quality.summarise(rows, set_pairs, ["noisy", "q"])
    assert summary["spear-all"]["systems"]["q"]["n"] == 2
    assert summary["spear-all"]["systems"]["q"]["pesq"] == 2.5
    assert summary["spear-all"]["systems"]["q"]["si_sdr_improvement"] == 4.0
    assert [g["label"] for g in summary["ood"]["kind_bins"]] == ["pink", "music"]
    assert summary["ood"]["kind_bins"][1]["systems"]["q"]["si_sdr"] == 20.0
    nb = quality.narrowband_summary(rows, ["noisy", "q"])
    assert nb == {"ood-nb8k": {"q": {"n": 2, "improvement_db": 6.0, "fullband_improvement_db": 10.0, "ratio": 0.6}}}


def test_the_bar_compares_with_the_strongest_peer() -> None:
    from benchmarks import quality

    def entry(**values) -> dict:
        return {"n": 1, **values}

    summary = {
        "spear": {"systems": {
            "quietmic-int8": entry(pesq=1.80, si_sdr=11.0, estoi=0.700, dnsmos_ovrl=2.9),
            "gtcrn": entry(pesq=1.84, si_sdr=10.0, estoi=0.705, dnsmos_ovrl=2.8),
            "deepfilternet3": entry(pesq=1.70, si_sdr=9.0, estoi=0.720, dnsmos_ovrl=3.5),  # not in the OVRL bar
            "noisy": entry(pesq=1.1, si_sdr=5.0, estoi=0.6, dnsmos_ovrl=2.0)}},
        "clean": {"systems": {"quietmic-int8": entry(si_sdr=47.0, onset_db=-0.6)}},
    }
    narrowband = {"ood-nb8k": {"quietmic-int8": {"n": 3, "improvement_db": 8.0, "fullband_improvement_db": 9.0,
                                                 "ratio": 0.889}}}
    bar = quality.compute_bar(summary, narrowband, ["noisy", "quietmic-int8", "gtcrn", "deepfilternet3"])
    checks = bar["quietmic-int8"]["sets"]["spear"]
    assert checks["pesq"]["pass"] is False and checks["pesq"]["against"] == "gtcrn"
    assert checks["pesq"]["margin"] == pytest.approx(-0.04)
    assert checks["si_sdr"]["pass"] is True and checks["si_sdr"]["against"] == "gtcrn"
    assert checks["dnsmos_ovrl"]["pass"] is True and checks["dnsmos_ovrl"]["against"] == "gtcrn"
    assert checks["estoi"]["pass"] is False and checks["estoi"]["against"] == "deepfilternet3"  # 0.02 below
    clean = bar["quietmic-int8"]["clean"]
    assert clean["si_sdr"]["pass"] is True and clean["onset_db"]["pass"] is False
    assert bar["quietmic-int8"]["narrowband"]["ood-nb8k"]["pass"] is True
    text = quality.bar_table(bar, "quietmic-int8", True)
    assert "NO (-0.04 vs gtcrn)" in text and "ood-nb8k" in text
    # Within tolerance counts as a pass.
    summary["spear"]["systems"]["quietmic-int8"]["estoi"] = 0.7101
    assert quality.compute_bar(summary, {}, ["quietmic-int8", "deepfilternet3"])["quietmic-int8"]["sets"]["spear"][
        "estoi"]["pass"] is True


def test_extra_models_get_unique_system_names() -> None:
    from benchmarks import quality

    names = quality.extra_model_names(["/a/v2.tflite", "/b/v2.tflite", "/c/quietmic-int8.tflite"])
    assert names == {"quietmic-v2": "/a/v2.tflite", "quietmic-v2-2": "/b/v2.tflite",
                     "quietmic-int8-2": "/c/quietmic-int8.tflite"}
