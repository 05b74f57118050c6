"""Cluster-side benchmark: ResourceSlice publishing and claim status latency, fake API server.

Measured in one run, on this machine, against the fake API server on loopback:

* floor: the same slice objects POSTed/PUT directly with aiohttp (no planning, no client
  library), and one raw status PATCH: what the HTTP round trips alone cost;
* publish 1,000 devices from scratch (start-up: version probe, Node GET, list, creates);
* republish after one device changed; ten rescans with no change;
* claim status: time from ``set_claim_status`` to the apply being answered (p50/p99).

Targets (issue 6): from scratch 8 slice writes; one change exactly 1 write; ten unchanged
rescans 0 writes; claim status applied within 1 s of the call.
Usage: ``.venv/bin/python benchmarks/bench_publish.py [--devices N] [--claims N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pathlib
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import aiohttp  # noqa: E402
import attrs  # noqa: E402
from fakeapi.client import make_api_client  # noqa: E402
from fakeapi.server import FakeApiServer  # noqa: E402

from dranet_core.kube.publisher import KubeStatusPublisher, PublisherSettings  # noqa: E402
from dranet_core.kube.slices import plan_slices, prepare_devices, slice_object  # noqa: E402
from dranet_core.types import ClaimRef, Condition, Device, DeviceStatus, NetworkData  # noqa: E402

DRIVER, NODE = "dra.net", "node-a"


def make_devices(n: int) -> list[Device]:
    return [
        Device(
            name=f"pci-0000-{i // 256:02x}-{i % 256:02x}-0",
            attributes={
                "dra.net/ifName": f"ens{i}",
                "dra.net/mtu": 1500,
                "dra.net/virtual": False,
                "dra.net/pciVendor": "Mellanox Technologies",
                "dra.net/numaNode": i % 2,
                "dra.net/mac": f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
            },
            capacity={"dra.net/bandwidth": "100Gi"},
        )
        for i in range(n)
    ]


@contextlib.asynccontextmanager
async def running(pub: KubeStatusPublisher) -> AsyncIterator[None]:
    task = asyncio.create_task(pub.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def floor_slices(fake: FakeApiServer, devs: list[Device]) -> tuple[float, float]:
    """Raw aiohttp: POST every slice object, then PUT one (objects built beforehand, untimed)."""
    bodies, _ = prepare_devices(devs)
    plan = plan_slices(bodies, [], node="floor", driver=DRIVER)
    objs = [
        slice_object(
            name=w.name,
            driver=DRIVER,
            node="floor",
            generation=1,
            slice_count=plan.slice_count,
            devices=w.devices,
        )
        for w in plan.writes
    ]
    url = f"{fake.url}/apis/resource.k8s.io/v1/resourceslices"
    async with aiohttp.ClientSession() as http:
        t0 = time.perf_counter()
        created = []
        for obj in objs:
            async with http.post(url, json=obj) as r:
                created.append(await r.json())
        t1 = time.perf_counter()
        one = created[0]
        async with http.put(f"{url}/{one['metadata']['name']}", json=one) as r:
            await r.read()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


async def floor_status(fake: FakeApiServer, body: dict[str, Any], n: int) -> list[float]:
    url = f"{fake.url}/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/c0/status"
    out = []
    async with aiohttp.ClientSession() as http:
        for _ in range(n):
            t0 = time.perf_counter()
            async with http.patch(
                url,
                params={"fieldManager": DRIVER, "force": "true"},
                data=json.dumps(body),
                headers={"Content-Type": "application/apply-patch+yaml"},
            ) as r:
                await r.read()
            out.append(time.perf_counter() - t0)
    return out


def put_claims(fake: FakeApiServer, n: int) -> list[ClaimRef]:
    refs = []
    for i in range(n):
        obj = fake.put_object(
            {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceClaim",
                "metadata": {"name": f"c{i}", "namespace": "default"},
                "spec": {},
                "status": {
                    "allocation": {
                        "devices": {
                            "results": [{"request": "nic", "driver": DRIVER, "pool": NODE, "device": "eth1"}]
                        }
                    }
                },
            }
        )
        refs.append(ClaimRef(namespace="default", name=f"c{i}", uid=obj["metadata"]["uid"]))
    return refs


STATUS = [
    DeviceStatus(
        driver=DRIVER,
        pool=NODE,
        device="eth1",
        conditions=(Condition(type="Ready", status="True", reason="NetworkDeviceReady"),),
        network_data=NetworkData(
            interface_name="net1", hardware_address="02:00:00:00:00:01", ips=("192.0.2.5/24",)
        ),
    )
]


async def timed_publish(
    fake: FakeApiServer, pub: KubeStatusPublisher, devs: list[Device]
) -> tuple[float, int, int]:
    fake.clear_requests()
    t0 = time.perf_counter()
    await pub.publish_devices(devs)
    await asyncio.wait_for(pub.wait_idle(), 60)
    elapsed = time.perf_counter() - t0
    reqs = [r for r in fake.requests if not r.is_watch]
    return elapsed, len(reqs), fake.count_writes("resourceslices")


async def main(n_devices: int, n_claims: int) -> None:
    fake = FakeApiServer()
    await fake.start()
    fake.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
    api = make_api_client(fake.url)
    rows: list[tuple[str, str, str, str]] = []
    try:
        devs = make_devices(n_devices)
        f_create, f_put = await floor_slices(fake, devs)
        for s in fake.list_objects("resourceslices"):
            fake.delete_object("resourceslices", s["metadata"]["name"])
        pub = KubeStatusPublisher(api, driver_name=DRIVER, node_name=NODE, settings=PublisherSettings())
        async with running(pub):
            t, reqs, writes = await timed_publish(fake, pub, devs)
            rows.append((f"{n_devices} devices from scratch", f"{t * 1e3:.1f} ms", f"{reqs}", f"{writes}"))
            rows.append(("  floor: raw POSTs of the same slices", f"{f_create * 1e3:.1f} ms", "", ""))
            changed = list(devs)
            changed[n_devices // 2] = attrs.evolve(
                changed[n_devices // 2],
                attributes={**changed[n_devices // 2].attributes, "dra.net/mtu": 9000},
            )
            t, reqs, writes = await timed_publish(fake, pub, changed)
            rows.append(("one device changed", f"{t * 1e3:.1f} ms", f"{reqs}", f"{writes}"))
            rows.append(("  floor: one raw PUT", f"{f_put * 1e3:.1f} ms", "", ""))
            t_total, reqs_total, writes_total = 0.0, 0, 0
            for _ in range(10):
                t, reqs, writes = await timed_publish(fake, pub, list(changed))
                t_total, reqs_total, writes_total = t_total + t, reqs_total + reqs, writes_total + writes
            rows.append(
                ("ten rescans, no change", f"{t_total * 1e3:.1f} ms", f"{reqs_total}", f"{writes_total}")
            )

            refs = put_claims(fake, n_claims)
            lat = []
            loop = asyncio.get_running_loop()
            for ref in refs:
                t0 = loop.time()
                await pub.set_claim_status(ref, STATUS)
                call = loop.time() - t0
                await asyncio.wait_for(pub.wait_idle(), 10)
                lat.append(loop.time() - t0)
                assert call < 0.01, "set_claim_status must only enqueue"
        floor = await floor_status(
            fake,
            {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceClaim",
                "metadata": {"name": "c0", "namespace": "default"},
                "status": {"devices": [{"driver": DRIVER, "pool": NODE, "device": "eth1"}]},
            },
            n_claims,
        )
        q = statistics.quantiles(lat, n=100)
        fq = statistics.quantiles(floor, n=100)
        rows.append(
            (
                f"claim status applied ({n_claims} claims)",
                f"p50 {q[49] * 1e3:.2f} ms / p99 {q[98] * 1e3:.2f} ms",
                "1 each",
                "",
            )
        )
        rows.append(
            ("  floor: raw SSA PATCH", f"p50 {fq[49] * 1e3:.2f} ms / p99 {fq[98] * 1e3:.2f} ms", "", "")
        )
    finally:
        await api.close()
        await fake.close()
    width = max(len(r[0]) for r in rows)
    print("bench_publish.py: ResourceSlice publication")
    print(f"{'case':<{width}}  {'time':>28}  {'requests':>8}  {'slice writes':>12}")
    for name, t, reqs, writes in rows:
        print(f"{name:<{width}}  {t:>28}  {reqs:>8}  {writes:>12}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--claims", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.devices, args.claims))
