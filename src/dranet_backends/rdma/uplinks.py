"""The node's uplinks: interfaces of the default routes, which are never published.

The netdev backend leaves out the default-route interfaces and every link below them (the
Go driver's ``gwInterfaces``). An RDMA device on such an interface's PCI function must not
be published either: the netdev backend would not publish the netdev, so the merged device
would look IB-only and could be handed to a pod. The rdma backend has no rtnetlink view, so
it reads the kernel's route tables from procfs (the reader's network namespace: the driver
runs in the host's):

* ``<procfs>/net/route``: a default route has ``Destination`` and ``Mask`` ``00000000``;
* ``<procfs>/net/ipv6_route``: destination all zeros with prefix length ``00``, not a reject
  route (``RTF_REJECT`` 0x0200, e.g. the ``lo`` unreachable entries).

A link is an uplink when it is one of those interfaces or its ``master`` (``<sysfs>/class/
net/<if>/master``, a bond or bridge) is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

__all__ = ["default_route_interfaces", "is_uplink"]

log = logging.getLogger(__name__)

RTF_REJECT: Final = 0x0200


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def default_route_interfaces(procfs: Path) -> frozenset[str]:
    """Names of the interfaces that carry an IPv4 or IPv6 default route."""
    out: set[str] = set()
    for line in _lines(procfs / "net" / "route")[1:]:
        f = line.split()
        if len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000":
            out.add(f[0])
    for line in _lines(procfs / "net" / "ipv6_route"):
        f = line.split()
        if len(f) < 10 or f[0] != "0" * 32 or f[1] != "00":
            continue
        try:
            flags = int(f[8], 16)
        except ValueError:
            continue
        if not flags & RTF_REJECT and f[9] != "lo":
            out.add(f[9])
    return frozenset(out)


def is_uplink(sysfs: Path, ifname: str, uplinks: frozenset[str]) -> bool:
    """Whether ``ifname`` is an uplink or enslaved to one (see the module docstring)."""
    if ifname in uplinks:
        return True
    master = sysfs / "class" / "net" / ifname / "master"
    return os.path.islink(master) and os.path.basename(os.readlink(master)) in uplinks
