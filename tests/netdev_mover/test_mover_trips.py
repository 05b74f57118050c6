"""Trips from the event loop to the netlink worker threads: one per attach step at most.

On a small VM a hand-off to a worker thread and back costs about ten times the kernel's own
time for a link lookup, so the number of trips, not the number of netlink messages, is what
a pod waits for. The snapshot (six dumps, sysctl and ethtool reads) is one trip; the move
(find the device at home, move it, read it in the pod) is one; the pod netns and its socket
are one; a step's addresses, routes, rules or neighbours are one whatever their number;
closing the pod's socket is none.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from mover_lab import Lab, ipj, sh

from dranet_backends.netdev import ethtool
from dranet_backends.netdev.mover import NetdevMover
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RouteConfig

pytestmark = pytest.mark.netns


@contextmanager
def counting_trips() -> Iterator[Callable[[], int]]:
    """Count ``run_in_executor`` calls on the running loop (every trip to a thread)."""
    loop = asyncio.get_running_loop()
    real = loop.run_in_executor
    trips = [0]

    def counted(executor: Any, fn: Any, *args: Any) -> Any:
        trips[0] += 1
        return real(executor, fn, *args)

    loop.run_in_executor = counted  # type: ignore[method-assign]
    try:
        yield lambda: trips[0]
    finally:
        del loop.run_in_executor


def _configured_veth(lab: Lab) -> Any:
    lab.veth("tr0", "tr0p")
    sh(["ip", "-n", lab.node, "addr", "add", "10.77.0.1/24", "dev", "tr0"])
    sh(["ip", "-n", lab.node, "route", "add", "172.31.7.0/24", "via", "10.77.0.2", "dev", "tr0"])
    cfg = NetworkConfig(
        interface=InterfaceConfig(name="net1", mtu=1400, addresses=("10.88.0.2/24", "10.88.1.2/24")),
        routes=tuple(RouteConfig(destination=f"10.99.{i}.0/24", gateway="10.88.0.1") for i in range(3)),
    )
    return lab.device("tr0", cfg)


async def test_a_snapshot_is_one_trip(lab: Lab, mover: NetdevMover) -> None:
    dev = _configured_veth(lab)
    await mover.snapshot(dev)  # the host socket is opened on first use: not counted below
    with counting_trips() as trips:
        snap = await mover.snapshot(dev)
    assert trips() == 1
    assert [r["dst"] for r in snap["routes"]] == ["172.31.7.0"]  # the dumps did run
    assert snap["sysctls"]  # and the sysctl reads


async def test_an_attach_makes_at_most_one_trip_per_step(lab: Lab) -> None:
    dev = _configured_veth(lab)
    per_step: Counter[str] = Counter()
    current = ["netns"]
    seen: list[Callable[[], int]] = []

    async def hook(device: str, step: str) -> None:
        per_step[current[0]] += seen[0]() - sum(per_step.values())
        current[0] = step

    mover = NetdevMover(host_netns=f"/run/netns/{lab.node}", step_hook=hook)
    try:
        snap = await mover.snapshot(dev)
        with counting_trips() as trips:
            seen.append(trips)
            await mover.attach(dev, lab.pod_sandbox(), snap)
            per_step[current[0]] += trips() - sum(per_step.values())
    finally:
        await mover.aclose()
    assert per_step["netns"] == 1  # the pod netns opened and its socket made by one thread
    assert per_step["move"] == 1  # found at home, moved and read in the pod in one trip
    assert per_step["readback"] == 1  # and the pod socket closed without another
    assert per_step["addresses"] == 1  # two addresses, one trip
    assert per_step["routes"] == 1  # three routes, one trip
    assert max(per_step.values()) == 1, per_step
    assert sum(per_step.values()) == 6, per_step  # netns, move, addresses, up, routes, readback
    routes = {r["dst"] for r in ipj(lab.pod, "-4", "route", "show")}
    assert {f"10.99.{i}.0/24" for i in range(3)} <= routes


async def test_snapshots_share_one_ethtool_socket_of_the_host_netns_until_aclose(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a socket closed just before a link move costs the move a kernel tick (its inode is
    # freed through RCU, and the move waits for every CPU's pending RCU callbacks)
    made: list[socket.socket] = []
    real = ethtool.inet_socket

    def recording() -> socket.socket:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(ethtool, "inet_socket", recording)
    dev = _configured_veth(lab)
    mover = NetdevMover(host_netns=f"/run/netns/{lab.node}")
    try:
        snaps = [await mover.snapshot(dev) for _ in range(3)]
        assert len(made) == 1 and made[0].fileno() >= 0  # one socket, kept between snapshots
        assert all(s["features"] == snaps[0]["features"] for s in snaps) and snaps[0]["features"]
        assert ethtool.get_features(made[0], "tr0").changeable  # it is the host netns's: tr0 is there
    finally:
        await mover.aclose()
    assert made[0].fileno() == -1
