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
from e2e.nodenet import WAIT, free_port
from e2e.processes import DriverProcess
from fakeapi import FakeApiServer

from dranet_core.testing.kubelet import Kubelet
from dranet_core.testing.nri_runtime import FakePod, PeerSession, RuntimePeer

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

NODE = "node-a"
CONFIG = {"interface": {"name": "net1", "addresses": ["192.168.77.2/24"], "mtu": 1400}}


class Rig(DriverProcess):
    """Everything around one driver process (which may be killed and restarted)."""

    def __init__(self, tmp: Path, ns: NodeNs, api: FakeApiServer, pb: types.SimpleNamespace) -> None:
        super().__init__(tmp, ns.node_path, api.url, node_name=NODE)
        self.ns = ns
        self.api = api
        self.kubelet = Kubelet(pb, self.root, wait=WAIT)
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
    assert "dranet stopped: kubelet: AlreadyRunningError: another instance of dra.net holds" in text
    # the first one still serves its sockets and is healthy
    assert rig.kubelet.reg_sock.exists()
    assert (await rig.healthz())[0] == 200
    rig.kill(signal.SIGTERM)
    assert await rig.wait_exit() == 0


# --- every capability the driver composes, seen from outside the real process -------------


async def _until(pred: Any, what: str, rig: Rig, within: float = 20) -> Any:
    """Poll ``pred()`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        got = pred()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        assert time.monotonic() < deadline, f"never: {what}\n{rig.log_text()}"
        await asyncio.sleep(0.05)


def _events(rig: Rig, reason: str) -> list[dict[str, Any]]:
    return [e for e in rig.api.list_objects("events") if e.get("reason") == reason]


def _status_devices(rig: Rig, name: str) -> list[dict[str, Any]]:
    claim = rig.api.get_object("resourceclaims", name, "default") or {}
    devices: list[dict[str, Any]] = claim.get("status", {}).get("devices") or []
    return devices


async def _metric(rig: Rig, name: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return "\n".join(line for line in data.decode().splitlines() if line.startswith(name))


async def test_a_failed_attach_is_reported_on_the_claim_and_the_pod_and_unprepare_clears_it(rig: Rig) -> None:
    pod = FakePod(id="sb-f", name="pf", uid=str(uuid.uuid4()), netns=str(rig.tmp / "no-such-netns"))
    claim_uid = str(uuid.uuid4())
    rig.put_claim("cf", claim_uid, "dnm0", pod)
    session = await rig.start()
    assert (await rig.kubelet.prepare("cf", claim_uid)).error == ""
    result = await session.run_pod_sandbox(pod)
    assert result.code != 0, rig.log_text()
    assert _at_home(rig) is not None  # nothing moved
    (status,) = await _claim_devices(rig, "cf")
    assert status["device"] == "dnm0"
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Ready", "False", "NetworkDeviceAttachFailed")
    assert "dnm0" in cond["message"] and cond["message"]
    (event,) = await _until(lambda: _events(rig, "NetworkDeviceAttachFailed"), "attach event", rig)
    assert event["type"] == "Warning"
    assert (event["involvedObject"]["kind"], event["involvedObject"]["name"]) == ("Pod", "pf")

    # unprepare removes the entries this driver wrote
    assert (await rig.kubelet.unprepare("cf", claim_uid)).error == ""
    await _until(lambda: not _status_devices(rig, "cf"), "status cleared on unprepare", rig)


async def test_a_failed_prepare_posts_claim_prepare_failed(rig: Rig) -> None:
    pod = FakePod(id="sb-p", name="pp", uid=str(uuid.uuid4()), netns=rig.ns.pod_path)
    claim_uid = str(uuid.uuid4())
    rig.put_claim("cp", claim_uid, "no-such-device", pod)
    await rig.start()
    res = await rig.kubelet.prepare("cp", claim_uid)
    assert res.error != ""
    (event,) = await _until(lambda: _events(rig, "ClaimPrepareFailed"), "prepare event", rig)
    assert event["type"] == "Warning"
    involved = event["involvedObject"]
    assert (involved["kind"], involved["name"], involved["uid"]) == ("ResourceClaim", "cp", claim_uid)
    assert "no-such-device" in event["message"]


async def test_a_restart_reasserts_the_claim_status_from_the_journal(rig: Rig) -> None:
    pod = FakePod(id="sb-r", name="pr", uid=str(uuid.uuid4()), netns=rig.ns.pod_path)
    claim_uid = str(uuid.uuid4())
    rig.put_claim("cr", claim_uid, "dnm0", pod)
    session = await rig.start()
    assert (await rig.kubelet.prepare("cr", claim_uid)).error == ""
    assert (await session.run_pod_sandbox(pod)).code == 0, rig.log_text()
    await _claim_devices(rig, "cr")
    await rig.crash()
    rig.put_claim("cr", claim_uid, "dnm0", pod)  # the status written before the crash is lost
    assert _status_devices(rig, "cr") == []

    rig.runtime.sync_pods = [pod]
    await rig.start()
    (status,) = await _claim_devices(rig, "cr")
    assert status["device"] == "dnm0"
    assert status["networkData"]["interfaceName"] == "net1"
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("Ready", "True"),
        ("NetworkReady", "True"),
    ]


async def test_an_unusable_checkpoint_posts_a_warning_event(rig: Rig) -> None:
    rig.db.parent.mkdir(parents=True, exist_ok=True)
    rig.db.write_text("{ not json")
    await rig.start()
    (event,) = await _until(lambda: _events(rig, "CheckpointUnusable"), "checkpoint event", rig)
    assert event["type"] == "Warning"
    assert (event["involvedObject"]["kind"], event["involvedObject"]["name"]) == ("Node", NODE)
    assert str(rig.db) in event["message"]


async def test_published_means_the_api_server_accepted_the_slices(rig: Rig) -> None:
    await rig.api.go_down()
    rig.spawn()
    await rig.kubelet.register()
    rig.sessions += 1
    await rig.runtime.wait_ready(rig.sessions)

    async def published_failing() -> Any:
        code, doc = await rig.healthz()
        part = doc["parts"].get("published", {})
        return code == 503 and part.get("ok") is False and "retrying" in part.get("detail", "") and doc

    doc = await _until(published_failing, "published part failing with its cause", rig)
    assert doc["failing"] == ["published"], doc
    # nothing reached the cluster: neither metric has moved
    assert 'feature="total"' not in await _metric(rig, "dranet_driver_published_devices_total")
    assert " 0.0" in await _metric(rig, "dranet_driver_last_published_time_seconds")

    await rig.api.come_back()
    await rig.wait_healthy()
    _, doc = await rig.healthz()
    detail = doc["parts"]["published"]["detail"]
    count = len(rig.api.list_objects("resourceslices")[0]["spec"]["devices"])
    assert detail == f"{count} devices published"
    assert f'feature="total"}} {float(count)}' in await _metric(rig, "dranet_driver_published_devices_total")
    assert " 0.0" not in await _metric(rig, "dranet_driver_last_published_time_seconds")


async def test_prepare_from_the_claim_watch_and_a_new_sandbox_gets_the_device(rig: Rig) -> None:
    from driver_helpers import ip

    second = f"{rig.ns.prefix}-p2"  # the pod's second sandbox gets a new netns
    ip("netns", "add", second)
    try:
        before = _at_home(rig, "dnt0")
        assert before is not None
        uid = str(uuid.uuid4())
        sb1 = FakePod(id="sb-1", name="p1", uid=uid, netns=rig.ns.pod_path)
        sb2 = FakePod(id="sb-2", name="p1", uid=uid, netns=f"/run/netns/{second}")
        claim_uid = str(uuid.uuid4())
        rig.put_claim("c1", claim_uid, "dnt0", sb1)
        session = await rig.start()

        # the driver watches this node's claims: once its watch runs, prepare reads no claim
        def watching() -> bool:
            return any(r.resource == "resourceclaims" and r.is_watch for r in rig.api.requests)

        deadline = time.monotonic() + 20
        while not watching():
            assert time.monotonic() < deadline, rig.log_text()
            await asyncio.sleep(0.02)
        res = await rig.kubelet.prepare("c1", claim_uid)
        assert res.error == "", rig.log_text()
        gets = [r for r in rig.api.requests if r.resource == "resourceclaims" and r.name == "c1"]
        assert [r for r in gets if r.method == "GET"] == [], "prepare read the claim from the API server"

        assert (await session.run_pod_sandbox(sb1)).code == 0, rig.log_text()
        assert link(rig.ns.pod, "net1") is not None
        # the runtime tears sb-1 down without Stop/Remove and the kubelet retries with sb-2
        result = await session.run_pod_sandbox(sb2)
        assert result.code == 0, f"{result}\n{rig.log_text()}"
        assert link(rig.ns.pod, "net1") is None and link(second, "net1") is not None
        entry = rig.journal()["dnt0"]
        assert (entry["phase"], entry["sandboxID"], entry["netns"]) == ("attached", "sb-2", sb2.netns)
        # a late Stop of the old sandbox leaves the device in the new one
        assert (await session.stop_pod_sandbox(sb1)).code == 0
        assert link(second, "net1") is not None
        assert (await session.stop_pod_sandbox(sb2)).code == 0
        _assert_home_as_before(rig, before)
        assert (await rig.kubelet.unprepare("c1", claim_uid)).error == ""
        assert rig.journal() == {}
    finally:
        ip("netns", "del", second, check=False)


async def test_a_hostile_checkpoint_and_planted_symlinks_never_stop_or_fool_the_driver(rig: Rig) -> None:
    # a checkpoint nested 100,000 deep: set aside, reported, the driver starts and serves
    rig.db.parent.mkdir(parents=True, exist_ok=True)
    rig.db.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    # symlinks planted where the driver writes as root: the checkpoint's temp files
    victim = rig.tmp / "victim"
    victim.write_text("keep me\n")
    for n in range(8):
        (rig.db.parent / f".{rig.db.name}.tmp-{n}").symlink_to(victim)
    await rig.start()
    (event,) = await _until(lambda: _events(rig, "CheckpointUnusable"), "checkpoint event", rig)
    assert "nested too deeply" in event["message"], event["message"]
    assert "RecursionError" not in rig.log_text() and "Traceback" not in rig.log_text()
    aside = [p for p in rig.db.parent.iterdir() if p.name.startswith(f"{rig.db.name}.corrupt-")]
    assert len(aside) == 1 and aside[0].stat().st_size == 200_000
    # the driver works and writes its checkpoint without touching the symlinks' target
    pod = FakePod(id="sb-h", name="ph", uid=str(uuid.uuid4()), netns=rig.ns.pod_path)
    claim_uid = str(uuid.uuid4())
    rig.put_claim("ch", claim_uid, "dnm0", pod)
    assert (await rig.kubelet.prepare("ch", claim_uid)).error == "", rig.log_text()
    assert rig.journal() == {"dnm0": {"phase": "prepared"}}
    assert victim.read_text() == "keep me\n" and not rig.db.is_symlink()
    rig.kill(signal.SIGTERM)
    assert await rig.wait_exit() == 0

    # a symlink planted at instance.lock: replaced by a lock file, its target untouched
    lock = rig.root / "plugins" / "dra.net" / "instance.lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(victim)
    await rig.start()
    assert victim.read_text() == "keep me\n" and not lock.is_symlink()
    assert "instance.lock is a symbolic link" in rig.log_text()
    rig.kill(signal.SIGTERM)
    assert await rig.wait_exit() == 0
