"""What sysfs says about SR-IOV and userspace-bound PCI network functions, under a given root.

The root is a parameter (``BackendContext.sysfs``); tests build fake trees in a temporary
directory with the real layout::

    bus/pci/devices/0000:00:03.1 -> ../../../devices/pci0000:00/0000:00:03.1
    devices/pci0000:00/0000:00:03.0/{sriov_totalvfs,sriov_numvfs,virtfn0 -> ../0000:00:03.1}
    devices/pci0000:00/0000:00:03.0/net/eth1/mtu                  (the PF's netdev)
    devices/pci0000:00/0000:00:03.1/physfn -> ../0000:00:03.0
    devices/pci0000:00/0000:00:03.1/driver -> ../../../bus/pci/drivers/vfio-pci
    devices/pci0000:00/0000:00:03.1/iommu_group -> ../../../kernel/iommu_groups/12
    kernel/iommu_groups/12/devices/0000:00:03.1 -> ../../../../devices/pci0000:00/0000:00:03.1
    devices/pci0000:00/0000:00:04.0/uio/uio0/                     (uio_pci_generic, igb_uio)

The generic PCI facts (ids, class, NUMA node, PCIe root, driver) come from the netdev
backend's :mod:`dranet_backends.pci`; this module adds the SR-IOV relations (PF of a
VF, VF index, the PF's netdev and MTU), the IOMMU group and its other members, and the uio
nodes. ``<pf>/net/`` is tagged with the network namespace sysfs was mounted in: a PF whose
netdev lives elsewhere shows none.

Plain blocking reads of an in-memory filesystem (microseconds each); the backend runs a
whole scan in a worker thread.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import attrs

from dranet_backends.pci import PciFunction, pci_function
from dranet_backends.sysfs_read import listdir, read, read_int, readlink_base

__all__ = [
    "PASSTHROUGH_DRIVERS",
    "Fingerprint",
    "SriovFunction",
    "fingerprint",
    "iommu_group",
    "kernel_vfs",
    "pf_netdev",
    "pf_netdev_mtu",
    "read_function",
    "userspace_functions",
]

PASSTHROUGH_DRIVERS = frozenset({"vfio-pci", "uio_pci_generic", "igb_uio"})
"""Userspace drivers whose devices this backend publishes (``pci-stub`` only parks a device:
nothing in a container can use it, so it is left out, as unbound functions are)."""

_BDF = re.compile(r"^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_VIRTFN = re.compile(r"^virtfn(\d+)$")
_UIO = re.compile(r"^uio\d+$")
_BRIDGE_CLASS = "0604"


@attrs.frozen(kw_only=True)
class SriovFunction:
    """One userspace-bound PCI network function: its PCI facts plus SR-IOV and IOMMU facts.

    ``pf`` is the PCI address of the physical function for a VF (None for a PF or a plain
    function), ``vf_index`` its ``virtfnN`` number on that PF, ``pf_ifname`` the PF's netdev
    in the scanned namespace (None if it has none there). ``iommu_group`` is None when the
    kernel has no IOMMU group for it; ``iommu_peers`` are the other non-bridge functions of
    the group (sorted). ``uio`` are the ``uioN`` nodes of a uio-bound function; ``netdevs``
    the netdevs of a kernel-bound function in the scanned namespace.
    """

    pci: PciFunction
    pf: str | None = None
    vf_index: int | None = None
    pf_ifname: str | None = None
    sriov_totalvfs: int | None = None
    sriov_numvfs: int | None = None
    iommu_group: int | None = None
    iommu_peers: tuple[str, ...] = ()
    uio: tuple[str, ...] = ()
    netdevs: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """The PCI address (``0000:00:03.1``)."""
        return self.pci.address

    @property
    def driver(self) -> str:
        """The bound driver's name (always one of :data:`PASSTHROUGH_DRIVERS` for a listed function)."""
        return self.pci.driver or ""

    @property
    def is_vf(self) -> bool:
        """Whether this is an SR-IOV virtual function."""
        return self.pf is not None


def _pci_dir(sysfs: Path, address: str) -> Path:
    return sysfs / "bus" / "pci" / "devices" / address


def iommu_group(sysfs: Path, address: str) -> int | None:
    """The IOMMU group number of ``address``, or None when it has none (no IOMMU)."""
    link = _pci_dir(sysfs, address) / "iommu_group"
    if not os.path.islink(link):
        return None
    try:
        return int(os.path.basename(os.readlink(link)))
    except (OSError, ValueError):
        return None


def _iommu_peers(sysfs: Path, address: str, group: int) -> tuple[str, ...]:
    members = listdir(sysfs / "kernel" / "iommu_groups" / str(group) / "devices")
    peers = []
    for member in members:
        if member == address:
            continue
        cls = (read(_pci_dir(sysfs, member) / "class") or "").lower().removeprefix("0x")
        if cls.startswith(_BRIDGE_CLASS):
            continue  # bridges may share a group with endpoints; vfio allows that
        peers.append(member)
    return tuple(peers)


def _virtfns(sysfs: Path, pf: str) -> dict[str, int]:
    """VF address -> ``virtfnN`` index, for every VF of ``pf``."""
    base = _pci_dir(sysfs, pf)
    out: dict[str, int] = {}
    for name in listdir(base):
        m = _VIRTFN.match(name)
        if m:
            try:
                out[os.path.basename(os.readlink(base / name))] = int(m.group(1))
            except OSError:
                continue
    return out


def _first_netdev(sysfs: Path, address: str) -> str | None:
    names = listdir(_pci_dir(sysfs, address) / "net")
    return names[0] if names else None


def pf_netdev(sysfs: Path, pf_address: str) -> str | None:
    """The (first) netdev of PF ``pf_address`` in the scanned namespace, now; None if it has none."""
    return _first_netdev(sysfs, pf_address)


def pf_netdev_mtu(sysfs: Path, vf_address: str) -> tuple[str, int] | None:
    """The PF netdev name and MTU of VF ``vf_address`` (first netdev of ``physfn/net``), or None.

    None when ``vf_address`` is not a VF, or its PF has no netdev in the scanned namespace.
    """
    physfn = _pci_dir(sysfs, vf_address) / "physfn"
    if not os.path.islink(physfn):
        return None
    netdir = physfn / "net"
    for name in listdir(netdir):
        mtu = read_int(netdir / name / "mtu")
        if mtu is not None:
            return name, mtu
    return None


def read_function(
    sysfs: Path, fn: PciFunction, virtfn_cache: dict[str, dict[str, int]] | None = None
) -> SriovFunction:
    """The SR-IOV, IOMMU and uio facts of ``fn`` under ``sysfs``.

    ``virtfn_cache`` (PF address -> its VF map), shared across the calls of one scan, saves
    re-listing a PF's ``virtfnN`` links for each of its VFs.
    """
    base = _pci_dir(sysfs, fn.address)
    pf: str | None = None
    vf_index: int | None = None
    pf_ifname: str | None = None
    if os.path.islink(base / "physfn"):
        pf = os.path.basename(os.readlink(base / "physfn"))
        cache = virtfn_cache if virtfn_cache is not None else {}
        if pf not in cache:
            cache[pf] = _virtfns(sysfs, pf)
        vf_index = cache[pf].get(fn.address)
        pf_ifname = _first_netdev(sysfs, pf)
    total = read_int(base / "sriov_totalvfs")
    numvfs = read_int(base / "sriov_numvfs") if total else None
    group = iommu_group(sysfs, fn.address)
    peers = _iommu_peers(sysfs, fn.address, group) if group is not None else ()
    uio = tuple(n for n in listdir(base / "uio") if _UIO.match(n))
    netdevs = () if fn.driver in PASSTHROUGH_DRIVERS else tuple(listdir(base / "net"))
    return SriovFunction(
        pci=fn,
        pf=pf,
        vf_index=vf_index,
        pf_ifname=pf_ifname,
        sriov_totalvfs=total,
        sriov_numvfs=numvfs,
        iommu_group=group,
        iommu_peers=peers,
        uio=uio,
        netdevs=netdevs,
    )


def _candidates(sysfs: Path) -> list[tuple[str, str | None]]:
    """``(address, driver)`` of every PCI network function (class 0x02), in address order."""
    base = sysfs / "bus" / "pci" / "devices"
    out: list[tuple[str, str | None]] = []
    for name in listdir(base):
        if not _BDF.match(name):
            continue
        cls = (read(base / name / "class") or "").lower().removeprefix("0x")
        if cls.startswith("02"):
            out.append((name.lower(), readlink_base(base / name / "driver")))
    return out


def userspace_functions(sysfs: Path) -> list[SriovFunction]:
    """Every PCI network function (class 0x02) bound to a :data:`PASSTHROUGH_DRIVERS` driver.

    Class and driver are checked first (two reads per function); only the matches get the
    full read. An empty list on a machine without PCI (no ``bus/pci/devices``) or without
    such devices.
    """
    cache: dict[str, dict[str, int]] = {}
    return [
        read_function(sysfs, pci_function(sysfs, address), cache)
        for address, driver in _candidates(sysfs)
        if driver in PASSTHROUGH_DRIVERS
    ]


def kernel_vfs(sysfs: Path) -> list[SriovFunction]:
    """Every SR-IOV VF bound to a kernel driver with a netdev in the scanned namespace.

    A VF whose netdev is elsewhere (moved into a pod) or that has none (unbound) is left
    out: the netdev backend does not see it either.
    """
    cache: dict[str, dict[str, int]] = {}
    out: list[SriovFunction] = []
    for address, driver in _candidates(sysfs):
        if driver is None or driver in PASSTHROUGH_DRIVERS:
            continue
        base = _pci_dir(sysfs, address)
        if os.path.islink(base / "physfn") and listdir(base / "net"):
            out.append(read_function(sysfs, pci_function(sysfs, address), cache))
    return out


Fingerprint = tuple[tuple[object, ...], ...]


def fingerprint(sysfs: Path) -> Fingerprint:
    """A cheap summary of what :func:`userspace_functions` depends on, for change detection.

    Per network function its address and driver (and a kernel-bound VF's netdevs); for a
    userspace-bound one also its IOMMU
    group and the group's members, its PF link and the PF's netdev names, and its
    ``sriov_numvfs``. Ids, NUMA node and PCIe root of a bound function do not change while
    it stays bound, so they are not read.
    """
    base = sysfs / "bus" / "pci" / "devices"
    out: list[tuple[object, ...]] = []
    for address, driver in _candidates(sysfs):
        d = base / address
        if driver not in PASSTHROUGH_DRIVERS:
            vf = os.path.islink(d / "physfn")
            out.append((address, driver, tuple(listdir(d / "net")) if vf else ()))
            continue
        group = readlink_base(d / "iommu_group")
        members = tuple(listdir(sysfs / "kernel" / "iommu_groups" / group / "devices")) if group else ()
        pf = readlink_base(d / "physfn")
        pf_net = tuple(listdir(d / "physfn" / "net")) if pf else ()
        out.append((address, driver, group, members, pf, pf_net, read(d / "sriov_numvfs")))
    return tuple(out)
