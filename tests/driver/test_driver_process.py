"""The real ``dranet run`` as a separate process: grpcio as the kubelet, the NRI test peer as
the runtime, the fake API server, real veth/macvlan devices in throwaway namespaces.

One pod's full life, with the driver killed (SIGKILL) after prepare, after attach and in the
middle of a detach, and restarted each time; every device must end where it should. Then
SIGTERM with an NRI call in flight (it completes, sockets are removed, exit 0) and a second
SIGTERM (exits at once).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import time
import types
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from driver_helpers import NodeNs, global_addrs, grpc_pb_fixture, link, node_ns_fixture  # noqa: F401
from e2e.nodenet import free_port
from e2e.processes import DriverProcess, Kubelet
from fakeapi import FakeApiServer
from nri_runtime_peer import FakePod, PeerSession, RuntimePeer

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

NODE = "node-a"
CONFIG = {"interface": {"name": "net1", "addresses": ["192.168.77.2/24"], "mtu": 1400}}


class Rig(DriverProcess):
    """Everything around one driver process (which may be killed and restarted)."""

    def __init__(self, tmp: Path, ns: NodeNs, api: FakeApiServer, pb: types.SimpleNamespace) -> None:
        super().__init__(tmp, ns.node_path, api.url, node_name=NODE)
        self.ns = ns
        self.api = api
        self.kubelet = Kubelet(pb, self.root)
        self.runtime = RuntimePeer(str(self.nri_sock))
        self.sessions = 0

    async def start(self, *extra: str) -> PeerSession:
        self.spawn(*extra)
        await self.kubelet.register()
        self.sessions += 1
        session = await self.runtime.wait_ready(self.sessions)
        assert session.ready.is_set(), self.log_text()
        await self.wait_healthy()
        return session

    async def crash(self) -> None:
        """SIGKILL: no cleanup at all (sockets stay behind, like a real crash)."""
        self.kill(signal.SIGKILL)
        assert await self.wait_exit() == -signal.SIGKILL

    def put_claim(self, name: str, uid: str, device: str, pod: FakePod) -> None:
        self.api.put_object(
            {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceClaim",
                "metadata": {"name": name, "namespace": "default", "uid": uid},
                "spec": {
                    "devices": {"requests": [{"name": "nic", "exactly": {"deviceClassName": "dranet"}}]}
                },
                "status": {
                    "allocation": {
                        "devices": {
                            "results": [
                                {"request": "nic", "driver": "dra.net", "pool": NODE, "device": device}
                            ],
                            "config": [
                                {
                                    "source": "FromClaim",
                                    "requests": [],
                                    "opaque": {"driver": "dra.net", "parameters": CONFIG},
                                }
                            ],
                        }
                    },
                    "reservedFor": [{"resource": "pods", "name": pod.name, "uid": pod.uid}],
                },
            }
        )


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory: unix socket paths are limited to 108 bytes (pytest's tmp_path is long)."""
    path = Path(tempfile.mkdtemp(prefix="dnt-drv-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def rig(
    short_tmp: Path, node_ns: NodeNs, fake_api: FakeApiServer, grpc_pb: types.SimpleNamespace
) -> AsyncIterator[Rig]:
    fake_api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
    r = Rig(short_tmp, node_ns, fake_api, grpc_pb)
    await r.runtime.start()
    try:
        yield r
    finally:
        if r.proc is not None and r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(10)
        await r.runtime.aclose()


async def _wait_phase(rig: Rig, device: str, phase: str, within: float = 10) -> None:
    """Wait until the checkpoint's journal shows ``device`` in ``phase``."""
    deadline = time.monotonic() + within
    while rig.journal().get(device, {}).get("phase") != phase:
        assert time.monotonic() < deadline, f"{device} never {phase}\n{rig.log_text()}"
        await asyncio.sleep(0.01)


async def _claim_devices(rig: Rig, name: str, within: float = 10) -> list[dict[str, Any]]:
    """The claim's ``status.devices`` in the fake API server, once there are some."""
    deadline = time.monotonic() + within
    while True:
        claim = rig.api.get_object("resourceclaims", name, "default") or {}
        devices: list[dict[str, Any]] = claim.get("status", {}).get("devices", [])
        if devices:
            return devices
        assert time.monotonic() < deadline, rig.log_text()
        await asyncio.sleep(0.05)


def _exists(path: str | Path) -> bool:
    return Path(path).exists()


def _in_pod(rig: Rig) -> dict[str, Any] | None:
    return link(rig.ns.pod, "net1")


def _at_home(rig: Rig, name: str = "dnm0") -> dict[str, Any] | None:
    return link(rig.ns.node, name)


def _assert_home_as_before(rig: Rig, before: dict[str, Any]) -> None:
    name = before["ifname"]
    home = _at_home(rig, name)
    assert home is not None, f"{name} is not home\n{rig.log_text()}"
    assert home["mtu"] == before["mtu"]
    assert home["address"] == before["address"]
    assert global_addrs(home) == global_addrs(before)
    assert global_addrs(home)  # it had an address and has it again
    assert _in_pod(rig) is None
    assert rig.ns.links(rig.ns.pod) == ["lo"]


async def test_pod_lifecycle_with_crashes_at_every_stage(rig: Rig) -> None:
    before = _at_home(rig, "dnt0")
    assert before is not None
    pod = FakePod(id="sb-1", name="p1", uid=str(uuid.uuid4()), netns=rig.ns.pod_path)
    claim_uid = str(uuid.uuid4())
    rig.put_claim("c1", claim_uid, "dnt0", pod)  # a veth end

    # prepare, then crash
    await rig.start()
    res = await rig.kubelet.prepare("c1", claim_uid)
    assert res.error == "", rig.log_text()
    assert [(d.pool_name, d.device_name) for d in res.devices] == [(NODE, "dnt0")]
    assert rig.journal() == {"dnt0": {"phase": "prepared"}}
    await rig.crash()

    # restart: the prepared claim survives; RunPodSandbox attaches; crash after attach
    session = await rig.start()
    result = await session.run_pod_sandbox(pod)
    assert result.code == 0, f"{result}\n{rig.log_text()}"
    inside = _in_pod(rig)
    assert inside is not None
    assert inside["mtu"] == 1400
    assert global_addrs(inside) == ["192.168.77.2/24"]
    assert _at_home(rig, "dnt0") is None
    assert rig.journal()["dnt0"]["phase"] == "attached"
    # the claim's status in the API server (server-side apply by the publisher)
    (status,) = await _claim_devices(rig, "c1")
    assert (status["driver"], status["pool"], status["device"]) == ("dra.net", NODE, "dnt0")
    assert status["networkData"]["interfaceName"] == "net1"
    assert status["networkData"]["ips"] == ["192.168.77.2/24"]
    assert [c["type"] for c in status["conditions"]] == ["Ready", "NetworkReady"]
    await rig.crash()

    # restart while the pod runs: Synchronize keeps the device in the pod
    rig.runtime.sync_pods = [pod]
    session = await rig.start("--debug-hold-after=detaching:60s")
    assert _in_pod(rig) is not None
    assert rig.journal()["dnt0"]["phase"] == "attached"

    # crash in the middle of the detach (journal says detaching, nothing moved yet)
    stop = asyncio.ensure_future(session.stop_pod_sandbox(pod))
    await _wait_phase(rig, "dnt0", "detaching")
    await rig.crash()
    await asyncio.gather(stop, return_exceptions=True)
    assert _in_pod(rig) is not None  # the crash left it half-way

    # restart: the pod is gone from the runtime; reconciliation brings the device home
    rig.runtime.sync_pods = []
    await rig.start()
    await _wait_phase(rig, "dnt0", "prepared")
    _assert_home_as_before(rig, before)
    # the claim was not pruned on a guess: it waits for the kubelet's unprepare
    assert "dnt0" in rig.journal()
    res = await rig.kubelet.unprepare("c1", claim_uid)
    assert res.error == ""
    assert rig.journal() == {}

    # graceful stop: sockets removed, exit 0
    rig.kill(signal.SIGTERM)
    assert await rig.wait_exit() == 0, rig.log_text()
    assert not rig.kubelet.reg_sock.exists()
    assert not _exists(rig.kubelet.endpoint)
    _assert_home_as_before(rig, before)


async def test_sigterm_with_a_call_in_flight_then_second_signal(rig: Rig) -> None:
    pod = FakePod(id="sb-2", name="p2", uid=str(uuid.uuid4()), netns=rig.ns.pod_path)
    claim_uid = str(uuid.uuid4())
    rig.put_claim("c2", claim_uid, "dnm0", pod)

    session = await rig.start("--debug-hold-after=attaching:1s")
    assert (await rig.kubelet.prepare("c2", claim_uid)).error == ""
    run = asyncio.ensure_future(session.run_pod_sandbox(pod))
    await _wait_phase(rig, "dnm0", "attaching")
    t0 = time.monotonic()
    rig.kill(signal.SIGTERM)  # the attach is in flight (held for 1 s)
    assert (await run).code == 0, rig.log_text()
    assert await rig.wait_exit() == 0, rig.log_text()
    assert time.monotonic() - t0 < 5
    assert rig.journal()["dnm0"]["phase"] == "attached"  # finished, and left in the running pod
    assert _in_pod(rig) is not None
    assert not rig.kubelet.reg_sock.exists()

    # restart with the pod still running and a long hold in detach: the first SIGTERM
    # waits for the in-flight StopPodSandbox, the second exits at once
    rig.runtime.sync_pods = [pod]
    session = await rig.start("--debug-hold-after=detaching:60s")
    stop = asyncio.ensure_future(session.stop_pod_sandbox(pod))
    await _wait_phase(rig, "dnm0", "detaching")
    rig.kill(signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert rig.proc is not None and rig.proc.poll() is None  # still draining
    t0 = time.monotonic()
    rig.kill(signal.SIGTERM)
    assert await rig.wait_exit() == -signal.SIGTERM
    assert time.monotonic() - t0 < 2
    await asyncio.gather(stop, return_exceptions=True)

    # and the half-done detach is finished by the next start (the pod is gone now)
    rig.runtime.sync_pods = []
    await rig.start()
    await _wait_phase(rig, "dnm0", "prepared")
    assert _at_home(rig) is not None
    assert _in_pod(rig) is None


async def test_a_second_instance_stops_with_its_cause_and_leaves_the_first_alone(rig: Rig) -> None:
    await rig.start()
    other_port = free_port()
    argv = [
        a if not a.startswith("--bind-address=") else f"--bind-address=127.0.0.1:{other_port}"
        for a in rig.argv()
    ]
    log = rig.tmp / "second.log"
    second = Rig.popen(log, argv)
    deadline = time.monotonic() + 20
    while second.poll() is None:
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.05)
    text = log.read_text()
    assert second.returncode == 1, text
    assert "dranet stopped: kubelet plugin: AlreadyRunningError: another instance of dra.net holds" in text
    # the first one still serves its sockets and is healthy
    assert rig.kubelet.reg_sock.exists()
    assert (await rig.healthz())[0] == 200
    rig.kill(signal.SIGTERM)
    assert await rig.wait_exit() == 0
