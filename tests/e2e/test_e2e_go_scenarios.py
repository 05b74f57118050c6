"""The Go driver's end-to-end scenarios (its bats suite), one test each under the Go name.

veth and macvlan devices stand in for the Go suite's dummy devices (this kernel has no dummy
module); one driver process serves the whole module, and each scenario creates its own
devices, claims and pods. The scenarios that restart the driver (14, 15, 21) are in
``test_e2e_go_restarts.py``; the table of what is not ported is printed at the end of the run.
"""

from __future__ import annotations

import ipaddress
import subprocess
import urllib.request
from typing import Any

import pytest
from e2e.bpf import bpffs, tc_filter, tc_filter_names, tcx_attach
from e2e.harness import Cluster, global_addrs, in_ns, ip_json
from mover_lab import ethtool_k, raw_link_sizes

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]


def _routes(ns: str, *args: str, family: str = "-4") -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = ip_json(ns, family, "route", "show", *args)
    return data


def test_dummy_interface_with_ip_addresses_resourceclaim(cluster: Cluster) -> None:
    dev = cluster.node.veth(addrs=["10.50.0.2/24"])
    claim = cluster.claim([dev], config={"interface": {"name": "eth99", "addresses": ["169.254.169.13/24"]}})
    pod = cluster.create_pod([claim])
    assert global_addrs(pod.link("eth99")) == ["169.254.169.13/24"]
    assert cluster.node.link(dev.name) is None
    (status,) = cluster.wait_status(claim)
    assert (status["driver"], status["pool"], status["device"]) == ("dra.net", "node-a", claim.devices[0])
    assert status["networkData"]["interfaceName"] == "eth99"
    assert status["networkData"]["ips"] == ["169.254.169.13/24"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "True", "NetworkReady": "True"}
    assert cluster.events(pod.sandbox.name) == []  # a clean start warns about nothing
    cluster.delete_pod(pod)
    cluster.assert_home(dev)
    cluster.assert_forgotten(claim)


def test_dummy_interface_with_ip_addresses_resourceclaim_and_normalized_name(cluster: Cluster) -> None:
    dev = cluster.node.veth("mlx5_6")
    published = cluster.published("mlx5_6")
    devname, _ = cluster.slice_devices()["mlx5_6"]
    assert devname != "mlx5_6" and "_" not in devname  # a DNS label stands for the interface
    assert published["attributes"]["dra.net/ifName"] == {"string": "mlx5_6"}
    claim = cluster.claim([dev], config={"interface": {"name": "eth99", "addresses": ["169.254.169.13/24"]}})
    assert claim.devices == [devname]
    pod = cluster.create_pod([claim])
    assert global_addrs(pod.link("eth99")) == ["169.254.169.13/24"]
    assert cluster.status_ips(claim) == ["169.254.169.13/24"]
    cluster.delete_pod(pod)
    cluster.assert_home(dev)


def test_validate_per_interface_arp_configuration_on_dummy_interface(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim(
        [dev], config={"interface": {"name": "dranet-arp", "arpIgnore": 1, "arpAnnounce": 2}}
    )
    pod = cluster.create_pod([claim])
    assert pod.sysctl("net/ipv4/conf/dranet-arp/arp_ignore") == "1"
    assert pod.sysctl("net/ipv4/conf/dranet-arp/arp_announce") == "2"
    cluster.delete_pod(pod)
    cluster.assert_home(dev)


def test_dummy_interface_with_ip_addresses_resourceclaimtemplate(cluster: Cluster) -> None:
    # the host address is copied and the name kept when the claim has no config (link down)
    dev = cluster.node.veth(addrs=["169.254.169.14/32"], up=False)
    claim = cluster.claim([dev])
    pod = cluster.create_pod([claim])
    assert global_addrs(pod.link(dev.name)) == ["169.254.169.14/32"]
    assert cluster.status_ips(claim) == ["169.254.169.14/32"]
    cluster.delete_pod(pod)
    cluster.assert_home(dev)


def test_dummy_interface_with_ip_addresses_resourceclaim_and_routes(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    config = {
        "interface": {"name": "eth99", "addresses": ["169.254.169.13/32"]},
        "routes": [
            {"destination": "169.254.169.0/24", "gateway": "169.254.169.1"},
            {"destination": "169.254.169.1/32", "scope": 253},
        ],
    }
    claim = cluster.claim([dev], config=config)
    pod = cluster.create_pod([claim])
    routes = {(r["dst"], r.get("gateway"), r.get("scope")) for r in _routes(pod.netns)}
    assert ("169.254.169.0/24", "169.254.169.1", None) in routes
    assert ("169.254.169.1", None, "link") in routes
    assert cluster.status_ips(claim) == ["169.254.169.13/32"]
    cluster.delete_pod(pod)
    cluster.assert_home(dev)


def test_test_metric_server_is_up_and_operating_on_host(cluster: Cluster) -> None:
    url = f"http://127.0.0.1:{cluster.driver.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read().decode()
    assert "process_start_time_seconds" in body


def test_validate_advanced_network_configurations_with_dummy(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    config = {
        "interface": {
            "name": "dranet0",
            "addresses": ["169.254.169.14/24"],
            "mtu": 4321,
            "hardwareAddr": "00:11:22:33:44:55",
        },
        "ethtool": {"features": {"tcp-segmentation-offload": False, "generic-receive-offload": False}},
    }
    claim = cluster.claim([dev], config=config)
    pod = cluster.create_pod([claim])
    link = pod.link("dranet0")
    assert link is not None
    assert global_addrs(link) == ["169.254.169.14/24"]
    assert link["mtu"] == 4321
    assert link["address"] == "00:11:22:33:44:55"
    feats = ethtool_k(pod.netns, "dranet0")
    assert not feats["tcp-segmentation-offload"]
    assert not feats["generic-receive-offload"]
    assert not feats["large-receive-offload"]
    cluster.delete_pod(pod)
    cluster.assert_home(dev)  # MAC and MTU restored on the way home


def test_validate_big_tcp_network_configurations_on_dummy_interface(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    config = {
        "interface": {
            "name": "eth99",
            "mtu": 8896,
            "gsoMaxSize": 65536,
            "groMaxSize": 65536,
            "gsoIPv4MaxSize": 65536,
            "groIPv4MaxSize": 65536,
        },
        "ethtool": {"features": {"tcp-segmentation-offload": True, "generic-receive-offload": True}},
    }
    claim = cluster.claim([dev], config=config)
    pod = cluster.create_pod([claim])
    (detail,) = ip_json(pod.netns, "-d", "link", "show", "dev", "eth99")
    assert detail["mtu"] == 8896
    # IFLA_GSO_MAX_SIZE, IFLA_GRO_MAX_SIZE, IFLA_GSO_IPV4_MAX_SIZE, IFLA_GRO_IPV4_MAX_SIZE
    assert raw_link_sizes(pod.netns, "eth99") == {41: 65536, 58: 65536, 63: 65536, 64: 65536}
    feats = ethtool_k(pod.netns, "eth99")
    assert feats["tcp-segmentation-offload"]
    assert feats["generic-receive-offload"]
    assert not feats["large-receive-offload"]
    cluster.delete_pod(pod)
    cluster.assert_home(dev)


def _bounce(cluster: Cluster, name: str) -> None:
    cluster.node.ip("link", "set", name, "down")
    cluster.node.ip("link", "set", name, "up")


def test_validate_bpf_filter_attributes(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    with bpffs() as fs:
        tc_filter(cluster.node.ns, dev.name, fs, "dummy_bpf")
        names = tc_filter_names(cluster.node.ns, dev.name)
        assert len(names) == 1
        attrs = cluster.wait_attrs(dev.name, lambda a: a.get("dra.net/ebpf") == {"bool": True})
        assert attrs["dra.net/tcFilterNames"] == {"string": names[0]}


def test_validate_tcx_bpf_filter_attributes(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    info = ip_json(cluster.node.ns, "link", "show", "dev", dev.name)[0]
    tcx_attach(cluster.node.ns, info["ifindex"], "handle_ingress")
    _bounce(cluster, dev.name)  # a TCX attach sends no netlink event (the Go test bounces too)
    attrs = cluster.wait_attrs(dev.name, lambda a: "dra.net/tcxProgramNames" in a)
    assert attrs["dra.net/ebpf"] == {"bool": True}
    assert attrs["dra.net/tcxProgramNames"] == {"string": "handle_ingress"}


def test_validate_bpf_programs_are_removed(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    info = ip_json(cluster.node.ns, "link", "show", "dev", dev.name)[0]
    with bpffs() as fs:
        tc_filter(cluster.node.ns, dev.name, fs, "dummy_bpf")
        tcx_attach(cluster.node.ns, info["ifindex"], "handle_ingress")
        _bounce(cluster, dev.name)
        cluster.wait_attrs(
            dev.name, lambda a: "dra.net/tcxProgramNames" in a and "dra.net/tcFilterNames" in a
        )
        claim = cluster.claim([dev], config={"interface": {"disableEbpfPrograms": True}})
        pod = cluster.create_pod([claim])
        assert tc_filter_names(pod.netns, dev.name) == []
        out = in_ns(pod.netns, "python3", "-c", _TCX_QUERY, str(pod.link(dev.name)["ifindex"]))  # type: ignore[index]
        assert out.strip() == "0"
        cluster.delete_pod(pod)
        cluster.assert_home(dev)


_TCX_QUERY = r"""
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
ids = (ctypes.c_uint32 * 16)()
attr = ctypes.create_string_buffer(144)
struct.pack_into("=II", attr, 0, int(sys.argv[1]), 46)
struct.pack_into("=QI", attr, 16, ctypes.addressof(ids), 16)
nr = 321 if os.uname().machine == "x86_64" else 280
assert libc.syscall(ctypes.c_long(nr), ctypes.c_int(16), attr, ctypes.c_uint(144)) == 0
print(struct.unpack_from("=I", attr, 24)[0])
"""


def test_2_dummy_interfaces_with_ip_addresses_resourceclaimtemplate(cluster: Cluster) -> None:
    d0 = cluster.node.veth(addrs=["169.254.169.13/32"])
    d1 = cluster.node.veth(addrs=["169.254.169.14/32"])
    claim = cluster.claim([d0, d1])
    pod = cluster.create_pod([claim])
    assert global_addrs(pod.link(d0.name)) == ["169.254.169.13/32"]
    assert global_addrs(pod.link(d1.name)) == ["169.254.169.14/32"]
    assert cluster.status_ips(claim) == ["169.254.169.13/32", "169.254.169.14/32"]
    cluster.delete_pod(pod)
    cluster.assert_home(d0)
    cluster.assert_home(d1)


def test_reapply_pod_with_dummy_resource_claim(cluster: Cluster) -> None:
    dev = cluster.node.veth(addrs=["169.254.169.20/32"])
    claim = cluster.claim([dev])
    pod = cluster.create_pod([claim])
    assert global_addrs(pod.link(dev.name)) == ["169.254.169.20/32"]
    cluster.delete_pod(pod)
    cluster.assert_home(dev)
    # the device is home and allocatable again: a second pod gets it, with its address
    cluster.published(dev.name)
    claim2 = cluster.claim([dev])
    pod2 = cluster.create_pod([claim2])
    assert global_addrs(pod2.link(dev.name)) == ["169.254.169.20/32"]
    assert cluster.status_ips(claim2) == ["169.254.169.20/32"]
    cluster.delete_pod(pod2)
    cluster.assert_home(dev)
    cluster.assert_forgotten(claim, claim2)


def test_permanent_neighbor_entry_is_copied_to_pod_namespace(cluster: Cluster) -> None:
    dev = cluster.node.veth(name=cluster.node.unique("dn"))
    n = cluster.node
    n.ip("neigh", "add", "192.168.1.1", "lladdr", "00:11:22:33:44:55", "dev", dev.name, "nud", "permanent")
    n.ip("neigh", "add", "2001:db8::1", "lladdr", "00:aa:bb:cc:dd:ee", "dev", dev.name, "nud", "permanent")
    claim = cluster.claim([dev], config={"interface": {"name": "eth99"}})
    pod = cluster.create_pod([claim])
    neigh = {
        (x["dst"], x.get("lladdr"), tuple(x.get("state", []))) for x in ip_json(pod.netns, "neigh", "show")
    }
    assert ("192.168.1.1", "00:11:22:33:44:55", ("PERMANENT",)) in neigh
    assert ("2001:db8::1", "00:aa:bb:cc:dd:ee", ("PERMANENT",)) in neigh
    cluster.delete_pod(pod)
    cluster.assert_home(dev)


def test_route_rules_and_routes_with_non_default_table_are_copied_to_pod_namespace(cluster: Cluster) -> None:
    dev = cluster.node.veth(addrs=["169.254.169.2/24"])
    n = cluster.node
    n.ip("route", "add", "10.10.10.0/24", "via", "169.254.169.1", "dev", dev.name, "table", "100")
    n.ip("rule", "add", "from", "10.20.30.0/24", "lookup", "100", "prio", "500")
    try:
        claim = cluster.claim([dev])
        pod = cluster.create_pod([claim])
        routes = _routes(pod.netns, "table", "100")
        assert [(r["dst"], r.get("gateway")) for r in routes] == [("10.10.10.0/24", "169.254.169.1")]
        rules = ip_json(pod.netns, "rule", "show")
        assert {"priority": 500, "src": "10.20.30.0", "srclen": 24, "table": "100"}.items() <= next(
            r for r in rules if r.get("priority") == 500
        ).items()
        cluster.delete_pod(pod)
        cluster.assert_home(dev)
    finally:
        n.ip("rule", "del", "prio", "500", check=False)


def test_dummy_interface_with_ipv6_subnet_route(cluster: Cluster) -> None:
    dev = cluster.node.veth(addrs=["fd36::3:0:e:0:0/96"])
    claim = cluster.claim([dev])
    pod = cluster.create_pod([claim])
    subnet = ipaddress.ip_network("fd36::3:0:e:0:0/96", strict=False)
    mine = [r for r in _routes(pod.netns, family="-6") if r["dst"] == str(subnet)]
    assert [(r.get("protocol"), r.get("metric")) for r in mine] == [("kernel", 256)], mine
    cluster.delete_pod(pod)
    cluster.assert_home(dev)


def test_validate_pbr_configuration(cluster: Cluster) -> None:
    a = cluster.node.veth(peer=cluster.node.unique("ra"))
    b = cluster.node.veth(peer=cluster.node.unique("rb"))
    assert a.peer is not None and b.peer is not None

    def pod_config(addr: str, own: str, other: str, gw: str) -> dict[str, object]:
        return {
            "interface": {"name": "eth1", "addresses": [addr]},
            "rules": [
                {"priority": 32000, "source": own, "table": 100},
                {"priority": 32000, "destination": other, "table": 100},
            ],
            "routes": [{"destination": "0.0.0.0/0", "gateway": gw, "table": 100}],
        }

    c1 = cluster.claim(
        [a], config=pod_config("192.168.100.10/24", "192.168.100.0/24", "192.168.200.0/24", "192.168.100.1")
    )
    c2 = cluster.claim(
        [b], config=pod_config("192.168.200.10/24", "192.168.200.0/24", "192.168.100.0/24", "192.168.200.1")
    )
    router = cluster.claim(
        [a.peer, b.peer],
        request_configs={
            "r0": {"interface": {"name": "eth1", "addresses": ["192.168.100.1/24"], "forwarding": True}},
            "r1": {"interface": {"name": "eth2", "addresses": ["192.168.200.1/24"], "forwarding": True}},
        },
    )
    pod1 = cluster.create_pod([c1])
    pod2 = cluster.create_pod([c2])
    rpod = cluster.create_pod([router])
    assert rpod.sysctl("net/ipv4/conf/eth1/forwarding") == "1"
    assert rpod.sysctl("net/ipv4/conf/eth2/forwarding") == "1"
    out = subprocess.run(
        ["ip", "netns", "exec", pod1.netns, "ping", "-c", "1", "-W", "5", "192.168.200.10"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for p in (pod1, pod2, rpod):
        cluster.delete_pod(p)


def test_allocated_device_in_resourceslice_remains_unchanged_across_allocation(cluster: Cluster) -> None:
    """Go #21, first half (across allocation); the restart half is in test_e2e_go_restarts."""
    dev = cluster.node.veth(addrs=["10.77.0.2/24"])
    cluster.wait_attrs(dev.name, lambda a: a.get("dra.net/state") == {"string": "up"})  # settled
    before = cluster.published(dev.name)
    claim = cluster.claim([dev])
    pod = cluster.create_pod([claim])
    cluster.wait_status(claim)
    after = cluster.slice_devices()[dev.name][1]
    assert after == before, {
        k: (v, after["attributes"].get(k))
        for k, v in before["attributes"].items()
        if after["attributes"].get(k) != v
    }
    cluster.delete_pod(pod)
    cluster.assert_home(dev)
