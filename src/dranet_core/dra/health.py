"""Device health for the kubelet (KEP-4680): ``DRAResourceHealth`` v1 and v1alpha1 on the DRA socket.

:class:`DeviceHealthFeed` holds the health of every device from the last check (fed by the
backends' ``ReportsHealth`` capability through :class:`~dranet_core.backend_health.BackendHealth`,
which checks every few seconds) and a version that grows with each check.
:class:`HealthServicer` serves ``NodeWatchResources``: the complete list of the driver's devices
now, then again after every check for as long as the kubelet keeps the stream. Each message is
the complete list (the kubelet reads it so), and each device carries the time of the last check
and ``health_check_timeout_seconds``, so a driver that stops checking turns UNKNOWN in the
kubelet instead of staying HEALTHY.

A device healthy -> ``HEALTHY``; unhealthy (link down, RDMA port down, ...) -> ``UNHEALTHY``;
a device that was reported and is no longer (gone from the node) -> ``UNHEALTHY`` until it
comes back. Devices are identified by pool (the node name) and device name, as published.

Both versions of the service are served from the same feed (:func:`health_services`) and both
names are advertised in GetInfo: ``v1.DRAResourceHealth`` (kubelets that know it pick it) and
``v1alpha1.DRAResourceHealth`` (older kubelets, which know only that one). The two protos are
the same messages in different packages, so both streams carry the same content.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from dranet_core._generated import v1 as pb_v1
from dranet_core._generated import v1alpha1 as pb_v1alpha1

__all__ = ["DeviceHealthFeed", "Health", "HealthServicer", "HealthServicerV1", "health_services"]

UNHEALTHY_MESSAGE = "the device's backend reports it unhealthy (e.g. link down, no active RDMA port)"
GONE_MESSAGE = "the device is no longer on the node"


class Health(enum.IntEnum):
    """A device's health; the values are the protos' ``HealthStatus`` numbers (both versions)."""

    UNKNOWN = 0
    HEALTHY = 1
    UNHEALTHY = 2


class DeviceHealthFeed:
    """Device name -> health from the last check, with check versions (module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._status: dict[str, tuple[Health, str]] = {}
        self._checked = 0
        self.version = 0
        self._event = asyncio.Event()

    def update(self, devices: Mapping[str, bool]) -> None:
        """Record one check: a full report (device -> healthy); devices missing from it are gone."""
        new: dict[str, tuple[Health, str]] = {
            n: (Health.HEALTHY, "") if ok else (Health.UNHEALTHY, UNHEALTHY_MESSAGE)
            for n, ok in devices.items()
        }
        for name in self._status.keys() - new.keys():
            new[name] = (Health.UNHEALTHY, GONE_MESSAGE)
        self._status = new
        self._checked = int(self._clock())
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    def devices(self) -> list[tuple[str, Health, int, str]]:
        """(device, status, time of the last check, message) for every known device."""
        return [(n, s, self._checked, m) for n, (s, m) in sorted(self._status.items())]

    async def wait(self, version: int) -> None:
        """Return once :attr:`version` is greater than ``version``."""
        while self.version <= version:
            await self._event.wait()


class _Stream:
    """``NodeWatchResources`` over a feed, for the proto module ``pb`` (v1 or v1alpha1)."""

    pb: Any

    def __init__(self, feed: DeviceHealthFeed, pool: str, *, timeout_seconds: int = 60) -> None:
        self.feed = feed
        self.pool = pool
        self.timeout_seconds = timeout_seconds  # several missed checks, then UNKNOWN in the kubelet

    def _response(self) -> Any:
        pb = self.pb
        return pb.NodeWatchResourcesResponse(
            devices=[
                pb.DeviceHealth(
                    device=pb.DeviceIdentifier(pool_name=self.pool, device_name=name),
                    health=pb.HealthStatus(int(status)),
                    last_updated_time=at,
                    health_check_timeout_seconds=self.timeout_seconds,
                    message=message,
                )
                for name, status, at, message in self.feed.devices()
            ]
        )

    async def _watch(self) -> AsyncIterator[Any]:
        """The complete list now, then after every check, for as long as the stream lasts."""
        seen = self.feed.version
        yield self._response()
        while True:
            await self.feed.wait(seen)
            seen = self.feed.version
            yield self._response()


class HealthServicerV1(_Stream, pb_v1.DraResourceHealthBase):
    """``v1.DRAResourceHealth`` for the devices of pool ``pool`` (the node name)."""

    pb = pb_v1
    advertised_version = "v1.DRAResourceHealth"
    """What GetInfo lists for this service; a kubelet that knows v1 prefers it to v1alpha1."""

    async def node_watch_resources(
        self, message: pb_v1.NodeWatchResourcesRequest
    ) -> AsyncIterator[pb_v1.NodeWatchResourcesResponse]:
        """The complete list now, then after every check, for as long as the stream lasts."""
        async for response in self._watch():
            yield response


class HealthServicer(_Stream, pb_v1alpha1.DraResourceHealthBase):
    """``v1alpha1.DRAResourceHealth`` for the devices of pool ``pool`` (the node name)."""

    pb = pb_v1alpha1
    advertised_version = "v1alpha1.DRAResourceHealth"
    """What GetInfo lists for this service: a kubelet that does not know v1 watches this one."""

    async def node_watch_resources(
        self, message: pb_v1alpha1.NodeWatchResourcesRequest
    ) -> AsyncIterator[pb_v1alpha1.NodeWatchResourcesResponse]:
        """The complete list now, then after every check, for as long as the stream lasts."""
        async for response in self._watch():
            yield response


def health_services(
    feed: DeviceHealthFeed, pool: str, *, timeout_seconds: int = 60
) -> tuple[list[_Stream], list[str]]:
    """Both health services over ``feed`` and the names GetInfo advertises for them (v1 first)."""
    services: list[_Stream] = [
        HealthServicerV1(feed, pool, timeout_seconds=timeout_seconds),
        HealthServicer(feed, pool, timeout_seconds=timeout_seconds),
    ]
    return services, [HealthServicerV1.advertised_version, HealthServicer.advertised_version]
