"""Benchmark: a subinterface per claim: snapshot (the child's record) + attach (a macvlan child
of one shared veth parent made in a pod, addressed, routed, up) and detach (deleted), over N
pods, against iproute2 doing the same operations with ``ip -batch`` (the floor, measured in
the same run). Root only; everything happens in throwaway ``dnt-bench-*`` namespaces.

    .venv/bin/python benchmarks/bench_subif.py [N]
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

from dranet_backends.netdev.mover import NetdevMover
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RouteConfig, SubinterfaceConfig
from dranet_core.plans import PreparedDevice
from dranet_core.types import PodSandbox


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def batch(ns: str, lines: list[str]) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".batch") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        t0 = time.perf_counter()
        subprocess.run(["ip", "-n", ns, "-batch", f.name], check=True, capture_output=True)
        return time.perf_counter() - t0


def config(i: int) -> NetworkConfig:
    return NetworkConfig(
        interface=InterfaceConfig(name="net1", addresses=(f"10.9.{i // 250}.{i % 250 + 2}/16",)),
        routes=(RouteConfig(destination="10.77.0.0/16", gateway="10.9.0.1"),),
        subinterface=SubinterfaceConfig(type="macvlan", mode="bridge"),
    )


def device(i: int, facet: dict[str, object]) -> PreparedDevice:
    return PreparedDevice(
        pool="n", device="up0", request_names=("r",), config=config(i), facets={"netdev": facet}
    )


async def measure(node: str, pods: list[str], facet: dict[str, object]) -> tuple[list[float], list[float]]:
    """Per child: snapshot + attach seconds, then detach seconds."""
    attach_s, detach_s, snaps = [], [], []
    async with NetdevMover(host_netns=f"/run/netns/{node}") as mover:
        for i, pod in enumerate(pods):
            sandbox = PodSandbox(uid=f"u{i}", name="p", namespace="d", netns=f"/run/netns/{pod}")
            t0 = time.perf_counter()
            snap = await mover.snapshot(device(i, facet))
            await mover.attach(device(i, facet), sandbox, snap)
            attach_s.append(time.perf_counter() - t0)
            snaps.append(snap)
        for i, pod in enumerate(pods):
            sandbox = PodSandbox(uid=f"u{i}", name="p", namespace="d", netns=f"/run/netns/{pod}")
            t0 = time.perf_counter()
            await mover.detach(device(i, facet), sandbox, snaps[i])
            detach_s.append(time.perf_counter() - t0)
    return attach_s, detach_s


def main(n: int) -> None:
    tag = secrets.token_hex(2)
    node, pods = f"dnt-bench-{tag}-node", [f"dnt-bench-{tag}-p{i}" for i in range(n)]
    try:
        for ns in (node, *pods):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", node, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
        sh("ip", "-n", node, "link", "set", "up0", "up")
        index = int(sh("ip", "-n", node, "-o", "link", "show", "up0").split(":", 1)[0])
        facet: dict[str, object] = {"ifname": "up0", "ifindex": index, "kind": "veth", "virtual": True}
        attach_s, detach_s = asyncio.run(measure(node, pods, facet))
        # the floor: iproute2, one batch for every creation, one per pod for the config
        floor_create = (
            batch(node, [f"link add net1 link up0 netns {p} type macvlan mode bridge" for p in pods]) / n
        )
        floor_cfg = statistics.median(
            batch(
                pod,
                [
                    f"addr add 10.9.{i // 250}.{i % 250 + 2}/16 dev net1",
                    "link set net1 up",
                    "route add 10.77.0.0/16 via 10.9.0.1 dev net1",
                ],
            )
            for i, pod in enumerate(pods)
        )
        floor_del = statistics.median(batch(pod, ["link del net1"]) for pod in pods)
        ms = 1000.0
        print(f"{n} macvlan children of one parent, one per pod (median per child):")
        print(f"  dranet snapshot+attach {statistics.median(attach_s) * ms:.2f} ms")
        print(f"  dranet detach          {statistics.median(detach_s) * ms:.2f} ms")
        print(
            f"  ip -batch: create {floor_create * ms:.2f} ms (amortised) + configure {floor_cfg * ms:.2f} ms"
        )
        print(f"  ip -batch: delete {floor_del * ms:.2f} ms (one ip process per pod)")
    finally:
        for ns in (*pods, node):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
