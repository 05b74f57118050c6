"""Go-driver features on the real ``dranet run``: ``interface.dhcp: true`` (the lease taken at
prepare from a real dnsmasq on the other end of the device's veth is what the pod gets; no
server, no prepare) and ``profile:`` without a profile provider (a clear prepare error)."""

from __future__ import annotations

import ipaddress

from dnsmasq_server import serve_dhcp
from e2e.harness import Cluster, global_addrs, ip_json

DHCP = {"interface": {"name": "net1", "dhcp": True}}


def test_dhcp_lease_and_classless_routes_reach_the_pod(cluster: Cluster) -> None:
    dev = cluster.node.veth(addrs=["10.97.1.10/24"])
    assert dev.peer is not None
    with serve_dhcp(cluster.node.ns, dev.peer) as server:
        claim = cluster.claim([dev], config=DHCP)
        pod = cluster.create_pod([claim])
        (addr,) = global_addrs(pod.link("net1"))
        leased = ipaddress.ip_interface(addr)
        assert str(leased.ip).startswith(server.prefix) and leased.network.prefixlen == 24
        routes = {r["dst"]: r for r in ip_json(pod.netns, "route", "show", "dev", "net1")}
        assert routes["192.168.50.0/24"]["gateway"] == server.router, f"{routes}\n{cluster.log()}"
        assert routes["10.200.0.0/16"]["scope"] == "link"
        assert cluster.status_ips(claim) == [addr]
        cluster.delete_pod(pod)


def test_dhcp_without_a_server_fails_prepare_naming_the_device(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config=DHCP)
    cluster.new_pod([claim])
    res = cluster.prepare(claim)
    assert "interface.dhcp" in res.error and f"DHCP on {dev.name}: no lease within 5s" in res.error, res.error
    assert cluster.node.link(dev.name) is not None  # nothing moved
    assert cluster.unprepare(claim).error == ""


def test_a_profile_without_a_profile_provider_fails_prepare(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config={"profile": "whereabouts-profile"})
    cluster.new_pod([claim])
    res = cluster.prepare(claim)
    assert f"device {dev.name}.profile" in res.error and "no" in res.error, res.error
    assert "'whereabouts-profile' needs a profile provider" in res.error
    assert cluster.unprepare(claim).error == ""
