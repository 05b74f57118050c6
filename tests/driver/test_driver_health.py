"""The composed Driver in-process: /healthz says which part is unhealthy, recovers forever,
/metrics counts calls, shutdown removes the sockets. No root needed (a fake discovery backend)."""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import tempfile
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

import dranet_core.app as app_module
from dranet_core.app import Driver, settle_heap
from dranet_core.demo import DemoPublisher, MemoryClaimSource
from dranet_core.demo.kubelet import KubeletPeer
from dranet_core.demo.runtime import DemoPod, NriRuntimePeer
from dranet_core.settings import (
    CheckpointSettings,
    KubeletSettings,
    KubeSettings,
    NriSettings,
    ObservabilitySettings,
    Settings,
    ShutdownSettings,
)
from dranet_core.types import Device

pytestmark = [pytest.mark.socket]


class FakeDiscovery:
    name = "fake"

    def __init__(self, n: int) -> None:
        self.n = n

    async def scan(self) -> Sequence[Device]:
        return [Device(name=f"dev{i}", attributes={"dra.net/ifName": f"dev{i}"}) for i in range(self.n)]

    async def watch(self, notify: Callable[[], None]) -> None:
        await asyncio.Event().wait()


async def _get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def _health(port: int) -> tuple[int, dict[str, Any]]:
    code, body = await _get(port, "/healthz")
    return code, json.loads(body)


async def _until(pred: Callable[[], Any], what: str, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:  # polling an HTTP endpoint: there is no event to wait for
            if await pred():
                return
            await asyncio.sleep(0.02)


@attrs.frozen
class Running:
    driver: Driver
    runtime: NriRuntimePeer
    kubelet: KubeletPeer
    stop: asyncio.Event
    task: asyncio.Task[None]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dnt-drvh-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def running(short_tmp: Path) -> AsyncIterator[Running]:
    settings = Settings(
        kube=KubeSettings(node_name="node-h"),
        kubelet=KubeletSettings(root_dir=short_tmp / "kubelet"),
        nri=NriSettings(socket_path=short_tmp / "nri.sock"),
        checkpoint=CheckpointSettings(db_path=short_tmp / "db.json"),
        observability=ObservabilitySettings(bind_address="127.0.0.1:0"),
        shutdown=ShutdownSettings(grace_period=10.0),
    )
    publisher = DemoPublisher(short_tmp / "api", node_name="node-h")
    driver = Driver(
        settings, backends=[FakeDiscovery(10)], publisher=publisher, claim_source=MemoryClaimSource()
    )
    runtime = NriRuntimePeer(settings.nri.socket_path)
    kubelet = KubeletPeer(settings.kubelet.registry_dir() / "dra.net-reg.sock")
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        rt = tg.create_task(runtime.serve())
        drv = tg.create_task(driver.run(stop=stop))
        try:
            assert driver.server is not None
            await asyncio.wait_for(driver.server.started.wait(), 10)
            yield Running(driver, runtime, kubelet, stop, drv)
        finally:
            kubelet.close()
            stop.set()
            await drv
            rt.cancel()


async def test_health_names_the_unhealthy_part_and_recovers(running: Running) -> None:
    driver, runtime, kubelet = running.driver, running.runtime, running.kubelet
    assert driver.server is not None and driver.server.port
    port = driver.server.port

    async def only_kubelet_missing() -> bool:
        code, doc = await _health(port)
        return code == 503 and doc["failing"] == ["kubelet"]

    await _until(only_kubelet_missing, "nri and inventory ready, kubelet not registered")
    code, doc = await _health(port)
    assert doc["parts"]["kubelet"]["detail"] == "waiting for the kubelet to register us"
    assert doc["parts"]["inventory"] == {"ok": True, "detail": "10 devices found, 10 to publish"}
    assert doc["parts"]["published"] == {"ok": True, "detail": "10 devices published"}
    assert doc["parts"]["nri"]["detail"].startswith("registered with dranet-demo-runtime")

    await kubelet.register()

    async def healthy() -> bool:
        return (await _health(port))[0] == 200

    await _until(healthy, "all parts ok")

    # the runtime restarts: NRI shows as failing, then the plugin reconnects by itself
    await runtime.disconnect()

    async def nri_failing() -> bool:
        code, doc = await _health(port)
        return code == 503 and doc["failing"] == ["nri"]

    await _until(nri_failing, "nri failing after the runtime dropped us")
    await _until(healthy, "nri back after reconnecting")
    assert runtime.connections == 2

    # metrics: published devices, an NRI no-op call
    await runtime.run_pod_sandbox(DemoPod(uid="nobody", name="p", netns="/run/netns/none"))
    code, body = await _get(port, "/metrics")
    text = body.decode()
    assert code == 200
    assert 'dranet_driver_published_devices_total{feature="total"} 10.0' in text
    assert 'dranet_driver_nri_plugin_requests_total{method="RunPodSandbox",status="noop"} 1.0' in text
    assert "process_start_time_seconds" in text


async def test_shutdown_removes_the_sockets(short_tmp: Path, running: Running) -> None:
    driver = running.driver
    await running.kubelet.register()
    await asyncio.wait_for(driver.health.wait_ready(), 10)
    reg = short_tmp / "kubelet" / "plugins_registry" / "dra.net-reg.sock"
    dra = short_tmp / "kubelet" / "plugins" / "dra.net" / "dra.sock"
    assert reg.exists() and dra.exists()
    assert driver.started_at is not None and driver.ready_at is not None
    assert driver.ready_at - driver.started_at < 10
    t0 = time.monotonic()
    running.stop.set()
    await asyncio.wait_for(running.task, 10)
    assert time.monotonic() - t0 < 2  # a 10 s grace is an upper bound: nothing in flight, no wait
    assert not reg.exists()
    assert not dra.exists()


async def test_api_server_down_shows_in_health_and_recovers(short_tmp: Path, fake_api: Any) -> None:
    from fakeapi import write_kubeconfig

    from dranet_core.app import kube_environment

    fake_api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-h"}})
    settings = Settings(
        kube=KubeSettings(
            node_name="node-h", kubeconfig=str(write_kubeconfig(short_tmp / "kc", fake_api.url))
        ),
        kubelet=KubeletSettings(root_dir=short_tmp / "kubelet"),
        nri=NriSettings(socket_path=short_tmp / "nri.sock"),
        checkpoint=CheckpointSettings(db_path=None),
        observability=ObservabilitySettings(bind_address=""),
        shutdown=ShutdownSettings(grace_period=1.0),
    )
    runtime = NriRuntimePeer(settings.nri.socket_path)
    kubelet = KubeletPeer(settings.kubelet.registry_dir() / "dra.net-reg.sock")
    stop = asyncio.Event()

    async def part(name: str) -> tuple[bool, str]:
        st = driver.health.snapshot()[name]
        return st.ok, st.detail

    async with kube_environment(settings) as (publisher, claims):
        driver = Driver(settings, backends=[FakeDiscovery(3)], publisher=publisher, claim_source=claims)
        async with asyncio.TaskGroup() as tg:
            rt = tg.create_task(runtime.serve())
            drv = tg.create_task(driver.run(stop=stop))
            try:
                await kubelet.register()
                await asyncio.wait_for(driver.health.wait_ready(), 10)
                assert await part("published") == (True, "3 devices published")
                assert len(fake_api.list_objects("resourceslices")) == 1

                await fake_api.go_down()
                await driver.publisher.publish_devices([])  # something to write while it is down

                async def api_failing() -> bool:
                    ok, _ = await part("published")
                    return not ok and not driver.health.ready

                await _until(api_failing, "published part failing while the API server is down")
                assert "retrying" in (await part("published"))[1]

                await fake_api.come_back()

                async def api_ok() -> bool:
                    return (await part("published"))[0]

                await _until(api_ok, "published part ok again", within=30)
                assert (await part("published"))[1] == "0 devices published"
            finally:
                kubelet.close()
                stop.set()
                await drv
                rt.cancel()


class Looping(FakeDiscovery):
    """A backend with a loop of its own (RunsInBackground) that fails once, then runs."""

    def __init__(self) -> None:
        super().__init__(1)
        self.runs = 0
        self.running = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs == 1:
            raise OSError("first run fails")
        self.running.set()
        await asyncio.Event().wait()


async def test_a_backend_loop_runs_as_a_supervised_job_and_is_restarted(short_tmp: Path) -> None:
    settings = Settings(
        kube=KubeSettings(node_name="node-h"),
        kubelet=KubeletSettings(root_dir=short_tmp / "kubelet"),
        nri=NriSettings(socket_path=short_tmp / "nri.sock"),
        checkpoint=CheckpointSettings(db_path=None),
        observability=ObservabilitySettings(bind_address=""),
        shutdown=ShutdownSettings(grace_period=1.0),
    )
    backend = Looping()
    driver = Driver(
        settings,
        backends=[backend],
        publisher=DemoPublisher(short_tmp / "api", node_name="node-h"),
        claim_source=MemoryClaimSource(),
    )
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        drv = tg.create_task(driver.run(stop=stop))
        await asyncio.wait_for(backend.running.wait(), 10)  # restarted after its backoff
        assert backend.runs == 2
        st = driver.health.snapshot()["fake background"]
        assert st.ok
        stop.set()
        await drv


class Reporting(FakeDiscovery):
    """A backend that reports per-device health (ReportsHealth)."""

    def __init__(self) -> None:
        super().__init__(2)
        self.verdict = {"dev0": True, "dev1": False}

    async def scan(self) -> Sequence[Device]:
        # its own devices carry its facet: the driver takes health only from a device's owner
        return [attrs.evolve(d, facets={self.name: {}}) for d in await super().scan()]

    async def health(self) -> dict[str, bool]:
        return dict(self.verdict)


async def test_backend_device_health_is_a_part_of_healthz(short_tmp: Path) -> None:
    settings = Settings(
        kube=KubeSettings(node_name="node-h"),
        kubelet=KubeletSettings(root_dir=short_tmp / "kubelet"),
        nri=NriSettings(socket_path=short_tmp / "nri.sock"),
        checkpoint=CheckpointSettings(db_path=None),
        observability=ObservabilitySettings(bind_address=""),
        shutdown=ShutdownSettings(grace_period=1.0),
    )
    backend = Reporting()
    driver = Driver(
        settings,
        backends=[backend],
        publisher=DemoPublisher(short_tmp / "api", node_name="node-h"),
        claim_source=MemoryClaimSource(),
    )
    assert driver.backend_health is not None
    driver.backend_health.interval = 0.05
    stop = asyncio.Event()

    def part() -> tuple[bool, str]:
        st = driver.health.snapshot()["device health"]
        return st.ok, st.detail

    async with asyncio.TaskGroup() as tg:
        drv = tg.create_task(driver.run(stop=stop))

        async def unhealthy_named() -> bool:
            # a device's health is not the driver's readiness: the part stays ok, naming it
            return part() == (True, "2 devices; unhealthy: dev1")

        await _until(unhealthy_named, "dev1 named unhealthy")
        backend.verdict["dev1"] = True

        async def healthy() -> bool:
            return part() == (True, "2 devices healthy")

        await _until(healthy, "device health recovers")
        stop.set()
        await drv


def test_settle_heap_collects_the_garbage_then_freezes_the_rest() -> None:
    class Node:
        other: Any = None

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    gone = weakref.ref(a)
    del a, b
    try:
        settle_heap()
        assert gone() is None  # collected, not frozen with the rest
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def test_a_driver_that_should_settles_its_heap_once_ready(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(app_module, "settle_heap", lambda: calls.append(running.driver.ready_at is not None))
    running.driver.settle_heap_when_ready = True
    await running.kubelet.register()
    await asyncio.wait_for(running.driver.health.wait_ready(), 10)
    async with asyncio.timeout(10):
        while not calls:  # noqa: ASYNC110 - the ready log job runs right after readiness
            await asyncio.sleep(0.01)
    assert calls == [True]
