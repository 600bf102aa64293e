"""Writing the quietmic metadata record into a ``.tflite`` flatbuffer.

The record (:meth:`realtime.metadata.ModelMetadata.to_json`, UTF-8) goes into a
new buffer referenced by a model metadata entry named
:data:`realtime.metadata.METADATA_NAME`; an existing entry of that name is
replaced, so a file can be re-stamped (e.g. with its parity figures). The
model is unpacked with the object API of LiteRT's generated schema and
repacked with ``flatbuffers``; buffer data is 16-byte aligned, as the TFLite
converter writes it.
"""

from __future__ import annotations

import logging

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from model_export.errors import ExportError
from realtime.metadata import METADATA_NAME, ModelMetadata, load_metadata

log = logging.getLogger(__name__)

TFLITE_FILE_IDENTIFIER = b"TFL3"
"""Flatbuffer file identifier of TFLite models."""

BUFFER_ALIGNMENT = 16
"""Alignment in bytes of every buffer's data (tensor constants), as the TFLite converter uses."""

_INITIAL_BUILDER_BYTES = 1024
"""Starting size of the flatbuffer builder (it grows as needed)."""


class _AlignedBufferT(schema.BufferT):
    """A ``BufferT`` whose data vector is packed with :data:`BUFFER_ALIGNMENT`."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802  (flatbuffers' naming)
        data = None
        if self.data is not None and len(self.data) > 0:
            payload = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def _aligned(buffer: schema.BufferT) -> _AlignedBufferT:
    aligned = _AlignedBufferT()
    aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
    return aligned


def embed_metadata(model_bytes: bytes, metadata: ModelMetadata) -> bytes:
    """``model_bytes`` with ``metadata`` stored as the quietmic metadata entry.

    Raises :class:`ExportError` if the bytes are not a TFLite model this writer
    can repack, or if the result does not read back as ``metadata``.
    """
    if len(model_bytes) < 8 or model_bytes[4:8] != TFLITE_FILE_IDENTIFIER:
        raise ExportError("cannot embed metadata: the bytes are not a TFLite model (no TFL3 identifier)")
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    buffers = list(model.buffers or [])
    if any(b.offset > 1 for b in buffers):
        raise ExportError(
            "cannot embed metadata: the model keeps its weights outside the flatbuffer (over 2 GB?); "
            "quietmic models must be small"
        )
    entries = list(model.metadata or [])
    existing = [m for m in entries if _name(m) == METADATA_NAME]
    payload = np.frombuffer(metadata.to_json().encode("utf-8"), dtype=np.uint8)
    if existing:
        # Re-stamping: overwrite the entry's own buffer, so no stale record stays behind.
        buffers[existing[0].buffer].data = payload
        model.metadata = [m for m in entries if m is existing[0] or _name(m) != METADATA_NAME]
    else:
        buffer = schema.BufferT()
        buffer.data = payload
        buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(buffers) - 1
        model.metadata = entries + [entry]
    model.buffers = [_aligned(b) for b in buffers]
    builder = flatbuffers.Builder(_INITIAL_BUILDER_BYTES)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    packed = bytes(builder.Output())
    if load_metadata(packed, "embedded model") != metadata:
        raise ExportError("the metadata written into the model does not read back unchanged; this is a bug")
    log.debug("embedded %d bytes of metadata; model is %d bytes", len(payload), len(packed))
    return packed


def _name(entry: schema.MetadataT) -> str:
    name = entry.name
    return name.decode("utf-8") if isinstance(name, bytes) else str(name or "")


def buffer_alignments(model_bytes: bytes) -> list[int]:
    """Byte offset of every non-empty buffer's data in the file (for alignment checks)."""
    model = schema.Model.GetRootAs(model_bytes, 0)
    offsets = []
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength() > 0:
            offsets.append(buffer.DataAsNumpy().ctypes.data - np.frombuffer(model_bytes, np.uint8).ctypes.data)
    return offsets
