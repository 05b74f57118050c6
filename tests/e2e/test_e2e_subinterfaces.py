"""Subinterfaces on the real driver: a shareable parent stays on the node, each claim gets a child.

The driver runs with ``--backend-option netdev.subinterface_parents=sp*``: a veth named
``sp...`` in the node namespace is published with ``allowMultipleAllocations``; the harness
plays the scheduler and gives each claim on it its own ``shareID``. Each pod gets a fresh
macvlan child of the parent in its own network namespace, deleted when the pod stops; the
parent never leaves the node. ipvlan is tested at message level and on the mover
(``tests/netdev_subif``, ``tests/netdev_mover/test_mover_subif.py``): this kernel may lack it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
from e2e.harness import Claim, Cluster, Dev, Pod, global_addrs, ip_json, root_or_skip, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

PARENTS = "netdev.subinterface_parents=sp*"


def macvlan(addr: str, mode: str = "bridge", **iface: Any) -> dict[str, Any]:
    return {
        "subinterface": {"type": "macvlan", "mode": mode},
        "interface": {"name": "net1", "addresses": [addr], "mtu": 1400, **iface},
        "routes": [{"destination": "10.77.0.0/16", "gateway": addr.rsplit(".", 1)[0] + ".1"}],
    }


def child(pod: Pod, name: str = "net1") -> dict[str, Any] | None:
    links = [x for x in ip_json(pod.netns, "-d", "link", "show") if x["ifname"] == name]
    return links[0] if links else None


def _until_child(pod: Pod, within: float = 60.0) -> None:
    """Poll as fast as ``ip`` answers until ``net1`` exists in the pod."""
    deadline = time.monotonic() + within
    argv = ["ip", "-n", pod.netns, "link", "show", "net1"]
    while subprocess.run(argv, capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "the child never appeared"


def phase(c: Cluster, claim: Claim) -> str | None:
    entry = c.driver.checkpoint().get("claims", {}).get(claim.uid, {}).get("devices", {})
    st = entry.get(claim.devices[0])
    return None if st is None else str(st.get("phase"))


@pytest.fixture(scope="module")
def sub_cluster(grpc_pb: types.SimpleNamespace) -> Iterator[Cluster]:
    root_or_skip()
    c = Cluster(grpc_pb)
    try:
        c.start("--backend-option", PARENTS)
        yield c
    finally:
        c.close()


@pytest.fixture
def cluster(sub_cluster: Cluster) -> Iterator[Cluster]:
    c = sub_cluster
    if not c.driver.alive:
        c.start(*c.extra)
    try:
        yield c
    finally:
        c.cleanup()
    c.assert_serving()


def parent(c: Cluster) -> Dev:
    return c.node.veth(c.node.unique("sp"), addrs=["192.0.2.5/24"])


def test_two_pods_share_one_parent_each_with_its_own_macvlan(cluster: Cluster) -> None:
    c = cluster
    up = parent(c)
    other = c.node.veth()
    assert c.published(up.name).get("allowMultipleAllocations") is True
    assert "allowMultipleAllocations" not in c.published(other.name)  # only the configured parents

    a = c.claim([up], config=macvlan("10.9.0.2/24"), share=True)
    b = c.claim([up], config=macvlan("10.9.0.3/24", mode="private"), share=True)
    pa, pb = c.create_pod([a]), c.create_pod([b])

    for pod, claim, ip, mode in ((pa, a, "10.9.0.2/24", "bridge"), (pb, b, "10.9.0.3/24", "private")):
        link = child(pod)
        assert link is not None, pod.links()
        assert link["linkinfo"]["info_kind"] == "macvlan"
        assert link["linkinfo"]["info_data"]["mode"] == mode
        assert link["mtu"] == 1400 and "UP" in link["flags"]
        assert global_addrs(pod.link("net1")) == [ip]
        assert {r["dst"] for r in ip_json(pod.netns, "route", "show", "dev", "net1")} >= {"10.77.0.0/16"}
        (res,) = c.prepare(claim).devices  # a repeated prepare answers the same, with the share ID
        assert res.device_name == claim.devices[0] and res.share_id == claim.share_ids[0]
        (status,) = c.wait_status(claim)
        assert status["shareID"] == claim.share_ids[0]
        assert status["networkData"]["interfaceName"] == "net1"
        assert status["networkData"]["ips"] == [ip]
    assert child(pa)["address"] != child(pb)["address"]  # type: ignore[index]
    home = c.node.link(up.name)
    assert home is not None and "UP" in home["flags"] and global_addrs(home) == ["192.0.2.5/24"]

    assert c.stop_sandbox(pa).code == 0
    assert pa.links() == ["lo"]  # the child is deleted at stop, while the netns still exists
    assert child(pb) is not None  # the other claim's child is untouched
    c.delete_pod(pa)
    c.delete_pod(pb)
    c.assert_home(up)
    c.assert_forgotten(a, b)


def test_shared_device_without_subinterface_and_the_reverse_are_per_claim_errors(cluster: Cluster) -> None:
    c = cluster
    up = parent(c)
    other = c.node.veth()
    plain = c.claim([up], config={"interface": {"name": "net1"}}, share=True)
    c.new_pod([plain])
    err = c.prepare(plain).error
    assert "subinterface: is required for a shared device" in err and plain.devices[0] in err
    wrong = c.claim([other], config=macvlan("10.9.0.4/24"))
    c.new_pod([wrong])
    err = c.prepare(wrong).error
    assert "subinterface: needs a device published as shareable" in err and wrong.devices[0] in err
    bad = c.claim([up], config={"subinterface": {"type": "macvlan", "mode": "l3"}}, share=True)
    c.new_pod([bad])
    err = c.prepare(bad).error
    assert (
        "subinterface.mode: must be one of bridge, private, vepa, passthru for type macvlan, got 'l3'" in err
    )
    assert c.node.link(up.name) is not None and c.node.link(other.name) is not None
    c.assert_forgotten(plain, wrong, bad)
    good = c.claim([up], config=macvlan("10.9.0.5/24"), share=True)
    pod = c.create_pod([good])  # the parent is still usable
    assert child(pod) is not None
    c.delete_pod(pod)


def test_pod_netns_gone_before_stop_the_child_went_with_it(cluster: Cluster) -> None:
    c = cluster
    up = parent(c)
    claim = c.claim([up], config=macvlan("10.9.0.6/24"), share=True)
    pod = c.create_pod([claim])
    c.node.drop_netns(pod.netns)  # the runtime tore the namespace down first
    assert c.stop_sandbox(pod).code == 0
    wait_for("the journal to settle", lambda: phase(c, claim) == "prepared", log=c.log)
    c.delete_pod(pod)
    c.assert_home(up)
    c.assert_forgotten(claim)


def _catch_mid_attach(c: Cluster, up: Dev, config: dict[str, Any], held: bool) -> tuple[Claim, Pod, Any]:
    """Start pods on ``up`` until one's attach is caught half-way (the driver then stays
    stopped): held after the journal write, or frozen when the child appears in the pod
    while the journal still says ``attaching`` (a pod that finished first is deleted)."""
    for _ in range(5):
        claim = c.claim([up], config=config, share=True)
        pod = c.new_pod([claim])
        assert c.prepare(claim).error == "", c.log()
        run = c.loop.run_later(c.session.run_pod_sandbox(pod.sandbox))
        if held:
            wait_for("attaching", lambda claim=claim: phase(c, claim) == "attaching", log=c.log)
            return claim, pod, run
        _until_child(pod)
        assert c.driver.proc is not None
        os.kill(c.driver.proc.pid, signal.SIGSTOP)
        if phase(c, claim) == "attaching":
            return claim, pod, run
        os.kill(c.driver.proc.pid, signal.SIGCONT)  # too late: it finished; try another pod
        assert run.result(60).code == 0
        c.delete_pod(pod)
    raise AssertionError("never caught the attach half-way in five tries")


@pytest.mark.parametrize("where", ["record-journalled", "child-half-made"])
def test_sigkill_mid_attach_then_restart_strands_nothing(fresh_cluster: Cluster, where: str) -> None:
    """Killed after the journal holds the child's record (held before the mover runs), or
    while the child exists in the pod and its config is half applied."""
    c = fresh_cluster
    up = parent(c)
    held = where == "record-journalled"
    flags = ("--backend-option", PARENTS, *(["--debug-hold-after=attaching:60s"] if held else []))
    c.start(*flags)
    # many addresses: the attach steps after the child's creation take a while
    config = macvlan("10.9.0.7/24")
    config["interface"]["addresses"] += [f"10.8.{i // 250}.{i % 250 + 1}/32" for i in range(480)]
    assert len(json.dumps(config)) < 10 * 1024  # the API's bound on opaque parameters
    claim, pod, run = _catch_mid_attach(c, up, config, held)
    c.crash()
    with contextlib.suppress(ConnectionError):
        run.result(30)
    if not held:
        assert child(pod) is not None  # the half-made child was left in the pod by the crash
    c.runtime.sync_pods = []  # the runtime gave up on that sandbox; the kubelet retries
    c.start(*flags[:2])
    wait_for("the journal to settle", lambda: phase(c, claim) == "prepared", log=c.log)
    assert pod.links() == ["lo"], "the half-made child was deleted"
    home = c.node.link(up.name)
    assert home is not None and global_addrs(home) == ["192.0.2.5/24"]
    assert claim.uid in c.driver.claim_uids()  # still prepared: the kubelet did not unprepare it
    retry = c.new_sandbox(pod)
    assert c.run_sandbox(retry).code == 0, c.log()
    link = child(retry)
    assert link is not None and link["linkinfo"]["info_kind"] == "macvlan"
    assert "10.9.0.7/24" in global_addrs(retry.link("net1"))
    assert c.stop_sandbox(retry).code == 0
    assert retry.links() == ["lo"]
    c.delete_pod(retry)
    c.forget_pod(pod)
    c.assert_home(up)
    c.assert_forgotten(claim)
