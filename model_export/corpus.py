"""Real speech and noise for training, built from Debian packages and cached as float32 arrays.

``python -m model_export.corpus build [--cache DIR] [--rate 16000]`` downloads the
source packages with ``apt-get download`` (running ``apt-get update`` once if
that fails), reads the wanted members straight out of each ``.deb`` (``dpkg-deb
--fsys-tarfile``), decodes them (wav/flac/ogg/opus with ``soundfile``; raw
G.722 with ``g722``), mixes them to mono, resamples them to the corpus rate with
``scipy.signal.resample_poly`` and stores one float32 ``.npy`` per source plus
``manifest.json``. A source already built with the same settings is skipped, so
the command is idempotent; ``--force`` rebuilds. ``python -m model_export.corpus
summary`` prints the hours per source and split.

Cache layout (default ``$XDG_CACHE_HOME/quietmic/corpus``, else
``~/.cache/quietmic/corpus``)::

    debs/<package>_<version>_all.deb     downloaded packages (kept: a rebuild needs no network)
    licences/<package>.copyright         each package's Debian copyright file
    <rate>/audio/<source>.npy            every kept clip of a source, concatenated (float32 mono)
    <rate>/manifest.json                 per source: package, version, licence, filter counts;
                                         per clip: offset/length, split, talker, group,
                                         level, noise floor and SNR estimates, files

Clean-speech filter
-------------------
Home recordings among the "clean" speech carry hiss, hum and room noise, and the
model learns to keep whatever its targets contain. Each speech file is measured
on 20 ms frames (10 ms hop): the *speech level* is the 95th percentile of the
frame power, the *noise floor* the 5th percentile of the frames that are not
digital silence, and the *estimated SNR* their difference. A file is kept when
the estimated SNR is at least :data:`MIN_SNR_DB` and it is not clipped: more than
:data:`CLIP_MAX_FRACTION` of its samples (and more than :data:`CLIP_MIN_SAMPLES`)
lie in flat tops, runs of :data:`CLIP_RUN` or more samples at or above
:data:`CLIP_LEVEL` of full scale, at the file's own rate. Leading and trailing
silence is trimmed to :data:`TRIM_PAD_SECONDS`. Noise files are only
trimmed of digital silence. The manifest counts kept and dropped files per source
and reason.

Splits (train / val / test)
---------------------------
Splits are assigned to talkers and to groups of files, never to random clips, by
fixed rules, so that a rebuild gives the same assignment and the test split (used
to build the deterministic synthetic test set) never shares a talker or a noise
file group with train or val:

* ``festvox-ru`` has a single talker, so it is split by sentence number: the
  first 80 % of the sentences (in number order) train, the next 10 % val, the
  last 10 % test. This is the only source whose talker is in every split.
* ``asterisk-core-sounds-*``: by talker (the sound directory). ``en_US_f_Allison``
  and ``es_MX_f_Allison`` are the same woman and both go to train;
  ``ru_RU_f_IvrvoiceRU`` is a held-out test talker (:data:`ASTERISK_TALKERS`).
* ``tuxpaint-stamps-default``, ``klettres-data``, ``ktuberling-data``: one voice
  per language, so by language, through one table shared by the three packages
  (:data:`LANGUAGE_SPLITS`, languages reduced to their base code: ``en_GB`` ->
  ``en``, ``sr@latin`` -> ``sr``), in case one volunteer recorded for several of
  them. Languages not in the table are train.
* Noise sources: files are put into groups (a music track, a sample category
  such as ``drum`` or ``bassloops``, a sound-effect family such as ``orc-hit``
  without its number); groups are ordered by the SHA-256 of ``source:group``, the
  first :data:`NOISE_TEST_FRACTION` of them (at least one when there are three or
  more groups) go to test, the next :data:`NOISE_VAL_FRACTION` to val, the rest
  to train.

Reserved evaluation sources (:data:`RESERVED_PACKAGES` and anything under a
``shared/eval`` directory) are refused with :class:`ReservedSourceError` wherever
a source is configured, built or loaded.

Python API: :func:`build_corpus`, :func:`load_corpus` -> :class:`Corpus`
(``speech(split)``, ``noise(split)``, ``clips(...)``, ``weights(...)``,
``speech_by_talker(split)``, ``summary()``).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import logging
import math
import os
import re
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import numpy as np

from model_export.errors import ExportError

LOG = logging.getLogger("quietmic.corpus")

CORPUS_FORMAT = 1
"""Version of the cache layout and of the rules below; a change rebuilds every source."""

DEFAULT_RATE = 16000
"""Sample rate of the corpus in Hz."""

SPLITS = ("train", "val", "test")
KINDS = ("speech", "noise")

RESERVED_PACKAGES = (
    "asterisk-core-sounds-fr-*",
    "asterisk-core-sounds-it-*",
    "asterisk-prompt-it-menardi-wav",
    "hyperrogue-music",
    "bucklespring-data",
    "sound-theme-freedesktop",
)
"""Packages reserved for evaluation (shell patterns): never train, validate or tune on them."""

RESERVED_PATH_PARTS = ("shared", "eval")
"""A path with these consecutive components (``.../shared/eval/...``) holds reserved evaluation audio."""

# --- clip measurement and filter -------------------------------------------------------------

FRAME_SECONDS = 0.02
"""Frame length of the level measurements."""

HOP_SECONDS = 0.01
"""Hop of the level measurements."""

POWER_FLOOR = 1e-12
"""Added to frame power before taking logarithms (-120 dB)."""

DIGITAL_SILENCE_DB = -100.0
"""Frames below this power (dBFS) are digital silence and do not count for the noise floor."""

LEVEL_PERCENTILE = 95.0
"""Percentile of frame power taken as the speech level."""

FLOOR_PERCENTILE = 5.0
"""Percentile of (non-silent) frame power taken as the noise floor."""

MIN_SNR_DB = 30.0
"""Speech files whose estimated SNR (speech level minus noise floor) is lower are dropped."""

CLIP_LEVEL = 0.999
"""Samples at or above this magnitude (full scale 1.0) count as clipped."""

CLIP_RUN = 3
"""Only runs of at least this many consecutive samples at or above :data:`CLIP_LEVEL` count (flat tops)."""

CLIP_MAX_FRACTION = 1e-4
"""A file is clipped when more than this fraction of its samples are in such runs ..."""

CLIP_MIN_SAMPLES = 5
"""... and more than this many (a peak-normalised file touches full scale without flat tops)."""

ACTIVE_BELOW_LEVEL_DB = 40.0
"""Frames within this many dB of the speech level count as active (trimming, active level)."""

TRIM_PAD_SECONDS = 0.15
"""Silence kept before the first and after the last active frame of a speech file."""

MIN_SPEECH_SECONDS = 0.3
"""Speech files shorter than this after trimming are dropped."""

MIN_NOISE_SECONDS = 0.05
"""Noise files shorter than this after trimming are dropped."""

NOISE_SILENCE_DB = -80.0
"""Leading and trailing frames of a noise file quieter than this (dBFS) are trimmed."""

CONCAT_SECONDS = 3.0
"""Sources of short words or letters are concatenated, per talker, into units of at least this length."""

# --- splits ----------------------------------------------------------------------------------

FESTVOX_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
"""Train/val/test fractions of festvox-ru's sentences, in sentence-number order."""

ASTERISK_TALKERS = {
    "en_US_f_Allison": ("allison", "train"),
    "es_MX_f_Allison": ("allison", "train"),
    "ru_RU_f_IvrvoiceRU": ("ivrvoice-ru", "test"),
}
"""Asterisk sound directory -> (talker, split). Allison recorded both English and Spanish."""

LANGUAGE_SPLITS = {
    "ro": "test",
    "nl": "test",
    "hu": "test",
    "sl": "test",
    "wa": "test",
    "bg": "val",
    "lt": "val",
    "he": "val",
    "sv": "val",
    "fi": "val",
}
"""Language -> split for the one-voice-per-language sources (tuxpaint, klettres, ktuberling).
Languages not listed are train."""

NOISE_TEST_FRACTION = 0.1
"""Fraction of a noise source's file groups held out for test."""

NOISE_VAL_FRACTION = 0.1
"""Fraction of a noise source's file groups held out for validation."""


class CorpusError(ExportError):
    """The corpus cannot be built or loaded."""


class ReservedSourceError(CorpusError):
    """A source reserved for evaluation was configured or found."""


def check_not_reserved(package: str) -> None:
    """Raise :class:`ReservedSourceError` if ``package`` is reserved for evaluation."""
    name = package.strip().lower()
    for pattern in RESERVED_PACKAGES:
        if fnmatch.fnmatchcase(name, pattern):
            raise ReservedSourceError(
                f"package {package!r} is reserved for evaluation (matches {pattern!r}); "
                "it must never be used for training, validation or tuning"
            )


def check_path_not_reserved(path: str | os.PathLike[str]) -> None:
    """Raise :class:`ReservedSourceError` if ``path`` lies under a ``shared/eval`` directory."""
    parts = Path(os.path.abspath(os.fspath(path))).parts
    resolved = Path(os.path.realpath(os.fspath(path))).parts
    n = len(RESERVED_PATH_PARTS)
    for candidate in (parts, resolved):
        for i in range(len(candidate) - n + 1):
            if tuple(p.lower() for p in candidate[i : i + n]) == RESERVED_PATH_PARTS:
                raise ReservedSourceError(
                    f"{path} lies under {'/'.join(RESERVED_PATH_PARTS)}/, which holds reserved "
                    "evaluation audio; it must never be used for training, validation or tuning"
                )


# --- measurements ----------------------------------------------------------------------------


def frame_power_db(x: np.ndarray, rate: int) -> np.ndarray:
    """Power (dBFS) of 20 ms frames at a 10 ms hop; one frame for shorter signals."""
    n = max(1, int(round(FRAME_SECONDS * rate)))
    hop = max(1, int(round(HOP_SECONDS * rate)))
    x = np.asarray(x, dtype=np.float64)
    if len(x) < n:
        return np.array([10.0 * np.log10(np.mean(x**2) + POWER_FLOOR)]) if len(x) else np.array([-120.0])
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + POWER_FLOOR)


@dataclass(frozen=True)
class ClipStats:
    """Level measurements of one clip (dBFS for levels, dB for the SNR)."""

    level_dbfs: float
    """Speech level: the 95th percentile of frame power."""
    active_level_dbfs: float
    """Mean power of the active frames (within 40 dB of the speech level)."""
    noise_floor_dbfs: float
    """The 5th percentile of the power of the frames that are not digital silence."""
    snr_db: float
    """``level_dbfs - noise_floor_dbfs``."""


def measure(x: np.ndarray, rate: int) -> ClipStats:
    """Speech level, noise floor and estimated SNR of ``x`` (see the module docstring)."""
    db = frame_power_db(x, rate)
    level = float(np.percentile(db, LEVEL_PERCENTILE))
    live = db[db > DIGITAL_SILENCE_DB]
    floor = float(np.percentile(live, FLOOR_PERCENTILE)) if len(live) else -120.0
    active = db[db >= level - ACTIVE_BELOW_LEVEL_DB]
    active_level = float(10.0 * np.log10(np.mean(10.0 ** (active / 10.0)))) if len(active) else -120.0
    return ClipStats(round(level, 2), round(active_level, 2), round(floor, 2), round(level - floor, 2))


def is_clipped(x: np.ndarray) -> bool:
    """True when ``x`` (at its original rate) has too many flat-topped samples at full scale."""
    hot = np.concatenate([[False], np.abs(x) >= CLIP_LEVEL, [False]])
    edges = np.flatnonzero(hot[1:] != hot[:-1])
    runs = edges[1::2] - edges[::2]
    count = int(runs[runs >= CLIP_RUN].sum())
    return count > max(CLIP_MIN_SAMPLES, CLIP_MAX_FRACTION * len(x))


def keep_speech(x: np.ndarray, rate: int, min_snr_db: float = MIN_SNR_DB) -> tuple[bool, str, ClipStats]:
    """Filter decision for one speech file: ``(keep, reason, stats)``; reason is '' when kept.

    ``x`` is at its original rate (the clipping check needs the original samples).
    """
    stats = measure(x, rate)
    if is_clipped(x):
        return False, "clipped", stats
    if stats.snr_db < min_snr_db:
        return False, "low_snr", stats
    return True, "", stats


def trim(x: np.ndarray, rate: int, threshold_db: float, pad_seconds: float) -> np.ndarray:
    """``x`` without leading and trailing frames below ``threshold_db``, keeping ``pad_seconds``."""
    db = frame_power_db(x, rate)
    hop = max(1, int(round(HOP_SECONDS * rate)))
    n = max(1, int(round(FRAME_SECONDS * rate)))
    active = np.flatnonzero(db >= threshold_db)
    if len(active) == 0:
        return x[:0]
    pad = int(round(pad_seconds * rate))
    start = max(0, active[0] * hop - pad)
    stop = min(len(x), active[-1] * hop + n + pad)
    return x[start:stop]


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``x`` resampled from ``from_rate`` to ``to_rate`` Hz (polyphase), float32."""
    if from_rate == to_rate:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(np.asarray(x, dtype=np.float64), to_rate // g, from_rate // g).astype(np.float32)


# --- decoding --------------------------------------------------------------------------------

G722_RATE = 16000
G722_BITRATE = 64000


def decode(name: str, data: bytes) -> tuple[np.ndarray, int]:
    """Decode a file's bytes to mono float32 in [-1, 1] and its sample rate.

    ``.g722`` is raw G.722 at 64 kbit/s (16 kHz); everything else goes to
    libsndfile (wav, flac, ogg vorbis/opus). Channels are averaged.
    """
    if name.lower().endswith(".g722"):
        try:
            import G722
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CorpusError("decoding G.722 needs the 'g722' package: pip install g722") from exc
        pcm = np.asarray(G722.G722(G722_RATE, G722_BITRATE).decode(data), dtype=np.float32)
        return pcm / 32768.0, G722_RATE
    try:
        import soundfile
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CorpusError("decoding audio files needs the 'soundfile' package: pip install soundfile") from exc
    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(rate)


# --- sources and split rules -----------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """Where one file goes: talker (speech) or None, file group, split."""

    talker: str | None
    group: str
    split: str


SplitRule = Callable[[str, Sequence[str]], dict[str, Assignment]]
"""``rule(source_name, member_paths) -> {path: Assignment}``."""


def _hash_unit(text: str) -> float:
    """A deterministic number in [0, 1) from ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def base_language(code: str) -> str:
    """``en_GB`` -> ``en``, ``sr@latin`` -> ``sr``, ``zh_tw`` -> ``zh``."""
    return re.split(r"[_@\-.]", code.strip().lower())[0] or "en"


def language_split(language: str) -> str:
    """Split of a one-voice-per-language talker (:data:`LANGUAGE_SPLITS`, default train)."""
    return LANGUAGE_SPLITS.get(base_language(language), "train")


def rank_split(source: str, groups: Iterable[str]) -> dict[str, str]:
    """Groups -> split: ordered by SHA-256 of ``source:group``, the first ones test, then val.

    With three or more groups at least one goes to each of test and val.
    """
    ordered = sorted(set(groups), key=lambda g: (hashlib.sha256(f"{source}:{g}".encode()).hexdigest(), g))
    n = len(ordered)
    n_test = max(1, round(NOISE_TEST_FRACTION * n)) if n >= 3 else 0
    n_val = max(1, round(NOISE_VAL_FRACTION * n)) if n >= 3 else 0
    out = {}
    for i, g in enumerate(ordered):
        out[g] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def festvox_rule(source: str, paths: Sequence[str]) -> dict[str, Assignment]:
    """Single talker: split by sentence number ranges (:data:`FESTVOX_SPLIT_FRACTIONS`)."""

    def number(p: str) -> tuple[int, str]:
        m = re.search(r"(\d+)\D*$", PurePosixPath(p).stem)
        return (int(m.group(1)) if m else -1, p)

    ordered = sorted(paths, key=number)
    n = len(ordered)
    train_end = int(round(FESTVOX_SPLIT_FRACTIONS[0] * n))
    val_end = int(round((FESTVOX_SPLIT_FRACTIONS[0] + FESTVOX_SPLIT_FRACTIONS[1]) * n))
    out = {}
    for i, p in enumerate(ordered):
        split = "train" if i < train_end else "val" if i < val_end else "test"
        out[p] = Assignment(f"{source}:msu_ru_nsh", f"sentences-{split}", split)
    return out


def asterisk_rule(source: str, paths: Sequence[str]) -> dict[str, Assignment]:
    """By talker: the directory under ``sounds/`` (:data:`ASTERISK_TALKERS`)."""
    out = {}
    for p in paths:
        parts = PurePosixPath(p).parts
        directory = parts[parts.index("sounds") + 1] if "sounds" in parts else parts[-2]
        if directory in ASTERISK_TALKERS:
            talker, split = ASTERISK_TALKERS[directory]
        else:  # an unknown talker: a stable hash-based split
            talker = directory.lower()
            u = _hash_unit(f"asterisk:{talker}")
            split = "train" if u < 0.8 else "val" if u < 0.9 else "test"
        out[p] = Assignment(f"asterisk:{talker}", f"asterisk:{talker}", split)
    return out


def _language_rule(language_of: Callable[[str], str]) -> SplitRule:
    def rule(source: str, paths: Sequence[str]) -> dict[str, Assignment]:
        out = {}
        for p in paths:
            language = base_language(language_of(p))
            talker = f"{source}:{language}"
            out[p] = Assignment(talker, talker, language_split(language))
        return out

    return rule


def tuxpaint_language(path: str) -> str:
    """Language of a tuxpaint description: ``NAME_desc_LANG.ogg`` (no suffix: English)."""
    m = re.search(r"_desc(?:_([A-Za-z@]+(?:_[A-Za-z]+)?))?(?:\.ogg)+$", PurePosixPath(path).name)
    return (m.group(1) if m and m.group(1) else "en").lower()


def _directory_after(anchor: str) -> Callable[[str], str]:
    def language(path: str) -> str:
        parts = PurePosixPath(path).parts
        return parts[parts.index(anchor) + 1] if anchor in parts else "unknown"

    return language


def _noise_rule(group_of: Callable[[str], str]) -> SplitRule:
    def rule(source: str, paths: Sequence[str]) -> dict[str, Assignment]:
        groups = {p: group_of(p) for p in paths}
        splits = rank_split(source, groups.values())
        return {p: Assignment(None, g, splits[g]) for p, g in groups.items()}

    return rule


def _stem(path: str) -> str:
    return PurePosixPath(path).stem


def _prefix(path: str) -> str:
    return PurePosixPath(path).stem.split("_")[0]


def _parent(path: str) -> str:
    return PurePosixPath(path).parent.name


def _effect_family(path: str) -> str:
    """``orc-hit-3.ogg`` -> ``orc-hit``; ``bow-miss.ogg`` -> ``bow``; ambient files keep their name."""
    p = PurePosixPath(path)
    if p.parent.name in ("ambient", "horn-signals"):
        return f"{p.parent.name}-{p.stem}"
    stem = re.sub(r"[-_]?\d+$", "", p.stem)
    stem = re.sub(r"-miss$", "", stem)
    return stem


def _rules_signature() -> list:
    """The split tables and filter settings: part of every source's fingerprint."""
    return [
        sorted(LANGUAGE_SPLITS.items()), sorted(ASTERISK_TALKERS.items()), FESTVOX_SPLIT_FRACTIONS,
        NOISE_TEST_FRACTION, NOISE_VAL_FRACTION, LEVEL_PERCENTILE, FLOOR_PERCENTILE, DIGITAL_SILENCE_DB,
        CLIP_LEVEL, CLIP_RUN, CLIP_MAX_FRACTION, CLIP_MIN_SAMPLES, ACTIVE_BELOW_LEVEL_DB, TRIM_PAD_SECONDS,
        MIN_SPEECH_SECONDS, MIN_NOISE_SECONDS, NOISE_SILENCE_DB, CONCAT_SECONDS,
    ]


@dataclass(frozen=True)
class SourceSpec:
    """One corpus source: a Debian package and how to read, filter and split it."""

    name: str
    package: str
    kind: str
    patterns: tuple[str, ...]
    """Shell patterns (``*`` crosses ``/``) of the wanted members inside the package."""
    rule: str
    """Name of the split rule in :data:`SPLIT_RULES`."""
    licence: str
    exclude: str | None = None
    """Regular expression on the member's file name: matching files are skipped."""
    concat: bool = False
    """Concatenate the kept files per talker into units of :data:`CONCAT_SECONDS`."""
    max_hours: tuple[tuple[str, float], ...] = ()
    """Per split, stop adding files (in hash order) once this many hours are kept."""
    description: str = ""

    def __post_init__(self) -> None:
        check_not_reserved(self.package)
        check_not_reserved(self.name)
        if self.kind not in KINDS:
            raise CorpusError(f"source {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.rule not in SPLIT_RULES:
            raise CorpusError(f"source {self.name}: unknown split rule {self.rule!r}")

    def fingerprint(self, rate: int, min_snr_db: float) -> str:
        """Hash of everything that decides the source's cached content."""
        text = json.dumps(
            [CORPUS_FORMAT, rate, min_snr_db if self.kind == "speech" else None, self.name, self.package,
             self.kind, self.patterns, self.rule, self.exclude, self.concat, self.max_hours, _rules_signature()],
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


SPLIT_RULES: dict[str, SplitRule] = {
    "festvox": festvox_rule,
    "asterisk": asterisk_rule,
    "tuxpaint": _language_rule(tuxpaint_language),
    "klettres": _language_rule(_directory_after("klettres")),
    "ktuberling": _language_rule(_directory_after("sounds")),
    "noise-file": _noise_rule(_stem),
    "noise-prefix": _noise_rule(_prefix),
    "noise-directory": _noise_rule(_parent),
    "noise-effect": _noise_rule(_effect_family),
}

_VOCAL_EFFECTS = (
    r"^(human|dwarf|elf|orc|goblin|ogre|troll|mermaid|mermen|naga|lich|ghoul|wose|yeti|zombie)-"
    r"|^(groan|ugg|wail|chat)"
)
"""Wesnoth effects that are human-like vocalisations (not noise to remove) or UI chimes."""

SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("festvox-ru", "festvox-ru", "speech", ("usr/share/festival/voices/*/wav/*.wav",),
               "festvox", "BSD-like (festvox-ru copyright)", description="studio sentences, one male talker"),
    SourceSpec("asterisk-core-sounds-en-g722", "asterisk-core-sounds-en-g722", "speech",
               ("usr/share/asterisk/sounds/*.g722",), "asterisk", "CC-BY-SA-3.0"),
    SourceSpec("asterisk-core-sounds-es-g722", "asterisk-core-sounds-es-g722", "speech",
               ("usr/share/asterisk/sounds/*.g722",), "asterisk", "CC-BY-SA-3.0"),
    SourceSpec("asterisk-core-sounds-ru-g722", "asterisk-core-sounds-ru-g722", "speech",
               ("usr/share/asterisk/sounds/*.g722",), "asterisk", "CC-BY-SA-3.0"),
    SourceSpec("tuxpaint-stamps-default", "tuxpaint-stamps-default", "speech",
               ("usr/share/tuxpaint/stamps/*_desc*.ogg",), "tuxpaint", "GPL-2",
               description="short spoken descriptions, one voice per language"),
    SourceSpec("klettres-data", "klettres-data", "speech", ("usr/share/klettres/*.ogg",), "klettres",
               "GPL-2+", concat=True, description="letters and syllables, one voice per language"),
    SourceSpec("ktuberling-data", "ktuberling-data", "speech",
               ("usr/share/ktuberling/sounds/*.ogg", "usr/share/ktuberling/sounds/*.wav",
                "usr/share/ktuberling/sounds/*.opus"), "ktuberling", "GPL-2+", concat=True,
               description="single words, one voice per language"),
    SourceSpec("drascula-music", "drascula-music", "noise", ("usr/share/scummvm/drascula/audio/*.ogg",),
               "noise-file", "Drascula-License (freeware, redistributable)",
               max_hours=(("train", 2.0), ("val", 0.25), ("test", 0.25)), description="game music (0.8 h)"),
    SourceSpec("asterisk-moh-opsound-g722", "asterisk-moh-opsound-g722", "noise",
               ("usr/share/asterisk/moh/*.g722",), "noise-file", "CC-BY-SA-3.0 (opsound.org)",
               description="music on hold"),
    SourceSpec("sonic-pi-samples", "sonic-pi-samples", "noise", ("usr/share/sonic-pi/samples/*.flac",),
               "noise-prefix", "CC0 / CC-BY (sonic-pi-samples copyright)",
               exclude=r"choir|voxy|robot|burp", description="ambient loops, percussion, effects"),
    SourceSpec("lmms-common", "lmms-common", "noise", ("usr/share/lmms/samples/*.ogg",), "noise-directory",
               "GPL-2+ (lmms-common copyright)", exclude=r"choir|chorus|breath",
               description="drums, beats, instruments, effects"),
    SourceSpec("wesnoth-1.16-data", "wesnoth-1.16-data", "noise",
               ("usr/share/games/wesnoth/*/sounds/*.ogg", "usr/share/games/wesnoth/*/sounds/*.wav"),
               "noise-effect", "GPL-2+", exclude=_VOCAL_EFFECTS,
               description="sound effects: weapons, impacts, animals, fire, water, ambience"),
)
"""The sources :func:`build_corpus` uses by default."""


# --- cache and manifest ----------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/quietmic/corpus`` (``~/.cache/quietmic/corpus`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "quietmic" / "corpus"


def _rate_dir(cache_dir: Path, rate: int) -> Path:
    return cache_dir / str(rate)


def _manifest_path(cache_dir: Path, rate: int) -> Path:
    return _rate_dir(cache_dir, rate) / "manifest.json"


def _empty_manifest(rate: int, min_snr_db: float) -> dict:
    return {"format": CORPUS_FORMAT, "sample_rate": rate, "min_snr_db": min_snr_db, "sources": {}}


def _read_manifest(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"cannot read the corpus manifest {path}: {exc}; delete it and rebuild") from exc


def _write_atomic(path: Path, writer: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_manifest(path: Path, manifest: dict) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True)))


def _save_npy(path: Path, audio: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, audio.astype(np.float32, copy=False))

    _write_atomic(path, write)


# --- Debian packages -------------------------------------------------------------------------


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    LOG.debug("running %s", " ".join(command))
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise CorpusError(
            f"{command[0]} is not available: building the corpus needs a Debian-based system "
            "with apt-get and dpkg-deb"
        ) from exc


def fetch_deb(package: str, debs_dir: Path) -> Path:
    """The ``.deb`` of ``package`` in ``debs_dir``, downloaded with ``apt-get download`` if missing.

    When the download fails (typically: no package lists yet) ``apt-get update``
    is run once and the download retried.
    """
    check_not_reserved(package)
    debs_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(debs_dir.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    LOG.info("downloading %s", package)
    result = _run(["apt-get", "download", package], cwd=debs_dir)
    if result.returncode != 0:
        LOG.info("apt-get download %s failed (%s); running apt-get update", package, result.stderr.strip()[-200:])
        update = _run(["apt-get", "update"])
        if update.returncode != 0:
            raise CorpusError(
                f"apt-get update failed ({update.stderr.strip()[-300:]}); run it as root, then rebuild"
            )
        result = _run(["apt-get", "download", package], cwd=debs_dir)
        if result.returncode != 0:
            raise CorpusError(f"apt-get download {package} failed: {result.stderr.strip()[-300:]}")
    found = sorted(debs_dir.glob(f"{package}_*.deb"))
    if not found:
        raise CorpusError(f"apt-get download {package} reported success but wrote no {package}_*.deb")
    return found[-1]


def deb_version(deb: Path) -> str:
    """The ``Version`` field of a ``.deb``."""
    result = _run(["dpkg-deb", "-f", str(deb), "Version"])
    if result.returncode != 0:
        raise CorpusError(f"cannot read {deb}: {result.stderr.strip()}")
    return result.stdout.strip()


def read_members(deb: Path, patterns: Sequence[str], extra: Sequence[str] = ()) -> dict[str, bytes]:
    """Bytes of the regular files in ``deb`` matching ``patterns`` or named in ``extra``.

    Streams ``dpkg-deb --fsys-tarfile`` without extracting anything to disk.
    """
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out: dict[str, bytes] = {}
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name[2:] if member.name.startswith("./") else member.name.lstrip("/")
                if name in extra or any(fnmatch.fnmatchcase(name, p) for p in patterns):
                    fh = tar.extractfile(member)
                    if fh is not None:
                        out[name] = fh.read()
    finally:
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        code = proc.wait()
    if code != 0:
        raise CorpusError(f"dpkg-deb --fsys-tarfile {deb} failed: {stderr.strip()}; delete it and rebuild")
    return out


# --- processing ------------------------------------------------------------------------------


def _process_file(job: tuple[str, bytes, str, int, float]) -> dict:
    """Decode, measure, filter, resample and trim one file (runs in a worker process)."""
    name, data, kind, rate, min_snr_db = job
    try:
        x, file_rate = decode(name, data)
    except Exception as exc:  # a broken file is dropped, not fatal
        return {"name": name, "reason": "undecodable", "error": str(exc)}
    if len(x) == 0 or not np.all(np.isfinite(x)):
        return {"name": name, "reason": "undecodable", "error": "empty or non-finite"}
    if kind == "speech":
        keep, reason, stats = keep_speech(x, file_rate, min_snr_db)
        if not keep:
            return {"name": name, "reason": reason, "stats": stats.__dict__}
        y = resample(x, file_rate, rate)
        y = trim(y, rate, stats.level_dbfs - ACTIVE_BELOW_LEVEL_DB, TRIM_PAD_SECONDS)
        if len(y) < MIN_SPEECH_SECONDS * rate:
            return {"name": name, "reason": "too_short", "stats": stats.__dict__}
    else:
        y = resample(x, file_rate, rate)
        y = trim(y, rate, NOISE_SILENCE_DB, 0.0)
        if len(y) < MIN_NOISE_SECONDS * rate:
            return {"name": name, "reason": "silent_or_short"}
        stats = measure(y, rate)
    # Speech keeps the measurements the filter decided on (the whole file at its own rate).
    return {"name": name, "reason": "", "audio": y.astype(np.float32), "stats": stats.__dict__}


def _map(jobs: list, workers: int) -> Iterable[dict]:
    if workers <= 1 or len(jobs) < 8:
        return map(_process_file, jobs)
    executor = ProcessPoolExecutor(max_workers=workers)
    try:
        return list(executor.map(_process_file, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    finally:
        executor.shutdown()


def _ordered_for_caps(source: str, names: Sequence[str]) -> list[str]:
    return sorted(names, key=lambda n: hashlib.sha256(f"{source}:{n}".encode()).hexdigest())


def build_source(
    spec: SourceSpec,
    cache_dir: Path,
    rate: int = DEFAULT_RATE,
    min_snr_db: float = MIN_SNR_DB,
    workers: int | None = None,
) -> dict:
    """Build one source into ``<cache>/<rate>/audio/<name>.npy``; return its manifest entry."""
    check_not_reserved(spec.package)
    started = time.monotonic()
    deb = fetch_deb(spec.package, cache_dir / "debs")
    version = deb_version(deb)
    copyright_name = f"usr/share/doc/{spec.package}/copyright"
    members = read_members(deb, spec.patterns, extra=(copyright_name,))
    if copyright_name in members:
        licence_path = cache_dir / "licences" / f"{spec.package}.copyright"
        licence_path.parent.mkdir(parents=True, exist_ok=True)
        licence_path.write_bytes(members.pop(copyright_name))
    dropped: dict[str, int] = {}
    exclude = re.compile(spec.exclude) if spec.exclude else None
    names = []
    seen_content: set[str] = set()
    for name in sorted(members):
        if exclude and exclude.search(PurePosixPath(name).name):
            dropped["excluded"] = dropped.get("excluded", 0) + 1
            continue
        digest = hashlib.sha1(members[name]).hexdigest()
        if digest in seen_content:
            dropped["duplicate"] = dropped.get("duplicate", 0) + 1
            continue
        seen_content.add(digest)
        names.append(name)
    if not names:
        raise CorpusError(f"{spec.package} {version} holds no files matching {spec.patterns}")
    assignments = SPLIT_RULES[spec.rule](spec.name, names)
    LOG.info("%s %s: %d files to decode", spec.package, version, len(names))

    caps = dict(spec.max_hours)
    ordered = _ordered_for_caps(spec.name, names) if caps else names
    jobs = [(n, members[n], spec.kind, rate, min_snr_db) for n in ordered]
    workers = workers if workers is not None else (os.cpu_count() or 1)
    results: dict[str, dict] = {}
    if caps:  # decode in hash order, in batches, until each capped split is full
        hours = {s: 0.0 for s in SPLITS}
        batch = max(2, 2 * workers)
        for i in range(0, len(jobs), batch):
            pending = [j for j in jobs[i : i + batch]
                       if hours[assignments[j[0]].split] < caps.get(assignments[j[0]].split, math.inf)]
            for r in _map(pending, workers):
                results[r["name"]] = r
                if not r["reason"]:
                    hours[assignments[r["name"]].split] += len(r["audio"]) / rate / 3600
            skipped = sum(1 for j in jobs[i : i + batch] if j[0] not in results)
            if skipped:
                dropped["over_hours_cap"] = dropped.get("over_hours_cap", 0) + skipped
    else:
        for r in _map(jobs, workers):
            results[r["name"]] = r
    del members, jobs

    kept_files = 0
    for name in names:
        r = results.get(name)
        if r is None:
            continue
        if r["reason"]:
            dropped[r["reason"]] = dropped.get(r["reason"], 0) + 1
        else:
            kept_files += 1

    # Units: one per kept file, or per-talker concatenations of kept files.
    units: list[tuple[list[str], np.ndarray]] = []
    kept_names = [n for n in names if n in results and not results[n]["reason"]]
    if spec.concat:
        by_talker: dict[str, list[str]] = {}
        for n in kept_names:
            by_talker.setdefault(assignments[n].talker or assignments[n].group, []).append(n)
        for talker in sorted(by_talker):
            groups: list[list[str]] = [[]]
            length = 0
            for n in by_talker[talker]:
                if length >= CONCAT_SECONDS * rate:
                    groups.append([])
                    length = 0
                groups[-1].append(n)
                length += len(results[n]["audio"])
            if len(groups) > 1 and length < CONCAT_SECONDS * rate / 2:  # a short remainder joins the previous unit
                groups[-2].extend(groups.pop())
            units.extend((g, np.concatenate([results[k]["audio"] for k in g])) for g in groups)
    else:
        units = [([n], results[n]["audio"]) for n in kept_names]

    clips = []
    offset = 0
    for files, audio in units:
        a = assignments[files[0]]
        stats = measure(audio, rate) if len(files) > 1 else ClipStats(**results[files[0]]["stats"])
        clips.append({
            "id": f"{spec.name}:{PurePosixPath(files[0]).stem}" + (f"+{len(files) - 1}" if len(files) > 1 else ""),
            "files": files,
            "talker": a.talker,
            "group": a.group,
            "split": a.split,
            "offset": offset,
            "length": int(len(audio)),
            "seconds": round(len(audio) / rate, 3),
            **stats.__dict__,
        })
        offset += len(audio)
    audio_all = np.concatenate([u[1] for u in units]) if units else np.zeros(0, np.float32)
    audio_rel = f"audio/{spec.name}.npy"
    _save_npy(_rate_dir(cache_dir, rate) / audio_rel, audio_all)
    entry = {
        "package": spec.package,
        "version": version,
        "kind": spec.kind,
        "licence": spec.licence,
        "description": spec.description,
        "audio": audio_rel,
        "samples": int(len(audio_all)),
        "fingerprint": spec.fingerprint(rate, min_snr_db),
        "files_seen": len(names) + dropped.get("excluded", 0) + dropped.get("duplicate", 0),
        "files_kept": kept_files,
        "dropped": dict(sorted(dropped.items())),
        "build_seconds": round(time.monotonic() - started, 1),
        "clips": clips,
    }
    hours = {s: round(sum(c["seconds"] for c in clips if c["split"] == s) / 3600, 3) for s in SPLITS}
    LOG.info("%s: kept %d of %d files (dropped %s), hours %s, %.0f s", spec.name, kept_files,
             entry["files_seen"], entry["dropped"] or "none", hours, entry["build_seconds"])
    return entry


def build_corpus(
    cache_dir: str | os.PathLike[str] | None = None,
    rate: int = DEFAULT_RATE,
    sources: Sequence[SourceSpec] | None = None,
    force: bool = False,
    min_snr_db: float = MIN_SNR_DB,
    workers: int | None = None,
) -> Corpus:
    """Build (or complete) the corpus cache and load it.

    Sources whose manifest entry has the same fingerprint and whose audio file
    is present are skipped unless ``force``. Reserved sources raise
    :class:`ReservedSourceError` before anything is downloaded.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    check_path_not_reserved(cache)
    specs = list(SOURCES if sources is None else sources)
    for spec in specs:
        check_not_reserved(spec.package)
        check_not_reserved(spec.name)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise CorpusError(f"source names must be unique: {names}")
    path = _manifest_path(cache, rate)
    manifest = _read_manifest(path)
    if manifest is None or manifest.get("format") != CORPUS_FORMAT or manifest.get("sample_rate") != rate:
        manifest = _empty_manifest(rate, min_snr_db)
    manifest["min_snr_db"] = min_snr_db
    for i, spec in enumerate(specs, 1):
        entry = manifest["sources"].get(spec.name)
        audio = _rate_dir(cache, rate) / f"audio/{spec.name}.npy"
        if (not force and entry is not None and entry.get("fingerprint") == spec.fingerprint(rate, min_snr_db)
                and audio.exists()):
            LOG.info("[%d/%d] %s: cached, skipping", i, len(specs), spec.name)
            continue
        LOG.info("[%d/%d] building %s", i, len(specs), spec.name)
        manifest["sources"][spec.name] = build_source(spec, cache, rate, min_snr_db, workers)
        _write_manifest(path, manifest)
    _write_manifest(path, manifest)
    return load_corpus(cache, rate)


# --- loading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipInfo:
    """One clip of the corpus (its audio via :meth:`Corpus.audio`)."""

    id: str
    source: str
    kind: str
    split: str
    talker: str | None
    group: str
    offset: int
    length: int
    seconds: float
    level_dbfs: float
    active_level_dbfs: float
    noise_floor_dbfs: float
    snr_db: float
    files: tuple[str, ...] = field(default_factory=tuple)


class Corpus:
    """A built corpus cache: clips, their audio (memory-mapped, read-only) and a summary."""

    def __init__(self, root: Path, manifest: dict, in_memory: bool = False) -> None:
        self.root = Path(root)
        self.in_memory = in_memory
        self.manifest = manifest
        self.sample_rate = int(manifest["sample_rate"])
        self._audio: dict[str, np.ndarray] = {}
        clips = []
        for source, entry in sorted(manifest["sources"].items()):
            check_not_reserved(entry.get("package", source))
            check_not_reserved(source)
            for c in entry["clips"]:
                if c["split"] not in SPLITS:
                    raise CorpusError(f"clip {c['id']} has an unknown split {c['split']!r}")
                clips.append(ClipInfo(
                    id=c["id"], source=source, kind=entry["kind"], split=c["split"], talker=c.get("talker"),
                    group=c["group"], offset=int(c["offset"]), length=int(c["length"]),
                    seconds=float(c["seconds"]), level_dbfs=float(c["level_dbfs"]),
                    active_level_dbfs=float(c.get("active_level_dbfs", c["level_dbfs"])),
                    noise_floor_dbfs=float(c["noise_floor_dbfs"]), snr_db=float(c["snr_db"]),
                    files=tuple(c.get("files", ())),
                ))
        self._clips = clips

    def _source_audio(self, source: str) -> np.ndarray:
        if source not in self._audio:
            path = self.root / self.manifest["sources"][source]["audio"]
            try:
                self._audio[source] = np.load(path, mmap_mode=None if self.in_memory else "r")
            except (OSError, ValueError) as exc:
                raise CorpusError(f"cannot read {path}: {exc}; rebuild the corpus") from exc
        return self._audio[source]

    @property
    def sources(self) -> list[str]:
        return sorted(self.manifest["sources"])

    def clips(self, kind: str | None = None, split: str | None = None,
              sources: Iterable[str] | None = None) -> list[ClipInfo]:
        """Clips of a kind (speech/noise), split and set of sources (None: all)."""
        if split is not None and split not in SPLITS:
            raise CorpusError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        if kind is not None and kind not in KINDS:
            raise CorpusError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        wanted = None if sources is None else set(sources)
        return [c for c in self._clips if (kind is None or c.kind == kind) and (split is None or c.split == split)
                and (wanted is None or c.source in wanted)]

    def audio(self, clip: ClipInfo) -> np.ndarray:
        """The clip's samples: a float32 view into the source's array (read-only when memory-mapped)."""
        return np.asarray(self._source_audio(clip.source)[clip.offset : clip.offset + clip.length])

    def speech(self, split: str, sources: Iterable[str] | None = None) -> list[np.ndarray]:
        """Audio of the speech clips of ``split`` (read-only float32 arrays)."""
        return [self.audio(c) for c in self.clips("speech", split, sources)]

    def noise(self, split: str, sources: Iterable[str] | None = None) -> list[np.ndarray]:
        """Audio of the real noise clips of ``split`` (read-only float32 arrays)."""
        return [self.audio(c) for c in self.clips("noise", split, sources)]

    def speech_by_talker(self, split: str) -> dict[str, list[np.ndarray]]:
        """Speech clips of ``split`` grouped by talker (for babble)."""
        out: dict[str, list[np.ndarray]] = {}
        for c in self.clips("speech", split):
            out.setdefault(c.talker or c.group, []).append(self.audio(c))
        return out

    def weights(self, kind: str, split: str, balance: str = "source") -> np.ndarray:
        """Sampling weights (summing to 1) for :meth:`speech`/:meth:`noise` order of ``split``.

        ``balance="source"``: every source gets the same total weight, shared
        among its clips in proportion to duration; ``"duration"``: proportional
        to duration over the whole split.
        """
        clips = self.clips(kind, split)
        if not clips:
            return np.zeros(0)
        seconds = np.array([c.seconds for c in clips], dtype=np.float64)
        if balance == "duration":
            w = seconds
        elif balance == "source":
            totals: dict[str, float] = {}
            for c in clips:
                totals[c.source] = totals.get(c.source, 0.0) + c.seconds
            w = np.array([c.seconds / totals[c.source] for c in clips])
        else:
            raise CorpusError(f"unknown balance {balance!r}; use 'source' or 'duration'")
        return w / w.sum()

    def hours(self, kind: str | None = None, split: str | None = None) -> float:
        return sum(c.seconds for c in self.clips(kind, split)) / 3600.0

    def summary(self) -> dict:
        """Hours per source and split, talkers, filter counts, versions and licences (JSON-able)."""
        sources = {}
        for name, entry in sorted(self.manifest["sources"].items()):
            clips = [c for c in self._clips if c.source == name]
            sources[name] = {
                "package": entry["package"],
                "version": entry.get("version", ""),
                "kind": entry["kind"],
                "licence": entry.get("licence", ""),
                "hours": {s: round(sum(c.seconds for c in clips if c.split == s) / 3600, 3) for s in SPLITS},
                "clips": {s: sum(1 for c in clips if c.split == s) for s in SPLITS},
                "talkers": {s: sorted({c.talker for c in clips if c.split == s and c.talker}) for s in SPLITS},
                "files_kept": entry.get("files_kept", len(clips)),
                "files_dropped": entry.get("dropped", {}),
            }
        totals = {k: {s: round(self.hours(k, s), 3) for s in SPLITS} for k in KINDS}
        return {
            "format": self.manifest.get("format", CORPUS_FORMAT),
            "sample_rate": self.sample_rate,
            "min_snr_db": self.manifest.get("min_snr_db"),
            "hours": totals,
            "sources": sources,
        }


def load_corpus(
    cache_dir: str | os.PathLike[str] | None = None, rate: int = DEFAULT_RATE, in_memory: bool = False
) -> Corpus:
    """Load a built corpus from ``cache_dir`` (default :func:`default_cache_dir`) at ``rate`` Hz.

    ``cache_dir`` may also be the ``<cache>/<rate>`` directory that holds
    ``manifest.json``. Audio is memory-mapped (read-only) unless ``in_memory``.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    check_path_not_reserved(cache)
    candidates = [cache / "manifest.json", _manifest_path(cache, rate)]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise CorpusError(
            f"no corpus at {cache} ({rate} Hz): build it with "
            f"'python -m model_export.corpus build --cache {cache} --rate {rate}'"
        )
    manifest = _read_manifest(path)
    assert manifest is not None
    if manifest.get("format") != CORPUS_FORMAT:
        raise CorpusError(f"{path} has format {manifest.get('format')}, expected {CORPUS_FORMAT}; rebuild")
    if int(manifest.get("sample_rate", -1)) != rate:
        raise CorpusError(f"{path} is at {manifest.get('sample_rate')} Hz, not {rate} Hz")
    return Corpus(path.parent, manifest, in_memory=in_memory)


# --- command line ----------------------------------------------------------------------------


def _cache_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_export.corpus",
                                     description="Build or inspect quietmic's training corpus.")
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("build", "download, decode, filter and cache the corpus"),
                       ("summary", "print the hours per source and split (JSON)")):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--cache", type=Path, default=None, help=f"cache directory (default {default_cache_dir()})")
        sub.add_argument("--rate", type=int, default=DEFAULT_RATE, help="sample rate in Hz (default 16000)")
        if name == "build":
            sub.add_argument("--sources", nargs="+", metavar="NAME", help="build only these sources")
            sub.add_argument("--force", action="store_true", help="rebuild sources that are cached")
            sub.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command == "build":
            specs = list(SOURCES)
            if args.sources:
                for name in args.sources:
                    check_not_reserved(name)
                known = {s.name: s for s in SOURCES}
                unknown = [n for n in args.sources if n not in known]
                if unknown:
                    parser.error(f"unknown sources {unknown}; known: {', '.join(known)}")
                specs = [known[n] for n in args.sources]
            started = time.monotonic()
            corpus = build_corpus(args.cache, args.rate, specs, force=args.force, workers=args.jobs)
            summary = corpus.summary()
            LOG.info("corpus ready in %.0f s at %s: speech %s h, noise %s h, cache %.0f MB",
                     time.monotonic() - started, corpus.root, summary["hours"]["speech"],
                     summary["hours"]["noise"], _cache_size(corpus.root.parent) / 1e6)
        else:
            corpus = load_corpus(args.cache, args.rate)
            summary = corpus.summary()
        json.dump(summary, sys.stdout, indent=1)
        print()
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
