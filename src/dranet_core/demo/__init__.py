"""``dranet demo``: one pod's life through the real driver, in throwaway namespaces.

What it builds (root only; every name starts with ``dnt-demo-<random>``)::

    netns <prefix>-node   the "node": a veth pair (the uplink, hidden by the default
                          filter) and two macvlan devices on it, with addresses
    netns <prefix>-pod    the pod's network namespace
    <tmp>/                kubelet root dir (plugin sockets), NRI socket, checkpoint file

Then it runs the real :class:`~dranet_core.app.Driver` with the node namespace as its host
namespace, an in-process kubelet (:mod:`.kubelet`: registration and DRA gRPC over the
driver's unix sockets), an in-process runtime (:mod:`.runtime`: NRI over the driver's
socket) and a local StatusPublisher (:class:`DemoPublisher`), and walks one pod through
prepare -> RunPodSandbox -> StopPodSandbox -> RemovePodSandbox -> unprepare, printing the
devices, ``ip`` output from inside the pod, the claim status and timings. Everything is
removed at the end, also on Ctrl-C or failure; the host's own interfaces are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from dranet_core.status import EventRecord
from dranet_core.types import (
    AllocationResult,
    Claim,
    ClaimRef,
    ConsumerRef,
    Device,
    DeviceStatus,
    OpaqueConfig,
)

__all__ = ["DemoPublisher", "MemoryClaimSource", "run_demo"]

CLAIM_CONFIG: dict[str, Any] = {
    "interface": {"name": "net1", "addresses": ["192.168.77.2/24"], "mtu": 1400},
    "routes": [{"destination": "192.168.88.0/24", "gateway": "192.168.77.1"}],
}


DEMO_FILTER = '"dra.net/type" in attributes && attributes["dra.net/type"].StringValue == "macvlan"'


class DemoPublisher:
    """The local StatusPublisher (:class:`~dranet_core.kube.local.LocalStatusPublisher`, which
    writes the objects the API publisher would send as YAML files under ``out``), plus a
    record of what was published for the demo's printout."""

    def __init__(self, out: Path, *, node_name: str) -> None:
        from dranet_core.kube.local import LocalStatusPublisher

        self.out = out
        self.inner = LocalStatusPublisher(out, node_name=node_name)
        self.devices: tuple[Device, ...] = ()
        self.statuses: dict[str, tuple[DeviceStatus, ...]] = {}
        self.events: list[EventRecord] = []
        self.published = asyncio.Event()

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        await self.inner.publish_devices(devices)
        self.devices = tuple(devices)
        self.published.set()

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        await self.inner.set_claim_status(claim, devices)
        self.statuses[claim.uid] = tuple(devices)

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        await self.inner.clear_claim_status(claim)
        self.statuses.pop(claim.uid, None)

    async def record_event(self, event: EventRecord) -> None:
        await self.inner.record_event(event)
        self.events.append(event)

    async def run(self) -> None:
        await self.inner.run()

    def claim_status_file(self, claim: ClaimRef) -> Path:
        """Where the local publisher wrote the claim's status apply body."""
        return self.out / "resourceclaims" / claim.namespace / f"{claim.name}.status.yaml"


class MemoryClaimSource:
    """A ClaimSource over a dict: the claims the demo's "scheduler" allocated."""

    def __init__(self) -> None:
        self.claims: dict[str, Claim] = {}

    async def get(self, ref: ClaimRef) -> Claim:
        from dranet_core.errors import ClaimError

        claim = self.claims.get(ref.uid)
        if claim is None:
            raise ClaimError(str(ref), "not found")
        return claim


def _ip(*args: str, check: bool = True) -> str:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def _link_state(ns: str, name: str) -> dict[str, Any]:
    data = json.loads(_ip("-j", "-n", ns, "addr", "show", "dev", name) or "[]")
    if not data:
        return {}
    d = data[0]
    return {
        "name": d["ifname"],
        "mtu": d["mtu"],
        "mac": d.get("address"),
        "addrs": sorted(
            f"{a['local']}/{a['prefixlen']}" for a in d.get("addr_info", []) if a.get("scope") == "global"
        ),
    }


@attrs.define
class Scene:
    """The throwaway namespaces and directory of one demo run."""

    prefix: str
    tmp: Path

    @property
    def node(self) -> str:
        return f"{self.prefix}-node"

    @property
    def pod(self) -> str:
        return f"{self.prefix}-pod"

    def build(self) -> None:
        """Create the node and pod namespaces and the node's devices."""
        _ip("netns", "add", self.node)
        _ip("netns", "add", self.pod)
        n = ("-n", self.node)
        _ip(*n, "link", "set", "lo", "up")
        _ip(*n, "link", "add", "dn-up0", "type", "veth", "peer", "name", "dn-up0p")
        for dev in ("dn-up0", "dn-up0p"):
            _ip(*n, "link", "set", dev, "up")
        for i, mode in ((0, "bridge"), (1, "bridge")):
            name = f"dn-mv{i}"
            _ip(*n, "link", "add", name, "link", "dn-up0", "type", "macvlan", "mode", mode)
            _ip(*n, "addr", "add", f"10.99.0.{10 + i}/24", "dev", name)
            _ip(*n, "link", "set", name, "up")
        _ip("-n", self.pod, "link", "set", "lo", "up")

    def remove(self) -> list[str]:
        """Delete both namespaces (their devices go with them) and the directory.

        Returns what could not be removed (each deletion is retried a few times: a netns can
        be briefly busy while the last thread that entered it is still exiting).
        """
        left = []
        for ns in (self.pod, self.node):
            for attempt in range(10):
                out = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True, check=False)
                if out.returncode == 0 or not os.path.exists(f"/run/netns/{ns}"):
                    break
                time.sleep(0.05 * (attempt + 1))
            else:
                left.append(f"netns {ns}: {out.stderr.strip()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.tmp.exists():
            left.append(f"directory {self.tmp}")
        return left


class Printer:
    """Step-by-step output with timings; ``quiet`` prints only the step summary and the result.

    The summary adds up: every moment between the start and the summary is in a step, and
    what no step covers (starting Python's event loop, waiting for the driver's tasks to
    finish) is its own line.
    """

    def __init__(self, out: TextIO, quiet: bool) -> None:
        self.out = out
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.steps: list[tuple[str, float]] = []

    def say(self, text: str) -> None:
        """A line of the story (not in quiet mode)."""
        if not self.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        start = time.perf_counter()
        self.say(f"\n==> {title}")
        try:
            yield
        finally:
            took = time.perf_counter() - start
            self.steps.append((title, took))
            self.say(f"    ({took * 1000:.0f} ms)")

    def show(self, text: str) -> None:
        if not self.quiet:
            for line in text.rstrip().splitlines():
                self.out.write(f"    {line}\n")
            self.out.flush()

    def summary(self) -> None:
        total = time.perf_counter() - self.t0
        other = total - sum(took for _, took in self.steps)
        self.out.write("\nStep timings:\n")
        for title, took in [*self.steps, ("between steps (event loop start and stop)", other)]:
            self.out.write(f"  {took * 1000:8.1f} ms  {title}\n")
        self.out.write(f"  {total * 1000:8.1f} ms  total\n")
        self.out.flush()


async def _scenario(scene: Scene, p: Printer) -> None:  # noqa: PLR0915 - a linear script
    with p.step("load the driver: imports, settings, backends"):
        from dranet_core.app import Driver, load_backends_for
        from dranet_core.demo.kubelet import KubeletPeer
        from dranet_core.demo.runtime import DemoPod, NriRuntimePeer
        from dranet_core.inventory_report import format_table
        from dranet_core.settings import (
            CheckpointSettings,
            HostSettings,
            InventorySettings,
            KubeletSettings,
            KubeSettings,
            NriSettings,
            ObservabilitySettings,
            Settings,
            ShutdownSettings,
        )

        node_name = "demo-node"
        settings = Settings(
            kube=KubeSettings(node_name=node_name),
            kubelet=KubeletSettings(root_dir=scene.tmp / "kubelet"),
            nri=NriSettings(socket_path=scene.tmp / "nri.sock"),
            # only the demo's macvlans: the node namespace shares sysfs with the real host, whose
            # PCI NICs would otherwise be listed too (they are never touched either way)
            inventory=InventorySettings(filter=DEMO_FILTER, min_poll_interval=0.2, max_poll_interval=30.0),
            checkpoint=CheckpointSettings(db_path=scene.tmp / "dranet.db"),
            host=HostSettings(host_netns=Path(f"/run/netns/{scene.node}")),
            observability=ObservabilitySettings(bind_address=""),
            shutdown=ShutdownSettings(grace_period=2.0),
            backends=("netdev",),
        )
        publisher = DemoPublisher(scene.tmp / "api", node_name=node_name)
        claims = MemoryClaimSource()
        runtime = NriRuntimePeer(settings.nri.socket_path)
        kubelet = KubeletPeer(settings.kubelet.registry_dir() / "dra.net-reg.sock")
        backends = load_backends_for(settings)
        driver = Driver(settings, backends=backends, publisher=publisher, claim_source=claims)
        stop = asyncio.Event()
        pod = DemoPod(uid=f"pod-{secrets.token_hex(4)}", name="demo-pod", netns=f"/run/netns/{scene.pod}")
        ref = ClaimRef(namespace="default", name="demo-claim", uid=f"claim-{secrets.token_hex(4)}")

    async def steps(driver_task: asyncio.Task[None]) -> None:  # noqa: PLR0915 - a linear script
        with p.step("start the driver: kubelet registration, NRI registration, first publish"):
            await asyncio.wait_for(kubelet.register(), 15)
            await asyncio.wait_for(runtime.plugin_ready.wait(), 15)
            await asyncio.wait_for(driver.health.wait_ready(), 15)
            p.show(f"registered with the kubelet at {kubelet.endpoint}")
            p.show(f"registered with the runtime as {runtime.plugin_name}")

        with p.step("devices published in the node's ResourceSlice"):
            await asyncio.wait_for(publisher.published.wait(), 10)
            p.show(format_table(publisher.devices))
            dev = next(d for d in publisher.devices if d.attributes.get("dra.net/ifName") == "dn-mv0")
            before = _link_state(scene.node, "dn-mv0")
            p.show(f"host state of dn-mv0: {_describe_link(before)}")

        with p.step(f"the scheduler allocates {dev.name} to claim {ref.name}; the kubelet prepares it"):
            claims.claims[ref.uid] = Claim(
                ref=ref,
                results=(AllocationResult(request="nic", driver="dra.net", pool=node_name, device=dev.name),),
                configs=(OpaqueConfig(source="FromClaim", driver="dra.net", parameters=CLAIM_CONFIG),),
                reserved_for=(ConsumerRef(resource="pods", name=pod.name, uid=pod.uid),),
            )
            p.show(f"config: {json.dumps(CLAIM_CONFIG)}")
            res = await kubelet.prepare([ref])
            if res[ref.uid].error:
                raise RuntimeError(f"prepare failed: {res[ref.uid].error}")
            p.show("prepared: " + ", ".join(f"{d.pool_name}/{d.device_name}" for d in res[ref.uid].devices))

        with p.step("the runtime creates the pod sandbox: NRI RunPodSandbox moves and configures the device"):
            t = time.perf_counter()
            await runtime.run_pod_sandbox(pod)
            p.show(f"RunPodSandbox answered in {(time.perf_counter() - t) * 1000:.0f} ms")
            await runtime.create_container(pod, "app")
            p.show("$ ip -n <pod> addr show net1")
            p.show(_ip("-n", scene.pod, "addr", "show", "dev", "net1"))
            p.show("$ ip -n <pod> route")
            p.show(_ip("-n", scene.pod, "route"))
            inside = _link_state(scene.pod, "net1")
            if inside.get("mtu") != 1400 or "192.168.77.2/24" not in inside.get("addrs", []):
                raise RuntimeError(f"device in the pod is not configured as asked: {inside}")

        with p.step("claim status (status.devices) written by the driver"):
            status_file = publisher.claim_status_file(ref)
            if status_file.exists():
                p.show(f"$ cat <api>/{status_file.relative_to(publisher.out)}")
                p.show(status_file.read_text())
            for st in () if status_file.exists() else publisher.statuses.get(ref.uid, ()):
                nd = st.network_data
                p.show(f"device {st.driver}/{st.pool}/{st.device}")
                p.show(
                    "  conditions: " + ", ".join(f"{c.type}={c.status} ({c.reason})" for c in st.conditions)
                )
                if nd is not None:
                    p.show(
                        f"  networkData: interfaceName={nd.interface_name} "
                        f"mac={nd.hardware_address} ips={list(nd.ips)}"
                    )
            states = driver.pods.states()
            p.show(
                "journal: " + (", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "empty")
            )

        with p.step("the pod is deleted: NRI StopPodSandbox brings the device home, RemovePodSandbox"):
            t = time.perf_counter()
            await runtime.stop_pod_sandbox(pod)
            p.show(f"StopPodSandbox answered in {(time.perf_counter() - t) * 1000:.0f} ms")
            await runtime.remove_pod_sandbox(pod)
            after = _link_state(scene.node, "dn-mv0")
            p.show("$ ip -n <node> addr show dn-mv0")
            p.show(_ip("-n", scene.node, "addr", "show", "dev", "dn-mv0"))
            same = {k: after.get(k) for k in before} == before
            p.show(f"back home as it was: {'yes' if same else 'NO'} ({_describe_link(after)})")
            if not same:
                raise RuntimeError(f"device did not come home as it was: before {before}, after {after}")

        with p.step("the kubelet unprepares the claim"):
            errors = await kubelet.unprepare([ref])
            if errors.get(ref.uid):
                raise RuntimeError(f"unprepare failed: {errors[ref.uid]}")
            p.show(f"prepared claims left: {len(driver.store.claims())}")

        with p.step("SIGTERM-style shutdown: drain, remove sockets, stop"):
            stop.set()
            await driver_task
            left = sorted(str(x) for x in (scene.tmp / "kubelet").rglob("*.sock"))
            p.show(f"kubelet sockets left: {', '.join(left) or 'none'}")

    async with asyncio.TaskGroup() as tg:
        runtime_task = tg.create_task(runtime.serve(), name="demo runtime")
        await asyncio.sleep(0)
        driver_task = tg.create_task(driver.run(stop=stop), name="driver")
        try:
            await steps(driver_task)
        finally:
            kubelet.close()
            runtime_task.cancel()


def _describe_link(state: dict[str, Any]) -> str:
    addrs = ", ".join(state.get("addrs", ())) or "no address"
    return f"{state.get('name')} mtu {state.get('mtu')} mac {state.get('mac')} {addrs}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def run_demo(
    *, quiet: bool = False, verbosity: int = 0, log_format: str = "text", out: TextIO | None = None
) -> int:
    """Run the demo (root only); returns the exit status. Cleans up even on Ctrl-C."""
    from dranet_core.observability import setup_logging

    stream = out or sys.stdout
    if os.geteuid() != 0:
        print(
            "dranet demo: needs root (it creates network namespaces); try: sudo dranet demo", file=sys.stderr
        )
        return 1
    if shutil.which("ip") is None:
        print("dranet demo: needs the iproute2 'ip' command", file=sys.stderr)
        return 1
    setup_logging(log_format, verbosity if verbosity else 0)
    if verbosity == 0:
        import logging

        logging.getLogger().setLevel(logging.WARNING)
    scene = Scene(
        prefix=f"dnt-demo-{secrets.token_hex(3)}", tmp=Path(tempfile.mkdtemp(prefix="dranet-demo-"))
    )
    printer = Printer(stream, quiet)
    printer.say(f"dranet demo: node namespace {scene.node}, pod namespace {scene.pod}, state in {scene.tmp}")
    status = 1
    try:
        with printer.step("build the throwaway node and pod network namespaces"):
            scene.build()
            printer.show(_ip("-n", scene.node, "-br", "addr"))
        asyncio.run(_scenario(scene, printer))
        status = 0
    except KeyboardInterrupt:
        stream.write("\ninterrupted: cleaning up\n")
        status = 130
    except Exception as exc:  # report any failure, then clean up
        stream.write(f"\ndemo failed: {_describe(exc)}\n")
    finally:
        with printer.step("clean up: delete the namespaces and the state directory"):
            left = scene.remove()
        if left:
            stream.write(f"could not clean up: {'; '.join(left)}\n")
            status = status or 1
        else:
            printer.say(f"cleaned up: namespaces {scene.node}, {scene.pod} and {scene.tmp} removed")
    if status == 0:
        printer.summary()
        stream.write("\ndemo finished: the device went into the pod configured and came back as it was.\n")
    return status
