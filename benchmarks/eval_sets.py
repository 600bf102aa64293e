"""The quality benchmark's evaluation sets: ``(noisy, clean)`` pairs at 16 kHz with what they are.

``spear`` - real noisy recordings (SpEAR, ``/work/shared/eval/spear``; evaluation only)
    ``Noisy_Recordings/<sent>_<noise>r1_16.wav`` paired with the clean room recording of the same
    sentence ``Noisy_Recordings/<sent>r1_16.wav`` (its README's rule), plus
    ``scholars_white_16.wav``, the one file of that series whose name lacks ``r1``: 32 pairs, five
    sentences x six noises (burst, f16, factory, pink, volvo, white) plus ``tips_f16`` and
    ``vega_pink``. Each pair is checked: the lag of the noisy file behind the clean one
    (cross-correlation, within +-25 ms) is removed if it is not 0, and both are cut to their common
    length (some noisy files are 2,000-6,000 samples shorter or longer at the end). The SNR is
    estimated as clean power over (noisy - clean) power after alignment.
``spear-lombard`` - live talkers speaking in noise (SpEAR ``Lombard/``): ``<talker>_<noise>R*_16.wav``
    against the extracted reference ``T_<talker>_<noise>R*_16.wav`` (noisy minus the recorded noise;
    its residual noise is 20-30 dB down), 5 pairs.
``spear-sweep`` - SpEAR's SNR sweeps, not in the default run: ``tips_f16r<N>`` / ``vega_pinkr<N>``
    (``rn<N>``: -N) are one recording with the noise at N dB; the ones not already in ``spear``.
``spear-all`` - not a set of its own: the report's name for ``spear`` and ``spear-lombard`` together
    (every SpEAR noisy recording with a clean reference: 32 + 5 = 37 pairs), summarised from their rows.
``ood`` - out of distribution: the reserved evaluation packages' talkers and noises (Asterisk French
    and Italian prompts; bucklespring keyboard, freedesktop alert sounds, hyperrogue music) and the
    corpus test split's talkers, with generated brown/pink noise, fan + hum and babble of held-out
    talkers, 8 noise kinds x 6 SNRs x 2 (96 mixtures of 5 s; ``--quick``: 8), each labelled with its
    noise kind and SNR. See :mod:`benchmarks.ood_set` (how the reserved packages are fetched).
``ood-nb8k``, ``ood-lp3k4`` - the ``ood`` mixtures through an 8 kHz stream / low-passed at 3.4 kHz,
    scored against equally band-limited clean speech (:data:`NARROWBAND_METRICS`, no DNSMOS).
``clean`` - clean speech alone (input = reference), for how much a system changes speech it should
    leave alone: the distinct SpEAR clean room recordings of ``spear`` and the clean side of the first
    :data:`CLEAN_SYNTHETIC` synthetic examples of the 20 dB stratum (held-out talkers, EQ'd / band-limited
    and levelled as the mixes). Scored like the others, plus the level of word onsets
    (:func:`benchmarks.metrics.onset_loss_db`).
``synthetic`` - a deterministic test set from the corpus **test** split (held-out talkers and
    held-out noise groups; see :mod:`model_export.corpus`) mixed by
    :class:`model_export.augment.Mixer` with every example drawn from its own generator
    ``default_rng([seed, stratum, index])``, stratified over SNRs: the mixer's SNR range is set to
    exactly the stratum's SNR. Noisy speech only (no clean-only / noise-only examples) and no room
    simulation, so that the target is unambiguously the dry (EQ'd / band-limited, as the mix)
    speech; everything else (real and generated noises, second noises, EQ, speed, band limits,
    levels) as in training. Default 20 examples of 5 s per SNR; ``--quick`` takes the first 2.
    Talkers are held out except festvox-ru's single talker, whose sentences are split instead.

Reserved data: everything here is evaluation-only; nothing in this module feeds training.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks.metrics import estimate_lag, snr_db

RATE = 16000

SPEAR_DIR = Path(os.environ.get("QUIETMIC_SPEAR_DIR", "/work/shared/eval/spear"))
"""Where SpEAR lives (``QUIETMIC_SPEAR_DIR`` overrides)."""

SPEAR_NOISES = ("burst", "f16", "factory", "pink", "volvo", "white")

SYNTHETIC_SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
SYNTHETIC_PER_SNR = 20
SYNTHETIC_SECONDS = 5.0
"""5 s: DNSMOS scores a clip shorter than 9.01 s by repeating it, and a 5 s clip (repeated to 10 s)
takes one 9.01 s window where a 6 s clip (12 s) takes three - a third of the run's DNSMOS time."""
SYNTHETIC_SEED = 20250601
QUICK_SECONDS = 5.0

MAX_ALIGN_LAG = 400
"""Largest lag (samples, 25 ms) searched when checking that a SpEAR pair is aligned."""

SETS = ("spear", "spear-lombard", "spear-sweep", "synthetic", "ood", "ood-nb8k", "ood-lp3k4", "clean")
DEFAULT_SETS = ("spear", "spear-lombard", "synthetic", "ood", "ood-nb8k", "ood-lp3k4", "clean")

COMBINED_SETS: dict[str, tuple[str, ...]] = {"spear-all": ("spear", "spear-lombard")}
"""Report-only sets summarised from the rows of their parts (nothing is scored twice); naming one in
``--sets`` runs its parts."""

OOD_SETS = ("ood", "ood-nb8k", "ood-lp3k4")
NARROWBAND = {"ood-nb8k": "ood", "ood-lp3k4": "ood"}
"""Narrowband set -> the full-band set of the same mixtures."""

NARROWBAND_METRICS = ("pesq", "estoi", "si_sdr")
"""What the narrowband sets are scored with (DNSMOS and STOI left out: time)."""
CLEAN_SYNTHETIC = 20
"""Synthetic clean examples in the ``clean`` set (``--quick``: 2)."""


class SetUnavailable(RuntimeError):
    """The data of a set is not there (SpEAR folder or corpus cache missing)."""


@dataclass
class Pair:
    """One evaluation example: 16 kHz float32 ``noisy`` and ``clean`` of the same length."""

    set: str
    id: str
    noisy: np.ndarray
    clean: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.noisy) / RATE


def _read(path: Path) -> np.ndarray:
    import soundfile

    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if rate != RATE:
        raise ValueError(f"{path}: {rate} Hz, expected {RATE}")
    return audio.mean(axis=1)


def align_pair(noisy: np.ndarray, clean: np.ndarray, max_lag: int = MAX_ALIGN_LAG) -> tuple[np.ndarray, np.ndarray, int]:
    """``(noisy, clean, lag)``: the lag of ``noisy`` behind ``clean`` removed, both cut to the common length."""
    n = min(len(noisy), len(clean))
    lag = estimate_lag(clean[:n], noisy[:n], max_lag)
    if lag > 0:
        noisy = noisy[lag:]
    elif lag < 0:
        clean = clean[-lag:]
    n = min(len(noisy), len(clean))
    return np.ascontiguousarray(noisy[:n]), np.ascontiguousarray(clean[:n]), lag


_SPEAR_NAME = re.compile(r"^(?P<sent>[a-z]+)_(?P<noise>" + "|".join(SPEAR_NOISES) + r")(?P<rec>r1)?_16\.wav$")
_SWEEP_NAME = re.compile(r"^(?P<sent>[a-z]+)_(?P<noise>" + "|".join(SPEAR_NOISES) + r")r(?P<neg>n?)(?P<snr>\d+)_16\.wav$")
_LOMBARD_NAME = re.compile(r"^(?P<talker>[a-z]+)_(?P<noise>[a-z0-9]+)(?P<rec>R\d+)_16\.wav$")


def _spear_pair(set_name: str, noisy_path: Path, clean_path: Path, info: dict) -> Pair:
    noisy_raw, clean_raw = _read(noisy_path), _read(clean_path)
    noisy, clean, lag = align_pair(noisy_raw, clean_raw)
    info = {**info, "noisy_file": noisy_path.name, "clean_file": clean_path.name, "align_lag": lag,
            "length_noisy": len(noisy_raw), "length_clean": len(clean_raw),
            "snr_db": round(snr_db(clean, noisy), 2)}
    return Pair(set_name, noisy_path.name.removesuffix("_16.wav"), noisy, clean, info)


def spear_pairs(root: str | Path | None = None) -> list[Pair]:
    """The ``spear`` set (see the module docstring), sorted by file name."""
    folder = Path(root or SPEAR_DIR) / "Noisy_Recordings"
    if not folder.is_dir():
        raise SetUnavailable(f"SpEAR not found at {folder}")
    pairs = []
    for name in sorted(os.listdir(folder)):
        m = _SPEAR_NAME.match(name)
        if not m:
            continue
        clean = folder / f"{m['sent']}r1_16.wav"
        if not clean.is_file():
            continue
        pairs.append(_spear_pair("spear", folder / name, clean, {"sentence": m["sent"], "noise": m["noise"]}))
    return pairs


def spear_sweep_pairs(root: str | Path | None = None) -> list[Pair]:
    """The ``spear-sweep`` set: the SNR-sweep recordings not already in :func:`spear_pairs`."""
    folder = Path(root or SPEAR_DIR) / "Noisy_Recordings"
    if not folder.is_dir():
        raise SetUnavailable(f"SpEAR not found at {folder}")
    pairs = []
    for name in sorted(os.listdir(folder)):
        m = _SWEEP_NAME.match(name)
        if not m or _SPEAR_NAME.match(name):
            continue
        clean = folder / f"{m['sent']}r1_16.wav"
        if not clean.is_file():
            continue
        nominal = -int(m["snr"]) if m["neg"] else int(m["snr"])
        pairs.append(_spear_pair("spear-sweep", folder / name, clean,
                                 {"sentence": m["sent"], "noise": m["noise"], "nominal_snr_db": nominal}))
    return pairs


def lombard_pairs(root: str | Path | None = None) -> list[Pair]:
    """The ``spear-lombard`` set: each live recording against its extracted ``T_`` reference."""
    folder = Path(root or SPEAR_DIR) / "Lombard"
    if not folder.is_dir():
        raise SetUnavailable(f"SpEAR Lombard recordings not found at {folder}")
    pairs = []
    for name in sorted(os.listdir(folder)):
        m = _LOMBARD_NAME.match(name)
        if not m or name.startswith("T_"):
            continue
        clean = folder / f"T_{name}"
        if clean.is_file():
            pairs.append(_spear_pair("spear-lombard", folder / name, clean, {"talker": m["talker"], "noise": m["noise"]}))
    return pairs


def synthetic_pairs(
    corpus=None,
    *,
    snrs: Sequence[float] = SYNTHETIC_SNRS,
    per_snr: int = SYNTHETIC_PER_SNR,
    seconds: float = SYNTHETIC_SECONDS,
    seed: int = SYNTHETIC_SEED,
    cache_dir: str | Path | None = None,
) -> list[Pair]:
    """The ``synthetic`` set: ``per_snr`` examples of ``seconds`` at each SNR, from the corpus test split.

    ``corpus`` is a loaded :class:`model_export.corpus.Corpus` (at 16 kHz), or
    None to load the default cache (``cache_dir`` overrides its place).
    """
    from model_export.augment import MixConfig, Mixer
    from model_export.augment import snr_db as active_snr_db

    if corpus is None:
        from model_export.corpus import CorpusError, load_corpus

        try:
            corpus = load_corpus(cache_dir, RATE)
        except CorpusError as exc:
            raise SetUnavailable(f"corpus not available: {exc}") from None
    if corpus.sample_rate != RATE:
        raise ValueError(f"the corpus is at {corpus.sample_rate} Hz; the benchmark needs {RATE}")
    if not corpus.speech("test"):
        raise SetUnavailable("the corpus has no test-split speech")
    pairs = []
    for stratum, snr in enumerate(snrs):
        config = MixConfig(sample_rate=RATE, seconds=seconds, snr_db_range=(float(snr), float(snr)),
                           p_clean_only=0.0, p_noise_only=0.0, p_reverb=0.0)
        mixer = Mixer.from_corpus(corpus, "test", seed=seed, config=config)
        for index in range(per_snr):
            example = mixer.example(np.random.default_rng([seed, stratum, index]))
            info = dict(example.info)
            info["mix_snr_db"] = info.pop("snr_db", None)  # what the mixer was asked for (= the stratum)
            info.update(stratum_snr_db=float(snr), index=index,
                        snr_db=round(snr_db(example.clean, example.noisy), 2),
                        active_snr_db=round(active_snr_db(example.clean, example.noisy - example.clean, RATE), 2))
            pairs.append(Pair("synthetic", f"snr{snr:+g}_{index:02d}", example.noisy, example.clean, info))
    return pairs


def load_set(name: str, *, quick: bool = False, spear_dir: str | Path | None = None, corpus=None,
             corpus_cache: str | Path | None = None, per_snr: int | None = None,
             seconds: float | None = None, eval_cache: str | Path | None = None, fetch: bool = True,
             ood_base: list[Pair] | None = None, ood_per_cell: int | None = None) -> list[Pair]:
    """Set ``name`` (one of :data:`SETS`); ``quick`` takes a small, fixed part of it.

    The OOD sets read the reserved evaluation packages from ``eval_cache`` (downloading them unless
    ``fetch`` is False); a narrowband set is made from ``ood_base`` (the ``ood`` pairs) when given.
    ``per_snr`` / ``seconds`` are the synthetic set's, ``ood_per_cell`` the OOD set's mixtures per
    noise kind x SNR.
    """
    if name in OOD_SETS:
        from benchmarks import ood_set

        base = ood_base
        if base is None:
            try:
                base = ood_set.ood_pairs(quick=quick, per_cell=ood_per_cell or ood_set.PER_CELL, cache_dir=eval_cache,
                                         corpus=corpus, corpus_cache=corpus_cache, fetch=fetch)
            except ood_set.ReservedPackageError as exc:
                raise SetUnavailable(str(exc)) from None
        return list(base) if name == "ood" else ood_set.narrowband_pairs(base, name)
    if name == "spear":
        pairs = spear_pairs(spear_dir)
        if quick:  # one sentence x six noises
            sentences = sorted({p.info["sentence"] for p in pairs})[:1]
            pairs = [p for p in pairs if p.info["sentence"] in sentences]
        return pairs
    if name == "spear-lombard":
        pairs = lombard_pairs(spear_dir)
        return pairs[:1] if quick else pairs
    if name == "spear-sweep":
        pairs = spear_sweep_pairs(spear_dir)
        return [p for p in pairs if p.info["sentence"] == "tips"][::3] if quick else pairs
    if name == "clean":
        return clean_pairs(spear_dir, corpus, corpus_cache, quick)
    if name == "synthetic":
        return synthetic_pairs(corpus, per_snr=per_snr or (2 if quick else SYNTHETIC_PER_SNR),
                               seconds=seconds or (QUICK_SECONDS if quick else SYNTHETIC_SECONDS), cache_dir=corpus_cache)
    raise ValueError(f"unknown set {name!r}; choose from {', '.join(SETS)}")


def clean_pairs(spear_dir: str | Path | None = None, corpus=None, corpus_cache: str | Path | None = None,
                quick: bool = False) -> list[Pair]:
    """The ``clean`` set: clean speech as both input and reference (see the module docstring)."""
    pairs: list[Pair] = []
    spear_count = 2 if quick else None
    try:
        seen: set[str] = set()
        for pair in spear_pairs(spear_dir):
            name = pair.info["clean_file"]
            if name not in seen:
                seen.add(name)
                clean = _read(Path(spear_dir or SPEAR_DIR) / "Noisy_Recordings" / name)
                pairs.append(Pair("clean", name.removesuffix("_16.wav"), clean, clean, {"source": "spear"}))
    except SetUnavailable:
        pass
    pairs = pairs[:spear_count]
    try:
        synthetic = synthetic_pairs(corpus, snrs=(SYNTHETIC_SNRS[-1],), per_snr=2 if quick else CLEAN_SYNTHETIC,
                                    cache_dir=corpus_cache)
    except SetUnavailable:
        synthetic = []
    for pair in synthetic:
        pairs.append(Pair("clean", f"synthetic_{pair.id}", pair.clean, pair.clean, {"source": "synthetic"}))
    if not pairs:
        raise SetUnavailable("neither SpEAR nor the corpus is available")
    return pairs


def kind_groups(pairs: Sequence[Pair]) -> list[tuple[str, list[int]]]:
    """``(noise kind, indices)`` of pairs labelled with ``noise_kind``, in the OOD set's kind order."""
    from benchmarks.ood_set import NOISE_KINDS

    kinds = {p.info["noise_kind"] for p in pairs if "noise_kind" in p.info}
    order = [k for k in NOISE_KINDS if k in kinds] + sorted(kinds - set(NOISE_KINDS))
    return [(k, [i for i, p in enumerate(pairs) if p.info.get("noise_kind") == k]) for k in order]


def expand_sets(names: Sequence[str]) -> list[str]:
    """``names`` with every combined set replaced by its parts (order kept, no repeats)."""
    out: list[str] = []
    for name in names:
        for part in COMBINED_SETS.get(name, (name,)):
            if part not in out:
                out.append(part)
    return out


def snr_bins(pairs: Sequence[Pair], width: float = 2.5, min_count: int = 3) -> list[tuple[str, float, list[int]]]:
    """Groups for per-SNR curves: ``(label, x, indices)``.

    The synthetic set groups by its SNR strata. The others group by estimated
    SNR in bins of ``width`` dB; a bin with fewer than ``min_count`` pairs is
    merged into the next one (the last into the one before). Each group is
    plotted at its mean estimated SNR.
    """
    if not pairs or all(p.set == "clean" for p in pairs):
        return []
    if all("stratum_snr_db" in p.info for p in pairs):
        values = sorted({p.info["stratum_snr_db"] for p in pairs})
        return [(f"{v:+g} dB", v, [i for i, p in enumerate(pairs) if p.info["stratum_snr_db"] == v]) for v in values]
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(int(math.floor(p.info["snr_db"] / width)), []).append(i)
    merged: list[list[int]] = []
    pending: list[int] = []
    for k in sorted(groups):
        pending += groups[k]
        if len(pending) >= min_count:
            merged.append(pending)
            pending = []
    if pending:
        if merged:
            merged[-1] += pending
        else:
            merged.append(pending)
    out = []
    for idx in merged:
        snrs = [pairs[i].info["snr_db"] for i in idx]
        out.append((f"{min(snrs):.1f} to {max(snrs):.1f} dB", float(np.mean(snrs)), sorted(idx)))
    return out
