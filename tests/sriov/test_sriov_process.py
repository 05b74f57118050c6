"""The sriov and rdma backends inside the real ``dranet run`` process (the tests/e2e harness).

No SR-IOV hardware here, so the driver reads a fake sysfs tree (``--sysfs-root``); the
uevents are real: the driver listens in the node's network namespace (``--host-netns``),
and a veth created there makes the kernel send one. With the sriov poll and the
inventory's periodic rescan both set to an hour, a VF bound to vfio-pci after start can
only reach the ResourceSlice through the uevent path. The same for an RDMA device (IB-only,
so no netdev backend is needed) with the rdma backend.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.harness import Cluster, grpc_pb_fixture, root_or_skip, wait_for  # noqa: F401
from sriov_fakes import FakeSysfs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "rdma"))
from rdma_helpers import add_pci, add_rdma

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

VF = "pci-0000-00-03-1"


@pytest.fixture
def cluster(grpc_pb: types.SimpleNamespace) -> Iterator[Cluster]:
    root_or_skip()
    c = Cluster(grpc_pb)
    try:
        yield c
    finally:
        c.cleanup()
        c.close()


def _sriov_devices(cluster: Cluster) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in cluster.loop.call(cluster.api.list_objects, "resourceslices"):
        if s.get("spec", {}).get("driver") == "dra.net":
            out.update({d["name"]: d for d in s["spec"].get("devices", [])})
    return out


def test_a_vf_bound_to_vfio_pci_reaches_the_slice_on_a_kernel_uevent(
    cluster: Cluster, tmp_path: Path
) -> None:
    fs = FakeSysfs(tmp_path / "sys")
    fs.add("0000:00:03.0", driver="ixgbe", group=10, totalvfs=8, numvfs=0, netdev="eth1")
    cluster.start(
        "--backends=sriov",
        f"--sysfs-root={fs.root}",
        "--backend-option=sriov.poll_interval=3600",
        "--inventory-max-poll-interval=1h",
    )
    assert VF not in _sriov_devices(cluster)

    # echo 1 > sriov_numvfs; bind the VF to vfio-pci: the tree changes ...
    (fs.dev("0000:00:03.0") / "sriov_numvfs").write_text("1\n")
    fs.add("0000:00:03.1", driver="vfio-pci", device="0x10ed", group=12, pf="0000:00:03.0", vf_index=0)
    # ... and the kernel announces something on the node (here: a new netdev)
    cluster.node.veth()

    dev = wait_for("the VF in a ResourceSlice", lambda: _sriov_devices(cluster).get(VF), log=cluster.log)
    attrs = dev["attributes"]
    assert attrs["dra.net/vfio"] == {"bool": True}
    assert attrs["dra.net/sriovPfName"] == {"string": "eth1"}
    assert attrs["dra.net/sriovVfIndex"] == {"int": 0}


def test_an_rdma_device_reaches_the_slice_on_a_kernel_uevent(cluster: Cluster, tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    (sysfs / "class" / "infiniband").mkdir(parents=True)
    cluster.start(
        "--backends=rdma",
        f"--sysfs-root={sysfs}",
        "--backend-option=rdma.poll_interval=3600",
        "--backend-option=rdma.netns_mode=shared",
        "--inventory-max-poll-interval=1h",
    )
    assert "pci-0000-09-00-0" not in _sriov_devices(cluster)

    # an IB-only HCA's driver loads: its RDMA device appears in sysfs ...
    add_rdma(sysfs, "erdma_0", pci=add_pci(sysfs, "0000:09:00.0"), ports=[(1, "InfiniBand", "4: ACTIVE", ())])
    # ... and the kernel announces something on the node
    cluster.node.veth()

    dev = wait_for(
        "the RDMA device in a ResourceSlice",
        lambda: _sriov_devices(cluster).get("pci-0000-09-00-0"),
        log=cluster.log,
    )
    assert dev["attributes"]["dra.net/rdmaDevice"] == {"string": "erdma_0"}
    assert dev["attributes"]["dra.net/rdma"] == {"bool": True}
