"""The driver's peers misbehave: the runtime restarts mid-attach and flaps, the kubelet
restarts and wipes the registration socket, the API server answers 500 or 409, hangs, or is
down when the driver starts; two pods race for one device.

After each: no device stranded, nothing half-way in the checkpoint, the driver serving and
a fresh pod working end to end.
"""

from __future__ import annotations

import contextlib

import pytest
from e2e.faultlib import assert_sound, journal_settled
from e2e.harness import Cluster, run_concurrently, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

CONFIG = {"interface": {"name": "net1", "addresses": ["192.168.42.2/24"]}}


def test_the_runtime_restarts_in_the_middle_of_an_attach(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.start("--debug-hold-after=attaching:2s")
    dev = c.node.veth(addrs=["10.81.0.2/24"])
    claim = c.claim([dev], config=CONFIG)
    pod = c.new_pod([claim])
    assert c.prepare(claim).error == ""
    run = c.loop.run_later(c.session.run_pod_sandbox(pod.sandbox))
    wait_for("attaching", lambda: c.driver.journal().get(claim.devices[0], {}).get("phase") == "attaching")
    before = len(c.runtime.sessions)
    c.runtime.sync_pods = []  # the half-created sandbox will not survive the restart
    c.loop.run(c.runtime.stop_listening())  # containerd restarts: every plugin connection drops
    with contextlib.suppress(ConnectionError):
        run.result(60)
    c.loop.run(c.runtime.start())
    c.wait_synchronized(before + 1)
    journal_settled(c)
    c.assert_home(dev)
    assert pod.links() == ["lo"]
    again = c.new_sandbox(pod)  # the kubelet retries the pod
    assert c.run_sandbox(again).code == 0, c.log()
    assert again.link("net1") is not None
    c.forget_pod(pod)
    c.delete_pod(again)
    assert_sound(c, dev)


def test_the_runtime_flaps(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.start()
    dev = c.node.veth(addrs=["10.82.0.2/24"])
    claim = c.claim([dev], config=CONFIG)
    pod = c.create_pod([claim])
    c.runtime.sync_pods = [pod.sandbox]
    before = len(c.runtime.sessions)
    for _ in range(5):
        c.loop.run(c.runtime.stop_listening())
        c.loop.run(c.runtime.start())
    c.wait_synchronized(before + 1)
    c.assert_serving()
    assert pod.link("net1") is not None  # a running pod keeps its device through it all
    c.runtime.sync_pods = []
    c.delete_pod(pod)
    assert_sound(c, dev)


def test_the_kubelet_restarts_and_wipes_the_registration_socket(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.start()
    c.kubelet.reg_sock.unlink()
    wait_for("the registration socket again", c.kubelet.reg_sock.exists, log=c.log)
    c.kubelet.register_sync(alive=lambda: c.driver.alive)
    assert_sound(c)


def test_the_api_server_answers_500_when_a_claim_is_read(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config=CONFIG)
    cluster.new_pod([claim])
    path = f"/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/{claim.name}"
    cluster.loop.call(cluster.api.fail_next, "GET", path, status=500, count=50)
    res = cluster.prepare(claim)
    cluster.loop.call(cluster.api.clear_faults)
    if res.error:  # (the driver may serve the claim from its cache and never GET it)
        _one_clear_line(res.error, (claim.name, "500"))
        assert claim.uid not in cluster.driver.claim_uids()
        assert cluster.prepare(claim).error == "", cluster.log()  # the kubelet's retry
    assert cluster.unprepare(claim).error == ""
    cluster.assert_home(dev)


def _one_clear_line(error: str, words: tuple[str, ...]) -> None:
    assert "\n" not in error.strip() and "Traceback" not in error, error
    assert not error.rstrip().endswith(":"), f"an error that says nothing: {error!r}"
    for w in words:
        assert w in error, f"{w!r} not in {error!r}"


def test_the_api_server_answers_409_to_the_claim_status(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config=CONFIG)
    path = f"/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/{claim.name}/status"
    cluster.loop.call(cluster.api.fail_next, None, path, status=409, count=3)
    pod = cluster.create_pod([claim])  # the status is not on the pod's critical path
    assert pod.link("net1") is not None
    (status,) = cluster.wait_status(claim)  # it is written once the conflicts pass
    assert status["networkData"]["ips"] == ["192.168.42.2/24"]
    cluster.loop.call(cluster.api.clear_faults)
    cluster.delete_pod(pod)
    cluster.assert_home(dev)


def test_the_api_server_hangs_when_a_claim_is_read(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config=CONFIG)
    cluster.new_pod([claim])
    path = f"/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/{claim.name}"
    cluster.loop.call(cluster.api.fail_next, "GET", path, hang=120, count=50)
    try:
        res = cluster.prepare(claim)
    finally:
        cluster.loop.call(cluster.api.clear_faults)
    if res.error:  # (the driver may serve the claim from its cache and never GET it)
        _one_clear_line(res.error, (claim.name,))
        assert "TimeoutError: " not in res.error or res.error.split("TimeoutError: ", 1)[1].strip(), res.error
    else:
        assert cluster.unprepare(claim).error == ""
    cluster.assert_serving()


def test_the_api_server_is_down_when_the_driver_starts(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.loop.run(c.api.go_down())
    c.driver.spawn()
    wait_for("the driver to start logging", c.driver.log_all, log=c.log)
    assert c.driver.alive, c.log()
    c.loop.run(c.api.come_back())
    c.kubelet.register_sync(alive=lambda: c.driver.alive)
    c.wait_synchronized(1)
    c.loop.run(c.driver.wait_healthy())
    wait_for("slices published", c.slice_devices, log=c.log)
    assert_sound(c)


def test_two_pods_race_for_one_device(cluster: Cluster) -> None:
    dev = cluster.node.veth(addrs=["10.83.0.2/24"])
    claims = [cluster.claim([dev], config=CONFIG) for _ in range(2)]  # a scheduler bug
    pods = [cluster.new_pod([cl]) for cl in claims]
    prepared = [cluster.prepare(cl).error == "" for cl in claims]
    runs = run_concurrently(
        [lambda p=p: cluster.run_sandbox(p) for p, ok in zip(pods, prepared, strict=False) if ok]
    )
    winners = [p for p in pods if p.link("net1") is not None]
    assert len(winners) == 1, f"{len(winners)} pods hold the device\n{runs}\n{cluster.log()}"
    ok_runs = [r for r in runs if not isinstance(r, BaseException) and r.code == 0]
    assert len(ok_runs) == 1, runs
    for p in pods:
        cluster.stop_sandbox(p)
        cluster.remove_sandbox(p)
    for cl in claims:
        assert cluster.unprepare(cl).error == ""
    for p in pods:
        cluster.forget_pod(p)
    cluster.assert_home(dev)
    cluster.assert_forgotten(*claims)
