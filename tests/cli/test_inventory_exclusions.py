"""The netdev backend says what it left out and why (``ReportsExclusions``), for ``dranet inventory``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dranet_backends.netdev import NetdevBackend
from dranet_core.discovery import ExcludedDevice, ReportsExclusions
from dranet_core.testing.netns import Netns, veth_pair
from dranet_core.testing.pytest_plugin import netns_prefix, node  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.netns]


def pci_function(sysfs: Path, bdf: str, driver: str | None) -> None:
    """A PCI network controller in a fake sysfs, bound to ``driver`` (None: unbound)."""
    d = sysfs / "devices" / "pci0000:00" / bdf
    d.mkdir(parents=True)
    for name, value in (("vendor", "0x8086"), ("device", "0x1572"), ("class", "0x020000")):
        (d / name).write_text(value + "\n")
    if driver is not None:
        drv = sysfs / "bus" / "pci" / "drivers" / driver
        drv.mkdir(parents=True, exist_ok=True)
        (d / "driver").symlink_to(os.path.relpath(drv, d))
    devices = sysfs / "bus" / "pci" / "devices"
    devices.mkdir(parents=True, exist_ok=True)
    (devices / bdf).symlink_to(os.path.relpath(d, devices))


async def test_exclusions_name_the_reason(node: Netns, tmp_path: Path) -> None:  # noqa: F811
    sysfs = tmp_path / "sys"
    pci_function(sysfs, "0000:60:00.0", "vfio-pci")
    pci_function(sysfs, "0000:60:00.1", None)
    pci_function(sysfs, "0000:60:00.2", "ixgbe")
    veth_pair(node, "eup0", "eup0p")
    node.ip("addr", "add", "10.5.0.1/24", "dev", "eup0")
    node.ip("route", "add", "default", "via", "10.5.0.254", "dev", "eup0")
    veth_pair(node, "edocker0", "edocker0p")
    node.ip("link", "add", "cilium_net", "type", "veth", "peer", "name", "ecil0p")
    backend = NetdevBackend(sysfs=sysfs, netns=node.path)
    try:
        assert isinstance(backend, ReportsExclusions)
        published = {d.name for d in await backend.scan()}
        excluded = backend.excluded()
    finally:
        await backend.aclose()
    assert ExcludedDevice("lo", "loopback") in excluded
    assert ExcludedDevice("eup0", "uplink (default route) or below it") in excluded
    assert ExcludedDevice("cilium_net", "container network interface (ignored by name)") in excluded
    assert ExcludedDevice("pci-0000-60-00-0", "PCI function bound to vfio-pci") in excluded
    assert ExcludedDevice("pci-0000-60-00-1", "PCI function with no driver") in excluded
    assert "pci-0000-60-00-2" in published
    assert not {e.name for e in excluded} & published
