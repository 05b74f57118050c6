"""The host snapshot: everything needed to give a netdev back exactly as it was.

Taken before the device moves (:func:`take`, in one trip to a netlink worker thread),
stored in the checkpoint as JSON (:meth:`HostSnapshot.to_json`), and read back by whichever process detaches
(:meth:`HostSnapshot.from_json`): restore is driven by the snapshot alone.

What is recorded, and why each item is needed on return:

* identity: name, ifindex, kind, MAC, permanent MAC, PCI address, virtual or not: to find
  the device again (a physical one may come back from a dead netns as ``devN``);
* MTU, MAC, GSO/GRO max sizes (IPv6 and IPv4): the pod config may change them;
* addresses, permanent neighbours: the kernel flushes them on a netns move;
* routes through the device (all tables but ``local``, no ``proto kernel`` routes: the kernel
  re-creates those from the addresses): flushed with the addresses;
* policy rules that send traffic to the tables those routes use, or that name the device
  (``iif``/``oif``): restored only if they went missing;
* ARP and forwarding sysctls of the device: reset by the kernel on a netns move;
* ethtool features that can change, and private flags: the pod config may change them;
* whether the link was up.
"""

from __future__ import annotations

import collections.abc
import contextlib
import socket
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from dranet_backends.netdev import ethtool, sysctl
from dranet_backends.netdev.nsutil import RtnlSync, call_in_netns

__all__ = [
    "SNAPSHOT_VERSION",
    "AddressRecord",
    "HostSnapshot",
    "NeighborRecord",
    "RouteRecord",
    "RuleRecord",
    "take",
]

SNAPSHOT_VERSION: Final = 1
RT_TABLE_MAIN: Final = 254
RT_TABLE_LOCAL: Final = 255
RTPROT_KERNEL: Final = 2
NUD_PERMANENT: Final = 0x80
IFF_UP: Final = 0x1
_SPECIAL_TABLES: Final = frozenset({0, 253, RT_TABLE_MAIN, RT_TABLE_LOCAL})


@attrs.frozen(kw_only=True)
class AddressRecord:
    """One address of the device."""

    address: str
    prefixlen: int
    scope: int = 0
    broadcast: str | None = None
    flags: int = 0


@attrs.frozen(kw_only=True)
class RouteRecord:
    """One route through the device. ``dst`` is ``None`` for a default route."""

    family: int
    dst: str | None
    dst_len: int
    gateway: str | None = None
    prefsrc: str | None = None
    scope: int = 0
    table: int = RT_TABLE_MAIN
    priority: int | None = None
    proto: int = 3


@attrs.frozen(kw_only=True)
class RuleRecord:
    """One policy rule related to the device."""

    family: int
    priority: int | None = None
    table: int = 0
    src: str | None = None
    src_len: int = 0
    dst: str | None = None
    dst_len: int = 0
    iifname: str | None = None
    oifname: str | None = None


@attrs.frozen(kw_only=True)
class NeighborRecord:
    """One permanent neighbour entry on the device."""

    dst: str
    lladdr: str


def _records(cls: type[Any], items: Any) -> tuple[Any, ...]:
    if items is None:
        return ()
    if not isinstance(items, list | tuple) or not all(isinstance(i, Mapping) for i in items):
        raise TypeError(f"{cls.__name__}: a list of objects is required")
    out = tuple(cls(**i) for i in items)
    for rec in out:
        _check_types(rec)
    return out


_Check = Callable[[Any], bool]


def _compile(hint: Any) -> _Check:
    """A predicate telling whether a value has type ``hint`` (the types records use)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        parts = tuple(_checker(h) for h in typing.get_args(hint))
        return lambda v: any(p(v) for p in parts)
    if hint is type(None):
        return lambda v: v is None
    if hint is int:
        return lambda v: isinstance(v, int) and not isinstance(v, bool)
    if hint in (str, bool):
        return lambda v: isinstance(v, hint)
    if origin in (Mapping, collections.abc.Mapping):
        key_ok, val_ok = (_checker(h) for h in typing.get_args(hint))
        return lambda v: isinstance(v, Mapping) and all(key_ok(k) and val_ok(x) for k, x in v.items())
    if origin is tuple:
        return lambda v: isinstance(v, tuple)  # records were checked one by one
    return lambda v: True


_CHECKERS: dict[Any, _Check] = {}


def _checker(hint: Any) -> _Check:
    check = _CHECKERS.get(hint)
    if check is None:
        check = _CHECKERS[hint] = _compile(hint)
    return check


_FIELDS: dict[type[Any], tuple[tuple[str, Any, _Check], ...]] = {}


def _fields(cls: type[Any]) -> tuple[tuple[str, Any, _Check], ...]:
    """Each field of a record class with its resolved type and that type's predicate, worked
    out once per class (resolving the type hints alone costs ~0.7 ms)."""
    fields = _FIELDS.get(cls)
    if fields is None:
        hints = typing.get_type_hints(cls)
        fields = _FIELDS[cls] = tuple(
            (f.name, hints[f.name], _checker(hints[f.name])) for f in attrs.fields(cls)
        )
    return fields


def _check_types(obj: Any) -> None:
    for name, hint, ok in _fields(type(obj)):
        value = getattr(obj, name)
        if not ok(value):
            raise TypeError(f"{type(obj).__name__}.{name}: {value!r} is not {hint}")


@attrs.frozen(kw_only=True)
class HostSnapshot:
    """The host state of one netdev (see the module docstring); JSON round-trips exactly."""

    ifname: str
    ifindex: int
    kind: str | None = None
    mac: str | None = None
    perm_mac: str | None = None
    pci_address: str | None = None
    virtual: bool = True
    up: bool = False
    mtu: int | None = None
    gso_max_size: int | None = None
    gro_max_size: int | None = None
    gso_ipv4_max_size: int | None = None
    gro_ipv4_max_size: int | None = None
    addresses: tuple[AddressRecord, ...] = ()
    routes: tuple[RouteRecord, ...] = ()
    rules: tuple[RuleRecord, ...] = ()
    neighbors: tuple[NeighborRecord, ...] = ()
    sysctls: Mapping[str, int] = attrs.field(factory=dict)
    sysctl_defaults: Mapping[str, int] = attrs.field(factory=dict)
    """The host netns ``conf/default`` values: what the kernel gives a device that arrives."""
    features: Mapping[str, bool] = attrs.field(factory=dict)
    private_flags: Mapping[str, bool] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (with a ``version`` key) for the checkpoint."""
        out = attrs.asdict(self, recurse=True)
        for key in ("addresses", "routes", "rules", "neighbors"):
            out[key] = list(out[key])
        out["sysctls"] = dict(self.sysctls)
        out["sysctl_defaults"] = dict(self.sysctl_defaults)
        out["features"] = dict(self.features)
        out["private_flags"] = dict(self.private_flags)
        out["version"] = SNAPSHOT_VERSION
        return out

    @classmethod
    def from_json(cls, data: Any) -> HostSnapshot:
        """Parse :meth:`to_json` output; raises ``ValueError`` naming what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"netdev snapshot must be an object, got {type(data).__name__}")
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"netdev snapshot version {data.get('version')!r} is not {SNAPSHOT_VERSION}")
        d = {k: v for k, v in data.items() if k != "version"}
        try:
            d["addresses"] = _records(AddressRecord, d.get("addresses"))
            d["routes"] = _records(RouteRecord, d.get("routes"))
            d["rules"] = _records(RuleRecord, d.get("rules"))
            d["neighbors"] = _records(NeighborRecord, d.get("neighbors"))
            snap = cls(**d)
            _check_types(snap)
        except TypeError as exc:
            raise ValueError(f"netdev snapshot: {exc}") from exc
        return snap

    @property
    def global_addresses(self) -> tuple[AddressRecord, ...]:
        """Addresses of global scope (what a pod gets when no addresses are configured)."""
        return tuple(a for a in self.addresses if a.scope == 0)


def _perm_mac(link: Any) -> str | None:
    raw = link.get("perm_address")
    if not raw:
        return None
    if isinstance(raw, str) and ":" not in raw:  # pyroute2 decodes it as hex "0a1b2c..."
        raw = ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))
    text = str(raw).lower()
    return None if text.strip("0:") == "" else text


def link_identity(link: Any) -> dict[str, Any]:
    """Identity fields of a pyroute2 link message (kind, MACs, PCI address)."""
    bus = link.get("parent_dev_bus_name")
    return {
        "ifname": link.get("ifname"),
        "ifindex": int(link["index"]),
        "kind": link.get(("linkinfo", "kind")),
        "mac": link.get("address"),
        "perm_mac": _perm_mac(link),
        "pci_address": link.get("parent_dev_name") if bus == "pci" else None,
    }


def _address_records(msgs: list[Any]) -> tuple[AddressRecord, ...]:
    out = []
    for m in msgs:
        addr = m.get("address") if m["family"] == socket.AF_INET6 else (m.get("local") or m.get("address"))
        if not addr:
            continue
        flags = m.get("flags")
        out.append(
            AddressRecord(
                address=addr,
                prefixlen=int(m["prefixlen"]),
                scope=int(m["scope"]),
                broadcast=m.get("broadcast") if m["family"] == socket.AF_INET else None,
                flags=int(flags if flags is not None else m["flags"]),
            )
        )
    return tuple(out)


def _routes(rtnl: RtnlSync, index: int) -> tuple[RouteRecord, ...]:
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for r in rtnl.route_dump(family, oif=index):
            if r["proto"] == RTPROT_KERNEL or r["type"] != 1:
                continue
            table = r.get("table") or r["table"]
            if table == RT_TABLE_LOCAL:
                continue
            out.append(
                RouteRecord(
                    family=family,
                    dst=r.get("dst"),
                    dst_len=int(r["dst_len"]),
                    gateway=r.get("gateway"),
                    prefsrc=r.get("prefsrc"),
                    scope=int(r["scope"]),
                    table=int(table),
                    priority=r.get("priority"),
                    proto=int(r["proto"]),
                )
            )
    return tuple(out)


def _rules(rtnl: RtnlSync, ifname: str, tables: set[int]) -> tuple[RuleRecord, ...]:
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for r in rtnl.rule_dump(family):
            table = int(r.get("table") or r["table"])
            iif, oif = r.get("iifname"), r.get("oifname")
            if not ((table in tables and table not in _SPECIAL_TABLES) or ifname in (iif, oif)):
                continue
            out.append(
                RuleRecord(
                    family=family,
                    priority=r.get("priority"),
                    table=table,
                    src=r.get("src"),
                    src_len=int(r["src_len"]),
                    dst=r.get("dst"),
                    dst_len=int(r["dst_len"]),
                    iifname=iif,
                    oifname=oif,
                )
            )
    return tuple(out)


def _host_thread_state(
    ifname: str, proc_sys: str, ethtool_socket: Callable[[], socket.socket] | None
) -> tuple[dict[str, int], dict[str, int], dict[str, bool], dict[str, bool]]:
    sysctls = sysctl.read_device(ifname, root=proc_sys)
    defaults = sysctl.read_device("default", root=proc_sys)
    held = ethtool_socket() if ethtool_socket is not None else None
    with contextlib.nullcontext(held) if held is not None else ethtool.inet_socket() as sock:
        try:
            feats = ethtool.get_features(sock, ifname)
            features = {n: feats.active[n] for n in sorted(feats.changeable)}
        except OSError:
            features = {}
        try:
            flags = ethtool.get_private_flags(sock, ifname)
        except OSError:
            flags = {}
    return sysctls, defaults, features, flags


def take(
    rtnl: RtnlSync,
    ns_fd: int | None,
    link: Any,
    facet: Mapping[str, Any],
    proc_sys: str = sysctl.PROC_SYS_NET,
    ethtool_socket: Callable[[], socket.socket] | None = None,
) -> HostSnapshot:
    """Snapshot the device ``link`` (a link record read on ``rtnl``, whose netns is
    ``ns_fd``; ``None``: the calling thread's own).

    ``ethtool_socket``, called inside that netns, gives a long-lived socket for the ethtool
    reads (the caller owns it); without it one is made and closed here. Closing a socket
    frees its inode through RCU, and a link move waits for every CPU's pending RCU
    callbacks (``rcu_barrier``): a socket closed on another CPU just before the move costs
    the move a tick or more.

    Blocking: on a netlink worker thread holding ``rtnl``'s turn (:meth:`.nsutil.Rtnl.held`),
    so that the whole snapshot -- six dumps, the sysctl and ethtool reads -- is one trip
    from the event loop. The sysctl and ethtool reads enter ``ns_fd`` on this thread and
    come back."""
    ident = link_identity(link)
    index = ident["ifindex"]
    ifname = ident["ifname"]
    addresses = _address_records(rtnl.addr_dump(index))
    routes = _routes(rtnl, index)
    rules = _rules(rtnl, ifname, {r.table for r in routes})
    neighbors = tuple(
        NeighborRecord(dst=n.get("dst"), lladdr=n.get("lladdr"))
        for n in rtnl.neigh_dump(index)
        if n["state"] & NUD_PERMANENT and n.get("dst") and n.get("lladdr")
    )

    def host_state() -> tuple[dict[str, int], dict[str, int], dict[str, bool], dict[str, bool]]:
        return _host_thread_state(ifname, proc_sys, ethtool_socket)

    sysctls, defaults, features, flags = host_state() if ns_fd is None else call_in_netns(ns_fd, host_state)
    return HostSnapshot(
        ifname=ifname,
        ifindex=index,
        kind=ident["kind"],
        mac=ident["mac"],
        perm_mac=ident["perm_mac"] or facet.get("perm_mac") or None,
        pci_address=ident["pci_address"] or facet.get("pci_address") or None,
        virtual=bool(facet.get("virtual", ident["kind"] is not None)),
        up=bool(link["flags"] & IFF_UP),
        mtu=link.get("mtu"),
        gso_max_size=link.get("gso_max_size"),
        gro_max_size=link.get("gro_max_size"),
        gso_ipv4_max_size=link.get("gso_ipv4_max_size"),
        gro_ipv4_max_size=link.get("gro_ipv4_max_size"),
        addresses=addresses,
        routes=routes,
        rules=rules,
        neighbors=neighbors,
        sysctls=sysctls,
        sysctl_defaults=defaults,
        features=features,
        private_flags=flags,
    )
