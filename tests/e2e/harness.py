"""The acceptance harness: the real ``dranet run`` process between its real peers.

What plays which part:

* **the node**: a network namespace (``--host-netns``) with a veth uplink; scenarios create
  their own veth pairs and macvlan devices in it (:class:`Node`);
* **the API server**: the fake of ``tests/fakeapi`` (slices, claims, claim status, events);
* **the scheduler**: :meth:`Cluster.claim` picks the devices from the ResourceSlices the driver
  published and writes the allocation into the claim's status;
* **the kubelet**: grpcio (:class:`Kubelet`): plugin registration, NodePrepareResources,
  NodeUnprepareResources;
* **containerd**: the NRI runtime peer of ``tests/nri`` (RunPodSandbox, StopPodSandbox, ...);
* **pods**: real network namespaces under ``/run/netns``.

The API server and the runtime peer run on a background event loop thread (:class:`Loop`),
so they keep answering while a test blocks on ``ip`` or a slow gRPC call. Tests are plain
(synchronous) functions; for concurrency they hand a coroutine to ``cluster.loop.run``.

Writing a scenario
------------------

Take the ``cluster`` fixture of ``tests/e2e/conftest.py`` (one driver process per test module;
a test that restarts or kills the driver asks for ``fresh_cluster`` instead) and write it
the way the Go suite reads::

    def test_dummy_interface_with_ip_addresses_resourceclaim(cluster: Cluster) -> None:
        dev = cluster.node.veth()                                  # create devices
        claim = cluster.claim([dev], config={"interface": {"name": "eth99",
                                                           "addresses": ["169.254.169.13/24"]}})
        pod = cluster.create_pod([claim])                          # prepare + RunPodSandbox
        assert global_addrs(pod.link("eth99")) == ["169.254.169.13/24"]   # inside the pod
        assert cluster.status_ips(claim) == ["169.254.169.13/24"]         # the API server
        cluster.delete_pod(pod)                                    # Stop, Remove, unprepare
        assert cluster.node.link(dev.name) is not None             # home again

Every name a scenario creates (links, namespaces, claims, pods) is unique, and the
``cluster`` fixture removes what the scenario left behind, so scenarios on one driver do
not see each other. Never assert on elapsed time; waits here have generous deadlines and
fail with the driver's log.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

TESTS = Path(__file__).resolve().parents[1]
for _p in (TESTS / "nri", TESTS / "driver", TESTS / "netdev_mover"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from driver_helpers import grpc_pb_fixture  # noqa: E402  (re-exported for conftest)
from e2e.nodenet import (  # noqa: E402
    DRIVER,
    NODE_NAME,
    WAIT,
    Dev,
    NetnsHolder,
    Node,
    T,
    global_addrs,
    in_ns,
    ip,
    ip_json,
    link_in,
    wait_for,
)
from e2e.processes import DriverProcess, Loop  # noqa: E402
from fakeapi import FakeApiServer  # noqa: E402

from dranet_core.testing.kubelet import Kubelet  # noqa: E402
from dranet_core.testing.nri_runtime import FakePod, PeerSession, Result, RuntimePeer  # noqa: E402

__all__ = [
    "Claim",
    "Cluster",
    "Dev",
    "DriverProcess",
    "Kubelet",
    "Loop",
    "NetnsHolder",
    "Node",
    "Pod",
    "global_addrs",
    "grpc_pb_fixture",
    "in_ns",
    "ip",
    "ip_json",
    "link_in",
    "root_or_skip",
    "run_concurrently",
    "wait_for",
]


# ----------------------------------------------------------------------------- claims and pods


@dataclass
class Claim:
    name: str
    uid: str
    devices: list[str]  # the allocated device names (as published in the slice)
    namespace: str = "default"


@dataclass
class Pod:
    """A pod: its sandbox (the NRI view) and its network namespace."""

    sandbox: FakePod
    netns: str  # the namespace's name under /run/netns
    claims: list[Claim] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return self.sandbox.uid

    def link(self, name: str) -> dict[str, Any] | None:
        return link_in(self.netns, name)

    def links(self) -> list[str]:
        return sorted(x["ifname"] for x in ip_json(self.netns, "link", "show"))

    def exec(self, *argv: str, check: bool = True) -> str:
        return in_ns(self.netns, *argv, check=check)

    def sysctl(self, path: str) -> str:
        """A file under /proc/sys read inside the pod (``net/ipv4/conf/eth99/arp_ignore``)."""
        return self.exec("cat", f"/proc/sys/{path}").strip()


class Cluster:
    """One node: the driver process, its peers, and the steps a scenario takes."""

    def __init__(self, pb: types.SimpleNamespace, *, request_timeout: float = 30.0) -> None:
        """``request_timeout`` is the runtime's NRI request timeout (containerd's default is
        2 s; the suite gives 30 s so that a loaded CI machine does not turn behaviour tests
        into timing tests: speed is for the benchmarks)."""
        self.tmp = Path(tempfile.mkdtemp(prefix="dnt-e2e-", dir="/tmp"))  # unix paths ≤ 108 bytes
        self.loop = Loop()
        self.node = Node()
        self.api = FakeApiServer()
        self.loop.run(self.api.start())
        self.loop.call(
            self.api.put_object, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE_NAME}}
        )
        self.driver = DriverProcess(self.tmp, self.node.path, self.api.url)
        self.kubelet = Kubelet(pb, self.driver.root, wait=WAIT)
        self.runtime = RuntimePeer(str(self.driver.nri_sock), request_timeout=request_timeout)
        self.loop.run(self.runtime.start())
        self._ids = itertools.count()
        self.extra: tuple[str, ...] = ()
        self.live_pods: list[Pod] = []  # created and not deleted yet (cleaned by cleanup())
        self.holders: list[NetnsHolder] = []
        self.broken = False  # set by the fixtures when a test failed on this driver

    def cleanup(self) -> None:
        """Undo what a scenario left: its pods are stopped, removed, unprepared (errors
        ignored) and their namespaces deleted; its devices deleted from the node."""
        for pod in list(self.live_pods):
            if self.driver.alive:
                with contextlib.suppress(Exception):
                    self.stop_sandbox(pod)
                    self.remove_sandbox(pod)
                for c in pod.claims:
                    with contextlib.suppress(Exception):
                        self.unprepare(c)
            self.node.drop_netns(pod.netns)
        self.live_pods.clear()
        for h in self.holders:
            h.close()
        self.holders.clear()
        for dev in self.node.created:
            self.node.delete_link(dev.name)
        self.node.created.clear()

    # ---- the driver's life
    def start(self, *extra: str) -> PeerSession:
        """Start ``dranet run`` and wait until the kubelet registered it, the runtime synced
        it and /healthz answers 200."""
        self.extra = extra
        sessions = len(self.runtime.sessions)
        self.driver.spawn(*extra)
        try:
            self.kubelet.register_sync(alive=lambda: self.driver.alive)
        except grpc.RpcError as exc:
            raise AssertionError(f"the kubelet could not register the driver: {exc}\n{self.log()}") from None
        session = self.wait_synchronized(sessions + 1)
        self.loop.run(self.driver.wait_healthy())
        return session

    def wait_synchronized(self, first: int, within: float = WAIT) -> PeerSession:
        """The first plugin connection from number ``first`` on that completes Synchronize
        (the runtime drops a plugin whose Synchronize is late; the driver reconnects)."""
        deadline = time.monotonic() + within
        n = first
        while True:
            session = self.loop.run(self.runtime.wait_ready(n))
            if session.ready.is_set() and not session.closed.is_set():
                return session
            assert self.driver.alive and time.monotonic() < deadline, f"NRI never synchronized\n{self.log()}"
            n += 1

    def private_state(self, size: str = "256k") -> None:
        """Run the driver in a mount namespace of its own with a ``size`` tmpfs as the
        checkpoint's directory (for :meth:`state_fault`); it lives as long as the process.
        Mounts propagate into it (``slave``), so pod namespaces created later are visible."""
        state = self.driver.db.parent
        state.mkdir(parents=True, exist_ok=True)
        script = f'mount -t tmpfs -o size={size},mode=0700 tmpfs "$0" && exec "$@"'
        self.driver.wrap = ["unshare", "-m", "--propagation", "slave", "sh", "-c", script, str(state)]

    def state_fault(self, kind: str) -> None:
        """``ro``: remount the checkpoint's tmpfs read-only; ``full``: fill it; ``ok``: undo."""
        assert self.driver.proc is not None
        pid, state = str(self.driver.proc.pid), str(self.driver.db.parent)
        enter = ["nsenter", "-t", pid, "-m"]
        if kind == "ro":
            subprocess.run([*enter, "mount", "-o", "remount,ro", state], check=True)
        elif kind == "full":
            subprocess.run(
                [*enter, "sh", "-c", f"cat /dev/zero > {state}/.fill 2>/dev/null; true"], check=True
            )
        else:
            subprocess.run([*enter, "mount", "-o", "remount,rw", state], check=True)
            subprocess.run([*enter, "rm", "-f", f"{state}/.fill"], check=True)

    def crash(self) -> None:
        """SIGKILL: no cleanup at all (sockets stay behind, like a real crash)."""
        self.driver.kill(signal.SIGKILL)
        assert self.loop.run(self.driver.wait_exit()) == -signal.SIGKILL

    def restart(self, *extra: str) -> PeerSession:
        self.crash()
        return self.start(*extra)

    def stop(self) -> int:
        """SIGTERM and wait: the driver's exit code."""
        self.driver.kill(signal.SIGTERM)
        return self.loop.run(self.driver.wait_exit())

    @property
    def session(self) -> PeerSession:
        """The runtime's live plugin connection (the newest one that synchronized)."""
        for s in reversed(self.runtime.sessions):
            if s.ready.is_set() and not s.closed.is_set():
                return s
        return self.runtime.sessions[-1]

    def healthz(self) -> tuple[int, dict[str, Any]]:
        return self.loop.run(self.driver.healthz())

    def log(self) -> str:
        return self.driver.log_text()

    def close(self) -> None:
        self.driver.stop_now()
        for h in self.holders:
            h.close()
        with contextlib.suppress(Exception):
            self.loop.run(self.runtime.aclose(), timeout=15)
        with contextlib.suppress(Exception):
            self.loop.run(self.api.close(), timeout=15)
        self.loop.close()
        self.node.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- the API server
    def slice_devices(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """``{ifName: (device name, device)}`` over every slice the driver published."""
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        for s in self.loop.call(self.api.list_objects, "resourceslices"):
            if s.get("spec", {}).get("driver") != DRIVER:
                continue
            for d in s["spec"].get("devices", []):
                ifname = d.get("attributes", {}).get("dra.net/ifName", {}).get("string")
                if ifname:
                    out[ifname] = (d["name"], d)
        return out

    def published(self, ifname: str, within: float = WAIT) -> dict[str, Any]:
        """Wait until the driver publishes the device of interface ``ifname``; its slice entry."""
        _, dev = wait_for(
            f"{ifname} in a ResourceSlice", lambda: self.slice_devices().get(ifname), within, self.log
        )
        return dev

    def wait_attrs(
        self, ifname: str, ok: Callable[[dict[str, Any]], bool], within: float = WAIT
    ) -> dict[str, Any]:
        """The published attributes of ``ifname`` once ``ok(attributes)`` holds."""

        def probe() -> dict[str, Any] | None:
            entry = self.slice_devices().get(ifname)
            attrs: dict[str, Any] = entry[1].get("attributes", {}) if entry else {}
            return attrs if entry and ok(attrs) else None

        return wait_for(f"attributes of {ifname}", probe, within, self.log)

    def claim(
        self,
        devices: Sequence[Dev | str],
        *,
        config: dict[str, Any] | None = None,
        request_configs: dict[str, dict[str, Any]] | None = None,
        name: str | None = None,
        driver: str = DRIVER,
        pool: str = NODE_NAME,
    ) -> Claim:
        """Play the scheduler: one request per device (``r0``, ``r1``, ...) allocated to the
        device the driver published for that interface (a ``str`` that is not a node
        interface is used as the device name as is); ``config`` applies to the whole claim,
        ``request_configs`` to one request each. The claim is written with its allocation."""
        name = name or f"c{next(self._ids)}-{self.node.tag}"
        results = []
        for i, d in enumerate(devices):
            if isinstance(d, Dev):
                devname, _ = wait_for(
                    f"{d.name} in a ResourceSlice", lambda d=d: self.slice_devices().get(d.name), log=self.log
                )
            else:
                devname = d
            results.append({"request": f"r{i}", "driver": driver, "pool": pool, "device": devname})
        configs = []
        if config is not None:
            configs.append(
                {"source": "FromClaim", "requests": [], "opaque": {"driver": DRIVER, "parameters": config}}
            )
        for req, params in (request_configs or {}).items():
            configs.append(
                {"source": "FromClaim", "requests": [req], "opaque": {"driver": DRIVER, "parameters": params}}
            )
        claim = Claim(name=name, uid=str(uuid.uuid4()), devices=[r["device"] for r in results])
        self.loop.call(
            self.api.put_object,
            {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceClaim",
                "metadata": {"name": name, "namespace": claim.namespace, "uid": claim.uid},
                "spec": {
                    "devices": {
                        "requests": [
                            {"name": f"r{i}", "exactly": {"deviceClassName": "dranet"}}
                            for i in range(len(devices))
                        ]
                    }
                },
                "status": {"allocation": {"devices": {"results": results, "config": configs}}},
            },
        )
        return claim

    def claim_object(self, claim: Claim) -> dict[str, Any]:
        obj = self.loop.call(self.api.get_object, "resourceclaims", claim.name, claim.namespace)
        assert obj is not None, f"claim {claim.name} is gone"
        return obj

    def status_devices(self, claim: Claim) -> list[dict[str, Any]]:
        devices: list[dict[str, Any]] = self.claim_object(claim).get("status", {}).get("devices", [])
        return devices

    def wait_status(
        self, claim: Claim, count: int | None = None, within: float = WAIT
    ) -> list[dict[str, Any]]:
        """The claim's ``status.devices`` once it holds ``count`` entries (default: one per device)."""
        want = len(claim.devices) if count is None else count
        return wait_for(
            f"{want} status.devices on {claim.name}",
            lambda: (lambda d: d if len(d) == want else None)(self.status_devices(claim)),
            within,
            self.log,
        )

    def status_ips(self, claim: Claim) -> list[str]:
        return sorted(ip for d in self.wait_status(claim) for ip in d.get("networkData", {}).get("ips", []))

    def events(self, about: str | None = None) -> list[dict[str, Any]]:
        """Events the driver posted (core and events.k8s.io share one store), optionally only
        those whose regarding/involved object is named ``about``."""
        evs = self.loop.call(self.api.list_objects, "events")
        if about is None:
            return evs
        return [e for e in evs if (e.get("regarding") or e.get("involvedObject") or {}).get("name") == about]

    # ---- pods
    def new_pod(
        self, claims: Sequence[Claim] = (), *, name: str | None = None, netns: str | None = None
    ) -> Pod:
        """A pod bound to ``claims`` (their ``reservedFor``) with a fresh network namespace;
        nothing is called on the driver yet."""
        name = name or f"p{next(self._ids)}"
        ns = netns or self.node.new_netns(name)
        sandbox = FakePod(
            id=f"sb-{name}-{secrets.token_hex(3)}", name=name, uid=str(uuid.uuid4()), netns=f"/run/netns/{ns}"
        )
        for c in claims:
            self.reserve(c, sandbox)
        pod = Pod(sandbox=sandbox, netns=ns, claims=list(claims))
        self.live_pods.append(pod)
        return pod

    def hold(self, pod: Pod) -> NetnsHolder:
        """Keep ``pod``'s network namespace alive with a process (closed by cleanup())."""
        h = NetnsHolder(pod.netns)
        self.holders.append(h)
        return h

    def new_sandbox(self, pod: Pod, *, netns: str | None = None) -> Pod:
        """The same pod (name, UID, claims) in a new sandbox: a new sandbox id and a new
        network namespace, as when containerd tears a failed sandbox down and the kubelet
        retries."""
        ns = netns or self.node.new_netns(f"{pod.sandbox.name}-{secrets.token_hex(2)}")
        sandbox = FakePod(
            id=f"sb-{pod.sandbox.name}-{secrets.token_hex(3)}",
            name=pod.sandbox.name,
            uid=pod.uid,
            netns=f"/run/netns/{ns}",
        )
        again = Pod(sandbox=sandbox, netns=ns, claims=list(pod.claims))
        self.live_pods.append(again)
        return again

    def reserve(self, claim: Claim, sandbox: FakePod) -> None:
        obj = self.claim_object(claim)
        obj["status"]["reservedFor"] = [{"resource": "pods", "name": sandbox.name, "uid": sandbox.uid}]
        self.loop.call(self.api.put_object, obj)

    def prepare(self, claim: Claim) -> Any:
        return self.kubelet.prepare_sync(claim.name, claim.uid, claim.namespace)

    def unprepare(self, claim: Claim) -> Any:
        return self.kubelet.unprepare_sync(claim.name, claim.uid, claim.namespace)

    def run_sandbox(self, pod: Pod) -> Result:
        return self.loop.run(self.session.run_pod_sandbox(pod.sandbox))

    def stop_sandbox(self, pod: Pod) -> Result:
        return self.loop.run(self.session.stop_pod_sandbox(pod.sandbox))

    def remove_sandbox(self, pod: Pod) -> Result:
        return self.loop.run(self.session.remove_pod_sandbox(pod.sandbox))

    def create_pod(self, claims: Sequence[Claim], *, name: str | None = None) -> Pod:
        """The kubelet's and containerd's part of a pod start: reserve, prepare every claim
        (no error), RunPodSandbox (code 0)."""
        pod = self.new_pod(claims, name=name)
        for c in claims:
            res = self.prepare(c)
            assert res.error == "", f"prepare {c.name}: {res.error}\n{self.log()}"
        result = self.run_sandbox(pod)
        assert result.code == 0, f"RunPodSandbox {pod.sandbox.name}: {result}\n{self.log()}"
        return pod

    def forget_pod(self, pod: Pod) -> None:
        """The runtime deleted ``pod``'s sandbox behind the driver's back: its netns goes."""
        self.node.drop_netns(pod.netns)
        if pod in self.live_pods:
            self.live_pods.remove(pod)

    def delete_pod(self, pod: Pod) -> None:
        """StopPodSandbox, RemovePodSandbox, unprepare every claim (all succeed), then the
        runtime deletes the pod's network namespace."""
        for step in (self.stop_sandbox, self.remove_sandbox):
            result = step(pod)
            assert result.code == 0, f"{result}\n{self.log()}"
        for c in pod.claims:
            res = self.unprepare(c)
            assert res.error == "", f"unprepare {c.name}: {res.error}\n{self.log()}"
        self.node.drop_netns(pod.netns)
        if pod in self.live_pods:
            self.live_pods.remove(pod)

    # ---- what must always hold
    def assert_home(self, dev: Dev) -> None:
        """``dev`` is back on the node as it was created: name, MAC, MTU, addresses."""
        info = wait_for(f"{dev.name} home", lambda: self.node.link(dev.name), log=self.log)
        assert info["address"] == dev.mac, f"{dev.name}: mac {info['address']} != {dev.mac}"
        assert info["mtu"] == dev.mtu, f"{dev.name}: mtu {info['mtu']} != {dev.mtu}"
        assert tuple(global_addrs(info)) == dev.addrs, f"{dev.name}: {global_addrs(info)} != {dev.addrs}"

    def assert_forgotten(self, *claims: Claim) -> None:
        """The checkpoint holds none of ``claims``."""
        left = self.driver.claim_uids() & {c.uid for c in claims}
        assert not left, f"checkpoint still holds {left}\n{self.log()}"

    def assert_serving(self) -> None:
        """The driver runs and /healthz says 200."""
        assert self.driver.alive, self.log()
        self.loop.run(self.driver.wait_healthy())


def run_concurrently(calls: Iterable[Callable[[], T]], limit: int = 64) -> list[T | BaseException]:
    """Run blocking ``calls`` in threads at once (a thread pool of ``limit``); results or
    exceptions, in order."""
    calls = list(calls)
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(limit, max(len(calls), 1))) as pool:
        futures = [pool.submit(c) for c in calls]
        out: list[T | BaseException] = []
        for f in futures:
            try:
                out.append(f.result())
            except BaseException as exc:
                out.append(exc)
        return out


def root_or_skip() -> None:
    """The e2e suite needs root (network namespaces); elsewhere it says why it did not run."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("probe euid==0 failed: the e2e suite needs root for network namespaces")
