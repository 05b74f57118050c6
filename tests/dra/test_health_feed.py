"""The device health feed behind the kubelet's health stream: complete lists, checks, gone devices."""

from __future__ import annotations

import asyncio

from dranet_core._generated import v1alpha1 as pb
from dranet_core.dra.health import GONE_MESSAGE, UNHEALTHY_MESSAGE, DeviceHealthFeed, HealthServicer

H, U = pb.HealthStatus.HEALTHY, pb.HealthStatus.UNHEALTHY


def _rows(msg: pb.NodeWatchResourcesResponse) -> list[tuple[str, str, pb.HealthStatus, int, int, str]]:
    return [
        (
            d.device.pool_name,
            d.device.device_name,
            d.health,
            d.last_updated_time,
            d.health_check_timeout_seconds,
            d.message,
        )
        for d in msg.devices
    ]


async def test_every_check_sends_the_complete_list_with_its_time() -> None:
    clock = iter(range(100, 200))
    feed = DeviceHealthFeed(clock=lambda: next(clock))
    feed.update({"a": True, "b": False})
    stream = HealthServicer(feed, "node-a", timeout_seconds=45).node_watch_resources(
        pb.NodeWatchResourcesRequest()
    )
    assert _rows(await anext(stream)) == [
        ("node-a", "a", H, 100, 45, ""),
        ("node-a", "b", U, 100, 45, UNHEALTHY_MESSAGE),
    ]
    nxt = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    assert not nxt.done()  # nothing between checks
    feed.update({"a": True, "b": False})  # a check with no change still refreshes the time
    assert _rows(await nxt) == [
        ("node-a", "a", H, 101, 45, ""),
        ("node-a", "b", U, 101, 45, UNHEALTHY_MESSAGE),
    ]
    feed.update({"b": True})  # b back, a gone: still the complete list
    assert _rows(await anext(stream)) == [
        ("node-a", "a", U, 102, 45, GONE_MESSAGE),
        ("node-a", "b", H, 102, 45, ""),
    ]
    await stream.aclose()
