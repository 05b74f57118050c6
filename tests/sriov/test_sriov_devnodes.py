"""Device nodes for vfio/uio-bound devices: real char nodes under a tmp /dev (root), and a stat seam."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sriov_fakes import can_mknod, make_char

from dranet_backends.pci import PciIds
from dranet_backends.sriov import SriovBackend, SriovFacet
from dranet_backends.sriov.devnodes import device_nodes_for
from dranet_core.errors import DeviceError
from dranet_core.plans import PreparedDevice
from dranet_core.types import DeviceNode

VFIO = SriovFacet(pci_address="0000:00:03.1", driver="vfio-pci", iommu_group=12)


@pytest.fixture
def dev_root(tmp_path: Path) -> Path:
    root = tmp_path / "dev"
    root.mkdir()
    if not can_mknod(tmp_path):
        pytest.skip("probe can_mknod: cannot create character device nodes (needs root / CAP_MKNOD)")
    return root


def prepared(facet: SriovFacet | None, name: str = "pci-0000-00-03-1") -> PreparedDevice:
    facets = {"sriov": facet.to_json()} if facet is not None else {"netdev": {"ifname": "eth1"}}
    return PreparedDevice(pool="node", device=name, request_names=("nic",), facets=facets)


def test_vfio_device_gets_the_container_and_its_group_node(dev_root: Path) -> None:
    make_char(dev_root, "vfio/vfio", 10, 196)
    make_char(dev_root, "vfio/12", 243, 3)
    make_char(dev_root, "vfio/13", 243, 4)
    b = SriovBackend(dev_root=dev_root, pci_ids=PciIds(paths=()))
    nodes = b.device_nodes(prepared(VFIO))
    assert nodes == [
        DeviceNode(path="/dev/vfio/vfio", type="c", major=10, minor=196, file_mode=0o666),
        DeviceNode(path="/dev/vfio/12", type="c", major=243, minor=3, file_mode=0o666),
    ]


def test_noiommu_group_node_is_used_when_the_numbered_one_is_absent(dev_root: Path) -> None:
    make_char(dev_root, "vfio/vfio", 10, 196)
    make_char(dev_root, "vfio/noiommu-12", 243, 0)
    nodes = device_nodes_for("d", VFIO, dev_root)
    assert [(n.path, n.major, n.minor) for n in nodes] == [
        ("/dev/vfio/vfio", 10, 196),
        ("/dev/vfio/noiommu-12", 243, 0),
    ]


def test_uio_device_gets_its_uio_nodes(dev_root: Path) -> None:
    make_char(dev_root, "uio3", 240, 3)
    facet = SriovFacet(pci_address="0000:00:08.0", driver="igb_uio", uio=("uio3",))
    assert device_nodes_for("d", facet, dev_root) == [
        DeviceNode(path="/dev/uio3", type="c", major=240, minor=3, file_mode=0o666)
    ]


def test_missing_group_node_is_an_error_naming_the_path(dev_root: Path) -> None:
    make_char(dev_root, "vfio/vfio", 10, 196)
    with pytest.raises(DeviceError, match=r"pci-x: device nodes: .*/dev/vfio/12: No such file") as err:
        device_nodes_for("pci-x", VFIO, dev_root)
    assert err.value.device == "pci-x"
    assert err.value.step == "device nodes"


def test_a_regular_file_is_not_a_device_node(dev_root: Path) -> None:
    make_char(dev_root, "vfio/vfio", 10, 196)
    (dev_root / "vfio" / "12").write_text("not a node")
    with pytest.raises(DeviceError, match="is not a character device"):
        device_nodes_for("pci-x", VFIO, dev_root)


def test_vfio_without_group_and_uio_without_nodes_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="bound to vfio-pci but has no IOMMU group"):
        device_nodes_for("pci-x", SriovFacet(pci_address="0000:00:03.1", driver="vfio-pci"), tmp_path)
    with pytest.raises(DeviceError, match=r"\(uio_pci_generic\) has no uio node"):
        device_nodes_for("pci-x", SriovFacet(pci_address="0000:00:08.0", driver="uio_pci_generic"), tmp_path)


def test_stat_seam_gives_major_minor_without_root(tmp_path: Path) -> None:
    seen: list[str] = []

    def fake_stat(path: str) -> os.stat_result:
        seen.append(path)
        rdev = os.makedev(10, 196) if path.endswith("/vfio") else os.makedev(511, 7)
        return _chr(rdev)

    b = SriovBackend(dev_root=tmp_path / "d", pci_ids=PciIds(paths=()), stat_fn=fake_stat)
    nodes = b.device_nodes(prepared(VFIO))
    assert [(n.path, n.major, n.minor) for n in nodes] == [
        ("/dev/vfio/vfio", 10, 196),
        ("/dev/vfio/12", 511, 7),
    ]
    assert seen == [str(tmp_path / "d" / "vfio" / "vfio"), str(tmp_path / "d" / "vfio" / "12")]


def _chr(rdev: int) -> os.stat_result:
    class _St:
        st_mode = stat.S_IFCHR | 0o600
        st_rdev = rdev

    return _St()  # type: ignore[return-value]


def test_an_unreadable_facet_is_a_device_error(tmp_path: Path) -> None:
    b = SriovBackend(dev_root=tmp_path, pci_ids=PciIds(paths=()))
    bad = PreparedDevice(pool="node", device="pci-y", request_names=("nic",), facets={"sriov": {"driver": 3}})
    with pytest.raises(DeviceError, match="sriov facet: missing or bad key 'pci_address'"):
        b.device_nodes(bad)
