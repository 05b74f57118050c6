"""Go-driver features on the real ``dranet run``: ``interface.dhcp: true`` (the lease taken at
prepare from a real dnsmasq on the other end of the device's veth is what the pod gets; no
server, no prepare) and ``profile:`` without a profile provider (a clear prepare error)."""

from __future__ import annotations

import ipaddress

from bbolt_writer import go_checkpoint, go_record
from cloud_metadata import GceMetadata, gce_instance
from dnsmasq_server import serve_dhcp
from e2e.harness import Cluster, global_addrs, ip_json
from profile_webhook import ProfileWebhook

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


def test_devices_the_go_driver_put_into_a_running_pod_come_home(fresh_cluster: Cluster) -> None:
    """Upgrade in place: the Go driver's bbolt file at --db-path is adopted at start, and the
    device it moved into a pod that is still running comes home when that pod stops."""
    c = fresh_cluster
    dev = c.node.veth(mtu=1400)
    pod = c.new_pod()
    # what the Go driver did at RunPodSandbox: the link renamed and moved into the pod
    c.node.ip("link", "set", dev.name, "down")
    c.node.ip("link", "set", dev.name, "name", "net1")
    c.node.ip("link", "set", "net1", "netns", pod.netns)
    record = go_record(
        "default",
        "go-claim",
        dev.name,
        "net1",
        mac={"string": dev.mac},
        mtu={"int": 1400},
        virtual={"bool": True},
        type={"string": "veth"},
    )
    c.driver.db.parent.mkdir(parents=True, exist_ok=True)
    c.driver.db.write_bytes(go_checkpoint({pod.uid: {dev.name: record}}))
    c.runtime.sync_pods = [pod.sandbox]  # the pod is running when the driver starts
    c.start()
    assert "adopted 1 device(s) of 1 claim(s) from the Go driver's checkpoint" in c.log()
    assert pod.link("net1") is not None and c.node.link(dev.name) is None  # still in its pod
    assert c.stop_sandbox(pod).code == 0
    c.assert_home(dev)
    assert pod.link("net1") is None
    res = c.kubelet.unprepare_sync("go-claim", "real-uid-kubelet-knows", "default")
    assert res.error == ""
    assert "go-dranet:default/go-claim" not in c.driver.claim_uids(), c.log()


def test_webhook_profile_provider_resolves_a_claims_profile(fresh_cluster: Cluster) -> None:
    """The Go suite's python-webhook scenario: --profile-provider=webhook gives the pod the
    profile's address; unprepare releases it; a webhook that is not a profile provider stops
    the driver at start with one clear line."""
    c = fresh_cluster
    profile = {"interface": {"addresses": ["10.200.200.200/24"], "mtu": 1450}}
    hook = ProfileWebhook({"python-profile": profile})
    url = c.loop.run(hook.start())
    try:
        c.start("--profile-provider=webhook", f"--webhook-url={url}")
        dev = c.node.veth()
        claim = c.claim([dev], config={"profile": "python-profile", "interface": {"name": "eth99"}})
        pod = c.create_pod([claim])
        info = pod.link("eth99")
        assert global_addrs(info) == ["10.200.200.200/24"] and info is not None and info["mtu"] == 1450
        ((kind, body),) = hook.requests
        assert (kind, body["claim_uid"], body["config"]["profile"]) == ("get", claim.uid, "python-profile")
        c.delete_pod(pod)
        assert [k for k, _ in hook.requests] == ["get", "release"]
        c.stop()
        hook.provider = False
        c.driver.spawn("--profile-provider=webhook", f"--webhook-url={url}")
        assert c.loop.run(c.driver.wait_exit()) != 0
        assert "does not report profileProvider: true" in c.log()
    finally:
        c.loop.run(hook.close())


def test_gce_cloud_attributes_are_published_on_the_matching_device(fresh_cluster: Cluster) -> None:
    """--cloud-provider-hint=GCE with the metadata address on loopback: the vNIC with the
    metadata's MAC carries gce.dra.net/* in the ResourceSlice, as with the Go driver."""
    c = fresh_cluster
    dev = c.node.veth()
    meta = GceMetadata(gce_instance(dev.mac))
    url = c.loop.run(meta.start())
    try:
        c.start("--cloud-provider-hint=GCE", f"--cloud-metadata-url={url}")
        attrs = c.wait_attrs(dev.name, lambda a: "gce.dra.net/networkName" in a)
        assert attrs["gce.dra.net/networkName"] == {"string": "test-network"}
        assert attrs["gce.dra.net/networkProjectNumber"] == {"int": 12345}
        assert attrs["gce.dra.net/ipAliases"] == {"string": "10.8.0.0/24,10.9.0.0/28"}
        assert attrs["gce.dra.net/machineType"] == {"string": "a3-highgpu-8g"}
        assert attrs["gce.dra.net/subBlock"] == {"string": "sub2"}
        assert len(meta.requests) == 1  # fetched once at start, not per scan
    finally:
        c.loop.run(meta.close())
