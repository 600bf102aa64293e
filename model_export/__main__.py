"""Command line: ``python -m model_export reference {identity,random,deep-filter} --sample-rate SR -o OUT.tflite``.

Writes a reference model through :func:`model_export.exporter.export_model`
(conversion, metadata, parity check) and prints a short summary. Exit status:
0 on success, 1 when the export fails, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from realtime.metadata import QUANTIZATIONS, ModelMetadata

if TYPE_CHECKING:
    from model_export.exporter import ExportResult

EXIT_FAILURE = 1
"""Exit status when the export fails (argparse uses 2 for bad arguments)."""

REFERENCE_CHOICES = ("identity", "random", "deep-filter")
"""The reference models (as :data:`model_export.references.REFERENCES`, named here so that
``--help`` and argument errors do not wait for TensorFlow to load)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m model_export``."""
    parser = argparse.ArgumentParser(
        prog="python -m model_export",
        description="Export quietmic mask models to TFLite files with embedded metadata.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the export steps")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reference = commands.add_parser(
        "reference",
        help="write a reference model (identity: mask 1.0; random: seeded untrained GRU; deep-filter: "
        "seeded untrained phase-aware model)",
        description="Write a reference model: 'identity' (mask exactly 1.0, one small state), "
        "'random' (seeded, untrained ~100k-parameter GRU mask model) or 'deep-filter' (seeded, untrained "
        "292k-parameter model with ERB gains and a deep filter over the low band, one frame of lookahead).",
    )
    reference.add_argument("kind", choices=REFERENCE_CHOICES, help="which reference model")
    reference.add_argument(
        "--sample-rate",
        type=_positive_int,
        required=True,
        metavar="HZ",
        help="model sample rate in Hz (e.g. 16000, 48000)",
    )
    reference.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.tflite", help="file to write")
    reference.add_argument(
        "--quantization", choices=QUANTIZATIONS, default="int8", help="int8 (default: int8 weights), int8-full (int8 activations too) or float32"
    )
    reference.add_argument("--seed", type=int, default=0, help="weight seed of the random models (default 0)")
    return parser


def _inputs_outputs(meta: ModelMetadata) -> str:
    """``"32 features -> 32 gains"``, with the spectrum input and the deep filter of phase-aware models."""
    inputs = f"{meta.feature_size} features" + (f" + {meta.spectrum_size} spectrum values" if meta.spectrum_size else "")
    outputs = f"{meta.mask_size} gains" + (
        f" + {meta.deep_filter_size} deep-filter coefficients" if meta.deep_filter_size else ""
    )
    return f"{inputs} -> {outputs}"


def _summary(result: ExportResult) -> str:
    meta = result.metadata
    parity = result.parity
    return "\n".join(
        [
            f"wrote {result.path}",
            f"  model         {meta.name} (version {meta.model_version}), {meta.sample_rate} Hz, "
            f"window {meta.window_length} / hop {meta.hop_length} samples, "
            f"{_inputs_outputs(meta)}",
            f"  size          {result.size_bytes} bytes ({result.size_bytes / 1024:.1f} KiB)",
            f"  parameters    {meta.parameters}",
            f"  quantization  {meta.quantization}",
            f"  parity        max {parity.max_abs:.3g}, mean {parity.mean_abs:.3g} over {parity.frames} frames "
            f"(tolerance max {result.tolerance.max_abs:g}, mean {result.tolerance.mean_abs:g})",
            f"  conversion    {result.conversion_seconds:.1f} s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    from model_export.contract import standard_framing
    from realtime.errors import QuietmicError

    # Fail fast on what can be checked before TensorFlow loads (seconds).
    try:
        standard_framing(args.sample_rate)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if not args.output.parent.is_dir():
        print(f"error: cannot write {args.output}: the directory {args.output.parent} does not exist", file=sys.stderr)
        return EXIT_FAILURE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
    from model_export.exporter import export_model
    from model_export.references import build_reference

    try:
        models = build_reference(args.kind, args.sample_rate, args.seed)
        result = export_model(models, args.output, args.quantization)
    except (QuietmicError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
