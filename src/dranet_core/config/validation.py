"""Validation of a claim configuration: every rule of the Go driver, and a few more.

:func:`validate_config` checks a :class:`NetworkConfig` (decoded, merged, or built in code by
a profile provider) and raises one :class:`~dranet_core.errors.ConfigError` with *all* the
issues, each with its JSON path and a rule that shows the offending value::

    interface.mtu: must be >= 68, got 40

Per-field rules come from the model's metadata (``kind``, ``minimum``, ``maximum``,
``one_of``, ``not_in``, ``format``, ``required``, ``max_items``, ``max_length``), read
generically, so the JSON Schema
(:mod:`dranet_core.config.schema`) states the same bounds. Rules that relate two fields are
written out here:

* ``interface``: ``dhcp: true`` and non-empty ``addresses`` are mutually exclusive;
* ``rules`` are not allowed together with ``interface.vrf``;
* ``routes[i].gateway`` is required unless ``scope`` is 253 (link), and it and ``source``
  must be of the destination's IP family;
* ``rules[i].source`` and ``destination`` must be of the same family;
* ``sriov.mac`` must be a unicast, non-zero MAC; ``sriov.vlanQoS`` > 0 and ``sriov.vlanProto``
  802.1ad need a non-zero ``sriov.vlan``; ``sriov.minTxRate`` must not exceed a non-zero
  ``sriov.maxTxRate``;
* ``subinterface.mode`` must be a mode of ``subinterface.type`` and ``subinterface.flag`` is
  for ipvlan only; with a ``subinterface``, ``interface.dhcp`` (the lease would be the
  parent's) and ``sriov`` are refused, and so is ``interface.hardwareAddr`` for ipvlan (its
  children carry the parent's MAC).

:func:`validate_rdma_only` is the extra check for a device that has no network interface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dranet_core.config.codec import describe_json, join_path
from dranet_core.config.fields import FieldSpec, TypeSpec, fields_of, int_bounds
from dranet_core.config.formats import ifname_problems, parse_ip, parse_mac, parse_prefix
from dranet_core.config.model import (
    SUBINTERFACE_MODES,
    InterfaceConfig,
    NetworkConfig,
    RouteConfig,
    RuleConfig,
    SriovConfig,
    SubinterfaceConfig,
)
from dranet_core.errors import ConfigError, ConfigIssue

__all__ = ["config_issues", "validate_config", "validate_rdma_only"]

_RT_SCOPE_LINK = 253


def validate_config(config: NetworkConfig, *, path: str = "") -> None:
    """Raise :class:`ConfigError` listing every broken rule of ``config`` (paths under ``path``)."""
    issues = config_issues(config, path=path)
    if issues:
        raise ConfigError(issues)


def config_issues(config: NetworkConfig, *, path: str = "") -> list[ConfigIssue]:
    """Every broken rule of ``config``, in field order (empty: valid)."""
    issues: list[ConfigIssue] = []
    _check_object(config, path, issues)
    _check_cross_field(config, path, issues)
    return issues


# -- generic per-field rules ---------------------------------------------------------------


def _check_object(obj: object, path: str, issues: list[ConfigIssue]) -> None:
    for spec in fields_of(type(obj)):
        value = getattr(obj, spec.attr)
        if value is None or (value == "" and spec.empty_is_unset):
            if spec.required:
                issues.append(ConfigIssue(join_path(path, spec.json), "is required"))
            continue
        _check_value(spec, spec.type, value, join_path(path, spec.json), issues)


def _check_value(spec: FieldSpec, tp: TypeSpec, value: object, path: str, issues: list[ConfigIssue]) -> None:
    kind = tp.kind
    if kind == "object":
        assert tp.cls is not None
        if not isinstance(value, tp.cls):
            issues.append(ConfigIssue(path, f"must be a {tp.cls.__name__}, got {type(value).__name__}"))
        else:
            _check_object(value, path, issues)
    elif kind == "list":
        _check_list(spec, tp, value, path, issues)
    elif kind == "map":
        assert tp.item is not None
        if not isinstance(value, Mapping):
            issues.append(ConfigIssue(path, f"must be a map, got {describe_json(value)}"))
            return
        for key, item in value.items():
            _check_value(spec, tp.item, item, join_path(path, str(key)), issues)
    elif kind == "bool":
        if not isinstance(value, bool):
            issues.append(ConfigIssue(path, f"must be a boolean, got {describe_json(value)}"))
    elif kind == "int":
        _check_int(spec.meta, value, path, issues)
    else:
        _check_str(spec, value, path, issues)


def _check_list(spec: FieldSpec, tp: TypeSpec, value: object, path: str, issues: list[ConfigIssue]) -> None:
    assert tp.item is not None
    if isinstance(value, str) or not isinstance(value, Sequence):
        issues.append(ConfigIssue(path, f"must be a list, got {describe_json(value)}"))
        return
    most = spec.meta.get("max_items")
    if most is not None and len(value) > most:
        issues.append(ConfigIssue(path, f"must have at most {most} entries, got {len(value)}"))
        return
    for i, item in enumerate(value):
        _check_value(spec, tp.item, item, join_path(path, i), issues)


def _check_int(meta: Mapping[str, Any], value: object, path: str, issues: list[ConfigIssue]) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        issues.append(ConfigIssue(path, f"must be an integer, got {describe_json(value)}"))
        return
    if "one_of" in meta:
        allowed = tuple(meta["one_of"])
        if value not in allowed:
            issues.append(ConfigIssue(path, f"must be one of {', '.join(map(str, allowed))}, got {value}"))
        return
    lo, hi = int_bounds(meta)
    if value < lo:
        issues.append(ConfigIssue(path, f"must be >= {lo}, got {value}"))
    elif value > hi:
        issues.append(ConfigIssue(path, f"must be <= {hi}, got {value}"))
    elif value in meta.get("not_in", ()):
        reserved = ", ".join(map(str, meta["not_in"]))
        issues.append(ConfigIssue(path, f"must not be one of the reserved values {reserved}, got {value}"))


_PARSERS: dict[str, Callable[[str], object]] = {"cidr": parse_prefix, "ip": parse_ip, "mac": parse_mac}


def _check_str(spec: FieldSpec, value: object, path: str, issues: list[ConfigIssue]) -> None:
    if not isinstance(value, str):
        issues.append(ConfigIssue(path, f"must be a string, got {describe_json(value)}"))
        return
    if value == "" and spec.required:
        issues.append(ConfigIssue(path, "must not be empty"))
        return
    choices = spec.meta.get("choices")
    if choices is not None and value not in choices:
        issues.append(ConfigIssue(path, f"must be one of {', '.join(choices)}, got {describe_json(value)}"))
        return
    longest = spec.meta.get("max_length")
    if longest is not None and len(value) > longest:
        issues.append(ConfigIssue(path, f"must be at most {longest} characters long, got {len(value)}"))
        return
    fmt = spec.meta.get("format")
    if fmt == "ifname":
        issues.extend(ConfigIssue(path, p) for p in ifname_problems(value))
        return
    parser = _PARSERS.get(fmt or "")
    if parser is not None:
        try:
            parser(value)
        except ValueError as exc:
            issues.append(ConfigIssue(path, str(exc)))


# -- rules relating several fields ---------------------------------------------------------


def _family(text: object, parse: Any) -> int | None:
    if not text or not isinstance(text, str):
        return None
    try:
        result = parse(text)
    except ValueError:
        return None  # reported by the per-field rule
    addr = result[0] if isinstance(result, tuple) else result
    return int(addr.version)


def _fam(version: int) -> str:
    return f"IPv{version}"


def _check_cross_field(config: NetworkConfig, path: str, issues: list[ConfigIssue]) -> None:
    iface = config.interface if isinstance(config.interface, InterfaceConfig) else None
    if iface is not None and iface.dhcp is True and iface.addresses:
        issues.append(ConfigIssue(join_path(path, "interface"), "dhcp and addresses are mutually exclusive"))
    if iface is not None and iface.vrf is not None and config.rules:
        issues.append(ConfigIssue(join_path(path, "rules"), "not supported when interface.vrf is set"))
    if isinstance(config.sriov, SriovConfig):
        _check_sriov(config.sriov, join_path(path, "sriov"), issues)
    if isinstance(config.subinterface, SubinterfaceConfig):
        _check_subinterface(config, path, issues)
    for i, route in enumerate(_objects(config.routes, RouteConfig)):
        _check_route(route, join_path(join_path(path, "routes"), i), issues)
    for i, rule in enumerate(_objects(config.rules, RuleConfig)):
        rpath = join_path(join_path(path, "rules"), i)
        src, dst = _family(rule.source, parse_prefix), _family(rule.destination, parse_prefix)
        if src is not None and dst is not None and src != dst:
            issues.append(
                ConfigIssue(
                    rpath,
                    f"source {rule.source!r} ({_fam(src)}) and destination {rule.destination!r} "
                    f"({_fam(dst)}) must be the same IP family",
                )
            )


def _objects(values: object, cls: type[Any]) -> Iterable[Any]:
    if isinstance(values, Sequence) and not isinstance(values, str):
        return [v for v in values if isinstance(v, cls)]
    return ()


def _check_route(route: RouteConfig, path: str, issues: list[ConfigIssue]) -> None:
    dst = _family(route.destination, parse_prefix)
    if route.scope != _RT_SCOPE_LINK and not route.gateway:
        issues.append(
            ConfigIssue(join_path(path, "gateway"), "is required unless scope is 253 (link), got no gateway")
        )
    for name, text in (("gateway", route.gateway), ("source", route.source)):
        fam = _family(text, parse_ip)
        if dst is not None and fam is not None and fam != dst:
            issues.append(
                ConfigIssue(
                    join_path(path, name),
                    f"must be the same IP family as destination {route.destination!r} ({_fam(dst)}), "
                    f"got {text!r} ({_fam(fam)})",
                )
            )


def _check_sriov(sriov: SriovConfig, path: str, issues: list[ConfigIssue]) -> None:
    if isinstance(sriov.mac, str):
        try:
            mac = parse_mac(sriov.mac)
        except ValueError:
            mac = None  # reported by the per-field rule
        if mac is not None and len(mac) != 6:
            issues.append(
                ConfigIssue(join_path(path, "mac"), f"must be a 6-octet Ethernet MAC, got {sriov.mac!r}")
            )
        elif mac is not None and mac[0] & 1:
            issues.append(ConfigIssue(join_path(path, "mac"), f"must be a unicast MAC, got {sriov.mac!r}"))
        elif mac is not None and not any(mac):
            issues.append(ConfigIssue(join_path(path, "mac"), f"must not be all zeros, got {sriov.mac!r}"))
    vlan = sriov.vlan if isinstance(sriov.vlan, int) else 0
    if isinstance(sriov.vlan_qos, int) and sriov.vlan_qos > 0 and vlan == 0:
        issues.append(
            ConfigIssue(
                join_path(path, "vlanQoS"), f"needs a non-zero sriov.vlan, got vlanQoS {sriov.vlan_qos}"
            )
        )
    if sriov.vlan_proto == "802.1ad" and vlan == 0:
        issues.append(ConfigIssue(join_path(path, "vlanProto"), "802.1ad needs a non-zero sriov.vlan"))
    lo, hi = sriov.min_tx_rate, sriov.max_tx_rate
    if isinstance(lo, int) and isinstance(hi, int) and hi > 0 and lo > hi:
        issues.append(ConfigIssue(join_path(path, "minTxRate"), f"must be <= maxTxRate ({hi}), got {lo}"))


def _check_subinterface(config: NetworkConfig, path: str, issues: list[ConfigIssue]) -> None:
    sub = config.subinterface
    assert isinstance(sub, SubinterfaceConfig)
    spath = join_path(path, "subinterface")
    modes = SUBINTERFACE_MODES.get(sub.type) if isinstance(sub.type, str) else None
    known = {m for ms in SUBINTERFACE_MODES.values() for m in ms}  # others: the per-field rule
    if modes is not None and isinstance(sub.mode, str) and sub.mode in known and sub.mode not in modes:
        issues.append(
            ConfigIssue(
                join_path(spath, "mode"),
                f"must be one of {', '.join(modes)} for type {sub.type}, got {sub.mode!r}",
            )
        )
    if sub.type == "macvlan" and sub.flag:
        issues.append(
            ConfigIssue(
                join_path(spath, "flag"), f"is for type ipvlan only, got {sub.flag!r} with type macvlan"
            )
        )
    iface = config.interface if isinstance(config.interface, InterfaceConfig) else None
    if iface is not None and iface.dhcp is True:
        issues.append(
            ConfigIssue(
                join_path(join_path(path, "interface"), "dhcp"),
                "not supported with subinterface (the lease would be the parent's, taken on the host)",
            )
        )
    if iface is not None and iface.hardware_addr and sub.type == "ipvlan":
        issues.append(
            ConfigIssue(
                join_path(join_path(path, "interface"), "hardwareAddr"),
                "not supported with subinterface type ipvlan (an ipvlan child has its parent's MAC)",
            )
        )
    if config.sriov is not None:
        issues.append(ConfigIssue(join_path(path, "sriov"), "not supported with subinterface (VF settings)"))


# -- RDMA-only devices ---------------------------------------------------------------------

_RDMA_FORBIDDEN_INTERFACE = (
    "name",
    "addresses",
    "mtu",
    "hardware_addr",
    "dhcp",
    "gso_max_size",
    "gro_max_size",
    "gso_ipv4_max_size",
    "gro_ipv4_max_size",
    "disable_ebpf_programs",
    "arp_ignore",
    "arp_announce",
)


def _unset(value: object) -> bool:
    """None, or an empty string or list (what Go's ``omitempty`` leaves out); ``False`` is set."""
    return value is None or (isinstance(value, str | Sequence) and len(value) == 0)


def validate_rdma_only(config: NetworkConfig, *, path: str = "") -> None:
    """Reject what cannot apply to an RDMA device that has no network interface.

    Forbidden (when set; an empty name or list counts as unset): every interface field but
    ``forwarding`` and ``vrf``, and ``routes``, ``rules``, ``neighbors`` and ``ethtool``.
    ``profile`` is allowed. Raises :class:`ConfigError` with one issue per field.
    """
    rule = "not supported for RDMA-only devices (no network interface)"
    issues: list[ConfigIssue] = []
    iface = config.interface
    if isinstance(iface, InterfaceConfig):
        ipath = join_path(path, "interface")
        by_attr = {s.attr: s for s in fields_of(type(iface))}
        for attr in _RDMA_FORBIDDEN_INTERFACE:
            value = getattr(iface, attr)
            if not _unset(value):
                issues.append(ConfigIssue(join_path(ipath, by_attr[attr].json), rule))
    for name, value in (
        ("routes", config.routes),
        ("rules", config.rules),
        ("neighbors", config.neighbors),
        ("ethtool", config.ethtool),
    ):
        if (name == "ethtool" and value is not None) or (name != "ethtool" and not _unset(value)):
            issues.append(ConfigIssue(join_path(path, name), rule))
    if issues:
        raise ConfigError(issues)
