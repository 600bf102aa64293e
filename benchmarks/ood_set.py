"""The quality benchmark's out-of-distribution (OOD) set: speech and noise that training and validation never saw.

Sources (none of them is in the training or validation split of the corpus):

* **Reserved evaluation packages** (``/work/shared/DATA.md``: never train, validate or tune on them),
  read here and only here:

  ==============================  ========  =======================================================
  package                         role      what is used
  ==============================  ========  =======================================================
  asterisk-core-sounds-fr-g722    speech    Canadian French prompts, one talker ("June"), G.722
  asterisk-core-sounds-it-g722    speech    Italian prompts, one talker ("Carlo"), G.722
  bucklespring-data               keyboard  recorded key press / release sounds of a buckling-spring
                                            keyboard, sequenced into typing
  sound-theme-freedesktop         alert     desktop alert and notification sounds (the spoken
                                            ``audio-channel-*`` and the test signal left out)
  hyperrogue-music                music     the game's music tracks (:data:`MUSIC_EXCERPT_S` per track)
  ==============================  ========  =======================================================

* **The corpus v2 test split** (:mod:`model_export.corpus`, whole packages held out of training and
  validation): its speech (festvox-ru, Asterisk Russian, the Czech Fish Fillets dub, ...) as targets
  and babble talkers, wideband clips only (effective bandwidth >= :data:`MIN_SPEECH_BANDWIDTH_HZ`).

* **Generated noise** (:mod:`model_export.noise_synth`): brown and pink noise, fan noise with
  blade-pass harmonics plus mains hum with harmonics.

Noise kinds (:data:`NOISE_KINDS`): ``babble`` (4-7 held-out talkers other than the target),
``brown``, ``pink``, ``hum_fan``, ``keyboard``, ``alert``, ``music`` and ``mix`` (two of the others,
the second 0-10 dB below the first). Each mixture is :data:`SECONDS` s: one target talker's
utterances joined with pauses, plus one noise at an SNR from :data:`SNRS` (the active-level SNR of
:func:`model_export.augment.snr_db`, the training mixer's definition), then levelled to an active
level in :data:`LEVEL_DBFS_RANGE` without peaks above :data:`PEAK_LIMIT`. The full set has
:data:`PER_CELL` mixtures for every kind x SNR (96); mixture ``(kind, snr, rep)`` draws everything
from ``numpy.random.default_rng([SEED, kind, snr, rep])``, so any subset is identical to the same
mixtures of the full set. ``--quick`` takes one mixture per kind, the SNRs rotating over the kinds.
The target talker alternates between the reserved talkers and the test-split talkers
(``(kind + rep) % 2``); within a pool a package is drawn first (all alike), then one of its talkers. No room simulation: the target is the dry speech.

**Narrowband versions** (:func:`narrowband_pairs`): the same mixtures through an 8 kHz stream
(resampled to 8 kHz and back to 16 kHz: what a 16 kHz system gets from a narrowband device) or
low-passed at 3.4 kHz (zero-phase Butterworth), noisy input *and* clean reference alike.

Fetching: :func:`fetch_reserved_deb` runs ``apt-get download`` into ``<cache>/debs`` (default
:func:`default_cache_dir`, ``$XDG_CACHE_HOME/quietmic/eval``; ``QUIETMIC_EVAL_CACHE`` overrides),
and :func:`load_reserved` decodes the members once into ``<cache>/<rate>/<package>_<version>.npz``.
This is the only code path that reads reserved packages. It accepts reserved packages only (the
corpus builder, :func:`model_export.corpus.fetch_deb`, refuses exactly those), and refuses a cache
inside the training corpus's cache, so reserved audio can never land where training reads.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from benchmarks.eval_sets import Pair, SetUnavailable
from benchmarks.metrics import snr_db as global_snr_db

LOG = logging.getLogger("quietmic.benchmarks.ood")

RATE = 16000
"""Rate of every mixture (Hz)."""

SET_NAME = "ood"

NOISE_KINDS = ("babble", "brown", "pink", "hum_fan", "keyboard", "alert", "music", "mix")
"""The noise kinds, in table order."""

MIX_PARTS = ("babble", "brown", "pink", "hum_fan", "keyboard", "alert", "music")
"""Kinds a ``mix`` mixture combines (two of them)."""

SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
"""SNR strata (dB, active speech level over active noise level)."""

PER_CELL = 2
"""Mixtures per kind x SNR in the full set (8 kinds x 6 SNRs x 2 = 96)."""

SECONDS = 5.0
"""Length of a mixture (s). DNSMOS repeats a clip shorter than 9.01 s and scores 9.01 s windows at a
1 s hop: a 5 s clip costs one window, an 8 s clip seven; with ten systems that decides whether the
default run fits in half an hour on two cores."""

SEED = 20261207
"""Seed of the whole set."""

LEVEL_DBFS_RANGE = (-35.0, -15.0)
"""Active level of the noisy mixture (dBFS, uniform), as in training's mixer."""

PEAK_LIMIT = 0.99
"""No mixture or reference peaks above this (full scale 1.0)."""

CLIP_LEVEL_JITTER_DB = 3.0
"""Each utterance of the target talker is levelled to a common active level +- this (dB)."""

PAUSE_S = (0.15, 0.6)
"""Pause between two utterances of the target talker (s, uniform)."""

LEAD_S = (0.1, 0.5)
"""Silence before the first utterance (s, uniform)."""

BABBLE_TALKERS = (4, 7)
"""Number of babble talkers (inclusive range)."""

MIX_SECOND_DB = (-10.0, 0.0)
"""Level of a ``mix`` mixture's second noise relative to its first (dB, uniform)."""

HUM_RELATIVE_DB = (-10.0, 0.0)
"""Level of the mains hum relative to the fan noise in ``hum_fan`` (dB, uniform)."""

TYPING_KEYS_PER_S = (5.0, 9.0)
"""Typing speed (keystrokes per second) within a burst."""

TYPING_HOLD_S = (0.05, 0.12)
"""Time between a key's press and its release (s)."""

TYPING_BURST_S = (0.8, 2.5)
"""Length of a burst of typing (a word or a few) before a pause (s)."""

TYPING_PAUSE_S = (0.25, 0.9)
"""Pause between bursts (s)."""

KEY_GAIN_DB = (-6.0, 0.0)
"""Loudness of one keystroke (dB, uniform)."""

ALERT_GAP_S = (0.4, 1.8)
"""Silence between two alert sounds (s)."""

ALERT_GAIN_DB = (-6.0, 0.0)
"""Loudness of one alert sound (dB, uniform)."""

MUSIC_SKIP_S = 15.0
"""Music tracks are read from this far in (s): past quiet intros."""

MUSIC_EXCERPT_S = 60.0
"""Seconds of each music track kept in the cache (from :data:`MUSIC_SKIP_S`)."""

MIN_SPEECH_S = 0.3
"""Speech files shorter than this after trimming are not used."""

SPEECH_TRIM_DB = -50.0
"""Leading and trailing frames of a speech file quieter than this (dBFS) are trimmed ..."""

SPEECH_TRIM_PAD_S = 0.05
"""... keeping this much (s)."""

MIN_TALKER_SECONDS = 20.0
"""A test-split talker needs this much speech (s) to be a target (babble takes any)."""

MIN_SPEECH_BANDWIDTH_HZ = 6800.0
"""Test-split speech clips below this effective bandwidth are not used (full-band set)."""

RESERVED_POOL = "reserved"
TEST_POOL = "test-split"

NARROWBAND_SETS = {
    "ood-nb8k": "through an 8 kHz stream (resampled to 8 kHz and back to 16 kHz)",
    "ood-lp3k4": "low-passed at 3.4 kHz (zero-phase Butterworth, order 8 each way)",
}
"""Narrowband versions of the OOD set: name -> what was done to noisy input and clean reference alike."""

NARROWBAND_RATE = 8000
"""The rate of ``ood-nb8k``'s stream (Hz)."""

LOWPASS_HZ = 3400.0
"""Cut-off of ``ood-lp3k4`` (Hz)."""

LOWPASS_ORDER = 8
"""Butterworth order of ``ood-lp3k4`` (applied forwards and backwards: zero phase)."""


@dataclass(frozen=True)
class ReservedSource:
    """One reserved evaluation package and what is read from it."""

    package: str
    role: str
    """``speech`` or a noise kind (``keyboard``, ``alert``, ``music``)."""
    patterns: tuple[str, ...]
    """Shell patterns of the member paths to read."""
    exclude: tuple[str, ...] = ()
    """Shell patterns of member paths to leave out."""
    talker: str | None = None
    """The talker of a speech package."""
    excerpt_s: float | None = None
    """Keep at most this many seconds of each file, from :data:`MUSIC_SKIP_S` (music)."""


RESERVED_SOURCES = (
    ReservedSource("asterisk-core-sounds-fr-g722", "speech", ("usr/share/asterisk/sounds/*.g722",),
                   exclude=("*/silence/*",), talker="asterisk-fr:June"),
    ReservedSource("asterisk-core-sounds-it-g722", "speech", ("usr/share/asterisk/sounds/*.g722",),
                   exclude=("*/silence/*",), talker="asterisk-it:Carlo"),
    ReservedSource("bucklespring-data", "keyboard", ("usr/share/buckle/wav/*.wav",)),
    ReservedSource("sound-theme-freedesktop", "alert", ("usr/share/sounds/freedesktop/stereo/*.oga",),
                   exclude=("*/audio-channel-*", "*/audio-test-signal.oga")),
    ReservedSource("hyperrogue-music", "music", ("usr/share/hyperrogue/music/*.ogg",), excerpt_s=MUSIC_EXCERPT_S),
)
"""What the OOD set reads from the reserved packages."""


class ReservedPackageError(ValueError):
    """A package that is not reserved for evaluation was asked for through the evaluation path."""


def is_reserved(package: str) -> bool:
    """Whether ``package`` is reserved for evaluation (:data:`model_export.corpus.RESERVED_PACKAGES`)."""
    from model_export.corpus import RESERVED_PACKAGES

    name = package.strip().lower()
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in RESERVED_PACKAGES)


def default_cache_dir() -> Path:
    """``$QUIETMIC_EVAL_CACHE``, else ``$XDG_CACHE_HOME/quietmic/eval`` (``~/.cache/quietmic/eval``)."""
    if os.environ.get("QUIETMIC_EVAL_CACHE"):
        return Path(os.environ["QUIETMIC_EVAL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "quietmic" / "eval"


def check_cache_dir(cache_dir: Path) -> None:
    """Refuse an evaluation cache inside the training corpus's cache (or holding it)."""
    from model_export.corpus import default_cache_dir as corpus_cache_dir

    corpus = Path(os.path.realpath(corpus_cache_dir()))
    mine = Path(os.path.realpath(cache_dir))
    if mine == corpus or corpus in mine.parents or mine in corpus.parents:
        raise SetUnavailable(
            f"the evaluation cache {cache_dir} overlaps the training corpus cache {corpus}: reserved evaluation "
            "packages must never sit where the corpus builder reads; pass another --eval-cache"
        )


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SetUnavailable(f"{command[0]} is not available: fetching the reserved evaluation packages needs "
                             "apt-get and dpkg-deb (a Debian-based system)") from None


def fetch_reserved_deb(package: str, debs_dir: Path, fetch: bool = True) -> Path:
    """The ``.deb`` of the reserved ``package`` in ``debs_dir``, downloaded with ``apt-get download`` if missing.

    Only reserved packages are accepted (:class:`ReservedPackageError` otherwise): this is the evaluation
    path; everything else goes through the corpus builder. A failed download runs ``apt-get update`` once
    and retries. ``fetch=False`` never downloads (:class:`SetUnavailable` when missing).
    """
    if not is_reserved(package):
        raise ReservedPackageError(
            f"{package!r} is not a reserved evaluation package; only the packages of "
            "model_export.corpus.RESERVED_PACKAGES are read through benchmarks.ood_set"
        )
    existing = sorted(debs_dir.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    if not fetch:
        raise SetUnavailable(f"{package} is not in {debs_dir} (downloads are off)")
    debs_dir.mkdir(parents=True, exist_ok=True)
    LOG.info("downloading the reserved evaluation package %s", package)
    result = _run(["apt-get", "download", package], cwd=debs_dir)
    if result.returncode != 0:
        LOG.info("apt-get download %s failed (%s); running apt-get update", package, result.stderr.strip()[-200:])
        update = _run(["apt-get", "update"])
        if update.returncode != 0:
            raise SetUnavailable(f"apt-get update failed ({update.stderr.strip()[-300:]}); run it as root, or "
                                 f"put {package}_*.deb into {debs_dir}")
        result = _run(["apt-get", "download", package], cwd=debs_dir)
        if result.returncode != 0:
            raise SetUnavailable(f"apt-get download {package} failed: {result.stderr.strip()[-300:]}; put "
                                 f"{package}_*.deb into {debs_dir}")
    found = sorted(debs_dir.glob(f"{package}_*.deb"))
    if not found:
        raise SetUnavailable(f"apt-get download {package} reported success but wrote no {package}_*.deb")
    return found[-1]


def _decode_member(source: ReservedSource, name: str, data: bytes, rate: int) -> np.ndarray:
    """One member as mono float32 at ``rate`` (speech trimmed, music cut to its excerpt); empty if unusable."""
    from model_export.corpus import decode, resample, trim

    audio, file_rate = decode(name, data)
    if source.excerpt_s is not None:
        start = int(MUSIC_SKIP_S * file_rate)
        if len(audio) < start + file_rate:  # a short track: keep it whole
            start = 0
        audio = audio[start : start + int(source.excerpt_s * file_rate)]
    audio = resample(audio, file_rate, rate)
    if source.role == "speech":
        audio = trim(audio, rate, SPEECH_TRIM_DB, SPEECH_TRIM_PAD_S)
        if len(audio) < MIN_SPEECH_S * rate:
            return np.zeros(0, np.float32)
    return np.ascontiguousarray(audio, dtype=np.float32)


def load_reserved(source: ReservedSource, cache_dir: Path | None = None, rate: int = RATE,
                  fetch: bool = True) -> dict[str, np.ndarray]:
    """``{member path: audio}`` of one reserved package, decoded once into ``<cache>/<rate>/``.

    The cache file is ``<package>_<version>.npz`` (``audio``: the clips concatenated, ``lengths``,
    ``names``); it is rebuilt when missing or unreadable.
    """
    from model_export.corpus import CorpusError, deb_version, read_members

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    check_cache_dir(cache_dir)
    deb = fetch_reserved_deb(source.package, cache_dir / "debs", fetch)
    try:
        version = deb_version(deb)
    except CorpusError as exc:
        raise SetUnavailable(f"cannot read {deb}: {exc}; delete it and run again") from None
    path = cache_dir / str(rate) / f"{source.package}_{version.replace(':', '%3a')}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                audio, lengths, names = data["audio"], data["lengths"], data["names"]
            bounds = np.concatenate([[0], np.cumsum(lengths)])
            return {str(n): audio[bounds[i] : bounds[i + 1]] for i, n in enumerate(names)}
        except (OSError, ValueError, KeyError) as exc:
            LOG.warning("rebuilding the unreadable cache file %s (%s)", path, exc)
    try:
        members = read_members(deb, source.patterns)
    except CorpusError as exc:
        raise SetUnavailable(str(exc)) from None
    clips: dict[str, np.ndarray] = {}
    for name in sorted(members):
        if any(fnmatch.fnmatchcase(name, p) for p in source.exclude):
            continue
        try:
            audio = _decode_member(source, name, members[name], rate)
        except Exception as exc:  # noqa: BLE001 - one undecodable file must not sink the set
            LOG.warning("%s: cannot decode %s (%s); skipped", source.package, name, exc)
            continue
        if len(audio):
            clips[name] = audio
    if not clips:
        raise SetUnavailable(f"{deb} holds no usable member matching {', '.join(source.patterns)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    names = sorted(clips)
    np.savez(tmp, audio=np.concatenate([clips[n] for n in names]),
             lengths=np.array([len(clips[n]) for n in names], dtype=np.int64), names=np.array(names))
    os.replace(tmp, path)
    return clips


# --- sources ---------------------------------------------------------------------------------------


@dataclass
class OodSources:
    """Everything the OOD mixtures are made of, at :data:`RATE`.

    ``speech``: talker -> utterances; ``pools``: pool name (:data:`RESERVED_POOL`,
    :data:`TEST_POOL`) -> talkers that may be targets; ``keyboard``: key code -> (press, release);
    ``alerts`` and ``music``: name -> audio; ``provenance``: package -> role / version notes.
    """

    speech: dict[str, list[np.ndarray]]
    pools: dict[str, list[str]]
    keyboard: dict[str, tuple[np.ndarray, np.ndarray | None]]
    alerts: dict[str, np.ndarray]
    music: dict[str, np.ndarray]
    talker_package: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        """Raise :class:`SetUnavailable` when something a noise kind needs is missing."""
        missing = [what for what, ok in (("target talkers", any(self.pools.values())),
                                         ("keyboard sounds", bool(self.keyboard)), ("alert sounds", bool(self.alerts)),
                                         ("music", bool(self.music)), ("babble talkers", len(self.speech) >= 2))
                   if not ok]
        if missing:
            raise SetUnavailable(f"the OOD set lacks {', '.join(missing)}")


def keyboard_pairs(clips: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Bucklespring's ``<code>-0.wav`` (press) and ``<code>-1.wav`` (release) paired per key code."""
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name in sorted(clips):
        stem = Path(name).stem
        code, _, which = stem.rpartition("-")
        if which == "0" and code:
            release = next((clips[n] for n in clips if Path(n).stem == f"{code}-1"), None)
            out[code] = (clips[name], release)
    return out


def test_split_speech(corpus) -> tuple[dict[str, list[np.ndarray]], dict[str, str]]:
    """The corpus test split's wideband speech by talker, and each talker's package."""
    speech: dict[str, list[np.ndarray]] = {}
    package: dict[str, str] = {}
    for clip in corpus.clips("speech", "test"):
        if clip.bandwidth_hz is not None and clip.bandwidth_hz < MIN_SPEECH_BANDWIDTH_HZ:
            continue
        talker = f"{clip.source}:{clip.talker or clip.group}"
        speech.setdefault(talker, []).append(corpus.audio(clip))
        package[talker] = clip.package
    return speech, package


def load_sources(cache_dir: str | Path | None = None, corpus=None, corpus_cache: str | Path | None = None,
                 fetch: bool = True) -> OodSources:
    """The reserved packages (fetched and decoded once) and the corpus test split (when built)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    speech: dict[str, list[np.ndarray]] = {}
    pools: dict[str, list[str]] = {RESERVED_POOL: [], TEST_POOL: []}
    talker_package: dict[str, str] = {}
    provenance: dict[str, str] = {}
    noise: dict[str, dict[str, np.ndarray]] = {}
    for source in RESERVED_SOURCES:
        clips = load_reserved(source, cache, RATE, fetch)
        provenance[source.package] = f"{source.role}, {len(clips)} files, " \
                                     f"{sum(len(c) for c in clips.values()) / RATE / 60:.1f} min"
        if source.role == "speech":
            assert source.talker is not None
            speech[source.talker] = list(clips.values())
            pools[RESERVED_POOL].append(source.talker)
            talker_package[source.talker] = source.package
        else:
            noise[source.role] = clips
    if corpus is None:
        from model_export.corpus import CorpusError, load_corpus

        try:
            corpus = load_corpus(corpus_cache, RATE)
        except CorpusError as exc:
            LOG.warning("OOD set without the corpus test split (%s): reserved talkers only", exc)
    if corpus is not None:
        test_speech, test_package = test_split_speech(corpus)
        for talker, clips in sorted(test_speech.items()):
            speech[talker] = clips
            talker_package[talker] = test_package[talker]
            if sum(len(c) for c in clips) >= MIN_TALKER_SECONDS * RATE:
                pools[TEST_POOL].append(talker)
        for pkg in sorted(set(test_package.values())):
            provenance[pkg] = "test-split speech"
    sources = OodSources(speech=speech, pools=pools, keyboard=keyboard_pairs(noise.get("keyboard", {})),
                         alerts=dict(noise.get("alert", {})), music=dict(noise.get("music", {})),
                         talker_package=talker_package, provenance=provenance)
    sources.check()
    return sources


# --- mixtures --------------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to an active level of 1 (float64)."""
    from model_export.augment import active_rms

    level = active_rms(x, RATE)
    if level <= 0.0:
        raise ValueError("silent noise")
    return np.asarray(x, dtype=np.float64) / level


def _loop_to(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``x`` from a random start, looped when shorter."""
    x = np.asarray(x, dtype=np.float64)
    start = int(rng.integers(max(1, len(x) - n + 1))) if len(x) > n else 0
    out = x[start : start + n]
    while len(out) < n:
        out = np.concatenate([out, x[: n - len(out)]])
    return out


def talker_speech(clips: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of one talker: a short lead silence, then utterances (levelled, random order) with pauses."""
    from model_export.augment import active_rms

    out = np.zeros(n)
    pos = int(rng.uniform(*LEAD_S) * RATE)
    order = rng.permutation(len(clips))
    i = 0
    while pos < n - int(MIN_SPEECH_S * RATE):
        clip = np.asarray(clips[order[i % len(order)]], dtype=np.float64)
        i += 1
        level = active_rms(clip, RATE)
        if level <= 0.0:
            continue
        gain = 0.1 / level * 10.0 ** (rng.uniform(-CLIP_LEVEL_JITTER_DB, CLIP_LEVEL_JITTER_DB) / 20.0)
        stop = min(n, pos + len(clip))
        out[pos:stop] += gain * clip[: stop - pos]
        pos = stop + int(rng.uniform(*PAUSE_S) * RATE)
        if i > 10 * len(order) + 100:  # only silent clips: give up rather than loop
            break
    return out


def typing(keys: Mapping[str, tuple[np.ndarray, np.ndarray | None]], n: int, rng: np.random.Generator) -> np.ndarray:
    """Bursts of keystrokes (press, then release after :data:`TYPING_HOLD_S`) with pauses between."""
    codes = sorted(keys)
    out = np.zeros(n)
    speed = rng.uniform(*TYPING_KEYS_PER_S)
    t = rng.uniform(0.0, 0.3)
    burst_end = t + rng.uniform(*TYPING_BURST_S)

    def place(sound: np.ndarray, at: float, gain: float) -> None:
        start = int(at * RATE)
        if start >= n:
            return
        stop = min(n, start + len(sound))
        out[start:stop] += gain * sound[: stop - start]

    while t * RATE < n:
        press, release = keys[codes[int(rng.integers(len(codes)))]]
        gain = 10.0 ** (rng.uniform(*KEY_GAIN_DB) / 20.0)
        place(press, t, gain)
        if release is not None:
            place(release, t + rng.uniform(*TYPING_HOLD_S), gain)
        t += rng.exponential(1.0 / speed) + 0.04
        if t > burst_end:
            t += rng.uniform(*TYPING_PAUSE_S)
            burst_end = t + rng.uniform(*TYPING_BURST_S)
    return out


def alert_sounds(alerts: Mapping[str, np.ndarray], n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Alert sounds one after another with gaps of :data:`ALERT_GAP_S`; the first starts within 0.5 s."""
    names = sorted(alerts)
    out = np.zeros(n)
    used = []
    pos = int(rng.uniform(0.0, 0.5) * RATE)
    while pos < n:
        name = names[int(rng.integers(len(names)))]
        sound = np.asarray(alerts[name], dtype=np.float64)
        stop = min(n, pos + len(sound))
        out[pos:stop] += 10.0 ** (rng.uniform(*ALERT_GAIN_DB) / 20.0) * _unit(sound)[: stop - pos]
        used.append(Path(name).stem)
        pos = stop + int(rng.uniform(*ALERT_GAP_S) * RATE)
    return out, used


def make_noise(kind: str, sources: OodSources, n: int, rng: np.random.Generator, target: str) -> tuple[np.ndarray, dict]:
    """``n`` samples of noise ``kind`` (active level 1) and what it was made of."""
    from model_export import noise_synth

    if kind == "babble":
        others = {t: c for t, c in sources.speech.items() if t != target}
        count = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
        names = sorted(others)
        chosen = [names[i] for i in rng.permutation(len(names))[:count]]
        noise = noise_synth.babble(n, RATE, rng, speech={t: others[t] for t in chosen}, n_talkers=count)
        return _unit(noise), {"babble_talkers": chosen}
    if kind in ("brown", "pink"):
        return _unit(noise_synth.coloured_noise(n, RATE, rng, colour=kind)), {}
    if kind == "hum_fan":
        relative = rng.uniform(*HUM_RELATIVE_DB)
        noise = _unit(noise_synth.fan_noise(n, RATE, rng)) + 10.0 ** (relative / 20.0) * _unit(noise_synth.hum(n, RATE, rng))
        return _unit(noise), {"hum_relative_db": round(relative, 2)}
    if kind == "keyboard":
        return _unit(typing(sources.keyboard, n, rng)), {}
    if kind == "alert":
        noise, used = alert_sounds(sources.alerts, n, rng)
        return _unit(noise), {"alerts": used}
    if kind == "music":
        name = sorted(sources.music)[int(rng.integers(len(sources.music)))]
        return _unit(_loop_to(sources.music[name], n, rng)), {"track": Path(name).stem}
    if kind == "mix":
        first, second = (MIX_PARTS[i] for i in rng.choice(len(MIX_PARTS), size=2, replace=False))
        a, info_a = make_noise(first, sources, n, rng, target)
        b, info_b = make_noise(second, sources, n, rng, target)
        relative = rng.uniform(*MIX_SECOND_DB)
        return _unit(a + 10.0 ** (relative / 20.0) * b), {
            "mix": [first, second], "mix_second_db": round(relative, 2), **info_a, **info_b}
    raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(NOISE_KINDS)}")


def make_mixture(sources: OodSources, kind: str, snr: float, rep: int, *, seconds: float = SECONDS,
                 seed: int = SEED, snrs: Sequence[float] = SNRS) -> Pair:
    """Mixture ``rep`` of ``kind`` at ``snr`` dB (see the module docstring); deterministic."""
    from model_export.augment import active_rms
    from model_export.augment import snr_db as active_snr_db

    kind_index, snr_index = NOISE_KINDS.index(kind), list(snrs).index(snr)
    rng = np.random.default_rng([seed, kind_index, snr_index, rep])
    n = int(round(seconds * RATE))
    pools = [p for p in (RESERVED_POOL, TEST_POOL) if sources.pools.get(p)]
    pool = pools[(kind_index + rep) % len(pools)]
    packages = sorted({sources.talker_package.get(t, t) for t in sources.pools[pool]})
    package = packages[int(rng.integers(len(packages)))]  # packages weigh alike, however many labels each has
    talkers = sorted(t for t in sources.pools[pool] if sources.talker_package.get(t, t) == package)
    target = talkers[int(rng.integers(len(talkers)))]
    speech = talker_speech(sources.speech[target], n, rng)
    noise, noise_info = make_noise(kind, sources, n, rng, target)
    noise *= active_rms(speech, RATE) * 10.0 ** (-snr / 20.0)
    noisy = speech + noise
    level = rng.uniform(*LEVEL_DBFS_RANGE)
    gain = 10.0 ** (level / 20.0) / active_rms(noisy, RATE)
    peak = max(np.max(np.abs(noisy)), np.max(np.abs(speech))) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    clean32 = (speech * gain).astype(np.float32)
    noisy32 = (noisy * gain).astype(np.float32)
    info = {"noise_kind": kind, "stratum_snr_db": float(snr), "rep": rep, "talker": target, "speech_pool": pool,
            "speech_package": sources.talker_package.get(target, ""),
            "snr_db": round(global_snr_db(clean32, noisy32), 2),
            "active_snr_db": round(active_snr_db(clean32, noisy32 - clean32, RATE), 2),
            "level_dbfs": round(20.0 * math.log10(active_rms(noisy32, RATE) + 1e-12), 2), **noise_info}
    return Pair(SET_NAME, f"{kind}_snr{snr:+g}_{rep}", noisy32, clean32, info)


def cells(quick: bool = False, per_cell: int = PER_CELL, snrs: Sequence[float] = SNRS,
          kinds: Sequence[str] = NOISE_KINDS) -> list[tuple[str, float, int]]:
    """``(kind, snr, rep)`` of every mixture: the full grid, or for ``quick`` one per kind (SNRs rotating)."""
    if quick:
        return [(kind, snrs[NOISE_KINDS.index(kind) % len(snrs)], 0) for kind in kinds]
    return [(kind, snr, rep) for rep in range(per_cell) for snr in snrs for kind in kinds]


def ood_pairs(sources: OodSources | None = None, *, quick: bool = False, per_cell: int = PER_CELL,
              seconds: float = SECONDS, seed: int = SEED, snrs: Sequence[float] = SNRS,
              kinds: Sequence[str] = NOISE_KINDS, cache_dir: str | Path | None = None, corpus=None,
              corpus_cache: str | Path | None = None, fetch: bool = True) -> list[Pair]:
    """The ``ood`` set (sources loaded with :func:`load_sources` unless given)."""
    if sources is None:
        sources = load_sources(cache_dir, corpus, corpus_cache, fetch)
    return [make_mixture(sources, kind, snr, rep, seconds=seconds, seed=seed, snrs=snrs)
            for kind, snr, rep in cells(quick, per_cell, snrs, kinds)]


# --- narrowband ------------------------------------------------------------------------------------


def band_limit(x: np.ndarray, set_name: str) -> np.ndarray:
    """``x`` (16 kHz) as set ``set_name`` of :data:`NARROWBAND_SETS` band-limits it; zero-phase, same length."""
    from scipy.signal import butter, resample_poly, sosfiltfilt

    x = np.asarray(x, dtype=np.float64)
    if set_name == "ood-nb8k":
        g = math.gcd(RATE, NARROWBAND_RATE)
        down = resample_poly(x, NARROWBAND_RATE // g, RATE // g)
        up = resample_poly(down, RATE // g, NARROWBAND_RATE // g)
        return np.pad(up, (0, max(0, len(x) - len(up))))[: len(x)].astype(np.float32)
    if set_name == "ood-lp3k4":
        sos = butter(LOWPASS_ORDER, LOWPASS_HZ, btype="low", fs=RATE, output="sos")
        return sosfiltfilt(sos, x).astype(np.float32)
    raise ValueError(f"unknown narrowband set {set_name!r}; known: {', '.join(NARROWBAND_SETS)}")


def narrowband_pairs(pairs: Sequence[Pair], set_name: str) -> list[Pair]:
    """``pairs`` band-limited as ``set_name`` says, noisy and clean alike (same ids, SNRs re-measured)."""
    out = []
    for p in pairs:
        noisy, clean = band_limit(p.noisy, set_name), band_limit(p.clean, set_name)
        info = {**p.info, "band": set_name, "fullband_snr_db": p.info.get("snr_db"),
                "snr_db": round(global_snr_db(clean, noisy), 2)}
        out.append(Pair(set_name, p.id, noisy, clean, info))
    return out
