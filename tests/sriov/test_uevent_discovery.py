"""Event-driven SR-IOV and RDMA discovery: kernel uevents in the kernel's format, fake sysfs trees.

The watchers get their uevents from a queue of datagrams built as the kernel sends them
(``ACTION@DEVPATH\\0KEY=VALUE\\0...``), with the periodic resync set to an hour so only
uevents can explain a notification. No timing: each step waits until the watcher asks for
the next batch (it has fully handled the previous one). The real socket is opened in a
throwaway network namespace, where creating a veth pair must produce its ``add`` events.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sriov_fakes import FakeSysfs, sriov_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "rdma"))
from rdma_helpers import add_pci, add_rdma

from dranet_backends.netns import call_in_netns_at
from dranet_backends.pci import PciIds
from dranet_backends.rdma import RdmaBackend
from dranet_backends.sriov import SriovBackend
from dranet_backends.uevent import Uevent, UeventSource, parse_uevent, watch_sysfs

HOUR = 3600.0


def uevent(action: str, devpath: str, subsystem: str, seq: int, **env: str) -> bytes:
    """A datagram exactly as the kernel multicasts it on NETLINK_KOBJECT_UEVENT group 1."""
    fields = {"ACTION": action, "DEVPATH": devpath, "SUBSYSTEM": subsystem, **env, "SEQNUM": str(seq)}
    return f"{action}@{devpath}\0".encode() + b"".join(f"{k}={v}\0".encode() for k, v in fields.items())


class QueueStream:
    """A uevent source fed by the test; ``idle`` is set when the watcher waits for the next batch."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[bytes | None]] = asyncio.Queue()
        self.idle = asyncio.Event()
        self.closed = False

    async def batch(self) -> list[Uevent | None]:
        if self.queue.empty():
            self.idle.set()
        raw = await self.queue.get()
        self.idle.clear()
        return [None if d is None else parse_uevent(d) for d in raw]

    def close(self) -> None:
        self.closed = True

    async def send(self, *datagrams: bytes | None) -> None:
        """Deliver one batch and wait until the watcher has handled it."""
        self.idle.clear()
        await self.queue.put(list(datagrams))
        await self.idle.wait()


def test_parse_reads_the_kernel_format_and_ignores_udev_and_garbage() -> None:
    raw = uevent(
        "bind", "/devices/pci0000:00/0000:00:03.2", "pci", 4242, DRIVER="vfio-pci", PCI_ID="8086:10ED"
    )
    ev = parse_uevent(raw)
    assert ev == Uevent(
        action="bind",
        devpath="/devices/pci0000:00/0000:00:03.2",
        env={
            "ACTION": "bind",
            "DEVPATH": "/devices/pci0000:00/0000:00:03.2",
            "SUBSYSTEM": "pci",
            "DRIVER": "vfio-pci",
            "PCI_ID": "8086:10ED",
            "SEQNUM": "4242",
        },
    )
    assert ev is not None and ev.subsystem == "pci"
    assert parse_uevent(b"libudev\0\xfe\xed\xca\xfe" + raw) is None  # udev's re-broadcast (group 2)
    assert parse_uevent(b"no at sign\0") is None
    assert parse_uevent(b"add@relative/path\0") is None
    assert parse_uevent(b"add@/devices/x\0ACTION=remove\0") is None  # inconsistent header
    assert parse_uevent(b"") is None


@pytest.fixture
def fs(tmp_path: Path) -> FakeSysfs:
    f = FakeSysfs(tmp_path / "sys")
    sriov_node(f)
    return f


@pytest.fixture
async def sriov_watch(fs: FakeSysfs) -> AsyncIterator[tuple[SriovBackend, QueueStream, asyncio.Queue[int]]]:
    stream = QueueStream()
    b = SriovBackend(sysfs=fs.root, pci_ids=PciIds(paths=()), poll_interval=HOUR, uevents=lambda: stream)
    notes: asyncio.Queue[int] = asyncio.Queue()
    task = asyncio.create_task(b.watch(lambda: notes.put_nowait(b.polls)))
    await notes.get()  # at start
    await stream.idle.wait()
    try:
        yield b, stream, notes
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stream.closed


async def test_a_vf_created_through_sriov_numvfs_is_seen_on_its_uevent(
    fs: FakeSysfs, sriov_watch: tuple[SriovBackend, QueueStream, asyncio.Queue[int]]
) -> None:
    b, stream, notes = sriov_watch
    # echo 3 > sriov_numvfs: the kernel adds VF 2, the VF driver binds, its netdev appears
    (fs.dev("0000:00:03.0") / "sriov_numvfs").write_text("3\n")
    fs.add("0000:00:03.3", driver="ixgbevf", group=14, pf="0000:00:03.0", vf_index=2, netdev="eth3")
    pci = "/devices/pci0000:00/0000:00:03.3"
    await stream.send(
        uevent("add", pci, "pci", 10, PCI_SLOT_NAME="0000:00:03.3"),
        uevent("bind", pci, "pci", 11, DRIVER="ixgbevf"),
        uevent("add", pci + "/net/eth3", "net", 12, INTERFACE="eth3", IFINDEX="9"),
    )
    assert notes.qsize() == 1  # one check for the whole burst, and it saw the change
    names = {d.name: d for d in await b.scan()}
    assert names["pci-0000-00-03-3"].attributes["dra.net/sriovVfIndex"] == 2
    assert names["pci-0000-00-03-3"].facets["sriov"]["driver"] == "ixgbevf"


async def test_a_rebind_to_vfio_pci_is_seen_on_its_uevent(
    fs: FakeSysfs, sriov_watch: tuple[SriovBackend, QueueStream, asyncio.Queue[int]]
) -> None:
    b, stream, notes = sriov_watch
    pci = "/devices/pci0000:00/0000:00:03.2"
    (fs.dev("0000:00:03.2") / "net" / "eth2" / "mtu").unlink()
    (fs.dev("0000:00:03.2") / "net" / "eth2").rmdir()
    fs.bind("0000:00:03.2", "vfio-pci")
    await stream.send(
        uevent("remove", pci + "/net/eth2", "net", 20, INTERFACE="eth2"),
        uevent("unbind", pci, "pci", 21),
        uevent("bind", pci, "pci", 22, DRIVER="vfio-pci"),
    )
    assert notes.qsize() == 1
    dev = {d.name: d for d in await b.scan()}["pci-0000-00-03-2"]
    assert dev.attributes["dra.net/vfio"] is True


async def test_irrelevant_uevents_cause_no_sysfs_read_and_a_lost_event_forces_one(
    fs: FakeSysfs, sriov_watch: tuple[SriovBackend, QueueStream, asyncio.Queue[int]]
) -> None:
    b, stream, notes = sriov_watch
    polls = b.polls
    fs.bind("0000:00:03.2", "vfio-pci")  # changed, but the only event is about a disk
    await stream.send(uevent("change", "/devices/virtual/block/loop0", "block", 30))
    assert (b.polls, notes.qsize()) == (polls, 0)
    await stream.send(None)  # the socket overran: events were lost
    assert (b.polls, notes.qsize()) == (polls + 1, 1)
    await stream.send(uevent("change", "/devices/pci0000:00/0000:00:03.0", "pci", 31))
    assert (b.polls, notes.qsize()) == (polls + 2, 1)  # checked; nothing new: no notification


async def test_an_rdma_device_appearing_is_seen_on_its_uevent(tmp_path: Path) -> None:
    add_rdma(tmp_path, "mlx5_0", pci=add_pci(tmp_path, "0000:08:00.0", netdevs=["eth1"]))
    stream = QueueStream()
    never = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await never.wait()  # the periodic resync never comes round in this test

    b = RdmaBackend(sysfs=tmp_path, poll_interval=HOUR, sleep=sleep, uevents=lambda: stream)
    notes: list[int] = []
    task = asyncio.create_task(b.watch(lambda: notes.append(1)))
    try:
        await stream.idle.wait()
        add_rdma(tmp_path, "mlx5_1", pci=add_pci(tmp_path, "0000:08:00.1"))
        await stream.send(
            uevent("add", "/devices/pci0000:00/0000:08:00.1/infiniband/mlx5_1", "infiniband", 40)
        )
        assert notes == [1]
        assert "pci-0000-08-00-1" in {d.name for d in await b.scan()}
        await stream.send(uevent("add", "/devices/virtual/net/veth0", "net", 41, INTERFACE="veth0"))
        assert notes == [1]  # checked, nothing changed
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_without_uevents_the_watch_still_polls() -> None:
    def refuse() -> QueueStream:
        raise PermissionError(13, "Permission denied")

    checks: list[int] = []
    notes: list[int] = []
    second = asyncio.Event()

    async def check() -> bool:
        checks.append(1)
        if len(checks) == 2:
            second.set()
        return len(checks) == 1

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    task = asyncio.create_task(
        watch_sysfs(
            "t",
            check,
            lambda: notes.append(1),
            relevant=lambda e: True,
            interval=HOUR,
            open_source=refuse,
            sleep=sleep,
        )
    )
    await second.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert notes == [1]


async def test_a_failing_uevent_socket_falls_back_to_polling() -> None:
    class Broken(QueueStream):
        async def batch(self) -> list[Uevent | None]:
            raise OSError(9, "Bad file descriptor")

    stream = Broken()
    checks: list[int] = []
    third = asyncio.Event()

    async def check() -> bool:
        checks.append(1)
        if len(checks) == 3:
            third.set()
        return False

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    task = asyncio.create_task(
        watch_sysfs(
            "t",
            check,
            lambda: None,
            relevant=lambda e: True,
            interval=HOUR,
            open_source=lambda: stream,
            sleep=sleep,
        )
    )
    await third.wait()  # the poll kept going after the socket failed
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.closed


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("probe euid==0 failed: a throwaway network namespace needs root")
    name = f"dranet-ue-{uuid.uuid4().hex[:8]}"
    _ip("netns", "add", name)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


async def test_the_real_socket_delivers_kernel_uevents(netns: str) -> None:
    try:
        source = call_in_netns_at(f"/run/netns/{netns}", UeventSource.open)
    except PermissionError as exc:
        pytest.skip(f"probe NETLINK_KOBJECT_UEVENT bind failed: {exc}")
    veth = f"ue{uuid.uuid4().hex[:8]}"
    try:
        _ip("-n", netns, "link", "add", veth, "type", "veth", "peer", "name", veth + "p")
        seen: list[Uevent] = []

        async def until_added() -> None:
            while not any(e.action == "add" and e.env.get("INTERFACE") == veth for e in seen):
                seen.extend(e for e in await source.batch() if e is not None)

        await asyncio.wait_for(until_added(), 30)  # a hang guard, not a speed check
        ev = next(e for e in seen if e.env.get("INTERFACE") == veth)
        assert ev.subsystem == "net" and ev.devpath.endswith(f"/net/{veth}")
        assert ev.env["SEQNUM"].isdigit()
    finally:
        source.close()
