"""Strict JSON decoding (and encoding) of the claim configuration.

:func:`decode_config` turns the opaque ``parameters`` of a claim into a
:class:`~dranet_core.config.model.NetworkConfig`, as strictly as the Go driver's
``UnmarshalStrict``: unknown fields, duplicate fields (detectable only when given the JSON
text), wrong-case field names and wrong JSON types are errors. ``true`` is not an integer,
``1500.0`` is not an integer, ``NaN``/``Infinity`` are not JSON. ``null`` means *unset*, as
for a Go pointer. Every problem is collected, each with its JSON path, into one
:class:`~dranet_core.errors.ConfigError`.

Decoding checks *shapes* only; value rules (``mtu >= 68``) are
:func:`~dranet_core.config.validation.validate_config`'s job. The walk is generic over the
model's attrs fields (:mod:`dranet_core.config.fields`): there is no per-field parser.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Final

from dranet_core.config.fields import TypeSpec, fields_of
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import ConfigError, ConfigIssue
from dranet_core.types import JSON

__all__ = ["decode_config", "describe_json", "encode_config", "join_path", "loads_strict"]

_INVALID: Final = object()
_SIMPLE_KEY: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class _JSONObject(dict[str, Any]):
    """A decoded JSON object that remembers which keys appeared more than once."""

    duplicates: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> _JSONObject:
    obj = _JSONObject()
    dups: list[str] = []
    for key, value in pairs:
        if key in obj and key not in dups:
            dups.append(key)
        obj[key] = value
    obj.duplicates = tuple(dups)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@functools.lru_cache(maxsize=4096)
def join_path(path: str, key: str | int) -> str:
    """``path`` extended by an object key (``a.b``, ``a["x.y"]``) or a list index (``a[1]``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not _SIMPLE_KEY.match(key):
        return f"{path}[{json.dumps(key, ensure_ascii=False)}]"
    return f"{path}.{key}" if path else key


def describe_json(value: object) -> str:
    """A value as it would appear in JSON, for messages (``"abc"``, ``true``, ``40``)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _want(expected: str, value: object) -> str:
    return f"must be {expected}, got {_json_type(value)} {describe_json(value)}"


def loads_strict(raw: str | bytes | bytearray) -> Any:
    """Parse JSON text; objects remember duplicate keys (seen by :func:`decode_config` as
    ``duplicate field``); ``NaN``/``Infinity`` are refused. Raises ValueError for bad JSON,
    including nesting deeper than the parser's limit (about the interpreter's recursion
    limit, 1000 levels by default), never RecursionError."""
    try:
        return json.loads(raw, object_pairs_hook=_object_pairs, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"nested too deeply (more than about {sys.getrecursionlimit()} levels)") from None


def _parse_text(raw: str | bytes | bytearray, path: str) -> Any:
    try:
        return loads_strict(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, too deep
        raise ConfigError(f"invalid JSON: {exc}", path=path) from None


def decode_config(raw: JSON | str | bytes | bytearray, *, path: str = "") -> NetworkConfig:
    """Decode the opaque ``parameters`` into a :class:`NetworkConfig`, strictly.

    ``raw`` is either the already-parsed JSON value (a dict; ``None`` means no config) or the
    JSON text (``str``/``bytes``; empty means no config), in which case duplicate keys are
    detected as well. ``path`` prefixes every issue path (e.g. ``config[0].parameters``).
    Raises :class:`ConfigError` carrying every issue found.
    """
    if isinstance(raw, str | bytes | bytearray):
        if not raw:
            return NetworkConfig()
        raw = _parse_text(raw, path)
    if raw is None:
        return NetworkConfig()
    issues: list[ConfigIssue] = []
    value = _decode_object(NetworkConfig, raw, path, issues)
    if issues:
        raise ConfigError(issues)
    assert isinstance(value, NetworkConfig)
    return value


def _unknown_field(key: str, known: list[str]) -> str:
    folded = [k for k in known if k.lower() == key.lower()]
    if folded:
        return f"unknown field (names are case-sensitive: did you mean {folded[0]!r}?)"
    close = _close_matches(key, known, n=1)
    if close:
        return f"unknown field (did you mean {close[0]!r}?)"
    return f"unknown field (known: {', '.join(known)})"


def _decode_object(cls: type, value: object, path: str, issues: list[ConfigIssue]) -> object:
    if not isinstance(value, Mapping):
        issues.append(ConfigIssue(path, _want("an object", value)))
        return _INVALID
    for dup in getattr(value, "duplicates", ()):
        issues.append(ConfigIssue(join_path(path, dup), "duplicate field"))
    specs = {s.json: s for s in fields_of(cls)}
    kwargs: dict[str, object] = {}
    ok = True
    for key, item in value.items():
        if not isinstance(key, str):
            issues.append(ConfigIssue(path, f"field names must be strings, got {key!r}"))
            ok = False
            continue
        spec = specs.get(key)
        if spec is None:
            issues.append(ConfigIssue(join_path(path, key), _unknown_field(key, list(specs))))
            ok = False
            continue
        if item is None:
            continue  # null: unset, like a nil Go pointer
        decoded = _decode_value(spec.type, item, join_path(path, key), issues)
        if decoded is _INVALID:
            ok = False
        else:
            kwargs[spec.attr] = decoded
    return cls(**kwargs) if ok else _INVALID


def _decode_value(tp: TypeSpec, value: object, path: str, issues: list[ConfigIssue]) -> object:
    kind = tp.kind
    if kind == "str":
        if isinstance(value, str):
            return value
        issues.append(ConfigIssue(path, _want("a string", value)))
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        issues.append(ConfigIssue(path, _want("a boolean", value)))
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        issues.append(ConfigIssue(path, _want("an integer", value)))
    elif kind == "object":
        assert tp.cls is not None
        return _decode_object(tp.cls, value, path, issues)
    elif kind == "list":
        return _decode_list(tp, value, path, issues)
    else:
        return _decode_map(tp, value, path, issues)
    return _INVALID


def _decode_list(tp: TypeSpec, value: object, path: str, issues: list[ConfigIssue]) -> object:
    assert tp.item is not None
    if not isinstance(value, list | tuple):
        issues.append(ConfigIssue(path, _want("an array", value)))
        return _INVALID
    items = [_decode_value(tp.item, v, join_path(path, i), issues) for i, v in enumerate(value)]
    return _INVALID if any(i is _INVALID for i in items) else tuple(items)


def _decode_map(tp: TypeSpec, value: object, path: str, issues: list[ConfigIssue]) -> object:
    assert tp.item is not None
    if not isinstance(value, Mapping):
        issues.append(ConfigIssue(path, _want("an object", value)))
        return _INVALID
    for dup in getattr(value, "duplicates", ()):
        issues.append(ConfigIssue(join_path(path, dup), "duplicate key"))
    out: dict[str, object] = {}
    ok = True
    for key, item in value.items():
        if not isinstance(key, str):
            issues.append(ConfigIssue(path, f"keys must be strings, got {key!r}"))
            ok = False
            continue
        out[key] = _decode_value(tp.item, item, join_path(path, key), issues)
    return _INVALID if not ok or any(v is _INVALID for v in out.values()) else out


def encode_config(config: object) -> dict[str, JSON]:
    """The JSON object of a config model (unset fields omitted); the inverse of decoding.

    ``decode_config(encode_config(c)) == c`` for every decodable ``c``. Used to store a
    resolved config (checkpoint) or send it (profile webhook).
    """
    out: dict[str, JSON] = {}
    for spec in fields_of(type(config)):
        value = getattr(config, spec.attr)
        if value is not None:
            out[spec.json] = _encode_value(spec.type, value)
    return out


def _encode_value(tp: TypeSpec, value: Any) -> JSON:
    if tp.kind == "object":
        return encode_config(value)
    if tp.kind == "list":
        assert tp.item is not None
        return [_encode_value(tp.item, v) for v in value]
    if tp.kind == "map":
        assert tp.item is not None
        return {k: _encode_value(tp.item, v) for k, v in value.items()}
    return value


def _close_matches(word: str, possibilities: Iterable[str], n: int) -> list[str]:
    """:func:`difflib.get_close_matches`, loaded on this error path only."""
    import difflib

    return difflib.get_close_matches(word, possibilities, n=n)
