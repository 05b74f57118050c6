"""What sysfs says about RDMA devices and their char devices, read under a given sysfs root.

The layout read (the root is a parameter, so tests build fake trees in a temporary dir)::

    class/infiniband/mlx5_0 -> ../../devices/pci0000:00/0000:08:00.0/infiniband/mlx5_0
        device -> ../../../0000:08:00.0        (the PCI function; absent for rxe/siw)
        node_guid                              ("0c42:a103:0065:8b5e")
        parent                                 (rxe/siw: the netdev it runs on)
        ports/<n>/link_layer                   ("Ethernet", "InfiniBand")
        ports/<n>/state                        ("4: ACTIVE")
        ports/<n>/gid_attrs/ndevs/<i>          (the netdev of GID i, RoCE)
    devices/pci0000:00/0000:08:00.0/net/<ifname>   (a netdev of the PCI function)
    devices/pci0000:00/0000:08:00.0/numa_node
    class/infiniband_verbs/uverbs0/ibdev       ("mlx5_0")  -> /dev/infiniband/uverbs0
    class/infiniband_mad/umad0/{ibdev,port}                -> /dev/infiniband/umad0
    class/infiniband_mad/issm0/{ibdev,port}                -> /dev/infiniband/issm0
    class/infiniband_cm/ucm0/ibdev                         -> /dev/infiniband/ucm0

``/sys/class/infiniband`` is not netns-tagged: an RDMA device moved into a pod (exclusive
mode) is still listed, so discovery keeps publishing it while it is allocated. The
``net/`` directory of a PCI function *is* netns-tagged: a netdev moved into a pod is not
seen there (the device then looks IB-only, which only adds the PCI address attribute that
the netdev backend publishes anyway).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Final

import attrs

from dranet_backends.sysfs_read import listdir, normal_bdf, numa_node, pcie_root, read

__all__ = ["CHAR_DEVICE_CLASSES", "RDMA_CM", "RdmaDevice", "RdmaPort", "char_devices", "rdma_devices"]

log = logging.getLogger(__name__)

_BDF = re.compile(r"^([0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")

RDMA_CM: Final = "/dev/infiniband/rdma_cm"
"""The RDMA connection manager's char device, shared by every RDMA device."""

CHAR_DEVICE_CLASSES: Final = ("infiniband_verbs", "infiniband_mad", "infiniband_cm")
"""Sysfs classes whose entries name an RDMA device (``ibdev``) and a ``/dev/infiniband`` node."""


@attrs.frozen(kw_only=True)
class RdmaPort:
    """One port of an RDMA device."""

    index: int
    link_layer: str = ""
    state: str = ""
    netdevs: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class RdmaDevice:
    """One RDMA device (HCA) as sysfs shows it.

    ``pci_address`` is the PCI function of the ``device`` link (None for software devices);
    ``netdevs`` are the network interfaces of that PCI function visible in this netns, or
    for a software device (rxe, siw) its ``parent``/GID netdevs; ``char_devices`` are
    container paths (``/dev/infiniband/uverbs0``), without the shared ``rdma_cm``.
    """

    name: str
    pci_address: str | None = None
    node_guid: str = ""
    numa_node: int | None = None
    pcie_root: str | None = None
    ports: tuple[RdmaPort, ...] = ()
    netdevs: tuple[str, ...] = ()
    char_devices: tuple[str, ...] = ()

    @property
    def ib_only(self) -> bool:
        """No network interface of its own is visible (e.g. EFA, eRDMA, IPoIB kept on the host)."""
        return not self.netdevs


def _pci_of(entry: Path) -> tuple[str | None, Path | None]:
    link = entry / "device"
    if not os.path.lexists(link):
        return None, None
    real = Path(os.path.realpath(link))
    for part in reversed(real.parts):
        if _BDF.match(part):
            return normal_bdf(part), real
    return None, None


def _port(base: Path, name: str) -> RdmaPort | None:
    try:
        index = int(name)
    except ValueError:
        return None
    pdir = base / name
    ndevs = []
    for gid in listdir(pdir / "gid_attrs" / "ndevs"):
        nd = read(pdir / "gid_attrs" / "ndevs" / gid)
        if nd and nd not in ndevs:
            ndevs.append(nd)
    return RdmaPort(
        index=index,
        link_layer=read(pdir / "link_layer") or "",
        state=read(pdir / "state") or "",
        netdevs=tuple(ndevs),
    )


def char_devices(sysfs: Path) -> dict[str, tuple[str, ...]]:
    """RDMA device name -> its char devices' container paths, sorted (no ``rdma_cm``)."""
    out: dict[str, list[str]] = {}
    for cls in CHAR_DEVICE_CLASSES:
        base = sysfs / "class" / cls
        for entry in listdir(base):
            if entry == "abi_version" or "/" in entry:
                continue
            ibdev = read(base / entry / "ibdev")
            if not ibdev:
                continue
            out.setdefault(ibdev, []).append(f"/dev/infiniband/{entry}")
    return {k: tuple(sorted(v)) for k, v in out.items()}


def _one(sysfs: Path, name: str, chars: dict[str, tuple[str, ...]]) -> RdmaDevice:
    entry = sysfs / "class" / "infiniband" / name
    pci, real = _pci_of(entry)
    ports = tuple(p for p in (_port(entry / "ports", n) for n in listdir(entry / "ports")) if p is not None)
    numa: int | None = None
    root: str | None = None
    netdevs: tuple[str, ...]
    if pci is not None and real is not None:
        netdevs = tuple(listdir(real / "net"))
        numa = numa_node(real / "numa_node")
        root = pcie_root(real)
    else:
        parent = read(entry / "parent")
        found = [parent] if parent else []
        for p in ports:
            found.extend(n for n in p.netdevs if n not in found)
        netdevs = tuple(found)
    return RdmaDevice(
        name=name,
        pci_address=pci,
        node_guid=read(entry / "node_guid") or "",
        numa_node=numa,
        pcie_root=root,
        ports=ports,
        netdevs=netdevs,
        char_devices=chars.get(name, ()),
    )


def rdma_devices(sysfs: Path) -> list[RdmaDevice]:
    """Every RDMA device under ``sysfs`` (empty when there is no ``class/infiniband``), by name."""
    names = [n for n in listdir(sysfs / "class" / "infiniband") if "/" not in n]
    if not names:
        return []
    chars = char_devices(sysfs)
    return [_one(sysfs, n, chars) for n in names]
