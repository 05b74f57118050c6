"""Device health for the kubelet (KEP-4680): ``v1alpha1.DRAResourceHealth`` on the DRA socket.

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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping

from dranet_core._generated import v1alpha1 as pb

__all__ = ["DeviceHealthFeed", "HealthServicer"]

UNHEALTHY_MESSAGE = "the device's backend reports it unhealthy (e.g. link down, no active RDMA port)"
GONE_MESSAGE = "the device is no longer on the node"


class DeviceHealthFeed:
    """Device name -> health from the last check, with check versions (module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._status: dict[str, tuple[pb.HealthStatus, str]] = {}
        self._checked = 0
        self.version = 0
        self._event = asyncio.Event()

    def update(self, devices: Mapping[str, bool]) -> None:
        """Record one check: a full report (device -> healthy); devices missing from it are gone."""
        new: dict[str, tuple[pb.HealthStatus, str]] = {
            n: (pb.HealthStatus.HEALTHY, "") if ok else (pb.HealthStatus.UNHEALTHY, UNHEALTHY_MESSAGE)
            for n, ok in devices.items()
        }
        for name in self._status.keys() - new.keys():
            new[name] = (pb.HealthStatus.UNHEALTHY, GONE_MESSAGE)
        self._status = new
        self._checked = int(self._clock())
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    def devices(self) -> list[tuple[str, pb.HealthStatus, int, str]]:
        """(device, status, time of the last check, message) for every known device."""
        return [(n, s, self._checked, m) for n, (s, m) in sorted(self._status.items())]

    async def wait(self, version: int) -> None:
        """Return once :attr:`version` is greater than ``version``."""
        while self.version <= version:
            await self._event.wait()


class HealthServicer(pb.DraResourceHealthBase):
    """``v1alpha1.DRAResourceHealth`` for the devices of pool ``pool`` (the node name)."""

    advertised_version = "v1alpha1.DRAResourceHealth"
    """What GetInfo lists for this service: the kubelet watches health only when it is there."""

    def __init__(self, feed: DeviceHealthFeed, pool: str, *, timeout_seconds: int = 60) -> None:
        self.feed = feed
        self.pool = pool
        self.timeout_seconds = timeout_seconds  # several missed checks, then UNKNOWN in the kubelet

    def _response(self) -> pb.NodeWatchResourcesResponse:
        return pb.NodeWatchResourcesResponse(
            devices=[
                pb.DeviceHealth(
                    device=pb.DeviceIdentifier(pool_name=self.pool, device_name=name),
                    health=status,
                    last_updated_time=at,
                    health_check_timeout_seconds=self.timeout_seconds,
                    message=message,
                )
                for name, status, at, message in self.feed.devices()
            ]
        )

    async def node_watch_resources(
        self, message: pb.NodeWatchResourcesRequest
    ) -> AsyncIterator[pb.NodeWatchResourcesResponse]:
        """The complete list now, then after every check, for as long as the stream lasts."""
        seen = self.feed.version
        yield self._response()
        while True:
            await self.feed.wait(seen)
            seen = self.feed.version
            yield self._response()
