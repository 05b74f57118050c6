"""What every fault test asserts afterwards, and the setups they share."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from e2e.harness import Cluster, Dev, Pod, wait_for

SETTLED = ("prepared", "attached")


def add_routes(cluster: Cluster, dev: Dev, count: int, table: int = 100) -> None:
    """``count`` device routes on ``dev`` in ``table`` (one ``ip -batch``)."""
    lines = [
        f"route add 10.{128 + i // 250}.{i % 250}.0/24 dev {dev.name} table {table}" for i in range(count)
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        subprocess.run(["ip", "-n", cluster.node.ns, "-batch", f.name], check=True, capture_output=True)
    finally:
        Path(f.name).unlink()


def route_count(ns: str, table: int = 100) -> int:
    out = subprocess.run(
        ["ip", "-n", ns, "route", "show", "table", str(table)], capture_output=True, text=True, check=False
    )
    return len([x for x in out.stdout.splitlines() if x.strip()])


def journal_settled(cluster: Cluster) -> None:
    """Wait until no device is half-way (``attaching``/``detaching``) in the checkpoint."""

    def settled() -> bool:
        return all(st["phase"] in SETTLED for st in cluster.driver.journal_entries())

    wait_for("the journal to settle", settled, log=cluster.log)


def assert_sound(cluster: Cluster, *home: Dev) -> None:
    """After a fault: the devices in ``home`` are home as created, nothing is half-way in
    the checkpoint, the driver serves, and a fresh pod gets a fresh device end to end."""
    for dev in home:
        cluster.assert_home(dev)
    journal_settled(cluster)
    cluster.assert_serving()
    smoke(cluster)


def smoke(cluster: Cluster) -> None:
    """A whole pod life on a new device: prepare, RunPodSandbox, Stop, Remove, unprepare."""
    dev = cluster.node.veth(addrs=["10.254.0.2/24"])
    claim = cluster.claim([dev], config={"interface": {"name": "smoke0"}})
    pod = cluster.create_pod([claim])
    assert pod.link("smoke0") is not None, cluster.log()
    cluster.delete_pod(pod)
    cluster.assert_home(dev)
    cluster.assert_forgotten(claim)


def in_pod(pod: Pod, ifname: str) -> bool:
    return pod.link(ifname) is not None
