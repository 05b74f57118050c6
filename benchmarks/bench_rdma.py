"""Benchmark of the rdma backend against floors measured in the same run.

* sysfs discovery of a fake node with 16 RDMA devices (8 with netdevs, 8 IB-only, 4 char
  devices each) vs the floor: listing ``class/infiniband`` and reading one file per device.
* nldev: decoding a 16-device ``CMD_GET`` dump reply, and encoding a ``CMD_SET``, vs the
  floor: ``struct.unpack_from`` of each message header.
* the exclusive-mode mover: attach + detach of one RDMA device over a fake RDMA netlink
  kernel on a socketpair (3 sockets, 4 requests) vs the floor: 4 datagram round trips on one
  socketpair.
* container device nodes: ``device_nodes`` for 5 char devices vs 5 bare ``os.stat`` calls
  (needs root for mknod; skipped otherwise).

Prints one table; ratio = time / its floor. Run: ``.venv/bin/python benchmarks/bench_rdma.py``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import struct
import sys
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "rdma"))

from rdma_helpers import FakeRdmaKernel, add_char, add_pci, add_rdma

from dranet_backends.rdma import nldev
from dranet_backends.rdma.backend import scan_sysfs
from dranet_backends.rdma.chardev import device_nodes
from dranet_backends.rdma.mover import RdmaMover
from dranet_core.plans import PreparedDevice
from dranet_core.types import PodSandbox

HDR = struct.Struct("=IHHII")


def best_per_call(fn: Callable[[], object], number: int) -> float:
    """Best of 5 repeats, seconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


async def best_async(fn: Callable[[], Awaitable[object]], number: int) -> float:
    """Best of 5 repeats of ``number`` awaited calls, seconds per call."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(number):
            await fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def fake_sysfs(root: Path) -> None:
    for i in range(16):
        bdf = f"0000:{0x10 + i:02x}:00.0"
        pci = add_pci(root, bdf, netdevs=[f"eth{i}"] if i < 8 else [])
        add_rdma(root, f"mlx5_{i}", pci=pci)
        add_char(root, "infiniband_verbs", f"uverbs{i}", f"mlx5_{i}")
        add_char(root, "infiniband_mad", f"umad{i}", f"mlx5_{i}", port=1)
        add_char(root, "infiniband_mad", f"issm{i}", f"mlx5_{i}", port=1)
        add_char(root, "infiniband_cm", f"ucm{i}", f"mlx5_{i}")


def floor_sysfs(root: Path) -> None:
    base = root / "class" / "infiniband"
    for name in os.listdir(base):
        (base / name / "node_guid").read_text()


def dump_reply(n: int) -> bytes:
    out = b""
    for i in range(n):
        name = f"mlx5_{i}".encode() + b"\0"
        body = struct.pack("=HHI", 8, 1, i) + struct.pack("=HH", 4 + len(name), 2) + name
        body += b"\0" * (-len(body) % 4)
        out += HDR.pack(16 + len(body), 0x1401, 2, 1, 0) + body
    return out + HDR.pack(20, 3, 2, 1, 0) + b"\0\0\0\0"


def floor_headers(data: bytes) -> None:
    off = 0
    while off < len(data):
        length = HDR.unpack_from(data, off)[0]
        off += (length + 3) & ~3


async def mover_rows(tmp: Path) -> list[tuple[str, float, float]]:
    host, podns = tmp / "host-ns", tmp / "pod-ns"
    host.write_text("")
    podns.write_text("")
    kernel = FakeRdmaKernel(host=str(host))
    kernel.add(1, "mlx5_0")
    mover = RdmaMover(mode="exclusive", host_netns=str(host), opener=kernel.open)
    dev = PreparedDevice(
        pool="n", device="pci-0000-08-00-0", request_names=("r",), facets={"rdma": {"dev": "mlx5_0"}}
    )
    pod = PodSandbox(uid="u", name="p", namespace="ns", netns=str(podns))
    snap = await mover.snapshot(dev)

    async def roundtrip() -> None:
        await mover.attach(dev, pod, snap)
        await mover.detach(dev, pod, snap)

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    loop = asyncio.get_running_loop()
    loop.add_reader(b.fileno(), lambda: b.send(b.recv(256)))
    req = nldev.dev_set_netns_request(1, 1, 3)

    async def floor() -> None:
        for _ in range(4):
            await loop.sock_sendall(a, req)
            await loop.sock_recv(a, 256)

    try:
        got = await best_async(roundtrip, 200)
        base = await best_async(floor, 200)
    finally:
        loop.remove_reader(b.fileno())
        a.close()
        b.close()
        kernel.close()
    return [("mover attach+detach (exclusive, fake kernel)", got, base)]


def chardev_rows(tmp: Path) -> list[tuple[str, float, float]]:
    if os.geteuid() != 0:
        print("device_nodes: skipped (probe euid==0 failed: mknod needs root)")
        return []
    d = tmp / "dev" / "infiniband"
    d.mkdir(parents=True)
    names = ["uverbs0", "umad0", "issm0", "ucm0", "rdma_cm"]
    for i, n in enumerate(names):
        os.mknod(d / n, stat.S_IFCHR | 0o600, os.makedev(231, i))
    paths = [f"/dev/infiniband/{n}" for n in names]
    host = [d / n for n in names]
    got = best_per_call(lambda: device_nodes(paths, tmp / "dev"), 2000)
    base = best_per_call(lambda: [os.stat(p) for p in host], 2000)
    return [("device_nodes (5 char devices)", got, base)]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dnt-rdma-bench-") as t:
        tmp = Path(t)
        sysfs = tmp / "sys"
        fake_sysfs(sysfs)
        assert len(scan_sysfs(sysfs)) == 16
        rows = [
            (
                "scan 16 RDMA devices (sysfs)",
                best_per_call(lambda: scan_sysfs(sysfs), 50),
                best_per_call(lambda: floor_sysfs(sysfs), 50),
            )
        ]
        reply = dump_reply(16)
        assert len(nldev.decode(reply)) == 17
        rows.append(
            (
                "decode 16-device GET dump",
                best_per_call(lambda: nldev.decode(reply), 2000),
                best_per_call(lambda: floor_headers(reply), 2000),
            )
        )
        rows.append(
            (
                "encode CMD_SET",
                best_per_call(lambda: nldev.dev_set_netns_request(1, 3, 7), 20000),
                best_per_call(lambda: HDR.pack(32, 0x1402, 5, 1, 0), 20000),
            )
        )
        rows.extend(asyncio.run(mover_rows(tmp)))
        rows.extend(chardev_rows(tmp))
    print("bench_rdma.py: RDMA backend operations")
    print(f"{'operation':48} {'time':>12} {'floor':>12} {'ratio':>7}")
    for name, got, base in rows:
        print(f"{name:48} {got * 1e6:10.2f}us {base * 1e6:10.2f}us {got / base:7.1f}")


if __name__ == "__main__":
    main()
