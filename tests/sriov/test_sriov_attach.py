"""The verify-only attach of a userspace-bound device: nothing moves, but a changed device is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sriov_fakes import FakeSysfs, can_mknod, make_char, sriov_node, userspace_only

from dranet_backends.pci import PciIds
from dranet_backends.sriov import SriovBackend
from dranet_core.errors import DeviceError
from dranet_core.mover import AttachResult
from dranet_core.plans import PreparedDevice
from dranet_core.types import PodSandbox

POD = PodSandbox(uid="pod-1", name="p1", namespace="default", netns="/run/netns/none")


@pytest.fixture
def fs(tmp_path: Path) -> FakeSysfs:
    f = FakeSysfs(tmp_path / "sys")
    sriov_node(f)
    return f


@pytest.fixture
def dev_root(tmp_path: Path) -> Path:
    root = tmp_path / "dev"
    root.mkdir()
    if not can_mknod(tmp_path):
        pytest.skip("probe can_mknod: cannot create character device nodes (needs root / CAP_MKNOD)")
    make_char(root, "vfio/vfio", 10, 196)
    make_char(root, "vfio/12", 243, 1)
    return root


async def prepared(b: SriovBackend) -> PreparedDevice:
    (dev,) = userspace_only(await b.scan())
    return PreparedDevice(pool="node", device=dev.name, request_names=("nic",), facets=dict(dev.facets))


async def test_attach_checks_and_reports_ready_without_moving(fs: FakeSysfs, dev_root: Path) -> None:
    b = SriovBackend(sysfs=fs.root, dev_root=dev_root, pci_ids=PciIds(paths=()))
    dev = await prepared(b)
    snap = await b.snapshot(dev)
    assert snap == {"driver": "vfio-pci", "iommu_group": 12}
    result = await b.attach(dev, POD, snap)
    assert result.network_data is None
    (cond,) = result.conditions
    assert (cond.type, cond.status, cond.reason) == ("Ready", "True", "UserspaceDeviceReady")
    assert "0000:00:03.1 bound to vfio-pci" in cond.message
    assert "/dev/vfio/vfio, /dev/vfio/12" in cond.message
    await b.detach(dev, POD, snap)  # nothing to do, and no error
    assert await b.attach(dev, POD, snap) == result  # idempotent


async def test_attach_refuses_a_device_rebound_since_prepare(fs: FakeSysfs, dev_root: Path) -> None:
    b = SriovBackend(sysfs=fs.root, dev_root=dev_root, pci_ids=PciIds(paths=()))
    dev = await prepared(b)
    fs.bind("0000:00:03.1", "ixgbevf")
    with pytest.raises(
        DeviceError, match="bound to ixgbevf, was vfio-pci when the claim was prepared"
    ) as err:
        await b.attach(dev, POD, None)
    assert (err.value.device, err.value.step) == ("pci-0000-00-03-1", "attach")
    fs.bind("0000:00:03.1", None)
    with pytest.raises(DeviceError, match="bound to no driver"):
        await b.attach(dev, POD, None)


async def test_attach_refuses_a_changed_iommu_group_or_a_gone_function(fs: FakeSysfs, dev_root: Path) -> None:
    b = SriovBackend(sysfs=fs.root, dev_root=dev_root, pci_ids=PciIds(paths=()))
    dev = await prepared(b)
    fs.set_group("0000:00:03.1", 99)
    with pytest.raises(DeviceError, match="is in IOMMU group 99, was 12"):
        await b.attach(dev, POD, None)
    fs.remove("0000:00:03.1")
    with pytest.raises(DeviceError, match=r"PCI function 0000:00:03\.1 is gone"):
        await b.attach(dev, POD, None)


async def test_attach_refuses_when_the_group_node_is_missing(fs: FakeSysfs, dev_root: Path) -> None:
    b = SriovBackend(sysfs=fs.root, dev_root=dev_root, pci_ids=PciIds(paths=()))
    dev = await prepared(b)
    (dev_root / "vfio" / "12").unlink()
    with pytest.raises(DeviceError, match=r"device nodes: .*vfio/12"):
        await b.attach(dev, POD, None)


async def test_devices_of_other_backends_are_left_alone(fs: FakeSysfs, tmp_path: Path) -> None:
    b = SriovBackend(sysfs=fs.root, dev_root=tmp_path, pci_ids=PciIds(paths=()))
    other = PreparedDevice(pool="node", device="eth1", request_names=("nic",), facets={"netdev": {}})
    assert await b.snapshot(other) is None
    assert await b.attach(other, POD, None) == AttachResult()
    await b.detach(other, POD, None)
