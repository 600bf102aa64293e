"""Echo cancellation in a simulated room (issue 19, section 5): ``python -m benchmarks.echo [--json PATH]``.

For each room of :data:`benchmarks.echo_room.ROOMS` (synthetic impulse responses, RT60 0.2-0.6 s,
audio-path delays 20-80 ms; the module :mod:`benchmarks.echo_room` documents the rig), offline at
16 kHz, with :class:`realtime.echo.EchoCanceller` (WebRTC AEC3, the optional extra ``quietmic[echo]``):

* **ERLE, far end only** (dB): :data:`FAR_ONLY_S` s of far-end speech played; its echo at the
  microphone over the canceller's residual, over the frames where the echo is active, after
  :data:`CONVERGED_S` s (``erle_db``); ``erle_per_second_db`` shows the convergence, and
  ``converged_after_s`` is when the 1 s ERLE first reaches :data:`CONVERGED_ERLE_DB`.
* **Near-end PESQ-WB in double talk**: :data:`LEAD_S` s of far end alone (the canceller
  converges), then :data:`DOUBLE_TALK_S` s of near-end speech over it (signal-to-echo ratio 0 dB);
  the double-talk part scored against the near-end speech alone: the microphone as it is, the
  canceller's output, quietmic's denoiser (:func:`realtime.enhance`) on each (canceller before
  denoiser), and the near end through the canceller with silent speakers (the ceiling); each
  canceller's delay (below) is taken out first.
* **Delay** the canceller adds (ms): cross-correlation (1-4 kHz band, insensitive to AEC3's
  high-pass) of its output against its input with silent speakers.
* **CPU**: the canceller's CPU time over the audio's duration in the far-end run (real-time factor
  on one core; the process is pinned to one CPU).

``--compare`` also runs the other candidates where installed (``livekit``: AEC3 through LiveKit's
FFI; ``pyaec``: SpeexDSP's MDF canceller) on the same signals, for the choice of canceller.

The live variant (:mod:`benchmarks.echo_live`, ``--servers pulseaudio,pipewire``) measures the
service's echo cancellation on private sound servers: ERLE, double-talk PESQ-WB, delay and CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from benchmarks import echo_room as room_rig
from benchmarks.machine import machine_info, pinned, usable_cpus
from benchmarks.metrics import band_lag, pesq_wb
from benchmarks.report import fmt, table

LOG = logging.getLogger("benchmarks.echo")

RATE = room_rig.RATE
FAR_ONLY_S = 12.0
"""Length of the far-end-only run (s)."""
CONVERGED_S = 4.0
"""ERLE counts from this time on (s): the canceller has converged (AEC3 takes one to three seconds)."""
CONVERGED_ERLE_DB = 20.0
"""``converged_after_s``: the first 1 s window whose ERLE reaches this (dB)."""
LEAD_S = 4.0
"""Far end alone before the double talk starts (s)."""
DOUBLE_TALK_S = 8.0
"""Length of the double talk scored by PESQ (s)."""
SEED = 19
"""Seed of the talkers' clips and the impulse responses."""
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "echo.json"

Canceller = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A whole-signal canceller: ``(mic, far) -> output`` (float32, same length), fresh state each call."""


def quietmic_canceller(mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    """:class:`realtime.echo.EchoCanceller` on the whole signal, in 10 ms blocks as a live stream sends them."""
    from realtime.echo import EchoCanceller

    canceller = EchoCanceller(RATE)
    block = canceller.frame
    return np.concatenate([canceller.process(mic[i : i + block], far[i : i + block]) for i in range(0, len(mic), block)])


def livekit_canceller(mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    """AEC3 through ``livekit.rtc.AudioProcessingModule`` (int16 10 ms frames)."""
    from livekit import rtc

    apm = rtc.AudioProcessingModule(echo_cancellation=True)
    hop = RATE // 100
    out = np.zeros(len(mic), dtype=np.float32)
    pcm = lambda x: (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()  # noqa: E731
    for i in range(0, len(mic) - hop + 1, hop):
        apm.process_reverse_stream(rtc.AudioFrame(pcm(far[i : i + hop]), RATE, 1, hop))
        frame = rtc.AudioFrame(pcm(mic[i : i + hop]), RATE, 1, hop)
        apm.process_stream(frame)
        out[i : i + hop] = np.frombuffer(bytes(frame.data), np.int16) / 32768.0
    return out


SPEEX_TAPS = 8192
"""SpeexDSP's filter length for :func:`speex_canceller` (taps: 512 ms at 16 kHz, the best of 2048-8192 here)."""


def speex_canceller(mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    """SpeexDSP's MDF echo canceller with its residual-echo preprocessor, through ``pyaec``."""
    from pyaec import Aec

    hop = RATE // 100
    aec = Aec(hop, SPEEX_TAPS, RATE, True)
    out = np.zeros(len(mic), dtype=np.float32)
    pcm = lambda x: (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16).tolist()  # noqa: E731
    for i in range(0, len(mic) - hop + 1, hop):
        out[i : i + hop] = np.array(aec.cancel_echo(pcm(mic[i : i + hop]), pcm(far[i : i + hop]))) / 32768.0
    return out


CANDIDATES: dict[str, tuple[str, Canceller]] = {
    "quietmic (pywebrtc-audio AEC3)": ("pywebrtc_audio", quietmic_canceller),
    "livekit AEC3": ("livekit", livekit_canceller),
    "speexdsp (pyaec)": ("pyaec", speex_canceller),
}
"""Name -> (module it needs, canceller); the first is what quietmic ships."""


def denoise(x: np.ndarray) -> np.ndarray:
    """quietmic's denoiser (the default model, time-aligned) on a whole 16 kHz signal."""
    import realtime

    return np.asarray(realtime.enhance(np.asarray(x, dtype=np.float32), RATE), dtype=np.float32)


def room_signals(corpus, room: room_rig.Room, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The far end, its echo at the microphone, and the near end of one room (16 kHz float32)."""
    far = room_rig.at_level(room_rig.talker_speech(corpus, room_rig.FAR_SOURCE, FAR_ONLY_S, rng), room_rig.SPEECH_LEVEL_DB)
    near = room_rig.at_level(room_rig.talker_speech(corpus, room_rig.NEAR_SOURCE, DOUBLE_TALK_S, rng),
                             room_rig.SPEECH_LEVEL_DB)
    rir = room_rig.impulse_response(room, rng)
    return {"far": far, "echo": room_rig.echo_of(far, rir), "near": near}


def undelayed(x: np.ndarray, lag: int) -> np.ndarray:
    """``x`` moved ``lag`` samples earlier (zeros at the end): a canceller's delay taken out before scoring."""
    return np.concatenate([x[lag:], np.zeros(lag, x.dtype)]) if lag > 0 else x


def measure_room(signals: dict[str, np.ndarray], canceller: Canceller, with_denoiser: bool) -> dict:
    """ERLE, double-talk PESQ, delay and CPU of ``canceller`` on one room's signals."""
    far, echo, near = signals["far"], signals["echo"], signals["near"]
    lead = int(LEAD_S * RATE)
    n = lead + len(near)
    near_full = np.concatenate([np.zeros(lead, np.float32), near])
    silent = np.zeros(n, np.float32)

    start = time.process_time()
    out = canceller(echo, far)
    cpu_s = time.process_time() - start
    converged = int(CONVERGED_S * RATE)
    per_second = [room_rig.erle_db(echo[k : k + RATE], out[k : k + RATE]) for k in range(0, len(echo) - RATE + 1, RATE)]
    reached = next((k for k, v in enumerate(per_second) if v >= CONVERGED_ERLE_DB), None)

    mic = echo[:n] + near_full
    dt = slice(lead, n)
    through = canceller(near_full, silent)
    lag = band_lag(near_full[dt], through[dt], max_lag=RATE // 10)
    cancelled = undelayed(canceller(mic, far[:n]), lag)
    through = undelayed(through, lag)
    pesq = {"mic": pesq_wb(near, mic[dt]), "canceller": pesq_wb(near, cancelled[dt]),
            "near_only_through_canceller": pesq_wb(near, through[dt])}
    if with_denoiser:
        pesq["denoiser"] = pesq_wb(near, denoise(mic)[dt])
        pesq["canceller_then_denoiser"] = pesq_wb(near, denoise(cancelled)[dt])
    return {
        "erle_db": room_rig.erle_db(echo[converged:], out[converged:]),
        "erle_per_second_db": [round(v, 1) for v in per_second],
        "converged_after_s": None if reached is None else float(reached + 1),
        "pesq_wb_double_talk": {k: round(v, 3) for k, v in pesq.items()},
        "delay_ms": 1000.0 * lag / RATE,
        "cpu_real_time_factor": cpu_s / (len(echo) / RATE),
    }


def _mean(values: Sequence[float]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(kept)) if kept else None


def overall(rooms: list[dict]) -> dict:
    """Means over the rooms (ERLE also its minimum)."""
    keys = rooms[0]["pesq_wb_double_talk"].keys()
    return {
        "erle_db": _mean([r["erle_db"] for r in rooms]),
        "erle_db_min": min(r["erle_db"] for r in rooms),
        "pesq_wb_double_talk": {k: _mean([r["pesq_wb_double_talk"][k] for r in rooms]) for k in keys},
        "delay_ms": _mean([r["delay_ms"] for r in rooms]),
        "cpu_real_time_factor": _mean([r["cpu_real_time_factor"] for r in rooms]),
        "converged_after_s_max": max((r["converged_after_s"] or math.inf) for r in rooms),
    }


def run(candidates: Sequence[str], with_denoiser: bool = True, cpu: int | None = None) -> dict:
    """Every room for every candidate; the JSON document."""
    from model_export.corpus import load_corpus

    corpus = load_corpus(None, RATE)
    rng = np.random.default_rng(SEED)
    signals = {room.name: room_signals(corpus, room, rng) for room in room_rig.ROOMS}
    results: dict[str, dict] = {}
    with pinned(cpu):
        for name in candidates:
            _, canceller = CANDIDATES[name]
            rooms = []
            for room in room_rig.ROOMS:
                row = {"room": room.name, "rt60_s": room.rt60_s, "acoustic_delay_ms": room.acoustic_delay_ms,
                       "path_delay_ms": room.path_delay_ms, "drr_db": room.drr_db}
                row.update(measure_room(signals[room.name], canceller, with_denoiser and name == candidates[0]))
                rooms.append(row)
                LOG.info("%s %s: ERLE %.1f dB, PESQ %s", name, room.name, row["erle_db"], row["pesq_wb_double_talk"])
            results[name] = {"rooms": rooms, "overall": overall(rooms)}
    first = results[candidates[0]]
    return {
        "benchmark": "echo", "rate": RATE, "canceller": candidates[0], "rooms": first["rooms"], "overall": first["overall"],
        "candidates": {k: v for k, v in results.items() if k != candidates[0]},
        "settings": {"far_only_s": FAR_ONLY_S, "erle_after_s": CONVERGED_S, "converged_erle_db": CONVERGED_ERLE_DB,
                     "lead_s": LEAD_S, "double_talk_s": DOUBLE_TALK_S,
                     "signal_to_echo_ratio_db": room_rig.SPEECH_LEVEL_DB - room_rig.ECHO_LEVEL_DB,
                     "far_source": room_rig.FAR_SOURCE, "near_source": room_rig.NEAR_SOURCE, "seed": SEED,
                     "cpu_pinned": cpu},
        "machine": machine_info(["pywebrtc-audio", "livekit", "pyaec", "pesq"]),
    }


def run_live(servers: Sequence[str]) -> dict:
    """The live variant (:mod:`benchmarks.echo_live`) on each of ``servers``; per server its figures, or why not."""
    from benchmarks.echo_live import DOUBLE_TALK_S as LIVE_TALK_S
    from benchmarks.echo_live import FAR_ONLY_S as LIVE_FAR_S
    from benchmarks.echo_live import LEAD_S as LIVE_LEAD_S
    from benchmarks.echo_live import measure_live
    from model_export.corpus import load_corpus

    corpus = load_corpus(None, RATE)
    rng = np.random.default_rng(SEED)
    far = room_rig.at_level(room_rig.talker_speech(corpus, room_rig.FAR_SOURCE, max(LIVE_FAR_S, LIVE_LEAD_S + LIVE_TALK_S), rng),
                            room_rig.SPEECH_LEVEL_DB)
    near = room_rig.at_level(room_rig.talker_speech(corpus, room_rig.NEAR_SOURCE, LIVE_TALK_S, rng), room_rig.SPEECH_LEVEL_DB)
    results: dict[str, dict] = {}
    for kind in servers:
        try:
            results[kind] = measure_live(kind, far, near)
        except (RuntimeError, OSError) as exc:
            LOG.warning("live %s: %s", kind, exc)
            results[kind] = {"error": str(exc)}
    return results


def report(doc: dict) -> str:
    """The tables: per room for quietmic's canceller, then overall per candidate."""
    header = ["room", "RT60 s", "delay ms", "ERLE dB", "conv. s", "PESQ mic", "PESQ AEC", "PESQ den.", "PESQ AEC+den.",
              "PESQ near only", "AEC delay ms", "CPU xRT"]
    rows = []
    for r in doc["rooms"] + [dict(doc["overall"], room="overall")]:
        p = r["pesq_wb_double_talk"]
        rows.append([r["room"], fmt(r.get("rt60_s"), 2), fmt(r["acoustic_delay_ms"] + r["path_delay_ms"] if "path_delay_ms" in r else None, 0),
                     fmt(r["erle_db"], 1), fmt(r.get("converged_after_s", r.get("converged_after_s_max")), 0),
                     fmt(p["mic"], 2), fmt(p["canceller"], 2), fmt(p.get("denoiser"), 2),
                     fmt(p.get("canceller_then_denoiser"), 2), fmt(p["near_only_through_canceller"], 2),
                     fmt(r["delay_ms"], 1), fmt(r["cpu_real_time_factor"], 4)])
    text = [f"canceller: {doc['canceller']}", table(header, rows, False)]
    if isinstance(doc.get("live"), dict):
        rows = []
        for kind, r in doc["live"].items():
            if "error" in r:
                rows.append([kind, r["error"], "", "", "", "", ""])  # the row says why
                continue
            p, cpu = r["pesq_wb_double_talk"], r["service_cpu_percent"]
            rows.append([kind, fmt(r["erle_db"], 1), fmt(p["mic"], 2), fmt(p["canceller"], 2),
                         f"{fmt(p['near_only_without_canceller'], 2)} / {fmt(p['near_only_through_canceller'], 2)}",
                         fmt(r["delay_ms"], 1),
                         f"{fmt(cpu['off'], 1)} -> {fmt(cpu['on'], 1)}"])
        text.append("live, through the service on a private server (room: a 40 ms loopback, echo as loud as the far end):\n"
                    + table(["server", "ERLE dB", "PESQ mic", "PESQ AEC", "PESQ near only off / on", "AEC delay ms",
                             "service CPU % off -> on"], rows, False))
    if doc["candidates"]:
        rows = [[name, fmt(c["overall"]["erle_db"], 1), fmt(c["overall"]["erle_db_min"], 1),
                 fmt(c["overall"]["pesq_wb_double_talk"]["canceller"], 2),
                 fmt(c["overall"]["pesq_wb_double_talk"]["near_only_through_canceller"], 2),
                 fmt(c["overall"]["cpu_real_time_factor"], 4)]
                for name, c in [(doc["canceller"], {"overall": doc["overall"]}), *doc["candidates"].items()]]
        text.append(table(["candidate", "ERLE dB", "min ERLE", "PESQ DT", "PESQ near only", "CPU xRT"], rows, False))
    return "\n\n".join(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.echo", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write the results (default {DEFAULT_JSON})")
    parser.add_argument("--compare", action="store_true", help="also run the other candidates that are installed")
    parser.add_argument("--no-denoiser", action="store_true", help="skip quietmic's denoiser in the chain")
    parser.add_argument("--cpu", type=int, default=usable_cpus()[-1], help="CPU to pin to (default: the last usable)")
    parser.add_argument("--servers", default="pulseaudio,pipewire",
                        help="sound servers for the live variant, comma-separated, or 'none' (default: both)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import importlib.util

    names = [n for n, (module, _) in CANDIDATES.items() if importlib.util.find_spec(module) is not None]
    shipped = next(iter(CANDIDATES))
    if shipped not in names:
        print("echo benchmark: the optional package pywebrtc-audio is missing: pip install 'quietmic[echo]'", file=sys.stderr)
        return 2
    doc = run(names if args.compare else [shipped], with_denoiser=not args.no_denoiser, cpu=args.cpu)
    servers = [] if args.servers == "none" else [kind.strip() for kind in args.servers.split(",") if kind.strip()]
    doc["live"] = run_live(servers) if servers else "not measured (--servers none)"
    print(report(doc))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
