"""Netdev discovery for real, as root, in throwaway network namespaces; checked with iproute2.

Every namespace is named ``dnt-disc-<random>`` and deleted even when a test fails; tests
only touch links they created inside it. The sysfs root is an empty (or fake) tree in
tmp_path, so the real /sys is never consulted for these links.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from dranet_backends.netdev import NetdevBackend, NetdevFacet, create
from dranet_core.backends import BackendContext
from dranet_core.filter import DEFAULT_FILTER, DeviceFilter
from dranet_core.inventory import Inventory
from dranet_core.status import EventRecord
from dranet_core.types import ClaimRef, Device, DeviceStatus

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN) for network namespaces"),
]


def sh(*args: str, check: bool = True) -> str:
    res = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


class NS:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"

    def ip(self, *args: str, check: bool = True) -> str:
        return sh("ip", "-n", self.name, *args, check=check)

    def batch(self, commands: str) -> None:
        subprocess.run(["ip", "-n", self.name, "-batch", "-"], input=commands, text=True, check=True)

    def links(self) -> dict[str, dict[str, Any]]:
        return {x["ifname"]: x for x in json.loads(self.ip("-j", "-d", "link", "show"))}

    def addrs(self) -> dict[str, list[dict[str, Any]]]:
        return {x["ifname"]: x.get("addr_info", []) for x in json.loads(self.ip("-j", "addr", "show"))}


@pytest.fixture
def ns() -> Iterator[NS]:
    name = f"dnt-disc-{secrets.token_hex(4)}"
    sh("ip", "netns", "add", name)
    try:
        n = NS(name)
        n.ip("link", "set", "lo", "up")
        yield n
    finally:
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture
def nosys(tmp_path: Path) -> Path:
    (tmp_path / "sys").mkdir()
    return tmp_path / "sys"


@pytest.fixture
async def backend(ns: NS, nosys: Path) -> AsyncIterator[NetdevBackend]:
    b = NetdevBackend(sysfs=nosys, netns=ns.path)
    try:
        yield b
    finally:
        b.close()


def by_ifname(devices: Sequence[Device]) -> dict[str, Device]:
    return {str(d.attributes["dra.net/ifName"]): d for d in devices if "dra.net/ifName" in d.attributes}


def expected_type(link: dict[str, Any]) -> str:
    kind = link.get("linkinfo", {}).get("info_kind")
    if not kind:
        return "device"
    return "tuntap" if kind == "tun" else str(kind)


def global_cidrs(addr_info: list[dict[str, Any]], family: str) -> list[str]:
    # global unicast as Go's IsGlobalUnicast: link-local ranges are out whatever their scope
    return sorted(
        f"{a['local']}/{a['prefixlen']}"
        for a in addr_info
        if a["family"] == family
        and a.get("scope") == "global"
        and not a["local"].startswith(("169.254.", "fe80:"))
    )


async def test_attributes_of_every_local_kind_match_iproute2(ns: NS, backend: NetdevBackend) -> None:
    ns.ip("link", "add", "dv0", "type", "veth", "peer", "name", "dv1")
    ns.ip("link", "add", "dmv0", "link", "dv0", "type", "macvlan", "mode", "bridge")
    ns.ip("link", "add", "dbr0", "type", "bridge")
    ns.ip("link", "add", "dvx0", "type", "vxlan", "id", "42", "dstport", "4789", "local", "192.0.2.1")
    ns.ip("tuntap", "add", "dtun0", "mode", "tun")
    ns.ip("link", "add", "difb0", "type", "ifb")
    ns.ip("link", "set", "dv0", "mtu", "1400", "up")
    ns.ip("link", "set", "dv1", "up")
    ns.ip("link", "set", "dmv0", "alias", "my macvlan")
    ns.ip("addr", "add", "192.0.2.10/24", "dev", "dv0")
    ns.ip("addr", "add", "198.51.100.7/25", "dev", "dv0")
    ns.ip("addr", "add", "169.254.3.3/16", "dev", "dv0")  # link-local: not published
    ns.ip("addr", "add", "2001:db8::10/64", "dev", "dv0", "nodad")
    devs = by_ifname(await backend.scan())
    links = ns.links()
    addrs = ns.addrs()
    names = {"dv0", "dv1", "dmv0", "dbr0", "dvx0", "dtun0", "difb0"}
    assert names <= devs.keys()
    assert "lo" not in devs
    for name in names:
        a = devs[name].attributes
        link = links[name]
        assert devs[name].name == name
        assert a["dra.net/ifName"] == name
        assert a["dra.net/mac"] == link.get("address", "")
        assert a["dra.net/mtu"] == link["mtu"]
        assert a["dra.net/encapsulation"] == link["link_type"]
        assert a["dra.net/state"] == link["operstate"].lower()
        assert a["dra.net/type"] == expected_type(link)
        assert a["dra.net/alias"] == link.get("ifalias", "")
        assert a["dra.net/virtual"] is True
        assert a["dra.net/sriov"] is False
        assert a["dra.net/rdma"] is False
        assert a["dra.net/ebpf"] is False
        assert "dra.net/pciAddress" not in a
        v4 = global_cidrs(addrs[name], "inet")
        v6 = global_cidrs(addrs[name], "inet6")
        assert a.get("dra.net/ipv4", "") == ",".join(v4)
        assert a.get("dra.net/ipv6", "") == ",".join(v6)
        facet = NetdevFacet.from_json(devs[name].facets["netdev"])
        assert facet.ifindex == link["ifindex"] and facet.ifname == name
        assert facet.kind == link.get("linkinfo", {}).get("info_kind", "device")
    assert devs["dv0"].attributes["dra.net/ipv4"] == "192.0.2.10/24,198.51.100.7/25"
    assert devs["dtun0"].attributes["dra.net/type"] == "tuntap"
    assert devs["dtun0"].attributes["dra.net/encapsulation"] == "none"
    assert devs["dmv0"].attributes["dra.net/alias"] == "my macvlan"


async def test_ip_list_cut_at_address_boundary(ns: NS, backend: NetdevBackend) -> None:
    ns.ip("link", "add", "dc0", "type", "veth", "peer", "name", "dc1")
    for i in range(10, 22):
        ns.ip("addr", "add", f"10.1.2.{i}/32", "dev", "dc0")
    v4 = by_ifname(await backend.scan())["dc0"].attributes["dra.net/ipv4"]
    assert isinstance(v4, str)
    full = global_cidrs(ns.addrs()["dc0"], "inet")
    assert len(full) == 12
    assert len(v4) <= 64
    parts = v4.split(",")
    assert parts == full[: len(parts)]  # a prefix of the sorted list, whole addresses only
    assert len(",".join(full[: len(parts) + 1])) > 64  # and as many as fit


async def test_uplink_and_children_excluded_and_recomputed(ns: NS, backend: NetdevBackend) -> None:
    # br0 is the v4 uplink with a port; u1 is a lower-metric-loser; u2 carries the v6 default
    ns.ip("link", "add", "dbr0", "type", "bridge")
    ns.ip("link", "add", "dport0", "type", "veth", "peer", "name", "dport1")
    ns.ip("link", "set", "dport0", "master", "dbr0")
    ns.ip("link", "add", "du1", "type", "veth", "peer", "name", "du1p")
    ns.ip("link", "add", "du2", "type", "veth", "peer", "name", "du2p")
    for dev in ("dbr0", "dport0", "du1", "du2"):
        ns.ip("link", "set", dev, "up")
    ns.ip("link", "set", "du1p", "up")
    ns.ip("link", "set", "du2p", "up")
    ns.ip("addr", "add", "192.0.2.1/24", "dev", "dbr0")
    ns.ip("addr", "add", "198.51.100.1/24", "dev", "du1")
    ns.ip("addr", "add", "2001:db8:1::1/64", "dev", "du2", "nodad")
    ns.ip("route", "add", "default", "via", "192.0.2.254", "dev", "dbr0", "metric", "10")
    ns.ip("route", "add", "default", "via", "198.51.100.254", "dev", "du1", "metric", "20")
    ns.ip("-6", "route", "add", "default", "via", "2001:db8:1::fe", "dev", "du2", "metric", "5")
    # a default route in another table is not an uplink
    ns.ip("route", "add", "default", "via", "198.51.100.254", "dev", "du1", "table", "100")
    devs = by_ifname(await backend.scan())
    assert "dbr0" not in devs and "dport0" not in devs and "du2" not in devs
    assert {"du1", "dport1", "du1p", "du2p"} <= devs.keys()
    # the uplink moves: recomputed (the Go driver computes it once)
    ns.ip("route", "del", "default", "via", "192.0.2.254", "dev", "dbr0", "metric", "10")
    devs = by_ifname(await backend.scan())
    assert "du1" not in devs
    assert {"dbr0", "dport0"} <= devs.keys()


async def test_ecmp_and_multipath_uplinks(ns: NS, backend: NetdevBackend) -> None:
    for i in range(4):
        ns.ip("link", "add", f"dm{i}", "type", "veth", "peer", "name", f"dm{i}p")
        ns.ip("link", "set", f"dm{i}", "up")
        ns.ip("addr", "add", f"10.9.{i}.1/24", "dev", f"dm{i}")
    ns.ip(
        "route",
        "add",
        "default",
        "nexthop",
        "via",
        "10.9.0.254",
        "dev",
        "dm0",
        "nexthop",
        "via",
        "10.9.1.254",
        "dev",
        "dm1",
    )
    ns.ip("route", "append", "default", "via", "10.9.3.254", "dev", "dm3", "metric", "50")
    devs = by_ifname(await backend.scan())
    assert "dm0" not in devs and "dm1" not in devs
    assert "dm2" in devs and "dm3" in devs


async def test_builtin_exclusions(ns: NS, backend: NetdevBackend) -> None:
    ns.ip("link", "add", "docker0", "type", "bridge")
    ns.ip("link", "add", "cilium_host", "type", "veth", "peer", "name", "cilium_net")
    ns.ip("link", "add", "dkeep0", "type", "bridge")
    ns.ip("link", "add", "cilium_vxlan", "type", "bridge")  # only cilium_net/cilium_host are left out
    devs = by_ifname(await backend.scan())
    assert "dkeep0" in devs and "cilium_vxlan" in devs
    assert not {"lo", "docker0", "cilium_host", "cilium_net"} & devs.keys()


async def test_odd_interface_names_are_normalised(ns: NS, backend: NetdevBackend) -> None:
    ns.ip("link", "add", "ETH_x", "type", "bridge")
    devs = by_ifname(await backend.scan())
    assert devs["ETH_x"].name.startswith("net-")
    assert devs["ETH_x"].name != "ETH_x"


async def test_create_entry_point_reads_context(ns: NS, nosys: Path) -> None:
    b = create(
        BackendContext(
            node_name="n", sysfs=nosys, host_netns=Path(ns.path), options={"netdev.full_resync": "30"}
        )
    )
    try:
        assert b.name == "netdev" and b.netns == ns.path
        ns.ip("link", "add", "dctx0", "type", "bridge")
        assert "dctx0" in by_ifname(await b.scan())
        assert "full_syncs=1" in repr(b)
    finally:
        b.close()


# -- the watch: events, incremental scans ----------------------------------------------


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[list[Device]] = []
        self.changed = asyncio.Event()

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        self.published.append(list(devices))
        self.changed.set()

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        raise AssertionError("not used")

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        raise AssertionError("not used")

    async def record_event(self, event: EventRecord) -> None:
        raise AssertionError("not used")

    async def run(self) -> None:
        raise AssertionError("not used")


async def wait_until(pred: Any, limit: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def quiet(pub: RecordingPublisher, seconds: float = 0.6) -> int:
    """Wait until no publish happened for ``seconds``; return the publish count."""
    n = -1
    while n != len(pub.published):
        n = len(pub.published)
        await asyncio.sleep(seconds)
    return n


async def run_inventory(inv: Inventory) -> asyncio.Task[None]:
    """The inventory's jobs (watches and the scan loop) as the driver runs them, in one task."""

    async def jobs() -> None:
        await asyncio.gather(*(run() for _, run in inv.jobs()))

    return asyncio.ensure_future(jobs())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_events_lead_to_exactly_one_republish(ns: NS, backend: NetdevBackend) -> None:
    ns.ip("link", "add", "dev0", "type", "veth", "peer", "name", "dev1")
    pub = RecordingPublisher()
    inv = Inventory([backend], pub, filter=DeviceFilter.compile(""), min_interval=0.2, coalesce=0.2)
    task = await run_inventory(inv)
    try:
        await wait_until(
            lambda: pub.published and backend.full_syncs >= 1 and "dev0" in by_ifname(pub.published[-1])
        )
        base = await quiet(pub)
        syncs = backend.full_syncs
        # one change: MTU
        ns.ip("link", "set", "dev0", "mtu", "1280")
        await wait_until(lambda: len(pub.published) > base)
        n = await quiet(pub)
        assert n == base + 1
        assert by_ifname(pub.published[-1])["dev0"].attributes["dra.net/mtu"] == 1280
        # link up + address: a burst of several kernel events, still one publish
        ns.batch("link set dev0 up\naddr add 203.0.113.9/24 dev dev0\n")  # back to back
        await wait_until(lambda: len(pub.published) > n)
        n2 = await quiet(pub)
        assert n2 == n + 1
        d = by_ifname(pub.published[-1])["dev0"].attributes
        assert d["dra.net/ipv4"] == "203.0.113.9/24"
        assert d["dra.net/state"] == json.loads(ns.ip("-j", "link", "show", "dev0"))[0]["operstate"].lower()
        # an event that changes nothing we publish: no publish
        ns.ip("link", "set", "dev0", "mtu", "1280")
        await asyncio.sleep(0.5)
        assert len(pub.published) == n2
        # all handled incrementally: no full re-dump since the watch started
        assert backend.full_syncs == syncs
        # a link going away is noticed
        ns.ip("link", "del", "dev0")
        await wait_until(
            lambda: "dev0" not in by_ifname(pub.published[-1]) and "dev1" not in by_ifname(pub.published[-1])
        )
    finally:
        await stop(task)


async def test_default_filter_and_custom_filter(ns: NS, backend: NetdevBackend) -> None:
    ns.ip("link", "add", "dfv0", "type", "veth", "peer", "name", "dfv1")
    ns.ip("link", "add", "dfmv0", "link", "dfv0", "type", "macvlan", "mode", "bridge")
    ns.ip("link", "add", "dfbr0", "type", "bridge")
    pub = RecordingPublisher()
    inv = Inventory([backend], pub, filter=DeviceFilter.compile(DEFAULT_FILTER))
    view = await inv.refresh()
    assert {"dfmv0", "dfbr0"} <= by_ifname(list(view.published.values())).keys()
    assert not {"dfv0", "dfv1"} & by_ifname(list(view.published.values())).keys()
    assert {"dfv0", "dfv1"} <= by_ifname(list(view.devices.values())).keys()  # unfiltered view
    custom = Inventory(
        [backend],
        pub,
        filter=DeviceFilter.compile(
            '"dra.net/ifName" in attributes && attributes["dra.net/ifName"].StringValue.startsWith("dfv")'
        ),
    )
    view = await custom.refresh()
    assert set(by_ifname(list(view.published.values()))) == {"dfv0", "dfv1"}


async def test_route_change_with_watch_recomputes_uplinks(ns: NS, backend: NetdevBackend) -> None:
    ns.ip("link", "add", "dr0", "type", "veth", "peer", "name", "dr0p")
    ns.ip("link", "add", "dr1", "type", "veth", "peer", "name", "dr1p")
    for d in ("dr0", "dr1", "dr0p", "dr1p"):
        ns.ip("link", "set", d, "up")
    ns.ip("addr", "add", "10.7.0.1/24", "dev", "dr0")
    ns.ip("addr", "add", "10.7.1.1/24", "dev", "dr1")
    ns.ip("route", "add", "default", "via", "10.7.0.254", "dev", "dr0")
    pub = RecordingPublisher()
    inv = Inventory([backend], pub, min_interval=0.1, coalesce=0.05)
    task = await run_inventory(inv)
    try:
        await wait_until(lambda: pub.published and "dr1" in by_ifname(pub.published[-1]))
        assert "dr0" not in by_ifname(pub.published[-1])
        ns.ip("route", "replace", "default", "via", "10.7.1.254", "dev", "dr1")
        await wait_until(lambda: "dr0" in by_ifname(pub.published[-1]))
        assert "dr1" not in by_ifname(pub.published[-1])
    finally:
        await stop(task)


async def test_pinned_device_stays_published_while_in_a_pod(ns: NS, backend: NetdevBackend) -> None:
    pod = f"dnt-disc-{secrets.token_hex(4)}"
    sh("ip", "netns", "add", pod)
    try:
        ns.ip("link", "add", "dpin0", "type", "veth", "peer", "name", "dpin1")
        ns.ip("link", "set", "dpin0", "mtu", "1400")
        pub = RecordingPublisher()
        inv = Inventory([backend], pub, min_interval=0.1, coalesce=0.05)
        task = await run_inventory(inv)
        try:
            await wait_until(lambda: pub.published and "dpin0" in by_ifname(pub.published[-1]))
            before = by_ifname(pub.published[-1])["dpin0"]
            base = await quiet(pub)
            inv.pin(before.name)
            ns.ip("link", "set", "dpin0", "netns", pod)  # what the mover does on attach
            assert "dpin0" not in ns.links()
            await asyncio.sleep(0.5)
            assert len(pub.published) == base  # nothing changed for the cluster
            assert inv.current().published[before.name] == before
            inv.unpin(before.name)  # detach without the device coming back (e.g. a veth died)
            await wait_until(lambda: before.name not in {d.name for d in pub.published[-1]})
        finally:
            await stop(task)
    finally:
        sh("ip", "netns", "del", pod, check=False)


async def test_subinterface_parents_option_publishes_matching_links_as_shareable(ns: NS, nosys: Path) -> None:
    b = create(
        BackendContext(
            node_name="n",
            sysfs=nosys,
            host_netns=Path(ns.path),
            options={"netdev.subinterface_parents": "dsp0, dup*"},
        )
    )
    try:
        for name in ("dsp0", "dup1", "dother"):
            ns.ip("link", "add", name, "type", "bridge")
        devs = by_ifname(await b.scan())
        assert devs["dsp0"].allow_multiple_allocations and devs["dup1"].allow_multiple_allocations
        assert not devs["dother"].allow_multiple_allocations
    finally:
        b.close()


@pytest.mark.parametrize("text", ["", "eth1,", "a b", "x/y", "e" * 65])
def test_subinterface_parents_option_rejects_bad_lists_naming_the_item(text: str) -> None:
    from dranet_backends.netdev import SUBINTERFACE_PARENTS
    from dranet_core.backends import BackendOptionError

    with pytest.raises(
        BackendOptionError, match=r"netdev\.subinterface_parents=.*: must be a ','-separated list"
    ):
        SUBINTERFACE_PARENTS.read(text)
