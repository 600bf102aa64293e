"""Score quietmic models on the validation mixtures that training chooses by.

    python -m benchmarks.validation --config model_export/configs/v2.yaml MODEL.tflite [MODEL.tflite ...]

The mixtures are exactly the ones a training run with ``--config`` validates on
(:mod:`model_export.training_data`: the corpus's ``val`` split, whose speech and
noise packages, talkers and two whole noise kinds training never sees, mixed with the
config's ``mix`` settings from the seeds ``(seed, 1, batch)``), so models trained with
different configs or architectures can be compared on one set, through the
streaming engine at the default attenuation limit as users run them. This is the
set every choice (which model ships, which checkpoint) is made on; the reserved
evaluation sets (:mod:`benchmarks.quality`) only report.

Prints a table (PESQ-WB, ESTOI, SI-SDR and its improvement, overall, per noise kind of
the first noise, narrowband vs wideband; clean speech alone apart) and writes it as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks import metrics
from benchmarks.peers import Quietmic
from realtime.config import DEFAULT_ATTEN_LIM_DB

RATE = 16000
"""Scoring rate (Hz); training mixtures are made at the model rate, 16 kHz."""
SCORED = ("pesq", "estoi", "si_sdr")

log = logging.getLogger("benchmarks.validation")


def validation_examples(config_path: Path, limit: int | None = None) -> list:
    """The ``(noisy, clean, info)`` validation examples of a training config, in training's order."""
    from model_export.augment import Mixer, mix_config
    from model_export.corpus import load_corpus
    from model_export.train import load_config
    from model_export.training_data import batch_examples

    config = load_config(config_path)
    if config.sample_rate != RATE:
        raise SystemExit(f"{config_path}: models at {config.sample_rate} Hz; this scores 16 kHz models")
    tc = config.training
    corpus = load_corpus(config.corpus_cache, config.sample_rate)
    mixer = Mixer.from_corpus(corpus, "val", config=mix_config(config.mix, sample_rate=RATE,
                                                               seconds=tc.validation_seconds))
    examples = []
    for batch in range(tc.validation_batches):
        examples += batch_examples(mixer, "val", config.seed, batch, tc.batch_size)
    return examples[:limit]


def group_of(info: dict) -> list[str]:
    """The table rows an example counts in."""
    if info.get("kind") == "clean_only":
        return ["clean speech (pass-through)"]
    rows = ["all noisy"]
    if info.get("noise"):
        rows.append(f"noise: {info['noise'][0]}")
    rows.append("narrowband" if info.get("narrowband") else "wideband")
    return rows


def score_models(models: list[Path], examples: list) -> dict[str, dict[str, dict[str, float]]]:
    """``{system: {row: {metric: mean, "n": count}}}`` over the examples with speech in them."""
    speech = [e for e in examples if np.any(e.clean) and e.info.get("kind") != "noise_only"]
    systems: dict[str, object] = {"noisy": None}
    for path in models:
        systems[f"{path.parent.name}/{path.stem}"] = Quietmic(path, atten_lim_db=DEFAULT_ATTEN_LIM_DB)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, system in systems.items():
        sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for e in speech:
            clean = np.asarray(e.clean, np.float64)
            if system is None:
                out = np.asarray(e.noisy, np.float64)
            else:
                system.reset()
                out = np.asarray(system.process(e.noisy), np.float64)
            scores = metrics.score(clean, out, RATE, with_dnsmos=False, metrics=SCORED)
            for row in group_of(e.info):
                for k, v in scores.items():
                    if v is not None and np.isfinite(v):
                        sums[row][k].append(v)
        table[name] = {row: {**{k: float(np.mean(v)) for k, v in m.items()}, "n": len(m["si_sdr"])}
                       for row, m in sums.items()}
        log.info("scored %s", name)
    for name, rows in table.items():
        for row, m in rows.items():
            m["si_sdr_improvement"] = m["si_sdr"] - table["noisy"][row]["si_sdr"]
    return table


def render(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """A plain-text table, one block per row group, one line per system."""
    rows = sorted({r for t in table.values() for r in t}, key=lambda r: (r != "all noisy", r))
    lines = []
    for row in rows:
        n = table["noisy"].get(row, {}).get("n", 0)
        lines.append(f"{row} (n={n})")
        lines.append(f"  {'system':36s} {'PESQ-WB':>8s} {'ESTOI':>6s} {'SI-SDR':>7s} {'dSI-SDR':>8s}")
        for name, t in table.items():
            m = t.get(row)
            if m:
                lines.append(f"  {name:36s} {m['pesq']:8.3f} {m['estoi']:6.3f} {m['si_sdr']:7.2f} "
                             f"{m['si_sdr_improvement']:8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="quietmic model files (.tflite)")
    parser.add_argument("--config", type=Path, required=True,
                        help="training config whose validation mixtures to use (e.g. model_export/configs/v2.yaml)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N mixtures")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    examples = validation_examples(args.config, args.limit)
    log.info("%d validation mixtures of %s", len(examples), args.config)
    table = score_models(args.models, examples)
    print(render(table))
    if args.json:
        args.json.write_text(json.dumps({"config": str(args.config), "mixtures": len(examples), "table": table},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
