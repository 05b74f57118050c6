"""The NRI plugin against the testing kit's runtime peer (dranet_core.testing.nri_runtime),
written from the protocol's wire facts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from dranet_core.errors import RpcError, SettingsError
from dranet_core.nri import ContainerInfo, NriPlugin, api
from dranet_core.supervisor import Backoff, Job, always_recoverable, guard
from dranet_core.testing.nri_runtime import (
    ERA_V0_9,
    ERA_V0_12,
    Enomem,
    Era,
    FakeContainer,
    FakePod,
    GoConnReader,
    PeerSession,
    RuntimePeer,
    adjustment_devices,
    go_frames,
    ttrpc_msg,
)
from dranet_core.types import DeviceNode, PodSandbox

pytestmark = pytest.mark.socket


async def reconnecting(plugin: NriPlugin) -> None:
    """``plugin.run()`` as the driver runs it: a supervised job that dials again after a
    (short, for tests) backoff whenever a session ends."""
    job = Job(name="nri", run=plugin.run, backoff=Backoff(base=0.05, cap=0.2), recoverable=always_recoverable)
    await guard(job)


class Recorder:
    """A handler with every method; behaviour per call is scripted by the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, PodSandbox]] = []
        self.synced: list[tuple[list[PodSandbox], list[ContainerInfo]]] = []
        self.containers: list[ContainerInfo] = []
        self.nodes: list[DeviceNode] = []
        self.delay = 0.0
        self.error: BaseException | None = None
        self.finished: list[str] = []

    async def _act(self, what: str, pod: PodSandbox) -> None:
        self.calls.append((what, pod))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        self.finished.append(f"{what}:{pod.id}")

    async def run_pod_sandbox(self, pod: PodSandbox) -> None:
        await self._act("run", pod)

    async def stop_pod_sandbox(self, pod: PodSandbox) -> None:
        await self._act("stop", pod)

    async def remove_pod_sandbox(self, pod: PodSandbox) -> None:
        await self._act("remove", pod)

    async def create_container(self, pod: PodSandbox, container: ContainerInfo) -> Sequence[DeviceNode]:
        self.containers.append(container)
        return self.nodes

    async def synchronize(self, pods: Sequence[PodSandbox], containers: Sequence[ContainerInfo]) -> None:
        self.synced.append((list(pods), list(containers)))


class RunOnly:
    async def run_pod_sandbox(self, pod: PodSandbox) -> None:
        self.pod = pod


@pytest.fixture
def sock_path() -> Iterator[str]:
    path = f"/tmp/dnt-nri-{uuid.uuid4().hex[:10]}.sock"
    yield path
    if os.path.exists(path):
        os.unlink(path)


class Harness:
    def __init__(self, path: str) -> None:
        self.path = path
        self.peer: RuntimePeer | None = None
        self.plugin: NriPlugin | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(
        self,
        handler: object,
        era: Era = ERA_V0_12,
        *,
        request_timeout: float = 2.0,
        pods: Sequence[FakePod] = (),
        ctrs: Sequence[FakeContainer] = (),
        chunk: int | None = None,
        **kw: object,
    ) -> PeerSession:
        self.peer = RuntimePeer(self.path, era=era, request_timeout=request_timeout)
        self.peer.sync_pods, self.peer.sync_containers, self.peer.sync_chunk = list(pods), list(ctrs), chunk
        await self.peer.start()
        self.plugin = NriPlugin(handler, socket_path=self.path, **kw)  # type: ignore[arg-type]
        self.task = asyncio.create_task(reconnecting(self.plugin), name="plugin-run")
        session = await self.peer.wait_ready()
        assert session.violations == []
        return session

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.plugin is not None:
            await self.plugin.aclose()
        if self.peer is not None:
            await self.peer.aclose()


@pytest.fixture
async def harness(sock_path: str) -> AsyncIterator[Harness]:
    h = Harness(sock_path)
    try:
        yield h
    finally:
        await h.close()


def pod(n: int, netns: str | None = "/var/run/netns/cni-1") -> FakePod:
    return FakePod(
        id=f"sandbox{n:04d}" + "f" * 52,
        name=f"pod-{n}",
        uid=f"uid-{n}",
        namespace="ns",
        netns=netns,
        ips=(f"10.0.{n // 250}.{n % 250 + 1}",),
    )


async def test_registration_configure_synchronize(harness: Harness) -> None:
    rec = Recorder()
    s = await harness.start(rec, pods=[pod(1)], ctrs=[FakeContainer("c1", pod(1).id, "app")])
    assert (s.plugin_name, s.plugin_idx) == ("dra.net", "00")
    assert s.events == 0xF  # run, stop, remove, create container
    assert harness.plugin is not None and harness.plugin.registered
    h = harness.plugin.health()
    assert h.registered and h.connected and h.connects == 1 and h.events == 0xF
    assert h.runtime == "containerd v2.3.1"
    [(pods, ctrs)] = rec.synced
    assert pods == [
        PodSandbox(
            uid="uid-1",
            name="pod-1",
            namespace="ns",
            id=pod(1).id,
            netns="/var/run/netns/cni-1",
            ips=("10.0.0.2",),
        )
    ]
    assert ctrs == [ContainerInfo(id="c1", name="app", pod_sandbox_id=pod(1).id)]
    assert "registered" in repr(harness.plugin)


async def test_custom_name_and_index(harness: Harness) -> None:
    s = await harness.start(Recorder(), plugin_name="net.example.com", plugin_index="42")
    assert (s.plugin_name, s.plugin_idx) == ("net.example.com", "42")


@pytest.mark.parametrize("era", [ERA_V0_9, ERA_V0_12], ids=["v0.9", "v0.12"])
async def test_event_mask_fits_the_runtime(harness: Harness, era: Era) -> None:
    s = await harness.start(Recorder(), era=era)
    assert s.events == 0xF
    assert s.events & ~0x7FF == 0  # never a bit a v0.9 runtime rejects
    assert s.violations == []


async def test_event_mask_only_for_implemented_handlers(harness: Harness) -> None:
    s = await harness.start(RunOnly(), era=ERA_V0_9)
    assert s.events == 0x1


async def test_v0_9_runtime_uses_state_change(harness: Harness) -> None:
    rec = Recorder()
    s = await harness.start(rec, era=ERA_V0_9)
    p = pod(7, netns="/var/run/netns/cni-7")
    r = await s.run_pod_sandbox(p)
    assert (r.via, r.code) == ("StateChange", 0)
    r = await s.stop_pod_sandbox(p)
    assert (r.via, r.code) == ("StateChange", 0)
    r = await s.remove_pod_sandbox(FakePod(id=p.id, name=p.name, uid=p.uid, namespace="ns"))
    assert (r.via, r.code) == ("StateChange", 0)
    assert [(w, x.netns) for w, x in rec.calls] == [
        ("run", "/var/run/netns/cni-7"),
        ("stop", "/var/run/netns/cni-7"),
        ("remove", None),
    ]


async def test_v0_12_runtime_uses_dedicated_rpcs(harness: Harness) -> None:
    rec = Recorder()
    s = await harness.start(rec)
    r = await s.run_pod_sandbox(pod(1))
    assert (r.via, r.code) == ("RunPodSandbox", 0)
    assert rec.calls[0][1].uid == "uid-1"


async def test_unimplemented_rpc_falls_back_to_state_change(harness: Harness) -> None:
    handler = RunOnly()
    s = await harness.start(handler)
    r = await s.stop_pod_sandbox(pod(2))  # not handled: UNIMPLEMENTED -> StateChange, ignored
    assert (r.via, r.code) == ("StateChange", 0)
    raw = await s.call("StopPodSandbox", b"")
    assert raw.code == 12


async def test_split_synchronize(harness: Harness) -> None:
    rec = Recorder()
    pods = [pod(i) for i in range(45)]
    ctrs = [FakeContainer(f"c{i}", pods[i].id, "app") for i in range(45)]
    s = await harness.start(rec, pods=pods, ctrs=ctrs, chunk=10)
    assert len(s.sync_replies) == 6  # 5 pod chunks + the containers
    assert all(r.get(2) == [1] and 1 not in r for r in s.sync_replies[:-1])
    assert s.sync_replies[-1].get(2) is None
    [(got_pods, got_ctrs)] = rec.synced
    assert [p.uid for p in got_pods] == [f"uid-{i}" for i in range(45)]
    assert len(got_ctrs) == 45


async def test_big_messages_both_ways(harness: Harness) -> None:
    rec = Recorder()
    pods = [pod(i) for i in range(300)]  # Synchronize far above 4096 bytes
    s = await harness.start(rec, pods=pods)
    assert len(rec.synced[0][0]) == 300
    rec.nodes = [
        DeviceNode(
            path=f"/dev/infiniband/uverbs{i}",
            type="c",
            major=231,
            minor=192 + i,
            file_mode=0o666,
            uid=0,
            gid=i,
        )
        for i in range(150)
    ]
    r = await s.create_container(pod(1), FakeContainer("c1", pod(1).id, "app"))
    assert r.code == 0 and len(r.payload) > 6000
    devs = adjustment_devices(r.payload)
    assert len(devs) == 150
    assert devs[3] == {
        "path": "/dev/infiniband/uverbs3",
        "type": "c",
        "major": 231,
        "minor": 195,
        "file_mode": 0o666,
        "uid": 0,
        "gid": 3,
    }
    assert s.max_frame_sizes[1] == 4096  # the ~8 KB reply really was split as 4096 + rest
    assert s.violations == []


async def test_device_node_optional_fields(harness: Harness) -> None:
    rec = Recorder()
    s = await harness.start(rec)
    rec.nodes = [DeviceNode(path="/dev/vfio/12", type="c", major=511, minor=0)]
    r = await s.create_container(pod(1), FakeContainer("c1", pod(1).id, "app"))
    assert adjustment_devices(r.payload) == [
        {
            "path": "/dev/vfio/12",
            "type": "c",
            "major": 511,
            "minor": 0,
            "file_mode": None,
            "uid": None,
            "gid": None,
        }
    ]
    assert rec.containers == [ContainerInfo(id="c1", name="app", pod_sandbox_id=pod(1).id)]
    rec.nodes = []
    r = await s.create_container(pod(1), FakeContainer("c2", pod(1).id, "side"))
    assert r.code == 0 and adjustment_devices(r.payload) == []


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (RpcError(9, "device eth3 is gone"), 9, "device eth3 is gone"),
        (ValueError("boom"), 2, "ValueError: boom"),
    ],
)
async def test_handler_error_becomes_status(harness: Harness, error: Exception, code: int, text: str) -> None:
    rec = Recorder()
    s = await harness.start(rec)
    rec.error = error
    r = await s.run_pod_sandbox(pod(1))
    assert (r.code, r.message) == (code, text)
    rec.error = None
    assert (await s.run_pod_sandbox(pod(2))).code == 0  # connection still fine
    assert not s.closed.is_set()


async def test_slow_handler_answers_in_time_and_completes_late(harness: Harness) -> None:
    rec = Recorder()
    s = await harness.start(rec, request_timeout=0.6, handler_margin=0.2)
    rec.delay = 0.6  # budget 0.4 s: late by 0.2 s, done while the stop below waits for it
    r = await s.run_pod_sandbox(pod(1))
    assert not r.timed_out and r.code == 4
    assert "continues in the background" in r.message
    assert harness.plugin is not None and harness.plugin.health().late_running == 1
    rec.delay = 0
    r2 = await s.stop_pod_sandbox(pod(1))  # waits for the late run (and its undo) of the same sandbox
    assert r2.code == 0
    sid = pod(1).id
    # the late run completed, was undone (stop + remove) because the runtime had failed it,
    # and only then did the runtime's own stop run
    assert rec.finished == [f"run:{sid}", f"stop:{sid}", f"remove:{sid}", f"stop:{sid}"]
    h = harness.plugin.health()
    assert (h.late_running, h.late_completions, h.late_compensations) == (0, 1, 1)
    assert not s.closed.is_set()


async def test_late_run_is_undone_without_further_events(harness: Harness) -> None:
    rec = Recorder()
    s = await harness.start(rec, request_timeout=0.5, handler_margin=0.2)
    rec.delay = 0.5
    assert (await s.run_pod_sandbox(pod(4))).code == 4
    rec.delay = 0
    assert harness.plugin is not None
    for _ in range(200):
        if harness.plugin.health().late_compensations:
            break
        await asyncio.sleep(0.01)
    assert [w for w, _ in rec.calls] == ["run", "stop", "remove"]
    assert {p.id for _, p in rec.calls} == {pod(4).id}
    assert (await s.run_pod_sandbox(pod(5))).code == 0  # still connected and serving


async def test_a_handler_that_decides_the_undo_is_asked_instead(harness: Harness) -> None:
    class Undoes(Recorder):
        async def undo_late_run_pod_sandbox(self, pod: PodSandbox) -> None:
            await self._act("undo", pod)

    rec = Undoes()
    s = await harness.start(rec, request_timeout=0.5, handler_margin=0.2)
    rec.delay = 0.5
    assert (await s.run_pod_sandbox(pod(6))).code == 4
    rec.delay = 0
    assert harness.plugin is not None
    for _ in range(200):
        if harness.plugin.health().late_compensations:
            break
        await asyncio.sleep(0.01)
    assert [w for w, _ in rec.calls] == ["run", "undo"]  # not stop + remove


async def test_runtime_restart_reconnects_and_resyncs(harness: Harness) -> None:
    rec = Recorder()
    await harness.start(rec, pods=[pod(1)])
    assert harness.peer is not None and harness.plugin is not None
    await harness.peer.stop_listening()
    os.unlink(harness.path)
    await asyncio.sleep(0.3)  # down for a while: connection attempts fail
    assert not harness.plugin.registered
    assert harness.plugin.health().last_error is not None
    harness.peer.sync_pods = [pod(1), pod(2)]
    await harness.peer.start()
    s2 = await harness.peer.wait_ready(count=2)
    assert s2.violations == [] and s2.events == 0xF
    assert [len(p) for p, _ in rec.synced] == [1, 2]
    assert (await s2.run_pod_sandbox(pod(2))).code == 0
    assert harness.plugin.registered and harness.plugin.health().connects >= 2


async def test_garbage_drops_connection_and_plugin_reconnects(harness: Harness) -> None:
    rec = Recorder()
    s = await harness.start(rec)
    s.send_raw(b"\x00\x00\x00\x00\x00\x00\x00\x05hello")  # mux conn id 0 is reserved
    await asyncio.wait_for(s.closed.wait(), 5)
    assert harness.peer is not None and harness.plugin is not None
    s2 = await harness.peer.wait_ready(count=2)
    assert (await s2.run_pod_sandbox(pod(3))).code == 0
    assert harness.task is not None and not harness.task.done()
    assert "reserved" in (harness.plugin.health().last_error or "")


async def test_garbage_ttrpc_type_on_conn1(harness: Harness) -> None:
    s = await harness.start(Recorder())
    s.send_raw(go_frames(1, b"\x00\x00\x00\x00\x00\x00\x00\x01\x09\x00"))  # message type 9
    await asyncio.wait_for(s.closed.wait(), 5)
    assert harness.peer is not None
    s2 = await harness.peer.wait_ready(count=2)
    assert s2.violations == []


async def test_malformed_payload_and_unknown_method(harness: Harness) -> None:
    s = await harness.start(Recorder())
    r = await s.call("RunPodSandbox", b"\x0a\xff\xff")
    assert r.code == 3 and "RunPodSandboxRequest" in r.message
    r = await s.call("NoSuchMethod", b"")
    assert (r.code, r.message) == (12, "method NoSuchMethod")
    assert (await s.run_pod_sandbox(pod(1))).code == 0


async def test_update_containers(harness: Harness) -> None:
    s = await harness.start(Recorder())
    assert harness.plugin is not None
    failed = await harness.plugin.update_containers(
        [api.ContainerUpdate(container_id="c1", ignore_failure=True)],
        [api.ContainerEviction(container_id="c2", reason="device gone")],
    )
    assert failed == []
    [upd] = s.updates
    assert upd[1][0] == b"\x0a\x02c1\x18\x01"
    assert upd[2][0] == b"\x0a\x02c2\x12\x0bdevice gone"


async def test_update_containers_when_not_registered() -> None:
    plugin = NriPlugin(Recorder(), socket_path="/nonexistent/nri.sock")
    with pytest.raises(RpcError) as info:
        await plugin.update_containers()
    assert info.value.code == 14
    await plugin.aclose()


async def test_inherited_fd(sock_path: str) -> None:
    peer = RuntimePeer(sock_path)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    rec = Recorder()
    plugin = NriPlugin(rec, socket_fd=a.detach())
    task = asyncio.create_task(plugin.run())
    reader, writer = await asyncio.open_unix_connection(sock=b)
    accept = asyncio.create_task(peer._accept(reader, writer))
    try:
        s = await peer.wait_ready()
        assert s.violations == [] and (await s.run_pod_sandbox(pod(1))).code == 0
        s.close()
        await asyncio.wait_for(task, 5)  # an inherited fd cannot be re-dialled: run() returns
        assert not plugin.registered
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await plugin.aclose()
        await peer.aclose()
        await asyncio.gather(accept, return_exceptions=True)


def test_settings_are_validated() -> None:
    with pytest.raises(SettingsError, match="two digits"):
        NriPlugin(Recorder(), plugin_index="7")
    with pytest.raises(SettingsError, match="plugin name"):
        NriPlugin(Recorder(), plugin_name="dra net")
    with pytest.raises(SettingsError, match="implements no NRI event"):
        NriPlugin(object())


async def test_peer_go_reader_rejects_one_big_frame() -> None:
    """The peer's Go-reader emulation fails a 6 KB message sent as one frame, accepts 4096 + rest."""
    msg = ttrpc_msg(1, 1, b"x" * 6063)
    bad = GoConnReader()
    bad.push(msg)
    with pytest.raises(Enomem):
        await bad.read_full(10)
    good = GoConnReader()
    good.push(msg[:4096])
    good.push(msg[4096:])
    assert await good.read_full(10) == msg[:10]
    assert await good.read_full(6063) == msg[10:]


def test_socket_path_is_configurable(tmp_path: Path) -> None:
    plugin = NriPlugin(Recorder(), socket_path=tmp_path / "nri.sock")
    assert str(tmp_path / "nri.sock") in repr(plugin)


async def test_near_4mib_synchronize(harness: Harness) -> None:
    rec = Recorder()
    pods = [pod(i) for i in range(11_000)]  # ~3.9 MB in one Synchronize, one more frame after 4096
    s = await harness.start(rec, pods=pods)
    assert len(rec.synced[0][0]) == 11_000 and rec.synced[0][0][-1].uid == "uid-10999"
    assert s.violations == []


async def test_oversized_request_gets_resource_exhausted(harness: Harness) -> None:
    s = await harness.start(Recorder())
    sid = s.next_sid
    s.next_sid += 2
    fut: asyncio.Future[tuple[int, str, bytes]] = asyncio.get_running_loop().create_future()
    s.pending[sid] = fut
    length = (4 << 20) + 1
    msg = length.to_bytes(4, "big") + sid.to_bytes(4, "big") + b"\x01\x00" + bytes(length)
    s.send_raw(go_frames(1, msg[: (4 << 20)]) + go_frames(1, msg[(4 << 20) :]))
    code, message, _ = await asyncio.wait_for(fut, 10)
    assert code == 8 and "exceed maximum message size" in message
    assert (await s.run_pod_sandbox(pod(1))).code == 0  # the connection survives


async def test_big_update_containers(harness: Harness) -> None:
    s = await harness.start(Recorder())
    assert harness.plugin is not None
    updates = [api.ContainerUpdate(container_id=f"{i:064x}", ignore_failure=True) for i in range(200)]
    assert await harness.plugin.update_containers(updates) == []
    [upd] = s.updates
    assert len(upd[1]) == 200 and s.violations == []


async def test_connection_lost_during_slow_run_keeps_the_work(harness: Harness) -> None:
    """containerd treats a lost plugin as success for the event: the late run must not be undone."""
    rec = Recorder()
    s = await harness.start(rec, request_timeout=2.0)
    rec.delay = 0.3
    call = asyncio.create_task(s.run_pod_sandbox(pod(6)))
    await asyncio.sleep(0.1)
    s.close()  # the runtime drops the plugin mid-call
    with contextlib.suppress(ConnectionResetError):
        await call
    assert harness.plugin is not None and harness.peer is not None
    await harness.peer.wait_ready(count=2)
    for _ in range(100):
        if harness.plugin.health().late_completions:
            break
        await asyncio.sleep(0.01)
    h = harness.plugin.health()
    assert (h.late_completions, h.late_compensations) == (1, 0)
    assert [w for w, _ in rec.calls] == ["run"]


async def test_runtime_that_never_configures(sock_path: str) -> None:
    peer = RuntimePeer(sock_path)
    peer.stall_after_register = True
    await peer.start()
    plugin = NriPlugin(
        Recorder(),
        socket_path=sock_path,
        registration_timeout=0.2,
        request_timeout_hint=0.1,
        handler_margin=0.05,
    )
    task = asyncio.create_task(reconnecting(plugin))
    try:
        await peer.wait_sessions(2)  # gave up on the first session and dialled again
        assert "did not Configure" in (plugin.health().last_error or "")
        assert not plugin.registered
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await plugin.aclose()
        await peer.aclose()


def test_inherited_socket_env() -> None:
    from dranet_core.transport.unix import inherited_socket_fd

    assert inherited_socket_fd({}) is None
    assert inherited_socket_fd({"NRI_PLUGIN_SOCKET": "3"}) == 3
    with pytest.raises(ValueError, match="NRI_PLUGIN_SOCKET"):
        inherited_socket_fd({"NRI_PLUGIN_SOCKET": "three"})
    with pytest.raises(ValueError, match="NRI_PLUGIN_SOCKET"):
        inherited_socket_fd({"NRI_PLUGIN_SOCKET": "-1"})


async def test_configure_arrives_before_the_register_reply(sock_path: str) -> None:
    """Trap 3: the runtime may call Configure before answering RegisterPlugin."""
    peer = RuntimePeer(sock_path)
    peer.configure_before_register_reply = True
    await peer.start()
    rec = Recorder()
    plugin = NriPlugin(rec, socket_path=sock_path)
    task = asyncio.create_task(plugin.run())
    try:
        s = await peer.wait_ready()
        assert s.violations == [] and s.events == 0xF
        assert (await s.run_pod_sandbox(pod(1))).code == 0
        assert plugin.registered
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await plugin.aclose()
        await peer.aclose()


def test_from_environment() -> None:
    launched = NriPlugin.from_environment(
        Recorder(),
        environ={"NRI_PLUGIN_SOCKET": "3", "NRI_PLUGIN_NAME": "dranet", "NRI_PLUGIN_IDX": "10"},
        plugin_name="ignored",
    )
    assert "10-dranet fd 3" in repr(launched)
    external = NriPlugin.from_environment(Recorder(), environ={}, socket_path="/run/x/nri.sock")
    assert "00-dra.net /run/x/nri.sock" in repr(external)


async def test_failing_synchronize_is_retried_on_a_new_connection(harness: Harness) -> None:
    class FailsOnce(Recorder):
        async def synchronize(self, pods: Sequence[PodSandbox], containers: Sequence[ContainerInfo]) -> None:
            await super().synchronize(pods, containers)
            if len(self.synced) == 1:
                raise RpcError(14, "checkpoint not loaded yet")

    rec = FailsOnce()
    peer = harness.peer = RuntimePeer(harness.path)
    await peer.start()
    harness.plugin = NriPlugin(rec, socket_path=harness.path)
    harness.task = asyncio.create_task(reconnecting(harness.plugin))
    first = await peer.wait_ready(count=1)
    assert first.violations == ["Synchronize failed: 14 checkpoint not loaded yet"]
    second = await peer.wait_ready(count=2)
    assert second.violations == [] and harness.plugin.registered
    assert len(rec.synced) == 2
