"""Choose the default attenuation limit on validation mixtures, never on the evaluation sets.

    python -m benchmarks.attenuation [--model F] [--limits none 40 30 25 20] [--examples 120]
                                     [--seconds 5] [--jobs 2] [--json OUT]

The attenuation limit (``atten_lim_db``) is the most the Enhancer may take off
any bin, in dB: the mask is floored at ``10 ** (-limit / 20)``. A model trained
to remove all noise can leave speech sounding thin where it removes too much;
a floor keeps a little of the noise and the speech around it. Which floor is
best is a property of the model and of what is measured, so it is chosen here on
mixtures of the corpus's **validation** split (training augmentation: rooms,
generated noises, EQ, band-limiting; SNR -5 to 20 dB; no clean-only or
noise-only examples), the split that training validates on. The evaluation sets
of :mod:`benchmarks.quality` (SpEAR, the synthetic test split) play no part.

For every limit it prints mean PESQ-WB and SI-SDR (dB) of the streamed,
delay-compensated output against the clean target, and the limit with the best
PESQ-WB among those whose SI-SDR is within :data:`SI_SDR_TOLERANCE_DB` of the
unlimited model's (a floor must not buy PESQ with the waveform). Writes the
figures as JSON (default ``benchmarks/results/attenuation.json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import metrics, peers
from benchmarks.report import table

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "attenuation.json"
DEFAULT_LIMITS = (None, 40.0, 35.0, 30.0, 25.0, 20.0, 15.0)
"""Limits tried, in dB (None: no limit)."""
VALIDATION_SEED = 20261124
"""Seed of the validation mixtures (not the seed of the synthetic test set)."""
DEFAULT_EXAMPLES = 120
DEFAULT_SECONDS = 5.0
SI_SDR_TOLERANCE_DB = 0.1
"""Largest SI-SDR loss against no limit that a chosen limit may cost, in dB."""


def validation_pairs(examples: int, seconds: float, seed: int = VALIDATION_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(noisy, clean)`` mixtures of the corpus's validation split at 16 kHz, as training mixes them."""
    from model_export.augment import MixConfig, Mixer
    from model_export.corpus import load_corpus

    corpus = load_corpus(None, peers.RATE)
    config = MixConfig(sample_rate=peers.RATE, seconds=seconds, p_clean_only=0.0, p_noise_only=0.0)
    mixer = Mixer.from_corpus(corpus, "val", seed=seed, config=config)
    pairs = []
    for index in range(examples):
        example = mixer.example(np.random.default_rng([seed, index]))
        pairs.append((example.noisy, example.clean))
    return pairs


def _score(task: tuple) -> list[list[tuple[float, float]]]:
    """``(PESQ-WB, SI-SDR)`` of every pair, for each limit in turn (one list per limit)."""
    model, limits, pairs = task
    scores = []
    for limit in limits:
        system = peers.Quietmic(model, atten_lim_db=limit)
        scores.append([(metrics.pesq_wb(clean, out), metrics.si_sdr(clean, out))
                       for noisy, clean in pairs for out in [system.process(noisy)]])
    return scores


def choose(results: Sequence[dict]) -> dict:
    """The result with the best PESQ-WB among those within :data:`SI_SDR_TOLERANCE_DB` of no limit's SI-SDR."""
    unlimited = next(r for r in results if r["atten_lim_db"] is None)
    allowed = [r for r in results if r["si_sdr"] >= unlimited["si_sdr"] - SI_SDR_TOLERANCE_DB]
    return max(allowed, key=lambda r: r["pesq"])


def _limit(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "off") else float(text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attenuation", description=__doc__.split("\n\n")[1])
    parser.add_argument("--model", help="model file (.tflite); default: the installed default model")
    parser.add_argument("--limits", type=_limit, nargs="+", default=list(DEFAULT_LIMITS),
                        help="limits in dB to try ('none': no limit, always tried)")
    parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, help="validation mixtures")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="length of each mixture")
    parser.add_argument("--jobs", type=int, default=2, help="scoring processes")
    parser.add_argument("--json", type=Path, default=DEFAULT_OUT, help="where to write the figures")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from realtime.default_model import resolve_model_path

    model = str(resolve_model_path(args.model))
    limits = list(dict.fromkeys([None, *args.limits]))
    pairs = validation_pairs(args.examples, args.seconds)
    tasks = [(model, limits, pairs[i :: args.jobs]) for i in range(args.jobs)]  # each job's pairs travel once
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        scored = pool.map(_score, tasks)
    results = []
    for index, limit in enumerate(limits):
        scores = np.array([s for part in scored for s in part[index]])
        results.append({"atten_lim_db": limit, "pesq": float(scores[:, 0].mean()), "si_sdr": float(scores[:, 1].mean())})
    best = choose(results)
    rows = [["none" if r["atten_lim_db"] is None else f"{r['atten_lim_db']:g}", f"{r['pesq']:.3f}", f"{r['si_sdr']:.2f}",
             "<- chosen" if r is best else ""] for r in results]
    print(f"validation split: {args.examples} mixtures of {args.seconds:g} s (seed {VALIDATION_SEED}), model {model}")
    print(table(["atten_lim_db", "PESQ-WB", "SI-SDR dB", ""], rows, markdown=False))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "command": "python -m benchmarks.attenuation " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": model, "split": "val", "examples": args.examples, "seconds": args.seconds,
        "seed": VALIDATION_SEED, "si_sdr_tolerance_db": SI_SDR_TOLERANCE_DB,
        "results": results, "chosen_atten_lim_db": best["atten_lim_db"]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
