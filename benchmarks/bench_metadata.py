"""Benchmark: the device metadata writer on the RunPodSandbox and prepare paths, against a
floor doing the unavoidable file work in the same run (one worker-thread hop that reads the
file, writes a temporary file of the same size and renames it over the target).

* attach: ``MetadataWriter.attached`` (read, parse, set networkData, encode two versions,
  atomic rewrite) for one device with 25 attributes; target: median <= 2x the floor.
* prepare: ``MetadataWriter.prepared`` of a new claim (metadata file + CDI spec, each atomic);
  target: median <= 2x two floor writes.

Exits 1 when a target is missed.

    .venv/bin/python benchmarks/bench_metadata.py [N]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from dranet_core.metadata.document import MetadataLayout
from dranet_core.metadata.writer import MetadataWriter
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.types import Claim, ClaimRef, Device, NetworkData

DEV = PreparedDevice(pool="node-a", device="eth1", request_names=("nic",))
ATTRS = {f"dra.net/attr{i}": f"value-{i}" for i in range(24)} | {"dra.net/pciAddress": "0000:3b:02.1"}
INVENTORY = {"eth1": Device(name="eth1", attributes=ATTRS)}
ND = (
    NetworkData(interface_name="net1", ips=("192.0.2.10/24",), hardware_address="8a:1c:2e:00:00:01"),
    NetworkData(interface_name="net1", ips=("192.0.2.11/24",), hardware_address="8a:1c:2e:00:00:01"),
)


def _floor_io(path: Path) -> None:
    data = path.read_bytes()
    tmp = path.with_name(f".{path.name}.floor.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


async def floor_once(path: Path) -> float:
    t0 = time.perf_counter()
    await asyncio.to_thread(_floor_io, path)
    return time.perf_counter() - t0


async def main(n: int) -> int:
    with tempfile.TemporaryDirectory(prefix="dnt-bench-md-") as d:
        root = Path(d)
        layout = MetadataLayout.for_plugin_dir("dra.net", root / "plugins" / "dra.net", root / "cdi")
        w = MetadataWriter(layout, enabled=True, inventory=lambda: INVENTORY)
        ref = ClaimRef(namespace="default", name="bench", uid=str(uuid.uuid4()))
        plan = ClaimPlan(claim=ref, pods=("p",), devices=(DEV,))
        await w.prepared(plan, Claim(ref=ref))
        path = layout.metadata_file(ref, "nic")
        # writer and floor alternate, so both see the same machine load
        attach, floor_attach, prepare, floor_prepare = [], [], [], []
        for i in range(n):
            t0 = time.perf_counter()
            await w.attached(plan, DEV, ND[i % 2])  # a real change every time
            attach.append(time.perf_counter() - t0)
            floor_attach.append(await floor_once(path))
            r = ClaimRef(namespace="default", name=f"bench-{i}", uid=str(uuid.uuid4()))
            p = ClaimPlan(claim=r, pods=("p",), devices=(DEV,))
            t0 = time.perf_counter()
            await w.prepared(p, Claim(ref=r))
            prepare.append(time.perf_counter() - t0)
            floor_prepare.append(await floor_once(path) + await floor_once(path))
            await w.forget(r, p)

    rows = [
        ("attach rewrite", attach, floor_attach, 2.0),
        ("prepare (file + CDI spec)", prepare, floor_prepare, 2.0),
    ]
    print(f"bench_metadata.py: {n} runs, median ms (floor measured in the same run)")
    print(f"{'measure':<30}{'writer':>10}{'floor':>10}{'ratio':>8}{'target':>8}  result")
    failed = False
    for name, got, fl, target in rows:
        g, f = statistics.median(got) * 1e3, statistics.median(fl) * 1e3
        ok = g <= target * f
        failed |= not ok
        print(f"{name:<30}{g:>10.3f}{f:>10.3f}{g / f:>8.2f}{target:>8.1f}  {'ok' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)))
