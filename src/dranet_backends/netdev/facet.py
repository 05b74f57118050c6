"""The netdev facet: what the netdev backend records privately about a device.

``Device.facets["netdev"]`` (and so ``PreparedDevice.facets["netdev"]``) is a JSON object
written by discovery and read by the namespace mover::

    {
      "ifname":      "eth1",              # kernel name in the host netns at discovery time
      "ifindex":     7,                   # kernel index in the host netns
      "mac":         "02:00:00:aa:bb:cc", # current hardware address ("" if none)
      "perm_mac":    "02:00:00:aa:bb:cc", # permanent address (IFLA_PERM_ADDRESS), or null
      "pci_address": "0000:00:03.0",      # PCI function, or null for a non-PCI netdev
      "kind":        "veth",              # IFLA_INFO_KIND, or "device" for a physical one
      "virtual":     true,                # sysfs says /sys/devices/virtual (or not in sysfs)
      "alias":       ""                   # IFLA_IFALIAS
    }

A PCI device whose netdev is not in the host netns (moved into a pod, or no netdev) has no
netdev facet. Readers use :meth:`NetdevFacet.from_json`, which ignores unknown keys so the
facet can grow without breaking checkpoints written by older versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["FACET", "NetdevFacet"]

FACET = "netdev"
"""The key of this backend's facet in ``Device.facets``."""


@attrs.frozen(kw_only=True)
class NetdevFacet:
    """The netdev backend's private data about one device (see the module docstring)."""

    ifname: str
    ifindex: int
    mac: str = ""
    perm_mac: str | None = None
    pci_address: str | None = None
    kind: str = "device"
    virtual: bool = True
    alias: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in ``Device.facets["netdev"]``."""
        return {
            "ifname": self.ifname,
            "ifindex": self.ifindex,
            "mac": self.mac,
            "perm_mac": self.perm_mac,
            "pci_address": self.pci_address,
            "kind": self.kind,
            "virtual": self.virtual,
            "alias": self.alias,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NetdevFacet:
        """Read a facet; raises ValueError naming the key if a required one is missing or wrong."""
        try:
            ifname = data["ifname"]
            ifindex = data["ifindex"]
        except KeyError as exc:
            raise ValueError(f"netdev facet: missing key {exc.args[0]!r}") from exc
        if not isinstance(ifname, str) or not isinstance(ifindex, int) or isinstance(ifindex, bool):
            raise ValueError(f"netdev facet: bad ifname/ifindex {ifname!r}/{ifindex!r}")
        return cls(
            ifname=ifname,
            ifindex=ifindex,
            mac=str(data.get("mac") or ""),
            perm_mac=data.get("perm_mac"),
            pci_address=data.get("pci_address"),
            kind=str(data.get("kind") or "device"),
            virtual=bool(data.get("virtual", True)),
            alias=str(data.get("alias") or ""),
        )
