"""Train, evaluate, export and install quietmic's default model.

    python -m model_export.train --config model_export/configs/default.yaml

One command, reproducible from its config and seed:

1. builds (or reuses) the corpus cache (:mod:`model_export.corpus`);
2. measures feature normalisation on training batches and builds the streaming
   model of ``model.architecture``: the GRU mask model (:mod:`model_export.keras_models`,
   the default) or the phase-aware deep-filter model (:mod:`model_export.models_v2`,
   ``configs/v2.yaml``);
3. trains the sequence model on on-the-fly mixtures (:mod:`model_export.augment`,
   :mod:`model_export.training_data`) with the spectral + SI-SDR loss
   (:mod:`model_export.losses`), validating on a fixed validation set and
   keeping the best weights; stops at the configured steps or time budget;
4. exports int8 (shipped) and float32 (reference) TFLite files with metadata
   (command, seed, config, corpus summary, validation figures), calibrated and
   parity-checked on validation features, and installs them as the package's
   default model;
5. writes a training report (JSON) and the loss curve (PNG).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from model_export import resume as resume_state
from model_export.augment import mix_config
from model_export.contract import WINDOW_MS
from realtime.errors import ConfigError, QuietmicError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "model_export" / "configs" / "default.yaml"
NORMALISATION_BATCHES = 8
"""Training batches whose features give the normalisation constants."""

RESUME_TOLERANCE = 1e-4
"""Relative difference allowed between a resumed model's validation loss and the loss saved with it."""
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
"""Exit codes of the command: a config or export error, an interruption (state saved for ``--resume``)."""

log = logging.getLogger("model_export.train")


class TrainingInterrupted(QuietmicError):
    """Training stopped on Ctrl-C or SIGTERM; its state is saved and ``--resume`` goes on from it."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM (``kill``, a job scheduler's stop) interrupts like Ctrl-C."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


ARCHITECTURES = ("gru_mask", "deep_filter")
"""``gru_mask``: :func:`model_export.keras_models.build_gru_mask_models` (the default model's);
``deep_filter``: :func:`model_export.models_v2.build_deep_filter_models` (phase-aware)."""


@dataclass
class ModelConfig:
    name: str = "quietmic-default"
    version: str = "1"
    architecture: str = "gru_mask"
    """One of :data:`ARCHITECTURES`."""
    layout: str = "bins"
    """``bins`` (per-bin log power in, per-bin gains out) or ``bands`` (ERB bands); ``deep_filter`` needs ``bands``."""
    num_bands: int = 32
    hidden_units: int = 128
    """Input projection of ``gru_mask`` (``deep_filter`` sizes its layers with ``deep_filter_layers``)."""
    gru_units: list[int] = field(default_factory=lambda: [128, 128])
    lookahead_frames: int = 0
    """Hops the mask looks ahead: each adds one hop of algorithmic latency."""
    window_ms: float = WINDOW_MS
    """STFT window in ms (hop 10 ms); the framing latency is the window minus the hop."""
    deep_filter_bins: int = 96
    """``deep_filter``: bins of the low band the filter shapes and the spectrum input carries (50 Hz each)."""
    deep_filter_order: int = 3
    """``deep_filter``: taps (frames) per bin."""
    deep_filter_lookahead: int | None = None
    """``deep_filter``: taps in the future of the frame shaped; None: as far as the model looks ahead."""
    deep_filter_layers: dict[str, int] = field(default_factory=dict)
    """``deep_filter``: layer sizes that differ from :class:`model_export.models_v2.DeepFilterArchitecture`'s."""


@dataclass
class TrainingConfig:
    segment_seconds: float = 2.0
    batch_size: int = 32
    steps: int = 12000
    time_budget_minutes: float = 100.0
    learning_rate: float = 1e-3
    final_learning_rate: float = 2e-5
    warmup_steps: int = 200
    clip_norm: float = 3.0
    validate_every: int = 500
    validation_batches: int = 8
    validation_seconds: float = 4.0
    data_workers: int = 1


@dataclass
class ExportConfig:
    output: str = "realtime/models/default.tflite"
    float_output: str = "model_export/artifacts/default-float32.tflite"
    report_dir: str = "model_export/artifacts"
    calibration_examples: int = 64


@dataclass
class TrainConfig:
    seed: int = 0
    sample_rate: int = 16000
    corpus_cache: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    loss: dict[str, float] = field(default_factory=dict)
    mix: dict[str, Any] = field(default_factory=dict)
    """Training-mixture settings that differ from :class:`model_export.augment.MixConfig`'s defaults."""
    export: ExportConfig = field(default_factory=ExportConfig)


def load_config(path: str | Path) -> TrainConfig:
    """The training config at ``path`` (unknown keys are errors)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    sections = {"model": ModelConfig, "training": TrainingConfig, "export": ExportConfig}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in sections:
            try:
                values[key] = sections[key](**(value or {}))
            except TypeError as exc:
                raise ConfigError(f"{path}: section {key!r}: {exc}") from None
        elif key in ("seed", "sample_rate", "corpus_cache", "loss", "mix"):
            values[key] = value
        else:
            raise ConfigError(f"{path}: unknown key {key!r}")
    try:
        mix_config(values.get("mix"))
    except ValueError as exc:
        raise ConfigError(f"{path}: section 'mix': {exc}") from None
    return TrainConfig(**values)


def learning_rate(config: TrainingConfig, progress: float, step: int) -> float:
    """Linear warm-up, then cosine decay from ``learning_rate`` to ``final_learning_rate``."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return config.final_learning_rate + (config.learning_rate - config.final_learning_rate) * cosine


def build_metadata(config: TrainConfig, training_info: dict[str, Any]):  # -> ModelMetadata
    from model_export import contract

    states = tuple(contract.state_spec(f"gru{i + 1}_state", units) for i, units in enumerate(config.model.gru_units))
    if config.model.architecture not in ARCHITECTURES:
        raise ConfigError(
            f"model.architecture must be one of {', '.join(ARCHITECTURES)}, not {config.model.architecture!r}"
        )
    if config.model.architecture == "deep_filter":
        if config.model.layout != "bands":
            raise ConfigError(
                "model.architecture 'deep_filter' takes ERB band features and gains: set model.layout: bands"
            )
        return contract.deep_filter_model_metadata(
            config.model.name, config.model.version, config.sample_rate, states, training_info, config.model.num_bands,
            lookahead_frames=config.model.lookahead_frames, window_ms=config.model.window_ms,
            deep_filter_bins=config.model.deep_filter_bins, deep_filter_order=config.model.deep_filter_order,
            deep_filter_lookahead=config.model.deep_filter_lookahead,
        )
    if config.model.layout == "bins":
        return contract.bin_model_metadata(
            config.model.name, config.model.version, config.sample_rate, states, training_info,
            lookahead_frames=config.model.lookahead_frames, window_ms=config.model.window_ms,
        )
    if config.model.layout == "bands":
        return contract.band_model_metadata(
            config.model.name, config.model.version, config.sample_rate, states, training_info, config.model.num_bands,
            lookahead_frames=config.model.lookahead_frames, window_ms=config.model.window_ms,
        )
    raise ConfigError(f"model.layout must be 'bins' or 'bands', not {config.model.layout!r}")


def build_models(config: TrainConfig, metadata: Any, mean: np.ndarray, scale: np.ndarray) -> Any:
    """The streaming models of ``config.model.architecture`` for ``metadata`` (a
    :class:`model_export.keras_models.StreamingModels`), seeded with ``config.seed``."""
    if config.model.architecture == "deep_filter":
        from model_export.models_v2 import DeepFilterArchitecture, build_deep_filter_models

        try:
            layers = DeepFilterArchitecture(**config.model.deep_filter_layers)
        except TypeError as exc:
            raise ConfigError(f"model.deep_filter_layers: {exc}") from None
        return build_deep_filter_models(metadata, mean, scale, layers, seed=config.seed)
    from model_export.keras_models import build_gru_mask_models

    return build_gru_mask_models(metadata, mean, scale, hidden_units=config.model.hidden_units, seed=config.seed)


def plot_curves(history: list[dict[str, float]], validation: list[dict[str, float]], path: Path) -> None:
    """Training and validation loss (and validation SI-SDR) over steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_sdr) = plt.subplots(1, 2, figsize=(11, 4))
    if history:
        steps = [h["step"] for h in history]
        losses = np.array([h["loss"] for h in history])
        window = max(1, len(losses) // 100)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax_loss.plot(steps[window - 1 :], smooth, label="training (smoothed)")
    ax_loss.plot([v["step"] for v in validation], [v["loss"] for v in validation], "o-", label="validation")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (lower is better; includes -SI-SDR)")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_sdr.plot([v["step"] for v in validation], [v["sisdr"] for v in validation], "o-", label="enhanced")
    ax_sdr.plot([v["step"] for v in validation], [v["noisy_sisdr"] for v in validation], "--", label="noisy input")
    ax_sdr.set_xlabel("step")
    ax_sdr.set_ylabel("validation SI-SDR (dB)")
    ax_sdr.legend()
    ax_sdr.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(config: TrainConfig, config_path: Path, command: str, resume: bool = False) -> dict[str, Any]:
    """Run the whole pipeline; returns the training report.

    ``resume``: go on from the state the last run of this config saved (:mod:`model_export.resume`)
    instead of starting over. Raises :class:`TrainingInterrupted` on Ctrl-C or SIGTERM, after saving that state.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from model_export.corpus import build_corpus
    from model_export.losses import LossWeights, MaskLoss
    from model_export.signals import feature_statistics
    from model_export.training_data import BatchSource
    from realtime import dsp

    started = time.monotonic()
    keras.utils.set_random_seed(config.seed)
    tc = config.training
    corpus = build_corpus(config.corpus_cache, rate=config.sample_rate)
    corpus_summary = corpus.summary()
    log.info("corpus: %s", json.dumps(corpus_summary)[:2000])

    training_info: dict[str, Any] = {
        "kind": "trained",
        "command": command,
        "config_file": str(config_path),
        "seed": config.seed,
        "config": asdict(config),
        "corpus": corpus_summary,
    }
    metadata = build_metadata(config, training_info)
    weights = LossWeights(**config.loss)
    loss_fn = MaskLoss(
        dsp.gain_spreading_matrix(
            metadata.mask.type,
            metadata.framing,
            metadata.framing,
            list(metadata.mask.band_edges_hz) if metadata.mask.band_edges_hz else None,
        ),
        metadata.framing,
        weights,
        metadata.lookahead_frames,
        metadata.mask.deep_filter,
    )

    with BatchSource(metadata, config.corpus_cache, tc.segment_seconds, tc.batch_size, config.seed, tc.data_workers,
                     config.mix) as source, BatchSource(
        metadata, config.corpus_cache, tc.validation_seconds, tc.batch_size, config.seed, tc.data_workers, config.mix
    ) as validation_source:
        log.info("making %d validation batches", tc.validation_batches)
        validation = list(validation_source.batches("val", 0, tc.validation_batches))
        saved_state = None
        if resume:
            saved_state = resume_state.load(
                resume_state.state_path(REPO_ROOT / config.export.report_dir, metadata.name), asdict(config)
            )
            mean, scale = np.zeros(metadata.feature_size), np.ones(metadata.feature_size)  # in the saved weights
        else:
            normalisation = [b.features for b in source.batches("train", 10**6, NORMALISATION_BATCHES)]
            mean, scale = feature_statistics([f.reshape(-1, f.shape[-1]) for f in normalisation])
        models = build_models(config, metadata, mean, scale)
        model = models.sequence
        log.info("model %s: %d parameters", metadata.name, models.parameters)
        optimizer = keras.optimizers.Adam(learning_rate=tc.learning_rate, clipnorm=tc.clip_norm)
        optimizer.build(model.trainable_variables)

        @tf.function(reduce_retracing=True)
        def train_step(features, nr, ni, cr, ci, cw):  # type: ignore[no-untyped-def]
            with tf.GradientTape() as tape:
                terms = loss_fn(model(features, training=True), nr, ni, cr, ci, cw)
            grads = tape.gradient(terms["loss"], model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return terms

        @tf.function(reduce_retracing=True)
        def eval_step(features, nr, ni, cr, ci, cw):  # type: ignore[no-untyped-def]
            return loss_fn(model(features, training=False), nr, ni, cr, ci, cw)

        def tensors(batch) -> tuple:  # type: ignore[no-untyped-def]
            return (batch.inputs, batch.noisy_real, batch.noisy_imag, batch.clean_real, batch.clean_imag, batch.clean_wave)

        noisy_terms = [
            loss_fn(loss_fn.identity_outputs(len(b), b.features.shape[1]), *tensors(b)[1:]) for b in validation
        ]
        noisy_sisdr = float(np.mean([t["sisdr"] for t in noisy_terms]))

        def validate(step: int) -> dict[str, float]:
            terms = [eval_step(*tensors(b)) for b in validation]
            result = {k: float(np.mean([t[k] for t in terms])) for k in terms[0]}
            return {"step": step, **result, "noisy_sisdr": noisy_sisdr}

        report_dir = REPO_ROOT / config.export.report_dir
        report_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = report_dir / f"{metadata.name}-best.weights.h5"
        state_file = resume_state.state_path(report_dir, metadata.name)
        if saved_state is not None:
            model.set_weights(saved_state.weights)
            for variable, value in zip(optimizer.variables, saved_state.optimizer_variables, strict=True):
                variable.assign(value)
            step, seconds_before = saved_state.step, saved_state.train_seconds
            history, curve, best, best_weights = (
                saved_state.history, saved_state.curve, saved_state.best, saved_state.best_weights
            )
            log.info("resuming at step %d after %.1f minutes of training (best so far: step %d)",
                     step, seconds_before / 60.0, best["step"])
            if curve[-1]["step"] == step:  # saved at a validation: the restored model must score the same
                again = validate(step)["loss"]
                if not math.isclose(again, curve[-1]["loss"], rel_tol=RESUME_TOLERANCE):
                    raise ConfigError(f"the restored model scores validation loss {again:.5f}, not the "
                                      f"{curve[-1]['loss']:.5f} it scored when saved: {state_file} does not match "
                                      "this code; run without --resume to start over")
        else:
            step, seconds_before = 0, 0.0
            history, curve = [], [validate(0)]
            best, best_weights = curve[0], model.get_weights()
        budget = tc.time_budget_minutes * 60.0
        train_started = time.monotonic()

        def train_seconds() -> float:
            return seconds_before + time.monotonic() - train_started

        def save_state() -> None:
            resume_state.save(state_file, resume_state.TrainingState(
                step=step, train_seconds=train_seconds(), weights=model.get_weights(),
                optimizer_variables=[np.asarray(v) for v in optimizer.variables], best_weights=best_weights,
                best=best, curve=curve, history=history, config=asdict(config),
            ))

        bar = tqdm(total=tc.steps, initial=step, desc="training", unit="step", mininterval=5.0, file=sys.stderr)
        try:
            with _sigterm_as_interrupt():
                for batch in source.batches("train", step, max(tc.steps - step, 0)):
                    progress = max(step / tc.steps, train_seconds() / budget)
                    if progress >= 1.0:
                        log.info("time budget reached after %d steps", step)
                        break
                    optimizer.learning_rate.assign(learning_rate(tc, progress, step))
                    terms = train_step(*tensors(batch))
                    step += 1
                    history.append({"step": step, "loss": float(terms["loss"])})
                    bar.update(1)
                    if step % tc.validate_every == 0 or step == tc.steps:
                        point = validate(step)
                        curve.append(point)
                        bar.set_postfix(loss=f"{point['loss']:.4f}", sisdr=f"{point['sisdr']:.2f}")
                        log.info("step %d: validation %s", step, json.dumps(point))
                        if point["loss"] < best["loss"]:
                            best, best_weights = point, model.get_weights()
                            model.save_weights(checkpoint)  # survives a failure after training
                            save_progress(checkpoint, step, best, curve, history, train_seconds(), command)
                        save_state()
        except KeyboardInterrupt:
            bar.close()
            save_state()
            raise TrainingInterrupted(
                f"training interrupted at step {step} after {train_seconds() / 60.0:.1f} minutes; state saved to "
                f"{state_file}; go on with: python -m model_export.train --config {config_path} --resume"
            ) from None
        bar.close()
        if curve[-1]["step"] != step:
            point = validate(step)
            curve.append(point)
            if point["loss"] < best["loss"]:  # the last steps won: --export-checkpoint must export them too
                best, best_weights = point, model.get_weights()
                model.save_weights(checkpoint)
                save_progress(checkpoint, step, best, curve, history, train_seconds(), command)
        train_minutes = train_seconds() / 60.0
        model.set_weights(best_weights)
        calibration = [f for b in validation for f in b.inputs][: config.export.calibration_examples]

    return export_and_report(
        config, command, models, training_info, calibration, step=step, train_minutes=train_minutes, best=best,
        curve=curve, history=history, started=started, corpus_summary=corpus_summary,
    )


def save_progress(checkpoint: Path, step: int, best: dict[str, float], curve: list[dict[str, float]],
                  history: list[dict[str, float]], train_seconds: float, command: str) -> None:
    """What the training has done so far, beside the checkpoint (for :func:`export_checkpoint`)."""
    progress = {"command": command, "step": step, "best": best, "curve": curve, "history": history,
                "training_minutes": round(train_seconds / 60.0, 2)}
    checkpoint.with_suffix(".progress.json").write_text(json.dumps(progress))


def export_and_report(
    config: TrainConfig,
    command: str,
    models: Any,  # model_export.keras_models.StreamingModels
    training_info: dict[str, Any],
    calibration: list[np.ndarray],
    *,
    step: int,
    train_minutes: float,
    best: dict[str, float],
    curve: list[dict[str, float]],
    history: list[dict[str, float]],
    started: float,
    corpus_summary: dict[str, Any],
) -> dict[str, Any]:
    """Export the int8 and float32 models with their metadata, write the report and the loss plot."""
    from model_export.exporter import export_model

    metadata = models.metadata
    training_info.update(
        steps=step,
        training_minutes=round(train_minutes, 2),
        best_step=best["step"],
        validation={k: round(v, 4) for k, v in best.items() if k != "step"},
    )
    models.metadata = replace(build_metadata(config, training_info), parameters=models.parameters)
    outputs = {}
    for quantization, target in (("int8", config.export.output), ("float32", config.export.float_output)):
        (REPO_ROOT / target).parent.mkdir(parents=True, exist_ok=True)
        result = export_model(
            models,
            REPO_ROOT / target,
            quantization,
            calibration_features=calibration,
            parity_features=calibration[:4],
        )
        outputs[quantization] = {
            "path": target,
            "size_bytes": result.size_bytes,
            "parity_max_abs": result.parity.max_abs,
            "parity_mean_abs": result.parity.mean_abs,
        }
        log.info("wrote %s (%s, %d bytes)", target, quantization, result.size_bytes)

    report_dir = REPO_ROOT / config.export.report_dir
    report = {
        "model": metadata.name,
        "parameters": models.parameters,
        "command": command,
        "seed": config.seed,
        "steps": step,
        "training_minutes": round(train_minutes, 2),
        "total_minutes": round((time.monotonic() - started) / 60.0, 2),
        "best": best,
        "validation_curve": curve,
        "exports": outputs,
        "corpus": corpus_summary,
    }
    (report_dir / f"{metadata.name}-training.json").write_text(json.dumps(report, indent=1))
    plot_curves(history, curve, report_dir / f"{metadata.name}-loss.png")
    return report


def export_checkpoint(config: TrainConfig, config_path: Path, command: str) -> dict[str, Any]:
    """Export the best checkpoint of an earlier training run (after an export failed), without training.

    Rebuilds the model, loads ``<name>-best.weights.h5`` (normalisation included)
    and its ``.progress.json``, remakes the same validation batches for calibration
    and parity, and exports as :func:`train` would have.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from model_export.corpus import build_corpus
    from model_export.training_data import BatchSource

    started = time.monotonic()
    tc = config.training
    corpus_summary = build_corpus(config.corpus_cache, rate=config.sample_rate).summary()
    training_info: dict[str, Any] = {
        "kind": "trained", "command": command, "config_file": str(config_path), "seed": config.seed,
        "config": asdict(config), "corpus": corpus_summary,
    }
    metadata = build_metadata(config, training_info)
    checkpoint = REPO_ROOT / config.export.report_dir / f"{metadata.name}-best.weights.h5"
    progress_file = checkpoint.with_suffix(".progress.json")
    if not checkpoint.exists() or not progress_file.exists():
        raise ConfigError(f"no checkpoint to export: {checkpoint} and {progress_file} are written during training")
    progress = json.loads(progress_file.read_text())
    size = metadata.feature_size
    models = build_models(config, metadata, np.zeros(size), np.ones(size))
    models.sequence.load_weights(checkpoint)
    with BatchSource(metadata, config.corpus_cache, tc.validation_seconds, tc.batch_size, config.seed,
                     tc.data_workers, config.mix) as validation_source:
        validation = list(validation_source.batches("val", 0, tc.validation_batches))
    calibration = [f for b in validation for f in b.inputs][: config.export.calibration_examples]
    training_info["command"] = progress.get("command", command)  # the run that trained the weights
    training_info["exported_from_checkpoint"] = command
    return export_and_report(
        config, progress.get("command", command), models, training_info, calibration, step=progress["step"],
        train_minutes=progress["training_minutes"], best=progress["best"], curve=progress["curve"],
        history=progress.get("history", []), started=started, corpus_summary=corpus_summary,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train, export and install quietmic's default model.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training config (YAML)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--export-checkpoint", action="store_true",
                        help="do not train: export the best checkpoint of the last run (if its export failed)")
    parser.add_argument("--resume", action="store_true",
                        help="go on from where the last run of this config stopped (interrupted, or to train longer "
                             "after raising training.steps or time_budget_minutes)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s: %(message)s"
    )
    command = "python -m model_export.train " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        config = load_config(args.config)
        if args.export_checkpoint:
            report = export_checkpoint(config, args.config, command)
        else:
            report = train(config, args.config, command, resume=args.resume)
    except TrainingInterrupted as exc:
        log.warning("%s", exc)
        return EXIT_INTERRUPTED
    except QuietmicError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    print(json.dumps({k: report[k] for k in ("model", "parameters", "steps", "training_minutes", "best", "exports")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
