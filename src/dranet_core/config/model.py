"""The claim configuration model: the opaque ``parameters`` a claim passes to ``dra.net``.

Field for field the Go driver's ``NetworkConfig`` (JSON names in camelCase, shown in each
field's ``metadata["json"]``). ``None`` means *unset*; an explicit zero or ``False`` is a
value. Decoding, validation, defaults, merging and the JSON Schema live beside this module
and all derive from these definitions.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = [
    "EthtoolConfig",
    "InterfaceConfig",
    "NeighborConfig",
    "NetworkConfig",
    "RouteConfig",
    "RuleConfig",
    "VRFConfig",
]


def _j(name: str) -> dict[str, str]:
    return {"json": name}


@attrs.frozen(kw_only=True)
class VRFConfig:
    """A VRF to create (or join) in the pod netns and enslave the interface to."""

    name: str | None = attrs.field(default=None, metadata=_j("name"))
    table: int | None = attrs.field(default=None, metadata=_j("table"))


@attrs.frozen(kw_only=True)
class InterfaceConfig:
    """How the interface looks inside the pod."""

    name: str | None = attrs.field(default=None, metadata=_j("name"))
    addresses: tuple[str, ...] | None = attrs.field(default=None, metadata=_j("addresses"))
    dhcp: bool | None = attrs.field(default=None, metadata=_j("dhcp"))
    mtu: int | None = attrs.field(default=None, metadata=_j("mtu"))
    hardware_addr: str | None = attrs.field(default=None, metadata=_j("hardwareAddr"))
    gso_max_size: int | None = attrs.field(default=None, metadata=_j("gsoMaxSize"))
    gro_max_size: int | None = attrs.field(default=None, metadata=_j("groMaxSize"))
    gso_ipv4_max_size: int | None = attrs.field(default=None, metadata=_j("gsoIPv4MaxSize"))
    gro_ipv4_max_size: int | None = attrs.field(default=None, metadata=_j("groIPv4MaxSize"))
    disable_ebpf_programs: bool | None = attrs.field(default=None, metadata=_j("disableEbpfPrograms"))
    forwarding: bool | None = attrs.field(default=None, metadata=_j("forwarding"))
    arp_ignore: int | None = attrs.field(default=None, metadata=_j("arpIgnore"))
    arp_announce: int | None = attrs.field(default=None, metadata=_j("arpAnnounce"))
    vrf: VRFConfig | None = attrs.field(default=None, metadata=_j("vrf"))


@attrs.frozen(kw_only=True)
class RouteConfig:
    """A static route. ``scope`` is 0 (universe) or 253 (link); ``table`` 0 means main."""

    destination: str | None = attrs.field(default=None, metadata=_j("destination"))
    gateway: str | None = attrs.field(default=None, metadata=_j("gateway"))
    source: str | None = attrs.field(default=None, metadata=_j("source"))
    scope: int | None = attrs.field(default=None, metadata=_j("scope"))
    table: int | None = attrs.field(default=None, metadata=_j("table"))


@attrs.frozen(kw_only=True)
class RuleConfig:
    """A policy routing rule."""

    priority: int | None = attrs.field(default=None, metadata=_j("priority"))
    source: str | None = attrs.field(default=None, metadata=_j("source"))
    destination: str | None = attrs.field(default=None, metadata=_j("destination"))
    table: int | None = attrs.field(default=None, metadata=_j("table"))


@attrs.frozen(kw_only=True)
class NeighborConfig:
    """A permanent ARP/NDP entry."""

    destination: str | None = attrs.field(default=None, metadata=_j("destination"))
    hardware_addr: str | None = attrs.field(default=None, metadata=_j("hardwareAddr"))


@attrs.frozen(kw_only=True)
class EthtoolConfig:
    """Offload features and private flags to set, by name, inside the pod."""

    features: Mapping[str, bool] | None = attrs.field(default=None, metadata=_j("features"))
    private_flags: Mapping[str, bool] | None = attrs.field(default=None, metadata=_j("privateFlags"))


@attrs.frozen(kw_only=True)
class NetworkConfig:
    """The whole opaque configuration of one device."""

    profile: str | None = attrs.field(default=None, metadata=_j("profile"))
    interface: InterfaceConfig | None = attrs.field(default=None, metadata=_j("interface"))
    routes: tuple[RouteConfig, ...] | None = attrs.field(default=None, metadata=_j("routes"))
    rules: tuple[RuleConfig, ...] | None = attrs.field(default=None, metadata=_j("rules"))
    neighbors: tuple[NeighborConfig, ...] | None = attrs.field(default=None, metadata=_j("neighbors"))
    ethtool: EthtoolConfig | None = attrs.field(default=None, metadata=_j("ethtool"))
