"""The netdev mover for real, between throwaway node and pod namespaces (root only)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from pathlib import Path

import pytest
from mover_lab import (
    Lab,
    ethtool_k,
    host_state,
    in_ns,
    ipj,
    raw_link_sizes,
    sh,
    sysctl_get,
    tcx_attach,
    tcx_count,
)

from dranet_backends.netdev.mover import ATTACH_STEPS, NetdevMover, temp_name
from dranet_core.config.model import (
    EthtoolConfig,
    InterfaceConfig,
    NeighborConfig,
    NetworkConfig,
    RouteConfig,
    RuleConfig,
    VRFConfig,
)
from dranet_core.errors import DeviceError, DeviceNotFoundError
from dranet_core.plans import PreparedDevice

pytestmark = pytest.mark.netns


def _rich_host(lab: Lab, name: str = "hv0") -> None:
    """A host device with addresses, routes (main + table 100), a rule, a neighbour,
    non-default sysctls and a changed offload: what the Go driver loses (#42)."""
    lab.veth(name, f"{name}p")
    lab.ip(lab.node, "addr", "add", "192.0.2.5/24", "dev", name)
    lab.ip(lab.node, "addr", "add", "2001:db8::5/64", "dev", name, "nodad")
    lab.ip(lab.node, "route", "add", "198.51.100.0/24", "via", "192.0.2.1", "dev", name)
    lab.ip(lab.node, "route", "add", "203.0.113.0/24", "via", "192.0.2.1", "dev", name, "table", "100")
    lab.ip(lab.node, "rule", "add", "from", "192.0.2.5", "table", "100", "priority", "100")
    lab.ip(
        lab.node, "neigh", "add", "192.0.2.9", "lladdr", "02:00:00:00:00:09", "dev", name, "nud", "permanent"
    )
    lab.ip(lab.node, "link", "set", name, "mtu", "1450")
    in_ns(lab.node, "sysctl", "-qw", f"net.ipv4.conf.{name}.arp_announce=2")
    in_ns(lab.node, "ethtool", "-K", name, "gro", "on")


def _tc_filters(ns: str, ifname: str) -> list[dict[str, object]]:
    out = in_ns(ns, "tc", "-j", "filter", "show", "dev", ifname, "ingress")
    return list(json.loads(out)) if out.strip() else []


FULL = NetworkConfig(
    interface=InterfaceConfig(
        name="net1",
        addresses=("10.9.0.2/24", "fd00:9::2/64"),
        mtu=1400,
        hardware_addr="02:aa:bb:cc:dd:ee",
        gso_max_size=32768,
        gro_max_size=32768,
        gso_ipv4_max_size=16384,
        gro_ipv4_max_size=16384,
        disable_ebpf_programs=True,
        forwarding=True,
        arp_ignore=2,
        arp_announce=1,
    ),
    routes=(
        RouteConfig(destination="10.9.1.0/24", gateway="10.9.0.1"),
        RouteConfig(destination="10.9.0.1/32", scope=253),
        RouteConfig(destination="10.77.0.0/16", gateway="10.9.0.1", table=200),
    ),
    rules=(RuleConfig(priority=300, source="10.9.0.0/24", table=200),),
    neighbors=(NeighborConfig(destination="10.9.0.7", hardware_addr="02:00:00:00:00:07"),),
    ethtool=EthtoolConfig(
        features={"tx": False, "generic-receive-offload": True, "tx-scatter-gather": False}
    ),
)


async def test_attach_applies_every_supported_field(lab: Lab, mover: NetdevMover) -> None:
    _rich_host(lab)
    # a classic-BPF TC program on the device, which disableEbpfPrograms must remove
    in_ns(lab.node, "tc", "qdisc", "add", "dev", "hv0", "clsact")
    in_ns(lab.node, "tc", "filter", "add", "dev", "hv0", "ingress", "bpf", "bytecode", "1,6 0 0 0")
    assert [f for f in _tc_filters(lab.node, "hv0") if f.get("kind") == "bpf"]
    dev = lab.device("hv0", FULL)
    snap = await mover.snapshot(dev)
    result = await mover.attach(dev, lab.pod_sandbox(), snap)

    assert ipj(lab.node, "link", "show") and not [
        link for link in ipj(lab.node, "link", "show") if link["ifname"] in ("hv0", "net1")
    ]
    link = ipj(lab.pod, "-d", "link", "show", "dev", "net1")[0]
    assert link["mtu"] == 1400
    assert link["address"] == "02:aa:bb:cc:dd:ee"
    assert "UP" in link["flags"]
    assert (link["gso_max_size"], link["gro_max_size"]) == (32768, 32768)
    assert raw_link_sizes(lab.pod, "net1")[63] == 16384
    assert raw_link_sizes(lab.pod, "net1")[64] == 16384
    addrs = {
        (a["local"], a["prefixlen"]) for a in ipj(lab.pod, "addr", "show", "dev", "net1")[0]["addr_info"]
    }
    assert {("10.9.0.2", 24), ("fd00:9::2", 64)} <= addrs
    assert ("192.0.2.5", 24) not in addrs  # configured addresses replace the host's
    assert sysctl_get(lab.pod, "ipv4/conf/net1/arp_ignore") == 2
    assert sysctl_get(lab.pod, "ipv4/conf/net1/arp_announce") == 1
    assert sysctl_get(lab.pod, "ipv4/conf/net1/forwarding") == 1
    assert sysctl_get(lab.pod, "ipv6/conf/net1/forwarding") == 1
    feats = ethtool_k(lab.pod, "net1")
    assert feats["tx-checksumming"] is False
    assert feats["generic-receive-offload"] is True
    assert feats["tx-scatter-gather"] is False
    assert not [f for f in _tc_filters(lab.pod, "net1") if f.get("kind") == "bpf"]
    main = {r["dst"]: r for r in ipj(lab.pod, "route", "show", "dev", "net1")}
    assert main["10.9.1.0/24"]["gateway"] == "10.9.0.1"
    assert main["10.9.0.1"]["scope"] == "link"
    assert "198.51.100.0/24" not in main  # host route via a gateway off the pod's subnets: skipped
    t200 = {r["dst"]: r for r in ipj(lab.pod, "route", "show", "table", "200")}
    assert t200["10.77.0.0/16"]["gateway"] == "10.9.0.1"
    rules = ipj(lab.pod, "rule", "show")
    assert any(
        r.get("priority") == 300 and r.get("table") == "200" and r.get("src") == "10.9.0.0" for r in rules
    )
    neigh = {n["dst"]: n for n in ipj(lab.pod, "neigh", "show", "dev", "net1")}
    assert neigh["10.9.0.7"]["lladdr"] == "02:00:00:00:00:07"
    assert "PERMANENT" in neigh["10.9.0.7"]["state"]
    assert neigh["192.0.2.9"]["lladdr"] == "02:00:00:00:00:09"  # host permanent neighbour follows

    nd = result.network_data
    assert nd is not None
    assert nd.interface_name == "net1"
    assert nd.hardware_address == "02:aa:bb:cc:dd:ee"
    assert set(nd.ips) == {"10.9.0.2/24", "fd00:9::2/64"}
    assert [c.type for c in result.conditions] == ["Ready", "NetworkReady"]
    await mover.detach(dev, lab.pod_sandbox(), snap)


async def test_host_addresses_and_routes_follow_when_none_configured(lab: Lab, mover: NetdevMover) -> None:
    _rich_host(lab)
    in_ns(lab.node, "tc", "qdisc", "add", "dev", "hv0", "clsact")
    in_ns(lab.node, "tc", "filter", "add", "dev", "hv0", "ingress", "bpf", "bytecode", "1,6 0 0 0")
    dev = lab.device("hv0")
    snap = await mover.snapshot(dev)
    result = await mover.attach(dev, lab.pod_sandbox(), snap)
    addrs = {(a["local"], a["prefixlen"]) for a in ipj(lab.pod, "addr", "show", "dev", "hv0")[0]["addr_info"]}
    assert {("192.0.2.5", 24), ("2001:db8::5", 64)} <= addrs
    routes = {r["dst"]: r for r in ipj(lab.pod, "route", "show", "table", "all", "dev", "hv0")}
    assert routes["198.51.100.0/24"]["gateway"] == "192.0.2.1"
    assert routes["203.0.113.0/24"]["table"] == "100"
    assert any(r.get("table") == "100" and r.get("priority") == 100 for r in ipj(lab.pod, "rule", "show"))
    assert result.network_data is not None
    assert set(result.network_data.ips) == {"192.0.2.5/24", "2001:db8::5/64"}
    # the kernel drops TC qdiscs (and their programs) on a netns move anyway
    assert not [f for f in _tc_filters(lab.pod, "hv0") if f.get("kind") == "bpf"]
    await mover.detach(dev, lab.pod_sandbox(), snap)


async def test_detach_restores_the_full_host_state(lab: Lab, mover: NetdevMover) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")
    dev = lab.device("hv0", FULL)
    snap = await mover.snapshot(dev)
    await mover.attach(dev, lab.pod_sandbox(), snap)
    await mover.detach(dev, lab.pod_sandbox(), snap)
    after = host_state(lab.node, "hv0")
    assert after == before
    assert [link for link in ipj(lab.pod, "link", "show") if link["ifname"] != "lo"] == []
    # detach again: the device is home, so it only restores; nothing changes
    await mover.detach(dev, lab.pod_sandbox(), snap)
    assert host_state(lab.node, "hv0") == before


@pytest.mark.parametrize("step", ATTACH_STEPS)
async def test_rollback_at_every_step(lab: Lab, step: str) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")

    async def hook(device: str, at: str) -> None:
        if at == step:
            raise OSError(errno.EIO, f"injected failure at {at}")

    m = NetdevMover(host_netns=f"/run/netns/{lab.node}", step_hook=hook)
    try:
        dev = lab.device("hv0", FULL)
        snap = await m.snapshot(dev)
        with pytest.raises(DeviceError) as info:
            await m.attach(dev, lab.pod_sandbox(), snap)
    finally:
        await m.aclose()
    assert info.value.device == "hv0"
    assert info.value.step == step
    assert "injected failure" in info.value.reason
    assert host_state(lab.node, "hv0") == before
    assert [link for link in ipj(lab.pod, "link", "show") if link["ifname"] != "lo"] == []
    assert not [r for r in ipj(lab.pod, "rule", "show") if r.get("priority") == 300]


async def test_kernel_failure_names_step_and_reason_and_rolls_back(lab: Lab, mover: NetdevMover) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")
    bad = NetworkConfig(
        interface=InterfaceConfig(addresses=("10.9.0.2/24",)),
        routes=(RouteConfig(destination="10.50.0.0/16", gateway="172.31.0.1"),),  # unreachable gateway
    )
    dev = lab.device("hv0", bad)
    snap = await mover.snapshot(dev)
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(), snap)
    assert info.value.step == "routes"
    assert "unreachable" in info.value.reason.lower() or "network" in info.value.reason.lower()
    assert host_state(lab.node, "hv0") == before


async def test_unknown_ethtool_feature_fails_the_ethtool_step(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p")
    dev = lab.device("hv0", NetworkConfig(ethtool=EthtoolConfig(features={"no-such-offload": True})))
    snap = await mover.snapshot(dev)
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(), snap)
    assert info.value.step == "ethtool"
    assert "no-such-offload" in info.value.reason
    assert ipj(lab.node, "link", "show", "dev", "hv0")[0]["ifname"] == "hv0"


async def test_name_collision_on_return_parks_then_renames(lab: Lab, mover: NetdevMover) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")
    dev = lab.device("hv0", NetworkConfig(interface=InterfaceConfig(name="eth1")))
    snap = await mover.snapshot(dev)
    await mover.attach(dev, lab.pod_sandbox(), snap)
    lab.ip(lab.node, "link", "add", "hv0", "type", "veth", "peer", "name", "squat")  # name taken meanwhile
    await mover.detach(dev, lab.pod_sandbox(), snap)
    tmp = temp_name(before["ifindex"])
    parked = ipj(lab.node, "-d", "link", "show", "dev", tmp)[0]
    assert parked["ifindex"] == before["ifindex"]
    assert {a["local"] for a in ipj(lab.node, "addr", "show", "dev", tmp)[0]["addr_info"]} >= {"192.0.2.5"}
    assert await mover.retry_renames() == 0  # still taken
    lab.ip(lab.node, "link", "del", "hv0")
    assert await mover.retry_renames() == 1
    assert host_state(lab.node, "hv0") == before
    assert mover.pending_renames == {}


async def test_pod_netns_deleted_before_detach_virtual_device_is_recorded_lost(
    lab: Lab, mover: NetdevMover
) -> None:
    lab.veth("hv0", "hv0p")
    dev = lab.device("hv0")
    snap = await mover.snapshot(dev)
    await mover.attach(dev, lab.pod_sandbox(), snap)
    sh(["ip", "netns", "del", lab.pod])
    await _until_gone(lab, "hv0p")  # netns teardown is asynchronous in the kernel
    await mover.detach(dev, lab.pod_sandbox(), snap)  # no exception: a consistent state
    assert mover.lost == ["hv0"]
    assert [link for link in ipj(lab.node, "link", "show") if link["ifname"] in ("hv0", "hv0p")] == []


async def test_pod_netns_deleted_physical_device_back_as_devN_is_renamed_and_restored(
    lab: Lab, mover: NetdevMover
) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")
    dev = lab.device("hv0", NetworkConfig(interface=InterfaceConfig(name="eth1", mtu=1300)), virtual=False)
    snap = await mover.snapshot(dev)
    await mover.attach(dev, lab.pod_sandbox(), snap)
    sh(["ip", "netns", "del", lab.pod])
    # The kernel gives a physical device back to the root netns as devN with its ifindex.
    # A veth cannot come back, so stand in for it: a device named dev<N> with the same ifindex.
    await _until_gone(lab, "hv0p")
    idx = str(before["ifindex"])
    lab.ip(
        lab.node, "link", "add", "name", f"dev{idx}", "index", idx, "type", "veth", "peer", "name", "hv0p2"
    )
    lab.ip(lab.node, "link", "set", "hv0p2", "up")
    lab.ip(lab.node, "link", "set", f"dev{idx}", "address", before["mac"])
    await mover.detach(dev, lab.pod_sandbox(), snap)
    after = host_state(lab.node, "hv0")
    for key in ("ifindex", "mtu", "mac", "up", "addrs", "routes", "rules", "neigh", "sysctls"):
        assert after[key] == before[key], key
    assert mover.lost == []


async def test_physical_device_not_back_yet_is_a_temporary_error(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p")
    dev = lab.device("hv0", virtual=False)
    snap = await mover.snapshot(dev)
    await mover.attach(dev, lab.pod_sandbox(), snap)
    sh(["ip", "netns", "del", lab.pod])
    with pytest.raises(DeviceNotFoundError) as info:
        await mover.detach(dev, lab.pod_sandbox(), snap)
    assert info.value.temporary is True
    assert info.value.device == "hv0"


async def _until_gone(lab: Lab, ifname: str) -> None:
    for _ in range(200):
        if not [x for x in ipj(lab.node, "link", "show") if x["ifname"] == ifname]:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{ifname} still exists 5 s after its peer's netns was deleted")


class _Crash(BaseException):
    """Stands for the process dying (like a cancellation or exit): no rollback runs."""


async def test_attach_resumes_after_a_crash_half_way(lab: Lab) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")

    async def crash(device: str, at: str) -> None:
        if at == "routes":
            raise _Crash(at)

    dev = lab.device("hv0", FULL)
    first = NetdevMover(host_netns=f"/run/netns/{lab.node}", step_hook=crash)
    try:
        snap = await first.snapshot(dev)
        with pytest.raises(_Crash):
            await first.attach(dev, lab.pod_sandbox(), snap)
    finally:
        await first.aclose()
    assert ipj(lab.pod, "link", "show", "dev", "net1")  # moved, half configured
    assert not [r for r in ipj(lab.pod, "route", "show", "dev", "net1") if r["dst"] == "10.9.1.0/24"]

    second = NetdevMover(host_netns=f"/run/netns/{lab.node}")  # "another process"
    try:
        result = await second.attach(dev, lab.pod_sandbox(), snap)
        again = await second.attach(dev, lab.pod_sandbox(), snap)  # idempotent
        assert again == result
        assert [r for r in ipj(lab.pod, "route", "show", "dev", "net1") if r["dst"] == "10.9.1.0/24"]
        assert len([r for r in ipj(lab.pod, "rule", "show") if r.get("priority") == 300]) == 1
        await second.detach(dev, lab.pod_sandbox(), snap)
    finally:
        await second.aclose()
    assert host_state(lab.node, "hv0") == before


async def test_detach_resumes_when_the_device_is_already_home(lab: Lab, mover: NetdevMover) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")
    dev = lab.device("hv0", FULL)
    snap = await mover.snapshot(dev)
    await mover.attach(dev, lab.pod_sandbox(), snap)
    # a crash after the move home and before the restore: do the move by hand
    lab.ip(lab.pod, "link", "set", "net1", "netns", lab.node, "name", "hv0")
    await mover.detach(dev, lab.pod_sandbox(), snap)
    assert host_state(lab.node, "hv0") == before


async def test_macvlan_attach_detach(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p")
    lab.ip(lab.node, "link", "add", "mv0", "link", "hv0", "type", "macvlan", "mode", "bridge")
    lab.ip(lab.node, "addr", "add", "192.0.2.50/24", "dev", "mv0")
    lab.ip(lab.node, "link", "set", "mv0", "up")
    before = host_state(lab.node, "mv0")
    dev = lab.device("mv0", NetworkConfig(interface=InterfaceConfig(name="eth0")), kind="macvlan")
    snap = await mover.snapshot(dev)
    result = await mover.attach(dev, lab.pod_sandbox(), snap)
    assert result.network_data is not None and result.network_data.ips == ("192.0.2.50/24",)
    assert ipj(lab.pod, "link", "show", "dev", "eth0")[0]["link_type"] == "ether"
    await mover.detach(dev, lab.pod_sandbox(), snap)
    assert host_state(lab.node, "mv0") == before


async def test_bad_inputs_name_the_problem_and_move_nothing(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p")
    dev = lab.device("hv0")
    snap = await mover.snapshot(dev)
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(netns=f"/run/netns/{lab.prefix}-missing"), snap)
    assert info.value.step == "netns"
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(), {"version": 99})
    assert "version" in info.value.reason
    with pytest.raises(DeviceNotFoundError):
        await mover.snapshot(
            PreparedDevice(
                pool="node",
                device="ghost",
                request_names=("r",),
                facets={"netdev": {"ifname": "ghost0", "ifindex": 9999}},
            )
        )
    with pytest.raises(DeviceError) as info:
        await mover.snapshot(PreparedDevice(pool="node", device="x", request_names=("r",)))
    assert "facet" in info.value.reason
    with pytest.raises(DeviceError) as info:
        await mover.snapshot(
            PreparedDevice(pool="node", device="y", request_names=("r",), facets={"netdev": {"ifname": "a"}})
        )
    assert "ifindex" in info.value.reason
    assert ipj(lab.node, "link", "show", "dev", "hv0")[0]["ifname"] == "hv0"


async def test_vrf_real_when_the_kernel_has_it(lab: Lab, mover: NetdevMover) -> None:
    sh(["ip", "-n", lab.node, "link", "add", "probe-vrf", "type", "vrf", "table", "10"], check=False)
    if not [x for x in ipj(lab.node, "link", "show") if x["ifname"] == "probe-vrf"]:
        pytest.skip(
            "probe vrf: kernel lacks CONFIG_NET_VRF (ip link add type vrf failed); "
            "covered by the message tests in test_mover_messages.py"
        )
    lab.ip(lab.node, "link", "del", "probe-vrf")
    lab.veth("hv0", "hv0p")
    cfg = NetworkConfig(
        interface=InterfaceConfig(addresses=("10.1.0.2/24",), vrf=VRFConfig(name="blue", table=77)),
        routes=(RouteConfig(destination="10.2.0.0/16", gateway="10.1.0.1"),),
    )
    dev = lab.device("hv0", cfg)
    snap = await mover.snapshot(dev)
    await mover.attach(dev, lab.pod_sandbox(), snap)
    assert ipj(lab.pod, "link", "show", "dev", "hv0")[0]["master"] == "blue"
    assert [r for r in ipj(lab.pod, "route", "show", "table", "77") if r["dst"] == "10.2.0.0/16"]
    await mover.detach(dev, lab.pod_sandbox(), snap)


@pytest.mark.parametrize("kind", ["dummy", "vlan"])
async def test_kinds_this_kernel_may_lack(lab: Lab, mover: NetdevMover, kind: str) -> None:
    lab.veth("hv0", "hv0p")
    extra: list[str] = ["link", "hv0"] if kind == "vlan" else []
    tail: list[str] = ["id", "5"] if kind == "vlan" else []
    sh(["ip", "-n", lab.node, "link", "add", *extra, "name", "k0", "type", kind, *tail], check=False)
    if not [x for x in ipj(lab.node, "link", "show") if x["ifname"] == "k0"]:
        pytest.skip(
            f"probe {kind}: this kernel cannot create a {kind} link; the move message is the same "
            "for every kind and is covered by the veth/macvlan tests"
        )
    lab.ip(lab.node, "addr", "add", "192.0.2.77/24", "dev", "k0")
    lab.ip(lab.node, "link", "set", "k0", "up")
    before = host_state(lab.node, "k0")
    dev = lab.device("k0", kind=kind)
    snap = await mover.snapshot(dev)
    await mover.attach(dev, lab.pod_sandbox(), snap)
    await mover.detach(dev, lab.pod_sandbox(), snap)
    assert host_state(lab.node, "k0") == before


@pytest.mark.parametrize("disable", [True, False])
async def test_ebpf_programs_in_the_pod_are_detached_only_when_asked(lab: Lab, disable: bool) -> None:
    lab.veth("hv0", "hv0p")
    cfg = NetworkConfig(interface=InterfaceConfig(name="net1", disable_ebpf_programs=disable))

    async def plant(device: str, step: str) -> None:
        # programs attached in the pod after the move and before the ebpf step (as a CNI or
        # another agent might): one TC clsact program and one TCX program
        if step == "ebpf":
            idx = int(ipj(lab.pod, "link", "show", "dev", "net1")[0]["ifindex"])
            in_ns(lab.pod, "tc", "qdisc", "add", "dev", "net1", "clsact")
            in_ns(lab.pod, "tc", "filter", "add", "dev", "net1", "egress", "bpf", "bytecode", "1,6 0 0 0")
            in_ns(lab.pod, "tc", "filter", "add", "dev", "net1", "ingress", "bpf", "bytecode", "1,6 0 0 0")
            tcx_attach(lab.pod, idx)

    m = NetdevMover(host_netns=f"/run/netns/{lab.node}", step_hook=plant)
    try:
        dev = lab.device("hv0", cfg)
        snap = await m.snapshot(dev)
        await m.attach(dev, lab.pod_sandbox(), snap)
        idx = int(ipj(lab.pod, "link", "show", "dev", "net1")[0]["ifindex"])
        tc_left = [f for f in _tc_filters(lab.pod, "net1") if f.get("kind") == "bpf"]
        egress = in_ns(lab.pod, "tc", "-j", "filter", "show", "dev", "net1", "egress")
        if disable:
            assert tc_left == []
            assert "bpf" not in egress
            assert tcx_count(lab.pod, idx) == 0
        else:
            assert tc_left
            assert "bpf" in egress
            assert tcx_count(lab.pod, idx) == 1
        await m.detach(dev, lab.pod_sandbox(), snap)
    finally:
        await m.aclose()


async def test_name_taken_in_the_pod_fails_the_move_and_leaves_the_device_home(
    lab: Lab, mover: NetdevMover
) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")
    lab.ip(lab.pod, "link", "add", "net1", "type", "veth", "peer", "name", "other")
    dev = lab.device("hv0", NetworkConfig(interface=InterfaceConfig(name="net1")))
    snap = await mover.snapshot(dev)
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(), snap)
    assert info.value.step == "move"
    assert "exists" in info.value.reason.lower()
    assert host_state(lab.node, "hv0") == before
    assert {link["ifname"] for link in ipj(lab.pod, "link", "show")} == {"lo", "net1", "other"}


async def test_concurrent_attach_and_detach_of_several_devices(lab: Lab, mover: NetdevMover) -> None:
    names = [f"hc{i}" for i in range(4)]
    for i, name in enumerate(names):
        lab.veth(name, f"{name}p")
        lab.ip(lab.node, "addr", "add", f"192.0.{2 + i}.5/24", "dev", name)
    before = {name: host_state(lab.node, name) for name in names}
    devs = [
        lab.device(name, NetworkConfig(interface=InterfaceConfig(name=f"net{i}", mtu=1300 + i)))
        for i, name in enumerate(names)
    ]
    snaps = await asyncio.gather(*(mover.snapshot(d) for d in devs))
    results = await asyncio.gather(
        *(mover.attach(d, lab.pod_sandbox(), s) for d, s in zip(devs, snaps, strict=True))
    )
    for i, res in enumerate(results):
        assert res.network_data is not None
        assert res.network_data.interface_name == f"net{i}"
        assert res.network_data.ips == (f"192.0.{2 + i}.5/24",)
        assert ipj(lab.pod, "link", "show", "dev", f"net{i}")[0]["mtu"] == 1300 + i
    await asyncio.gather(*(mover.detach(d, lab.pod_sandbox(), s) for d, s in zip(devs, snaps, strict=True)))
    assert {name: host_state(lab.node, name) for name in names} == before


async def test_run_renames_a_parked_device_once_its_name_is_free(lab: Lab) -> None:
    lab.veth("hv0", "hv0p")
    lab.ip(lab.node, "addr", "add", "192.0.2.5/24", "dev", "hv0")
    before = host_state(lab.node, "hv0")
    m = NetdevMover(host_netns=f"/run/netns/{lab.node}", rename_retry_interval=0.05)
    try:
        dev = lab.device("hv0")
        snap = await m.snapshot(dev)
        await m.attach(dev, lab.pod_sandbox(), snap)
        lab.ip(lab.node, "link", "add", "hv0", "type", "veth", "peer", "name", "squat")
        await m.detach(dev, lab.pod_sandbox(), snap)
        assert list(m.pending_renames.values()) == ["hv0"]
        async with asyncio.TaskGroup() as tg:
            runner = tg.create_task(m.run(), name="rename retrier")
            lab.ip(lab.node, "link", "del", "hv0")
            for _ in range(100):
                if not m.pending_renames:
                    break
                await asyncio.sleep(0.02)
            runner.cancel()
        assert m.pending_renames == {}
    finally:
        await m.aclose()
    assert host_state(lab.node, "hv0") == before


async def test_pod_without_netns_is_an_error_at_attach_and_lost_at_detach(
    lab: Lab, mover: NetdevMover
) -> None:
    lab.veth("hv0", "hv0p")
    dev = lab.device("hv0")
    snap = await mover.snapshot(dev)
    no_ns = lab.pod_sandbox().__class__(uid="u", name="p", namespace="d", netns=None)
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, no_ns, snap)
    assert info.value.step == "netns"
    # detach with no netns: the device is home already, so it is only restored
    await mover.detach(dev, no_ns, snap)
    assert ipj(lab.node, "link", "show", "dev", "hv0")[0]["ifname"] == "hv0"
    assert mover.lost == []


@pytest.mark.parametrize("step", ["return", "restore:link", "restore:addresses", "restore:routes"])
async def test_detach_resumes_after_a_crash_half_way(lab: Lab, step: str) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")

    async def crash(device: str, at: str) -> None:
        if at == step:
            raise _Crash(at)

    dev = lab.device("hv0", FULL)
    first = NetdevMover(host_netns=f"/run/netns/{lab.node}", step_hook=crash)
    try:
        snap = await first.snapshot(dev)
        await first.attach(dev, lab.pod_sandbox(), snap)
        with pytest.raises(_Crash):
            await first.detach(dev, lab.pod_sandbox(), snap)
    finally:
        await first.aclose()
    second = NetdevMover(host_netns=f"/run/netns/{lab.node}")
    try:
        await second.detach(dev, lab.pod_sandbox(), snap)
    finally:
        await second.aclose()
    assert host_state(lab.node, "hv0") == before
    assert [link for link in ipj(lab.pod, "link", "show") if link["ifname"] != "lo"] == []


async def test_restore_failure_names_the_restore_step_and_a_retry_completes(lab: Lab) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")
    fail = True

    async def hook(device: str, at: str) -> None:
        if fail and at == "restore:routes":
            raise OSError(errno.EIO, "injected restore failure")

    m = NetdevMover(host_netns=f"/run/netns/{lab.node}", step_hook=hook)
    try:
        dev = lab.device("hv0", FULL)
        snap = await m.snapshot(dev)
        await m.attach(dev, lab.pod_sandbox(), snap)
        with pytest.raises(DeviceError) as info:
            await m.detach(dev, lab.pod_sandbox(), snap)
        assert info.value.step == "restore:routes"
        assert "injected restore failure" in info.value.reason
        fail = False
        await m.detach(dev, lab.pod_sandbox(), snap)
    finally:
        await m.aclose()
    assert host_state(lab.node, "hv0") == before


async def test_unknown_private_flag_fails_the_ethtool_step_naming_it(lab: Lab, mover: NetdevMover) -> None:
    _rich_host(lab)
    before = host_state(lab.node, "hv0")
    dev = lab.device("hv0", NetworkConfig(ethtool=EthtoolConfig(private_flags={"no-such-flag": True})))
    snap = await mover.snapshot(dev)
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(), snap)
    assert info.value.step == "ethtool"
    assert "no-such-flag" in info.value.reason
    assert host_state(lab.node, "hv0") == before


async def test_a_bug_in_a_step_still_rolls_back(lab: Lab) -> None:
    lab.veth("hv0", "hv0p")
    lab.ip(lab.node, "addr", "add", "192.0.2.5/24", "dev", "hv0")
    before = host_state(lab.node, "hv0")

    async def bug(device: str, at: str) -> None:
        if at == "up":
            raise TypeError("a programming error")

    m = NetdevMover(host_netns=f"/run/netns/{lab.node}", step_hook=bug)
    try:
        dev = lab.device("hv0")
        snap = await m.snapshot(dev)
        with pytest.raises(DeviceError) as info:
            await m.attach(dev, lab.pod_sandbox(), snap)
    finally:
        await m.aclose()
    assert info.value.step == "up"
    assert host_state(lab.node, "hv0") == before


async def test_a_device_that_was_down_on_the_host_comes_back_down(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p", up=False)
    lab.ip(lab.node, "addr", "add", "192.0.2.5/24", "dev", "hv0")
    in_ns(lab.node, "sysctl", "-qw", "net.ipv4.conf.hv0.arp_ignore=1")
    before = host_state(lab.node, "hv0")
    assert before["up"] is False
    dev = lab.device("hv0", NetworkConfig(interface=InterfaceConfig(name="eth1", arp_ignore=3)))
    snap = await mover.snapshot(dev)
    await mover.attach(dev, lab.pod_sandbox(), snap)
    assert "UP" in ipj(lab.pod, "link", "show", "dev", "eth1")[0]["flags"]
    assert sysctl_get(lab.pod, "ipv4/conf/eth1/arp_ignore") == 3
    await mover.detach(dev, lab.pod_sandbox(), snap)
    assert host_state(lab.node, "hv0") == before


def test_call_in_netns_always_returns_the_thread_home(lab: Lab) -> None:
    from dranet_backends.netdev.nsutil import THREAD_NETNS, call_in_netns, open_netns

    def here() -> tuple[int, int]:
        st = os.stat(THREAD_NETNS)
        return st.st_dev, st.st_ino

    home = here()
    fd = open_netns(f"/run/netns/{lab.pod}")
    try:
        target = os.fstat(fd)
        assert call_in_netns(fd, here) == (target.st_dev, target.st_ino) != home
        assert here() == home
        with pytest.raises(ZeroDivisionError):
            call_in_netns(fd, lambda: 1 // 0)
        assert here() == home
        # what is created inside stays there: a sysctl read sees the pod netns's own value
        in_ns(lab.pod, "sysctl", "-qw", "net.ipv4.conf.lo.arp_ignore=2")
        path = Path("/proc/sys/net/ipv4/conf/lo/arp_ignore")
        assert call_in_netns(fd, lambda: path.read_text().strip()) == "2"
    finally:
        os.close(fd)


async def test_a_netns_path_that_is_not_a_netns(lab: Lab, mover: NetdevMover, tmp_path: Path) -> None:
    lab.veth("hv0", "hv0p")
    before = host_state(lab.node, "hv0")
    dev = lab.device("hv0")
    snap = await mover.snapshot(dev)
    bogus = tmp_path / "netns"
    bogus.write_text("not a namespace")
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(netns=str(bogus)), snap)
    assert info.value.step == "netns"
    assert str(bogus) in info.value.reason
    await mover.detach(dev, lab.pod_sandbox(netns=str(bogus)), snap)  # as good as gone: restore only
    assert host_state(lab.node, "hv0") == before


async def test_snapshot_finds_a_device_renamed_since_discovery(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p")
    dev = lab.device("hv0", mac=ipj(lab.node, "link", "show", "dev", "hv0")[0]["address"])
    lab.ip(lab.node, "link", "set", "hv0", "down")
    lab.ip(lab.node, "link", "set", "hv0", "name", "hv0new")
    snap = await mover.snapshot(dev)
    assert snap["ifname"] == "hv0new"


async def test_the_netdev_backend_delegates_to_the_mover(lab: Lab) -> None:
    from dranet_backends.netdev.backend import NetdevBackend
    from dranet_core.mover import NamespaceMover

    lab.veth("hv0", "hv0p")
    lab.ip(lab.node, "addr", "add", "192.0.2.5/24", "dev", "hv0")
    before = host_state(lab.node, "hv0")
    backend = NetdevBackend(netns=f"/run/netns/{lab.node}")
    assert isinstance(backend, NamespaceMover)
    dev = lab.device("hv0", NetworkConfig(interface=InterfaceConfig(name="eth7")))
    try:
        snap = await backend.snapshot(dev)
        res = await backend.attach(dev, lab.pod_sandbox(), snap)
        assert res.network_data is not None and res.network_data.interface_name == "eth7"
        assert ipj(lab.pod, "link", "show", "dev", "eth7")
        await backend.detach(dev, lab.pod_sandbox(), snap)
    finally:
        await backend._netdev_mover().aclose()
        backend.close()
    assert host_state(lab.node, "hv0") == before


def test_the_benchmark_script_runs(lab: Lab) -> None:
    """The benchmark must not rot: run it on 3 devices (no timing is asserted)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_mover.py"
    res = subprocess.run([sys.executable, str(script), "3"], capture_output=True, text=True, check=False)
    assert res.returncode in (0, 1), res.stderr  # 1: a missed target (speed is not asserted here)
    assert "ratio mean / floor" in res.stdout
    assert ("PASS" in res.stdout) == (res.returncode == 0)
    prefix = res.stdout.split("(", 1)[1].split("-*)", 1)[0]
    assert prefix.startswith("dnt-bench-")
    assert not [ns for ns in sh(["ip", "netns", "list"]).split() if ns.startswith(prefix)]
