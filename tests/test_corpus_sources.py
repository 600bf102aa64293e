"""Archive readers, noise kinds, bandwidth and package-level splits of the corpus (synthetic data only)."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from model_export import corpus
from model_export.corpus import SPLITS, SourceSpec
from model_export.sources import queen, rnc, sky, zipped

RATE = 16000


def speech_like(rate: int, seconds: float, seed: int, floor_dbfs: float = -85.0) -> np.ndarray:
    """Voiced syllables (harmonics of ~120 Hz, 200 ms on / 100 ms off) over a white noise floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(120.0 * (1.0 + 0.05 * np.sin(2 * np.pi * 3.0 * t))) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25) if k * 120 < 0.45 * rate)
    gate = ((t % 0.3) < 0.2).astype(float)
    gate[: int(0.3 * rate)] = 0.0
    gate[-int(0.3 * rate):] = 0.0
    voiced = voiced * gate
    voiced *= 0.1 / np.sqrt(np.mean(voiced[gate > 0] ** 2))
    return (voiced + rng.standard_normal(len(t)) * 10 ** (floor_dbfs / 20)).astype(np.float32)


def encoded(x: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    import soundfile

    out = io.BytesIO()
    soundfile.write(out, x, rate, format=fmt, subtype=subtype)
    return out.getvalue()


# --- Flight of the Amazon Queen ----------------------------------------------------------------


def make_queen(entries: dict[str, bytes]) -> bytes:
    """A ``queen.1c`` archive holding ``entries`` (name -> bytes)."""
    table_end = queen.HEADER_SIZE + len(entries) * queen.ENTRY_SIZE
    table, blobs, offset = b"", b"", table_end
    for name, data in entries.items():
        table += name.encode().ljust(queen.NAME_SIZE, b"\0") + struct.pack(">BII", 1, offset, len(data))
        blobs += data
        offset += len(data)
    return queen.MAGIC + b"\0\0\0\1" + struct.pack(">H", len(entries)) + table + blobs


def test_queen_archive_reads_spoken_lines(tmp_path: Path) -> None:
    pytest.importorskip("soundfile")
    line = encoded(speech_like(11025, 1.0, 0), 11025, "MP3")
    archive = make_queen({"JOE00011.SB": line, "020006P1.SB": line[::-1], "ROOM1.PCX": b"picture"})
    path = tmp_path / "queen.1c"
    path.write_bytes(archive)
    entries = queen.parse_index(archive)
    assert [e.name for e in entries] == ["JOE00011.SB", "020006P1.SB", "ROOM1.PCX"]
    members = queen.read_members(path, ["*.sb"])
    assert set(members) == {"JOE00011.SB", "020006P1.SB"} and members["JOE00011.SB"] == line
    x, rate = corpus.decode("JOE00011.SB", members["JOE00011.SB"])
    assert rate == 11025 and 0.9 < len(x) / rate < 1.2
    with pytest.raises(queen.QueenFormatError, match="not a queen.1c"):
        queen.parse_index(b"XXXX" + archive[4:])
    with pytest.raises(queen.QueenFormatError, match="truncated"):
        queen.parse_index(archive[: queen.HEADER_SIZE + 5])
    with pytest.raises(queen.QueenFormatError, match="outside"):
        queen.parse_index(archive[:-3])


def test_queen_speakers() -> None:
    assert queen.speaker("JOE04691.SB") == "joe"
    assert queen.speaker("170006J1.SB") == "joe"
    assert queen.speaker("770028P3.SB") == "person-77"
    assert queen.speaker("C41B_742.SB") == "cutaways"
    labels = corpus.LABEL_RULES["fotaq"]("fotaq", ["x/queen.1c!JOE00011.SB", "x/queen.1c!020006P1.SB"])
    assert [label.talker for label in labels.values()] == ["fotaq:joe", "fotaq:person-02"]
    assert {label.language for label in labels.values()} == {"en"}


# --- RNC and Beneath a Steel Sky ----------------------------------------------------------------


class _RncWriter:
    """A minimal RNC method 1 encoder for tests: fixed 4-bit codes, explicit literal runs and matches."""

    SYMBOLS = 16

    def __init__(self) -> None:
        self.out = bytearray()
        self.word: int | None = None
        self.used = 16

    def bits(self, value: int, n: int) -> None:
        for i in range(n):  # least significant bit first
            if self.used == 16:
                self.word = len(self.out)
                self.out += b"\0\0"
                self.used = 0
            assert self.word is not None
            if (value >> i) & 1:
                self.out[self.word + self.used // 8] |= 1 << (self.used % 8)
            self.used += 1

    def code(self, symbol: int) -> None:
        for i in reversed(range(4)):  # canonical code, most significant bit first
            self.bits((symbol >> i) & 1, 1)

    def value(self, v: int) -> None:
        symbol = v if v < 2 else v.bit_length()
        self.code(symbol)
        if symbol >= 2:
            self.bits(v - (1 << (symbol - 1)), symbol - 1)

    def table(self) -> None:
        self.bits(self.SYMBOLS, rnc.TABLE_COUNT_BITS)
        for _ in range(self.SYMBOLS):
            self.bits(4, rnc.TABLE_LENGTH_BITS)

    def literal(self, data: bytes) -> None:
        self.out += data  # after the word being filled, which the decoder has already loaded


def rnc_pack(steps: list[tuple[bytes, int, int]]) -> tuple[bytes, bytes]:
    """An RNC stream of one chunk: per step a literal run, then (unless last) a match (distance, length)."""
    w = _RncWriter()
    w.bits(0, 2)
    for _ in range(3):
        w.table()
    w.bits(len(steps), rnc.SUBCHUNK_COUNT_BITS)
    plain = bytearray()
    for k, (literal, distance, length) in enumerate(steps):
        w.value(len(literal))
        if literal:
            w.literal(literal)
            plain += literal
        if k < len(steps) - 1:
            w.value(distance - 1)
            w.value(length - rnc.MIN_MATCH)
            for _ in range(length):
                plain.append(plain[-distance])
    body = bytes(w.out)
    head = rnc.MAGIC + bytes([rnc.METHOD]) + struct.pack(">IIHHBB", len(plain), len(body), rnc.crc16(bytes(plain)),
                                                         rnc.crc16(body), 0, 1)
    return head + body, bytes(plain)


def test_rnc_crc_and_round_trip() -> None:
    assert rnc.crc16(b"123456789") == 0xBB3D  # CRC-16/ARC check value
    stream, plain = rnc_pack([(b"abcdefg", 3, 9), (b"", 1, 5), (bytes(range(40, 90)), 50, 300), (b"end", 0, 0)])
    assert rnc.decompress(stream) == plain and len(plain) == 7 + 9 + 5 + 50 + 300 + 3
    assert rnc.header(stream)[0] == len(plain)
    broken = bytearray(stream)
    broken[12] ^= 0xFF  # the unpacked CRC
    with pytest.raises(rnc.RncError, match="CRC"):
        rnc.decompress(bytes(broken))
    with pytest.raises(rnc.RncError, match="method"):
        rnc.decompress(stream[:3] + b"\x02" + stream[4:])
    with pytest.raises(rnc.RncError, match="signature"):
        rnc.decompress(b"XYZ" + stream[3:])


def make_sky(tmp_path: Path, pcm: bytes) -> Path:
    """``sky.dnr``/``sky.dsk`` with one RNC-packed speech line (50001), a palette (50002) and a non-speech file."""
    stream, _ = rnc_pack([(pcm[:100], 100, len(pcm) - 200), (pcm[-100:], 0, 0)])
    speech = b"\x81\0" + b"\0" * (sky.RESOURCE_HEADER_SIZE - 2) + stream
    palette = bytes(768)
    other = b"\x81\0" + b"\0" * (sky.RESOURCE_HEADER_SIZE - 2) + stream
    disk = bytearray(b"\0" * 32)
    index = b""
    for number, blob in ((50001, speech), (50002, palette), (60300, other)):
        while len(disk) % sky.OFFSET_UNIT:
            disk.append(0)
        offset_field = (len(disk) // sky.OFFSET_UNIT) | sky.OFFSET_IN_UNITS_FLAG
        index += struct.pack("<H", number) + offset_field.to_bytes(3, "little") + len(blob).to_bytes(3, "little")
        disk += blob
    (tmp_path / "sky.dnr").write_bytes(struct.pack("<I", 3) + index)
    (tmp_path / "sky.dsk").write_bytes(bytes(disk))
    return tmp_path / "sky.dsk"


def test_sky_reads_rnc_packed_speech(tmp_path: Path) -> None:
    pytest.importorskip("soundfile")
    t = np.arange(100) / sky.SPEECH_RATE
    # 100 literal bytes (one period of 110.25 Hz), then repeats of them: a match at distance 100.
    head = np.round(100 * np.sin(2 * np.pi * 110.25 * t) + 128).astype(np.uint8).tobytes()
    pcm = (head * 12)[:1100]
    path = make_sky(tmp_path, pcm)
    members = sky.read_members(path, ["speech/*.wav"])
    assert list(members) == ["speech/50001.wav"]
    y, rate = corpus.decode("speech/50001.wav", members["speech/50001.wav"])
    assert rate == sky.SPEECH_RATE and len(y) == len(pcm)
    assert np.allclose(y, (np.frombuffer(pcm, np.uint8).astype(np.float32) - 128) / 128, atol=1e-6)
    assert sky.speaker("speech/53996.wav") == "block-3"
    (tmp_path / "sky.dnr").unlink()
    with pytest.raises(sky.SkyFormatError, match="missing"):
        sky.read_members(path, ["*"])


def test_zip_reader(tmp_path: Path) -> None:
    path = tmp_path / "a.pk3"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("sound/ambience/wind.ogg", b"w")
        z.writestr("sound/ui/click.ogg", b"c")
        z.writestr("maps/x.bsp", b"m")
    assert zipped.read_members(path, ["sound/*.ogg"]) == {"sound/ambience/wind.ogg": b"w", "sound/ui/click.ogg": b"c"}
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(zipped.ZipReadError):
        zipped.read_members(tmp_path / "bad.zip", ["*"])


# --- noise kinds, speech exclusion, bandwidth ---------------------------------------------------


@pytest.mark.parametrize("path,kind", [
    ("usr/share/games/widelands/data/music/ingame_01.ogg", "music"),
    ("usr/share/games/ufoai/base/0snd.pk3!sound/ui/click1.ogg", "keyboard_mouse"),
    ("usr/share/games/ufoai/base/0snd.pk3!sound/ambience/arcticwind.ogg", "wind_rain_water"),
    ("usr/share/games/0ad/public.zip!audio/ambient/weather/rain_11.ogg", "wind_rain_water"),
    ("usr/share/games/0ad/public.zip!audio/actor/fauna/animal/cow_01.ogg", "nature_animal"),
    ("usr/share/games/torcs/data/sound/engine-1.wav", "traffic_vehicle"),
    ("usr/share/games/lincity-ng/sounds/TraficHigh1.wav", "traffic_vehicle"),
    ("usr/share/games/lincity-ng/sounds/MarketFull1.wav", "crowd_babble_tv"),
    ("usr/share/games/0ad/public.zip!audio/resource/construction/con_saw_01.ogg", "machine_tool"),
    ("usr/share/games/ufoai/base/0snd.pk3!sound/ambience/hum2.ogg", "fan_hum_appliance"),
    ("usr/share/games/ufoai/base/0snd.pk3!sound/misc/breakglass01.ogg", "kitchen_impact"),
    ("usr/share/games/freeorion/default/data/sound/combat/laser-blaster2.ogg", "weapon_explosion"),
    ("usr/share/games/0ad/public.zip!audio/interface/alarm/alarmalert0.ogg", "ui_alert"),
    ("usr/share/games/foo/sounds/xyzzy.ogg", "other"),
])
def test_noise_kind_rules(path: str, kind: str) -> None:
    assert kind in corpus.NOISE_KINDS
    assert corpus.noise_kind(path) == kind


def test_noise_kind_source_rules_and_default_come_first() -> None:
    assert corpus.noise_kind("a/track/xyzzy.ogg", (("music", "."),)) == "music"
    assert corpus.noise_kind("a/xyzzy.ogg", default="ui_alert") == "ui_alert"
    with pytest.raises(corpus.CorpusError, match="noise kind"):
        SourceSpec("x", "torcs-data", "noise", ("*.wav",), "noise-effect", "t", default_noise_kind="noisy")


@pytest.mark.parametrize("path,speech", [
    ("usr/share/games/hedgewars/Data/Sounds/voices/Pirate/Solong.ogg", True),
    ("usr/share/games/flightgear/Sounds/tcas/female/climb.wav", True),
    ("usr/share/games/megaglest/techs/x/units/archer/sounds/archer_ack1.wav", True),
    ("usr/share/games/hedgewars/Data/Sounds/rcplane.ogg", False),
    ("usr/share/games/flightgear/Sounds/rain.wav", False),
])
def test_clean_speech_is_not_noise(path: str, speech: bool) -> None:
    import re

    assert bool(re.search(corpus.NOISE_SPEECH_EXCLUDE, corpus._words(path))) is speech


def test_effective_bandwidth() -> None:
    rng = np.random.default_rng(0)
    white = rng.standard_normal(2 * RATE)
    assert corpus.effective_bandwidth_hz(white, RATE) > 7500
    spectrum = np.fft.rfft(white)
    spectrum[np.fft.rfftfreq(len(white), 1 / RATE) > 4000] = 0  # band-limited like 8 kHz audio resampled
    low = np.fft.irfft(spectrum, len(white))
    assert 3700 < corpus.effective_bandwidth_hz(low, RATE) < 4400
    narrow = speech_like(11025, 2.0, 3)
    assert corpus.effective_bandwidth_hz(narrow, 11025) <= 11025 / 2
    assert corpus.effective_bandwidth_hz(np.zeros(10), RATE) == RATE / 2  # too short to measure


# --- package-level splits -------------------------------------------------------------------------


def test_every_source_package_has_one_split_and_sharers_sit_together() -> None:
    corpus.check_split_table()
    by_package: dict[str, set[str]] = {}
    for spec in corpus.SOURCES:
        by_package.setdefault(spec.package, set()).add(spec.split)
    assert all(len(s) == 1 for s in by_package.values())
    splits = {p: s.pop() for p, s in by_package.items()}
    assert set(splits.values()) == set(SPLITS)
    # Packages that may hold the same voice are in one split.
    assert splits["asterisk-core-sounds-en-g722"] == splits["asterisk-core-sounds-es-g722"]
    assert splits["klettres-data"] == splits["ktuberling-data"]
    # Every split has speech and noise from its own packages.
    for split in SPLITS:
        kinds = {s.kind for s in corpus.SOURCES if s.split == split}
        assert kinds == {"speech", "noise"}, split
    # Held-out kinds go to a split that has noise packages.
    for kind, split in corpus.HELD_OUT_NOISE_KINDS.items():
        assert kind in corpus.NOISE_KINDS and any(s.kind == "noise" and s.split == split for s in corpus.SOURCES)


def test_a_package_without_a_split_is_refused() -> None:
    spec = SourceSpec("x", "some-new-package", "noise", ("*.wav",), "noise-effect", "t")
    with pytest.raises(corpus.CorpusError, match="PACKAGE_SPLITS"):
        spec.split  # noqa: B018
    with pytest.raises(corpus.CorpusError, match="PACKAGE_SPLITS"):
        corpus.build_corpus(Path("/nonexistent-cache"), sources=[spec])


def test_labels_of_game_voices() -> None:
    fillets = corpus.fillets_rule("fillets-ng-data-nl", [
        "usr/share/games/fillets-ng/sound/airplane/nl/let-m-oko.ogg",
        "usr/share/games/fillets-ng/sound/alibaba/nl/kni-v-cetky.ogg",
        "usr/share/games/fillets-ng/sound/alibaba/nl/kni-pap-x.ogg",
    ])
    assert [x.talker for x in fillets.values()] == ["fillets-ng-data-nl:small-fish", "fillets-ng-data-nl:big-fish",
                                                    "fillets-ng-data-nl:alibaba:pap"]
    assert {x.language for x in fillets.values()} == {"nl"}
    voices = corpus.zero_ad_voice_rule("0ad", ["p.zip!audio/voice/greek/civ/civ_female_build_1.ogg",
                                                "p.zip!audio/voice/latin/civ/civ_male_walk_1.ogg"])
    assert [(x.talker, x.language) for x in voices.values()] == [("0ad:greek:female", "grc"), ("0ad:latin:male", "la")]
    warzone = corpus.warzone_voice_rule("wz", ["b.wz!audio/tutorial/tut1.ogg", "b.wz!audio/memressp/power/p1.ogg"])
    assert [x.talker for x in warzone.values()] == ["warzone:tutorial", "warzone:memressp"]
    bass = corpus.bass_rule("bass", ["sky.dsk!speech/50092.wav", "sky.dsk!speech/54834.wav"])
    assert [x.talker for x in bass.values()] == ["bass:block-0", "bass:block-4"]


# --- building from archives inside packages -----------------------------------------------------


def _deb(directory: Path, package: str, files: dict[str, bytes]) -> Path:
    tree = directory / f"{package}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 2.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n")
    for rel, data in {**files, f"usr/share/doc/{package}/copyright": b"License: test\n"}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    deb = directory / f"{package}_2.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True, capture_output=True)
    return deb


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_build_from_archives_in_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("soundfile")
    from model_export import noise_synth

    cache = tmp_path / "cache"
    debs = cache / "debs"
    debs.mkdir(parents=True)
    lines = {name: encoded(speech_like(11025, 1.5, i), 11025, "MP3")
             for i, name in enumerate(["JOE00011.SB", "JOE00021.SB", "020006P1.SB", "C1A__051.SB"])}
    _deb(debs, "fake-queen", {"usr/share/games/q/queen.1c": make_queen({**lines, "ROOM.PCX": b"x"})})
    zip_bytes = io.BytesIO()
    with zipfile.ZipFile(zip_bytes, "w") as z:
        for i, name in enumerate(["sounds/wind_01.wav", "sounds/bird_02.wav", "voice/hello.wav",
                                  "sounds/click_03.wav"]):
            z.writestr(name, encoded(noise_synth.coloured_noise(RATE, RATE, i, colour="pink"), RATE, "WAV", "PCM_16"))
    _deb(debs, "fake-zip", {"usr/share/games/z/data.zip": zip_bytes.getvalue()})
    _deb(debs, "fake-zip-test", {"usr/share/games/z/data.zip": zip_bytes.getvalue()})
    monkeypatch.setitem(corpus.PACKAGE_SPLITS, "fake-queen", "train")
    monkeypatch.setitem(corpus.PACKAGE_SPLITS, "fake-zip", "train")
    monkeypatch.setitem(corpus.PACKAGE_SPLITS, "fake-zip-test", "test")
    monkeypatch.setitem(corpus.HELD_OUT_NOISE_KINDS, "nature_animal", "val")
    specs = [
        SourceSpec("fake-queen", "fake-queen", "speech", ("usr/share/games/q/queen.1c!*.SB",), "fotaq", "t",
                   container="queen", talker_cap=2),
        SourceSpec("fake-zip", "fake-zip", "noise", ("usr/share/games/z/data.zip!*.wav",), "noise-effect", "t",
                   container="zip"),
        SourceSpec("fake-zip-test", "fake-zip-test", "noise", ("usr/share/games/z/data.zip!*.wav",),
                   "noise-effect", "t", container="zip"),
    ]

    def no_apt(command, cwd=None):
        assert command[0] != "apt-get", "the test must not download"
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True)

    monkeypatch.setattr(corpus, "_run", no_apt)
    c = corpus.build_corpus(cache, RATE, specs, workers=1)
    speech = c.clips("speech")
    assert len(speech) == 4 and {x.split for x in speech} == {"train"}
    assert {x.talker for x in speech} == {"fotaq:joe", "fotaq:person-02", "fotaq:cutaways"}
    assert all(x.bandwidth_hz is not None and x.bandwidth_hz <= 11025 / 2 for x in speech)
    assert speech[0].files[0].startswith("usr/share/games/q/queen.1c!")
    noise = c.clips("noise", "train")
    assert sorted(x.noise_kind for x in noise) == ["keyboard_mouse", "wind_rain_water"]
    # Held out of training only: the test package keeps its animal.
    assert sorted(x.noise_kind for x in c.clips("noise", "test")) == ["keyboard_mouse", "nature_animal",
                                                                      "wind_rain_water"]
    assert all(x.bandwidth_hz is not None and x.bandwidth_hz > 7000 for x in noise)
    assert c.manifest["sources"]["fake-zip"]["dropped"] == {"held_out_kind": 1, "speech_excluded": 1}
    assert (cache / "extracted" / "fake-zip" / "2.0-1" / "usr/share/games/z/data.zip").exists()
    assert (cache / "licences" / "fake-zip.copyright").read_text() == "License: test\n"
    summary = c.split_summary()
    assert summary["train"]["talkers"] == 3 and summary["train"]["talkers_conservative"] == 2
    assert summary["train"]["languages"] == {"en": pytest.approx(c.hours("speech", "train"), abs=1e-3)}
    assert set(summary["train"]["noise_kinds"]) == {"keyboard_mouse", "wind_rain_water"}
    assert summary["train"]["speech_packages"] == ["fake-queen"] and summary["train"]["noise_packages"] == ["fake-zip"]
    assert summary["shared"] == {"packages": [], "talkers": []}
    assert summary["test"]["noise_packages"] == ["fake-zip-test"] and summary["test"]["speech_hours"] == 0
    # Built again: cached, and the extracted archives are reused.
    monkeypatch.setattr(corpus, "build_source", lambda *a, **k: pytest.fail("rebuilt a cached source"))
    assert corpus.build_corpus(cache, RATE, specs, workers=1).summary() == c.summary()
