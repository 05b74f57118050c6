"""Hostile pod network namespace paths, and a device whose name the host re-used while it
was in a pod.

A netns path that is not a network namespace (a regular file, a directory, a FIFO,
``/proc/self/ns/mnt``), the node's own namespace, a relative path or an 8 KB one: one clear
error, nothing moved, and the driver keeps serving meanwhile (a FIFO must not block it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from e2e.harness import Cluster, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

KINDS = ["regular-file", "directory", "fifo", "node-netns", "proc-self-ns-mnt", "relative", "8kb-long"]


def _path(kind: str, c: Cluster) -> str:
    base = c.tmp / f"netns-{kind}"
    if kind == "regular-file":
        base.write_text("not a namespace\n")
    elif kind == "directory":
        base.mkdir()
    elif kind == "fifo":
        os.mkfifo(base)
    elif kind == "node-netns":
        return c.node.path
    elif kind == "proc-self-ns-mnt":
        return "/proc/self/ns/mnt"
    elif kind == "relative":
        return "run/netns/" + c.node.ns
    else:
        return "/" + "a" * 8191
    return str(base)


def _release_fifo(path: str) -> None:
    """Open the FIFO for writing without blocking: a reader stuck in open() is released."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("kind", KINDS)
def test_a_hostile_pod_netns_path_is_refused_and_nothing_moves(cluster: Cluster, kind: str) -> None:
    dev = cluster.node.veth(addrs=["10.96.0.2/24"])
    claim = cluster.claim([dev], config={"interface": {"name": "net1"}})
    pod = cluster.new_pod([claim])
    assert cluster.prepare(claim).error == ""
    node_links = cluster.node.links()
    path = _path(kind, cluster)
    pod.sandbox.netns = path
    run = cluster.loop.run_later(cluster.session.run_pod_sandbox(pod.sandbox))
    try:
        # the driver keeps serving while it looks at the path (10 s: a deadline for a hang)
        code, _ = cluster.loop.run(asyncio.wait_for(cluster.driver.healthz(), 10))
        assert code == 200
        res = run.result(60)
    finally:
        if kind == "fifo":
            _release_fifo(path)
    assert not res.timed_out, f"RunPodSandbox hung on a {kind} netns path\n{cluster.log()}"
    assert res.code != 0, f"a {kind} netns path was accepted\n{cluster.log()}"
    assert "netns" in res.message.lower() or "namespace" in res.message.lower(), res.message
    assert len(res.message) < 1024, "the message is bounded"
    assert cluster.node.links() == node_links, "something moved on the node"
    cluster.assert_home(dev)
    assert "a" * 300 not in cluster.driver.log_all(), "an 8 KB path is logged shortened"
    # the cluster is told: a Warning event on the pod, the claim's device not Ready
    events = wait_for(
        "a Warning event on the pod",
        lambda: [
            e for e in cluster.events(pod.sandbox.name) if e.get("reason") == "NetworkDeviceAttachFailed"
        ],
        log=cluster.log,
    )
    assert events[0]["type"] == "Warning"
    (status,) = cluster.wait_status(claim)
    assert {x["type"]: x["status"] for x in status["conditions"]}.get("Ready") == "False", status
    assert cluster.stop_sandbox(pod).code == 0
    assert cluster.remove_sandbox(pod).code == 0
    assert cluster.unprepare(claim).error == ""
    cluster.forget_pod(pod)
    cluster.assert_serving()


def _by_mac(c: Cluster, mac: str) -> str | None:
    from e2e.harness import ip_json

    for link in ip_json(c.node.ns, "link", "show"):
        if link.get("address") == mac:
            name: str = link["ifname"]
            return name
    return None


def test_the_host_reuses_a_device_name_while_the_device_is_in_a_pod(cluster: Cluster) -> None:
    dev = cluster.node.veth(addrs=["10.97.0.2/24"])
    claim = cluster.claim([dev], config={"interface": {"name": "net1"}})
    pod = cluster.create_pod([claim])
    # the host creates a link of the same name meanwhile
    impostor_peer = cluster.node.unique("q")
    cluster.node.ip("link", "add", dev.name, "type", "veth", "peer", "name", impostor_peer)
    assert cluster.stop_sandbox(pod).code == 0, cluster.log()
    assert cluster.remove_sandbox(pod).code == 0
    # home, but parked under another name while its own is taken
    parked = wait_for("the device home", lambda: _by_mac(cluster, dev.mac), log=cluster.log)
    assert parked != dev.name
    assert claim.uid in cluster.driver.claim_uids() or cluster.unprepare(claim).error == ""
    # the host's link goes away: the device gets its name back, without any pod event
    cluster.node.delete_link(dev.name)
    wait_for("the device renamed back", lambda: _by_mac(cluster, dev.mac) == dev.name, log=cluster.log)
    cluster.assert_home(dev)
    assert cluster.unprepare(claim).error == ""
    cluster.assert_forgotten(claim)
    cluster.forget_pod(pod)
