"""Generic introspection of the config model: one :class:`FieldSpec` per attrs field.

The decoder, the validator, the merger, the JSON Schema generator and the docs all walk the
model through :func:`fields_of`, so a field added to :mod:`dranet_core.config.model` (with its
``metadata``) is decoded, validated, merged and documented without further code.

Supported field types (each optionally ``| None``): ``str``, ``bool``, ``int``,
``tuple[T, ...]``, ``Mapping[str, bool]`` and another attrs model class.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

import attrs

__all__ = ["INT_KINDS", "FieldSpec", "Kind", "TypeSpec", "fields_of", "int_bounds"]

Kind: TypeAlias = Literal["str", "bool", "int", "list", "map", "object"]

INT_KINDS: Final[Mapping[str, tuple[int, int]]] = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 255),
    "uint32": (0, 2**32 - 1),
}
"""Integer widths: the range a value of that width can hold."""


@attrs.frozen(kw_only=True)
class TypeSpec:
    """The shape of a value: ``kind``, plus the item shape of a list or map, or the class."""

    kind: Kind
    item: TypeSpec | None = None
    cls: type | None = None


@attrs.frozen(kw_only=True)
class FieldSpec:
    """One model field: Python attribute name, JSON name, shape and rule metadata."""

    attr: str
    json: str
    type: TypeSpec
    meta: Mapping[str, Any]

    @property
    def doc(self) -> str:
        return str(self.meta.get("doc", ""))

    @property
    def required(self) -> bool:
        return bool(self.meta.get("required", False))

    @property
    def empty_is_unset(self) -> bool:
        return bool(self.meta.get("empty_is_unset", False))


def int_bounds(meta: Mapping[str, Any]) -> tuple[int, int]:
    """The effective inclusive range of an integer field: its width narrowed by min/max."""
    lo, hi = INT_KINDS[meta.get("kind", "int64")]
    if "minimum" in meta:
        lo = max(lo, int(meta["minimum"]))
    if "maximum" in meta:
        hi = min(hi, int(meta["maximum"]))
    return lo, hi


def _type_spec(tp: Any) -> TypeSpec:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp!r}")
        return _type_spec(args[0])
    if tp is str:
        return TypeSpec(kind="str")
    if tp is bool:
        return TypeSpec(kind="bool")
    if tp is int:
        return TypeSpec(kind="int")
    origin = typing.get_origin(tp)
    if origin is tuple:
        targs = typing.get_args(tp)
        if len(targs) != 2 or targs[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple type {tp!r}: use tuple[T, ...]")
        return TypeSpec(kind="list", item=_type_spec(targs[0]))
    if origin in (Mapping, dict):
        key, value = typing.get_args(tp)
        if key is not str:
            raise TypeError(f"unsupported mapping key type {key!r}")
        return TypeSpec(kind="map", item=_type_spec(value))
    if isinstance(tp, type) and attrs.has(tp):
        return TypeSpec(kind="object", cls=tp)
    raise TypeError(f"unsupported config field type {tp!r}")


_CACHE: dict[type, tuple[FieldSpec, ...]] = {}


def fields_of(cls: type) -> tuple[FieldSpec, ...]:
    """The fields of attrs model ``cls`` in declaration order (cached)."""
    cached = _CACHE.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    out = []
    for f in attrs.fields(cls):
        if "json" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} has no metadata['json']")
        out.append(
            FieldSpec(attr=f.name, json=f.metadata["json"], type=_type_spec(hints[f.name]), meta=f.metadata)
        )
    _CACHE[cls] = result = tuple(out)
    return result
