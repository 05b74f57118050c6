"""A tiny schema-less protobuf codec for the test runtime peer.

Written from the protobuf encoding spec, independent of the plugin's codecs (betterproto2 and
dranet_core.wire._protobuf), so the peer checks the plugin against the wire format and not
against itself. Messages are lists of (field number, value): int -> varint, bytes/str ->
length-delimited, list -> nested message.
"""

from __future__ import annotations

from typing import Union

Value = Union[int, bytes, str, "list[tuple[int, Value]]"]


_ONE_BYTE = tuple(bytes((i,)) for i in range(0x80))


def varint(n: int) -> bytes:
    """``n`` as a protobuf varint (a negative ``n`` as its 64-bit two's complement)."""
    if 0 <= n < 0x80:
        return _ONE_BYTE[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode(fields: list[tuple[int, Value]]) -> bytes:
    """The message of ``fields`` in order: int (bool) -> varint, str/bytes -> length-delimited
    (str as UTF-8), list -> a nested message, length-delimited."""
    out = bytearray()
    for num, value in fields:
        kind = type(value)
        if kind is str:
            raw = value.encode()  # type: ignore[union-attr]
        elif kind is bytes:
            raw = value
        elif kind is list:
            raw = encode(value)  # type: ignore[arg-type]
        elif isinstance(value, int):  # bool included
            out += varint(num << 3)
            out += varint(int(value))
            continue
        elif isinstance(value, str):
            raw = value.encode()
        elif isinstance(value, bytes):
            raw = bytes(value)
        else:
            raw = encode(value)
        key = num << 3 | 2
        if key < 0x80:
            out.append(key)
        else:
            out += varint(key)
        size = len(raw)
        if size < 0x80:
            out.append(size)
        else:
            out += varint(size)
        out += raw
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
