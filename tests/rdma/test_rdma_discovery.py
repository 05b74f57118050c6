"""RDMA discovery from fake sysfs trees with the real layout."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from rdma_helpers import add_char, add_pci, add_rdma

from dranet_backends.pci import PciIds
from dranet_backends.rdma import RdmaBackend
from dranet_backends.rdma.sysfs import RdmaPort, char_devices, rdma_devices
from dranet_backends.rdma.uplinks import default_route_interfaces
from dranet_core.types import AttributeList


def _roce_node(root: Path) -> None:
    """mlx5_0 on 0000:08:00.0 with netdev eth1 (RoCE), erdma_0 on 0000:09:00.0 without netdev."""
    nic = add_pci(root, "0000:08:00.0", netdevs=["eth1"], numa=1)
    add_rdma(root, "mlx5_0", pci=nic, ports=[(1, "Ethernet", "4: ACTIVE", ["eth1"])])
    efa = add_pci(root, "0000:09:00.0", numa=-1, bus="pci0000:80")
    add_rdma(root, "erdma_0", pci=efa, guid="0000:0000:0000:0001", ports=[(1, "InfiniBand", "1: DOWN", ())])
    add_char(root, "infiniband_verbs", "uverbs0", "mlx5_0")
    add_char(root, "infiniband_verbs", "uverbs1", "erdma_0")
    add_char(root, "infiniband_mad", "umad0", "mlx5_0", port=1)
    add_char(root, "infiniband_mad", "issm0", "mlx5_0", port=1)
    add_char(root, "infiniband_cm", "ucm0", "mlx5_0")
    (root / "class" / "infiniband_verbs" / "abi_version").write_text("6\n")


def test_sysfs_reads_devices_ports_and_char_devices(tmp_path: Path) -> None:
    _roce_node(tmp_path)
    mlx, erdma = sorted(rdma_devices(tmp_path), key=lambda d: d.name)[::-1]
    assert mlx.name == "mlx5_0"
    assert mlx.pci_address == "0000:08:00.0"
    assert mlx.netdevs == ("eth1",)
    assert not mlx.ib_only
    assert mlx.numa_node == 1
    assert mlx.pcie_root == "pci0000:00"
    assert mlx.node_guid == "0c42:a103:0065:8b5e"
    assert mlx.ports == (RdmaPort(index=1, link_layer="Ethernet", state="4: ACTIVE", netdevs=("eth1",)),)
    assert mlx.char_devices == (
        "/dev/infiniband/issm0",
        "/dev/infiniband/ucm0",
        "/dev/infiniband/umad0",
        "/dev/infiniband/uverbs0",
    )
    assert erdma.name == "erdma_0"
    assert erdma.ib_only
    assert erdma.numa_node is None  # -1 in sysfs
    assert erdma.pcie_root == "pci0000:80"
    assert erdma.char_devices == ("/dev/infiniband/uverbs1",)


def test_char_devices_skip_entries_without_ibdev(tmp_path: Path) -> None:
    add_char(tmp_path, "infiniband_verbs", "uverbs0", "mlx5_0")
    (tmp_path / "class" / "infiniband_verbs" / "uverbs9").mkdir()
    assert char_devices(tmp_path) == {"mlx5_0": ("/dev/infiniband/uverbs0",)}


def test_no_infiniband_class_means_no_devices(tmp_path: Path) -> None:
    assert rdma_devices(tmp_path) == []
    assert rdma_devices(tmp_path / "missing") == []


async def test_scan_publishes_mergeable_devices(tmp_path: Path) -> None:
    _roce_node(tmp_path)
    devices = {d.name: d for d in await RdmaBackend(sysfs=tmp_path).scan()}
    assert sorted(devices) == ["pci-0000-08-00-0", "pci-0000-09-00-0"]
    roce = devices["pci-0000-08-00-0"]
    # a device with a netdev: only the RDMA attributes (the netdev backend has the rest)
    assert dict(roce.attributes) == {"dra.net/rdma": True, "dra.net/rdmaDevice": "mlx5_0"}
    assert roce.facets["rdma"] == {
        "dev": "mlx5_0",
        "pci_address": "0000:08:00.0",
        "char_devices": [
            "/dev/infiniband/issm0",
            "/dev/infiniband/ucm0",
            "/dev/infiniband/umad0",
            "/dev/infiniband/uverbs0",
        ],
        "node_guid": "0c42:a103:0065:8b5e",
        "netdevs": ["eth1"],
        "ports": [{"index": 1, "link_layer": "Ethernet", "state": "4: ACTIVE"}],
    }
    ib_only = devices["pci-0000-09-00-0"]
    assert dict(ib_only.attributes) == {
        "dra.net/rdma": True,
        "dra.net/rdmaDevice": "erdma_0",
        "dra.net/pciAddress": "0000:09:00.0",
        "resource.kubernetes.io/pcieRoot": "pci0000:80",
    }


async def test_soft_roce_is_named_after_its_netdev(tmp_path: Path) -> None:
    add_rdma(tmp_path, "rxe0", parent="veth-a", ports=[(1, "Ethernet", "4: ACTIVE", ["veth-a"])])
    add_rdma(tmp_path, "siw_ETH0", ports=[(1, "Ethernet", "4: ACTIVE", ["ETH0"])])
    add_rdma(tmp_path, "orphan0", ports=[])
    devices = {d.name: d for d in await RdmaBackend(sysfs=tmp_path).scan()}
    assert sorted(devices) == ["net-ivkeqma", "veth-a"]  # ETH0 is encoded; orphan0 left out
    assert devices["veth-a"].attributes["dra.net/rdmaDevice"] == "rxe0"
    assert devices["veth-a"].facets["rdma"]["pci_address"] is None
    assert "dra.net/pciAddress" not in devices["veth-a"].attributes


async def test_two_rdma_devices_on_one_function_keep_the_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nic = add_pci(tmp_path, "0000:08:00.0", netdevs=["eth1"])
    add_rdma(tmp_path, "mlx5_0", pci=nic)
    add_rdma(tmp_path, "mlx5_9", pci=nic)
    with caplog.at_level(logging.WARNING):
        (dev,) = await RdmaBackend(sysfs=tmp_path).scan()
    assert dev.attributes["dra.net/rdmaDevice"] == "mlx5_0"
    assert "mlx5_9" in caplog.text


async def test_watch_notifies_only_on_change(tmp_path: Path) -> None:
    nic = add_pci(tmp_path, "0000:08:00.0", netdevs=["eth1"])
    add_rdma(tmp_path, "mlx5_0", pci=nic)
    polls: list[float] = []
    tick = asyncio.Event()
    resume = asyncio.Event()

    async def sleep(seconds: float) -> None:
        polls.append(seconds)
        tick.set()
        await resume.wait()
        resume.clear()

    backend = RdmaBackend(sysfs=tmp_path, poll_interval=7.5, sleep=sleep, uevents=None)  # polling only
    notes: list[int] = []
    task = asyncio.create_task(backend.watch(lambda: notes.append(1)))
    try:

        async def step() -> None:
            tick.clear()
            resume.set()
            await asyncio.wait_for(tick.wait(), 5)

        await asyncio.wait_for(tick.wait(), 5)
        await step()  # nothing changed
        assert notes == []
        add_rdma(tmp_path, "mlx5_1", pci=add_pci(tmp_path, "0000:08:00.1"))
        await step()
        assert notes == [1]
        await step()
        assert notes == [1]
        assert set(polls) == {7.5}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _routes(procfs: Path, v4: str = "", v6: str = "") -> None:
    (procfs / "net").mkdir(parents=True, exist_ok=True)
    head = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    (procfs / "net" / "route").write_text(head + v4)
    (procfs / "net" / "ipv6_route").write_text(v6)


def test_default_route_interfaces_from_procfs(tmp_path: Path) -> None:
    _routes(
        tmp_path,
        v4="eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth3\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
        v6=f"{'0' * 32} 00 {'0' * 32} 00 fd{'0' * 29}1 00000400 00000002 00000000 00000003     bond0\n"
        f"{'0' * 32} 00 {'0' * 32} 00 {'0' * 32} ffffffff 00000001 00000000 00200200       lo\n"
        f"{'0' * 32} 00 {'0' * 32} 00 {'0' * 32} ffffffff 00000001 00000000 00200200     eth7\n"
        f"fe80{'0' * 28} 40 {'0' * 32} 00 {'0' * 32} 00000100 00000002 00000000 00000001     eth4\n",
    )
    assert default_route_interfaces(tmp_path) == {"eth0", "bond0"}
    assert default_route_interfaces(tmp_path / "missing") == frozenset()


async def test_rdma_devices_on_uplinks_are_not_published(tmp_path: Path) -> None:
    sysfs, procfs = tmp_path / "sys", tmp_path / "proc"
    add_rdma(sysfs, "mlx5_0", pci=add_pci(sysfs, "0000:08:00.0", netdevs=["eth0"]))  # the uplink
    add_rdma(sysfs, "mlx5_1", pci=add_pci(sysfs, "0000:08:00.1", netdevs=["eth1"]))  # a bond0 slave
    add_rdma(sysfs, "mlx5_2", pci=add_pci(sysfs, "0000:09:00.0", netdevs=["eth2"]))
    (sysfs / "class" / "net" / "eth1").mkdir(parents=True)
    (sysfs / "class" / "net" / "bond0").mkdir(parents=True)
    (sysfs / "class" / "net" / "eth1" / "master").symlink_to("../bond0")
    _routes(
        procfs,
        v4="eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
        v6=f"{'0' * 32} 00 {'0' * 32} 00 fd{'0' * 29}1 00000400 00000002 00000000 00000003     bond0\n",
    )
    names = [d.attributes["dra.net/rdmaDevice"] for d in await RdmaBackend(sysfs=sysfs, procfs=procfs).scan()]
    assert names == ["mlx5_2"]
    # without procfs (no uplink view) all three are published
    assert len(await RdmaBackend(sysfs=sysfs).scan()) == 3


ERDMA_IDS = """\
1ded  Alibaba (China) Co., Ltd.
\t107f  Elastic RDMA Adapter
\t\t1ded 107f  eRDMA subsystem name
"""


async def test_ib_only_device_of_a_non_network_class_gets_pci_attributes(tmp_path: Path) -> None:
    """Alibaba eRDMA is PCI class 0x00ff: no netdev backend lists it, the RDMA one does."""
    sysfs = tmp_path / "sys"
    fn = add_pci(sysfs, "0000:00:06.0", numa=0)
    for name, value in (
        ("class", "0x00ff00"),
        ("vendor", "0x1ded"),
        ("device", "0x107f"),
        ("subsystem_vendor", "0x1ded"),
        ("subsystem_device", "0x107f"),
    ):
        (fn / name).write_text(value + "\n")
    add_rdma(sysfs, "erdma_0", pci=fn)
    ids_file = tmp_path / "pci.ids"
    ids_file.write_text(ERDMA_IDS)
    backend = RdmaBackend(sysfs=sysfs, pci_ids=PciIds([ids_file]))
    (dev,) = await backend.scan()
    assert dev.name == "pci-0000-00-06-0"
    assert dict(dev.attributes) == {
        "dra.net/rdma": True,
        "dra.net/rdmaDevice": "erdma_0",
        "dra.net/pciAddress": "0000:00:06.0",
        "dra.net/pciVendor": "Alibaba (China) Co., Ltd.",
        "dra.net/pciDevice": "Elastic RDMA Adapter",
        "dra.net/pciSubsystem": "107f",
        "dra.net/numaNode": 0,
        "resource.kubernetes.io/numaNode": AttributeList((0,)),
        "resource.kubernetes.io/pcieRoot": "pci0000:00",
    }


async def test_a_device_whose_ports_are_all_down_is_unhealthy(tmp_path: Path) -> None:
    _roce_node(tmp_path)  # mlx5_0 port ACTIVE, erdma_0 port DOWN
    health = await RdmaBackend(sysfs=tmp_path).health()
    assert health == {"pci-0000-08-00-0": True, "pci-0000-09-00-0": False}
