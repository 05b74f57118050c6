"""Merging several configurations of one device into one, later entries winning.

The API lists a claim's configs in order, DeviceClass configs first and the claim's own
after, so :func:`merge_configs` applies them in order and a later entry overrides an
earlier one (the Go driver instead takes the *first* valid config, so a class config
shadows the claim's). The rules, field by field:

* a scalar that is set (not ``None``) replaces the earlier value, including an explicit
  ``0``, ``false`` or ``""``;
* a nested object (``interface``, ``ethtool``) is merged field by field with the same
  rules, except ``interface.vrf``, which is replaced as a whole (its table derives from its
  name, so mixing the two of different VRFs is never wanted);
* a list is appended (earlier entries first) and de-duplicated by key, keeping the *last*
  occurrence in its position: ``addresses`` by address and prefix length (text normalised,
  so ``2001:DB8::1/64`` equals ``2001:db8::1/64``), ``routes`` by (destination, table) with
  table unset/0/254 all meaning main, ``neighbors`` by destination IP, ``rules`` by the whole
  rule (unset priority/table equal 0, prefixes normalised). An explicit *empty* list clears
  the earlier entries;
* a map (``ethtool.features``, ``ethtool.privateFlags``) is merged key by key, later wins.

Lists are de-duplicated even when only one config is given.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final

import attrs

from dranet_core.config.fields import TypeSpec, fields_of
from dranet_core.config.formats import parse_ip, parse_prefix
from dranet_core.config.model import InterfaceConfig, NeighborConfig, NetworkConfig, RouteConfig, RuleConfig

__all__ = ["merge_configs"]

_MAIN_TABLE: Final = 254


def _prefix_key(text: str | None) -> Hashable:
    if text is None:
        return None
    if not isinstance(text, str):  # not validated yet: compare by value
        return repr(text)
    try:
        addr, length = parse_prefix(text)
    except ValueError:
        return text
    return (addr.version, addr.packed, length)


def _ip_key(text: str | None) -> Hashable:
    if text is None:
        return None
    if not isinstance(text, str):  # not validated yet: compare by value
        return repr(text)
    try:
        return parse_ip(text).packed
    except ValueError:
        return text


def _route_key(route: RouteConfig) -> Hashable:
    table = _MAIN_TABLE if route.table in (None, 0) else route.table
    return (_prefix_key(route.destination), table)


def _neighbor_key(neighbor: NeighborConfig) -> Hashable:
    return _ip_key(neighbor.destination)


def _rule_key(rule: RuleConfig) -> Hashable:
    return (
        rule.priority or 0,
        _prefix_key(rule.source or None),
        _prefix_key(rule.destination or None),
        rule.table or 0,
    )


_LIST_KEYS: Final[dict[tuple[type, str], Callable[[Any], Hashable]]] = {
    (InterfaceConfig, "addresses"): _prefix_key,
    (NetworkConfig, "routes"): _route_key,
    (NetworkConfig, "neighbors"): _neighbor_key,
    (NetworkConfig, "rules"): _rule_key,
}

_REPLACED_WHOLE: Final = frozenset({(InterfaceConfig, "vrf")})


def _dedupe_keep_last(items: Sequence[Any], key: Callable[[Any], Hashable]) -> tuple[Any, ...]:
    seen: set[Hashable] = set()
    kept: list[Any] = []
    for item in reversed(items):
        k = key(item)
        if k not in seen:
            seen.add(k)
            kept.append(item)
    return tuple(reversed(kept))


def _merge_value(owner: type, attr: str, tp: TypeSpec, old: Any, new: Any) -> Any:
    if tp.kind == "list":
        key = _LIST_KEYS.get((owner, attr), lambda x: x)
        if new is None:
            return None if old is None else _dedupe_keep_last(old, key)
        if len(new) == 0:
            return ()
        return _dedupe_keep_last((*(old or ()), *new), key)
    if new is None:
        return old
    if old is None:
        return _merge_object(new, new) if tp.kind == "object" else new
    if tp.kind == "object" and (owner, attr) not in _REPLACED_WHOLE:
        return _merge_object(old, new)
    if tp.kind == "map":
        return {**old, **new}
    return new


def _merge_object(old: Any, new: Any) -> Any:
    cls = type(new)
    changes = {
        s.attr: _merge_value(cls, s.attr, s.type, getattr(old, s.attr), getattr(new, s.attr))
        for s in fields_of(cls)
    }
    return attrs.evolve(new, **changes)


def merge_configs(configs: Sequence[NetworkConfig]) -> NetworkConfig:
    """Merge ``configs`` in order, later entries overriding earlier ones (see module doc).

    An empty sequence gives an empty :class:`NetworkConfig`. The inputs are not changed.
    """
    result = NetworkConfig()
    for config in configs:
        result = _merge_object(result, config)
    return result
