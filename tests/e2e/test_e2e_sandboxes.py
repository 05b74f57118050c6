"""A pod's sandbox replaced, its network namespace deleted or kept alive behind the driver's
back: the device follows the sandbox that runs, and is never forgotten while it is out.

An attachment belongs to a sandbox (its id and its netns), not to a pod UID: containerd
tears a failed sandbox down without StopPodSandbox/RemovePodSandbox and the kubelet retries
with a new sandbox of the same pod.
"""

from __future__ import annotations

import pytest
from e2e.faultlib import assert_sound, journal_settled
from e2e.harness import Cluster, global_addrs, ip, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

CONFIG = {"interface": {"name": "net1", "addresses": ["192.168.40.2/24"]}}


def test_a_new_sandbox_of_the_same_pod_gets_the_device(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config=CONFIG)
    sb1 = cluster.create_pod([claim])
    assert sb1.link("net1") is not None
    sb2 = cluster.new_sandbox(sb1)  # sb-1 torn down without Stop/Remove; its netns A stays
    res = cluster.run_sandbox(sb2)
    assert res.code == 0, f"{res}\n{cluster.log()}"
    assert global_addrs(sb2.link("net1")) == ["192.168.40.2/24"], cluster.log()
    assert sb1.links() == ["lo"]
    cluster.forget_pod(sb1)
    cluster.delete_pod(sb2)
    cluster.assert_home(dev)
    cluster.assert_forgotten(claim)


def test_a_new_sandbox_after_the_old_netns_path_was_deleted_gets_the_device(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config=CONFIG)
    sb1 = cluster.create_pod([claim])
    holder = cluster.hold(sb1)  # a container still runs in netns A
    ip("netns", "del", sb1.netns)  # ... but its path is gone
    assert "net1" in holder.links()
    sb2 = cluster.new_sandbox(sb1)
    res = cluster.run_sandbox(sb2)
    if res.code == 0:
        assert sb2.link("net1") is not None, f"success with no device\n{cluster.log()}"
        assert "net1" not in holder.links()
    else:
        # the old netns cannot be reached by any path: a clear refusal, never a false success
        assert claim.devices[0] in res.message, res.message
        assert sb2.links() == ["lo"]
        (status,) = cluster.wait_status(claim)
        assert {x["type"]: x["status"] for x in status["conditions"]}.get("Ready") == "False", status
        assert claim.uid in cluster.driver.claim_uids()  # not forgotten while out
        holder.close()  # the last container exits: the device dies with its netns
        cluster.forget_pod(sb1)
        cluster.forget_pod(sb2)
        wait_for("unprepare to succeed", lambda: cluster.unprepare(claim).error == "", log=cluster.log)
        cluster.assert_forgotten(claim)
        return
    cluster.forget_pod(sb1)
    cluster.delete_pod(sb2)
    cluster.assert_home(dev)


def test_a_new_sandbox_after_the_old_netns_died_with_the_device_fails_clearly(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config=CONFIG)
    sb1 = cluster.create_pod([claim])
    cluster.forget_pod(sb1)  # netns A deleted for good: the veth dies with it
    sb2 = cluster.new_sandbox(sb1)
    res = cluster.run_sandbox(sb2)
    assert res.code != 0, f"RunPodSandbox succeeded with no device\n{cluster.log()}"
    assert dev.name in res.message or claim.devices[0] in res.message, res.message
    assert sb2.links() == ["lo"]
    cluster.forget_pod(sb2)
    assert cluster.unprepare(claim).error == ""  # the device is verifiably gone
    cluster.assert_forgotten(claim)


def test_a_new_sandbox_created_while_the_driver_was_down_gets_the_device(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.start()
    dev = c.node.veth()
    claim = c.claim([dev], config=CONFIG)
    sb1 = c.create_pod([claim])
    c.crash()
    sb2 = c.new_sandbox(sb1)  # the runtime replaced the sandbox meanwhile
    c.runtime.sync_pods = [sb2.sandbox]
    c.start()
    wait_for("the device in the new sandbox", lambda: sb2.link("net1"), log=c.log)
    assert sb1.links() == ["lo"]
    journal_settled(c)
    c.forget_pod(sb1)
    c.runtime.sync_pods = []
    c.delete_pod(sb2)
    assert_sound(c, dev)


def test_unprepare_keeps_a_claim_whose_device_is_in_a_live_netns_whose_path_was_recreated(
    cluster: Cluster,
) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config=CONFIG)
    pod = cluster.create_pod([claim])
    holder = cluster.hold(pod)
    ip("netns", "del", pod.netns)
    ip("netns", "add", pod.netns)  # the same path, now a different (empty) namespace
    stop = cluster.stop_sandbox(pod)
    cluster.remove_sandbox(pod)
    res = cluster.unprepare(claim)
    home = cluster.node.link(dev.name) is not None
    if not home:
        # the device is still configured in the live netns: the claim must not be forgotten
        assert "net1" in holder.links()
        assert res.error != "" or stop.code != 0, cluster.log()
        assert claim.uid in cluster.driver.claim_uids(), f"forgotten while out\n{cluster.log()}"
        holder.close()  # the last container exits: the netns and its veth are gone
        wait_for("unprepare to succeed", lambda: cluster.unprepare(claim).error == "", log=cluster.log)
    cluster.assert_forgotten(claim)
    cluster.forget_pod(pod)
    if home:
        cluster.assert_home(dev)


def test_pod_netns_deleted_before_stop_pod_sandbox(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config=CONFIG)
    pod = cluster.create_pod([claim])
    ip("netns", "del", pod.netns)  # the veth dies with the namespace
    assert cluster.stop_sandbox(pod).code == 0, cluster.log()
    assert cluster.remove_sandbox(pod).code == 0
    assert cluster.unprepare(claim).error == "", cluster.log()
    cluster.assert_forgotten(claim)
    assert cluster.node.link(dev.name) is None
    cluster.forget_pod(pod)
    cluster.assert_serving()
