"""Benchmark: attach + detach of one netdev (move, rename, address, route, up; and back with
the snapshot restored) against iproute2 doing the same operations with ``ip -batch``,
amortised over N devices: the floor, measured in the same run. Root only; everything happens
in throwaway ``dnt-bench-*`` namespaces.

    .venv/bin/python benchmarks/bench_mover.py [N]
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

from dranet_backends.netdev.mover import NetdevMover
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RouteConfig
from dranet_core.plans import PreparedDevice
from dranet_core.types import PodSandbox


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def batch(ns: str | None, lines: list[str]) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".batch") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        cmd = ["ip", *(["-n", ns] if ns else []), "-batch", f.name]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t0


def make_devices(node: str, n: int) -> None:
    lines = []
    for i in range(n):
        lines += [
            f"link add b{i} type veth peer name bp{i}",
            f"link set bp{i} up",
            f"addr add 10.{i // 250}.{i % 250}.1/24 dev b{i}",
            f"link set b{i} up",
        ]
    batch(node, lines)


def floor(node: str, pod: str, n: int) -> float:
    """Per-device seconds for iproute2 doing attach+detach work in batches."""
    t = batch(node, [f"link set b{i} netns {pod} name p{i}" for i in range(n)])
    pod_lines = []
    for i in range(n):
        pod_lines += [
            f"addr add 10.{i // 250}.{i % 250}.1/24 dev p{i}",
            f"link set p{i} up",
            f"route add 172.{16 + i // 250}.{i % 250}.0/24 via 10.{i // 250}.{i % 250}.2 dev p{i}",
        ]
    t += batch(pod, pod_lines)
    t += batch(
        pod,
        [f"link set p{i} down" for i in range(n)]
        + [f"link set p{i} netns {node} name b{i}" for i in range(n)],
    )
    node_lines = []
    for i in range(n):
        node_lines += [f"addr add 10.{i // 250}.{i % 250}.1/24 dev b{i}", f"link set b{i} up"]
    t += batch(node, node_lines)
    return t / n


def ifindexes(ns: str) -> dict[str, int]:
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show"], check=True, capture_output=True, text=True)
    return {link["ifname"]: int(link["ifindex"]) for link in json.loads(out.stdout)}


async def ours(node: str, pod: str, n: int) -> tuple[list[float], list[float]]:
    times = []
    snaps = []
    index = ifindexes(node)
    async with NetdevMover(host_netns=f"/run/netns/{node}") as mover:
        sandbox = PodSandbox(uid="u", name="bench", namespace="default", netns=f"/run/netns/{pod}")
        for i in range(n):
            cfg = NetworkConfig(
                interface=InterfaceConfig(name=f"p{i}"),
                routes=(
                    RouteConfig(
                        destination=f"172.{16 + i // 250}.{i % 250}.0/24",
                        gateway=f"10.{i // 250}.{i % 250}.2",
                    ),
                ),
            )
            dev = PreparedDevice(
                pool="n",
                device=f"b{i}",
                request_names=("r",),
                config=cfg,
                facets={"netdev": {"ifname": f"b{i}", "ifindex": index[f"b{i}"]}},
            )
            t0 = time.perf_counter()
            snap = await mover.snapshot(dev)  # taken at prepare time: reported, not in the ratio
            snaps.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await mover.attach(dev, sandbox, snap)
            await mover.detach(dev, sandbox, snap)
            times.append(time.perf_counter() - t0)
    return times, snaps


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    prefix = f"dnt-bench-{secrets.token_hex(3)}"
    node, pod = f"{prefix}-node", f"{prefix}-pod"
    try:
        sh("ip", "netns", "add", node)
        sh("ip", "netns", "add", pod)
        make_devices(node, n)
        fl = floor(node, pod, n)
        ts, snaps = asyncio.run(ours(node, pod, n))
        fl2 = floor(node, pod, n)  # floor again after, to see drift
    finally:
        subprocess.run(["ip", "netns", "del", pod], check=False)
        subprocess.run(["ip", "netns", "del", node], check=False)
    floor_ms = min(fl, fl2) * 1e3
    mean = statistics.fmean(ts) * 1e3
    med = statistics.median(ts) * 1e3
    p90 = sorted(ts)[int(len(ts) * 0.9) - 1] * 1e3
    print(f"bench_mover.py: attach + detach of one veth per device, against iproute2 -batch ({prefix}-*)")
    print(f"{'measure':<44}{'ms/device':>12}")
    print(f"{'iproute2 -batch floor (best of 2 runs)':<44}{floor_ms:>12.2f}")
    print(f"{'iproute2 -batch floor, run 1 / run 2':<44}{fl * 1e3:>6.2f} / {fl2 * 1e3:.2f}")
    print(f"{'NetdevMover attach+detach, mean':<44}{mean:>12.2f}")
    print(f"{'NetdevMover attach+detach, median':<44}{med:>12.2f}")
    print(f"{'NetdevMover attach+detach, p90':<44}{p90:>12.2f}")
    print(f"{'ratio mean / floor':<44}{mean / floor_ms:>12.2f}")
    print(f"{'ratio median / floor (target <= 1.5)':<44}{med / floor_ms:>12.2f}")
    print(f"{'(snapshot at prepare time, median; no floor)':<44}{statistics.median(snaps) * 1e3:>12.2f}")
    if med / floor_ms > 1.5:
        print(f"FAIL: median {med:.2f} ms/device > 1.5 x the iproute2 floor {floor_ms:.2f} ms")
        return 1
    print("PASS: median within 1.5 x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
