"""The netdev mover with subinterface devices, for real between throwaway namespaces (root).

A shareable parent (a veth in the node netns) stays home; each claim's device gets its own
macvlan child made in its pod, configured from the claim config, and deleted on detach.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mover_lab import Lab, ipj, sh

from dranet_backends.netdev.child import ChildRecord
from dranet_backends.netdev.mover import NetdevMover
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RouteConfig, SubinterfaceConfig
from dranet_core.errors import DeviceError
from dranet_core.plans import PreparedDevice
from dranet_core.types import PodSandbox

pytestmark = pytest.mark.netns


def cfg(
    name: str = "net1", addr: str = "10.9.0.2/24", hardware_addr: str | None = None, **sub: Any
) -> NetworkConfig:
    return NetworkConfig(
        interface=InterfaceConfig(name=name, addresses=(addr,), mtu=1400, hardware_addr=hardware_addr),
        routes=(RouteConfig(destination="10.9.1.0/24", gateway="10.9.0.1"),),
        subinterface=SubinterfaceConfig(**({"type": "macvlan", "mode": "bridge"} | sub)),
    )


@pytest.fixture
def pod2(lab: Lab) -> Iterator[str]:
    name = f"{lab.prefix}-pod2"
    sh(["ip", "netns", "add", name])
    try:
        yield name
    finally:
        sh(["ip", "netns", "del", name], check=False)


def parent(lab: Lab) -> PreparedDevice:
    lab.veth("up0", "up0p")
    lab.ip(lab.node, "addr", "add", "192.0.2.5/24", "dev", "up0")
    return lab.device("up0")


def sandbox(ns: str, uid: str = "uid-1") -> PodSandbox:
    return PodSandbox(uid=uid, name="pod", namespace="default", netns=f"/run/netns/{ns}")


def links(ns: str) -> dict[str, Any]:
    return {link["ifname"]: link for link in ipj(ns, "-d", "link", "show")}


def with_config(dev: PreparedDevice, config: NetworkConfig) -> PreparedDevice:
    return PreparedDevice(
        pool=dev.pool, device=dev.device, request_names=dev.request_names, config=config, facets=dev.facets
    )


async def test_two_claims_share_a_parent_each_child_in_its_pod(
    lab: Lab, mover: NetdevMover, pod2: str
) -> None:
    up0 = parent(lab)
    a = with_config(up0, cfg(addr="10.9.0.2/24"))
    b = with_config(up0, cfg(addr="10.9.0.3/24", mode="private"))
    snap_a, snap_b = await mover.snapshot(a), await mover.snapshot(b)
    rec_a = ChildRecord.from_json(snap_a)
    assert (rec_a.parent, rec_a.name, rec_a.kind) == ("up0", "net1", "macvlan")
    ra = await mover.attach(a, sandbox(lab.pod), snap_a)
    rb = await mover.attach(b, sandbox(pod2, "uid-2"), snap_b)

    for ns, mode, ip, result in ((lab.pod, "bridge", "10.9.0.2", ra), (pod2, "private", "10.9.0.3", rb)):
        child = links(ns)["net1"]
        assert child["linkinfo"]["info_kind"] == "macvlan"
        assert child["linkinfo"]["info_data"]["mode"] == mode
        assert child["mtu"] == 1400 and "UP" in child["flags"]
        addrs = {a["local"] for a in ipj(ns, "addr", "show", "dev", "net1")[0]["addr_info"]}
        assert ip in addrs and "192.0.2.5" not in addrs  # the parent's address stays with the parent
        routes = {r["dst"] for r in ipj(ns, "route", "show", "dev", "net1")}
        assert "10.9.1.0/24" in routes
        assert result.network_data is not None and result.network_data.interface_name == "net1"
        assert f"{ip}/24" in result.network_data.ips
    assert links(lab.pod)["net1"]["address"] == rec_a.mac  # born with the journalled MAC
    host = links(lab.node)
    assert "UP" in host["up0"]["flags"] and "net1" not in host
    assert "192.0.2.5" in {a["local"] for a in ipj(lab.node, "addr", "show", "dev", "up0")[0]["addr_info"]}

    await mover.detach(a, sandbox(lab.pod), snap_a)
    assert "net1" not in links(lab.pod) and "net1" in links(pod2)
    await mover.detach(b, sandbox(pod2, "uid-2"), snap_b)
    assert "net1" not in links(pod2)
    assert "up0" in links(lab.node)
    await mover.detach(a, sandbox(lab.pod), snap_a)  # again: already gone is success


async def test_failed_step_deletes_the_child_and_keeps_the_parent(lab: Lab) -> None:
    up0 = parent(lab)

    async def hook(device: str, step: str) -> None:
        if step == "routes":
            raise OSError(errno.EIO, "injected")

    m = NetdevMover(host_netns=f"/run/netns/{lab.node}", step_hook=hook)
    try:
        dev = with_config(up0, cfg())
        snap = await m.snapshot(dev)
        with pytest.raises(DeviceError) as err:
            await m.attach(dev, sandbox(lab.pod), snap)
        assert err.value.step == "routes"
    finally:
        await m.aclose()
    assert set(links(lab.pod)) == {"lo"}
    assert "UP" in links(lab.node)["up0"]["flags"]


async def test_crash_mid_attach_then_resume_or_detach(lab: Lab) -> None:
    up0 = parent(lab)

    class Crash(BaseException):
        pass

    async def hook(device: str, step: str) -> None:
        if step == "addresses":
            raise Crash

    dev = with_config(up0, cfg())
    crashing = NetdevMover(host_netns=f"/run/netns/{lab.node}", step_hook=hook)
    try:
        snap = await crashing.snapshot(dev)
        with pytest.raises(Crash):
            await crashing.attach(dev, sandbox(lab.pod), snap)
    finally:
        await crashing.aclose()
    assert "net1" in links(lab.pod)  # half made: the journal's record finds it again

    fresh = NetdevMover(host_netns=f"/run/netns/{lab.node}")
    try:
        await fresh.attach(dev, sandbox(lab.pod), snap)  # resumed: the child is adopted
        assert [n for n in links(lab.pod) if n != "lo"] == ["net1"]
        assert "10.9.0.2" in {a["local"] for a in ipj(lab.pod, "addr", "show", "dev", "net1")[0]["addr_info"]}
        await fresh.detach(dev, sandbox(lab.pod), snap)
    finally:
        await fresh.aclose()
    assert set(links(lab.pod)) == {"lo"}


async def test_name_taken_in_the_pod_fails_and_leaves_that_link(lab: Lab, mover: NetdevMover) -> None:
    up0 = parent(lab)
    lab.ip(lab.pod, "link", "add", "net1", "type", "veth", "peer", "name", "net1p")
    dev = with_config(up0, cfg())
    with pytest.raises(DeviceError, match="the pod already has a veth link named net1") as err:
        await mover.attach(dev, sandbox(lab.pod), await mover.snapshot(dev))
    assert err.value.step == "move"
    assert links(lab.pod)["net1"]["linkinfo"]["info_kind"] == "veth"


async def test_mtu_above_the_parent_is_refused_naming_field_value_and_limit(
    lab: Lab, mover: NetdevMover
) -> None:
    up0 = parent(lab)
    dev = with_config(
        up0,
        NetworkConfig(
            interface=InterfaceConfig(mtu=9000),
            subinterface=SubinterfaceConfig(type="macvlan", mode="bridge"),
        ),
    )
    with pytest.raises(
        DeviceError, match=r"interface\.mtu 9000 is above the MTU 1500 of the subinterface parent up0"
    ):
        await mover.attach(dev, sandbox(lab.pod), await mover.snapshot(dev))
    assert set(links(lab.pod)) == {"lo"}


async def test_two_children_with_one_configured_mac_the_second_fails_naming_it(
    lab: Lab, mover: NetdevMover, pod2: str
) -> None:
    up0 = parent(lab)
    same = cfg(hardware_addr="02:00:00:00:00:42")
    a, b = with_config(up0, same), with_config(up0, same)
    await mover.attach(a, sandbox(lab.pod), await mover.snapshot(a))
    with pytest.raises(DeviceError, match="another macvlan child of up0 already uses this MAC") as err:
        await mover.attach(b, sandbox(pod2, "uid-2"), await mover.snapshot(b))
    assert err.value.step == "up"
    assert "net1" not in links(pod2) and "net1" in links(lab.pod)


async def test_netns_gone_means_the_child_is_gone(lab: Lab, mover: NetdevMover, pod2: str) -> None:
    up0 = parent(lab)
    dev = with_config(up0, cfg())
    snap = await mover.snapshot(dev)
    await mover.attach(dev, sandbox(pod2, "uid-2"), snap)
    sh(["ip", "netns", "del", pod2])
    await mover.detach(dev, sandbox(pod2, "uid-2"), snap)  # verifiably gone: no error
    assert "up0" in links(lab.node)


async def test_missing_parent_is_one_clear_error(lab: Lab, mover: NetdevMover) -> None:
    up0 = parent(lab)
    dev = with_config(up0, cfg())
    snap = await mover.snapshot(dev)
    lab.ip(lab.node, "link", "del", "up0")
    with pytest.raises(DeviceError, match="subinterface parent up0 is not on the host"):
        await mover.attach(dev, sandbox(lab.pod), snap)
    assert set(links(lab.pod)) == {"lo"}


async def test_ipvlan_record_uses_the_parent_mac_and_real_attach_where_supported(
    lab: Lab, mover: NetdevMover
) -> None:
    up0 = parent(lab)
    dev = with_config(up0, cfg(type="ipvlan", mode="l2", flag="bridge"))
    snap = await mover.snapshot(dev)
    rec = ChildRecord.from_json(snap)
    assert rec.mac == links(lab.node)["up0"]["address"] and rec.kind == "ipvlan"
    try:
        await mover.attach(dev, sandbox(lab.pod), snap)
    except DeviceError as exc:
        if "no ipvlan support" in str(exc):
            assert set(links(lab.pod)) == {"lo"}
            pytest.skip("probe: this kernel has no ipvlan (RTM_NEWLINK answers EOPNOTSUPP)")
        raise
    assert links(lab.pod)["net1"]["linkinfo"]["info_kind"] == "ipvlan"
    await mover.detach(dev, sandbox(lab.pod), snap)
    assert set(links(lab.pod)) == {"lo"}


def test_record_json_round_trips_and_bad_records_are_named() -> None:
    rec = ChildRecord(
        kind="macvlan",
        mode="bridge",
        flag=None,
        parent="up0",
        parent_index=3,
        parent_mac="",
        name="n",
        mac="02:00:00:00:00:01",
    )
    assert ChildRecord.from_json(rec.to_json()) == rec
    bad = rec.to_json()
    bad["subinterface"]["parent_index"] = "3"
    with pytest.raises(ValueError, match="parent_index '3' has the wrong type"):
        ChildRecord.from_json(bad)
    with pytest.raises(ValueError, match="version 9"):
        ChildRecord.from_json({**rec.to_json(), "version": 9})


async def _hold(ns: str) -> asyncio.subprocess.Process:
    """A process inside ``ns`` that keeps it alive after its path is removed."""
    holder = await asyncio.create_subprocess_exec("ip", "netns", "exec", ns, "sleep", "120")
    inside, path = Path(f"/proc/{holder.pid}/ns/net"), Path(f"/run/netns/{ns}")
    for _ in range(500):
        if os.stat(inside).st_ino == os.stat(path).st_ino:
            return holder
        await asyncio.sleep(0.01)
    raise AssertionError("the holder never entered the namespace")


def held_links(holder: asyncio.subprocess.Process) -> list[str]:
    out = sh(["nsenter", f"--net=/proc/{holder.pid}/ns/net", "ip", "-j", "link", "show"])
    return [x["ifname"] for x in json.loads(out)]


async def test_netns_path_gone_but_alive_the_unique_child_is_deleted_there(
    lab: Lab, mover: NetdevMover, pod2: str
) -> None:
    up0 = parent(lab)
    dev = with_config(up0, cfg())
    snap = await mover.snapshot(dev)
    assert ChildRecord.from_json(snap).unique_mac
    await mover.attach(dev, sandbox(pod2, "uid-2"), snap)
    holder = await _hold(pod2)
    try:
        sh(["ip", "netns", "del", pod2])
        await mover.detach(dev, sandbox(pod2, "uid-2"), snap)
        assert held_links(holder) == ["lo"]
    finally:
        holder.kill()
        await holder.wait()


async def test_netns_path_gone_a_child_not_unique_by_mac_is_left_alone(
    lab: Lab, mover: NetdevMover, pod2: str
) -> None:
    """A configured MAC (or an ipvlan's, the parent's) may be carried by another link: when
    the pod's path is gone, a child like it elsewhere cannot be told from the other, so
    nothing is deleted (and the detach does not fail)."""
    up0 = parent(lab)
    mac = "02:00:00:00:00:42"
    dev = with_config(up0, cfg(hardware_addr=mac))
    snap = await mover.snapshot(dev)
    assert not ChildRecord.from_json(snap).unique_mac
    await mover.attach(dev, sandbox(pod2, "uid-2"), snap)
    lab.veth("up1", "up1p")  # another parent, whose child in the other pod has the same MAC
    lab.ip(
        lab.node, "link", "add", "net1", "link", "up1", "netns", lab.pod, "address", mac, "type", "macvlan"
    )
    holder = await _hold(pod2)
    try:
        sh(["ip", "netns", "del", pod2])
        await mover.detach(dev, sandbox(pod2, "uid-2"), snap)
        assert "net1" in held_links(holder) and "net1" in links(lab.pod)  # nothing guessed
    finally:
        holder.kill()
        await holder.wait()
