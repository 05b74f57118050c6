"""Minimal protobuf wire primitives for the ttrpc envelopes (varints, tags, length fields).

Only what :mod:`dranet_core.wire.ttrpc` needs: the envelopes have five fields, and decoding
them by hand is several times faster than a generated class. Every read is bounds-checked and
raises :class:`~dranet_core.errors.RemoteProtocolError`; nothing here allocates more than
the input it was given. :func:`read_varint` is also the NRI hot-path decoder's
(:mod:`dranet_core.nri._decode`).
"""

from __future__ import annotations

from collections.abc import Iterator

from dranet_core.errors import RemoteProtocolError

__all__ = ["iter_fields", "put_bytes", "put_varint_field", "read_varint", "varint"]

WT_VARINT = 0
WT_I64 = 1
WT_LEN = 2
WT_I32 = 5

_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def varint(value: int) -> bytes:
    """Encode a non-negative int (or an int64 as two's complement) as a varint."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def put_varint_field(num: int, value: int) -> bytes:
    """Tag + varint; nothing for 0 (proto3 default)."""
    if not value:
        return b""
    return varint(num << 3 | WT_VARINT) + varint(value)


def put_bytes(num: int, value: bytes) -> bytes:
    """Tag + length + bytes; nothing for empty (proto3 default)."""
    if not value:
        return b""
    return varint(num << 3 | WT_LEN) + varint(len(value)) + value


def read_varint(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """Decode the varint at ``buf[pos]`` (not reading at or past ``end``); return (value, position
    after it). Raises RemoteProtocolError naming ``what`` if it is truncated or over 10 bytes.

    Shared by the envelope scanner here and the NRI hot-path decoder; kept minimal for speed.
    """
    result = shift = 0
    while True:
        if pos >= end:
            raise RemoteProtocolError(f"{what}: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise RemoteProtocolError(f"{what}: varint longer than 10 bytes")


def iter_fields(buf: bytes, what: str) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field number, wire type, value)``: varints as int, length fields as bytes.

    Fixed 32/64-bit fields are checked and skipped (the envelopes have none), so a ``bytes``
    value is always a length-delimited field. Unknown fields are the caller's to skip.
    Raises RemoteProtocolError (naming ``what``) for truncated or malformed input.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        # one-byte tags, lengths and varints (nearly all of them) are read inline
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = read_varint(buf, pos, end, what)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise RemoteProtocolError(f"{what}: field number 0")
        if wt == WT_VARINT:
            if pos < end and buf[pos] < 0x80:
                value = buf[pos]
                pos += 1
            else:
                value, pos = read_varint(buf, pos, end, what)
            yield num, wt, value
        elif wt == WT_LEN:
            if pos < end and buf[pos] < 0x80:
                length = buf[pos]
                pos += 1
            else:
                length, pos = read_varint(buf, pos, end, what)
            if length > end - pos:
                raise RemoteProtocolError(f"{what}: field {num} length {length} runs past the end")
            yield num, wt, buf[pos : pos + length]
            pos += length
        elif wt in (WT_I64, WT_I32):  # never used by the envelopes: skipped, not yielded
            size = 8 if wt == WT_I64 else 4
            if size > end - pos:
                raise RemoteProtocolError(f"{what}: field {num} truncated fixed-size value")
            pos += size
        else:
            raise RemoteProtocolError(f"{what}: field {num} has unsupported wire type {wt}")
