"""Exporting a streaming mask model: convert, stamp metadata, check parity, write.

:func:`export_model` is the single way models are written, for reference models
and trained ones alike:

1. convert the step model (:mod:`model_export.convert`), int8 calibrated on
   synthetic clips unless calibration features are given;
2. embed the metadata (quantization, parameter count, how it was made);
3. run the parity check on that file through the runtime's ``MaskModel``;
4. re-stamp the metadata with the parity figures under ``training["export"]``
   and write the file, only if parity is within tolerance.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from model_export import signals
from model_export.convert import MAX_CALIBRATION_SAMPLES, convert_step_model
from model_export.errors import ExportError
from model_export.keras_models import StreamingModels
from model_export.parity import TOLERANCES, ParityReport, ParityTolerance, check_parity, measure_parity
from model_export.tflite_metadata import embed_metadata
from realtime.metadata import QUANTIZATIONS, ModelMetadata, load_metadata

log = logging.getLogger(__name__)

DEFAULT_QUANTIZATION = "int8"

CALIBRATION_SECONDS = 3.0
"""Duration (s) of each synthetic calibration clip."""

CALIBRATION_SEEDS = range(0, 8)
"""Seeds of the synthetic calibration clips."""

PARITY_SECONDS = 3.0
"""Duration (s) of each synthetic parity clip (300 frames at a 10 ms hop)."""

PARITY_SEEDS = range(2000, 2001)
"""Seeds of the synthetic parity clips (held out from calibration)."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        path: the ``.tflite`` file.
        metadata: the record embedded in it.
        size_bytes: file size in bytes.
        parity: deviation of the file from the Keras model.
        tolerance: the parity tolerance it passed.
        conversion_seconds: wall time of the TFLite conversion (with calibration), in seconds.
    """

    path: Path
    metadata: ModelMetadata
    size_bytes: int
    parity: ParityReport
    tolerance: ParityTolerance
    conversion_seconds: float


def export_model(
    models: StreamingModels,
    path: str | Path,
    quantization: str = DEFAULT_QUANTIZATION,
    calibration_features: Sequence[np.ndarray] | None = None,
    parity_features: Sequence[np.ndarray] | None = None,
    tolerance: ParityTolerance | None = None,
) -> ExportResult:
    """Convert ``models`` to a quietmic ``.tflite`` file at ``path``.

    Args:
        models: step and sequence model with their metadata (see
            :func:`model_export.keras_models.assemble_streaming_models`).
        path: output file; its directory must exist. Written only if every check passes.
        quantization: ``"int8"`` (default: int8 weights), ``"int8-full"`` or ``"float32"``.
        calibration_features: ``[frames, input_size]`` clips (features, then the spectrum of
            phase-aware models: :func:`model_export.signals.spectra_inputs`) for ``int8-full`` calibration;
            default: synthetic clips (:data:`CALIBRATION_SEEDS`). Pass features of
            real training audio for a trained model.
        parity_features: clips (as ``calibration_features``) for the parity check; default:
            synthetic held-out clips.
        tolerance: largest accepted mask deviations (max and mean); default per
            quantization (:data:`model_export.parity.TOLERANCES`).

    Raises:
        ExportError: conversion failed or the output cannot be written.
        ParityError: the TFLite model deviates from the Keras model beyond the tolerance.
    """
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    out = Path(path)
    if not out.parent.is_dir():
        raise ExportError(f"cannot write {out}: the directory {out.parent} does not exist; create it first")
    models.check()
    meta = models.metadata
    if calibration_features is None:
        calibration_features = (
            signals.synthetic_inputs(meta, CALIBRATION_SECONDS, CALIBRATION_SEEDS) if quantization == "int8-full" else []
        )
    if parity_features is None:
        parity_features = signals.synthetic_inputs(meta, PARITY_SECONDS, PARITY_SEEDS)
    limit = TOLERANCES[quantization] if tolerance is None else tolerance

    started = time.perf_counter()
    converted = convert_step_model(models, quantization, calibration_features)
    conversion_seconds = time.perf_counter() - started
    log.info("converted %s to %s in %.1f s", meta.name, quantization, conversion_seconds)

    export_info: dict[str, object] = {
        "converter": f"tensorflow {tf.__version__}",
        "parity_tolerance_max_abs": limit.max_abs,
        "parity_tolerance_mean_abs": limit.mean_abs,
    }
    if quantization == "int8-full":
        frames = sum(len(f) for f in calibration_features)
        export_info["calibration_frames"] = min(frames, MAX_CALIBRATION_SAMPLES)
    staged_meta = replace(
        meta, quantization=quantization, parameters=models.parameters, training={**meta.training, "export": export_info}
    )
    staged = embed_metadata(converted, staged_meta)

    report = measure_parity(staged, models, parity_features)
    check_parity(report, quantization, limit)

    final_meta = replace(
        staged_meta, training={**staged_meta.training, "export": {**export_info, **report.to_dict()}}
    )
    final = embed_metadata(staged, final_meta)
    _write_atomically(out, final)
    load_metadata(out.read_bytes(), str(out))
    log.info("wrote %s (%d bytes)", out, len(final))
    return ExportResult(out, final_meta, len(final), report, limit, conversion_seconds)


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror}") from None
