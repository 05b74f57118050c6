"""The generic inventory loop, with fake backends, a fake publisher and a virtual clock."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from dranet_core.filter import DEFAULT_FILTER, DeviceFilter
from dranet_core.inventory import Inventory, TokenBucket
from dranet_core.pinstore import PinStore
from dranet_core.status import EventRecord
from dranet_core.supervisor import Job, always_recoverable, guard
from dranet_core.types import AttributeList, ClaimRef, Device, DeviceStatus, Version


class FakeClock:
    """Virtual time: sleep() returns when advance() moves time past its deadline."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self.t + seconds, fut))
        try:
            await fut
        finally:
            self._waiters = [(d, f) for d, f in self._waiters if f is not fut]

    async def advance(self, seconds: float, step: float = 0.01) -> None:
        end = self.t + seconds
        while True:
            await settle()
            due = [d for d, f in self._waiters if not f.done()]
            nxt = min(due, default=None)
            if nxt is None or nxt > end:
                break
            self.t = max(self.t, nxt)
            for d, f in self._waiters:
                if d <= self.t and not f.done():
                    f.set_result(None)
        self.t = end
        await settle()


async def settle(n: int = 30) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


class FakeDiscovery:
    def __init__(self, devices: Sequence[Device] = ()) -> None:
        self.devices = list(devices)
        self.scans = 0
        self.notify: Callable[[], None] | None = None
        self.watch_calls = 0
        self.fail_watch = 0
        self.fail_scan = False

    async def scan(self) -> Sequence[Device]:
        self.scans += 1
        if self.fail_scan:
            raise RuntimeError("scan broke")
        return list(self.devices)

    async def watch(self, notify: Callable[[], None]) -> None:
        self.watch_calls += 1
        if self.fail_watch:
            self.fail_watch -= 1
            raise RuntimeError("watch broke")
        self.notify = notify
        await asyncio.Event().wait()


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[list[Device]] = []

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        self.published.append(list(devices))

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        raise AssertionError("not used")

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        raise AssertionError("not used")

    async def record_event(self, event: EventRecord) -> None:
        raise AssertionError("not used")

    async def run(self) -> None:
        raise AssertionError("not used")


def dev(name: str, **attrs: object) -> Device:
    return Device(
        name=name,
        attributes={f"dra.net/{k}": v for k, v in attrs.items()},
        facets={"fake": {"n": name}},
    )


class Harness:
    def __init__(self, inv: Inventory, clock: FakeClock, pub: FakePublisher, backends: list[FakeDiscovery]):
        self.inv, self.clock, self.pub, self.backends = inv, clock, pub, backends


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Harness]]:
    tasks: list[asyncio.Task[None]] = []

    def _make(*backends: FakeDiscovery, **kw: object) -> Harness:
        clock = FakeClock()
        pub = FakePublisher()
        inv = Inventory(list(backends), pub, clock=clock, **kw)  # type: ignore[arg-type]
        # the inventory's jobs, each under the driver's one retry policy (supervisor.guard)
        for name, run in inv.jobs():
            job = Job(name=name, run=run, recoverable=always_recoverable)
            tasks.append(asyncio.ensure_future(guard(job, clock=clock)))
        return Harness(inv, clock, pub, list(backends))

    yield _make
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_first_scan_publishes_even_when_empty(make: Callable[..., Harness]) -> None:
    h = make(FakeDiscovery([]))
    await settle()
    assert h.pub.published == [[]]


async def test_no_change_publishes_nothing(make: Callable[..., Harness]) -> None:
    d = FakeDiscovery([dev("a", mtu=1500)])
    h = make(d)
    await settle()
    assert len(h.pub.published) == 1
    for _ in range(3):
        h.inv.request_rescan()
        await h.clock.advance(3.0)
    await h.clock.advance(200.0)  # several resyncs
    assert d.scans >= 6
    assert len(h.pub.published) == 1


async def test_change_publishes_once_and_current_reflects_it(make: Callable[..., Harness]) -> None:
    d = FakeDiscovery([dev("a", mtu=1500)])
    h = make(d)
    await settle()
    d.devices = [dev("a", mtu=9000), dev("b", mtu=1500)]
    assert d.notify is not None
    d.notify()
    await h.clock.advance(0.1)
    assert len(h.pub.published) == 2
    assert [x.name for x in h.pub.published[-1]] == ["a", "b"]
    assert h.inv.current().devices["a"].attributes["dra.net/mtu"] == 9000


async def test_burst_of_notifications_is_coalesced(make: Callable[..., Harness]) -> None:
    d = FakeDiscovery([dev("a")])
    h = make(d)
    await settle()
    assert d.scans == 1 and d.notify is not None
    for i in range(20):
        d.devices = [dev("a", mtu=1000 + i)]
        d.notify()
        await h.clock.advance(0.001)
    await h.clock.advance(0.1)
    assert d.scans == 2
    assert len(h.pub.published) == 2
    assert h.pub.published[-1][0].attributes["dra.net/mtu"] == 1019


async def test_rate_limit_burst_then_interval(make: Callable[..., Harness]) -> None:
    d = FakeDiscovery([dev("a")])
    h = make(d, min_interval=2.0, burst=5, coalesce=0.0)
    await settle()
    assert d.notify is not None
    # keep notifying as fast as possible for 10 virtual seconds
    for _ in range(1000):
        d.notify()
        await h.clock.advance(0.01)
    # 5 tokens at start, plus one per 2 s over 10 s
    assert 9 <= d.scans <= 11, d.scans


async def test_periodic_resync_without_events(make: Callable[..., Harness]) -> None:
    d = FakeDiscovery([dev("a")])
    h = make(d, resync=60.0)
    await settle()
    assert d.scans == 1
    await h.clock.advance(59.0)
    assert d.scans == 1
    await h.clock.advance(1.5)
    assert d.scans == 2
    d.devices = [dev("a"), dev("z")]  # a change found only by the resync
    await h.clock.advance(60.0)
    assert d.scans == 3
    assert [x.name for x in h.pub.published[-1]] == ["a", "z"]


async def test_devices_merged_across_backends(make: Callable[..., Harness]) -> None:
    netdev = FakeDiscovery([dev("pci-0000-00-03-0", ifName="eth1", rdma=False)])
    rdma = FakeDiscovery(
        [
            Device(
                name="pci-0000-00-03-0",
                attributes={"dra.net/rdma": True},
                facets={"rdma": {"link": "mlx5_0"}},
            )
        ]
    )
    h = make(netdev, rdma)
    await settle()
    (only,) = h.pub.published[-1]
    assert only.attributes["dra.net/ifName"] == "eth1"
    assert only.attributes["dra.net/rdma"] is True  # later backend wins
    assert set(only.facets) == {"fake", "rdma"}


async def test_filter_applies_to_published_not_to_devices(make: Callable[..., Harness]) -> None:
    d = FakeDiscovery([dev("veth1", type="veth"), dev("eth1", type="device"), dev("ib", rdma=True)])
    h = make(d, filter=DeviceFilter.compile(DEFAULT_FILTER))
    await settle()
    assert [x.name for x in h.pub.published[-1]] == ["eth1", "ib"]
    view = h.inv.current()
    assert set(view.devices) == {"veth1", "eth1", "ib"}
    assert set(view.published) == {"eth1", "ib"}


async def test_pinned_device_stays_published_with_last_attributes(make: Callable[..., Harness]) -> None:
    d = FakeDiscovery([dev("eth1", ifName="eth1", mtu=1500), dev("eth2", ifName="eth2")])
    h = make(d)
    await settle()
    h.inv.pin("eth1")
    d.devices = [dev("eth2", ifName="eth2")]  # eth1 moved into a pod
    h.inv.request_rescan()
    await h.clock.advance(0.1)
    assert len(h.pub.published) == 1  # nothing changed for the cluster
    assert h.inv.current().devices["eth1"].attributes["dra.net/mtu"] == 1500
    h.inv.unpin("eth1")
    await h.clock.advance(0.1)
    assert [x.name for x in h.pub.published[-1]] == ["eth2"]


async def test_pinned_pci_device_keeps_netdev_attributes(make: Callable[..., Harness]) -> None:
    full = dev("pci-0000-00-03-0", pciAddress="0000:00:03.0", ifName="eth1", mtu=1500)
    d = FakeDiscovery([full])
    h = make(d)
    await settle()
    h.inv.pin("pci-0000-00-03-0")
    # the netdev left; PCI identity is still seen, with a live attribute that changed
    d.devices = [dev("pci-0000-00-03-0", pciAddress="0000:00:03.0", numaNode=1)]
    h.inv.request_rescan()
    await h.clock.advance(0.1)
    got = h.inv.current().published["pci-0000-00-03-0"]
    assert got.attributes["dra.net/ifName"] == "eth1"  # filled from the last known device
    assert got.attributes["dra.net/numaNode"] == 1  # live wins/adds
    assert len(h.pub.published) == 2


async def test_pin_before_device_known(make: Callable[..., Harness]) -> None:
    d = FakeDiscovery([])
    h = make(d)
    await settle()
    h.inv.pin("late")
    d.devices = [dev("late", mtu=1)]
    h.inv.request_rescan()
    await h.clock.advance(0.1)
    d.devices = []
    h.inv.request_rescan()
    await h.clock.advance(3.0)
    assert "late" in h.inv.current().published


async def test_failing_watch_is_restarted_with_backoff(make: Callable[..., Harness]) -> None:
    d = FakeDiscovery([dev("a")])
    d.fail_watch = 3
    h = make(d)
    await settle()
    assert d.watch_calls == 1  # not restarted at once: it waits its backoff
    await h.clock.advance(10.0)  # three backoffs of at most 0.5 s, 1 s and 2 s
    assert d.watch_calls == 4
    assert d.notify is not None  # finally running


async def test_failing_scan_does_not_stop_loop(make: Callable[..., Harness]) -> None:
    d = FakeDiscovery([dev("a")])
    d.fail_scan = True
    h = make(d)
    await settle()
    assert h.pub.published == []
    d.fail_scan = False
    h.inv.request_rescan()
    await h.clock.advance(1.0)  # the supervisor restarts the loop after its first backoff
    assert [x.name for x in h.pub.published[-1]] == ["a"]


async def test_refresh_without_publishing() -> None:
    pub = FakePublisher()
    inv = Inventory([FakeDiscovery([dev("a")])], pub, clock=FakeClock())
    view = await inv.refresh(publish=False)
    assert set(view.devices) == {"a"} and pub.published == []
    await inv.refresh()
    await inv.refresh()
    assert len(pub.published) == 1
    assert "scans=3, publishes=1" in repr(inv)
    assert "devices=1" in repr(inv)


def test_token_bucket_refills() -> None:
    c = FakeClock()
    b = TokenBucket(2.0, 5, c)
    assert b.tokens == 5.0
    c.t += 100
    assert b.tokens == 5.0  # capped at burst
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1.0, 0, c)


def test_invalid_settings_rejected() -> None:
    with pytest.raises(ValueError, match="resync"):
        Inventory([], FakePublisher(), resync=0)


async def test_a_pinned_device_is_published_unchanged_by_the_next_run(
    make: Callable[..., Harness], tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "pins.json"
    d = FakeDiscovery([dev("eth1", ifName="eth1", mtu=1500), dev("eth2", ifName="eth2")])
    h = make(d, pin_store=PinStore(path))
    await settle()
    before = h.pub.published[-1]
    h.inv.pin("eth1")
    # the driver restarts while eth1 is in a pod: the backend no longer reports it
    d2 = FakeDiscovery([dev("eth2", ifName="eth2")])
    h2 = make(d2, pin_store=PinStore(path))
    h2.inv.hold_only({"eth1"})
    await settle()
    assert h2.pub.published[0] == before
    h2.inv.unpin("eth1")
    assert json.loads(path.read_text()) == {"devices": {}}


def test_attribute_kinds_round_trip(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pins.json"
    d = Device(
        name="eth1",
        attributes={
            "dra.net/a": True,
            "dra.net/b": 7,
            "dra.net/c": "x",
            "dra.net/d": Version("1.2.3"),
            "dra.net/e": AttributeList((1, 0)),
            "dra.net/f": AttributeList((Version("1.0.0"),)),
        },
        capacity={"dra.net/bw": "10G"},
        facets={"netdev": {"ifindex": 3}},
    )
    PinStore(path).save({"eth1": d})
    assert PinStore(path).load() == {"eth1": d}


@pytest.mark.parametrize(
    "content", [b"{not json", b"[]", b'{"devices": {"eth1": {"attributes": {"dra.net/a": {"float": 1.5}}}}}']
)
def test_a_bad_file_is_one_line_and_ignored(
    tmp_path: pathlib.Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "pins.json"
    path.write_bytes(content)
    assert PinStore(path).load() == {}
    [record] = caplog.records
    assert str(path) in record.getMessage() and "ignored" in record.getMessage()


def test_shareable_flag_round_trips_through_the_pin_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "pins.json"
    shared = Device(name="eth1", attributes={"dra.net/a": True}, allow_multiple_allocations=True)
    PinStore(path).save({"eth1": shared, "eth2": Device(name="eth2")})
    assert PinStore(path).load() == {"eth1": shared, "eth2": Device(name="eth2")}


NUMA = "resource.kubernetes.io/numaNode"


@pytest.mark.parametrize("lists", [False, True])
async def test_list_attributes_are_published_as_lists_only_with_the_gate(
    make: Callable[..., Harness], lists: bool
) -> None:
    numa = Device(name="eth1", attributes={NUMA: AttributeList((1, 0)), "dra.net/mtu": 1500})
    # the filter sees the published form too
    expr = f'"{NUMA}" in attributes && attributes["{NUMA}"].IntValues != null'
    h = make(FakeDiscovery([numa]), list_attributes=lists)
    await settle()
    (published,) = h.pub.published[-1]
    assert published.attributes[NUMA] == (AttributeList((1, 0)) if lists else 1)
    assert published.attributes["dra.net/mtu"] == 1500
    assert h.inv.current().devices["eth1"] == published
    assert DeviceFilter.compile(expr).matches(published) is lists


async def test_a_pinned_device_follows_the_gate_too(
    make: Callable[..., Harness], tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "pins.json"
    numa = Device(name="eth1", attributes={NUMA: AttributeList((1, 0))})
    h = make(FakeDiscovery([numa]), pin_store=PinStore(path), list_attributes=True)
    await settle()
    h.inv.pin("eth1")
    await settle()
    # restarted without the gate while the device is in a pod: the saved list is published as a scalar
    h2 = make(FakeDiscovery([]), pin_store=PinStore(path))
    h2.inv.hold_only({"eth1"})
    await settle()
    assert [d.attributes[NUMA] for d in h2.pub.published[-1]] == [1]
