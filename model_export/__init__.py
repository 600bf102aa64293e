"""quietmic's model export: Keras streaming mask models -> TFLite files with metadata.

This package is the only place that imports TensorFlow. It builds streaming
mask models (:mod:`model_export.keras_models`, :mod:`model_export.references`),
converts their single-frame *step* model to float32 or int8 TFLite
(:mod:`model_export.convert`), embeds the quietmic metadata record
(:mod:`model_export.tflite_metadata`), and checks the converted file against
the Keras *sequence* model (:mod:`model_export.parity`).
:func:`model_export.exporter.export_model` does all of it in order.

Command line: ``python -m model_export reference {identity,random} --sample-rate SR -o OUT.tflite``.

Submodules are imported on demand, so ``import model_export`` stays cheap;
only the modules that build or convert models import TensorFlow.
"""

from pathlib import Path

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
"""Where training leaves what it made besides the shipped models: reports, loss curves, float32 twins."""

DEFAULT_FLOAT_TWIN = ARTIFACTS_DIR / "v2" / "v2-float32.tflite"
"""The float32 twin of the bundled default model (``export.float_output`` of ``configs/default.yaml``):
the benchmarks compare it with the int8 model; it is not part of the runtime or its wheel."""
