"""Device attributes of a netdev and of a PCI function: the Go driver's table (§2.3), pure functions.

Attribute names and value types are the Go driver's, so DeviceClass and claim selectors
written for it work unchanged:

=================================  ======  ================================================
attribute                          type    value
=================================  ======  ================================================
dra.net/ifName                     string  kernel interface name
dra.net/mac                        string  hardware address, ``aa:bb:..`` ("" if none)
dra.net/mtu                        int     MTU
dra.net/encapsulation              string  link type (``ether``, ``loopback``, ``none``, ...)
dra.net/alias                      string  IFLA_IFALIAS ("" if unset; cut to 64 bytes)
dra.net/state                      string  operstate (``up``, ``down``, ``unknown``, ...)
dra.net/type                       string  link kind (``veth``, ``macvlan``, ...; ``tuntap``
                                           for tun; ``device`` for a physical NIC)
dra.net/ipv4, dra.net/ipv6         string  global unicast CIDRs, sorted, comma-joined, cut at
                                           an address boundary to 64 bytes (absent if none)
dra.net/virtual                    bool    sysfs path under devices/virtual (or not in sysfs)
dra.net/sriov                      bool    ``device/sriov_totalvfs`` > 0
dra.net/sriovVfs                   int     ``device/sriov_numvfs`` (only when sriov)
dra.net/isSriovVf                  bool    ``device/physfn`` exists (only ``true`` is emitted)
dra.net/ebpf                       bool    a tc BPF filter or a TCX program is attached
dra.net/tcFilterNames              string  the tc BPF filter names, comma-joined (if any)
dra.net/tcxProgramNames            string  the TCX program names, comma-joined (if any)
dra.net/rdma                       bool    false (the RDMA backend overrides it)
dra.net/pciAddress                 string  ``0000:8a:00.0``
dra.net/pciVendor                  string  vendor name from pci.ids, else the hex id
dra.net/pciDevice                  string  device name from pci.ids, else the hex id
dra.net/pciSubsystem               string  the hex subsystem device id (``0009``)
dra.net/numaNode                   int     ``numa_node`` (absent when -1)
resource.kubernetes.io/numaNode    int     same, the standard attribute
resource.kubernetes.io/pcieRoot    string  the PCI root bus, ``pci0000:00``
=================================  ======  ================================================
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from dranet_core.types import STRING_ATTRIBUTE_MAX_LEN, AttributeValue

from .rtnl import Addr, Link
from .sysfs import NetdevSysfs

__all__ = ["is_global_unicast", "join_capped", "link_type", "netdev_attributes"]

D = "dra.net/"
STD = "resource.kubernetes.io/"


def join_capped(items: Iterable[str], limit: int = STRING_ATTRIBUTE_MAX_LEN) -> str:
    """Comma-join ``items``, dropping whole items from the end so the result fits ``limit`` bytes."""
    out = ""
    for item in items:
        candidate = f"{out},{item}" if out else item
        if len(candidate.encode()) > limit:
            break
        out = candidate
    return out


def _cut(text: str, limit: int = STRING_ATTRIBUTE_MAX_LEN) -> str:
    raw = text.encode()
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")


def is_global_unicast(address: str) -> bool:
    """Go's ``net.IP.IsGlobalUnicast``: not loopback, link-local, multicast, unspecified, broadcast."""
    ip = ipaddress.ip_address(address)
    if ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return False
    return not (ip.version == 4 and address == "255.255.255.255")


def link_type(link: Link) -> str:
    """The Go driver's ``dra.net/type``: the link kind, ``tuntap`` for tun, ``device`` if none."""
    if link.kind is None or link.kind == "":
        return "device"
    return "tuntap" if link.kind == "tun" else link.kind


def netdev_attributes(
    link: Link,
    addrs: Iterable[Addr],
    sys: NetdevSysfs,
    tc_names: Iterable[str] = (),
    tcx_names: Iterable[str] = (),
) -> dict[str, AttributeValue]:
    """The netdev attributes of ``link``."""
    v4: list[str] = []
    v6: list[str] = []
    for a in addrs:
        if is_global_unicast(a.address):
            (v4 if a.family == 2 else v6).append(a.cidr)
    attrs: dict[str, AttributeValue] = {
        D + "ifName": link.name,
        D + "mac": link.mac,
        D + "mtu": link.mtu,
        D + "encapsulation": link.encapsulation,
        D + "alias": _cut(link.alias),
        D + "state": link.state,
        D + "type": link_type(link),
        D + "virtual": sys.virtual,
        D + "sriov": bool(sys.sriov_totalvfs),
        D + "rdma": False,
    }
    if v4:
        attrs[D + "ipv4"] = join_capped(sorted(v4))
    if v6:
        attrs[D + "ipv6"] = join_capped(sorted(v6))
    if sys.sriov_totalvfs:
        attrs[D + "sriovVfs"] = sys.sriov_numvfs or 0
    if sys.is_vf:
        attrs[D + "isSriovVf"] = True
    names = list(dict.fromkeys(tc_names))
    tcx = list(dict.fromkeys(tcx_names))
    attrs[D + "ebpf"] = bool(names or tcx)
    if names:
        attrs[D + "tcFilterNames"] = join_capped(names)
    if tcx:
        attrs[D + "tcxProgramNames"] = join_capped(tcx)
    return attrs
