"""Helpers for the kube tests: devices, a running publisher, polling the fake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from dranet_core.kube.publisher import KubeStatusPublisher, PublisherSettings
from dranet_core.types import Device

NODE = "node-a"
DRIVER = "dra.net"
SLICES = "/apis/resource.k8s.io/v1/resourceslices"

FAST = PublisherSettings(backoff_initial=0.01, backoff_max=0.05, request_timeout=3.0, watch_timeout=30)


def devices(n: int, *, mtu: int = 1500, prefix: str = "eth") -> list[Device]:
    return [
        Device(
            name=f"{prefix}{i:04d}",
            attributes={"dra.net/ifName": f"{prefix}{i}", "dra.net/mtu": mtu, "dra.net/virtual": False},
        )
        for i in range(n)
    ]


def add_node(fake: Any, name: str = NODE) -> dict[str, Any]:
    node: dict[str, Any] = fake.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    return node


def make_publisher(api_client: Any, **kwargs: Any) -> KubeStatusPublisher:
    kwargs.setdefault("settings", FAST)
    return KubeStatusPublisher(api_client, driver_name=DRIVER, node_name=NODE, **kwargs)


@contextlib.asynccontextmanager
async def running(publisher: KubeStatusPublisher) -> AsyncIterator[KubeStatusPublisher]:
    task = asyncio.create_task(publisher.run(), name="test publisher")
    try:
        yield publisher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll ``check`` until true; fail with the check's name after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"condition never became true within {limit}s: {check}")
        await asyncio.sleep(0.01)


async def idle(publisher: KubeStatusPublisher, limit: float = 10.0) -> None:
    await asyncio.wait_for(publisher.wait_idle(), limit)


def slices(fake: Any, node: str = NODE) -> list[dict[str, Any]]:
    return [s for s in fake.list_objects("resourceslices") if s["spec"].get("nodeName") == node]


def slice_devices(fake: Any, node: str = NODE) -> dict[str, list[str]]:
    return {s["metadata"]["name"]: [d["name"] for d in s["spec"]["devices"]] for s in slices(fake, node)}
