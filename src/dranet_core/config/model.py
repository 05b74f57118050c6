"""The claim configuration model: the opaque ``parameters`` a claim passes to ``dra.net``.

Field for field the Go driver's ``NetworkConfig`` (JSON names in camelCase, shown in each
field's ``metadata["json"]``). ``None`` means *unset*; an explicit zero or ``False`` is a
value. Decoding, validation, defaults, merging and the JSON Schema live beside this module
and all derive from these definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = [
    "IPVLAN_FLAGS",
    "MAX_ENTRIES",
    "MAX_PROFILE_LENGTH",
    "EthtoolConfig",
    "InterfaceConfig",
    "NeighborConfig",
    "NetworkConfig",
    "RdmaConfig",
    "RouteConfig",
    "RuleConfig",
    "SUBINTERFACE_MODES",
    "SriovConfig",
    "SubinterfaceConfig",
    "VRFConfig",
]


MAX_ENTRIES: Final = 256
"""At most this many routes, rules and neighbors per device (each is one netlink request, and
every one is journalled and restored)."""

MAX_PROFILE_LENGTH: Final = 253
"""The longest ``profile`` name accepted (a DNS name's limit)."""


def _j(name: str, doc: str = "", **rules: Any) -> dict[str, Any]:
    """Field metadata: the JSON name, a one-line description and the static rules.

    Rule keys (read generically by the decoder, the validator, the JSON Schema generator and
    the docs, so they cannot drift): ``kind`` (integer width: ``int32``, ``int64``,
    ``uint8``, ``uint32``), ``minimum``, ``maximum``, ``one_of``, ``not_in``, ``format``
    (``ifname``, ``cidr``, ``ip``, ``mac``; for a list it applies to each item),
    ``choices`` (the strings a string field may take),
    ``required`` (must be set and non-empty), ``empty_is_unset`` (``""`` means unset, as a
    plain Go string with ``omitempty``).
    """
    return {"json": name, "doc": doc, **rules}


@attrs.frozen(kw_only=True)
class VRFConfig:
    """A VRF to create (or join) in the pod netns and enslave the interface to."""

    name: str | None = attrs.field(
        default=None, metadata=_j("name", "VRF device name in the pod netns", required=True)
    )
    table: int | None = attrs.field(
        default=None,
        metadata=_j(
            "table",
            "routing table of the VRF (default: FNV-32a(name) % 1000 + 1000)",
            kind="uint32",
            minimum=1,
            not_in=(253, 254, 255),
        ),
    )


@attrs.frozen(kw_only=True)
class InterfaceConfig:
    """How the interface looks inside the pod."""

    name: str | None = attrs.field(
        default=None,
        metadata=_j(
            "name",
            "interface name inside the pod (default: the host name)",
            format="ifname",
            empty_is_unset=True,
        ),
    )
    addresses: tuple[str, ...] | None = attrs.field(
        default=None, metadata=_j("addresses", "IP addresses in CIDR form (host bits allowed)", format="cidr")
    )
    dhcp: bool | None = attrs.field(
        default=None, metadata=_j("dhcp", "get an IPv4 address by DHCP (not with addresses)")
    )
    mtu: int | None = attrs.field(default=None, metadata=_j("mtu", "MTU", kind="int32", minimum=68))
    hardware_addr: str | None = attrs.field(
        default=None, metadata=_j("hardwareAddr", "MAC address", format="mac")
    )
    gso_max_size: int | None = attrs.field(
        default=None, metadata=_j("gsoMaxSize", "IFLA_GSO_MAX_SIZE", kind="int32", minimum=1)
    )
    gro_max_size: int | None = attrs.field(
        default=None, metadata=_j("groMaxSize", "IFLA_GRO_MAX_SIZE", kind="int32", minimum=1)
    )
    gso_ipv4_max_size: int | None = attrs.field(
        default=None, metadata=_j("gsoIPv4MaxSize", "IFLA_GSO_IPV4_MAX_SIZE", kind="int32", minimum=1)
    )
    gro_ipv4_max_size: int | None = attrs.field(
        default=None, metadata=_j("groIPv4MaxSize", "IFLA_GRO_IPV4_MAX_SIZE", kind="int32", minimum=1)
    )
    disable_ebpf_programs: bool | None = attrs.field(
        default=None, metadata=_j("disableEbpfPrograms", "detach TC/TCX BPF programs and unpin BPF links")
    )
    forwarding: bool | None = attrs.field(
        default=None, metadata=_j("forwarding", "per-interface IPv4/IPv6 forwarding")
    )
    arp_ignore: int | None = attrs.field(
        default=None, metadata=_j("arpIgnore", "sysctl arp_ignore", kind="int32", one_of=(0, 1, 2, 3, 8))
    )
    arp_announce: int | None = attrs.field(
        default=None, metadata=_j("arpAnnounce", "sysctl arp_announce", kind="int32", minimum=0, maximum=2)
    )
    vrf: VRFConfig | None = attrs.field(default=None, metadata=_j("vrf", "enslave the interface to a VRF"))


@attrs.frozen(kw_only=True)
class RouteConfig:
    """A static route. ``scope`` is 0 (universe) or 253 (link); ``table`` 0 means main."""

    destination: str | None = attrs.field(
        default=None,
        metadata=_j(
            "destination", "destination prefix in CIDR form (required)", format="cidr", required=True
        ),
    )
    gateway: str | None = attrs.field(
        default=None,
        metadata=_j("gateway", "next hop IP; required unless scope is 253", format="ip", empty_is_unset=True),
    )
    source: str | None = attrs.field(
        default=None, metadata=_j("source", "preferred source IP", format="ip", empty_is_unset=True)
    )
    scope: int | None = attrs.field(
        default=None,
        metadata=_j("scope", "0 (universe, default) or 253 (link)", kind="uint8", one_of=(0, 253)),
    )
    table: int | None = attrs.field(
        default=None, metadata=_j("table", "routing table; 0 or unset means main", kind="uint32", minimum=0)
    )


@attrs.frozen(kw_only=True)
class RuleConfig:
    """A policy routing rule."""

    priority: int | None = attrs.field(
        default=None, metadata=_j("priority", "rule priority", kind="int64", minimum=0, maximum=32767)
    )
    source: str | None = attrs.field(
        default=None, metadata=_j("source", "source prefix in CIDR form", format="cidr", empty_is_unset=True)
    )
    destination: str | None = attrs.field(
        default=None,
        metadata=_j("destination", "destination prefix in CIDR form", format="cidr", empty_is_unset=True),
    )
    table: int | None = attrs.field(
        default=None, metadata=_j("table", "routing table to look up", kind="uint32", minimum=0)
    )


@attrs.frozen(kw_only=True)
class NeighborConfig:
    """A permanent ARP/NDP entry."""

    destination: str | None = attrs.field(
        default=None, metadata=_j("destination", "neighbor IP (required)", format="ip", required=True)
    )
    hardware_addr: str | None = attrs.field(
        default=None,
        metadata=_j("hardwareAddr", "neighbor MAC address (required)", format="mac", required=True),
    )


@attrs.frozen(kw_only=True)
class EthtoolConfig:
    """Offload features and private flags to set, by name, inside the pod."""

    features: Mapping[str, bool] | None = attrs.field(
        default=None, metadata=_j("features", "offload features by kernel, long or short name")
    )
    private_flags: Mapping[str, bool] | None = attrs.field(
        default=None, metadata=_j("privateFlags", "driver private flags by name")
    )


@attrs.frozen(kw_only=True)
class SriovConfig:
    """Settings of an SR-IOV virtual function made through its physical function (PF).

    Applied on the PF before the VF moves into the pod and restored when it comes back, as
    ``ip link set <pf> vf <n> ...`` would. Only for a device that is an SR-IOV VF.
    """

    mac: str | None = attrs.field(
        default=None, metadata=_j("mac", "MAC address the PF assigns to the VF (unicast)", format="mac")
    )
    vlan: int | None = attrs.field(
        default=None,
        metadata=_j(
            "vlan", "VLAN ID the PF tags the VF's traffic with; 0 means none", minimum=0, maximum=4095
        ),
    )
    vlan_qos: int | None = attrs.field(
        default=None,
        metadata=_j("vlanQoS", "802.1p priority of that VLAN (needs vlan)", minimum=0, maximum=7),
    )
    vlan_proto: str | None = attrs.field(
        default=None,
        metadata=_j("vlanProto", "VLAN protocol (needs vlan; default 802.1Q)", choices=("802.1Q", "802.1ad")),
    )
    spoof_chk: bool | None = attrs.field(
        default=None, metadata=_j("spoofChk", "drop frames the VF sends with another source MAC")
    )
    trust: bool | None = attrs.field(
        default=None, metadata=_j("trust", "trusted VF (may change its MAC, use promiscuous mode)")
    )
    link_state: str | None = attrs.field(
        default=None,
        metadata=_j(
            "linkState",
            "VF link state: follow the PF, always up, or down",
            choices=("auto", "enable", "disable"),
        ),
    )
    min_tx_rate: int | None = attrs.field(
        default=None, metadata=_j("minTxRate", "guaranteed TX rate in Mbit/s; 0 means none", kind="uint32")
    )
    max_tx_rate: int | None = attrs.field(
        default=None, metadata=_j("maxTxRate", "TX rate limit in Mbit/s; 0 means none", kind="uint32")
    )


SUBINTERFACE_MODES: Final[Mapping[str, tuple[str, ...]]] = {
    "macvlan": ("bridge", "private", "vepa", "passthru"),
    "ipvlan": ("l2", "l3", "l3s"),
}
"""The modes of each subinterface type (the names ``ip link`` uses); the first is the default."""

IPVLAN_FLAGS: Final = ("bridge", "private", "vepa")
"""The ipvlan flags (``ip link ... type ipvlan mode l2 bridge``); the first is the default."""


@attrs.frozen(kw_only=True)
class SubinterfaceConfig:
    """A fresh child of a shared parent device, created in the pod; the parent stays on the host.

    Only for a device published as shareable (``allowMultipleAllocations``): every claim
    that shares the parent gets its own child, named and configured by ``interface``,
    ``routes``, ``rules``, ``neighbors`` and ``ethtool`` like a moved device, and deleted when
    the pod stops.
    """

    type: str | None = attrs.field(
        default=None,
        metadata=_j(
            "type", "kind of child link (required)", required=True, choices=tuple(SUBINTERFACE_MODES)
        ),
    )
    mode: str | None = attrs.field(
        default=None,
        metadata=_j(
            "mode",
            "macvlan: bridge (default), private, vepa, passthru; ipvlan: l2 (default), l3, l3s",
            choices=tuple(dict.fromkeys(m for modes in SUBINTERFACE_MODES.values() for m in modes)),
            empty_is_unset=True,
        ),
    )
    flag: str | None = attrs.field(
        default=None,
        metadata=_j(
            "flag",
            "ipvlan only: bridge (default), private, vepa",
            choices=IPVLAN_FLAGS,
            empty_is_unset=True,
        ),
    )


@attrs.frozen(kw_only=True)
class RdmaConfig:
    """How the RDMA character devices (``/dev/infiniband/*``) appear in the pod's containers."""

    file_mode: int | None = attrs.field(
        default=None,
        metadata=_j(
            "fileMode", "permission bits of the char devices (default 0666 = 438)", minimum=0, maximum=0o777
        ),
    )
    uid: int | None = attrs.field(
        default=None, metadata=_j("uid", "owner user ID of the char devices (default: root)", kind="uint32")
    )
    gid: int | None = attrs.field(
        default=None, metadata=_j("gid", "owner group ID of the char devices (default: root)", kind="uint32")
    )


@attrs.frozen(kw_only=True)
class NetworkConfig:
    """The whole opaque configuration of one device."""

    profile: str | None = attrs.field(
        default=None,
        metadata=_j(
            "profile",
            "profile resolved by the profile provider",
            empty_is_unset=True,
            max_length=MAX_PROFILE_LENGTH,
        ),
    )
    interface: InterfaceConfig | None = attrs.field(
        default=None, metadata=_j("interface", "the interface inside the pod")
    )
    routes: tuple[RouteConfig, ...] | None = attrs.field(
        default=None, metadata=_j("routes", "static routes", max_items=MAX_ENTRIES)
    )
    rules: tuple[RuleConfig, ...] | None = attrs.field(
        default=None,
        metadata=_j("rules", "policy routing rules (not with interface.vrf)", max_items=MAX_ENTRIES),
    )
    neighbors: tuple[NeighborConfig, ...] | None = attrs.field(
        default=None, metadata=_j("neighbors", "permanent ARP/NDP entries", max_items=MAX_ENTRIES)
    )
    ethtool: EthtoolConfig | None = attrs.field(
        default=None, metadata=_j("ethtool", "offload features and private flags")
    )
    sriov: SriovConfig | None = attrs.field(
        default=None, metadata=_j("sriov", "VF settings made through the PF (SR-IOV VFs only)")
    )
    rdma: RdmaConfig | None = attrs.field(
        default=None, metadata=_j("rdma", "mode and owner of the RDMA char devices")
    )
    subinterface: SubinterfaceConfig | None = attrs.field(
        default=None,
        metadata=_j(
            "subinterface", "a macvlan/ipvlan child of a shared device in the pod (shareable devices only)"
        ),
    )
