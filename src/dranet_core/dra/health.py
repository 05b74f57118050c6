"""Device health for the kubelet (KEP-4680): ``v1alpha1.DRAResourceHealth`` on the DRA socket.

:class:`DeviceHealthFeed` holds the last reported health of every device (fed by the
backends' ``ReportsHealth`` capability through :class:`~dranet_core.backend_health.BackendHealth`)
and a version that grows with each change. :class:`HealthServicer` serves
``NodeWatchResources``: the health of every known device first, then, for as long as the
kubelet keeps the stream, one message per change with the devices that changed.

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


class DeviceHealthFeed:
    """Device name -> health status, with change versions (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._status: dict[str, pb.HealthStatus] = {}
        self._changed_at: dict[str, int] = {}
        self._updated: dict[str, int] = {}
        self.version = 0
        self._event = asyncio.Event()

    def update(self, devices: Mapping[str, bool]) -> None:
        """Record one full report (device -> healthy); devices missing from it are gone."""
        now = int(self._clock())
        new = {n: pb.HealthStatus.HEALTHY if ok else pb.HealthStatus.UNHEALTHY for n, ok in devices.items()}
        for name in self._status.keys() - new.keys():
            new[name] = pb.HealthStatus.UNHEALTHY
        changed = [n for n, s in new.items() if self._status.get(n) != s]
        if not changed:
            return
        self.version += 1
        for n in changed:
            self._changed_at[n] = self.version
            self._updated[n] = now
        self._status = new
        self._event.set()
        self._event = asyncio.Event()

    def devices(self, since: int = 0) -> list[tuple[str, pb.HealthStatus, int]]:
        """(device, status, last update time) of the devices changed after version ``since``."""
        return [
            (n, s, self._updated.get(n, 0))
            for n, s in sorted(self._status.items())
            if self._changed_at.get(n, 0) > since
        ]

    async def wait(self, version: int) -> None:
        """Return once :attr:`version` is greater than ``version``."""
        while self.version <= version:
            await self._event.wait()


class HealthServicer(pb.DraResourceHealthBase):
    """``v1alpha1.DRAResourceHealth`` for the devices of pool ``pool`` (the node name)."""

    advertised_version = "v1alpha1.DRAResourceHealth"
    """What GetInfo lists for this service: the kubelet watches health only when it is there."""

    def __init__(self, feed: DeviceHealthFeed, pool: str) -> None:
        self.feed = feed
        self.pool = pool

    def _response(self, devices: list[tuple[str, pb.HealthStatus, int]]) -> pb.NodeWatchResourcesResponse:
        return pb.NodeWatchResourcesResponse(
            devices=[
                pb.DeviceHealth(
                    device=pb.DeviceIdentifier(pool_name=self.pool, device_name=name),
                    health=status,
                    last_updated_time=at,
                )
                for name, status, at in devices
            ]
        )

    async def node_watch_resources(
        self, message: pb.NodeWatchResourcesRequest
    ) -> AsyncIterator[pb.NodeWatchResourcesResponse]:
        """Every device now, then the devices that changed, for as long as the stream lasts."""
        seen = self.feed.version
        yield self._response(self.feed.devices())
        while True:
            await self.feed.wait(seen)
            changed = self.feed.devices(seen)
            seen = self.feed.version
            if changed:
                yield self._response(changed)
