"""Decompressor for Rob Northen's ProPack "RNC" method 1, as used by Beneath a Steel Sky.

Stream layout (integers big-endian):

* 18-byte header: ``RNC``, method byte (1), unpacked size (4), packed size (4),
  CRC-16 of the unpacked data (2), CRC-16 of the packed data (2), leeway (1),
  number of chunks (1);
* a bit stream read least-significant bit first from 16-bit little-endian
  words, loaded only when bits are needed. Literal bytes are stored inline in
  the byte stream, right after the last word loaded.

The stream starts with two flag bits (lock, key; both must be 0 here). Each
chunk has three Huffman tables (literal run lengths, match distances, match
lengths; each a 5-bit symbol count and one 4-bit code length per symbol,
canonical codes), then a 16-bit count of sub-chunks. A sub-chunk is a literal
run, then - except after the chunk's last one - a match (distance + 1, length
+ 2) copied from the output. Symbols ``s >= 2`` carry ``s - 1`` extra bits:
value ``2**(s-1) + extra``.

The CRC is CRC-16/ARC (reflected polynomial 0xA001, initial value 0); the
unpacked CRC in the header is checked, so a wrong decode is detected.
"""

from __future__ import annotations

import struct

MAGIC = b"RNC"
HEADER_SIZE = 18
METHOD = 1
TABLE_COUNT_BITS = 5
TABLE_LENGTH_BITS = 4
SUBCHUNK_COUNT_BITS = 16
MAX_CODE_BITS = 16
CRC_POLY = 0xA001
MIN_MATCH = 2
PAD_BYTES = 4
"""The decoder may look this many bytes past the packed data (read as zeros) for its last bits."""


class RncError(ValueError):
    """The data is not a valid RNC method 1 stream."""


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ CRC_POLY if value & 1 else value >> 1
        table.append(value)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/ARC of ``data`` (RNC's checksum)."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


class _Bits:
    """LSB-first bits from 16-bit little-endian words, with inline bytes."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos
        self.buffer = 0
        self.count = 0

    def read(self, n: int) -> int:
        while self.count < n:
            if self.pos >= len(self.data) + PAD_BYTES:
                raise RncError("RNC stream ends early")
            word = self.data[self.pos : self.pos + 2].ljust(2, b"\0")  # the last word may be cut short
            self.buffer |= (word[0] | (word[1] << 8)) << self.count
            self.count += 16
            self.pos += 2
        value = self.buffer & ((1 << n) - 1)
        self.buffer >>= n
        self.count -= n
        return value

    def bytes(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise RncError("RNC literal run past the end of the stream")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def _reverse(value: int, bits: int) -> int:
    out = 0
    for _ in range(bits):
        out = (out << 1) | (value & 1)
        value >>= 1
    return out


def _read_table(bits: _Bits) -> dict[tuple[int, int], int]:
    """``{(code_length, code_as_read): symbol}`` of one canonical Huffman table."""
    count = bits.read(TABLE_COUNT_BITS)
    lengths = [bits.read(TABLE_LENGTH_BITS) for _ in range(count)]
    table: dict[tuple[int, int], int] = {}
    code = 0
    for length in range(1, MAX_CODE_BITS + 1):
        for symbol, symbol_length in enumerate(lengths):
            if symbol_length == length:
                table[(length, _reverse(code, length))] = symbol
                code += 1
        code <<= 1
    return table


def _read_value(bits: _Bits, table: dict[tuple[int, int], int]) -> int:
    if not table:
        raise RncError("RNC stream uses an empty Huffman table")
    code = 0
    for length in range(1, MAX_CODE_BITS + 1):
        code |= bits.read(1) << (length - 1)
        symbol = table.get((length, code))
        if symbol is not None:
            if symbol < 2:
                return symbol
            return (1 << (symbol - 1)) | bits.read(symbol - 1)
    raise RncError("invalid Huffman code in RNC stream")


def header(data: bytes) -> tuple[int, int, int]:
    """``(unpacked_size, packed_size, unpacked_crc)`` of an RNC method 1 stream."""
    if len(data) < HEADER_SIZE or not data.startswith(MAGIC):
        raise RncError("not an RNC stream (no 'RNC' signature)")
    method = data[3]
    if method != METHOD:
        raise RncError(f"RNC method {method} is not supported (only method {METHOD})")
    unpacked, packed, crc = struct.unpack(">IIH", data[4:14])
    return unpacked, packed, crc


def decompress(data: bytes) -> bytes:
    """The unpacked bytes of the RNC method 1 stream at the start of ``data`` (CRC-checked)."""
    unpacked_size, packed_size, unpacked_crc = header(data)
    chunks = data[17]
    if HEADER_SIZE + packed_size > len(data):
        raise RncError(f"RNC stream truncated: {packed_size} packed bytes announced, {len(data) - HEADER_SIZE} present")
    bits = _Bits(data[: HEADER_SIZE + packed_size], HEADER_SIZE)
    if bits.read(2):
        raise RncError("locked or encrypted RNC streams are not supported")
    out = bytearray()
    for _ in range(chunks):
        raw_table = _read_table(bits)
        distance_table = _read_table(bits)
        length_table = _read_table(bits)
        subchunks = bits.read(SUBCHUNK_COUNT_BITS)
        for k in range(subchunks):
            run = _read_value(bits, raw_table)
            if run:
                out += bits.bytes(run)
            if k == subchunks - 1:
                break
            distance = _read_value(bits, distance_table) + 1
            length = _read_value(bits, length_table) + MIN_MATCH
            if distance > len(out):
                raise RncError("RNC match reaches before the start of the output")
            start = len(out) - distance
            for i in range(length):  # may overlap its own output
                out.append(out[start + i])
        if len(out) > unpacked_size:
            raise RncError("RNC stream unpacks to more than its header says")
    if len(out) != unpacked_size:
        raise RncError(f"RNC stream unpacked to {len(out)} bytes, header says {unpacked_size}")
    if crc16(bytes(out)) != unpacked_crc:
        raise RncError("RNC unpacked data fails its CRC")
    return bytes(out)
