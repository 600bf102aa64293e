"""The training configs in model_export/configs load, and give the model contract they say."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_export.train import REPO_ROOT, build_metadata, load_config
from realtime.errors import ConfigError

CONFIGS = sorted((REPO_ROOT / "model_export" / "configs").glob("*.yaml"))


def test_there_are_configs() -> None:
    assert any(path.name == "default.yaml" for path in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_builds_valid_metadata(path: Path) -> None:
    config = load_config(path)
    metadata = build_metadata(config, {"kind": "test"})  # validates the record
    assert metadata.lookahead_frames == config.model.lookahead_frames
    hop = metadata.hop_length
    assert metadata.algorithmic_latency_samples == metadata.window_length - hop + config.model.lookahead_frames * hop
    assert 1000 * metadata.algorithmic_latency_samples / metadata.sample_rate <= 20  # issue 3's limit


def test_only_the_bundled_models_configs_install_into_the_package() -> None:
    from realtime.default_model import BUNDLED_MODELS

    installs = {f"{name.replace('-', '_')}.yaml": f"realtime/models/{file}" for name, file in BUNDLED_MODELS.items()}
    for path in CONFIGS:
        output = load_config(path).export.output
        assert output.startswith("realtime/models/") == (path.name in installs), path.name
        if path.name in installs:
            assert output == installs[path.name], path.name


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  lookahed_frames: 1\n")
    with pytest.raises(ConfigError, match="lookahed_frames"):
        load_config(bad)


def test_mix_section_is_checked_when_the_config_loads(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("mix:\n  p_noise_eq: 0.25\n")
    assert load_config(good).mix == {"p_noise_eq": 0.25}
    bad = tmp_path / "bad.yaml"
    bad.write_text("mix:\n  p_noise_equ: 0.25\n")
    with pytest.raises(ConfigError, match="p_noise_equ"):
        load_config(bad)
