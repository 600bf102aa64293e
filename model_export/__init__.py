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
