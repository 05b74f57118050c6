"""The device health feed behind the kubelet's health stream: complete lists, checks, gone devices."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dranet_core._generated import v1 as pb_v1
from dranet_core._generated import v1alpha1 as pb
from dranet_core.dra.health import (
    GONE_MESSAGE,
    UNHEALTHY_MESSAGE,
    DeviceHealthFeed,
    HealthServicer,
    HealthServicerV1,
    health_services,
)

H, U = 1, 2  # HEALTHY, UNHEALTHY in both protos


def _rows(msg: Any) -> list[tuple[str, str, int, int, int, str]]:
    return [
        (
            d.device.pool_name,
            d.device.device_name,
            int(d.health),
            d.last_updated_time,
            d.health_check_timeout_seconds,
            d.message,
        )
        for d in msg.devices
    ]


@pytest.mark.parametrize(
    ("servicer", "module"), [(HealthServicerV1, pb_v1), (HealthServicer, pb)], ids=["v1", "v1alpha1"]
)
async def test_every_check_sends_the_complete_list_with_its_time(servicer: Any, module: Any) -> None:
    clock = iter(range(100, 200))
    feed = DeviceHealthFeed(clock=lambda: next(clock))
    feed.update({"a": True, "b": False})
    stream = servicer(feed, "node-a", timeout_seconds=45).node_watch_resources(
        module.NodeWatchResourcesRequest()
    )
    first = await anext(stream)
    assert isinstance(first, module.NodeWatchResourcesResponse)  # the version's own messages
    assert _rows(first) == [
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


def test_both_versions_are_served_and_advertised_v1_first() -> None:
    services, names = health_services(DeviceHealthFeed(), "node-a")
    assert names == ["v1.DRAResourceHealth", "v1alpha1.DRAResourceHealth"]
    paths = [set(s.__mapping__()) for s in services]
    assert paths == [
        {"/v1.DRAResourceHealth/NodeWatchResources"},
        {"/v1alpha1.DRAResourceHealth/NodeWatchResources"},
    ]
