"""What sysfs says about a netdev and its PCI function, read under a given sysfs root.

The root is a parameter (``BackendContext.sysfs``), so tests build fake trees in a temporary
directory with the real layout::

    class/net/eth1 -> ../../devices/pci0000:00/0000:00:03.0/net/eth1
    devices/pci0000:00/0000:00:03.0/{vendor,device,subsystem_vendor,subsystem_device,class,numa_node}
    devices/pci0000:00/0000:00:03.0/{sriov_totalvfs,sriov_numvfs,physfn -> ../0000:00:02.0}
    devices/pci0000:00/0000:00:03.0/driver -> ../../../bus/pci/drivers/mlx5_core
    bus/pci/devices/0000:00:03.0 -> ../../../devices/pci0000:00/0000:00:03.0

``/sys/class/net`` shows the links of the network namespace sysfs was mounted in. When
discovery scans another namespace, an interface may be missing there (treated as virtual,
not PCI) or, worse, be a different interface with the same name: if the ``ifindex`` file
disagrees with the kernel's index, the entry is ignored.

Everything here is plain blocking file access to an in-memory filesystem (microseconds per
call); callers on the event loop batch it between yields.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import attrs

from dranet_backends.sysfs_read import normal_bdf, read_int

__all__ = ["NetdevSysfs", "netdev_sysfs"]

_BDF = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")


@attrs.frozen(kw_only=True)
class NetdevSysfs:
    """Sysfs facts of one netdev. ``present`` is False when sysfs does not show it."""

    present: bool = False
    virtual: bool = True
    pci_address: str | None = None
    sriov_totalvfs: int | None = None
    sriov_numvfs: int | None = None
    is_vf: bool = False


def netdev_sysfs(sysfs: Path, ifname: str, ifindex: int | None = None) -> NetdevSysfs:
    """Facts about netdev ``ifname`` (expected at ``ifindex``) under ``sysfs``.

    Paths here are plain strings: a ``Path`` interns each of its parts, so every device name
    would enter the interpreter's intern table, which grows with them and never shrinks.
    """
    join = os.path.join
    entry = join(sysfs, "class", "net", ifname)
    if not ifname or "/" in ifname or not os.path.lexists(entry):
        return NetdevSysfs()
    if ifindex is not None:
        seen = read_int(join(entry, "ifindex"))
        if seen is not None and seen != ifindex:
            return NetdevSysfs()  # a namesake in another netns
    real = os.path.realpath(entry)
    virtual_root = os.path.realpath(join(sysfs, "devices", "virtual"))
    virtual = real == virtual_root or real.startswith(virtual_root.rstrip(os.sep) + os.sep)
    pci: str | None = None
    if not virtual:
        for part in reversed(real.split(os.sep)):
            if _BDF.match(part):
                pci = normal_bdf(part)
                break
    dev = join(entry, "device")
    total = read_int(join(dev, "sriov_totalvfs"))
    numvfs = read_int(join(dev, "sriov_numvfs")) if total else None
    return NetdevSysfs(
        present=True,
        virtual=virtual,
        pci_address=pci,
        sriov_totalvfs=total,
        sriov_numvfs=numvfs,
        is_vf=os.path.islink(join(dev, "physfn")),
    )
