"""Kubelet-side benchmark: NodePrepareResources latency and throughput, the kubelet a separate process.

The kubelet is a separate Go process on a node, calling the driver with grpc-go; so here too.
``benchmarks/kubelet_go`` (built by this script with ``go build``: Debian's ``golang-go`` and
``golang-google-grpc-dev``, which ``nox -s bench`` installs when missing) calls the driver's
grpclib server over its unix socket and times each call around ``ClientConn.Invoke``, as the
kubelet sees it; it writes and reads the messages at the wire level, sharing no code with the
driver. ``--kubelet=python`` uses ``benchmarks/kubelet_client.py`` instead (synchronous grpcio
stubs, started with this interpreter): grpcio's Python layer costs about 0.4 ms of CPU a call,
part of it on the round trip, which the kubelet's Go client does not. A client in the driver's
process (as this script once had) counted its own work in every round trip and competed with
the server for the GIL and the loop. This process creates the claims in the fake API server,
waits until the driver's claim cache has them, then tells the kubelet process which claims to
prepare (one JSON command a line on its stdin, one JSON result a line on its stdout) and does
the untimed unprepares and setup in between; after each prepare and unprepare it checks the
driver's checkpoint store (the claim recorded, then gone), and before timing it checks that a
claim the API server does not have comes back with its error, so a kubelet that misread
answers cannot pass.

Measured in one run, on this machine:

* floor: gRPC round trip with a preparer that does nothing (the kubelet process -> our grpclib
  server);
* floor: one ResourceClaim GET from the fake API server on loopback (kubernetes-asyncio client,
  in the driver's process);
* floor: one checkpoint write (temporary file, rename; not fsynced, see docs/performance.md),
  the checkpoint on a tmpfs as on a node (``statedir.py``);
* prepare: 1 claim with 1 device, the whole path as the driver runs it (gRPC, the claim from the
  watch-backed claim cache, planning, config resolution, checkpoint write), each
  iteration a new claim UID that the cache has seen (as when the scheduler allocated it before
  the kubelet asks), unprepared (untimed) after;
* prepare of a claim the cache has not seen (a GET on the miss): for comparison, no target;
* 100 claims prepared by 100 concurrent calls (grpcio futures in the kubelet process), and how
  many checkpoint writes they took (group commit: concurrent prepares share one write).

Once everything is up, the heap is settled as the driver does when it is ready
(``dranet_core.app.settle_heap``: start-up's objects frozen out of the collector's way). The
gRPC calls (the floor included) are preceded by untimed warm-up calls. The driver's side runs
on the event loop ``dranet run`` runs on (uvloop; ``--event-loop=asyncio`` for the standard
one). Targets: prepare
p50 <= 2 ms and p99 <= 6 ms; 100 concurrent claims <= 1 s with fewer checkpoint writes than
claims; the gRPC layer adds <= 1 ms p50. The script exits 1 when a target is missed.
Usage: ``.venv/bin/python benchmarks/bench_dra.py [--iterations N] [--event-loop LOOP]
[--kubelet go|python]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from fakeapi.client import make_api_client  # noqa: E402
from fakeapi.server import FakeApiServer  # noqa: E402
from statedir import checkpoint_dir  # noqa: E402

from dranet_core.app import settle_heap  # noqa: E402
from dranet_core.checkpoint import ClaimStore, read_boot_id  # noqa: E402
from dranet_core.claim_allocator import ClaimAllocator  # noqa: E402
from dranet_core.cli import DEFAULT_EVENT_LOOP, EVENT_LOOPS, run_on_loop  # noqa: E402
from dranet_core.dra import DefaultPreparer, KubeletPlugin, PrepareOutcome, PrepareResult  # noqa: E402
from dranet_core.kube.claimcache import ClaimCache  # noqa: E402
from dranet_core.kube.claims import ApiClaimSource  # noqa: E402
from dranet_core.plans import ClaimPlan, PreparedDevice  # noqa: E402
from dranet_core.testing.kubelet import compile_kubelet_protos  # noqa: E402
from dranet_core.types import ClaimRef, Device  # noqa: E402

DRIVER = "dra.net"
NODE = "node-a"
KUBELET = pathlib.Path(__file__).resolve().with_name("kubelet_client.py")
KUBELET_GO = pathlib.Path(__file__).resolve().with_name("kubelet_go")
KUBELETS = ("go", "python")
KUBELET_NAMES = {"go": "grpc-go (benchmarks/kubelet_go)", "python": "grpcio (benchmarks/kubelet_client.py)"}
GO_GRPC = pathlib.Path("/usr/share/gocode/src/google.golang.org/grpc")
"""grpc-go as Debian's golang-google-grpc-dev installs it (built in GOPATH mode)."""


def build_go_kubelet(out: pathlib.Path) -> pathlib.Path:
    """``benchmarks/kubelet_go`` built into ``out``; exits with one line when it cannot be."""
    go = shutil.which("go")
    if go is None or not GO_GRPC.is_dir():
        sys.exit(
            "bench_dra.py: the Go kubelet needs the Go toolchain and grpc-go "
            "(apt-get install golang-go golang-google-grpc-dev), or run with --kubelet=python"
        )
    binary = out / "kubelet_go"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "CGO_ENABLED": "0"}
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=KUBELET_GO, env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"bench_dra.py: go build of {KUBELET_GO} failed: {done.stderr.strip()}")
    return binary


def compile_stubs(out: pathlib.Path) -> pathlib.Path:
    """The kubelet's grpcio stubs of the DRA v1 API, compiled into ``out`` for the kubelet process."""
    out.mkdir(parents=True, exist_ok=True)
    compile_kubelet_protos(out, ("kubelet/dra/v1/api.proto",))
    return out


def claim_obj(name: str, uid: str, device: str) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"devices": {"requests": [{"name": "nic"}]}},
        "status": {
            "allocation": {
                "devices": {
                    "results": [{"request": "nic", "driver": DRIVER, "pool": NODE, "device": device}],
                    "config": [
                        {
                            "source": "FromClaim",
                            "requests": ["nic"],
                            "opaque": {
                                "driver": DRIVER,
                                "parameters": {"interface": {"name": "net1", "mtu": 1400}},
                            },
                        }
                    ],
                }
            },
            "reservedFor": [{"resource": "pods", "name": "p", "uid": f"pod-{uid}"}],
        },
    }


class NoopPreparer:
    def __init__(self) -> None:
        dev = PreparedDevice(pool=NODE, device="eth1", request_names=("nic",))
        self.plan = lambda ref: ClaimPlan(claim=ref, pods=("p",), devices=(dev,))

    async def prepare(self, claims: Sequence[ClaimRef]) -> Mapping[str, PrepareResult]:
        return {c.uid: PrepareOutcome(plan=self.plan(c)) for c in claims}

    async def unprepare(self, claims: Sequence[ClaimRef]) -> Mapping[str, str | None]:
        return {c.uid: None for c in claims}


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def timed(n: int, fn: Callable[[int], Awaitable[None]], warmup: int = 20) -> list[float]:
    for i in range(warmup):
        await fn(-1 - i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


Row = tuple[str, float, float, str]


class KubeletProcess:
    """``kubelet_client.py`` in its own process: one JSON command a line in, one result a line out."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, command: Sequence[str], dra: pathlib.Path, noop: pathlib.Path) -> KubeletProcess:
        """Start ``command`` (the kubelet's command line, the sockets appended); wait until ready."""
        proc = await asyncio.create_subprocess_exec(
            *command,
            str(dra),
            str(noop),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,  # the no-op floor's timings come back on one line
        )
        kubelet = cls(proc)
        try:
            async with asyncio.timeout(60):
                ready = await kubelet.read()
            assert ready == {"ready": True}, ready
        except BaseException:
            await kubelet.close(graceful=False)
            raise
        return kubelet

    async def read(self) -> dict[str, Any]:
        """The next result line (bounded: each of the kubelet's calls has a gRPC deadline)."""
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the kubelet process exited (status {await self.proc.wait()})")
        out: dict[str, Any] = json.loads(line)
        return out

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.read()

    async def close(self, *, graceful: bool) -> None:
        """Close its stdin and let it exit (graceful), else, or if it does not exit, kill it."""
        if graceful and self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 10)
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


class Bench:
    """The driver's prepare path (the same parts ``dranet run`` builds) and a no-op twin."""

    def __init__(self, tmp: pathlib.Path, state: pathlib.Path, kubelet: Sequence[str]) -> None:
        self.tmp = tmp
        self.state = state
        self.kubelet_command = tuple(kubelet)
        self.api = FakeApiServer()
        self.uids = iter(range(10**9))
        self.rows: list[Row] = []
        self.failed = 0
        self.stack = contextlib.AsyncExitStack()  # what start() started, stopped in reverse
        self.graceful = False  # at close: let the kubelet process exit (else kill it)

    async def start(self) -> None:
        await self.api.start()
        self.stack.push_async_callback(self.api.close)
        self.client = make_api_client(self.api.url)
        self.stack.push_async_callback(self.client.close)
        inventory = {
            f"eth{i}": Device(name=f"eth{i}", facets={"netdev": {"ifName": f"eth{i}"}}) for i in range(1, 201)
        }
        self.store = ClaimStore(self.state / "dranet.db", boot_id=read_boot_id())
        await self.store.load()
        allocator = ClaimAllocator(DRIVER, NODE, self.store)
        self.source = ApiClaimSource(self.client, driver_name=DRIVER, pool=NODE)
        self.cache = ClaimCache(self.source)
        self.watcher = asyncio.create_task(self.cache.run())
        self.stack.push_async_callback(self.stop_watcher)
        while not self.cache.synced:  # noqa: ASYNC110 - the first list, untimed
            await asyncio.sleep(0.001)
        preparer = DefaultPreparer(self.cache, allocator, lambda: inventory)
        self.plugin = KubeletPlugin(DRIVER, preparer, kubelet_root=self.tmp / "kubelet")
        self.noop = KubeletPlugin("noop.example.com", NoopPreparer(), kubelet_root=self.tmp / "kubelet")
        await self.plugin.start()
        self.stack.push_async_callback(self.plugin.shutdown, 1)
        await self.noop.start()
        self.stack.push_async_callback(self.noop.shutdown, 1)
        self.kubelet = await KubeletProcess.start(
            self.kubelet_command, self.plugin.paths.dra_socket, self.noop.paths.dra_socket
        )
        self.stack.push_async_callback(lambda: self.kubelet.close(graceful=self.graceful))
        settle_heap()  # what the driver does once ready: start-up's objects leave the collector's work

    async def stop_watcher(self) -> None:
        self.watcher.cancel()
        await asyncio.gather(self.watcher, return_exceptions=True)

    async def close(self) -> None:
        """Stop what start() started: all of it, or the part it got to before it failed."""
        await self.stack.aclose()

    def row(self, name: str, values: list[float], verdict: str = "") -> float:
        p50 = statistics.median(values)
        self.rows.append((name, p50, pct(values, 99), verdict))
        return p50

    def target(self, name: str, values: list[float], p50_max: float, p99_max: float) -> None:
        ok = statistics.median(values) <= p50_max and pct(values, 99) <= p99_max
        self.row(name, values, "PASS" if ok else f"FAIL (target p50<={p50_max}, p99<={p99_max})")
        self.failed += not ok

    async def cached(self, ref: ClaimRef) -> None:
        """Wait (untimed) until the claim watch delivered ``ref``."""
        while ref not in self.cache:  # noqa: ASYNC110 - the cache has no per-claim event
            await asyncio.sleep(0.0005)

    async def prepare_one(self, *, seen: bool) -> float:
        """ms of one NodePrepareResources of a new claim (then unprepared, untimed)."""
        uid = f"u{next(self.uids)}"
        name = f"c-{uid}"
        self.api.put_object(claim_obj(name, uid, "eth1"))
        if seen:
            await self.cached(ClaimRef(namespace="default", name=name, uid=uid))
        prepared = await self.kubelet.call("prepare", claim=[name, uid])
        assert prepared["error"] == "", prepared["error"]
        assert self.store.get(uid) is not None, f"the kubelet saw claim {uid} prepared; the store has not"
        unprepared = await self.kubelet.call("unprepare", claim=[name, uid])
        assert unprepared["error"] == "", unprepared["error"]
        assert self.store.get(uid) is None, f"the kubelet saw claim {uid} unprepared; the store has it"
        return float(prepared["ms"])

    async def check_errors_reach_the_kubelet(self) -> None:
        """A claim the API server does not have: the kubelet must read its error (untimed)."""
        answer = await self.kubelet.call("prepare", claim=["no-such-claim", "u-none"])
        assert "not found" in answer["error"], f"the kubelet read {answer['error']!r} for a missing claim"

    async def floors(self, iterations: int) -> tuple[float, float]:
        """The gRPC round trip, claim GET and checkpoint write floors; returns (gRPC, write) p50."""

        probe = ClaimRef(namespace="default", name="probe", uid="u-probe")
        self.api.put_object(claim_obj("probe", "u-probe", "eth1"))

        async def api_get(i: int) -> None:
            await self.source.get(probe)

        cp_store = ClaimStore(self.state / "floor" / "dranet.db", boot_id=read_boot_id())
        one = PreparedDevice(pool=NODE, device="eth1", request_names=("nic",))
        plan = ClaimPlan(claim=ClaimRef(namespace="d", name="c", uid="u"), pods=("p",), devices=(one,))

        async def cp_write(i: int) -> None:
            await cp_store.put_plan(plan)

        noop = await self.kubelet.call("noop", n=iterations, warmup=20)
        g = self.row("floor: gRPC round trip, no-op preparer", noop["ms"])
        self.row("floor: claim GET from the fake API, loopback", await timed(iterations, api_get))
        w = self.row("floor: checkpoint write (temp file, rename)", await timed(iterations, cp_write))
        return g, w

    async def prepare(self, iterations: int, grpc_floor: float, write_floor: float) -> None:
        for _ in range(20):
            await self.prepare_one(seen=True)
        lat = [await self.prepare_one(seen=True) for _ in range(iterations)]
        self.target("prepare 1 claim / 1 device (full path)", lat, 2, 6)
        rest = statistics.median(lat) - grpc_floor - write_floor
        self.rows.append(("  of which not gRPC nor the checkpoint write (p50)", rest, float("nan"), ""))
        cold = [await self.prepare_one(seen=False) for _ in range(min(iterations, 100))]
        self.row("prepare of a claim the watch has not delivered (GET)", cold)

    async def concurrent(self, n: int = 100) -> None:
        refs = [ClaimRef(namespace="default", name=f"bulk{i}", uid=f"b{i}") for i in range(n)]
        for i, ref in enumerate(refs):
            self.api.put_object(claim_obj(ref.name, ref.uid, f"eth{i + 1}"))
        for ref in refs:
            await self.cached(ref)
        writes = self.store.writes
        done = await self.kubelet.call("concurrent", claims=[[r.name, r.uid] for r in refs])
        total: float = done["ms"]
        errors: list[str] = done["errors"]
        writes = self.store.writes - writes
        ok = total <= 1000 and not errors and writes < n
        verdict = "PASS" if ok else f"FAIL (target <= 1000 ms, no errors, < {n} writes)"
        name = f"{n} claims, {n} concurrent calls (total; {writes} checkpoint writes)"
        self.rows.append((name, total, float("nan"), verdict + (f" {len(errors)} errors" if errors else "")))
        self.failed += not ok

    def grpc_layer(self) -> None:
        g50, g99 = self.rows[0][1], self.rows[0][2]
        ok = g50 <= 1.0
        self.rows.append(
            ("gRPC layer p50 (no-op round trip)", g50, g99, "PASS" if ok else "FAIL (target <= 1 ms)")
        )
        self.failed += not ok


async def main(iterations: int, kubelet: str) -> int:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="dnt-bench-dra-", dir="/tmp"))
    try:
        with checkpoint_dir("dnt-bench-dra-") as (state, where):
            if kubelet == "go":
                command = [str(build_go_kubelet(tmp))]
            else:
                command = [sys.executable, str(KUBELET), str(compile_stubs(tmp / "pb"))]
            bench = Bench(tmp, state, command)
            try:
                await bench.start()
                await bench.check_errors_reach_the_kubelet()
                grpc_floor, write_floor = await bench.floors(iterations)
                await bench.prepare(iterations, grpc_floor, write_floor)
                await bench.concurrent()
                bench.grpc_layer()
                bench.graceful = True
            finally:
                await bench.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"bench_dra.py: NodePrepareResources, {iterations} iterations, {where}, "
        f"Python {sys.version.split()[0]}, event loop {type(asyncio.get_running_loop()).__module__}, "
        f"kubelet {KUBELET_NAMES[kubelet]}"
    )
    print(f"{'measurement':<66} {'p50 ms':>9} {'p99 ms':>9}  verdict")
    for name, a50, a99, verdict in bench.rows:
        s99 = "" if a99 != a99 else f"{a99:9.3f}"
        print(f"{name:<66} {a50:9.3f} {s99:>9}  {verdict}")
    if bench.failed:
        print(f"bench_dra.py: {bench.failed} target(s) missed")
    return 1 if bench.failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default=DEFAULT_EVENT_LOOP)
    parser.add_argument("--kubelet", choices=KUBELETS, default="go")
    args = parser.parse_args()
    sys.exit(run_on_loop(main(args.iterations, args.kubelet), args.event_loop))
