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

from dranet_backends.sysfs_read import normal_bdf, numa_node, pcie_root, read, read_int

__all__ = [
    "USERSPACE_DRIVERS",
    "NetdevSysfs",
    "PciFunction",
    "netdev_sysfs",
    "pci_function",
    "pci_network_functions",
]

_BDF = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")

USERSPACE_DRIVERS = frozenset({"vfio-pci", "uio_pci_generic", "igb_uio", "pci-stub"})
"""PCI drivers that give no netdev: such NICs belong to the SR-IOV/userspace backends."""


@attrs.frozen(kw_only=True)
class NetdevSysfs:
    """Sysfs facts of one netdev. ``present`` is False when sysfs does not show it."""

    present: bool = False
    virtual: bool = True
    pci_address: str | None = None
    sriov_totalvfs: int | None = None
    sriov_numvfs: int | None = None
    is_vf: bool = False


@attrs.frozen(kw_only=True)
class PciFunction:
    """Sysfs facts of one PCI function (ids are lower-case hex without ``0x``)."""

    address: str
    vendor: str | None = None
    device: str | None = None
    subsystem_vendor: str | None = None
    subsystem_device: str | None = None
    pci_class: str | None = None
    numa_node: int | None = None
    pcie_root: str | None = None
    driver: str | None = None


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


def _hex_id(path: Path) -> str | None:
    text = read(path)
    if text is None:
        return None
    return text.lower().removeprefix("0x")


def pci_function(sysfs: Path, address: str) -> PciFunction:
    """Facts about PCI function ``address`` (``0000:8a:00.0``) under ``sysfs``."""
    base = sysfs / "bus" / "pci" / "devices" / address
    driver_link = base / "driver"
    driver = os.path.basename(os.readlink(driver_link)) if os.path.islink(driver_link) else None
    root = pcie_root(Path(os.path.realpath(base))) if os.path.lexists(base) else None
    return PciFunction(
        address=address,
        vendor=_hex_id(base / "vendor"),
        device=_hex_id(base / "device"),
        subsystem_vendor=_hex_id(base / "subsystem_vendor"),
        subsystem_device=_hex_id(base / "subsystem_device"),
        pci_class=_hex_id(base / "class"),
        numa_node=numa_node(base / "numa_node"),
        pcie_root=root,
        driver=driver,
    )


def pci_network_functions(sysfs: Path) -> list[PciFunction]:
    """Every PCI network controller (class 0x02) under ``sysfs``, whatever its driver.

    The caller decides what to do with unbound or userspace-bound ones.
    """
    base = sysfs / "bus" / "pci" / "devices"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    out: list[PciFunction] = []
    for name in names:
        cls = _hex_id(base / name / "class")
        if cls is None or not cls.startswith("02"):
            continue
        out.append(pci_function(sysfs, normal_bdf(name)))
    return out
