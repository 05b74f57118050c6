"""The netdev mover inside the real ``dranet run``: per-step attach timings in /metrics, and a
device parked under a temporary name renamed back when its name frees, also across a restart."""

from __future__ import annotations

import re
import urllib.request

from e2e.harness import Cluster, wait_for

from dranet_backends.netdev.attach import ATTACH_STEPS
from dranet_backends.netdev.hostside import temp_name


def _metrics(cluster: Cluster) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.driver.port}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def test_attach_step_histogram_has_every_step(cluster: Cluster) -> None:
    dev = cluster.node.veth(addrs=["10.61.0.2/24"])
    claim = cluster.claim([dev], config={"interface": {"name": "net1", "mtu": 1400}})
    pod = cluster.create_pod([claim])
    body = _metrics(cluster)
    counts = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^dranet_attach_step_seconds_count\{step="([^"]+)"\} (\S+)$', body, re.M)
    }
    assert set(ATTACH_STEPS) | {"snapshot", "netns"} <= set(counts), body
    assert all(counts[s] >= 1 for s in ATTACH_STEPS)
    cluster.delete_pod(pod)
    cluster.assert_home(dev)


def test_parked_device_renamed_back_after_a_restart(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    retry = "--backend-option=netdev.rename_retry_interval=0.2"
    cluster.start(retry)
    dev = cluster.node.veth(addrs=["10.62.0.2/24"])
    index = cluster.node.link(dev.name)["ifindex"]  # type: ignore[index]
    claim = cluster.claim([dev], config={"interface": {"name": "net1"}})
    pod = cluster.create_pod([claim])
    squatter = cluster.node.unique("q")
    cluster.node.ip("link", "add", dev.name, "type", "veth", "peer", "name", squatter)  # name taken
    assert cluster.stop_sandbox(pod).code == 0
    parked = temp_name(index)
    wait_for(f"{dev.name} parked as {parked}", lambda: cluster.node.link(parked), log=cluster.log)
    cluster.restart(retry)  # the driver dies while the device waits for its name
    cluster.node.delete_link(dev.name)  # the name frees while the new driver runs
    wait_for(f"{dev.name} renamed back", lambda: cluster.node.link(dev.name), log=cluster.log)
    cluster.assert_home(dev)
    assert cluster.node.link(parked) is None
    assert cluster.remove_sandbox(pod).code == 0
    assert cluster.unprepare(claim).error == ""
    cluster.node.drop_netns(pod.netns)
    cluster.live_pods.remove(pod)
