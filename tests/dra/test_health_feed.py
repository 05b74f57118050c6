"""The device health feed behind the kubelet's health stream: versions, changes, gone devices."""

from __future__ import annotations

import asyncio

from dranet_core._generated import v1alpha1 as pb
from dranet_core.dra.health import DeviceHealthFeed, HealthServicer

H, U = pb.HealthStatus.HEALTHY, pb.HealthStatus.UNHEALTHY


async def test_stream_sends_everything_then_only_changes() -> None:
    clock = iter(range(100, 200))
    feed = DeviceHealthFeed(clock=lambda: next(clock))
    feed.update({"a": True, "b": False})
    stream = HealthServicer(feed, "node-a").node_watch_resources(pb.NodeWatchResourcesRequest())
    first = await anext(stream)
    assert [
        (d.device.pool_name, d.device.device_name, d.health, d.last_updated_time) for d in first.devices
    ] == [
        ("node-a", "a", H, 100),
        ("node-a", "b", U, 100),
    ]
    nxt = asyncio.ensure_future(anext(stream))
    feed.update({"a": True, "b": False})  # no change: nothing sent
    await asyncio.sleep(0)
    assert not nxt.done()
    feed.update({"b": True})  # b back, a gone
    msg = await nxt
    assert [(d.device.device_name, d.health, d.last_updated_time) for d in msg.devices] == [
        ("a", U, 102),
        ("b", H, 102),
    ]
    assert feed.devices() == [("a", U, 102), ("b", H, 102)]
    await stream.aclose()
