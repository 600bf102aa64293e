"""Real speech and noise for training, built from Debian packages and cached as float32 arrays.

``python -m model_export.corpus build [--cache DIR] [--rate 16000] [--jobs 1] [--no-teachers]`` downloads the
source packages with ``apt-get download`` (running ``apt-get update`` once if
that fails), reads the wanted members straight out of each ``.deb`` (``dpkg-deb
--fsys-tarfile``) and, for games that pack their audio into archives, out of
those archives (``queen.1c``, ``sky.dsk`` with RNC-packed speech,
zip/``.wz``/``.pk3``; see :mod:`model_export.sources`), decodes them (wav/flac/ogg/opus/mp3 with
``soundfile``; raw G.722 with ``g722``), mixes them to mono, resamples them to
the corpus rate with ``scipy.signal.resample_poly`` and stores one float32
``.npy`` per source plus ``manifest.json``. A source already built with the
same settings is skipped, so the command is idempotent and resumable (the
manifest is written after every source); ``--force`` rebuilds. ``python -m
model_export.corpus summary`` prints hours, talkers, languages, noise kinds and
packages per split (``--json`` for the full per-source summary).

Cache layout (default ``$XDG_CACHE_HOME/quietmic/corpus``, else
``~/.cache/quietmic/corpus``; about 7 GB of packages, 3.5 GB of extracted
archives and about 5 GB of float32 audio at 16 kHz)::

    debs/<package>_<version>_all.deb     downloaded packages (kept: a rebuild needs no network)
    extracted/<package>/<version>/<path> archives copied out of a package (0 A.D.'s public.zip,
                                         queen.1c, ...) so that several sources can share them;
                                         safe to delete
    licences/<package>.copyright         each package's Debian copyright file
    <rate>/audio/<source>.npy            every kept clip of a source, concatenated (float32 mono)
    <rate>/manifest.json                 per source: package, version, licence, split, filter
                                         counts; per clip: offset/length, split, talker, language
                                         (speech), noise_kind (noise), bandwidth_hz, group, level,
                                         noise floor and SNR estimates, files

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

Teacher-cleaned speech
----------------------
``build`` also cleans the files that the filter dropped as ``low_snr`` from the
*training* speech sources with two teacher denoisers (DeepFilterNet3 and GTCRN,
training only), keeps a file only where the teachers agree and the cleaned file
passes this filter, and stores the result as the source ``<source>-cleaned``
(same package, split and talker labels; ``cleaned_by`` in the manifest): see
:mod:`model_export.teachers`. Without the teacher packages this step is skipped
with a warning; ``--no-teachers`` skips it, the Python API (:func:`build_corpus`)
only runs it with ``teachers=True``.

Effective bandwidth
-------------------
Several sources are band-limited (11.025 kHz game audio, codecs). Every clip
records ``bandwidth_hz``: the highest frequency at which its long-term spectrum
(Welch, at the file's own rate) is within :data:`BANDWIDTH_DROP_DB` of its
peak, at most half the file's rate and half the corpus rate. A mixer can
low-pass the noise to the speech's band instead of asking the model to restore
a top band the target never had.

Splits (train / val / test): whole packages
-------------------------------------------
Validation and test must measure generalisation, so every source *package* is
assigned wholly to one split by the fixed table :data:`PACKAGE_SPLITS`; a
package missing from it cannot be built. Hence no source package, and no talker
(talkers never span packages, see below), is shared between splits. Packages that
may hold the same person (``asterisk-core-sounds-en`` and ``-es``: Allison;
``klettres-data`` and ``ktuberling-data``: KDE volunteers per language;
``tuxpaint-stamps-default``) sit in the same split; talker labels carry their
source's origin, and :meth:`Corpus.split_summary` lists any package or talker
found in two splits under ``shared`` (empty for a consistent cache).

Whole noise *kinds* are held out too: every noise clip carries a ``noise_kind``
from :data:`NOISE_KINDS` (rules on the file path, :func:`noise_kind`), and the
kinds in :data:`HELD_OUT_NOISE_KINDS` are dropped from the training packages,
so the validation noise of those kinds comes only from packages that training
never sees (test keeps them too). The test split is yet other packages.

Noise kinds
-----------
:func:`noise_kind` lower-cases the member path (camelCase split, archive file
names dropped) and tries the source's own ``kind_rules``, then the ordered
:data:`NOISE_KIND_RULES` (keywords at the start of a word: ``music``, ``wind``,
``engine``, ``crowd``, ``saw``, ``hum``, ``glass``, ``laser``, ``click``,
``alarm``...); the first match wins, else the source's ``default_noise_kind``
(``other``). Noise files that are clean speech (voice packs, announcers,
spoken callouts, unit acknowledgements: :data:`NOISE_SPEECH_EXCLUDE`) are
dropped; shouts, screams and death cries stay (``crowd_babble_tv``). Music is
capped per source (:data:`MAX_HOURS_PER_KIND`).

Talkers
-------
A talker label names one voice as far as the data tells: the festvox speaker,
the Asterisk voice directory, one volunteer per language for tuxpaint
(``tuxpaint:<lang>``) and for the KDE education packages together
(``kde-edu:<lang>``), the character of a game's dialogue (Flight of the Amazon
Queen: Joe, one label per dialogue group, the cut-scenes; Fish Fillets: the two
fish and each level's characters, per dub; 0 A.D.: language and gender) and,
for Beneath a Steel Sky, whose files do not name the speaker, blocks of line
numbers. Where one label may name several voices or several labels one voice,
the source's ``talker_cap`` bounds the count (Flight of the Amazon Queen: its 31
speaking characters; Fish Fillets: 10 per dub; Beneath a Steel Sky: 5, an
assumed lower bound of its cast). ``summary`` reports both the number of labels
and this capped ("conservative") count, which is the one to quote.

Reserved evaluation sources (:data:`RESERVED_PACKAGES` and anything under a
``shared/eval`` directory) are refused with :class:`ReservedSourceError` wherever
a source is configured, built or loaded.

Python API: :func:`build_corpus`, :func:`load_corpus` -> :class:`Corpus`
(``speech(split)``, ``noise(split)``, ``clips(...)``, ``weights(...)``,
``speech_by_talker(split)``, ``summary()``, ``split_summary()``).
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
import shutil
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
from model_export.sources import queen as _queen
from model_export.sources import sky as _sky

LOG = logging.getLogger("quietmic.corpus")

CORPUS_FORMAT = 2
"""Version of the cache layout and of the rules below; a change rebuilds every source.

2: package-level splits, noise kinds, languages, effective bandwidth, archive containers."""

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

BANDWIDTH_DROP_DB = 60.0
"""A clip's effective bandwidth ends where its smoothed long-term spectrum falls this far below its peak."""

BANDWIDTH_SMOOTH_HZ = 250.0
"""Width of the moving average over the long-term spectrum (dB) before the bandwidth is read off."""

BANDWIDTH_FFT_SECONDS = 0.032
"""Segment length of the Welch spectrum used for the bandwidth."""

BANDWIDTH_METHOD = 2
"""Revision of :func:`effective_bandwidth_hz` (2: the smoothing no longer pads the spectrum with 0 dB)."""

BANDWIDTH_REPORT_HZ = (4000, 5600, 7000, 8000)
"""Bandwidth classes (upper edges, Hz) in which :meth:`Corpus.split_summary` reports speech hours."""

# --- splits ----------------------------------------------------------------------------------

PACKAGE_SPLITS: dict[str, str] = {
    # speech (and, for 0ad-data and fillets, their noise too)
    "flight-of-the-amazon-queen": "train",
    "beneath-a-steel-sky": "train",
    "tuxpaint-stamps-default": "train",
    "klettres-data": "train",
    "ktuberling-data": "train",
    "fillets-ng-data": "train",
    "asterisk-core-sounds-en-g722": "train",
    "asterisk-core-sounds-es-g722": "train",
    "fillets-ng-data-nl": "val",
    "0ad-data": "val",
    "festvox-ru": "test",
    "asterisk-core-sounds-ru-g722": "test",
    "fillets-ng-data-cs": "test",
    # noise only
    "drascula-music": "train",
    "asterisk-moh-opsound-g722": "train",
    "sonic-pi-samples": "train",
    "lmms-common": "train",
    "wesnoth-1.16-data": "train",
    "hedgewars-data": "train",
    "supertuxkart-data": "train",
    "flightgear-data-base": "train",
    "megaglest-data": "train",
    "redeclipse-data": "train",
    "tuxpaint-data": "train",
    "colobot-common-sounds": "train",
    "tuxtype-data": "train",
    "openclonk-data": "val",
    "lincity-ng-data": "val",
    "torcs-data": "test",
    "widelands-data": "test",
    "warzone2100-data": "test",
    "freeorion-data": "test",
    "ufoai-sound": "test",
    "freedroidrpg-data": "test",
}
"""Source package -> split. Every clip of a package goes to its package's split; packages that
may share a voice sit together (Allison in asterisk en/es; KDE volunteers in klettres/ktuberling).
Training: the two English adventure games, the education packages, Allison. Validation: the
Dutch Fish Fillets dub and 0 A.D.'s voices, with 0 A.D.'s, OpenClonk's and LinCity's sounds.
Test: the Czech Fish Fillets dub (other actors than the Dutch one), the festvox and Asterisk
Russian talkers, with TORCS, Widelands, Warzone 2100, FreeOrion and UFO:AI sounds."""

NOISE_KINDS = (
    "keyboard_mouse", "ui_alert", "fan_hum_appliance", "traffic_vehicle", "crowd_babble_tv", "music",
    "kitchen_impact", "wind_rain_water", "paper_handling", "nature_animal", "machine_tool",
    "weapon_explosion", "other",
)
"""The fixed vocabulary of noise kinds (``weapon_explosion``: game combat, rare at a desk)."""

HELD_OUT_NOISE_KINDS: dict[str, str] = {
    "nature_animal": "val",
    "machine_tool": "val",
}
"""Noise kinds held out of training -> the split whose packages must provide them. Clips of these
kinds in training packages are dropped (``held_out_kind``), so validation measures noise kinds that
training never saw; test keeps them as well."""

MAX_HOURS_PER_KIND: dict[str, float] = {"music": 1.0}
"""Per source, stop adding files of this noise kind (in hash order) once this many hours are kept,
so that long music tracks do not swamp the sound effects."""

LANGUAGE_NAMES: dict[str, str] = {
    "greek": "grc", "latin": "la", "persian": "peo", "napatan": "egy-nub",
}
"""0 A.D. voice directories -> language codes (ancient languages, as the game voices them)."""

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


def effective_bandwidth_hz(x: np.ndarray, rate: int) -> float:
    """Effective bandwidth of ``x`` (at its own ``rate``) in Hz.

    The highest frequency where the long-term power spectrum (Welch, segments of
    :data:`BANDWIDTH_FFT_SECONDS`, smoothed over :data:`BANDWIDTH_SMOOTH_HZ`) is
    within :data:`BANDWIDTH_DROP_DB` of its peak; at most ``rate / 2``.
    """
    from scipy.signal import welch

    x = np.asarray(x, dtype=np.float64)
    nyquist = rate / 2.0
    n = max(16, int(round(BANDWIDTH_FFT_SECONDS * rate)))
    if len(x) < n:
        return nyquist
    freqs, psd = welch(x, fs=rate, nperseg=n)
    db = 10.0 * np.log10(psd + POWER_FLOOR)
    width = max(1, int(round(BANDWIDTH_SMOOTH_HZ / (freqs[1] - freqs[0]))))
    padded = np.pad(db, (width // 2, width - 1 - width // 2), mode="edge")  # no zero (0 dB) padding at the ends
    smooth = np.convolve(padded, np.ones(width) / width, mode="valid")
    above = np.flatnonzero(smooth >= smooth.max() - BANDWIDTH_DROP_DB)
    if len(above) == 0:
        return nyquist
    return float(min(nyquist, freqs[above[-1]]))


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


# --- sources, labels and splits --------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """What a file's path says about it: talker (speech) or None, file group, language (speech)."""

    talker: str | None
    group: str
    language: str | None = None


@dataclass(frozen=True)
class Assignment:
    """Where one file goes: talker, file group, split, language (speech), noise kind (noise)."""

    talker: str | None
    group: str
    split: str
    language: str | None = None
    noise_kind: str | None = None


LabelRule = Callable[[str, Sequence[str]], dict[str, Label]]
"""``rule(source_name, member_paths) -> {path: Label}``."""


def base_language(code: str) -> str:
    """``en_GB`` -> ``en``, ``sr@latin`` -> ``sr``, ``zh_tw`` -> ``zh``."""
    return re.split(r"[_@\-.]", code.strip().lower())[0] or "en"


def package_split(package: str) -> str:
    """The split of every clip of ``package`` (:data:`PACKAGE_SPLITS`)."""
    check_not_reserved(package)
    try:
        return PACKAGE_SPLITS[package]
    except KeyError:
        raise CorpusError(
            f"package {package!r} has no split: add it to PACKAGE_SPLITS in model_export/corpus.py "
            "(a new package goes wholly to one split; keep packages that may share a talker together)"
        ) from None


def _inner(path: str) -> str:
    """The part of a member path inside its archive (``outer!inner`` -> ``inner``)."""
    return path.rsplit(ARCHIVE_SEPARATOR, 1)[-1]


def _words(path: str) -> str:
    """``path`` lower-cased with camelCase split (``DirtTrack2`` -> ``dirt_track2``), for the kind rules."""
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", path).lower()


def single_talker_rule(talker: str, language: str) -> LabelRule:
    """Every file is ``talker`` speaking ``language``."""

    def rule(source: str, paths: Sequence[str]) -> dict[str, Label]:
        return {p: Label(f"{source}:{talker}", f"{source}:{talker}", language) for p in paths}

    return rule


def asterisk_rule(source: str, paths: Sequence[str]) -> dict[str, Label]:
    """Talker: the voice directory under ``sounds/``; Allison recorded both English and Spanish."""
    out = {}
    for p in paths:
        parts = PurePosixPath(p).parts
        directory = parts[parts.index("sounds") + 1] if "sounds" in parts else parts[-2]
        voice = directory.split("_")[-1].lower()
        talker = f"asterisk:{voice}"
        out[p] = Label(talker, talker, base_language(directory))
    return out


def _language_rule(prefix: str, language_of: Callable[[str], str]) -> LabelRule:
    def rule(source: str, paths: Sequence[str]) -> dict[str, Label]:
        out = {}
        for p in paths:
            language = base_language(language_of(p))
            talker = f"{prefix}:{language}"
            out[p] = Label(talker, talker, language)
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


FILLETS_SPEAKERS = {"m": "small-fish", "v": "big-fish"}
"""Fish Fillets speaker codes (second token of ``level-SPEAKER-line.ogg``) of the two heroes."""

FILLETS_CAST_SIZE = 10
"""Upper bound on the distinct voices of one Fish Fillets dub: the two fish appear in every level,
the level characters (``level:code`` labels) were voiced by a small cast."""


def fillets_rule(source: str, paths: Sequence[str]) -> dict[str, Label]:
    """``sound/<level>/<lang>/<level>-<speaker>-<line>.ogg``: the two fish, else the level's character."""
    out = {}
    for p in paths:
        parts = PurePosixPath(p).parts
        level, language = parts[-3], parts[-2]
        tokens = PurePosixPath(p).stem.split("-")
        code = tokens[1] if len(tokens) > 2 else "x"
        speaker = FILLETS_SPEAKERS.get(code, f"{level}:{code}")
        talker = f"{source}:{speaker}"
        out[p] = Label(talker, talker, base_language(language))
    return out


def fotaq_rule(source: str, paths: Sequence[str]) -> dict[str, Label]:
    """Flight of the Amazon Queen: speaker labels from the line names (:func:`sources.queen.speaker`)."""
    out = {}
    for p in paths:
        talker = f"fotaq:{_queen.speaker(PurePosixPath(_inner(p)).name)}"
        out[p] = Label(talker, talker, "en")
    return out


def bass_rule(source: str, paths: Sequence[str]) -> dict[str, Label]:
    """Beneath a Steel Sky: lines labelled by block of file numbers (:func:`sources.sky.speaker`)."""
    out = {}
    for p in paths:
        talker = f"bass:{_sky.speaker(_inner(p))}"
        out[p] = Label(talker, talker, "en")
    return out


WARZONE_VOICE_CAST = 2
"""Assumed distinct voices of Warzone 2100's spoken messages (mission control and the tutorial voice)."""


def warzone_voice_rule(source: str, paths: Sequence[str]) -> dict[str, Label]:
    """Warzone 2100's spoken messages: ``audio/<group>/*.ogg``, one label per message group."""
    out = {}
    for p in paths:
        parts = PurePosixPath(_inner(p)).parts
        group = parts[1] if len(parts) > 2 else "misc"
        talker = f"warzone:{group}"
        out[p] = Label(talker, talker, "en")
    return out


def zero_ad_voice_rule(source: str, paths: Sequence[str]) -> dict[str, Label]:
    """0 A.D.: ``audio/voice/<language>/civ/civ_<gender>_<order>.ogg``: one voice per language and gender."""
    out = {}
    for p in paths:
        inner = PurePosixPath(_inner(p))
        parts = inner.parts
        language = parts[parts.index("voice") + 1] if "voice" in parts else "unknown"
        gender = "female" if "_female_" in inner.name else "male"
        talker = f"0ad:{language}:{gender}"
        out[p] = Label(talker, talker, LANGUAGE_NAMES.get(language, language))
    return out


def _noise_rule(group_of: Callable[[str], str]) -> LabelRule:
    def rule(source: str, paths: Sequence[str]) -> dict[str, Label]:
        return {p: Label(None, group_of(_inner(p))) for p in paths}

    return rule


def _effect_family(path: str) -> str:
    """``orc-hit-3.ogg`` -> ``orc-hit``; ``bow-miss.ogg`` -> ``bow``; ambient files keep their name."""
    p = PurePosixPath(path)
    if p.parent.name in ("ambient", "horn-signals"):
        return f"{p.parent.name}-{p.stem}"
    stem = re.sub(r"[-_]?\d+[a-z]?$", "", p.stem)
    stem = re.sub(r"-miss$", "", stem)
    return stem


LABEL_RULES: dict[str, LabelRule] = {
    "festvox": single_talker_rule("msu_ru_nsh", "ru"),
    "asterisk": asterisk_rule,
    "tuxpaint": _language_rule("tuxpaint", tuxpaint_language),
    "klettres": _language_rule("kde-edu", _directory_after("klettres")),
    "ktuberling": _language_rule("kde-edu", _directory_after("sounds")),
    "fillets": fillets_rule,
    "fotaq": fotaq_rule,
    "bass": bass_rule,
    "0ad-voice": zero_ad_voice_rule,
    "warzone-voice": warzone_voice_rule,
    "noise-effect": _noise_rule(_effect_family),
    "noise-directory": _noise_rule(lambda p: PurePosixPath(p).parent.name),
}
"""Label rules by name (:attr:`SourceSpec.rule`)."""

def _prefix_words(*words: str) -> str:
    """A regex matching any of ``words`` at the start of a word of a :func:`_words` path."""
    return r"(?<![a-z])(?:" + "|".join(words) + ")"


NOISE_KIND_RULES: tuple[tuple[str, str], ...] = (
    ("music", _prefix_words("music", "moh/", "track_?\\d", "soundtrack", "ingame_", "menu\\.ogg", "theme",
                            "song", "tune")),
    ("keyboard_mouse", _prefix_words("keyboard", "keypress", "keystroke", "typewriter", "typing", "mouse",
                                     "click", "key_?\\d", "keys?(?![a-z])")),
    ("paper_handling", _prefix_words("paper", "page", "book", "scroll", "rustl", "cloth", "fabric", "zipper",
                                     "envelope", "card", "leaves", "leaf", "bag(?![a-z])", "sack")),
    ("wind_rain_water", (_prefix_words("wind(?!ow)", "rain", "storm", "thunder", "water", "wave", "river",
                                      "splash", "bubbl", "drip", "ocean", "sea(?![a-z])", "waterfall", "snow",
                                      "weather", "underwater", "fountain", "swim", "dive", "surf", "flood",
                                      "wet", "stream", "brook", "pour", "lava", "harbou?r", "lake",
                                      "parkland_lake", "splosh", "extinguish", "creek"))
     + r"|wind(?!ow)|drip|creek"),
    ("nature_animal", (_prefix_words("bird", "dog", "cat(?![a-z])", "animal", "fauna", "cow", "sheep", "horse",
                                    "pig(?![a-z])", "chicken", "wolf", "insect", "cricket", "frog", "forest",
                                    "jungle", "dayscape", "night", "owl", "bee(?![a-z])", "monkey", "duck",
                                    "goose", "lion", "elephant", "whale", "deer", "boar", "camel", "grass",
                                    "seagull", "gull", "crow", "meow", "bark", "moo(?![a-z])", "neigh", "roar",
                                    "growl", "goat", "bear", "fish(?!er)", "hen(?![a-z])", "rooster", "swamp",
                                    "tropical", "temperate", "green", "eagle", "hawk", "rabbit", "mouse_squeak",
                                    "farm", "organic_farm", "cycada", "cicada", "gryphon", "wasp"))
     + r"|cycada|cicada"),
    ("traffic_vehicle", (_prefix_words("engine", "car(?![a-z])", "car_", "kart", "truck", "traffic", "horn",
                                      "tyre", "tire", "skid", "brake", "siren", "vehicle", "prop(?![a-z])",
                                      "jet", "turbine", "heli", "plane", "aircraft", "rcplane", "train",
                                      "rail", "ship", "boat", "motor", "nitro", "road", "tram", "bus(?![a-z])",
                                      "accel", "gear", "exhaust", "ferrari", "porsche", "lamborghini", "viper",
                                      "ford", "mclaren", "tank", "wheel", "dirt_track", "backfire",
                                      "crash", "out_of_road", "hover", "flap", "stall", "rotor", "wee",
                                      "trafic", "distant_cars", "airship", "turboprop", "cranking", "engstart",
                                      "rumble", "squeal", "whine", "overspeed", "spaceship", "parachute"))
     + r"|cars?(?![a-z])|trafi?c"),
    ("crowd_babble_tv", (_prefix_words("crowd", "babble", "cheer", "applau", "market", "people", "tavern",
                                      "chatter", "tv(?![a-z])", "radio", "laugh", "shout", "scream", "yell",
                                      "battlecry", "pub(?![a-z])", "party", "audience", "school", "health",
                                      "church", "sports", "stadium", "city", "town", "residential", "die",
                                      "death", "hurt", "pain", "groan", "grunt", "cry", "sigh", "cough",
                                      "sneeze", "kiss", "ouch", "restaurant", "commune", "shanty", "univ",
                                      "monument", "minarett", "hell_", "hogchant", "yoohoo", "whistle"))
     + r"|restaurant|crowd"),
    ("machine_tool", (_prefix_words("saw", "drill", "hammer", "mine", "mining", "construct", "machine",
                                   "factory", "forge", "anvil", "crane", "printer", "3d_printer", "robot",
                                   "servo", "mech", "pump", "weld", "tool", "lumber", "chainsaw", "industr",
                                   "mill", "smith", "build", "furnace", "smelt", "quarry", "pick", "chisel",
                                   "axe", "chop", "hoe", "dig", "shovel", "steel", "coal", "oil", "refin",
                                   "recycl", "tip", "rock_crush", "elevator", "lift", "conveyor", "press",
                                   "blacksmith", "pottery", "raze", "pneumatic", "blowtorch", "drill"))
     + r"|smith"),
    ("fan_hum_appliance", _prefix_words("fan(?![a-z])", "hum(?![a-z])", "buzz", "electri", "hvac", "aircon",
                                        "fridge", "vacuum", "dryer", "applian", "hiss", "generator",
                                        "substation", "transformer", "power", "ventilat", "computer", "sauna",
                                        "haunted_hum", "drone", "reactor", "windmill", "solar", "nuclear",
                                        "heater", "ac(?![a-z])", "ambient", "amb_", "vinyl", "static",
                                        "noise", "servers?")),
    ("kitchen_impact", _prefix_words("impact", "hit", "knock", "door", "glass", "break", "smash", "clang",
                                     "drop", "bang", "thud", "metal", "wood", "stone", "plate", "pan(?![a-z])",
                                     "pot(?![a-z])", "cup", "dish", "kitchen", "step", "footstep", "fs_",
                                     "bounce", "collide", "collision", "fall", "land", "slam", "clatter",
                                     "bump", "thump", "crack", "squeak", "creak", "shatter", "bottle",
                                     "cutlery", "fork", "spoon", "knife", "chest", "box", "crate", "barrel",
                                     "jump", "gather", "debris", "collapse", "pop", "clap", "slap", "punch",
                                     "kick", "bat(?![a-z])", "whip", "gate", "drawer", "lock", "coin", "bell")),
    ("weapon_explosion", _prefix_words("explo", "gun", "shot", "shoot", "laser", "bullet", "blast", "bomb",
                                       "rocket", "missile", "sword", "bow(?![a-z])", "bow_", "arrow",
                                       "weapon", "attack", "fire", "cannon", "rifle", "pistol", "grenade",
                                       "spear", "sling", "catapult", "ballist", "siege", "jav", "pike",
                                       "musket", "shield", "flesh", "boom", "combat", "fighter", "torpedo",
                                       "plasma", "phaser", "blaster", "mortar", "artiller", "kaboom", "nuke",
                                       "ram_", "onager", "magic", "spell", "summon", "zap", "flame", "burn",
                                       "electro", "cluster", "mine_", "uzi", "shotgun", "melee", "armor",
                                       "club", "crossbow", "dagger", "flail", "mace", "hatchet", "fist",
                                       "claws", "bite", "lightning", "dart", "gatling", "minigun", "damage",
                                       "shell", "critical", "ice_beam", "swish", "net(?![a-z])", "fuse")),
    ("ui_alert", _prefix_words("interface", "ui(?![a-z])", "alarm", "alert", "beep", "notif", "chime", "ding",
                               "select", "menu", "gui", "warning", "gong", "bonus", "pickup", "powerup",
                               "achiev", "victory", "defeat", "error", "success", "message", "chat", "tick",
                               "countdown", "button", "win", "lose", "score", "level", "complete", "sonar",
                               "pulldown", "sidepanel", "open", "close", "toggle", "confirm", "cancel",
                               "start", "switch", "blip", "bleep", "ping", "tone", "jingle", "fanfare",
                               "prompt", "notify", "typewriterbell", "tuxok", "return", "italic",
                               "jumppad", "teleport", "spawn", "respawn", "pause", "denied", "invalid",
                               "change", "list", "turn", "research", "complete", "end")),
)
"""Ordered ``(kind, regex)`` rules on a noise file's :func:`_words` path: the first match wins.
Sources may put their own rules first (:attr:`SourceSpec.kind_rules`); unmatched files get the
source's ``default_noise_kind``."""

NOISE_SPEECH_EXCLUDE = _prefix_words(
    "voice", "speech", "narrat", "dialog", "announc", "taunt", "vo(?![a-z])", "tcas", "mk-viii", "callout",
    "talk", "ack(?![a-z])", "_desc", "countdown_voice", "commentator", "singer",
)
"""Noise files whose path matches are clean speech (voice lines, announcers, spoken callouts), not
noise to remove: they are dropped from noise sources (``speech_excluded``)."""


def noise_kind(path: str, extra_rules: Sequence[tuple[str, str]] = (), default: str = "other") -> str:
    """The :data:`NOISE_KINDS` label of a noise file from its path (``extra_rules`` first)."""
    *outers, inner = path.split(ARCHIVE_SEPARATOR)
    words = _words("/".join([*(str(PurePosixPath(o).parent) for o in outers), inner]))  # archive names say nothing
    for kind, pattern in (*extra_rules, *NOISE_KIND_RULES):
        if re.search(pattern, words):
            return kind
    return default


def _rules_signature(kind: str) -> list:
    """The tables and settings that decide a ``kind`` source's content: part of its fingerprint.

    (A source's own split is in its fingerprint too; other packages' splits are not.)
    """
    common = [LEVEL_PERCENTILE, FLOOR_PERCENTILE, DIGITAL_SILENCE_DB, ACTIVE_BELOW_LEVEL_DB,
              BANDWIDTH_DROP_DB, BANDWIDTH_SMOOTH_HZ, BANDWIDTH_FFT_SECONDS, BANDWIDTH_METHOD]
    if kind == "speech":
        return common + [CLIP_LEVEL, CLIP_RUN, CLIP_MAX_FRACTION, CLIP_MIN_SAMPLES, TRIM_PAD_SECONDS,
                         MIN_SPEECH_SECONDS, CONCAT_SECONDS, FILLETS_SPEAKERS, sorted(LANGUAGE_NAMES.items())]
    return common + [sorted(HELD_OUT_NOISE_KINDS.items()), "held-out-from-train-only", NOISE_KIND_RULES, NOISE_SPEECH_EXCLUDE,
                     sorted(MAX_HOURS_PER_KIND.items()), MIN_NOISE_SECONDS, NOISE_SILENCE_DB]


ARCHIVE_SEPARATOR = "!"
"""In :attr:`SourceSpec.patterns`, ``outer!inner`` names members ``inner`` of the archive ``outer``."""


@dataclass(frozen=True)
class SourceSpec:
    """One corpus source: a Debian package and how to read, label and filter it.

    Its split is its package's (:data:`PACKAGE_SPLITS`).
    """

    name: str
    package: str
    kind: str
    patterns: tuple[str, ...]
    """Shell patterns (``*`` crosses ``/``) of the wanted members inside the package; with
    ``container``, ``outer!inner``: members ``inner`` of the archive file ``outer``."""
    rule: str
    """Name of the label rule in :data:`LABEL_RULES`."""
    licence: str
    exclude: str | None = None
    """Regular expression on the member's path: matching files are skipped."""
    concat: bool = False
    """Concatenate the kept files per talker into units of :data:`CONCAT_SECONDS`."""
    max_hours: float | None = None
    """Stop adding files (in hash order) once this many hours are kept (None: no cap)."""
    description: str = ""
    container: str | None = None
    """Archive reader (:data:`model_export.sources.CONTAINERS`) for ``outer!inner`` patterns."""
    kind_rules: tuple[tuple[str, str], ...] = ()
    """Noise kind rules tried before :data:`NOISE_KIND_RULES`."""
    default_noise_kind: str = "other"
    """Noise kind of files no rule matches."""
    min_snr_db: float | None = None
    """Speech filter threshold for this source (None: the build's ``min_snr_db``)."""
    talker_cap: int | None = None
    """Upper bound on the distinct voices behind this source's talker labels (None: one per label)."""

    def __post_init__(self) -> None:
        check_not_reserved(self.package)
        check_not_reserved(self.name)
        if self.kind not in KINDS:
            raise CorpusError(f"source {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.rule not in LABEL_RULES:
            raise CorpusError(f"source {self.name}: unknown label rule {self.rule!r}")
        if self.container is not None:
            from model_export.sources import CONTAINERS

            if self.container not in CONTAINERS:
                raise CorpusError(f"source {self.name}: unknown container {self.container!r}")
            if not all(ARCHIVE_SEPARATOR in p for p in self.patterns):
                raise CorpusError(f"source {self.name}: container patterns must read 'outer!inner'")
        for kind in (self.default_noise_kind, *(k for k, _ in self.kind_rules)):
            if kind not in NOISE_KINDS:
                raise CorpusError(f"source {self.name}: unknown noise kind {kind!r}; kinds are {NOISE_KINDS}")

    @property
    def split(self) -> str:
        """The split of every clip of this source (its package's)."""
        return package_split(self.package)

    def snr_threshold(self, min_snr_db: float) -> float:
        """The speech filter threshold for this source given the build's default."""
        return self.min_snr_db if self.min_snr_db is not None else min_snr_db

    def fingerprint(self, rate: int, min_snr_db: float) -> str:
        """Hash of everything that decides the source's cached content."""
        text = json.dumps(
            [CORPUS_FORMAT, rate, self.snr_threshold(min_snr_db) if self.kind == "speech" else None, self.name,
             self.package, self.kind, self.patterns, self.rule, self.exclude, self.concat, self.max_hours,
             self.container, self.kind_rules, self.default_noise_kind, self.split, _rules_signature(self.kind)],
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def assign(spec: SourceSpec, paths: Sequence[str]) -> dict[str, Assignment]:
    """Label, split and (noise) kind of each of ``paths`` of ``spec``."""
    labels = LABEL_RULES[spec.rule](spec.name, paths)
    split = spec.split
    out = {}
    for p in paths:
        label = labels[p]
        kind = noise_kind(p, spec.kind_rules, spec.default_noise_kind) if spec.kind == "noise" else None
        out[p] = Assignment(label.talker, label.group, split, label.language, kind)
    return out


def check_split_table(sources: Sequence[SourceSpec] | None = None) -> None:
    """Raise :class:`CorpusError` unless every source's package has a known split and the held-out
    noise kinds name kinds and splits. (Talkers never span packages, so package-level splits keep
    them apart; :meth:`Corpus.split_summary` reports any that a cache shares between splits.)"""
    specs = list(SOURCES if sources is None else sources)
    for spec in specs:
        if spec.split not in SPLITS:
            raise CorpusError(f"package {spec.package}: unknown split {spec.split!r}")
    for kind, split in HELD_OUT_NOISE_KINDS.items():
        if kind not in NOISE_KINDS or split not in SPLITS:
            raise CorpusError(f"HELD_OUT_NOISE_KINDS: {kind!r} -> {split!r} is not a noise kind and a split")


_VOCAL_EFFECTS = (
    r"(^|/)(human|dwarf|elf|orc|goblin|ogre|troll|mermaid|mermen|naga|lich|ghoul|wose|yeti|zombie)-"
    r"|(^|/)(groan|ugg|wail|chat)"
)
"""Wesnoth effects that are human-like vocalisations (not noise to remove) or UI chimes."""

_OGG_WAV = ("*.ogg", "*.wav")

SOURCES: tuple[SourceSpec, ...] = (
    # --- speech -----------------------------------------------------------------------------
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
    SourceSpec("flight-of-the-amazon-queen", "flight-of-the-amazon-queen", "speech",
               ("usr/share/scummvm/flight-of-the-amazon-queen/queen.1c!*.SB",), "fotaq",
               "Flight-of-the-Amazon-Queen-License (freeware, redistributable)", container="queen",
               talker_cap=_queen.CAST_SIZE,
               description="adventure game voice acting, English, MP3 11.025 kHz (~5 kHz band)"),
    SourceSpec("beneath-a-steel-sky", "beneath-a-steel-sky", "speech",
               ("usr/share/scummvm/beneath-a-steel-sky/sky.dsk!speech/*.wav",), "bass",
               "Beneath-a-Steel-Sky-License (freeware, redistributable)", container="sky", talker_cap=_sky.CAST_SIZE,
               description="adventure game CD voice acting, English, 8-bit 11.025 kHz, RNC-packed"),
    SourceSpec("fillets-ng-data-cs", "fillets-ng-data-cs", "speech", ("usr/share/games/fillets-ng/sound/*/cs/*.ogg",),
               "fillets", "GPL-2+", talker_cap=FILLETS_CAST_SIZE, description="Fish Fillets Czech voice acting"),
    SourceSpec("fillets-ng-data-nl", "fillets-ng-data-nl", "speech", ("usr/share/games/fillets-ng/sound/*/nl/*.ogg",),
               "fillets", "GPL-2+", talker_cap=FILLETS_CAST_SIZE, description="Fish Fillets Dutch voice acting"),
    SourceSpec("0ad-data-voices", "0ad-data", "speech",
               ("usr/share/games/0ad/mods/public/public.zip!audio/voice/*/civ/*.ogg",), "0ad-voice",
               "CC-BY-SA-3.0 (0ad-data copyright)", container="zip", concat=True,
               description="unit acknowledgements in four ancient languages, male and female"),
    SourceSpec("warzone2100-data-voices", "warzone2100-data", "speech",
               tuple(f"usr/share/games/warzone2100/base.wz!audio/{d}/*.ogg"
                     for d in ("memressp", "tutorial", "extra", "countdown", "proxmessages")),
               "warzone-voice", "GPL-2+ / CC-BY-SA (warzone2100-data copyright)", container="zip", concat=True,
               talker_cap=WARZONE_VOICE_CAST,
               description="strategy game spoken messages, English, 11.025 kHz"),
    # --- noise ------------------------------------------------------------------------------
    SourceSpec("drascula-music", "drascula-music", "noise", ("usr/share/scummvm/drascula/audio/*.ogg",),
               "noise-effect", "Drascula-License (freeware, redistributable)", default_noise_kind="music",
               kind_rules=(("music", "."),), description="game music"),
    SourceSpec("asterisk-moh-opsound-g722", "asterisk-moh-opsound-g722", "noise",
               ("usr/share/asterisk/moh/*.g722",), "noise-effect", "CC-BY-SA-3.0 (opsound.org)",
               kind_rules=(("music", "."),), description="music on hold"),
    SourceSpec("sonic-pi-samples", "sonic-pi-samples", "noise", ("usr/share/sonic-pi/samples/*.flac",),
               "noise-effect", "CC0 / CC-BY (sonic-pi-samples copyright)",
               exclude=r"choir|voxy|robot|burp",
               kind_rules=(("music", _prefix_words("loop", "bass", "drum", "elec", "perc", "tabla", "guit",
                                                   "mehackit", "arovane", "bd_", "sn_", "hat", "glitch",
                                                   "synth", "ambi_(?:choir|piano|glass|lunar|drone|swoosh)")),
                           ("fan_hum_appliance", _prefix_words("ambi", "vinyl"))),
               description="ambient loops, percussion, effects"),
    SourceSpec("lmms-common", "lmms-common", "noise", ("usr/share/lmms/samples/*.ogg",), "noise-directory",
               "GPL-2+ (lmms-common copyright)", exclude=r"choir|chorus|breath",
               kind_rules=(("music", _prefix_words("drums", "basses", "beats", "instruments", "latin",
                                                   "stringsnpads", "bassloops", "misc")),),
               description="drums, beats, instruments, effects"),
    SourceSpec("wesnoth-1.16-data", "wesnoth-1.16-data", "noise",
               ("usr/share/games/wesnoth/*/sounds/*.ogg", "usr/share/games/wesnoth/*/sounds/*.wav"),
               "noise-effect", "GPL-2+", exclude=_VOCAL_EFFECTS,
               description="sound effects: weapons, impacts, animals, fire, water, ambience"),
    SourceSpec("hedgewars-data", "hedgewars-data", "noise",
               tuple(f"usr/share/games/hedgewars/Data/{d}/{e}" for d in ("Sounds", "Music") for e in _OGG_WAV),
               "noise-effect", "GPL-2 / various free (hedgewars-data copyright)", exclude=r"/voices/",
               description="game sound effects and music (voice packs excluded: speech)"),
    SourceSpec("supertuxkart-data", "supertuxkart-data", "noise",
               tuple(f"usr/share/games/supertuxkart/data/{d}/{e}" for d in ("sfx", "music", "tracks")
                     for e in _OGG_WAV),
               "noise-effect", "GPL-3+ / CC-BY-SA (supertuxkart-data copyright)",
               kind_rules=(("music", r"/music/|/tracks/.*(?:music|theme)"),), exclude=r"airport_pa",
               description="karts, engines, crowd, UI and music"),
    SourceSpec("flightgear-data-base", "flightgear-data-base", "noise",
               tuple(f"usr/share/games/flightgear/{d}/{e}" for d in ("Sounds", "Aircraft/*/Sounds")
                     for e in _OGG_WAV),
               "noise-effect", "GPL-2+ (flightgear-data-base copyright)",
               description="aircraft engines, wind, rain, thunder, cockpit"),
    SourceSpec("megaglest-data", "megaglest-data", "noise",
               tuple(f"usr/share/games/megaglest/{e}" for e in _OGG_WAV), "noise-effect",
               "CC-BY-SA-3.0 (megaglest-data copyright)",
               exclude=r"(?:^|[/_])(?:ack|select|dialog|voice)\w*\d*\.(?:wav|ogg)$|/music/",
               kind_rules=(("nature_animal", r"/tilesets/.*(?:day|night|morning)"),),
               description="strategy game effects and tileset ambience (unit voice replies excluded)"),
    SourceSpec("redeclipse-data", "redeclipse-data", "noise",
               ("usr/share/games/redeclipse/data/sounds/*.ogg", "usr/share/games/redeclipse/data/sounds/*.wav"),
               "noise-effect", "CC-BY-SA / various free (redeclipse-data copyright)",
               exclude=r"/(?:voice|announcer)/",
               description="shooter effects, ambience, machines, music"),
    SourceSpec("tuxpaint-data", "tuxpaint-data", "noise", ("usr/share/tuxpaint/sounds/*.wav",
                                                           "usr/share/tuxpaint/sounds/*.ogg"),
               "noise-effect", "GPL-2+", exclude=r"areyousure|youcannot",
               default_noise_kind="ui_alert", description="drawing-program tool sounds"),
    SourceSpec("colobot-common-sounds", "colobot-common-sounds", "noise",
               ("usr/share/games/colobot/sounds/*.wav", "usr/share/games/colobot/music/*.ogg"), "noise-effect",
               "GPL-3+", kind_rules=(("music", r"/music/"),),
               description="robot-programming game effects (numbered, kind 'other') and music"),
    SourceSpec("tuxtype-data", "tuxtype-data", "noise",
               ("usr/share/tuxtype/sounds/*.wav", "usr/share/tuxtype/sounds/*.ogg"),
               "noise-effect", "GPL-2+", exclude=r"excuseme", kind_rules=(("music", r"raindrops|chiptune|tuxi"),),
               description="typing tutor effects and music"),
    SourceSpec("fillets-ng-data-music", "fillets-ng-data", "noise",
               ("usr/share/games/fillets-ng/music/*.ogg", "usr/share/games/fillets-ng/sound/share/*.ogg"),
               "noise-effect", "GPL-2+", description="puzzle game music and shared effects"),
    SourceSpec("0ad-data-music", "0ad-data", "noise",
               ("usr/share/games/0ad/mods/public/public.zip!audio/music/*.ogg",), "noise-effect",
               "CC-BY-SA-3.0 (0ad-data copyright)", container="zip", kind_rules=(("music", "."),),
               description="orchestral game music"),
    SourceSpec("0ad-data-sounds", "0ad-data", "noise",
               tuple(f"usr/share/games/0ad/mods/public/public.zip!audio/{d}/*.ogg"
                     for d in ("actor", "ambient", "attack", "interface", "resource")),
               "noise-effect", "CC-BY-SA-3.0 (0ad-data copyright)", container="zip",
               description="ambience (wind, rain, water, animals), work, impacts, interface"),
    SourceSpec("openclonk-data", "openclonk-data", "noise", ("usr/share/games/openclonk/*.ogg",),
               "noise-effect", "CC-BY / ISC (openclonk-data copyright)", kind_rules=(("music", "."),),
               description="game music"),
    SourceSpec("lincity-ng-data", "lincity-ng-data", "noise",
               ("usr/share/games/lincity-ng/sounds/*.wav", "usr/share/games/lincity-ng/sounds/*.ogg",
                "usr/share/games/lincity-ng/music/*.ogg"), "noise-effect", "GPL-2+",
               description="city sounds (markets, traffic, industry, farms) and music"),
    SourceSpec("torcs-data", "torcs-data", "noise", tuple(f"usr/share/games/torcs/data/{d}/{e}"
                                                          for d in ("sound", "music") for e in _OGG_WAV),
               "noise-effect", "GPL-2+ / Free Art (torcs-data copyright)",
               kind_rules=(("music", r"/music/"), ("traffic_vehicle", r"/sound/")),
               description="racing car engines, crashes, skids, music"),
    SourceSpec("widelands-data", "widelands-data", "noise", tuple(f"usr/share/games/widelands/data/{d}/{e}"
                                                                  for d in ("sound", "music") for e in _OGG_WAV),
               "noise-effect", "GPL-2+ (widelands-data copyright)",
               description="settler game work, animals, ambience, UI and music"),
    SourceSpec("warzone2100-data", "warzone2100-data", "noise",
               tuple(f"usr/share/games/warzone2100/base.wz!audio/{d}/*.ogg" for d in ("sfx", "multi", "radclick")),
               "noise-effect", "GPL-2+ / CC-BY-SA (warzone2100-data copyright)", container="zip",
               description="strategy game effects (the many spoken messages elsewhere in audio/ are not read)"),
    SourceSpec("freeorion-data", "freeorion-data", "noise", ("usr/share/games/freeorion/default/data/*.ogg",
                                                              "usr/share/games/freeorion/default/data/*.wav"),
               "noise-effect", "GPL-2+ / CC-BY-SA-3.0 (freeorion-data copyright)",
               kind_rules=(("music", r"artificial_intelligence|/music/"),),
               description="space strategy UI, combat and music"),
    SourceSpec("freedroidrpg-data", "freedroidrpg-data", "noise",
               ("usr/share/freedroidrpg/data/sound/*.ogg", "usr/share/freedroidrpg/data/sound/*.wav"), "noise-effect",
               "GPL-2+ (freedroidrpg-data copyright)", kind_rules=(("music", r"/music/"),),
               description="role-playing game effects and music (bot voice samples excluded: speech)"),
    SourceSpec("ufoai-sound", "ufoai-sound", "noise", ("usr/share/games/ufoai/base/0snd.pk3!*.ogg",
                                                        "usr/share/games/ufoai/base/0snd.pk3!*.wav"),
               "noise-effect", "GPL-2+ / CC (ufoai-sound copyright)", container="zip",
               description="tactical game effects and ambience"),
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


def read_members(deb: Path, patterns: Sequence[str], extra: Sequence[str] = (),
                 to_disk: Sequence[str] = (), dest: Path | None = None) -> dict[str, bytes]:
    """Bytes of the regular files in ``deb`` matching ``patterns`` or named in ``extra``.

    Streams ``dpkg-deb --fsys-tarfile`` without extracting anything to disk,
    except the members named in ``to_disk`` (large archives), which are written
    to ``dest/<name>`` (atomically) and not returned.
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
                if name in to_disk and dest is not None:
                    fh = tar.extractfile(member)
                    if fh is not None:
                        def write(tmp: Path, fh=fh) -> None:
                            with open(tmp, "wb") as target:
                                shutil.copyfileobj(fh, target, EXTRACT_CHUNK_BYTES)

                        _write_atomic(dest / name, write)
                elif name in extra or any(fnmatch.fnmatchcase(name, p) for p in patterns):
                    fh = tar.extractfile(member)
                    if fh is not None:
                        out[name] = fh.read()
    finally:
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        code = proc.wait()
    if code != 0:
        raise CorpusError(f"dpkg-deb --fsys-tarfile {deb} failed: {stderr.strip()}; delete it and rebuild")
    return out


EXTRACT_CHUNK_BYTES = 1 << 20
"""Copy buffer when writing an archive out of a package (bytes)."""


def read_source_members(spec: SourceSpec, deb: Path, version: str, cache_dir: Path) -> dict[str, bytes]:
    """The wanted members of ``spec`` (and its package's copyright file, saved under ``licences/``).

    Plain patterns are read straight out of the package. With a container,
    each ``outer`` archive is first copied to ``extracted/<package>/<version>/``
    (once; later sources of the same package reuse it) and its ``inner``
    members are returned as ``outer!inner``.
    """
    copyright_name = f"usr/share/doc/{spec.package}/copyright"
    licence_path = cache_dir / "licences" / f"{spec.package}.copyright"
    if spec.container is None:
        members = read_members(deb, spec.patterns, extra=(copyright_name,))
    else:
        from model_export.sources import COMPANIONS, CONTAINERS

        dest = cache_dir / "extracted" / spec.package / version
        by_outer: dict[str, list[str]] = {}
        for pattern in spec.patterns:
            outer, inner = pattern.split(ARCHIVE_SEPARATOR, 1)
            by_outer.setdefault(outer, []).append(inner)
        needed = [*by_outer, *(str(PurePosixPath(o).with_name(c)) for o in by_outer
                               for c in COMPANIONS.get(spec.container, ()))]
        missing = [o for o in needed if not (dest / o).exists()]
        members = {}
        if missing or not licence_path.exists():
            LOG.info("%s: copying %s out of the package", spec.package, ", ".join(missing) or "the copyright")
            members = read_members(deb, (), extra=(copyright_name,), to_disk=missing, dest=dest)
        for outer, inners in sorted(by_outer.items()):
            if not (dest / outer).exists():
                raise CorpusError(f"{spec.package} {version} has no {outer}; check the source's patterns")
            try:
                found = CONTAINERS[spec.container](dest / outer, inners)
            except ValueError as exc:
                raise CorpusError(f"cannot read {dest / outer}: {exc}; delete it and rebuild") from exc
            members.update({f"{outer}{ARCHIVE_SEPARATOR}{inner}": data for inner, data in found.items()})
    if copyright_name in members:
        licence_path.parent.mkdir(parents=True, exist_ok=True)
        licence_path.write_bytes(members.pop(copyright_name))
    return members


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
    bandwidth = min(effective_bandwidth_hz(x, file_rate), rate / 2.0)
    # Speech keeps the measurements the filter decided on (the whole file at its own rate).
    return {"name": name, "reason": "", "audio": y.astype(np.float32), "stats": stats.__dict__,
            "bandwidth_hz": round(bandwidth, 1), "file_rate": int(file_rate)}


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


def usable_names(spec: SourceSpec, members: dict[str, bytes], drop: Callable[..., None]) -> list[str]:
    """The members of ``spec`` worth decoding, sorted: not excluded by ``spec.exclude``, not clean speech
    in a noise source, not a byte-identical duplicate of an earlier member. ``drop(reason)`` counts the rest."""
    exclude = re.compile(spec.exclude) if spec.exclude else None
    names = []
    seen_content: set[str] = set()
    for name in sorted(members):
        if exclude and exclude.search(name):
            drop("excluded")
            continue
        if spec.kind == "noise" and re.search(NOISE_SPEECH_EXCLUDE, _words(name)):
            drop("speech_excluded")
            continue
        digest = hashlib.sha1(members[name]).hexdigest()
        if digest in seen_content:
            drop("duplicate")
            continue
        seen_content.add(digest)
        names.append(name)
    return names


def units_and_clips(spec: SourceSpec, kept_names: Sequence[str], assignments: dict[str, Assignment],
                    results: dict[str, dict], rate: int, source_name: str | None = None
                    ) -> tuple[list[dict], np.ndarray]:
    """Manifest clip entries and the concatenated audio (float32 at ``rate`` Hz) of the kept files.

    ``results[name]`` holds a kept file's ``audio``, ``stats``, ``bandwidth_hz`` and ``file_rate``
    (as :func:`_process_file` returns them). Units: one per kept file, or with ``spec.concat``
    per-talker concatenations of at least :data:`CONCAT_SECONDS`. Clip ids start with
    ``source_name`` (default ``spec.name``); any other keys of a result's ``extra`` dict are
    copied into its clip (single-file units only).
    """
    units: list[tuple[list[str], np.ndarray]] = []
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
            "id": f"{source_name or spec.name}:{PurePosixPath(_inner(files[0])).stem}"
                  + (f"+{len(files) - 1}" if len(files) > 1 else ""),
            "files": files,
            "talker": a.talker,
            "group": a.group,
            "split": a.split,
            "language": a.language,
            "noise_kind": a.noise_kind,
            "bandwidth_hz": min(results[f]["bandwidth_hz"] for f in files),
            "file_rate": min(results[f]["file_rate"] for f in files),
            "offset": offset,
            "length": int(len(audio)),
            "seconds": round(len(audio) / rate, 3),
            **stats.__dict__,
            **(results[files[0]].get("extra", {}) if len(files) == 1 else {}),
        })
        offset += len(audio)
    audio_all = np.concatenate([u[1] for u in units]) if units else np.zeros(0, np.float32)
    return clips, audio_all


def build_source(
    spec: SourceSpec,
    cache_dir: Path,
    rate: int = DEFAULT_RATE,
    min_snr_db: float = MIN_SNR_DB,
    workers: int | None = None,
) -> dict:
    """Build one source into ``<cache>/<rate>/audio/<name>.npy``; return its manifest entry."""
    check_not_reserved(spec.package)
    split = spec.split
    started = time.monotonic()
    snr_threshold = spec.snr_threshold(min_snr_db)
    deb = fetch_deb(spec.package, cache_dir / "debs")
    version = deb_version(deb)
    members = read_source_members(spec, deb, version, cache_dir)
    dropped: dict[str, int] = {}

    def drop(reason: str, count: int = 1) -> None:
        dropped[reason] = dropped.get(reason, 0) + count

    names = usable_names(spec, members, drop)
    files_seen = len(members)
    if not names:
        raise CorpusError(f"{spec.package} {version} holds no usable files matching {spec.patterns}")
    assignments = assign(spec, names)
    held_out = [n for n in names if split == "train" and assignments[n].noise_kind in HELD_OUT_NOISE_KINDS]
    if held_out:
        drop("held_out_kind", len(held_out))
        names = [n for n in names if n not in set(held_out)]
    LOG.info("%s %s (%s): %d files to decode", spec.package, version, split, len(names))

    # Caps (hours) per noise kind and for the whole source; files are decoded in hash order.
    def cap_key(name: str) -> str:
        return assignments[name].noise_kind or spec.kind

    caps = {k: v for k, v in MAX_HOURS_PER_KIND.items() if spec.kind == "noise"}
    total_cap = spec.max_hours if spec.max_hours is not None else math.inf
    capped = bool(caps) or spec.max_hours is not None
    ordered = _ordered_for_caps(spec.name, names) if capped else names
    workers = workers if workers is not None else (os.cpu_count() or 1)
    results: dict[str, dict] = {}
    hours: dict[str, float] = {}
    batch = max(2, 2 * workers) if capped else max(1, len(ordered))
    for i in range(0, len(ordered), batch):
        chunk = ordered[i : i + batch]
        pending = [n for n in chunk if hours.get(cap_key(n), 0.0) < caps.get(cap_key(n), math.inf)
                   and sum(hours.values()) < total_cap]
        jobs = [(n, members[n], spec.kind, rate, snr_threshold) for n in pending]
        for r in _map(jobs, workers):
            results[r["name"]] = r
            if not r["reason"]:
                key = cap_key(r["name"])
                hours[key] = hours.get(key, 0.0) + len(r["audio"]) / rate / 3600
        if len(pending) < len(chunk):
            drop("over_hours_cap", len(chunk) - len(pending))
    del members

    kept_files = 0
    for name in names:
        r = results.get(name)
        if r is None:
            continue
        if r["reason"]:
            drop(r["reason"])
        else:
            kept_files += 1

    kept_names = [n for n in names if n in results and not results[n]["reason"]]
    clips, audio_all = units_and_clips(spec, kept_names, assignments, results, rate)
    audio_rel = f"audio/{spec.name}.npy"
    _save_npy(_rate_dir(cache_dir, rate) / audio_rel, audio_all)
    entry = {
        "package": spec.package,
        "version": version,
        "kind": spec.kind,
        "split": split,
        "licence": spec.licence,
        "description": spec.description,
        "audio": audio_rel,
        "samples": int(len(audio_all)),
        "fingerprint": spec.fingerprint(rate, min_snr_db),
        "min_snr_db": snr_threshold if spec.kind == "speech" else None,
        "talker_cap": spec.talker_cap,
        "files_seen": files_seen,
        "files_kept": kept_files,
        "dropped": dict(sorted(dropped.items())),
        "build_seconds": round(time.monotonic() - started, 1),
        "clips": clips,
    }
    LOG.info("%s: kept %d of %d files (dropped %s), %.3f h %s, %.0f s", spec.name, kept_files, files_seen,
             entry["dropped"] or "none", len(audio_all) / rate / 3600, split, entry["build_seconds"])
    return entry


def build_corpus(
    cache_dir: str | os.PathLike[str] | None = None,
    rate: int = DEFAULT_RATE,
    sources: Sequence[SourceSpec] | None = None,
    force: bool = False,
    min_snr_db: float = MIN_SNR_DB,
    workers: int | None = None,
    teachers: bool = False,
) -> Corpus:
    """Build (or complete) the corpus cache and load it.

    Sources whose manifest entry has the same fingerprint and whose audio file
    is present are skipped unless ``force``. Reserved sources raise
    :class:`ReservedSourceError` before anything is downloaded. With ``teachers``
    (the ``build`` command's default), the files the SNR filter dropped from the
    training speech sources are cleaned by teacher denoisers into ``<source>-cleaned``
    sources (:mod:`model_export.teachers`; skipped with a warning when the teachers
    are not installed). Cleaned sources already in the cache stay either way.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    check_path_not_reserved(cache)
    specs = list(SOURCES if sources is None else sources)
    for spec in specs:
        check_not_reserved(spec.package)
        check_not_reserved(spec.name)
    check_split_table(specs)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise CorpusError(f"source names must be unique: {names}")
    path = _manifest_path(cache, rate)
    manifest = _read_manifest(path)
    if manifest is None or manifest.get("format") != CORPUS_FORMAT or manifest.get("sample_rate") != rate:
        manifest = _empty_manifest(rate, min_snr_db)
    manifest["min_snr_db"] = min_snr_db
    failed: list[str] = []
    for i, spec in enumerate(specs, 1):
        entry = manifest["sources"].get(spec.name)
        audio = _rate_dir(cache, rate) / f"audio/{spec.name}.npy"
        if (not force and entry is not None and entry.get("fingerprint") == spec.fingerprint(rate, min_snr_db)
                and audio.exists()):
            LOG.info("[%d/%d] %s: cached, skipping", i, len(specs), spec.name)
            continue
        LOG.info("[%d/%d] building %s", i, len(specs), spec.name)
        try:
            manifest["sources"][spec.name] = build_source(spec, cache, rate, min_snr_db, workers)
        except CorpusError as exc:  # build the others, then report
            LOG.error("%s: %s", spec.name, exc)
            failed.append(f"{spec.name}: {exc}")
            continue
        _write_manifest(path, manifest)
    if teachers:
        from model_export.teachers import build_cleaned_sources

        failed += build_cleaned_sources(manifest, specs, cache, rate, min_snr_db, force,
                                        on_entry=lambda: _write_manifest(path, manifest))
    _write_manifest(path, manifest)
    if failed:
        raise CorpusError(f"{len(failed)} source(s) failed (the others are cached; fix and run the build "
                          "again to complete it): " + "; ".join(failed))
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
    package: str = ""
    language: str | None = None
    noise_kind: str | None = None
    bandwidth_hz: float | None = None
    """Effective bandwidth (Hz) of the clip as recorded; None in caches that predate it."""


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
                    files=tuple(c.get("files", ())), package=entry.get("package", source),
                    language=c.get("language"), noise_kind=c.get("noise_kind"),
                    bandwidth_hz=None if c.get("bandwidth_hz") is None else float(c["bandwidth_hz"]),
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

    def origin(self, source: str) -> str:
        """The source whose files ``source`` holds: itself, or for a teacher-cleaned source (manifest
        ``cleaned_from``) the source it was cleaned from."""
        return self.manifest["sources"][source].get("cleaned_from") or source

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
        among its clips in proportion to duration (a teacher-cleaned source counts
        as part of the source it was cleaned from); ``"duration"``: proportional
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
                totals[self.origin(c.source)] = totals.get(self.origin(c.source), 0.0) + c.seconds
            w = np.array([c.seconds / totals[self.origin(c.source)] for c in clips])
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
                "split": entry.get("split"),
                "licence": entry.get("licence", ""),
                "talker_cap": entry.get("talker_cap"),
                "cleaned_by": entry.get("cleaned_by"),
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
            "splits": self.split_summary(),
            "sources": sources,
        }

    def split_summary(self) -> dict:
        """Per split: speech hours, talkers, languages, bandwidths, noise hours per kind, packages.

        ``talkers`` counts distinct talker labels; ``talkers_conservative`` caps each
        source's labels at its ``talker_cap`` (a source whose labels may over-split its
        cast). ``shared`` lists packages and talkers found in more than one split
        (empty unless the cache is inconsistent).
        """
        out: dict = {}
        for s in SPLITS:
            speech = self.clips("speech", s)
            noise = self.clips("noise", s)
            conservative = 0
            for origin in sorted({self.origin(c.source) for c in speech}):  # cleaned files: their source's talkers
                members = {c.source for c in speech if self.origin(c.source) == origin}
                labels = {c.talker for c in speech if c.source in members and c.talker}
                cap = max((self.manifest["sources"][m].get("talker_cap") or 0) for m in members)
                conservative += min(len(labels), cap) if cap else len(labels)
            talkers = {c.talker for c in speech if c.talker}
            kinds: dict[str, float] = {}
            for c in noise:
                kinds[c.noise_kind or "other"] = kinds.get(c.noise_kind or "other", 0.0) + c.seconds / 3600
            languages: dict[str, float] = {}
            for c in speech:
                languages[c.language or "und"] = languages.get(c.language or "und", 0.0) + c.seconds / 3600
            bands: dict[str, float] = {}
            for c in speech:
                band = "unknown" if c.bandwidth_hz is None else next(
                    (f"<={b}" for b in BANDWIDTH_REPORT_HZ if c.bandwidth_hz <= b), f">{BANDWIDTH_REPORT_HZ[-1]}")
                bands[band] = bands.get(band, 0.0) + c.seconds / 3600
            out[s] = {
                "speech_hours": round(sum(c.seconds for c in speech) / 3600, 3),
                "teacher_cleaned_speech_hours": round(sum(
                    c.seconds for c in speech if self.manifest["sources"][c.source].get("cleaned_by")) / 3600, 3),
                "talkers": len(talkers),
                "talkers_conservative": conservative,
                "languages": {k: round(v, 3) for k, v in sorted(languages.items())},
                "speech_bandwidth_hours": {k: round(v, 3) for k, v in sorted(bands.items())},
                "speech_packages": sorted({c.package for c in speech}),
                "noise_hours": round(sum(c.seconds for c in noise) / 3600, 3),
                "noise_kinds": {k: round(v, 3) for k, v in sorted(kinds.items())},
                "noise_packages": sorted({c.package for c in noise}),
            }
        packages: dict[str, set[str]] = {}
        talkers_split: dict[str, set[str]] = {}
        for c in self._clips:
            packages.setdefault(c.package, set()).add(c.split)
            if c.talker:
                talkers_split.setdefault(c.talker, set()).add(c.split)
        out["shared"] = {
            "packages": sorted(p for p, v in packages.items() if len(v) > 1),
            "talkers": sorted(t for t, v in talkers_split.items() if len(v) > 1),
        }
        return out


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
                       ("summary", "print hours, talkers, languages, noise kinds and packages per split")):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--cache", type=Path, default=None, help=f"cache directory (default {default_cache_dir()})")
        sub.add_argument("--rate", type=int, default=DEFAULT_RATE, help="sample rate in Hz (default 16000)")
        sub.add_argument("--json", action="store_true", help="print the full per-source summary (JSON)")
        if name == "build":
            sub.add_argument("--sources", nargs="+", metavar="NAME", help="build only these sources")
            sub.add_argument("--force", action="store_true", help="rebuild sources that are cached")
            sub.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
            sub.add_argument("--no-teachers", action="store_true",
                             help="do not clean the dropped training speech with teacher denoisers "
                                  "(model_export.teachers; skipped with a warning when they are not installed)")
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
            corpus = build_corpus(args.cache, args.rate, specs, force=args.force, workers=args.jobs,
                                  teachers=not args.no_teachers)
            summary = corpus.summary()
            LOG.info("corpus ready in %.0f s at %s: speech %s h, noise %s h, cache %.0f MB",
                     time.monotonic() - started, corpus.root, summary["hours"]["speech"],
                     summary["hours"]["noise"], _cache_size(corpus.root.parent) / 1e6)
        else:
            corpus = load_corpus(args.cache, args.rate)
            summary = corpus.summary()
        if args.json:
            json.dump(summary, sys.stdout, indent=1)
        else:
            json.dump({"format": summary["format"], "sample_rate": summary["sample_rate"],
                       "hours": summary["hours"], "splits": summary["splits"]}, sys.stdout, indent=1)
        print()
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
