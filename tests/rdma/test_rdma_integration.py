"""The rdma backend inside the real driver pieces, next to a (fake) netdev backend.

A node with a RoCE NIC (PCI 0000:08:00.0: netdev eth1 + RDMA device mlx5_0) and an IB-only
device (0000:09:00.0: erdma_0). The netdev backend is a fake (no real PCI netdev can exist
here) that publishes the NIC like the real one (``dra.net/rdma=false``, a netdev facet).
Real: the Inventory merge, handler_table, plan_claim with the validators, the ClaimStore,
PodNetworking and the NRI handlers' CreateContainer path; the RDMA kernel is the fake one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from rdma_helpers import FakeRdmaKernel, add_char, add_pci, add_rdma, ns_key

from dranet_backends.rdma import RdmaBackend, RdmaMover
from dranet_core.attach_report import AttachReport
from dranet_core.capabilities import handler_table
from dranet_core.checkpoint import ClaimStore
from dranet_core.claim_allocator import plan_claim
from dranet_core.config import NetworkConfig
from dranet_core.errors import ConfigError
from dranet_core.inventory import Inventory
from dranet_core.metered import MeteredPodEvents
from dranet_core.mover import AttachResult
from dranet_core.nri.handlers import ContainerInfo
from dranet_core.plans import PreparedDevice
from dranet_core.pods import PodNetworking, default_conditions
from dranet_core.status import EventRecord
from dranet_core.types import (
    JSON,
    AllocationResult,
    Claim,
    ClaimRef,
    ConsumerRef,
    Device,
    DeviceStatus,
    OpaqueConfig,
    PodSandbox,
)

NIC = "pci-0000-08-00-0"
IB_ONLY = "pci-0000-09-00-0"
CLAIM = ClaimRef(namespace="default", name="rdma", uid="claim-rdma")


class FakeNetdev:
    """Publishes the NIC's netdev like the netdev backend, and "moves" it (recording the RDMA state)."""

    name = "netdev"

    def __init__(self, where_is_rdma: Callable[[], object]) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self._where = where_is_rdma

    async def scan(self) -> Sequence[Device]:
        return [
            Device(
                name=NIC,
                attributes={
                    "dra.net/ifName": "eth1",
                    "dra.net/pciAddress": "0000:08:00.0",
                    "dra.net/rdma": False,
                },
                facets={"netdev": {"ifname": "eth1", "ifindex": 7}},
            )
        ]

    async def watch(self, notify: Callable[[], None]) -> None:
        return None

    async def snapshot(self, device: PreparedDevice) -> JSON:
        return {"ifname": "eth1"}

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        self.calls.append(("attach", device.device, self._where()))
        return AttachResult(conditions=default_conditions())

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        self.calls.append(("detach", device.device, self._where()))


class Publisher:
    def __init__(self) -> None:
        self.statuses: dict[str, Sequence[DeviceStatus]] = {}
        self.published: list[Sequence[Device]] = []

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        self.published.append(devices)

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        self.statuses[claim.uid] = devices

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        self.statuses.pop(claim.uid, None)

    async def record_event(self, event: EventRecord) -> None:
        return None

    async def run(self) -> None:
        return None


@attrs.frozen
class Node:
    root: Path
    kernel: FakeRdmaKernel
    host: str
    pod: PodSandbox


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    if os.geteuid() != 0:
        pytest.skip("probe euid==0 failed: the char device nodes are made with mknod (root)")
    sysfs = tmp_path / "sys"
    add_rdma(sysfs, "mlx5_0", pci=add_pci(sysfs, "0000:08:00.0", netdevs=["eth1"]))
    add_rdma(sysfs, "erdma_0", pci=add_pci(sysfs, "0000:09:00.0"), ports=[(1, "InfiniBand", "4: ACTIVE", ())])
    add_char(sysfs, "infiniband_verbs", "uverbs0", "mlx5_0")
    add_char(sysfs, "infiniband_mad", "umad0", "mlx5_0", port=1)
    add_char(sysfs, "infiniband_verbs", "uverbs1", "erdma_0")
    dev = tmp_path / "dev" / "infiniband"
    dev.mkdir(parents=True)
    for name, minor in (("uverbs0", 192), ("uverbs1", 193), ("umad0", 0)):
        os.mknod(dev / name, stat.S_IFCHR | 0o600, os.makedev(231, minor))
    os.mknod(dev / "rdma_cm", stat.S_IFCHR | 0o600, os.makedev(10, 58))
    host, podns = tmp_path / "host-ns", tmp_path / "pod-ns"
    host.write_text("")
    podns.write_text("")
    kernel = FakeRdmaKernel(host=str(host))
    kernel.add(1, "mlx5_0")
    kernel.add(2, "erdma_0")
    try:
        yield Node(
            tmp_path,
            kernel,
            str(host),
            PodSandbox(uid="pod-1", name="p", namespace="default", netns=str(podns)),
        )
    finally:
        kernel.close()


def _claim(params: dict[str, Any] | None = None) -> Claim:
    results = tuple(
        AllocationResult(request="nic", driver="dra.net", pool="node", device=d) for d in (NIC, IB_ONLY)
    )
    configs = (OpaqueConfig(source="FromClaim", driver="dra.net", parameters=params),) if params else ()
    return Claim(
        ref=CLAIM,
        results=results,
        configs=configs,
        reserved_for=(ConsumerRef(resource="pods", name="p", uid="pod-1"),),
    )


async def test_rdma_devices_merge_move_in_order_and_reach_create_container(node: Node) -> None:
    rdma = RdmaBackend(
        sysfs=node.root / "sys",
        dev_root=node.root / "dev",
        mover=RdmaMover(mode="exclusive", host_netns=node.host, opener=node.kernel.open),
    )
    netdev = FakeNetdev(lambda: node.kernel.where("mlx5_0") == ns_key(node.host))
    table = handler_table([netdev, rdma])
    assert [n for n, _ in table.movers] == ["netdev", "rdma"]
    publisher = Publisher()

    # discovery: one device per PCI function, netdev and rdma facets merged, rdma=true wins
    view = await Inventory(table.discoverers, publisher).refresh(publish=False)
    nic = view.devices[NIC]
    assert nic.attributes["dra.net/rdma"] is True
    assert nic.attributes["dra.net/rdmaDevice"] == "mlx5_0"
    assert nic.attributes["dra.net/ifName"] == "eth1"
    assert sorted(nic.facets) == ["netdev", "rdma"]
    assert sorted(view.devices[IB_ONLY].facets) == ["rdma"]
    assert view.devices[IB_ONLY].attributes["dra.net/pciAddress"] == "0000:09:00.0"

    # prepare: an IB-only device rejects netdev settings, with the JSON path
    with pytest.raises(ConfigError) as info:
        plan_claim(
            _claim({"interface": {"mtu": 9000}}),
            view.devices,
            driver="dra.net",
            pool="node",
            taken={},
            validators=table.validators,
        )
    assert any(IB_ONLY in i.path and "interface.mtu" in i.path for i in info.value.issues), info.value.issues
    plan = plan_claim(
        _claim(), view.devices, driver="dra.net", pool="node", taken={}, validators=table.validators
    )

    store = ClaimStore(node.root / "ckpt.json")
    await store.load()
    await store.put_plan(plan)
    pods = PodNetworking(
        store=store,
        movers=table.movers,
        observer=AttachReport(publisher, driver_name="dra.net", pool="node"),
        events=publisher,
        driver_name="dra.net",
        pool="node",
        device_nodes=[(n, a.device_nodes) for n, a in table.adjusters],
    )
    handlers = MeteredPodEvents(pods)

    # RunPodSandbox: the netdev moves first (mlx5_0 still on the host then), then the RDMA links
    await handlers.run_pod_sandbox(node.pod)
    assert netdev.calls == [("attach", NIC, True)]
    assert node.kernel.where("mlx5_0") == ns_key(str(node.pod.netns))
    assert node.kernel.where("erdma_0") == ns_key(str(node.pod.netns))
    statuses = {s.device: [(c.type, c.reason) for c in s.conditions] for s in publisher.statuses[CLAIM.uid]}
    assert statuses == {
        NIC: [
            ("Ready", "NetworkDeviceReady"),
            ("NetworkReady", "NetworkReady"),
            ("RDMALinkReady", "RDMALinkReady"),
        ],
        IB_ONLY: [("RDMALinkReady", "RDMALinkReady"), ("Ready", "RDMAOnlyDeviceReady")],
    }

    # CreateContainer: every char device of both devices plus rdma_cm, once, stat'ed
    nodes = await handlers.create_container(node.pod, ContainerInfo(id="c1", name="app", pod_sandbox_id="s1"))
    assert [(n.path, n.type, n.major, n.minor, n.file_mode) for n in nodes] == [
        ("/dev/infiniband/umad0", "c", 231, 0, 0o666),
        ("/dev/infiniband/uverbs0", "c", 231, 192, 0o666),
        ("/dev/infiniband/rdma_cm", "c", 10, 58, 0o666),
        ("/dev/infiniband/uverbs1", "c", 231, 193, 0o666),
    ]
    other = attrs.evolve(node.pod, uid="someone-else")
    assert await handlers.create_container(other, ContainerInfo(id="c2", name="x", pod_sandbox_id="s2")) == []

    # StopPodSandbox: the RDMA link comes home BEFORE the netdev
    await handlers.stop_pod_sandbox(node.pod)
    assert netdev.calls[-1] == ("detach", NIC, True)
    assert node.kernel.where("mlx5_0") == ns_key(node.host)
    assert node.kernel.where("erdma_0") == ns_key(node.host)
    assert pods.states() == {"prepared": 2}


async def test_claim_rdma_section_sets_mode_uid_and_gid_of_the_char_devices(node: Node) -> None:
    rdma = RdmaBackend(
        sysfs=node.root / "sys",
        dev_root=node.root / "dev",
        mover=RdmaMover(mode="shared", host_netns=node.host, opener=node.kernel.open),
    )
    netdev = FakeNetdev(lambda: True)
    table = handler_table([netdev, rdma])
    publisher = Publisher()
    view = await Inventory(table.discoverers, publisher).refresh(publish=False)
    params = {"rdma": {"fileMode": 0o660, "uid": 1000, "gid": 2000}}
    plan = plan_claim(
        _claim(params), view.devices, driver="dra.net", pool="node", taken={}, validators=table.validators
    )
    store = ClaimStore(node.root / "ckpt.json")
    await store.load()
    await store.put_plan(plan)
    pods = PodNetworking(
        store=store,
        movers=table.movers,
        observer=AttachReport(publisher, driver_name="dra.net", pool="node"),
        events=publisher,
        driver_name="dra.net",
        pool="node",
        device_nodes=[(n, a.device_nodes) for n, a in table.adjusters],
    )
    handlers = MeteredPodEvents(pods)
    await handlers.run_pod_sandbox(node.pod)
    statuses = {s.device: [(c.type, c.reason) for c in s.conditions] for s in publisher.statuses[CLAIM.uid]}
    assert statuses[IB_ONLY] == [("Ready", "RDMAOnlyDeviceReady")]  # shared mode: no RDMALinkReady
    nodes = await handlers.create_container(node.pod, ContainerInfo(id="c1", name="app", pod_sandbox_id="s1"))
    assert {(n.path, n.file_mode, n.uid, n.gid) for n in nodes} == {
        (p, 0o660, 1000, 2000)
        for p in (
            "/dev/infiniband/umad0",
            "/dev/infiniband/uverbs0",
            "/dev/infiniband/rdma_cm",
            "/dev/infiniband/uverbs1",
        )
    }
    # the default stays as before: 0666, owner left to the runtime
    assert {
        (n.file_mode, n.uid, n.gid)
        for n in rdma.device_nodes(attrs.evolve(plan.devices[0], config=NetworkConfig()))
    } == {(0o666, None, None)}
