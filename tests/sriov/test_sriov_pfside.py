"""PF-side VF settings through the driver glue, against a fake kernel that keeps VF state.

The real sriov backend (fake sysfs: PF eth1 with VF0 on vfio-pci and VF1 on ixgbevf as
eth2), a netdev-like fake mover that records its moves in the same log as the fake
kernel, the real allocator, journal (ClaimStore), PodNetworking and NRI handlers, in the
backend order the driver loads them (sriov, netdev). Checked: the settings reach the PF
before the VF moves and are restored after it came home; a failure at any step leaves the
VF as it was; a failed restore stays journalled and is finished later; a late release of
an older claim never resets a VF a newer claim holds.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from fake_pf import FakePfKernel, Vf
from sriov_fakes import FakeSysfs, sriov_node

from dranet_backends.pci import PciIds
from dranet_backends.sriov import SriovBackend
from dranet_backends.sriov.pfside import PfClient
from dranet_core.app import Driver
from dranet_core.attach_report import AttachReport
from dranet_core.capabilities import handler_table
from dranet_core.checkpoint import ClaimStore, DeviceState
from dranet_core.claim_allocator import ClaimAllocator
from dranet_core.config import NetworkConfig, SriovConfig
from dranet_core.demo import DemoPublisher, MemoryClaimSource
from dranet_core.errors import ConfigError, DeviceError
from dranet_core.filter import DEFAULT_FILTER, DeviceFilter
from dranet_core.inventory import Inventory
from dranet_core.metered import MeteredPodEvents
from dranet_core.mover import AttachResult
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.pods import PodNetworking
from dranet_core.settings import CheckpointSettings, KubeletSettings, KubeSettings, NriSettings, Settings
from dranet_core.status import EventRecord
from dranet_core.types import (
    JSON,
    AllocationResult,
    Claim,
    ClaimRef,
    ConsumerRef,
    Device,
    DeviceStatus,
    NetworkData,
    OpaqueConfig,
    PodSandbox,
)

VF = "pci-0000-00-03-2"  # VF 1 of PF eth1, kernel-bound as eth2
ORIGINAL = Vf(mac=bytes([2, 0, 0, 0, 0, 0x11]))
SRIOV = {
    "mac": "02:00:00:00:aa:01",
    "vlan": 100,
    "vlanQoS": 3,
    "spoofChk": False,
    "trust": True,
    "linkState": "enable",
    "maxTxRate": 1000,
}
APPLIED = Vf(
    mac=bytes.fromhex("020000 00aa01".replace(" ", "")),
    vlan=100,
    qos=3,
    spoofchk=0,
    trust=1,
    state=1,
    max_tx=1000,
)
STEPS = ["mac", "vlan", "spoofchk", "trust", "state", "rate"]


def pod(n: int) -> PodSandbox:
    return PodSandbox(
        uid=f"pod-{n}", name=f"p{n}", namespace="default", id=f"sb{n}", netns=f"/run/netns/p{n}"
    )


class FakeNetdev:
    """Publishes eth2 as the netdev device of the VF and "moves" it, logging into the kernel's log."""

    name = "netdev"

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.fail_attach = False

    async def scan(self) -> Sequence[Device]:
        return [Device(name=VF, attributes={"dra.net/ifName": "eth2"}, facets={"netdev": {"ifname": "eth2"}})]

    async def watch(self, notify: Callable[[], None]) -> None:
        notify()

    async def snapshot(self, device: PreparedDevice) -> JSON:
        return {"name": "eth2"}

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        if self.fail_attach:
            raise DeviceError(device.device, "move", "EBUSY")
        self.log.append(f"move eth2 -> {pod.uid}")
        return AttachResult(network_data=NetworkData(interface_name="eth2"))

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        self.log.append(f"move eth2 <- {pod.uid}")


class Publisher:
    def __init__(self) -> None:
        self.statuses: dict[str, list[DeviceStatus]] = {}
        self.events: list[EventRecord] = []

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        pass

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        self.statuses[claim.uid] = list(devices)

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        pass

    async def record_event(self, event: EventRecord) -> None:
        self.events.append(event)

    async def run(self) -> None:
        pass


class Node:
    def __init__(self, tmp: Path) -> None:
        self.fs = FakeSysfs(tmp / "sys")
        sriov_node(self.fs)
        self.kernel = FakePfKernel()
        self.kernel.add_pf("eth1", 2)
        self.netdev = FakeNetdev(self.kernel.log)
        self.sriov = SriovBackend(
            sysfs=self.fs.root, pci_ids=PciIds(paths=()), pf_client=PfClient(self.kernel)
        )
        self.table = handler_table([self.sriov, self.netdev])  # the driver's built-in order
        self.store = ClaimStore(tmp / "ckpt.json")
        self.sriov.bind_journal(self.store)
        self.inventory = Inventory(
            self.table.discoverers, Publisher(), filter=DeviceFilter.compile(DEFAULT_FILTER)
        )
        self.allocator = ClaimAllocator("dra.net", "node", self.store, validators=self.table.validators)
        self.publisher = Publisher()
        self.pods = PodNetworking(
            store=self.store,
            movers=self.table.movers,
            observer=AttachReport(self.publisher, driver_name="dra.net", pool="node"),
            events=self.publisher,
            driver_name="dra.net",
            pool="node",
        )
        self.nri = MeteredPodEvents(self.pods)

    def vf(self) -> Vf:
        return self.kernel.pfs["eth1"][1]

    async def prepare(self, uid: str, pod_n: int, sriov: dict[str, Any] | None = SRIOV) -> Claim:
        params: dict[str, Any] = {} if sriov is None else {"sriov": sriov}
        claim = Claim(
            ref=ClaimRef(namespace="default", name=uid, uid=uid),
            results=(AllocationResult(request="vf", driver="dra.net", pool="node", device=VF),),
            configs=(
                OpaqueConfig(source="FromClaim", requests=("vf",), driver="dra.net", parameters=params),
            ),
            reserved_for=(ConsumerRef(resource="pods", name=f"p{pod_n}", uid=f"pod-{pod_n}"),),
        )
        view = await self.inventory.refresh()
        await self.allocator.prepare(claim, view.devices)
        return claim


@pytest.fixture
async def node(tmp_path: Path) -> Node:
    n = Node(tmp_path)
    await n.store.load()
    return n


async def test_settings_reach_the_pf_before_the_move_and_are_restored_after_it(node: Node) -> None:
    assert node.table.movers[0][0] == "sriov"
    await node.prepare("claim-a", 1)
    await node.nri.run_pod_sandbox(pod(1))
    assert node.kernel.log == [*(f"eth1 vf 1 {s}" for s in STEPS), "move eth2 -> pod-1"]
    assert node.vf() == APPLIED
    assert node.kernel.pfs["eth1"][0] == Vf(mac=bytes([2, 0, 0, 0, 0, 0x10]))  # VF 0 untouched
    # the Go driver's netdev conditions: the sriov step adds none
    assert [c.reason for c in node.publisher.statuses["claim-a"][0].conditions] == [
        "NetworkDeviceReady",
        "NetworkReady",
    ]
    snap = node.store.device_state("claim-a", VF)
    assert snap is not None and isinstance(snap.snapshot, dict)
    assert snap.snapshot["sriov"]["vf"]["mac"] == "02:00:00:00:00:11"  # journalled before apply

    node.kernel.log.clear()
    await node.nri.stop_pod_sandbox(pod(1))
    assert node.kernel.log == ["move eth2 <- pod-1", *(f"eth1 vf 1 {s}" for s in reversed(STEPS))]
    assert node.vf() == ORIGINAL
    assert node.pods.held_devices() == set()


async def test_only_the_requested_settings_are_touched(node: Node) -> None:
    await node.prepare("claim-a", 1, {"minTxRate": 10})
    node.vf().max_tx = 700
    await node.nri.run_pod_sandbox(pod(1))
    assert node.kernel.log == ["eth1 vf 1 rate", "move eth2 -> pod-1"]
    assert (node.vf().min_tx, node.vf().max_tx) == (10, 700)  # the max rate kept as it was
    await node.nri.stop_pod_sandbox(pod(1))
    assert (node.vf().min_tx, node.vf().max_tx) == (0, 700)


async def test_no_sriov_section_means_no_pf_traffic(node: Node) -> None:
    await node.prepare("claim-a", 1, None)
    await node.nri.run_pod_sandbox(pod(1))
    await node.nri.stop_pod_sandbox(pod(1))
    assert node.kernel.requests == []
    assert node.kernel.log == ["move eth2 -> pod-1", "move eth2 <- pod-1"]


@pytest.mark.parametrize("failing", STEPS)
async def test_a_failed_step_restores_the_earlier_ones_and_nothing_moves(node: Node, failing: str) -> None:
    await node.prepare("claim-a", 1)
    node.kernel.fail[failing] = errno.EOPNOTSUPP
    with pytest.raises(DeviceError) as err:
        await node.nri.run_pod_sandbox(pod(1))
    assert err.value.device == VF and "Operation not supported" in str(err.value)
    done = STEPS[: STEPS.index(failing)]
    assert node.kernel.log == [f"eth1 vf 1 {s}" for s in [*done, *reversed(done)]]
    assert node.vf() == ORIGINAL
    assert node.store.device_state("claim-a", VF) == DeviceState(phase="prepared")
    assert [e.reason for e in node.publisher.events] == ["NetworkDeviceAttachFailed"]


async def test_a_failed_move_restores_every_setting(node: Node) -> None:
    await node.prepare("claim-a", 1)
    node.netdev.fail_attach = True
    with pytest.raises(DeviceError, match="EBUSY"):
        await node.nri.run_pod_sandbox(pod(1))
    assert node.kernel.log == [f"eth1 vf 1 {s}" for s in [*STEPS, *reversed(STEPS)]]
    assert node.vf() == ORIGINAL
    assert node.store.device_state("claim-a", VF) == DeviceState(phase="prepared")


async def test_a_failed_restore_stays_journalled_and_reconcile_finishes_it(node: Node) -> None:
    await node.prepare("claim-a", 1)
    await node.nri.run_pod_sandbox(pod(1))
    node.kernel.fail["vlan"] = errno.EIO
    await node.nri.stop_pod_sandbox(pod(1))
    state = node.store.device_state("claim-a", VF)
    assert state is not None and state.phase == "detaching"
    assert node.vf().vlan == 100 and node.vf().mac == ORIGINAL.mac  # the others were restored
    assert [e.reason for e in node.publisher.events] == ["NetworkDeviceDetachFailed"]

    del node.kernel.fail["vlan"]
    assert await node.pods.reconcile([]) == {"returned": 1}
    assert node.vf() == ORIGINAL
    assert node.store.device_state("claim-a", VF) == DeviceState(phase="prepared")


async def test_a_late_release_never_resets_a_vf_a_newer_claim_holds(node: Node) -> None:
    """Claim A's release failed (its journal stays ``detaching``); the VF went to claim B,
    whose pod now runs with B's settings; A's release is retried: B's settings stay."""
    await node.prepare("claim-a", 1)
    await node.nri.run_pod_sandbox(pod(1))
    node.kernel.fail["mac"] = errno.EIO
    await node.nri.stop_pod_sandbox(pod(1))
    del node.kernel.fail["mac"]
    assert node.store.device_state("claim-a", VF).phase == "detaching"  # type: ignore[union-attr]

    # (the allocator refuses a device another claim holds; the journal is written directly
    # to stand for a checkpoint where both claims hold it)
    view = await node.inventory.refresh()
    ref_b = ClaimRef(namespace="default", name="claim-b", uid="claim-b")
    b = PreparedDevice(
        pool="node",
        device=VF,
        request_names=("vf",),
        config=NetworkConfig(sriov=SriovConfig(mac="02:00:00:00:bb:02", vlan=200)),
        facets=dict(view.devices[VF].facets),
    )
    await node.store.put_plan(ClaimPlan(claim=ref_b, pods=("pod-2",), devices=(b,)))
    await node.nri.run_pod_sandbox(pod(2))
    assert (node.vf().mac, node.vf().vlan) == (bytes.fromhex("02000000bb02"), 200)

    node.kernel.log.clear()
    await node.pods.release_claim(ClaimRef(namespace="default", name="claim-a", uid="claim-a"))
    assert not any(line.startswith("eth1") for line in node.kernel.log)  # no PF-side reset
    assert (node.vf().mac, node.vf().vlan) == (bytes.fromhex("02000000bb02"), 200)
    assert node.store.device_state("claim-a", VF) == DeviceState(phase="prepared")
    assert node.store.device_state("claim-b", VF).phase == "attached"  # type: ignore[union-attr]


async def test_an_sriov_section_is_refused_for_a_device_that_is_not_a_vf(node: Node) -> None:
    claim = Claim(
        ref=ClaimRef(namespace="default", name="c", uid="c"),
        results=(AllocationResult(request="pf", driver="dra.net", pool="node", device="pci-0000-00-03-1"),),
        configs=(),
        reserved_for=(ConsumerRef(resource="pods", name="p1", uid="pod-1"),),
    )
    view = await node.inventory.refresh()
    node.fs.add("0000:00:05.0", driver="ixgbe", netdev="eth5")  # a plain PCI NIC
    plain = Device(name="pci-0000-00-05-0", attributes={"dra.net/ifName": "eth5"}, facets={"netdev": {}})
    config = OpaqueConfig(
        source="FromClaim", requests=("pf",), driver="dra.net", parameters={"sriov": {"vlan": 5}}
    )
    claim = Claim(
        ref=claim.ref,
        results=(AllocationResult(request="pf", driver="dra.net", pool="node", device=plain.name),),
        configs=(config,),
        reserved_for=claim.reserved_for,
    )
    with pytest.raises(ConfigError) as err:
        await node.allocator.prepare(claim, {**view.devices, plain.name: plain})
    assert [str(i) for i in err.value.issues] == [
        "device pci-0000-00-05-0.sriov: not allowed: device pci-0000-00-05-0 is not a sriov device "
        "(it has no sriov facet; a 'sriov' section applies only to devices the sriov backend discovered)"
    ]
    assert node.store.claims() == {}


async def test_the_driver_composition_gives_the_sriov_backend_its_journal(tmp_path: Path) -> None:
    """The same late release, through the reference driver's own composition (``Driver``):
    without the journal binding the guard cannot see claim B and would reset the VF."""
    fs = FakeSysfs(tmp_path / "sys")
    sriov_node(fs)
    kernel = FakePfKernel()
    kernel.add_pf("eth1", 2)
    sriov = SriovBackend(sysfs=fs.root, pci_ids=PciIds(paths=()), pf_client=PfClient(kernel), uevents=None)
    settings = Settings(
        kube=KubeSettings(node_name="node"),
        kubelet=KubeletSettings(root_dir=tmp_path / "kubelet"),
        nri=NriSettings(socket_path=tmp_path / "nri.sock"),
        checkpoint=CheckpointSettings(db_path=tmp_path / "db.json"),
    )
    driver = Driver(
        settings,
        backends=[sriov, FakeNetdev(kernel.log)],
        publisher=DemoPublisher(tmp_path / "api", node_name="node"),
        claim_source=MemoryClaimSource(),
    )
    await driver.store.load()
    view = await driver.inventory.refresh(publish=False)
    facets = dict(view.devices[VF].facets)

    def plan(uid: str, pod_n: int, sriov_cfg: SriovConfig) -> ClaimPlan:
        dev = PreparedDevice(
            pool="node",
            device=VF,
            request_names=("vf",),
            config=NetworkConfig(sriov=sriov_cfg),
            facets=facets,
        )
        return ClaimPlan(
            claim=ClaimRef(namespace="default", name=uid, uid=uid), pods=(f"pod-{pod_n}",), devices=(dev,)
        )

    await driver.store.put_plan(plan("claim-a", 1, SriovConfig(vlan=100)))
    await driver.pods.attach_pod(pod(1))
    kernel.fail["vlan"] = errno.EIO
    await driver.pods.detach_pod(pod(1))  # the reset fails: claim A stays journalled
    del kernel.fail["vlan"]
    await driver.store.put_plan(plan("claim-b", 2, SriovConfig(vlan=200)))
    await driver.pods.attach_pod(pod(2))
    await driver.pods.release_claim(ClaimRef(namespace="default", name="claim-a", uid="claim-a"))
    assert kernel.pfs["eth1"][1].vlan == 200


async def _crash_after_mac(node: Node) -> None:
    """A driver that died after journalling ``attaching`` and applying the first setting."""
    await node.prepare("claim-a", 1)
    pc = node.store.get("claim-a")
    assert pc is not None
    dev = pc.plan.devices[0]
    snaps = {"sriov": await node.sriov.snapshot(dev), "netdev": await node.netdev.snapshot(dev)}
    p = pod(1)
    await node.store.set_device_state(
        "claim-a", VF, DeviceState(phase="attaching", pod_uid=p.uid, netns=p.netns, snapshot=snaps)
    )
    node.kernel.pfs["eth1"][1].mac = bytes.fromhex("02000000aa01")


async def test_a_restart_mid_apply_resumes_and_the_release_restores_the_state_before_it(node: Node) -> None:
    await _crash_after_mac(node)
    assert await node.pods.reconcile([pod(1)]) == {"resumed": 1}
    assert node.vf() == APPLIED
    assert node.kernel.log[-1] == "move eth2 -> pod-1"
    await node.nri.stop_pod_sandbox(pod(1))
    assert node.vf() == ORIGINAL  # the journalled snapshot, not the half-applied state


async def test_a_restart_mid_apply_with_the_pod_gone_restores_the_vf(node: Node) -> None:
    await _crash_after_mac(node)
    assert await node.pods.reconcile([]) == {"returned": 1}
    assert node.vf() == ORIGINAL
    assert node.store.device_state("claim-a", VF) == DeviceState(phase="prepared")


async def test_a_vfio_vf_gets_its_pf_side_settings_too(tmp_path: Path) -> None:
    """VF 0 is bound to vfio-pci (DPDK): nothing moves, but its PF-side settings are made and undone."""
    fs = FakeSysfs(tmp_path / "sys")
    sriov_node(fs)
    kernel = FakePfKernel()
    kernel.add_pf("eth1", 2)

    def char_stat(path: str) -> os.stat_result:
        return os.stat_result(
            (stat.S_IFCHR | 0o600, 0, 0, 1, 0, 0, 0, 0, 0, 0), {"st_rdev": os.makedev(243, 1)}
        )

    b = SriovBackend(sysfs=fs.root, pci_ids=PciIds(paths=()), pf_client=PfClient(kernel), stat_fn=char_stat)
    vfio = next(d for d in await b.scan() if d.facets["sriov"]["driver"] == "vfio-pci")
    dev = PreparedDevice(
        pool="node",
        device=vfio.name,
        request_names=("dpdk",),
        config=NetworkConfig(sriov=SriovConfig(vlan=300, trust=True)),
        facets=dict(vfio.facets),
    )
    snap = await b.snapshot(dev)
    result = await b.attach(dev, pod(1), snap)
    assert [c.reason for c in result.conditions] == ["UserspaceDeviceReady"]
    assert (kernel.pfs["eth1"][0].vlan, kernel.pfs["eth1"][0].trust) == (300, 1)
    await b.detach(dev, pod(1), snap)
    assert kernel.pfs["eth1"][0] == Vf(mac=bytes([2, 0, 0, 0, 0, 0x10]))
    assert kernel.log == ["eth1 vf 0 vlan", "eth1 vf 0 trust", "eth1 vf 0 trust", "eth1 vf 0 vlan"]
