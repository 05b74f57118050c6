"""A faster protobuf encoder for the messages our gRPC servers send (betterproto2 messages).

betterproto2 serialises a message field by field and, for every field, builds the field's
default value under ``warnings.catch_warnings()`` to compare it with the value: ~55 us for a
one-claim NodePrepareResources response, about a twentieth of the server's CPU time per
kubelet call. :func:`encode_message` writes the same bytes from the same field metadata
(``message._betterproto``), with each class's field plan and defaults computed once.

Supported field kinds: strings, bytes, bools, varint integers and enums, nested messages,
repeated ones of these (not packed scalars), and maps with string keys and string or message
values. A message class with any other field (packed repeated scalars, fixed-width or
zig-zag integers, floats, wrapped types, oneof members) is handed to betterproto2 as a whole, so the output
is byte for byte betterproto2's for every message (``tests/dra/test_codec.py``).
:class:`FastProtoCodec` is grpclib's ``ProtoCodec`` with this encoder; decoding is
betterproto2's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import betterproto2
from grpclib.encoding.proto import ProtoCodec

from dranet_core.wire._protobuf import varint

__all__ = ["FastProtoCodec", "encode_message"]

_VARINT_TYPES = frozenset(
    {
        betterproto2.TYPE_BOOL,
        betterproto2.TYPE_ENUM,
        betterproto2.TYPE_INT32,
        betterproto2.TYPE_INT64,
        betterproto2.TYPE_UINT32,
        betterproto2.TYPE_UINT64,
    }
)
_LEN_TYPES = frozenset({betterproto2.TYPE_STRING, betterproto2.TYPE_BYTES, betterproto2.TYPE_MESSAGE})


def _single(kind: str, value: Any) -> bytes:
    """The payload of one value (without its tag; a length-delimited one without its length)."""
    if kind == betterproto2.TYPE_STRING:
        return bytes(value.encode("utf-8"))
    if kind == betterproto2.TYPE_MESSAGE:
        return encode_message(value)
    if kind == betterproto2.TYPE_BYTES:
        return bytes(value)
    number = int(value)
    if number < -(1 << 63):
        raise ValueError(f"{number} does not fit a 64-bit varint")
    return varint(number)


class _Field(NamedTuple):
    attr: str
    kind: str  # a betterproto2 TYPE_* of the value (of a map: of its values)
    tag: bytes
    default: Any
    repeated: bool
    map_value: str | None  # the value type of a map<string, ...> field


def _plan(cls: type) -> tuple[_Field, ...] | None:
    """The fields of ``cls`` in betterproto2's order, or None when one is not supported."""
    info: Any = cls._betterproto  # type: ignore[attr-defined]
    out: list[_Field] = []
    for attr, meta in info.meta_by_field_name.items():
        if meta.unwrap is not None or meta.group is not None:
            return None  # wrapped types; oneof members (on the wire even when set to a default)
        default = info.default_gen[attr]()
        if meta.map_meta is not None:
            key, val = meta.map_meta
            if key.proto_type != betterproto2.TYPE_STRING or val.unwrap is not None:
                return None
            if val.proto_type not in (betterproto2.TYPE_STRING, betterproto2.TYPE_MESSAGE):
                return None
            out.append(
                _Field(attr, val.proto_type, varint(meta.number << 3 | 2), default, False, val.proto_type)
            )
            continue
        kind = meta.proto_type
        if kind in _LEN_TYPES:
            wire = 2
        elif kind in _VARINT_TYPES and not meta.repeated:  # repeated ones are packed
            wire = 0
        else:
            return None
        out.append(_Field(attr, kind, varint(meta.number << 3 | wire), default, bool(meta.repeated), None))
    return tuple(out)


_PLANS: dict[type, tuple[_Field, ...] | None] = {}


def _plan_of(cls: type) -> tuple[_Field, ...] | None:
    try:
        return _PLANS[cls]
    except KeyError:
        plan = _PLANS[cls] = _plan(cls)
        return plan


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def encode_message(message: Any) -> bytes:
    """``bytes(message)`` of a betterproto2 message, the same bytes, computed faster."""
    plan = _plan_of(type(message))
    if plan is None or message._is_pydantic():
        return bytes(message)
    parts: list[bytes] = []
    append = parts.append
    for f in plan:
        value = getattr(message, f.attr)
        if value is None or value == f.default:
            continue
        if f.map_value is not None:
            for k, v in value.items():
                entry = _delimited(b"\x0a", _single(betterproto2.TYPE_STRING, k)) + _delimited(
                    b"\x12", _single(f.map_value, v)
                )
                append(_delimited(f.tag, entry))
        elif f.repeated:
            for item in value:
                append(_delimited(f.tag, _single(f.kind, item)))
        elif f.kind in _LEN_TYPES:
            append(_delimited(f.tag, _single(f.kind, value)))
        else:
            append(f.tag + _single(f.kind, value))
    append(message._unknown_fields)
    return b"".join(parts)


class FastProtoCodec(ProtoCodec):
    """grpclib's ``ProtoCodec`` encoding with :func:`encode_message` (same bytes, less CPU)."""

    def encode(self, message: Any, message_type: type[Any]) -> bytes:
        if not isinstance(message, message_type):
            raise TypeError(f"Message must be of type {message_type!r}, not {type(message)!r}")
        return encode_message(message)
