"""The Go driver's scenarios that stop or restart the driver (14, 15, 21) and VRF (20).

Each test has a driver of its own (``fresh_cluster``).
"""

from __future__ import annotations

import subprocess

import pytest
from e2e.harness import Cluster, global_addrs
from e2e.nodenet import vrf_probe

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]


def test_driver_should_gracefully_shutdown_when_terminated(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.start()
    assert c.kubelet.reg_sock.exists()
    endpoint = c.kubelet.endpoint
    assert endpoint and subprocess.run(["test", "-S", endpoint], check=False).returncode == 0
    assert c.stop() == 0, c.log()
    assert not c.kubelet.reg_sock.exists()
    assert subprocess.run(["test", "-e", endpoint], check=False).returncode != 0


def test_unprepare_claims_on_driver_restart_after_pod_deletion_during_driver_downtime(
    fresh_cluster: Cluster,
) -> None:
    c = fresh_cluster
    c.start()
    dev = c.node.veth(addrs=["10.60.0.2/24"])
    claim = c.claim([dev])
    pod = c.create_pod([claim])
    c.crash()
    # the pod is force-deleted while the driver is down: the runtime tears the sandbox down
    # (no NRI event reaches the driver) and deletes its netns, the veth dies with it
    c.forget_pod(pod)
    assert claim.uid in c.driver.claim_uids()  # the checkpoint still knows the claim
    c.runtime.sync_pods = []
    c.start()
    res = c.unprepare(claim)  # the kubelet unprepares after the driver re-registers
    assert res.error == "", c.log()
    c.assert_forgotten(claim)
    assert c.node.link(dev.name) is None and c.node.link(dev.peer or "") is None  # gone, not stranded
    c.assert_serving()


def test_allocated_device_in_resourceslice_remains_unchanged_across_driver_restart(
    fresh_cluster: Cluster,
) -> None:
    c = fresh_cluster
    c.start()
    dev = c.node.veth(addrs=["10.61.0.2/24"])
    c.wait_attrs(dev.name, lambda a: a.get("dra.net/state") == {"string": "up"})
    before = c.published(dev.name)
    claim = c.claim([dev])
    pod = c.create_pod([claim])
    c.wait_status(claim)
    assert c.slice_devices()[dev.name][1] == before  # across allocation
    assert c.stop() == 0, c.log()
    c.runtime.sync_pods = [pod.sandbox]
    c.start()
    after = c.published(dev.name)
    assert after == before, c.log()  # across the restart, while the device is in the pod
    assert global_addrs(pod.link(dev.name)) == ["10.61.0.2/24"]
    c.runtime.sync_pods = []
    c.delete_pod(pod)
    c.assert_home(dev)


def test_validate_vrf_routing(fresh_cluster: Cluster) -> None:
    problem = vrf_probe()
    if problem:
        pytest.skip(f"probe ip link add type vrf failed: {problem}")
    c = fresh_cluster
    c.start()
    a = c.node.veth(peer=c.node.unique("ra"))
    b = c.node.veth(peer=c.node.unique("rb"))
    assert a.peer and b.peer
    vrf = {"name": "test-vrf"}
    c1 = c.claim(
        [a],
        config={
            "interface": {"name": "eth1", "addresses": ["10.10.10.1/24"], "vrf": vrf},
            "routes": [{"destination": "0.0.0.0/0", "gateway": "10.10.10.254"}],
        },
    )
    c2 = c.claim(
        [b],
        config={
            "interface": {"name": "eth1", "addresses": ["10.10.20.1/24"], "vrf": vrf},
            "routes": [{"destination": "0.0.0.0/0", "gateway": "10.10.20.254"}],
        },
    )
    router = c.claim(
        [a.peer, b.peer],
        request_configs={
            "r0": {
                "interface": {
                    "name": "eth1",
                    "addresses": ["10.10.10.254/24"],
                    "forwarding": True,
                    "vrf": vrf,
                }
            },
            "r1": {
                "interface": {
                    "name": "eth2",
                    "addresses": ["10.10.20.254/24"],
                    "forwarding": True,
                    "vrf": vrf,
                }
            },
        },
    )
    pods = [c.create_pod([x]) for x in (c1, c2, router)]
    out = pods[0].exec("ping", "-c", "1", "-W", "5", "-I", "eth1", "10.10.20.1", check=False)
    assert "1 received" in out, out
    for p in pods:
        c.delete_pod(p)
