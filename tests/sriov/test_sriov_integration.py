"""The sriov backend in the driver glue: handler table, inventory, prepare, RunPodSandbox, CreateContainer.

A netdev-like fake (discovery + mover) and the real sriov backend over a fake sysfs and a
tmp /dev with real character nodes. A claim holds a netdev and a vfio VF; the vfio VF's
device nodes must reach CreateContainer, and its config is checked at prepare.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sriov_fakes import FakeSysfs, can_mknod, make_char, sriov_node

from dranet_backends.pci import PciIds
from dranet_backends.sriov import SriovBackend
from dranet_core.attach_report import AttachReport
from dranet_core.capabilities import HandlerTable, handler_table
from dranet_core.checkpoint import ClaimStore
from dranet_core.claim_allocator import ClaimAllocator
from dranet_core.errors import ConfigError, DeviceError
from dranet_core.filter import DEFAULT_FILTER, DeviceFilter
from dranet_core.inventory import Inventory
from dranet_core.metered import MeteredPodEvents
from dranet_core.mover import AttachResult
from dranet_core.nri.handlers import ContainerInfo
from dranet_core.plans import PreparedDevice
from dranet_core.pods import PodNetworking
from dranet_core.status import EventRecord
from dranet_core.types import (
    JSON,
    AllocationResult,
    Claim,
    ClaimRef,
    ConsumerRef,
    Device,
    DeviceNode,
    DeviceStatus,
    NetworkData,
    OpaqueConfig,
    PodSandbox,
)

VF = "pci-0000-00-03-1"
POD = PodSandbox(uid="pod-1", name="p1", namespace="default", id="sb1", netns="/run/netns/none")
REF = ClaimRef(namespace="default", name="c1", uid="claim-1")


class FakeNetdev:
    """Discovers one netdev ``eth1`` and "moves" it (records calls)."""

    name = "netdev"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def scan(self) -> Sequence[Device]:
        return [
            Device(name="eth1", attributes={"dra.net/ifName": "eth1"}, facets={"netdev": {"ifname": "eth1"}})
        ]

    async def watch(self, notify: Callable[[], None]) -> None:
        notify()

    async def snapshot(self, device: PreparedDevice) -> JSON:
        self.calls.append(("snapshot", device.device))
        return {"name": device.device}

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        self.calls.append(("attach", device.device))
        return AttachResult(network_data=NetworkData(interface_name="net1"))

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        self.calls.append(("detach", device.device))


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[list[Device]] = []
        self.statuses: dict[str, Sequence[DeviceStatus]] = {}
        self.events: list[EventRecord] = []

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        self.published.append(list(devices))

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        self.statuses[claim.uid] = devices

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        self.statuses.pop(claim.uid, None)

    async def record_event(self, event: EventRecord) -> None:
        self.events.append(event)

    async def run(self) -> None:
        return None


class Node:
    def __init__(self, tmp: Path) -> None:
        self.fs = FakeSysfs(tmp / "sys")
        sriov_node(self.fs)
        self.dev_root = tmp / "dev"
        self.netdev = FakeNetdev()
        self.sriov = SriovBackend(sysfs=self.fs.root, dev_root=self.dev_root, pci_ids=PciIds(paths=()))
        self.table: HandlerTable = handler_table([self.netdev, self.sriov])
        self.publisher = FakePublisher()
        self.store = ClaimStore(tmp / "ckpt.json")
        self.inventory = Inventory(
            self.table.discoverers, self.publisher, filter=DeviceFilter.compile(DEFAULT_FILTER)
        )
        self.allocator = ClaimAllocator("dra.net", "node", self.store, validators=self.table.validators)
        self.pods = PodNetworking(
            store=self.store,
            movers=self.table.movers,
            observer=AttachReport(self.publisher, driver_name="dra.net", pool="node"),
            events=self.publisher,
            driver_name="dra.net",
            pool="node",
            device_nodes=[(n, a.device_nodes) for n, a in self.table.adjusters],
        )
        self.nri = MeteredPodEvents(self.pods)


@pytest.fixture
async def node(tmp_path: Path) -> Node:
    n = Node(tmp_path)
    n.dev_root.mkdir()
    if not can_mknod(tmp_path):
        pytest.skip("probe can_mknod: cannot create character device nodes (needs root / CAP_MKNOD)")
    make_char(n.dev_root, "vfio/vfio", 10, 196)
    make_char(n.dev_root, "vfio/12", 243, 1)
    await n.store.load()
    return n


def claim(configs: Sequence[OpaqueConfig] = ()) -> Claim:
    return Claim(
        ref=REF,
        results=(
            AllocationResult(request="net", driver="dra.net", pool="node", device="eth1"),
            AllocationResult(request="dpdk", driver="dra.net", pool="node", device=VF),
        ),
        configs=tuple(configs),
        reserved_for=(ConsumerRef(resource="pods", name="p1", uid="pod-1"),),
    )


def cfg(request: str, params: dict[str, Any]) -> OpaqueConfig:
    return OpaqueConfig(source="FromClaim", requests=(request,), driver="dra.net", parameters=params)


async def test_handler_table_wires_every_sriov_capability(node: Node) -> None:
    assert node.table.capabilities["sriov"] == ("discover", "move", "validate", "adjust")
    view = await node.inventory.refresh()
    # the kernel-bound VF (eth2) gets the sriov facet and VF attributes; its netdev device
    # would come from the netdev backend (this fake one only knows eth1)
    assert sorted(view.published) == ["eth1", VF, "pci-0000-00-03-2"]
    assert sorted(d.name for d in node.publisher.published[-1]) == ["eth1", VF, "pci-0000-00-03-2"]
    assert view.published[VF].attributes["dra.net/vfio"] is True


async def test_vfio_device_nodes_reach_create_container(node: Node) -> None:
    view = await node.inventory.refresh()
    plan = await node.allocator.prepare(claim([cfg("net", {"interface": {"name": "net1"}})]), view.devices)
    assert [d.device for d in plan.devices] == ["eth1", VF]

    await node.nri.run_pod_sandbox(POD)
    assert node.netdev.calls == [
        ("snapshot", "eth1"),
        ("attach", "eth1"),
    ]  # the netdev mover never sees the VF
    statuses = {s.device: s for s in node.publisher.statuses[REF.uid]}
    assert [c.reason for c in statuses[VF].conditions] == ["UserspaceDeviceReady"]
    assert statuses[VF].network_data is None
    assert statuses["eth1"].network_data == NetworkData(interface_name="net1")

    nodes = await node.nri.create_container(POD, ContainerInfo(id="c1", name="app", pod_sandbox_id=POD.id))
    assert nodes == [
        DeviceNode(path="/dev/vfio/vfio", type="c", major=10, minor=196, file_mode=0o666),
        DeviceNode(path="/dev/vfio/12", type="c", major=243, minor=1, file_mode=0o666),
    ]
    other = PodSandbox(uid="pod-2", name="p2", namespace="default", id="sb2", netns="/run/netns/none")
    assert (
        await node.nri.create_container(other, ContainerInfo(id="c2", name="x", pod_sandbox_id="sb2")) == []
    )

    await node.nri.stop_pod_sandbox(POD)
    assert node.netdev.calls[-1] == ("detach", "eth1")
    assert node.pods.held_devices() == set()


async def test_netdev_config_for_the_vfio_device_fails_prepare(node: Node) -> None:
    view = await node.inventory.refresh()
    with pytest.raises(ConfigError) as err:
        await node.allocator.prepare(claim([cfg("dpdk", {"interface": {"mtu": 9000}})]), view.devices)
    assert [i.path for i in err.value.issues] == [f"device {VF}.interface.mtu"]
    assert node.store.claims() == {}


async def test_rebinding_the_vf_after_prepare_fails_the_sandbox_and_rolls_back(node: Node) -> None:
    view = await node.inventory.refresh()
    await node.allocator.prepare(claim(), view.devices)
    node.fs.bind("0000:00:03.1", "ixgbevf")
    with pytest.raises(DeviceError, match="bound to ixgbevf"):
        await node.nri.run_pod_sandbox(POD)
    assert node.netdev.calls[-1] == ("detach", "eth1")  # the netdev attached first is taken back
    assert node.pods.held_devices() == set()
