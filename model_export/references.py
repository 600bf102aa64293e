"""Reference models: untrained models with a known behaviour, for tests and benchmarks.

* ``identity``: mask exactly 1.0 in every band (the enhancer must then pass the
  audio through, delayed by the framing latency), with one small genuine state.
* ``random``: a seeded, randomly initialised GRU mask model of about 100k
  parameters (``Dense(128) -> GRUCell(128) -> Dense(32, sigmoid)``); its masks
  are meaningless but its cost and numerics are those of a real model.
* ``deep-filter``: a seeded, randomly initialised phase-aware model
  (:mod:`model_export.models_v2`, 292k parameters, one frame of lookahead): ERB
  gains plus a random (not zero) deep filter over the low band, so the engine's
  whole phase-aware path runs at a real model's cost.

All use the standard contract (:mod:`model_export.contract`): 20 ms sqrt-Hann
window, 10 ms hop, 32 ERB bands from 0 Hz to Nyquist; identity and random have no
lookahead.
"""

from __future__ import annotations

from model_export import contract, signals
from model_export.keras_models import (
    GRU_STATE,
    IDENTITY_STATE,
    IDENTITY_STATE_SIZE,
    StreamingModels,
    build_gru_mask_models,
    build_identity_models,
)

IDENTITY = "identity"
RANDOM = "random"
DEEP_FILTER = "deep-filter"
REFERENCES = (IDENTITY, RANDOM, DEEP_FILTER)
"""Names of the reference models."""

REFERENCE_MODEL_VERSION = "1"
"""Version of the reference model definitions; bump it when their construction changes."""

RANDOM_HIDDEN_UNITS = 128
"""Width of the random model's input projection."""

RANDOM_GRU_UNITS = 128
"""Size of the random model's GRU state."""

NORMALISATION_SECONDS = 4.0
"""Duration (s) of each synthetic clip the random model's feature normalisation is measured on."""

NORMALISATION_SEEDS = range(1000, 1004)
"""Seeds of those clips (distinct from the calibration and parity seeds)."""


def reference_name(kind: str) -> str:
    """The model name written into a reference model's metadata."""
    names = {IDENTITY: "reference-identity", RANDOM: "reference-random-gru", DEEP_FILTER: "reference-random-deep-filter"}
    return names[kind]


def build_reference(kind: str, sample_rate: int, seed: int = 0) -> StreamingModels:
    """Build the reference model ``kind`` (one of :data:`REFERENCES`) at ``sample_rate`` Hz.

    ``seed`` sets the random models' weights (the identity model has none).
    Raises ``ValueError`` for an unknown kind or a rate where 20 ms / 10 ms are
    not whole numbers of samples.
    """
    if kind not in REFERENCES:
        raise ValueError(f"unknown reference model {kind!r}; choose one of {', '.join(REFERENCES)}")
    if kind == DEEP_FILTER:
        from model_export.models_v2 import deep_filter_reference_models

        return deep_filter_reference_models(sample_rate, seed=seed)
    training = {"kind": "reference", "reference": kind, "seed": seed}
    if kind == IDENTITY:
        state = contract.state_spec(IDENTITY_STATE, IDENTITY_STATE_SIZE)
        metadata = contract.band_model_metadata(
            reference_name(kind), REFERENCE_MODEL_VERSION, sample_rate, (state,), training
        )
        return build_identity_models(metadata)
    state = contract.state_spec(GRU_STATE, RANDOM_GRU_UNITS)
    metadata = contract.band_model_metadata(
        reference_name(kind), REFERENCE_MODEL_VERSION, sample_rate, (state,), training
    )
    mean, scale = signals.feature_statistics(
        signals.synthetic_features(metadata, NORMALISATION_SECONDS, NORMALISATION_SEEDS)
    )
    return build_gru_mask_models(metadata, mean, scale, hidden_units=RANDOM_HIDDEN_UNITS, seed=seed)
