"""Discovery of userspace-bound NICs from fake sysfs trees (real layout, in tmp_path)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sriov_fakes import FakeSysfs, sriov_node, userspace_only

from dranet_backends.pci import PciFunction, PciIds
from dranet_backends.sriov import SriovBackend, SriovFacet, create
from dranet_backends.sriov.sysfs import SriovFunction, pf_netdev_mtu, userspace_functions
from dranet_core.backends import BackendContext, available_backends, load_backend, load_backends
from dranet_core.errors import BackendError
from dranet_core.types import AttributeList, Device

D = "dra.net/"

PCI_IDS = """\
# tiny pci.ids in the real format
8086  Intel Corporation
\t10ed  82599 Ethernet Controller Virtual Function
\t\t8086 0c01  X520 VF
\t10fb  82599ES 10-Gigabit SFI/SFP+ Network Connection
15b3  Mellanox Technologies
C 02  Network controller
\t00  Ethernet controller
"""


@pytest.fixture
def fs(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path / "sys")


def backend(fs: FakeSysfs, ids: PciIds | None = None) -> SriovBackend:
    return SriovBackend(sysfs=fs.root, dev_root=fs.root.parent / "dev", pci_ids=ids or PciIds(paths=()))


async def scan(b: SriovBackend) -> dict[str, Device]:
    return {d.name: d for d in await b.scan()}


async def test_vfio_vf_is_published_with_pci_sriov_and_iommu_attributes(fs: FakeSysfs) -> None:
    sriov_node(fs)
    devs = await scan(backend(fs))
    assert list(devs) == ["pci-0000-00-03-1", "pci-0000-00-03-2"]
    a = devs["pci-0000-00-03-1"].attributes
    assert a[D + "pciAddress"] == "0000:00:03.1"
    assert a[D + "pciVendor"] == "8086"  # no pci.ids: hex ids
    assert a[D + "pciDevice"] == "10ed"
    assert a[D + "numaNode"] == 0
    assert a["resource.kubernetes.io/numaNode"] == AttributeList((0,))
    assert a["resource.kubernetes.io/pcieRoot"] == "pci0000:00"
    assert a[D + "pciDriver"] == "vfio-pci"
    assert a[D + "vfio"] is True
    assert a[D + "rdma"] is False
    assert a[D + "iommuGroup"] == 12
    assert a[D + "iommuGroupShared"] is False
    assert a[D + "isSriovVf"] is True
    assert a[D + "sriovPfAddress"] == "0000:00:03.0"
    assert a[D + "sriovPfName"] == "eth1"
    assert a[D + "sriovVfIndex"] == 0
    assert a[D + "sriov"] is False
    assert D + "ifName" not in a and D + "mtu" not in a


async def test_facet_records_what_the_mover_and_device_nodes_need(fs: FakeSysfs) -> None:
    sriov_node(fs)
    dev = (await scan(backend(fs)))["pci-0000-00-03-1"]
    assert dev.facets == {
        "sriov": {
            "pci_address": "0000:00:03.1",
            "driver": "vfio-pci",
            "iommu_group": 12,
            "pf": "0000:00:03.0",
            "vf_index": 0,
            "pf_ifname": "eth1",
            "uio": [],
        }
    }
    assert SriovFacet.from_json(dev.facets["sriov"]).to_json() == dev.facets["sriov"]


async def test_kernel_bound_unbound_stub_and_non_network_functions_are_not_published(fs: FakeSysfs) -> None:
    fs.add("0000:00:04.0", driver="mlx5_core", netdev="eth3")
    fs.add("0000:00:05.0", driver=None)
    fs.add("0000:00:06.0", driver="pci-stub", group=20)
    fs.add("0000:00:07.0", pci_class="0x030000", driver="vfio-pci", group=21)  # a GPU on vfio
    fs.add("0000:00:08.0", driver="uio_pci_generic", uio=("uio0",))
    devs = await scan(backend(fs))
    assert list(devs) == ["pci-0000-00-08-0"]


async def test_shared_iommu_group_is_flagged_but_a_bridge_in_the_group_is_not_a_peer(fs: FakeSysfs) -> None:
    fs.add("0000:00:09.0", driver="vfio-pci", group=30)
    fs.add("0000:00:09.1", driver="vfio-pci", group=30)
    fs.add("0000:00:0a.0", driver="vfio-pci", group=31)
    fs.add("0000:00:01.0", pci_class="0x060400", driver="pcieport", group=31)
    devs = await scan(backend(fs))
    assert devs["pci-0000-00-09-0"].attributes[D + "iommuGroupShared"] is True
    assert devs["pci-0000-00-09-1"].attributes[D + "iommuGroupShared"] is True
    assert devs["pci-0000-00-0a-0"].attributes[D + "iommuGroupShared"] is False
    assert D + "isSriovVf" not in devs["pci-0000-00-09-0"].attributes  # not a VF: attribute absent


async def test_uio_bound_function_is_not_vfio_and_lists_its_uio_nodes(fs: FakeSysfs) -> None:
    fs.add("0000:00:08.0", driver="igb_uio", uio=("uio3",))
    dev = (await scan(backend(fs)))["pci-0000-00-08-0"]
    assert dev.attributes[D + "vfio"] is False
    assert dev.attributes[D + "pciDriver"] == "igb_uio"
    assert D + "iommuGroup" not in dev.attributes  # no IOMMU group: no group attributes
    assert D + "iommuGroupShared" not in dev.attributes
    assert dev.facets["sriov"]["uio"] == ["uio3"]
    assert dev.facets["sriov"]["iommu_group"] is None


async def test_vfio_bound_pf_reports_its_sriov_capacity(fs: FakeSysfs) -> None:
    fs.add("0000:00:0b.0", driver="vfio-pci", group=40, totalvfs=64, numvfs=4)
    a = (await scan(backend(fs)))["pci-0000-00-0b-0"].attributes
    assert a[D + "sriov"] is True
    assert a[D + "sriovVfs"] == 4
    assert D + "sriovPfAddress" not in a


async def test_vf_whose_pf_has_no_netdev_here_has_no_pf_name(fs: FakeSysfs) -> None:
    fs.add("0000:00:0c.0", driver="ice", group=50, totalvfs=8, numvfs=1)  # PF netdev in another netns
    fs.add("0000:00:0c.1", driver="vfio-pci", group=51, pf="0000:00:0c.0", vf_index=0)
    a = (await scan(backend(fs)))["pci-0000-00-0c-1"].attributes
    assert a[D + "sriovPfAddress"] == "0000:00:0c.0"
    assert D + "sriovPfName" not in a
    assert pf_netdev_mtu(fs.root, "0000:00:0c.1") is None


async def test_pci_ids_names_are_used_when_known(fs: FakeSysfs, tmp_path: Path) -> None:
    ids_file = tmp_path / "pci.ids"
    ids_file.write_text(PCI_IDS)
    fs.add("0000:00:03.1", driver="vfio-pci", device="0x10ed", subsystem=("0x8086", "0x0c01"), group=12)
    a = (await scan(backend(fs, PciIds([ids_file]))))["pci-0000-00-03-1"].attributes
    assert a[D + "pciVendor"] == "Intel Corporation"
    assert a[D + "pciDevice"] == "82599 Ethernet Controller Virtual Function"
    assert a[D + "pciSubsystem"] == "0c01"  # the id, as the Go driver publishes it


async def test_numa_node_minus_one_is_left_out(fs: FakeSysfs) -> None:
    fs.add("0000:00:0d.0", driver="vfio-pci", group=60, numa=-1)
    a = (await scan(backend(fs)))["pci-0000-00-0d-0"].attributes
    assert D + "numaNode" not in a and "resource.kubernetes.io/numaNode" not in a


async def test_rescan_follows_rebinds_and_removals(fs: FakeSysfs) -> None:
    sriov_node(fs)
    b = backend(fs)
    first = userspace_only(await b.scan())
    assert [d.name for d in first] == ["pci-0000-00-03-1"]
    assert userspace_only(await b.scan()) == first
    fs.bind("0000:00:03.2", "vfio-pci")  # the kernel VF is handed to DPDK
    assert sorted(d.name for d in userspace_only(await b.scan())) == ["pci-0000-00-03-1", "pci-0000-00-03-2"]
    fs.bind("0000:00:03.1", "ixgbevf")  # and the other one back to the kernel (no netdev yet)
    fs.remove("0000:00:03.2")
    assert await b.scan() == []


async def test_unchanged_fingerprint_skips_the_full_read_until_full_resync(fs: FakeSysfs) -> None:
    sriov_node(fs)
    now = [0.0]
    b = SriovBackend(sysfs=fs.root, pci_ids=PciIds(paths=()), full_resync=100.0, clock=lambda: now[0])
    first = await b.scan()
    assert (await b.scan(), b.full_reads) == (first, 1)
    # the NUMA node of a bound function is not in the fingerprint: seen after full_resync
    (fs.dev("0000:00:03.1") / "numa_node").write_text("1\n")
    now[0] = 99.0
    (dev,) = userspace_only(await b.scan())
    assert (dev.attributes[D + "numaNode"], b.full_reads) == (0, 1)
    now[0] = 100.0
    (dev,) = userspace_only(await b.scan())
    assert (dev.attributes[D + "numaNode"], b.full_reads) == (1, 2)
    # a PF rename is in the fingerprint: seen at once
    (fs.dev("0000:00:03.0") / "net" / "eth1").rename(fs.dev("0000:00:03.0") / "net" / "uplink1")
    (dev,) = userspace_only(await b.scan())
    assert (dev.attributes[D + "sriovPfName"], b.full_reads) == ("uplink1", 3)


async def test_empty_or_missing_sysfs_discovers_nothing(tmp_path: Path) -> None:
    assert await SriovBackend(sysfs=tmp_path / "nothing", pci_ids=PciIds(paths=())).scan() == []
    assert userspace_functions(tmp_path) == []


async def test_watch_notifies_at_start_and_on_change_only(fs: FakeSysfs) -> None:
    sriov_node(fs)
    b = SriovBackend(sysfs=fs.root, pci_ids=PciIds(paths=()), poll_interval=0.005, uevents=None)
    calls: list[int] = []
    changed = asyncio.Event()

    def notify() -> None:
        calls.append(b.polls)
        changed.set()

    task = asyncio.create_task(b.watch(notify))
    try:
        await asyncio.wait_for(changed.wait(), 5)
        changed.clear()
        polls = b.polls
        for _ in range(2000):  # several polls of an unchanged tree: no notification
            if b.polls >= polls + 5:
                break
            await asyncio.sleep(0.005)
        assert b.polls >= polls + 5
        assert len(calls) == 1
        fs.bind("0000:00:03.2", "vfio-pci")
        await asyncio.wait_for(changed.wait(), 5)
        assert len(calls) == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_create_via_entry_point_on_a_machine_without_sriov(tmp_path: Path) -> None:
    ctx = BackendContext(node_name="n1", sysfs=tmp_path, options={"sriov.poll_interval": "7"})
    b = load_backend(available_backends()["sriov"], ctx)
    assert isinstance(b, SriovBackend)
    assert b.poll_interval == 7.0
    assert b.sysfs == tmp_path
    assert [x.name for x in load_backends(ctx, enabled=["sriov"])] == ["sriov"]


def test_create_reads_dev_root_and_rejects_bad_intervals(tmp_path: Path) -> None:
    b = create(BackendContext(node_name="n1", options={"sriov.dev_root": str(tmp_path)}))
    assert b.dev_root == tmp_path
    with pytest.raises(BackendError, match=r"sriov\.poll_interval=soon: must be a number of seconds > 0"):
        create(BackendContext(node_name="n1", options={"sriov.poll_interval": "soon"}))
    with pytest.raises(BackendError, match=r"sriov\.poll_interval=0: must be a number of seconds > 0"):
        create(BackendContext(node_name="n1", options={"sriov.poll_interval": "0"}))
    with pytest.raises(BackendError, match=r"sriov\.full_resync=-1: must be a number of seconds > 0"):
        create(BackendContext(node_name="n1", options={"sriov.full_resync": "-1"}))
    assert create(BackendContext(node_name="n1", options={"sriov.full_resync": "5"})).full_resync == 5.0


def test_a_function_that_cannot_be_a_device_is_logged_and_left_out(
    fs: FakeSysfs, caplog: pytest.LogCaptureFixture
) -> None:
    good = SriovFunction(pci=PciFunction(address="0000:00:0e.0", driver="vfio-pci"))
    bad = SriovFunction(pci=PciFunction(address="0000:00:0e.9", driver="vfio-pci"))  # function > 7
    with caplog.at_level(logging.WARNING):
        devs = backend(fs)._build([good, bad])
    assert [d.name for d in devs] == ["pci-0000-00-0e-0"]
    assert "leaving out PCI 0000:00:0e.9" in caplog.text
