"""Pod networking glue: the attach journal, rollback, detach, restart reconciliation."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import attrs
import pytest

from dranet_core.attach_report import AttachReport
from dranet_core.checkpoint import ClaimStore, DeviceState
from dranet_core.errors import DeviceError
from dranet_core.mover import AttachResult
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.pods import PodNetworking
from dranet_core.status import EventRecord
from dranet_core.types import JSON, ClaimRef, DeviceNode, DeviceStatus, NetworkData, PodSandbox

POD = PodSandbox(uid="pod-1", name="p1", namespace="default", netns="/run/netns/x")
CLAIM = ClaimRef(namespace="default", name="c1", uid="claim-1")


class FakeMover:
    """Records calls; ``fail`` names devices whose attach/detach raises."""

    def __init__(self, name: str = "netdev", step: str = "move") -> None:
        self.name = name
        self.step = step
        self.calls: list[tuple[str, str, Any]] = []
        self.fail_attach: set[str] = set()
        self.fail_detach: set[str] = set()

    async def snapshot(self, device: PreparedDevice) -> JSON:
        self.calls.append(("snapshot", device.device, None))
        return {"name": f"host-{device.device}", "by": self.name}

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        self.calls.append(("attach", device.device, snapshot))
        if device.device in self.fail_attach:
            raise DeviceError(device.device, self.step, "EBUSY")
        return AttachResult(network_data=NetworkData(interface_name="net1", ips=("192.0.2.1/24",)))

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        self.calls.append(("detach", device.device, snapshot))
        if device.device in self.fail_detach:
            raise DeviceError(device.device, "move", "gone")


class FakePublisher:
    def __init__(self) -> None:
        self.statuses: dict[str, Sequence[DeviceStatus]] = {}
        self.events: list[EventRecord] = []

    async def publish_devices(self, devices: Sequence[Any]) -> None:
        return None

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        self.statuses[claim.uid] = devices

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        self.statuses.pop(claim.uid, None)

    async def record_event(self, event: EventRecord) -> None:
        self.events.append(event)

    async def run(self) -> None:
        return None


class FakePins:
    """The inventory's DevicePins port: records the held set after every journal write."""

    def __init__(self, changes: list[set[str]]) -> None:
        self.changes = changes
        self.rescans = 0

    def hold_only(self, names: AbstractSet[str]) -> None:
        self.changes.append(set(names))

    def request_rescan(self) -> None:
        self.rescans += 1


def _dev(name: str, facets: tuple[str, ...] = ("netdev",)) -> PreparedDevice:
    return PreparedDevice(
        pool="node", device=name, request_names=("nic",), facets={f: {"ifname": name} for f in facets}
    )


def _plan(*devices: PreparedDevice, pods: tuple[str, ...] = ("pod-1",)) -> ClaimPlan:
    return ClaimPlan(claim=CLAIM, pods=pods, devices=devices)


@attrs.define
class Rig:
    store: ClaimStore
    mover: FakeMover
    publisher: FakePublisher
    pods: PodNetworking
    changes: list[set[str]]


async def _rig(tmp_path: Path, *devices: PreparedDevice, movers: Sequence[FakeMover] | None = None) -> Rig:
    store = ClaimStore(tmp_path / "ckpt.json")
    await store.load()
    if devices:
        await store.put_plan(_plan(*devices))
    ms = list(movers) if movers is not None else [FakeMover()]
    pub = FakePublisher()
    changes: list[set[str]] = []
    pods = PodNetworking(
        store=store,
        movers=[(m.name, m) for m in ms],
        observer=AttachReport(pub, driver_name="dra.net", pool="node"),
        events=pub,
        driver_name="dra.net",
        pool="node",
        pins=FakePins(changes),
    )
    return Rig(store, ms[0], pub, pods, changes)


def _phase(rig: Rig, device: str) -> str:
    st = rig.store.device_state(CLAIM.uid, device)
    return st.phase if st else "?"


async def test_attach_journals_and_publishes_status(tmp_path: Path) -> None:
    rig = await _rig(tmp_path, _dev("eth1"))
    await rig.pods.attach_pod(POD)
    assert [c[0] for c in rig.mover.calls] == ["snapshot", "attach"]
    assert rig.mover.calls[1][2] == {"name": "host-eth1", "by": "netdev"}
    st = rig.store.device_state(CLAIM.uid, "eth1")
    assert st is not None
    assert st.phase == "attached"
    assert st.pod_uid == "pod-1"
    assert st.netns == "/run/netns/x"
    assert st.snapshot == {"netdev": {"name": "host-eth1", "by": "netdev"}}
    (status,) = rig.publisher.statuses[CLAIM.uid]
    assert (status.driver, status.pool, status.device) == ("dra.net", "node", "eth1")
    assert [(c.type, c.reason) for c in status.conditions] == [
        ("Ready", "NetworkDeviceReady"),
        ("NetworkReady", "NetworkReady"),
    ]
    assert status.network_data == NetworkData(interface_name="net1", ips=("192.0.2.1/24",))
    assert rig.changes == [{"eth1"}, {"eth1"}]  # attaching, attached: held both times
    assert rig.pods.held_devices() == {"eth1"}


async def test_repeated_attach_is_a_noop(tmp_path: Path) -> None:
    rig = await _rig(tmp_path, _dev("eth1"))
    await rig.pods.attach_pod(POD)
    rig.mover.calls.clear()
    await rig.pods.attach_pod(POD)
    assert rig.mover.calls == []


async def test_failure_rolls_back_the_pods_other_devices(tmp_path: Path) -> None:
    rig = await _rig(tmp_path, _dev("eth1"), _dev("eth2"))
    rig.mover.fail_attach.add("eth2")
    with pytest.raises(DeviceError, match="device eth2: move: EBUSY"):
        await rig.pods.attach_pod(POD)
    assert ("detach", "eth1", {"name": "host-eth1", "by": "netdev"}) in rig.mover.calls
    assert _phase(rig, "eth1") == "prepared"
    assert _phase(rig, "eth2") == "prepared"
    assert [e.reason for e in rig.publisher.events] == ["NetworkDeviceAttachFailed"]
    assert rig.publisher.events[0].kind == "Pod"
    # the failing device's status says why: Ready=False with the reason and the error
    (status,) = rig.publisher.statuses[CLAIM.uid]
    assert status.device == "eth2"
    (cond,) = status.conditions
    assert (cond.type, cond.status, cond.reason) == ("Ready", "False", "NetworkDeviceAttachFailed")
    assert "device eth2: move: EBUSY" in cond.message


async def test_a_failed_rdma_step_is_reported_as_an_rdma_attach_failure(tmp_path: Path) -> None:
    first, second = FakeMover("netdev"), FakeMover("rdma", step="rdma attach")  # as RdmaMover words it
    second.fail_attach.add("eth1")
    rig = await _rig(tmp_path, _dev("eth1", ("netdev", "rdma")), movers=[first, second])
    with pytest.raises(DeviceError):
        await rig.pods.attach_pod(POD)
    (status,) = rig.publisher.statuses[CLAIM.uid]
    assert [(c.status, c.reason) for c in status.conditions] == [("False", "RDMADeviceAttachFailed")]
    assert [e.reason for e in rig.publisher.events] == ["RDMADeviceAttachFailed"]


async def test_second_mover_failure_undoes_the_first(tmp_path: Path) -> None:
    first, second = FakeMover("netdev"), FakeMover("rdma")
    second.fail_attach.add("eth1")
    rig = await _rig(tmp_path, _dev("eth1", ("netdev", "rdma")), movers=[first, second])
    with pytest.raises(DeviceError):
        await rig.pods.attach_pod(POD)
    assert [c[0] for c in first.calls] == ["snapshot", "attach", "detach"]
    assert _phase(rig, "eth1") == "prepared"


async def test_host_network_pod_is_refused(tmp_path: Path) -> None:
    rig = await _rig(tmp_path, _dev("eth1"))
    with pytest.raises(DeviceError, match="has no network namespace"):
        await rig.pods.attach_pod(attrs.evolve(POD, netns=None))
    assert rig.mover.calls == []


async def test_device_without_a_mover_is_refused(tmp_path: Path) -> None:
    rig = await _rig(tmp_path, _dev("eth1", ("rdma",)))
    with pytest.raises(DeviceError, match="no backend can move it"):
        await rig.pods.attach_pod(POD)
    assert _phase(rig, "eth1") == "prepared"


async def test_pod_without_devices_is_untouched(tmp_path: Path) -> None:
    rig = await _rig(tmp_path, _dev("eth1"))
    await rig.pods.attach_pod(attrs.evolve(POD, uid="other"))
    await rig.pods.detach_pod(attrs.evolve(POD, uid="other"))
    assert rig.mover.calls == []
    assert rig.changes == []


async def test_detach_restores_with_the_stored_snapshot(tmp_path: Path) -> None:
    rig = await _rig(tmp_path, _dev("eth1"))
    await rig.pods.attach_pod(POD)
    await rig.pods.detach_pod(POD)
    assert rig.mover.calls[-1] == ("detach", "eth1", {"name": "host-eth1", "by": "netdev"})
    assert rig.store.device_state(CLAIM.uid, "eth1") == DeviceState()
    assert rig.pods.held_devices() == set()


async def test_failed_detach_stays_detaching_and_is_reported(tmp_path: Path) -> None:
    rig = await _rig(tmp_path, _dev("eth1"))
    await rig.pods.attach_pod(POD)
    rig.mover.fail_detach.add("eth1")
    await rig.pods.detach_pod(POD)  # never raises
    assert _phase(rig, "eth1") == "detaching"
    assert [e.reason for e in rig.publisher.events] == ["NetworkDeviceDetachFailed"]
    rig.mover.fail_detach.clear()
    await rig.pods.release_claim(CLAIM)  # the unprepare hook finishes it
    assert _phase(rig, "eth1") == "prepared"


@pytest.mark.parametrize(
    ("phase", "running", "expected", "calls", "final"),
    [
        ("attaching", True, "resumed", ["attach"], "attached"),
        ("attaching", False, "returned", ["detach"], "prepared"),
        ("attached", True, "kept", [], "attached"),
        ("attached", False, "returned", ["detach"], "prepared"),
        ("detaching", True, "returned", ["detach"], "prepared"),
        ("detaching", False, "returned", ["detach"], "prepared"),
        ("prepared", True, "attached", ["snapshot", "attach"], "attached"),
        ("prepared", False, "kept", [], "prepared"),
    ],
)
async def test_restart_reconciliation(
    tmp_path: Path, phase: str, running: bool, expected: str, calls: list[str], final: str
) -> None:
    # a previous process left this journal entry; a new process loads it from the file
    first = await _rig(tmp_path, _dev("eth1"))
    snap = {"netdev": {"name": "host-eth1", "by": "netdev"}}
    if phase != "prepared":
        entry = DeviceState(phase=phase, pod_uid="pod-1", netns=POD.netns, snapshot=snap)  # type: ignore[arg-type]
        await first.store.set_device_state(CLAIM.uid, "eth1", entry)
    rig = await _rig(tmp_path)  # restart: same file, new objects
    assert rig.store.get(CLAIM.uid) is not None
    done = await rig.pods.reconcile([POD] if running else [])
    assert done == {expected: 1}
    assert [c[0] for c in rig.mover.calls] == calls
    if phase != "prepared" and calls:
        assert rig.mover.calls[-1][2] == snap["netdev"]  # the stored snapshot, not a new one
    assert _phase(rig, "eth1") == final
    assert rig.store.get(CLAIM.uid) is not None  # never pruned on a guess (#232)
    if expected in ("resumed", "attached"):  # the claim status says what reconcile did
        assert [d.device for d in rig.publisher.statuses[CLAIM.uid]] == ["eth1"]
    else:
        assert CLAIM.uid not in rig.publisher.statuses


async def test_container_devices_are_deduplicated(tmp_path: Path) -> None:
    rig = await _rig(tmp_path, _dev("eth1"), _dev("eth2"))
    node = DeviceNode(path="/dev/infiniband/uverbs0", type="c", major=231, minor=192)
    shared = DeviceNode(path="/dev/infiniband/rdma_cm", type="c", major=10, minor=58)
    pods = PodNetworking(
        store=rig.store,
        movers=[],
        observer=AttachReport(rig.publisher, driver_name="dra.net", pool="node"),
        events=rig.publisher,
        driver_name="dra.net",
        pool="node",
        device_nodes=[("netdev", lambda d: [node, shared] if d.device == "eth1" else [shared])],
    )
    assert pods.container_devices(POD) == [node, shared]
    assert pods.container_devices(attrs.evolve(POD, uid="nobody")) == []


async def test_repr_and_states(tmp_path: Path) -> None:
    rig = await _rig(tmp_path, _dev("eth1"), _dev("eth2"))
    await rig.store.set_device_state(CLAIM.uid, "eth2", DeviceState(phase="attached", pod_uid="pod-1"))
    assert rig.pods.states() == {"prepared": 1, "attached": 1}
    assert repr(rig.pods) == (
        "PodNetworking(pool='node', movers=['netdev'], states={'prepared': 1, 'attached': 1})"
    )


# --- a pod's sandboxes, devices that cannot come home, journal writes that fail ---

SB1 = attrs.evolve(POD, id="sb-1", netns="/run/netns/a")
SB2 = attrs.evolve(POD, id="sb-2", netns="/run/netns/b")


class PlacingMover(FakeMover):
    """Knows where each device is ("host" or a netns path) and refuses to report a detach it
    cannot verify, like a real mover: a device is found in the pod netns or on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.where: dict[str, str] = {}
        self.gone: set[str] = set()  # netns paths that no longer exist
        self.on_attach: list[Any] = []

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        result = await super().attach(device, pod, snapshot)
        assert self.where.get(device.device, "host") == "host", "attach of a device that is not home"
        self.where[device.device] = pod.netns or "?"
        for hook in self.on_attach:
            hook(device.device)
        return result

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        await super().detach(device, pod, snapshot)
        at = self.where.get(device.device, "host")
        if at in self.gone:  # its netns died: a physical device comes home by itself
            at = "host"
        if at not in ("host", pod.netns):
            raise DeviceError(device.device, "detach", f"neither in {pod.netns} nor on the host")
        self.where[device.device] = "host"


async def _placing_rig(tmp_path: Path, *devices: PreparedDevice) -> tuple[Rig, PlacingMover]:
    mover = PlacingMover()
    return await _rig(tmp_path, *devices, movers=[mover]), mover


async def test_a_new_sandbox_of_the_pod_gets_the_device_from_the_old_one(tmp_path: Path) -> None:
    rig, mover = await _placing_rig(tmp_path, _dev("eth1"))
    await rig.pods.attach_pod(SB1)
    await rig.pods.attach_pod(SB2)  # same pod UID, new sandbox id and netns
    assert mover.where["eth1"] == SB2.netns
    assert [(c[0]) for c in mover.calls] == ["snapshot", "attach", "detach", "snapshot", "attach"]
    st = rig.store.device_state(CLAIM.uid, "eth1")
    assert st is not None and (st.phase, st.sandbox_id, st.netns) == ("attached", "sb-2", SB2.netns)
    # the journal on disk names the sandbox too
    again = ClaimStore(tmp_path / "ckpt.json")
    await again.load()
    assert again.device_state(CLAIM.uid, "eth1") == st
    # a late Stop of the old sandbox leaves the device in the new one
    await rig.pods.detach_pod(SB1)
    assert mover.where["eth1"] == SB2.netns and _phase(rig, "eth1") == "attached"
    await rig.pods.detach_pod(SB2)
    assert mover.where["eth1"] == "host" and _phase(rig, "eth1") == "prepared"


async def test_a_new_sandbox_after_the_old_netns_was_deleted(tmp_path: Path) -> None:
    rig, mover = await _placing_rig(tmp_path, _dev("eth1"))
    await rig.pods.attach_pod(SB1)
    mover.gone.add(SB1.netns or "")
    await rig.pods.attach_pod(SB2)
    assert mover.where["eth1"] == SB2.netns and _phase(rig, "eth1") == "attached"


async def test_a_new_sandbox_does_not_get_a_device_stuck_in_the_old_one(tmp_path: Path) -> None:
    rig, mover = await _placing_rig(tmp_path, _dev("eth1"))
    await rig.pods.attach_pod(SB1)
    mover.where["eth1"] = "/run/netns/elsewhere"  # cannot be found where the journal says
    with pytest.raises(DeviceError, match="earlier sandbox sb-1 and could not be brought home"):
        await rig.pods.attach_pod(SB2)
    st = rig.store.device_state(CLAIM.uid, "eth1")
    assert st is not None and (st.phase, st.sandbox_id) == ("detaching", "sb-1")


async def test_synchronize_moves_the_device_to_a_sandbox_created_while_the_driver_was_down(
    tmp_path: Path,
) -> None:
    rig, mover = await _placing_rig(tmp_path, _dev("eth1"))
    await rig.pods.attach_pod(SB1)
    done = await rig.pods.reconcile([SB2])  # the runtime only knows the new sandbox
    assert done == {"moved": 1}
    assert mover.where["eth1"] == SB2.netns
    st = rig.store.device_state(CLAIM.uid, "eth1")
    assert st is not None and (st.phase, st.sandbox_id) == ("attached", "sb-2")
    # listed again (same sandbox): nothing moves
    assert await rig.pods.reconcile([SB2]) == {"kept": 1}


async def test_synchronize_prefers_the_live_sandbox_when_both_are_listed(tmp_path: Path) -> None:
    rig, mover = await _placing_rig(tmp_path, _dev("eth1"))
    live = attrs.evolve(SB2, netns=str(tmp_path))  # a path that exists
    await rig.pods.attach_pod(SB1)  # its netns path does not exist any more
    assert await rig.pods.reconcile([SB1, live]) == {"moved": 1}
    assert mover.where["eth1"] == live.netns
    assert await rig.pods.reconcile([SB1, live]) == {"kept": 1}


async def test_release_claim_keeps_a_device_that_did_not_come_home(tmp_path: Path) -> None:
    rig, mover = await _placing_rig(tmp_path, _dev("eth1"), _dev("eth2"))
    await rig.pods.attach_pod(SB1)
    mover.where["eth2"] = "/run/netns/recreated"  # the path now names another netns
    with pytest.raises(DeviceError, match=r"device eth2: unprepare: not verifiably back on the host"):
        await rig.pods.release_claim(CLAIM)
    assert mover.where["eth1"] == "host" and _phase(rig, "eth1") == "prepared"
    assert _phase(rig, "eth2") == "detaching"
    # a retry after a restart finishes it once the device can be found
    mover.where["eth2"] = SB1.netns or ""
    rig2 = await _rig(tmp_path, movers=[mover])
    await rig2.pods.release_claim(CLAIM)
    assert _phase(rig2, "eth2") == "prepared" and mover.where["eth2"] == "host"


def _read_only_after(store: ClaimStore, marker: bytes) -> list[bool]:
    """Make every checkpoint write fail once one contains ``marker`` (or the switch is set)."""
    real = store._write
    switch = [False]

    def write(data: bytes) -> None:
        if switch[0] or marker in data:
            switch[0] = True
            raise OSError(30, "Read-only file system")
        real(data)

    store._write = write  # type: ignore[method-assign]
    return switch


async def test_failed_attached_write_still_takes_the_devices_home(tmp_path: Path) -> None:
    from dranet_core.checkpoint import decode_checkpoint
    from dranet_core.errors import CheckpointError

    rig, mover = await _placing_rig(tmp_path, _dev("eth1"), _dev("eth2"))
    switch = _read_only_after(rig.store, b"never")
    mover.on_attach.append(lambda name: switch.__setitem__(0, name == "eth2"))
    with pytest.raises(CheckpointError, match="Read-only file system"):
        await rig.pods.attach_pod(SB1)
    # both devices are home although no journal write after eth2's move succeeded
    assert mover.where == {"eth1": "host", "eth2": "host"}
    assert _phase(rig, "eth1") == "prepared" and _phase(rig, "eth2") == "prepared"
    assert rig.store.dirty
    on_disk = decode_checkpoint((tmp_path / "ckpt.json").read_bytes())[CLAIM.uid].devices
    assert on_disk["eth1"].phase == "attached" and on_disk["eth2"].phase == "attaching"
    switch[0] = False
    rig.store._write = type(rig.store)._write.__get__(rig.store)  # type: ignore[method-assign]
    assert await rig.pods.reconcile([]) == {"kept": 2}  # flushes the kept state first
    on_disk = decode_checkpoint((tmp_path / "ckpt.json").read_bytes())[CLAIM.uid].devices
    assert {d: s.phase for d, s in on_disk.items()} == {"eth1": "prepared", "eth2": "prepared"}


async def test_detach_with_a_read_only_checkpoint_still_brings_the_device_home(tmp_path: Path) -> None:
    rig, mover = await _placing_rig(tmp_path, _dev("eth1"))
    await rig.pods.attach_pod(SB1)
    _read_only_after(rig.store, b"")
    await rig.pods.detach_pod(SB1)  # never raises
    assert mover.where["eth1"] == "host" and _phase(rig, "eth1") == "prepared" and rig.store.dirty


async def test_check_claim_refuses_a_snapshot_its_backend_cannot_read(tmp_path: Path) -> None:
    class Checking(FakeMover):
        def check_snapshot(self, snapshot: JSON) -> None:
            if not isinstance(snapshot, dict) or "name" not in snapshot:
                raise ValueError("netdev snapshot: missing 'name'")

    first = await _rig(tmp_path, _dev("eth1"))
    bad = DeviceState(phase="detaching", pod_uid="pod-1", snapshot={"netdev": {"ifindex": 3}})
    await first.store.set_device_state(CLAIM.uid, "eth1", bad)
    # a restart: the driver builds its parts, then loads the checkpoint
    store = ClaimStore(tmp_path / "ckpt.json")
    mover = Checking()
    PodNetworking(store=store, movers=[("netdev", mover)], driver_name="dra.net", pool="node")
    problem = await store.load()
    assert store.get(CLAIM.uid) is None
    assert problem is not None and problem.claims == (CLAIM.uid,)
    assert "devices.eth1.snapshot.netdev: netdev snapshot: missing 'name'" in problem.reason


@pytest.mark.parametrize(
    ("entry", "pod", "same"),
    [
        (
            DeviceState(phase="attached", pod_uid="pod-1", sandbox_id="sb-1", netns="/a"),
            SB1,
            True,
        ),  # the ids decide when both are known
        (DeviceState(phase="attached", pod_uid="pod-1", sandbox_id="sb-1", netns="/run/netns/a"), SB1, True),
        (
            DeviceState(phase="attached", pod_uid="pod-1", sandbox_id="sb-1", netns="/x"),
            attrs.evolve(SB1, netns="/y"),
            True,
        ),
        (DeviceState(phase="attached", pod_uid="pod-1", sandbox_id="sb-1"), SB2, False),
        (
            DeviceState(phase="attached", pod_uid="pod-1", netns="/run/netns/a"),
            attrs.evolve(SB2, id=""),
            False,
        ),
        (
            DeviceState(phase="attached", pod_uid="pod-1", netns="/run/netns/b"),
            attrs.evolve(SB2, id=""),
            True,
        ),
        (DeviceState(phase="attached", pod_uid="pod-1"), SB2, True),  # an entry from before sandbox ids
        (DeviceState(phase="attached", pod_uid="pod-2", sandbox_id="sb-2"), SB2, False),
    ],
)
def test_same_sandbox(entry: DeviceState, pod: PodSandbox, same: bool) -> None:
    from dranet_core.pods import same_sandbox

    assert same_sandbox(entry, pod) is same


async def test_the_driver_undoes_a_late_run_by_bringing_the_devices_home(tmp_path: Path) -> None:
    from dranet_core.metered import MeteredPodEvents
    from dranet_core.nri.handlers import UndoesLateRun

    rig = await _rig(tmp_path, _dev("eth1"))
    handler = MeteredPodEvents(rig.pods)
    assert isinstance(handler, UndoesLateRun)  # the NRI plugin asks the driver, not stop+remove
    await handler.run_pod_sandbox(POD)
    assert _phase(rig, "eth1") == "attached"
    await handler.undo_late_run_pod_sandbox(POD)
    assert _phase(rig, "eth1") == "prepared"
    assert [c[0] for c in rig.mover.calls][-1] == "detach"
