"""The resumable state of a training run: ``python -m model_export.train --resume``.

:func:`save` writes, atomically, one ``<name>-resume.npz`` beside the best
checkpoint: the model's weights, the optimizer's variables (Adam's moments and
step count), the best weights so far, and the run's progress (step, seconds
trained, validation curve, loss history, the config it ran with). The training
loop calls it at every validation and when it is interrupted (Ctrl-C, SIGTERM);
:func:`load` gives it back so that the run goes on from the same step with the
same batches (batches are numbered, see :meth:`model_export.training_data.BatchSource.batches`),
the same learning-rate schedule and the same time budget.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realtime.errors import ConfigError

RESUMABLE_CHANGES = frozenset({("training", "steps"), ("training", "time_budget_minutes"), ("training", "data_workers")})
"""Config entries that may differ between a run and its resumption (to lengthen or shorten it)."""


@dataclass
class TrainingState:
    """Where a training run stands."""

    step: int
    """Training steps done."""
    train_seconds: float
    """Wall-clock seconds spent in the training loop so far (counts against the time budget)."""
    weights: list[np.ndarray]
    optimizer_variables: list[np.ndarray]
    best_weights: list[np.ndarray]
    best: dict[str, float]
    curve: list[dict[str, float]]
    history: list[dict[str, float]]
    config: dict[str, Any]
    """``dataclasses.asdict`` of the run's :class:`model_export.train.TrainConfig`."""


def state_path(report_dir: Path, model_name: str) -> Path:
    """Where the resumable state of model ``model_name`` is kept."""
    return report_dir / f"{model_name}-resume.npz"


def save(path: Path, state: TrainingState) -> None:
    """Write ``state`` to ``path`` (a temporary file renamed over it: an interruption leaves the old one)."""
    arrays: dict[str, np.ndarray] = {}
    for prefix, group in (("w", state.weights), ("o", state.optimizer_variables), ("b", state.best_weights)):
        arrays.update({f"{prefix}{i}": np.asarray(a) for i, a in enumerate(group)})
    progress = {
        "step": state.step, "train_seconds": state.train_seconds, "best": state.best, "curve": state.curve,
        "history": state.history, "config": state.config,
        "counts": [len(state.weights), len(state.optimizer_variables), len(state.best_weights)],
    }
    arrays["progress"] = np.frombuffer(json.dumps(progress).encode(), dtype=np.uint8)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as f:
        np.savez(f, **arrays)
    os.replace(temporary, path)


def load(path: Path, config: dict[str, Any]) -> TrainingState:
    """The state saved at ``path``, checked against the ``config`` of the run that resumes it.

    Raises :class:`~model_export.errors.ConfigError` when there is nothing to resume or
    the config changed in more than :data:`RESUMABLE_CHANGES`.
    """
    if not path.exists():
        raise ConfigError(f"nothing to resume: {path} does not exist (it is written at each validation); "
                          "run without --resume to start training")
    with np.load(path) as data:
        progress = json.loads(bytes(data["progress"]).decode())
        n_weights, n_optimizer, n_best = progress["counts"]
        weights = [data[f"w{i}"] for i in range(n_weights)]
        optimizer_variables = [data[f"o{i}"] for i in range(n_optimizer)]
        best_weights = [data[f"b{i}"] for i in range(n_best)]
    changed = sorted(set(_differences(progress["config"], config)) - {".".join(k) for k in RESUMABLE_CHANGES})
    if changed:
        raise ConfigError(f"cannot resume {path}: the config changed in {', '.join(changed)} since that run; "
                          "put those back, or run without --resume to start over")
    return TrainingState(
        step=progress["step"], train_seconds=progress["train_seconds"], weights=weights,
        optimizer_variables=optimizer_variables, best_weights=best_weights, best=progress["best"],
        curve=progress["curve"], history=progress["history"], config=progress["config"],
    )


def _differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted names of the entries where two nested config dicts differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        names: list[str] = []
        for key in sorted(set(saved) | set(current)):
            names += _differences(saved.get(key), current.get(key), f"{prefix}{key}.")
        return names
    return [] if saved == current else [prefix.rstrip(".")]
