"""Per-part health of the driver, as /healthz shows it.

Each component owns one named part and pushes its state into it (:class:`HealthPart`, handed
to the component by the composition root); nothing polls. The driver is ready when every
registered part is ok.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import attrs

from dranet_core.clock import Clock, MonotonicClock

__all__ = ["Health", "HealthPart", "PartState"]


@attrs.frozen
class PartState:
    """One part of the driver as /healthz shows it."""

    ok: bool
    detail: str
    since: float


class Health:
    """Per-part health: the driver is ready when every registered part is ok.

    Parts are registered as not-ready (``"starting"``) and flip with :meth:`ok` /
    :meth:`failing`. Watchers (e.g. the devices-per-state gauge) read :meth:`snapshot`.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or MonotonicClock()
        self._parts: dict[str, PartState] = {}
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"Health(ready={self.ready}, parts={ {k: v.ok for k, v in self._parts.items()} })"

    def register(self, part: str, detail: str = "starting") -> None:
        """Add ``part`` as not ready yet."""
        self._parts.setdefault(part, PartState(False, detail, self._clock.now()))

    def ok(self, part: str, detail: str = "ok") -> None:
        """Mark ``part`` healthy."""
        self._set(part, True, detail)

    def failing(self, part: str, detail: str) -> None:
        """Mark ``part`` unhealthy, with the reason shown in /healthz."""
        self._set(part, False, detail)

    def _set(self, part: str, ok: bool, detail: str) -> None:
        old = self._parts.get(part)
        if old is None or old.ok != ok or old.detail != detail:
            since = self._clock.now() if old is None or old.ok != ok else old.since
            self._parts[part] = PartState(ok, detail, since)
            self._changed.set()

    @property
    def ready(self) -> bool:
        """True when at least one part is registered and every part is ok."""
        return bool(self._parts) and all(p.ok for p in self._parts.values())

    def snapshot(self) -> Mapping[str, PartState]:
        """A copy of every part's state."""
        return dict(self._parts)

    async def wait_ready(self) -> None:
        """Return once :attr:`ready` is true."""
        while not self.ready:
            self._changed.clear()
            await self._changed.wait()

    def part(self, name: str) -> HealthPart:
        """Register ``name`` (not ready) and return the handle its component pushes into."""
        self.register(name)
        return HealthPart(self, name)


@attrs.frozen
class HealthPart:
    """One named part of :class:`Health`: what a component is handed to report itself."""

    health: Health
    name: str

    def ok(self, detail: str = "ok") -> None:
        """Mark this part healthy."""
        self.health.ok(self.name, detail)

    def failing(self, detail: str) -> None:
        """Mark this part unhealthy, with the cause shown in /healthz."""
        self.health.failing(self.name, detail)
