"""The resumable training state (model_export.resume): what --resume goes on from."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from model_export import resume
from model_export.train import REPO_ROOT, load_config
from realtime.errors import ConfigError

CONFIG = REPO_ROOT / "model_export" / "configs" / "v2.yaml"


def _state(config: dict, step: int = 1500) -> resume.TrainingState:
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    return resume.TrainingState(
        step=step, train_seconds=812.5, weights=weights,
        optimizer_variables=[np.array(step, dtype=np.int64), np.ones((3, 4), np.float32), np.zeros(4, np.float32)],
        best_weights=[w * 2 for w in weights], best={"step": 1000, "loss": 0.25},
        curve=[{"step": 0, "loss": 0.5}, {"step": 1000, "loss": 0.25}],
        history=[{"step": i + 1, "loss": 1.0 / (i + 1)} for i in range(step)], config=config,
    )


def test_a_saved_state_comes_back_whole(tmp_path: Path) -> None:
    config = asdict(load_config(CONFIG))
    path = resume.state_path(tmp_path, "quietmic-v2")
    saved = _state(config)
    resume.save(path, saved)
    loaded = resume.load(path, config)
    assert (loaded.step, loaded.train_seconds, loaded.best, loaded.curve, loaded.history) == (
        saved.step, saved.train_seconds, saved.best, saved.curve, saved.history)
    for got, want in zip(loaded.weights + loaded.optimizer_variables + loaded.best_weights,
                         saved.weights + saved.optimizer_variables + saved.best_weights, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert not list(tmp_path.glob("*.tmp"))


def test_saving_again_replaces_the_state(tmp_path: Path) -> None:
    config = asdict(load_config(CONFIG))
    path = resume.state_path(tmp_path, "m")
    resume.save(path, _state(config, step=500))
    resume.save(path, _state(config, step=1000))
    assert resume.load(path, config).step == 1000


def test_a_longer_run_may_resume_but_a_changed_model_may_not(tmp_path: Path) -> None:
    config = asdict(load_config(CONFIG))
    path = resume.state_path(tmp_path, "m")
    resume.save(path, _state(config))
    longer = asdict(load_config(CONFIG))
    longer["training"]["steps"] *= 2
    longer["training"]["time_budget_minutes"] += 60
    assert resume.load(path, longer).step == 1500
    changed = asdict(load_config(CONFIG))
    changed["model"]["gru_units"] = [64, 64]
    changed["loss"]["mr_stft"] = 1.0
    with pytest.raises(ConfigError, match=r"loss\.mr_stft, model\.gru_units"):
        resume.load(path, changed)


def test_nothing_to_resume_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="without --resume"):
        resume.load(resume.state_path(tmp_path, "m"), {})
