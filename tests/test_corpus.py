"""Corpus builder, generated noises and the training mixer, on synthetic data only (no network)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from model_export import augment, corpus, noise_synth
from model_export.corpus import SPLITS, ReservedSourceError, SourceSpec
from realtime import dsp

RATE = 16000


# --- synthetic audio -------------------------------------------------------------------------


def speech_like(rate: int, seconds: float, seed: int, floor_dbfs: float, level_dbfs: float = -20.0) -> np.ndarray:
    """Voiced syllables (harmonics of ~120 Hz, 200 ms on / 100 ms off) over white noise at ``floor_dbfs``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 120.0 * (1.0 + 0.05 * np.sin(2 * np.pi * 3.0 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25) if k * 120 < 0.45 * rate)
    syllable = (t // 0.3).astype(int)
    gains = 10 ** (rng.uniform(-8.0, 0.0, syllable.max() + 1) / 20)
    gate = ((t % 0.3) < 0.2) * gains[syllable]
    gate[: int(0.3 * rate)] = 0.0
    gate[-int(0.3 * rate) :] = 0.0
    voiced = voiced * gate
    voiced *= 10 ** (level_dbfs / 20) / np.sqrt(np.mean(voiced[gate > 0] ** 2))
    floor = rng.standard_normal(n) * 10 ** (floor_dbfs / 20)
    return (voiced + floor).astype(np.float32)


# --- reserved sources ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "package",
    [
        "asterisk-core-sounds-fr-g722",
        "asterisk-core-sounds-fr-wav",
        "asterisk-core-sounds-it-gsm",
        "asterisk-prompt-it-menardi-wav",
        "hyperrogue-music",
        "bucklespring-data",
        "sound-theme-freedesktop",
        "Sound-Theme-Freedesktop",
    ],
)
def test_reserved_packages_are_refused(package: str) -> None:
    with pytest.raises(ReservedSourceError):
        corpus.check_not_reserved(package)
    with pytest.raises(ReservedSourceError):
        SourceSpec("x", package, "speech", ("*.wav",), "festvox", "test")
    with pytest.raises(ReservedSourceError):
        corpus.fetch_deb(package, Path("/nonexistent"))


def test_default_sources_are_allowed_and_unique() -> None:
    names = [s.name for s in corpus.SOURCES]
    assert len(names) == len(set(names))
    for spec in corpus.SOURCES:
        corpus.check_not_reserved(spec.package)
    corpus.check_not_reserved("asterisk-core-sounds-en-g722")
    for package in corpus.PACKAGE_SPLITS:
        corpus.check_not_reserved(package)


def test_reserved_eval_directory_is_refused(tmp_path: Path) -> None:
    reserved = tmp_path / "shared" / "eval" / "cache"
    with pytest.raises(ReservedSourceError):
        corpus.check_path_not_reserved(reserved)
    with pytest.raises(ReservedSourceError):
        corpus.build_corpus(reserved, sources=[])
    with pytest.raises(ReservedSourceError):
        corpus.load_corpus(reserved)
    corpus.check_path_not_reserved(tmp_path / "shared" / "evaluation")


def test_manifest_naming_a_reserved_package_is_refused(tmp_path: Path) -> None:
    root = write_fake_cache(tmp_path / "cache")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["sources"]["speech-a"]["package"] = "hyperrogue-music"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ReservedSourceError):
        corpus.load_corpus(tmp_path / "cache")


# --- splits ----------------------------------------------------------------------------------


def _splits_of_talkers(assignments: dict[str, corpus.Assignment]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a in assignments.values():
        out.setdefault(a.talker or a.group, set()).add(a.split)
    return out


def test_single_talker_and_asterisk_labels() -> None:
    paths = [f"usr/share/festival/voices/russian/msu/wav/ru_{i:04d}.wav" for i in range(1, 21)]
    a = corpus.LABEL_RULES["festvox"]("festvox-ru", paths)
    assert {x.talker for x in a.values()} == {"festvox-ru:msu_ru_nsh"} and {x.language for x in a.values()} == {"ru"}
    dirs = ["en_US_f_Allison", "es_MX_f_Allison", "ru_RU_f_IvrvoiceRU"]
    paths = [f"usr/share/asterisk/sounds/{d}/digits/{i}.g722" for d in dirs for i in range(3)]
    a = corpus.asterisk_rule("asterisk", paths)
    assert {x.talker for x in a.values()} == {"asterisk:allison", "asterisk:ivrvoiceru"}
    assert a[paths[0]].language == "en" and a[paths[3]].language == "es" and a[paths[-1]].language == "ru"


def test_language_sources_label_one_voice_per_language() -> None:
    languages = ["fr", "ru", "en_GB", "en", "sr", "sr@latin", "pt_BR"]
    tux = [f"usr/share/tuxpaint/stamps/a/b/thing{i}_desc_{lang}.ogg" for lang in languages for i in range(3)]
    tux += ["usr/share/tuxpaint/stamps/a/thing_desc.ogg"]
    klet = [f"usr/share/klettres/{lang}/alpha/{i}.ogg" for lang in languages for i in range(3)]
    ktub = [f"usr/share/ktuberling/sounds/{lang}/w{i}.ogg" for lang in languages for i in range(3)]
    tux_labels = corpus.LABEL_RULES["tuxpaint"]("tuxpaint-stamps-default", tux)
    kde = {**corpus.LABEL_RULES["klettres"]("klettres-data", klet),
           **corpus.LABEL_RULES["ktuberling"]("ktuberling-data", ktub)}
    assert {x.talker for x in tux_labels.values()} == {f"tuxpaint:{lang}" for lang in ("fr", "ru", "en", "sr", "pt")}
    # klettres and ktuberling share one label per language (possibly the same KDE volunteer) ...
    assert {x.talker for x in kde.values()} == {f"kde-edu:{lang}" for lang in ("fr", "ru", "en", "sr", "pt")}
    # ... and so must share a split.
    assert corpus.package_split("klettres-data") == corpus.package_split("ktuberling-data")
    assert corpus.tuxpaint_language("x/thing_desc.ogg") == "en"
    assert corpus.tuxpaint_language("x/thing_desc_pt_BR.ogg") == "pt_br"
    assert corpus.tuxpaint_language("x/thing_desc_da.ogg.ogg") == "da"


def test_noise_effect_families() -> None:
    assert corpus._effect_family("sounds/orc-hit-3.ogg") == corpus._effect_family("sounds/orc-hit-1.ogg")
    assert corpus._effect_family("sounds/bow-miss.ogg") == "bow"
    assert corpus._effect_family("sfx/swordhit_10a.ogg") == "swordhit"


# --- clip filter -----------------------------------------------------------------------------


def test_filter_keeps_clean_and_drops_noisy_and_clipped_clips() -> None:
    clean = speech_like(44100, 2.0, 0, floor_dbfs=-85.0)
    keep, reason, stats = corpus.keep_speech(clean, 44100)
    assert keep and reason == "" and stats.snr_db > 45
    noisy = speech_like(44100, 2.0, 1, floor_dbfs=-42.0)
    keep, reason, stats = corpus.keep_speech(noisy, 44100)
    assert not keep and reason == "low_snr" and stats.snr_db < corpus.MIN_SNR_DB
    clipped = np.clip(clean * 30.0, -1.0, 1.0)
    keep, reason, _ = corpus.keep_speech(clipped, 44100)
    assert not keep and reason == "clipped"
    # A clip normalised to a single full-scale peak is not clipped.
    peak_normalised = clean / np.max(np.abs(clean))
    assert not corpus.is_clipped(peak_normalised)


def test_trim_keeps_padding_around_speech() -> None:
    x = speech_like(RATE, 3.0, 2, floor_dbfs=-90.0)
    stats = corpus.measure(x, RATE)
    y = corpus.trim(x, RATE, stats.level_dbfs - corpus.ACTIVE_BELOW_LEVEL_DB, corpus.TRIM_PAD_SECONDS)
    assert len(x) - int(0.6 * RATE) < len(y) < len(x)


# --- fake caches -----------------------------------------------------------------------------


def write_fake_cache(cache: Path, rate: int = RATE) -> Path:
    """A hand-written cache: two speech sources (three talkers) and one noise source."""
    root = cache / str(rate)
    (root / "audio").mkdir(parents=True)
    sources = {}
    layout = {
        "speech-a": ("speech", [("a1", "train"), ("a1", "train"), ("a2", "test")]),
        "speech-b": ("speech", [("b1", "val"), ("b1", "val"), ("b2", "train")]),
        "noise-c": ("noise", [(None, "train"), (None, "val"), (None, "test")]),
    }
    for s_index, (name, (kind, clips)) in enumerate(layout.items()):
        audio, entries, offset = [], [], 0
        for i, (talker, split) in enumerate(clips):
            x = speech_like(rate, 1.0 + 0.5 * i, 10 * s_index + i, -80.0) if kind == "speech" else \
                noise_synth.coloured_noise(rate * (i + 1), rate, i, colour="pink")
            stats = corpus.measure(x, rate)
            entries.append({"id": f"{name}:{i}", "files": [f"f{i}.wav"], "talker": talker,
                            "group": talker or f"g{i}", "split": split, "offset": offset, "length": len(x),
                            "seconds": len(x) / rate, **stats.__dict__})
            audio.append(x)
            offset += len(x)
        np.save(root / "audio" / f"{name}.npy", np.concatenate(audio).astype(np.float32))
        sources[name] = {"package": name, "version": "1", "kind": kind, "licence": "test",
                         "audio": f"audio/{name}.npy", "clips": entries, "files_kept": len(clips), "dropped": {}}
    manifest = {"format": corpus.CORPUS_FORMAT, "sample_rate": rate, "min_snr_db": corpus.MIN_SNR_DB,
                "sources": sources}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_fake_cache_loads(tmp_path: Path) -> None:
    write_fake_cache(tmp_path / "cache")
    c = corpus.load_corpus(tmp_path / "cache")
    assert c.sample_rate == RATE and c.sources == ["noise-c", "speech-a", "speech-b"]
    train = c.speech("train")
    assert [len(x) for x in train] == [RATE, int(1.5 * RATE), 2 * RATE]
    assert all(x.dtype == np.float32 for x in train)
    assert len(c.speech("val")) == 2 and len(c.speech("test")) == 1
    assert [len(x) for x in c.noise("val")] == [2 * RATE]
    assert set(c.speech_by_talker("train")) == {"a1", "b2"}
    w = c.weights("speech", "train")
    assert w.shape == (3,) and math.isclose(w.sum(), 1.0) and math.isclose(w[:2].sum(), 0.5)
    summary = c.summary()
    assert summary["sources"]["speech-a"]["hours"]["train"] == round(2.5 / 3600, 3)
    assert summary["sources"]["speech-a"]["talkers"]["test"] == ["a2"]
    json.dumps(summary)
    # Talkers never cross splits.
    seen: dict[str, str] = {}
    for clip in c.clips("speech"):
        assert seen.setdefault(clip.talker, clip.split) == clip.split
    # The <cache>/<rate> directory itself works too; a missing cache says how to build it.
    assert corpus.load_corpus(tmp_path / "cache" / str(RATE)).sources == c.sources
    with pytest.raises(corpus.CorpusError, match="build"):
        corpus.load_corpus(tmp_path / "empty")


def test_default_cache_dir_respects_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert corpus.default_cache_dir() == tmp_path / "quietmic" / "corpus"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert corpus.default_cache_dir() == Path.home() / ".cache" / "quietmic" / "corpus"


def make_deb(directory: Path, package: str, files: dict[str, np.ndarray], rate: int, subtype: str = "PCM_16") -> Path:
    """A .deb holding ``files`` (path in the package -> audio at ``rate`` Hz, written as ``subtype``)."""
    import soundfile

    tree = directory / f"{package}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test\n"
    )
    for rel, audio in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, audio, rate, subtype=subtype)
    doc = tree / "usr/share/doc" / package / "copyright"
    doc.parent.mkdir(parents=True)
    doc.write_text("License: test\n")
    deb = directory / f"{package}_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True,
                   capture_output=True)
    return deb


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_build_from_local_debs_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("soundfile")
    cache = tmp_path / "cache"
    debs = cache / "debs"
    debs.mkdir(parents=True)
    voice = {f"usr/share/festival/voices/test/wav/ru_{i:04d}.wav": speech_like(22050, 1.5, i, -85.0)
             for i in range(1, 21)}
    voice["usr/share/festival/voices/test/wav/ru_0003.wav"] = speech_like(22050, 1.5, 3, -40.0)  # noisy
    voice["usr/share/festival/voices/test/wav/ru_0005.wav"] = np.clip(speech_like(22050, 1.5, 5, -85.0) * 40,
                                                                       -1, 1)  # clipped
    make_deb(debs, "fake-voice", voice, 22050)
    noise = {f"usr/share/fx/{name}.wav": noise_synth.coloured_noise(48000, 48000, i, colour="brown")
             for i, name in enumerate(["a", "b", "c", "d"])}
    make_deb(debs, "fake-noise", noise, 48000)
    monkeypatch.setitem(corpus.PACKAGE_SPLITS, "fake-voice", "train")
    monkeypatch.setitem(corpus.PACKAGE_SPLITS, "fake-noise", "test")
    specs = [
        SourceSpec("fake-voice", "fake-voice", "speech", ("usr/share/festival/voices/*/wav/*.wav",), "festvox", "t"),
        SourceSpec("fake-noise", "fake-noise", "noise", ("usr/share/fx/*.wav",), "noise-effect", "t"),
    ]
    monkeypatch.setattr(corpus, "_run", _no_apt(corpus._run))
    c = corpus.build_corpus(cache, RATE, specs, workers=1)
    entry = c.manifest["sources"]["fake-voice"]
    assert entry["files_kept"] == 18 and entry["dropped"] == {"clipped": 1, "low_snr": 1}
    assert entry["version"] == "1.0-1"
    assert (cache / "licences" / "fake-voice.copyright").read_text() == "License: test\n"
    speech = {s: c.speech(s) for s in SPLITS}
    assert [len(speech[s]) for s in SPLITS] == [18, 0, 0]  # the whole package trains; 3 and 5 dropped
    assert all(1.1 < len(x) / RATE < 1.4 for s in SPLITS for x in speech[s])  # 1.5 s trimmed to ~1.2 s, 16 kHz
    assert [len(c.noise(s)) for s in SPLITS] == [0, 0, 4]
    assert all(abs(len(x) - RATE) <= 1 for x in c.noise("test"))  # 1 s at 48 kHz -> 16 kHz
    clip = c.clips("speech")[0]
    assert clip.language == "ru" and clip.package == "fake-voice" and clip.bandwidth_hz is not None
    assert {x.noise_kind for x in c.clips("noise")} == {"other"}
    assert c.split_summary()["shared"] == {"packages": [], "talkers": []}
    # Built again: everything is cached, nothing is decoded.
    monkeypatch.setattr(corpus, "build_source", lambda *a, **k: pytest.fail("rebuilt a cached source"))
    again = corpus.build_corpus(cache, RATE, specs, workers=1)
    assert again.summary() == c.summary()


def test_fetch_deb_updates_package_lists_once_when_download_fails(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(command, cwd=None):
        calls.append(command)
        updated = ["apt-get", "update"] in calls
        if command[:2] == ["apt-get", "download"] and updated:
            (Path(cwd) / f"{command[2]}_2.0_all.deb").write_bytes(b"")
        ok = command[:2] == ["apt-get", "update"] or updated
        return subprocess.CompletedProcess(command, 0 if ok else 100, "", "" if ok else "E: no lists")

    monkeypatch.setattr(corpus, "_run", fake_run)
    deb = corpus.fetch_deb("some-package", tmp_path / "debs")
    assert deb.name == "some-package_2.0_all.deb"
    assert [c[:2] for c in calls] == [["apt-get", "download"], ["apt-get", "update"], ["apt-get", "download"]]
    calls.clear()
    assert corpus.fetch_deb("some-package", tmp_path / "debs") == deb and calls == []  # cached


def _no_apt(run):
    def guarded(command, cwd=None):
        assert command[0] != "apt-get", "the test must not download"
        return run(command, cwd)

    return guarded


# --- generated noises ------------------------------------------------------------------------


@pytest.mark.parametrize("colour,slope", sorted(noise_synth.COLOURS.items()))
def test_coloured_noise_slope(colour: str, slope: float) -> None:
    x = noise_synth.coloured_noise(4 * RATE, RATE, 7, colour=colour)
    assert len(x) == 4 * RATE and x.dtype == np.float32
    assert abs(noise_synth.spectral_slope(x, RATE) - slope) < 0.5


@pytest.mark.parametrize("kind", noise_synth.KINDS + ("mixture",))
@pytest.mark.parametrize("rate", [16000, 48000])
def test_generators_are_deterministic(kind: str, rate: int) -> None:
    speech = [speech_like(rate, 1.0, i, -80.0) for i in range(3)]
    n = int(1.3 * rate)
    a = noise_synth.generate(kind, n, rate, 3, speech=speech)
    b = noise_synth.generate(kind, n, rate, np.random.default_rng(3), speech=speech)
    c = noise_synth.generate(kind, n, rate, 4, speech=speech)
    assert a.shape == (n,) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert math.isclose(float(np.sqrt(np.mean(a.astype(np.float64) ** 2))), noise_synth.NOISE_RMS, rel_tol=1e-3)


def test_hum_is_at_the_mains_frequency() -> None:
    for mains in (50.0, 60.0):
        x = noise_synth.hum(4 * RATE, RATE, 1, mains_hz=mains, n_harmonics=1)
        spectrum = np.abs(np.fft.rfft(x))
        peak_hz = np.argmax(spectrum) * RATE / len(x)
        assert abs(peak_hz - mains) < mains * noise_synth.HUM_DRIFT + 0.5


def test_babble_needs_speech_and_uses_talkers() -> None:
    with pytest.raises(ValueError):
        noise_synth.generate("babble", RATE, RATE, 0)
    talkers = {f"t{i}": [speech_like(RATE, 0.7, i, -80.0)] for i in range(5)}
    x = noise_synth.babble(2 * RATE, RATE, 0, talkers, n_talkers=4)
    assert x.shape == (2 * RATE,) and np.all(np.isfinite(x))


def test_fan_noise_is_band_limited() -> None:
    x = noise_synth.fan_noise(4 * RATE, RATE, 2)
    framing = dsp.Framing(sample_rate=RATE, window_length=1024, hop_length=512)
    power = np.mean(np.abs(dsp.stft(x, framing)) ** 2, axis=0)
    freqs = framing.bin_frequencies_hz
    band = power[(freqs > 300) & (freqs < 1000)].mean()
    top = power[(freqs > 7000) & (freqs < 7900)].mean()
    assert 10 * np.log10(band / top) > 10.0


# --- mixer -----------------------------------------------------------------------------------


def test_scale_to_snr_hits_the_target() -> None:
    speech = speech_like(RATE, 2.0, 0, -90.0)
    for target in (-5.0, 0.0, 7.5, 20.0):
        noise = noise_synth.coloured_noise(2 * RATE, RATE, int(target + 10), colour="pink")
        scaled = augment.scale_to_snr(speech, noise, target, RATE)
        assert abs(augment.snr_db(speech, scaled, RATE) - target) < 0.5


def _mixer(seed: int = 0, **overrides) -> augment.Mixer:
    speech = [speech_like(RATE, s, i, -85.0) for i, s in enumerate([0.8, 1.5, 3.0, 4.0])]
    noise = [noise_synth.coloured_noise(int(s * RATE), RATE, i, colour="brown") for i, s in enumerate([0.3, 3.0])]
    return augment.Mixer(speech, noise, seed=seed, **overrides)


def test_mixer_hits_the_requested_snr() -> None:
    mixer = _mixer(p_reverb=0.0, p_bandlimit=0.0, p_clean_only=0.0, p_noise_only=0.0)
    for _ in range(40):
        e = mixer.example()
        assert e.info["kind"] == "noisy"
        measured = augment.snr_db(e.clean, e.noisy - e.clean, RATE)
        assert abs(measured - e.info["snr_db"]) < 0.5, e.info
        assert augment.SNR_DB_RANGE[0] <= e.info["snr_db"] <= augment.SNR_DB_RANGE[1]


def test_mixer_output_never_clips() -> None:
    loud = _mixer(level_dbfs_range=(-3.0, 0.0), p_reverb=0.5, p_bandlimit=0.5)
    default = _mixer(seed=1)
    for mixer in (loud, default):
        for _ in range(60):
            noisy, clean = mixer.pair()
            assert noisy.shape == clean.shape == (mixer.config.length,)
            assert noisy.dtype == clean.dtype == np.float32
            assert np.all(np.isfinite(noisy)) and np.all(np.isfinite(clean))
            assert max(np.max(np.abs(noisy)), np.max(np.abs(clean))) <= augment.PEAK_LIMIT + 1e-6


def test_mixer_levels_and_special_examples() -> None:
    mixer = _mixer(seed=3, p_clean_only=0.3, p_noise_only=0.3)
    kinds = set()
    for _ in range(60):
        e = mixer.example()
        kinds.add(e.info["kind"])
        if e.info["kind"] == "clean_only":
            assert np.array_equal(e.noisy, e.clean) or "rt60" in e.info
        elif e.info["kind"] == "noise_only":
            assert not np.any(e.clean)
        assert e.info["level_dbfs"] <= augment.LEVEL_DBFS_RANGE[1] + 0.01
    assert kinds == {"noisy", "clean_only", "noise_only"}


def test_mixer_is_deterministic() -> None:
    a, b = _mixer(seed=5), _mixer(seed=5)
    for _ in range(5):
        na, ca = a.pair()
        nb, cb = b.pair()
        assert np.array_equal(na, nb) and np.array_equal(ca, cb)
    fixed_a = _mixer(seed=9).fixed_set(4, start=10)
    mixer = _mixer(seed=9)
    mixer.pair()  # order does not matter for example_at
    fixed_b = mixer.fixed_set(4, start=10)
    assert np.array_equal(fixed_a[0], fixed_b[0]) and np.array_equal(fixed_a[1], fixed_b[1])


def test_reverb_target_is_early_reverberant_and_aligned() -> None:
    rng = np.random.default_rng(0)
    full, early = augment.synthetic_rir(RATE, 0.6, 3.0, rng)
    assert full[0] == 1.0 and np.array_equal(full[: len(early) - 100], early[: len(early) - 100])
    assert len(early) == int(augment.EARLY_REVERB_MS * RATE / 1000) + 1
    drr = 10 * np.log10(1.0 / np.sum(full[1:].astype(np.float64) ** 2))
    assert abs(drr - 3.0) < 0.01
    mixer = _mixer(p_reverb=1.0, p_bandlimit=0.0, p_clean_only=1.0, p_noise_only=0.0, p_speed=0.0, p_eq=0.0)
    e = mixer.example()
    assert "rt60" in e.info and not np.array_equal(e.noisy, e.clean)
    # The target correlates best with the mix at lag 0 (direct path at lag 0, no delay).
    lags = range(-40, 41)
    corr = [float(np.dot(e.clean[max(0, -k) : len(e.clean) - max(0, k)], e.noisy[max(0, k) : len(e.noisy) - max(0, -k)]))
            for k in lags]
    assert list(lags)[int(np.argmax(corr))] == 0


def test_mixer_from_fake_corpus(tmp_path: Path) -> None:
    write_fake_cache(tmp_path / "cache")
    c = corpus.load_corpus(tmp_path / "cache")
    mixer = augment.Mixer.from_corpus(c, "train", seed=0, p_generated_noise=0.5)
    noisy, clean = mixer.batch(8)
    assert noisy.shape == clean.shape == (8, 2 * RATE)
    with pytest.raises(ValueError):
        augment.Mixer.from_corpus(c, "train", config=augment.MixConfig(sample_rate=48000))


def test_noise_eq_colours_the_noise_before_the_snr_is_set() -> None:
    plain = _mixer(seed=2, p_reverb=0.0, p_bandlimit=0.0, p_clean_only=0.0, p_noise_only=0.0)
    coloured = _mixer(seed=2, p_reverb=0.0, p_bandlimit=0.0, p_clean_only=0.0, p_noise_only=0.0, p_noise_eq=1.0)
    assert augment.MixConfig().p_noise_eq == augment.P_NOISE_EQ == 0.0
    for _ in range(20):
        assert "noise_eq_tilt" not in plain.example().info
        e = coloured.example()
        assert augment.TILT_DB_PER_OCTAVE[0] <= e.info["noise_eq_tilt"] <= augment.TILT_DB_PER_OCTAVE[1]
        assert abs(augment.snr_db(e.clean, e.noisy - e.clean, RATE) - e.info["snr_db"]) < 0.5, e.info


def test_mix_config_takes_a_config_section_and_refuses_what_it_does_not_know() -> None:
    config = augment.mix_config({"p_noise_eq": 0.5, "snr_db_range": [0, 10]}, sample_rate=8000)
    assert config.p_noise_eq == 0.5 and config.snr_db_range == (0, 10) and config.sample_rate == 8000
    assert config.p_reverb == augment.P_REVERB
    with pytest.raises(ValueError, match="p_noise_equ"):
        augment.mix_config({"p_noise_equ": 0.5})
    with pytest.raises(ValueError, match="p_reverb is a probability"):
        augment.mix_config({"p_reverb": 1.5})
    with pytest.raises(ValueError, match="p_eq is a probability"):
        _mixer(p_eq=-0.1)  # the Mixer's own overrides are checked the same way
