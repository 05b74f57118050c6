"""A fake sysfs tree with the real PCI / SR-IOV / IOMMU layout, and a fake /dev, in tmp_path.

Layout written (relative symlinks, as the kernel's)::

    devices/pci0000:00/<bdf>/{class,vendor,device,subsystem_vendor,subsystem_device,numa_node}
    devices/pci0000:00/<bdf>/driver -> ../../../bus/pci/drivers/<driver>
    devices/pci0000:00/<bdf>/iommu_group -> ../../../kernel/iommu_groups/<n>
    devices/pci0000:00/<bdf>/{physfn -> ../<pf>, sriov_totalvfs, sriov_numvfs}
    devices/pci0000:00/<pf>/virtfn<i> -> ../<vf>
    devices/pci0000:00/<bdf>/net/<ifname>/mtu
    devices/pci0000:00/<bdf>/uio/uio<N>/
    bus/pci/devices/<bdf> -> ../../../devices/pci0000:00/<bdf>
    kernel/iommu_groups/<n>/devices/<bdf> -> ../../../../devices/pci0000:00/<bdf>
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from dranet_backends.sriov.sysfs import PASSTHROUGH_DRIVERS
from dranet_core.types import Device

ROOT_BUS = "pci0000:00"


class FakeSysfs:
    """Builds and edits a fake sysfs tree under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "devices" / ROOT_BUS).mkdir(parents=True, exist_ok=True)
        (root / "bus" / "pci" / "devices").mkdir(parents=True, exist_ok=True)
        (root / "bus" / "pci" / "drivers").mkdir(parents=True, exist_ok=True)
        (root / "kernel" / "iommu_groups").mkdir(parents=True, exist_ok=True)

    def dev(self, bdf: str) -> Path:
        return self.root / "devices" / ROOT_BUS / bdf

    def add(
        self,
        bdf: str,
        *,
        pci_class: str = "0x020000",
        vendor: str = "0x8086",
        device: str = "0x154c",
        subsystem: tuple[str, str] | None = ("0x8086", "0x0000"),
        driver: str | None = "vfio-pci",
        numa: int = 0,
        group: int | None = None,
        pf: str | None = None,
        vf_index: int | None = None,
        totalvfs: int | None = None,
        numvfs: int | None = None,
        netdev: str | None = None,
        mtu: int = 1500,
        uio: tuple[str, ...] = (),
    ) -> Path:
        d = self.dev(bdf)
        d.mkdir(parents=True)
        (d / "class").write_text(pci_class + "\n")
        (d / "vendor").write_text(vendor + "\n")
        (d / "device").write_text(device + "\n")
        if subsystem is not None:
            (d / "subsystem_vendor").write_text(subsystem[0] + "\n")
            (d / "subsystem_device").write_text(subsystem[1] + "\n")
        (d / "numa_node").write_text(f"{numa}\n")
        os.symlink(f"../../../devices/{ROOT_BUS}/{bdf}", self.root / "bus" / "pci" / "devices" / bdf)
        if driver is not None:
            self.bind(bdf, driver)
        if group is not None:
            self.set_group(bdf, group)
        if pf is not None:
            os.symlink(f"../{pf}", d / "physfn")
            if vf_index is not None:
                os.symlink(f"../{bdf}", self.dev(pf) / f"virtfn{vf_index}")
        if totalvfs is not None:
            (d / "sriov_totalvfs").write_text(f"{totalvfs}\n")
            (d / "sriov_numvfs").write_text(f"{numvfs or 0}\n")
        if netdev is not None:
            self.add_netdev(bdf, netdev, mtu)
        for name in uio:
            (d / "uio" / name).mkdir(parents=True)
        return d

    def add_netdev(self, bdf: str, ifname: str, mtu: int) -> None:
        n = self.dev(bdf) / "net" / ifname
        n.mkdir(parents=True)
        (n / "mtu").write_text(f"{mtu}\n")

    def bind(self, bdf: str, driver: str | None) -> None:
        link = self.dev(bdf) / "driver"
        if os.path.lexists(link):
            link.unlink()
        if driver is not None:
            (self.root / "bus" / "pci" / "drivers" / driver).mkdir(exist_ok=True)
            os.symlink(f"../../../bus/pci/drivers/{driver}", link)

    def set_group(self, bdf: str, group: int) -> None:
        link = self.dev(bdf) / "iommu_group"
        if os.path.lexists(link):
            old = os.path.basename(os.readlink(link))
            (self.root / "kernel" / "iommu_groups" / old / "devices" / bdf).unlink()
            link.unlink()
        members = self.root / "kernel" / "iommu_groups" / str(group) / "devices"
        members.mkdir(parents=True, exist_ok=True)
        os.symlink(f"../../../../devices/{ROOT_BUS}/{bdf}", members / bdf)
        os.symlink(f"../../../kernel/iommu_groups/{group}", link)

    def remove(self, bdf: str) -> None:
        (self.root / "bus" / "pci" / "devices" / bdf).unlink()
        shutil.rmtree(self.dev(bdf))


def make_char(dev_root: Path, rel: str, major: int, minor: int) -> Path:
    """A real character device node ``dev_root/rel`` (needs root / CAP_MKNOD)."""
    path = dev_root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, 0o600 | 0o020000, os.makedev(major, minor))
    return path


def can_mknod(tmp: Path) -> bool:
    """Capability probe: can this process create a character node (root / CAP_MKNOD)?"""
    probe = tmp / ".mknod-probe"
    try:
        os.mknod(probe, 0o600 | 0o020000, os.makedev(1, 3))
    except OSError:
        return False
    probe.unlink()
    return True


def sriov_node(fs: FakeSysfs) -> None:
    """A typical node: PF eth1 (ixgbe, 2 VFs), VF0 on vfio-pci (group 12), VF1 kernel-bound (ixgbevf)."""
    fs.add("0000:00:03.0", driver="ixgbe", device="0x10fb", group=10, totalvfs=8, numvfs=2, netdev="eth1")
    fs.add("0000:00:03.1", driver="vfio-pci", device="0x10ed", group=12, pf="0000:00:03.0", vf_index=0)
    fs.add(
        "0000:00:03.2",
        driver="ixgbevf",
        device="0x10ed",
        group=13,
        pf="0000:00:03.0",
        vf_index=1,
        netdev="eth2",
    )


def userspace_only(devices: Sequence[Device]) -> list[Device]:
    """The devices of a userspace-bound function (the sriov backend also adds facets to kernel VFs)."""
    return [d for d in devices if d.facets["sriov"]["driver"] in PASSTHROUGH_DRIVERS]
