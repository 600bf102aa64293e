"""The out-of-distribution evaluation set (benchmarks/ood_set.py) on fake packages and arrays; no network.

Tests that need the real reserved evaluation packages skip when they are not in the evaluation cache.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import eval_sets, metrics, ood_set, peers

RATE = 16000


# --- fake material ---------------------------------------------------------------------------------


def _talker(seed: int, seconds: float = 6.0) -> list[np.ndarray]:
    """A fake talker: a few speech-like utterances (benchmarks.peers.test_signal's clean side)."""
    return [peers.test_signal(seconds / 3, seed=seed * 10 + k)[1] for k in range(3)]


def _tone(freq: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))).astype(np.float32)


def _click(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(0.03 * RATE)
    return (rng.standard_normal(n) * np.exp(-np.arange(n) / 60.0)).astype(np.float32)


def fake_sources(test_talkers: int = 3) -> ood_set.OodSources:
    """Two 'reserved' talkers, ``test_talkers`` test-split talkers, keys, alerts and music, all generated."""
    speech = {"asterisk-fr:June": _talker(1), "asterisk-it:Carlo": _talker(2)}
    package = {"asterisk-fr:June": "asterisk-core-sounds-fr-g722", "asterisk-it:Carlo": "asterisk-core-sounds-it-g722"}
    pools = {ood_set.RESERVED_POOL: ["asterisk-fr:June", "asterisk-it:Carlo"], ood_set.TEST_POOL: []}
    for k in range(test_talkers):
        name = f"festvox-ru:t{k}"
        speech[name] = _talker(10 + k)
        package[name] = "festvox-ru" if k % 2 == 0 else "fillets-ng-data-cs"
        pools[ood_set.TEST_POOL].append(name)
    keys = {f"{k:02d}": (_click(k), 0.5 * _click(100 + k)) for k in range(1, 6)}
    alerts = {"bell.oga": _tone(880.0, 0.4), "message.oga": _tone(1320.0, 0.7)}
    chord = sum(_tone(f, 4.0) for f in (220.0, 277.0, 330.0))
    music = {"track.ogg": np.tile(chord, 2).astype(np.float32)}
    return ood_set.OodSources(speech=speech, pools=pools, keyboard=keys, alerts=alerts, music=music,
                              talker_package=package)


# --- mixtures --------------------------------------------------------------------------------------


def test_full_set_is_the_labelled_grid_at_the_asked_snrs() -> None:
    pairs = ood_set.ood_pairs(fake_sources(), seconds=1.5)
    assert len(pairs) == len(ood_set.NOISE_KINDS) * len(ood_set.SNRS) * ood_set.PER_CELL == 96
    assert len({p.id for p in pairs}) == len(pairs)
    for kind in ood_set.NOISE_KINDS:
        for snr in ood_set.SNRS:
            cell = [p for p in pairs if p.info["noise_kind"] == kind and p.info["stratum_snr_db"] == snr]
            assert len(cell) == ood_set.PER_CELL, (kind, snr)
    for p in pairs:
        assert p.set == "ood" and len(p.noisy) == len(p.clean) == int(1.5 * RATE)
        assert p.noisy.dtype == np.float32 and np.all(np.isfinite(p.noisy))
        assert max(np.abs(p.noisy).max(), np.abs(p.clean).max()) <= ood_set.PEAK_LIMIT + 1e-6
        # The SNR asked for is the SNR measured on the final pair (active levels, the mixer's definition).
        assert p.info["active_snr_db"] == pytest.approx(p.info["stratum_snr_db"], abs=0.05), p.id
        assert ood_set.LEVEL_DBFS_RANGE[0] - 0.5 <= p.info["level_dbfs"] <= ood_set.LEVEL_DBFS_RANGE[1] + 0.5
        if p.info["noise_kind"] in ("babble", "mix") and "babble_talkers" in p.info:
            assert p.info["talker"] not in p.info["babble_talkers"]  # babble never holds the target talker
    # Both talker pools serve as targets, half each.
    pools = [p.info["speech_pool"] for p in pairs]
    assert pools.count(ood_set.RESERVED_POOL) == pools.count(ood_set.TEST_POOL) == 48
    mixes = [p for p in pairs if p.info["noise_kind"] == "mix"]
    assert all(len(set(p.info["mix"])) == 2 and "mix" not in p.info["mix"] for p in mixes)


def test_set_is_deterministic_and_quick_is_a_subset() -> None:
    sources = fake_sources()
    full = {p.id: p for p in ood_set.ood_pairs(sources, seconds=1.0)}
    again = ood_set.ood_pairs(sources, seconds=1.0)
    assert all(np.array_equal(p.noisy, full[p.id].noisy) and np.array_equal(p.clean, full[p.id].clean) for p in again)
    quick = ood_set.ood_pairs(sources, quick=True, seconds=1.0)
    assert [p.info["noise_kind"] for p in quick] == list(ood_set.NOISE_KINDS)
    assert {p.info["stratum_snr_db"] for p in quick} == set(ood_set.SNRS)  # every SNR once at least
    for p in quick:
        assert np.array_equal(p.noisy, full[p.id].noisy) and p.info == full[p.id].info
    assert {p.info["speech_pool"] for p in quick} == {ood_set.RESERVED_POOL, ood_set.TEST_POOL}
    other_seed = ood_set.ood_pairs(sources, quick=True, seconds=1.0, seed=1)
    assert not np.array_equal(other_seed[0].noisy, quick[0].noisy)


def test_reserved_talkers_alone_still_make_the_set() -> None:
    sources = fake_sources(test_talkers=0)
    pairs = ood_set.ood_pairs(sources, quick=True, seconds=1.0)
    assert {p.info["speech_pool"] for p in pairs} == {ood_set.RESERVED_POOL}
    sources.keyboard = {}
    with pytest.raises(eval_sets.SetUnavailable, match="keyboard"):
        sources.check()


def test_each_noise_kind_sounds_like_itself() -> None:
    sources = fake_sources()
    rng = np.random.default_rng(0)
    n = 3 * RATE
    brown, _ = ood_set.make_noise("brown", sources, n, rng, "asterisk-fr:June")
    pink, _ = ood_set.make_noise("pink", sources, n, rng, "asterisk-fr:June")
    from model_export.noise_synth import spectral_slope

    assert spectral_slope(brown, RATE) < spectral_slope(pink, RATE) - 2.0
    keyboard, _ = ood_set.make_noise("keyboard", sources, n, rng, "asterisk-fr:June")
    frames = np.mean(keyboard[: n // 160 * 160].reshape(-1, 160) ** 2, axis=1)
    assert np.mean(frames < 1e-3 * frames.max()) > 0.3  # transients with gaps between them
    music, info = ood_set.make_noise("music", sources, n, rng, "asterisk-fr:June")
    assert info["track"] == "track" and np.all(np.isfinite(music))
    with pytest.raises(ValueError, match="unknown noise kind"):
        ood_set.make_noise("thunder", sources, n, rng, "asterisk-fr:June")


# --- narrowband ------------------------------------------------------------------------------------


@pytest.mark.parametrize("set_name, edge", [("ood-nb8k", 4000.0), ("ood-lp3k4", 3400.0)])
def test_narrowband_versions_remove_the_top_band_without_delay(set_name: str, edge: float) -> None:
    rng = np.random.default_rng(3)
    white = rng.standard_normal(2 * RATE).astype(np.float32) * 0.1
    limited = ood_set.band_limit(white, set_name)
    assert len(limited) == len(white)
    from scipy.signal import welch

    freqs, spectrum = welch(limited, fs=RATE, nperseg=1024)  # Hann windows: no leakage from the ends
    below = spectrum[(freqs > 300) & (freqs < 2500)].mean()
    above = spectrum[freqs > 1.4 * edge].mean()
    assert 10 * np.log10(below / above) > 40.0
    _, clean = peers.test_signal(2.0)
    assert metrics.estimate_lag(ood_set.band_limit(clean, set_name), clean, 200) == 0  # zero phase
    pairs = ood_set.ood_pairs(fake_sources(), quick=True, seconds=1.0)
    narrow = ood_set.narrowband_pairs(pairs, set_name)
    assert [p.id for p in narrow] == [p.id for p in pairs] and all(p.set == set_name for p in narrow)
    for wide, nb in zip(pairs, narrow):  # noisy and clean alike: the noise is the band-limited noise
        noise = ood_set.band_limit(wide.noisy - wide.clean, set_name)
        assert np.allclose(nb.noisy - nb.clean, noise, atol=1e-5)
        assert nb.info["fullband_snr_db"] == wide.info["snr_db"]
    with pytest.raises(ValueError):
        ood_set.band_limit(white, "ood-am-radio")


def test_eval_sets_builds_narrowband_sets_from_the_ood_pairs() -> None:
    base = ood_set.ood_pairs(fake_sources(), quick=True, seconds=1.0)
    assert eval_sets.load_set("ood", ood_base=base) == base
    nb = eval_sets.load_set("ood-lp3k4", ood_base=base)
    assert [p.id for p in nb] == [p.id for p in base]
    groups = eval_sets.kind_groups(base)
    assert [k for k, _ in groups] == list(ood_set.NOISE_KINDS) and all(len(i) == 1 for _, i in groups)
    assert eval_sets.expand_sets(["spear-all", "spear", "ood"]) == ["spear", "spear-lombard", "ood"]


# --- reserved packages -----------------------------------------------------------------------------


def test_only_reserved_packages_go_through_the_evaluation_path(tmp_path: Path) -> None:
    with pytest.raises(ood_set.ReservedPackageError, match="not a reserved"):
        ood_set.fetch_reserved_deb("festvox-ru", tmp_path)
    for source in ood_set.RESERVED_SOURCES:
        assert ood_set.is_reserved(source.package)
    # ... and the training corpus still refuses every one of them.
    from model_export.corpus import ReservedSourceError, check_not_reserved

    for source in ood_set.RESERVED_SOURCES:
        with pytest.raises(ReservedSourceError):
            check_not_reserved(source.package)
    # A deb already there is used as it is; without fetching, a missing one is an error that says so.
    (tmp_path / "bucklespring-data_9.9_all.deb").write_bytes(b"x")
    assert ood_set.fetch_reserved_deb("bucklespring-data", tmp_path, fetch=False).name == "bucklespring-data_9.9_all.deb"
    with pytest.raises(eval_sets.SetUnavailable, match="downloads are off"):
        ood_set.fetch_reserved_deb("hyperrogue-music", tmp_path, fetch=False)


def test_evaluation_cache_never_sits_in_the_corpus_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from model_export.corpus import default_cache_dir

    with pytest.raises(eval_sets.SetUnavailable, match="overlaps the training corpus cache"):
        ood_set.check_cache_dir(default_cache_dir() / "eval")
    with pytest.raises(eval_sets.SetUnavailable):
        ood_set.check_cache_dir(default_cache_dir())
    ood_set.check_cache_dir(tmp_path / "quietmic" / "eval")  # the default place: fine
    assert ood_set.default_cache_dir() == tmp_path / "quietmic" / "eval"


def _wav(x: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = "PCM_16") -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def write_fake_reserved_debs(debs_dir: Path) -> None:
    """Tiny ``.deb`` files named like the reserved packages, with members where the real ones have them."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb not available")
    import G722

    def g722(x: np.ndarray) -> bytes:
        return G722.G722(16000, 64000).encode(np.round(x * 32767).astype(np.int16))

    members: dict[str, dict[str, bytes]] = {
        "asterisk-core-sounds-fr-g722": {f"usr/share/asterisk/sounds/fr_CA_f_June/w{k}.g722": g722(c)
                                         for k, c in enumerate(_talker(1, 3.0))},
        "asterisk-core-sounds-it-g722": {f"usr/share/asterisk/sounds/it_IT_m_Carlo/digits/{k}.g722": g722(c)
                                         for k, c in enumerate(_talker(2, 3.0))},
        "bucklespring-data": {f"usr/share/buckle/wav/{k:02d}-{w}.wav": _wav(_click(k * 2 + w), 44100)
                              for k in range(1, 4) for w in (0, 1)},
        "sound-theme-freedesktop": {"usr/share/sounds/freedesktop/stereo/bell.oga":
                                    _wav(_tone(880.0, 0.5, 48000), 48000, "OGG", "VORBIS"),
                                    "usr/share/sounds/freedesktop/stereo/audio-channel-front-left.oga":
                                    _wav(_talker(3, 1.5)[0], RATE, "OGG", "VORBIS")},
        "hyperrogue-music": {"usr/share/hyperrogue/music/hr3-fake.ogg":
                             _wav(np.tile(_tone(330.0, 2.0, 44100), 10), 44100, "OGG", "VORBIS")},
    }
    debs_dir.mkdir(parents=True, exist_ok=True)
    for package, files in members.items():
        root = debs_dir.parent / "build" / package
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
        (root / "DEBIAN" / "control").write_text(
            f"Package: {package}\nVersion: 0.1-1\nArchitecture: all\nMaintainer: test <t@example.org>\n"
            "Description: fake reserved package for tests\n")
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root),
                        str(debs_dir / f"{package}_0.1-1_all.deb")], check=True, capture_output=True)


def test_reserved_packages_are_read_decoded_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "eval"
    write_fake_reserved_debs(cache / "debs")
    sources = ood_set.load_sources(cache, corpus_cache=tmp_path / "no-corpus", fetch=False)
    assert sources.pools[ood_set.RESERVED_POOL] == ["asterisk-fr:June", "asterisk-it:Carlo"]
    assert sources.pools[ood_set.TEST_POOL] == []  # no corpus here
    assert len(sources.speech["asterisk-fr:June"]) == 3
    assert sorted(sources.keyboard) == ["01", "02", "03"] and all(r is not None for _, r in sources.keyboard.values())
    assert [Path(n).name for n in sources.alerts] == ["bell.oga"]  # the spoken channel names are left out
    (track,) = sources.music.values()  # a 20 s track: read from MUSIC_SKIP_S on
    assert len(track) == pytest.approx((20.0 - ood_set.MUSIC_SKIP_S) * RATE, abs=RATE // 100)
    cached = sorted(p.name for p in (cache / str(RATE)).glob("*.npz"))
    assert len(cached) == len(ood_set.RESERVED_SOURCES) and "bucklespring-data_0.1-1.npz" in cached
    # The second load reads the decoded cache: it never opens the packages' contents again.
    def refuse(*args, **kwargs):
        raise AssertionError("read the package again instead of the cache")

    monkeypatch.setattr("model_export.corpus.read_members", refuse)
    again = ood_set.load_sources(cache, corpus_cache=tmp_path / "no-corpus", fetch=False)
    assert all(np.array_equal(a, b) for a, b in zip(again.speech["asterisk-it:Carlo"], sources.speech["asterisk-it:Carlo"]))
    pairs = ood_set.ood_pairs(again, quick=True, seconds=1.0)
    assert len(pairs) == len(ood_set.NOISE_KINDS) and all(np.all(np.isfinite(p.noisy)) for p in pairs)


def test_quality_benchmark_reports_ood_narrowband_and_the_bar(tmp_path: Path) -> None:
    from benchmarks import quality

    cache = tmp_path / "eval"
    write_fake_reserved_debs(cache / "debs")
    out = tmp_path / "results"
    systems = "noisy,quietmic-int8"
    code = quality.main(["--systems", systems, "--sets", "ood,ood-nb8k,ood-lp3k4", "--quick", "--ood-seconds", "1.5",
                         "--eval-cache", str(cache), "--no-fetch", "--corpus-cache", str(tmp_path / "no-corpus"),
                         "--jobs", "1", "--no-dnsmos", "--no-plots", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "quality.json").read_text())
    assert list(result["summary"]) == ["ood", "ood-nb8k", "ood-lp3k4"]
    ood = result["summary"]["ood"]
    assert [g["label"] for g in ood["kind_bins"]] == list(ood_set.NOISE_KINDS)
    assert len(ood["snr_bins"]) == len(ood_set.SNRS)
    assert ood["systems"]["noisy"]["si_sdr_improvement"] == 0.0
    nb_rows = [r for r in result["rows"] if r["set"] == "ood-nb8k"]
    assert nb_rows and all("dnsmos_ovrl" not in r and "stoi" not in r for r in nb_rows)
    assert set(result["narrowband"]) == {"ood-nb8k", "ood-lp3k4"}
    entry = result["narrowband"]["ood-nb8k"]["quietmic-int8"]
    assert entry["n"] == len(ood_set.NOISE_KINDS)
    bar = result["bar"]["quietmic-int8"]
    assert set(bar["sets"]) == {"ood", "ood-nb8k", "ood-lp3k4"}
    assert bar["sets"]["ood"] == {}  # no peer in this run: nothing to beat, nothing claimed
    if entry["ratio"] is not None:
        assert bar["narrowband"]["ood-nb8k"]["pass"] == (entry["ratio"] >= quality.NARROWBAND_MIN_RATIO)
    text = (out / "quality.md").read_text()
    assert "## The bar" in text and "PESQ-WB per noise kind (ood)" in text and "Narrowband against full band" in text
    assert result["ood"]["sources"]["bucklespring-data"].startswith("keyboard")


RESERVED_CACHE = ood_set.default_cache_dir()


@pytest.mark.skipif(not all(any((RESERVED_CACHE / "debs").glob(f"{s.package}_*.deb")) for s in ood_set.RESERVED_SOURCES),
                    reason="reserved evaluation packages not in the evaluation cache")
def test_real_reserved_packages_make_the_set() -> None:
    sources = ood_set.load_sources(fetch=False)
    assert set(sources.pools[ood_set.RESERVED_POOL]) == {"asterisk-fr:June", "asterisk-it:Carlo"}
    assert all(len(sources.speech[t]) > 400 for t in sources.pools[ood_set.RESERVED_POOL])
    assert len(sources.keyboard) > 50 and len(sources.alerts) >= 15 and len(sources.music) >= 15
    assert not any("audio-channel" in name for name in sources.alerts)
    pairs = ood_set.ood_pairs(sources, quick=True)
    assert len(pairs) == len(ood_set.NOISE_KINDS)
    for p in pairs:
        assert abs(p.info["active_snr_db"] - p.info["stratum_snr_db"]) < 0.05
        assert len(p.noisy) == int(ood_set.SECONDS * RATE)
