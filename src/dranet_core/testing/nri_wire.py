"""A tiny schema-less protobuf codec for the test runtime peer.

Written from the protobuf encoding spec, independent of the plugin's codecs (betterproto2 and
dranet_core.wire._protobuf), so the peer checks the plugin against the wire format and not
against itself. Messages are lists of (field number, value): int -> varint, bytes/str ->
length-delimited, list -> nested message.
"""

from __future__ import annotations

from typing import Union

Value = Union[int, bytes, str, "list[tuple[int, Value]]"]


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(fields: list[tuple[int, Value]]) -> bytes:
    out = bytearray()
    for num, value in fields:
        if isinstance(value, bool | int):
            out += varint(num << 3 | 0) + varint(int(value))
        else:
            if isinstance(value, str):
                raw = value.encode()
            elif isinstance(value, bytes):
                raw = value
            else:
                raw = encode(value)
            out += varint(num << 3 | 2) + varint(len(raw)) + raw
    return bytes(out)


def decode(buf: bytes) -> dict[int, list[int | bytes]]:
    """Field number -> values (varints as int, length-delimited as bytes). Raises ValueError."""
    out: dict[int, list[int | bytes]] = {}
    i = 0

    def rv() -> int:
        nonlocal i
        shift = result = 0
        while True:
            if i >= len(buf):
                raise ValueError("truncated varint")
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < len(buf):
        key = rv()
        num, wt = key >> 3, key & 7
        if wt == 0:
            out.setdefault(num, []).append(rv())
        elif wt == 2:
            n = rv()
            if i + n > len(buf):
                raise ValueError("truncated bytes")
            out.setdefault(num, []).append(buf[i : i + n])
            i += n
        elif wt == 1:
            out.setdefault(num, []).append(buf[i : i + 8])
            i += 8
        elif wt == 5:
            out.setdefault(num, []).append(buf[i : i + 4])
            i += 4
        else:
            raise ValueError(f"wire type {wt}")
    return out


def first(msg: dict[int, list[int | bytes]], num: int, default: int | bytes = b"") -> int | bytes:
    vals = msg.get(num)
    return vals[-1] if vals else default


def text(msg: dict[int, list[int | bytes]], num: int) -> str:
    v = first(msg, num)
    assert isinstance(v, bytes)
    return v.decode()
