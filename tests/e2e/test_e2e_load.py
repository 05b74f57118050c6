"""Load: 50 and then 200 pods with one veth device each, prepared and started concurrently,
then stopped and unprepared concurrently, twice in a row.

Zero failures; every device home with its original name, MAC, MTU and addresses; every
claim unprepared; the checkpoint empty. The p50/p99 of prepare and RunPodSandbox per pod and
the totals are printed (``-s`` or the captured output of a failure), never asserted.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from e2e.harness import Claim, Cluster, Dev, Pod, global_addrs, ip_json, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]


def _batch(ns: str | None, lines: list[str]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        argv = ["ip", *(["-n", ns] if ns else []), "-batch", f.name]
        subprocess.run(argv, check=True, capture_output=True, text=True)
    finally:
        Path(f.name).unlink()


def _devices(c: Cluster, n: int) -> list[Dev]:
    """``n`` veth pairs in the node, each end claimed with an address (one ``ip -batch``)."""
    names = [(c.node.unique("l"), c.node.unique("k")) for _ in range(n)]
    lines = []
    for i, (name, peer) in enumerate(names):
        lines += [
            f"link add {name} type veth peer name {peer}",
            f"addr add 10.{100 + i // 250}.{i % 250}.1/32 dev {name}",
            f"link set {name} up",
            f"link set {peer} up",
        ]
    _batch(c.node.ns, lines)
    info = {x["ifname"]: x for x in ip_json(c.node.ns, "addr", "show")}
    devs = []
    for name, peer in names:
        x = info[name]
        devs.append(Dev(name, "veth", peer, x["address"], x["mtu"], tuple(global_addrs(x))))
    c.node.created.extend(devs)
    return devs


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(label: str, prepare: list[float], run: list[float], total: float) -> str:
    def ms(values: list[float]) -> str:
        return f"p50 {statistics.median(values) * 1000:.0f} ms p99 {_pct(values, 0.99) * 1000:.0f} ms"

    return f"{label}: prepare {ms(prepare)}; RunPodSandbox {ms(run)}; total {total:.2f} s"


def _round(c: Cluster, devs: list[Dev], label: str) -> None:
    claims: list[Claim] = []
    # the scheduler's part (not timed): one claim per device, reserved for its pod
    published = c.slice_devices()
    for d in devs:
        claims.append(c.claim([published[d.name][0]]))
    pod_names = [f"{label}-{i}" for i in range(len(devs))]
    _batch(None, [f"netns add {c.node.prefix}-{n}" for n in pod_names])
    pods: list[Pod] = []
    for cl, n in zip(claims, pod_names, strict=True):
        c.node.namespaces.append(f"{c.node.prefix}-{n}")
        pods.append(c.new_pod([cl], name=n, netns=f"{c.node.prefix}-{n}"))

    async def start_one(cl: Claim, p: Pod) -> tuple[float, float, Any, Any]:
        t0 = time.perf_counter()
        prep = await c.kubelet.prepare(cl.name, cl.uid)
        t1 = time.perf_counter()
        res = await c.session.run_pod_sandbox(p.sandbox) if prep.error == "" else None
        return t1 - t0, time.perf_counter() - t1, prep, res

    async def stop_one(cl: Claim, p: Pod) -> list[str]:
        errors = []
        for step in (c.session.stop_pod_sandbox, c.session.remove_pod_sandbox):
            r = await step(p.sandbox)
            if r.code != 0:
                errors.append(f"{p.sandbox.name}: {r}")
        u = await c.kubelet.unprepare(cl.name, cl.uid)
        if u.error:
            errors.append(f"{cl.name}: unprepare: {u.error}")
        return errors

    async def start_all() -> list[tuple[float, float, Any, Any]]:
        return await asyncio.gather(*(start_one(cl, p) for cl, p in zip(claims, pods, strict=True)))

    async def stop_all() -> list[list[str]]:
        return await asyncio.gather(*(stop_one(cl, p) for cl, p in zip(claims, pods, strict=True)))

    t0 = time.perf_counter()
    started = c.loop.run(start_all())
    up = time.perf_counter() - t0
    failures = [
        f"prepare {cl.name}: {prep.error}"
        for cl, (_, _, prep, _) in zip(claims, started, strict=True)
        if prep.error
    ]
    failures += [
        f"run {p.sandbox.name}: {res}"
        for p, (*_, res) in zip(pods, started, strict=True)
        if res is not None and res.code
    ]
    assert not failures, f"{len(failures)} of {len(devs)} failed: {failures[:5]}\n{c.log()}"
    missing = [p.sandbox.name for p, d in zip(pods, devs, strict=True) if p.link(d.name) is None]
    assert not missing, f"no device in {missing[:5]}"
    print(_report(f"{label} start", [s[0] for s in started], [s[1] for s in started], up))

    t0 = time.perf_counter()
    errors = [e for errs in c.loop.run(stop_all()) for e in errs]
    down = time.perf_counter() - t0
    assert not errors, f"{len(errors)} failures: {errors[:5]}\n{c.log()}"
    print(f"{label} stop+remove+unprepare of {len(devs)} pods: total {down:.2f} s")

    home = {x["ifname"]: x for x in ip_json(c.node.ns, "addr", "show")}
    wrong = [
        d.name
        for d in devs
        if d.name not in home
        or home[d.name]["address"] != d.mac
        or home[d.name]["mtu"] != d.mtu
        or tuple(global_addrs(home[d.name])) != d.addrs
    ]
    assert not wrong, f"{len(wrong)} devices not home as they were: {wrong[:5]}"
    assert c.driver.checkpoint().get("claims", {}) == {}, "the checkpoint is not empty"
    for p in pods:
        c.forget_pod(p)


@pytest.mark.parametrize("pods", [50, 200])
def test_many_pods_at_once_twice(fresh_cluster: Cluster, pods: int) -> None:
    c = fresh_cluster
    c.start()
    devs = _devices(c, pods)
    published = c.slice_devices

    def why() -> str:
        writes = [(r.method, r.name, r.status) for r in c.loop.call(c.api.writes, "resourceslices")]
        missing = [d.name for d in devs if d.name not in published()]
        return f"slice writes: {writes}; missing {missing[:5]} of {sorted(published())[:8]}\n{c.log()}"

    wait_for(f"{pods} devices published", lambda: all(d.name in published() for d in devs), log=why)
    for n in (1, 2):
        _round(c, devs, f"r{n}x{pods}")
    c.assert_serving()
