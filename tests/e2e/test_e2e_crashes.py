"""SIGKILL at every stage of a pod's life, then a restart: nothing stranded, nothing forgotten.

Each test has its own driver. The journal stage to kill at is reached through the driver's
debug hold (``--debug-hold-after=PHASE:SECONDS``) or, for a kill in the middle of moving a
device with thousands of routes, by killing as soon as the journal shows the phase.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from e2e.faultlib import add_routes, assert_sound, journal_settled, route_count
from e2e.harness import Cluster, in_ns, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

ROUTES = 2000
BOUND = 16384  # the driver's bound of routes per device


def _settle(call: concurrent.futures.Future[Any]) -> None:
    """The runtime's call that was in flight when the driver died: it fails (the
    connection is gone) or, when the kill came after the reply, it succeeded."""
    with contextlib.suppress(ConnectionError):
        call.result(30)


def _phase(c: Cluster, device: str, phase: str) -> bool:
    return c.driver.journal().get(device, {}).get("phase") == phase


@pytest.mark.parametrize("held", [True, False], ids=["held", "mid-move"])
def test_sigkill_mid_attach_with_thousands_of_routes_then_the_sandbox_is_gone(
    fresh_cluster: Cluster, held: bool
) -> None:
    c = fresh_cluster
    c.start(*(["--debug-hold-after=attaching:60s"] if held else []))
    dev = c.node.veth(addrs=["10.90.0.2/16"])
    add_routes(c, dev, ROUTES)
    claim = c.claim([dev])
    pod = c.new_pod([claim])
    assert c.prepare(claim).error == ""
    run = c.loop.run_later(c.session.run_pod_sandbox(pod.sandbox))
    devname = claim.devices[0]
    wait_for("attaching", lambda: _phase(c, devname, "attaching"), log=c.log)
    c.crash()
    _settle(run)
    # the runtime gave up on that sandbox; the kubelet will retry with a new one
    c.runtime.sync_pods = []
    c.start()
    journal_settled(c)
    c.assert_home(dev)
    assert route_count(c.node.ns) == ROUTES, "the device's routes came home with it"
    assert pod.links() == ["lo"]
    assert claim.uid in c.driver.claim_uids()  # still prepared: the kubelet has not unprepared it
    # the kubelet's retry: a new sandbox for the same pod gets the device
    retry = c.new_sandbox(pod)
    assert c.run_sandbox(retry).code == 0, c.log()
    assert retry.link(dev.name) is not None
    assert route_count(retry.netns) == ROUTES
    c.delete_pod(retry)
    c.forget_pod(pod)
    assert_sound(c, dev)


@pytest.mark.parametrize("held", [True, False], ids=["held", "mid-move"])
def test_sigkill_mid_detach_with_thousands_of_routes(fresh_cluster: Cluster, held: bool) -> None:
    c = fresh_cluster
    c.start(*(["--debug-hold-after=detaching:60s"] if held else []))
    dev = c.node.veth(addrs=["10.91.0.2/16"])
    add_routes(c, dev, ROUTES)
    claim = c.claim([dev])
    pod = c.create_pod([claim])
    stop = c.loop.run_later(c.session.stop_pod_sandbox(pod.sandbox))
    wait_for("detaching", lambda: _phase(c, claim.devices[0], "detaching"), log=c.log)
    c.crash()
    _settle(stop)
    c.runtime.sync_pods = []  # the pod is gone by the time the driver is back
    c.start()
    journal_settled(c)
    c.assert_home(dev)
    assert route_count(c.node.ns) == ROUTES
    assert claim.uid in c.driver.claim_uids()
    assert c.unprepare(claim).error == ""
    c.assert_forgotten(claim)
    c.forget_pod(pod)
    assert_sound(c, dev)


@pytest.mark.parametrize("stage", ["prepared", "attached", "stopped", "removed"])
def test_sigkill_at_a_stage_of_the_pod_life_then_restart(fresh_cluster: Cluster, stage: str) -> None:
    c = fresh_cluster
    c.start()
    dev = c.node.veth(addrs=["10.92.0.2/24"])
    claim = c.claim([dev], config={"interface": {"name": "net1", "addresses": ["192.168.5.2/24"]}})
    pod = c.new_pod([claim])
    assert c.prepare(claim).error == ""
    running = stage != "prepared"
    if running:
        assert c.run_sandbox(pod).code == 0, c.log()
    if stage in ("stopped", "removed"):
        assert c.stop_sandbox(pod).code == 0
        running = False
    if stage == "removed":
        assert c.remove_sandbox(pod).code == 0
    c.crash()
    c.runtime.sync_pods = [pod.sandbox] if running else []
    c.start()
    journal_settled(c)
    if stage == "prepared":
        assert c.run_sandbox(pod).code == 0, c.log()
        running = True
    if running:
        assert pod.link("net1") is not None, c.log()  # kept in the running pod
        assert c.driver.journal()[claim.devices[0]]["phase"] == "attached"
        assert c.stop_sandbox(pod).code == 0
    else:
        c.assert_home(dev)
    assert c.remove_sandbox(pod).code == 0
    assert c.unprepare(claim).error == ""
    c.assert_forgotten(claim)
    c.forget_pod(pod)
    assert_sound(c, dev)


def test_sigkill_after_unprepare_leaves_nothing_behind(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.start()
    dev = c.node.veth(addrs=["10.93.0.2/24"])
    claim = c.claim([dev])
    pod = c.create_pod([claim])
    c.delete_pod(pod)
    c.crash()
    c.start()
    assert c.driver.claim_uids() == set()
    # unprepare again (the kubelet repeats calls it is not sure of): still fine
    assert c.unprepare(claim).error == ""
    assert_sound(c, dev)


def test_a_device_with_more_routes_than_the_bound_is_refused_and_stays_home(cluster: Cluster) -> None:
    dev = cluster.node.veth(addrs=["10.89.0.2/16"])
    add_routes(cluster, dev, BOUND + 1)
    claim = cluster.claim([dev])
    pod = cluster.new_pod([claim])
    assert cluster.prepare(claim).error == ""
    res = cluster.run_sandbox(pod)
    assert res.code != 0, f"{BOUND + 1} routes were accepted"
    assert str(BOUND + 1) in res.message and str(BOUND) in res.message, res.message
    assert pod.links() == ["lo"]
    cluster.assert_home(dev)
    assert route_count(cluster.node.ns) == BOUND + 1
    assert cluster.stop_sandbox(pod).code == 0
    assert cluster.remove_sandbox(pod).code == 0
    assert cluster.unprepare(claim).error == ""
    cluster.forget_pod(pod)


def test_a_checkpoint_from_before_a_reboot_voids_its_attachments(fresh_cluster: Cluster) -> None:
    """A reboot takes every pod namespace with it and brings devices home: the driver reads
    a checkpoint stamped with another boot id, voids its attachments (restores nothing),
    keeps the claims prepared, and stamps the file with this boot's id."""
    c = fresh_cluster
    c.start()
    dev = c.node.veth(addrs=["10.93.0.2/24"])
    claim = c.claim([dev], config={"interface": {"name": "net1"}})
    pod = c.create_pod([claim])
    devname = claim.devices[0]
    assert c.driver.journal()[devname]["phase"] == "attached"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert c.driver.checkpoint()["bootID"] == boot_id
    c.crash()
    # what a reboot leaves: the device home under its own name, the pod and its netns gone
    in_ns(pod.netns, "ip", "link", "set", "net1", "down")
    in_ns(pod.netns, "ip", "link", "set", "net1", "netns", c.node.ns, "name", dev.name)
    c.forget_pod(pod)
    c.runtime.sync_pods = []
    doc = c.driver.checkpoint()
    doc["bootID"] = "00000000-0000-0000-0000-000000000000"
    c.driver.db.write_text(json.dumps(doc))
    c.start()
    assert "written before a reboot" in c.log()
    assert c.driver.checkpoint()["bootID"] == boot_id
    assert c.driver.journal()[devname] == {"phase": "prepared"}
    assert claim.uid in c.driver.claim_uids()
    assert "device back home" not in c.log(), "nothing is restored from a void attachment"
    # the kubelet's new pod for the claim gets the device as usual
    again = c.new_sandbox(pod)
    assert c.run_sandbox(again).code == 0, c.log()
    assert again.link("net1") is not None
    c.delete_pod(again)
    assert_sound(c)
