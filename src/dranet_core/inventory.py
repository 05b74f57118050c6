"""The inventory loop: discover, merge, filter, and publish devices only when they change.

:class:`Inventory` is generic: it knows nothing of netlink or sysfs, only the
:class:`~dranet_core.discovery.Discovery` backends it is given and the
:class:`~dranet_core.status.StatusPublisher` it publishes to.

How it runs (:meth:`Inventory.run`, one task per backend's ``watch`` plus the loop, all in
one :class:`asyncio.TaskGroup`):

1. Wait for a token of the rate limiter: a token bucket refilled with one token every
   ``min_interval`` seconds (default 2 s) holding at most ``burst`` tokens (default 5),
   as the Go driver's ``rate.Every(2s)``, burst 5.
2. Scan every backend, merge devices of the same name (:meth:`Device.merged`, backend order;
   later backends add to and override earlier ones), overlay pinned devices, put list-typed
   attributes in their published form (scalars unless ``list_attributes``:
   :mod:`~dranet_core.attribute_forms`), apply the filter.
3. Publish the filtered list through :meth:`StatusPublisher.publish_devices` only if it
   differs from the last published one (the very first scan always publishes, even an
   empty list, so a node without devices still gets its empty slice).
4. Sleep until a backend calls ``notify()``, :meth:`request_rescan` is called, or
   ``resync`` seconds pass (default 60 s, the safety net). After a wake-up the loop waits
   ``coalesce`` seconds (default 50 ms) so a burst of kernel events (link up, then its
   addresses) becomes one scan and one publish; notifications during a scan cause exactly
   one more scan.

Pinning: a device attached to a pod may vanish from its backend's view (its netdev lives in
the pod's netns). The driver calls :meth:`pin` on attach and :meth:`unpin` on detach. A
pinned device stays in the inventory with its last known attributes and facets; while the
backend still reports it (a PCI NIC keeps its identity, minus the netdev attributes), live
attributes win and missing ones are filled from the last known device, so the scheduler
and the cluster autoscaler keep seeing the same device. With a :class:`PinStore`, the pinned
devices' last known form is written to disk whenever it changes and read back at start, so a
device that is in a pod while the driver restarts stays published unchanged.

A failing scan is logged and retried at the next wake-up; a failing ``watch`` is restarted
with exponential backoff (1 s doubling to 30 s) while the periodic resync keeps the
inventory fresh. Neither stops the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set

import attrs

from dranet_core.attribute_forms import ScalarForms
from dranet_core.clock import Clock, MonotonicClock
from dranet_core.discovery import Discovery
from dranet_core.errors import TemporaryError
from dranet_core.filter import DeviceFilter
from dranet_core.metadata.standard import StandardAttributes
from dranet_core.pinstore import PinStore
from dranet_core.status import StatusPublisher
from dranet_core.types import Device

__all__ = ["Clock", "Inventory", "InventoryView", "MonotonicClock", "TokenBucket"]

log = logging.getLogger(__name__)


class TokenBucket:
    """A token bucket: one token every ``interval`` seconds, at most ``burst`` stored.

    Starts full. :meth:`acquire` takes a token, waiting for one if the bucket is empty.
    """

    def __init__(self, interval: float, burst: int, clock: Clock) -> None:
        if interval < 0 or burst < 1:
            raise ValueError(f"token bucket: interval must be >= 0 and burst >= 1 (got {interval}, {burst})")
        self.interval = interval
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock.now()

    def _refill(self) -> None:
        now = self._clock.now()
        if self.interval == 0:
            self._tokens = float(self.burst)
        else:
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) / self.interval)
        self._stamp = now

    @property
    def tokens(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    async def acquire(self) -> None:
        """Take one token, waiting until one is available."""
        self._refill()
        while self._tokens < 1.0:
            await self._clock.sleep((1.0 - self._tokens) * self.interval)
            self._refill()
        self._tokens -= 1.0


@attrs.frozen(kw_only=True)
class InventoryView:
    """The inventory at one moment.

    ``devices``: every discovered device (merged across backends, pinned ones included),
    before the filter: what the allocator looks devices up in. ``published``: the devices
    that passed the filter: what was (or is about to be) published.
    """

    devices: Mapping[str, Device] = attrs.field(factory=dict)
    published: Mapping[str, Device] = attrs.field(factory=dict)


def _lacks_some(live: Device, last: Device) -> bool:
    return not (
        last.attributes.keys() <= live.attributes.keys()
        and last.capacity.keys() <= live.capacity.keys()
        and last.facets.keys() <= live.facets.keys()
    )


def _name_of(d: Discovery) -> str:
    return str(getattr(d, "name", type(d).__name__))


def _same(a: Mapping[str, Device], b: Mapping[str, Device]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(a[k] is b[k] or a[k] == b[k] for k in a)


class Inventory:
    """The core inventory loop over a set of discovery backends (see the module docstring)."""

    def __init__(
        self,
        discoverers: Sequence[Discovery],
        publisher: StatusPublisher,
        *,
        filter: DeviceFilter | None = None,
        min_interval: float = 2.0,
        burst: int = 5,
        resync: float = 60.0,
        coalesce: float = 0.05,
        clock: Clock | None = None,
        pin_store: PinStore | None = None,
        list_attributes: bool = False,
    ) -> None:
        if resync <= 0:
            raise ValueError(f"inventory: resync must be > 0 (got {resync})")
        if coalesce < 0:
            raise ValueError(f"inventory: coalesce must be >= 0 (got {coalesce})")
        self._discoverers = tuple(discoverers)
        self._publisher = publisher
        self._filter = filter or DeviceFilter.compile("")
        self._clock: Clock = clock or MonotonicClock()
        self._bucket = TokenBucket(min_interval, burst, self._clock)
        self._resync = resync
        self._coalesce = coalesce
        self._wake = asyncio.Event()
        self._view = InventoryView()
        self._published: dict[str, Device] | None = None
        self._pinned: dict[str, Device | None] = {}
        self._pin_store = pin_store or PinStore(None)
        self._restored = self._pin_store.load()  # pinned by the previous run, until re-pinned
        self._filter_cache: dict[str, tuple[Device, bool]] = {}
        self._standard = StandardAttributes()
        self._forms = ScalarForms(lists=list_attributes)
        self._scans = 0
        self._publishes = 0
        self.enrich: Callable[[Mapping[str, Device]], Awaitable[dict[str, Device]]] | None = None
        """Adds attributes from outside the backends (cloud metadata, a webhook) to every scan's
        devices, after the standard attributes and before pinning and the filter."""

    # -- what the driver calls -------------------------------------------------------------

    def current(self) -> InventoryView:
        """The latest view: all devices by name, and the published (filtered) ones."""
        return self._view

    def request_rescan(self) -> None:
        """Ask for a scan soon (rate limits still apply). Never blocks; safe to call often."""
        self._wake.set()

    def pin(self, device_name: str) -> None:
        """Keep ``device_name`` published with its last known attributes (it is in a pod)."""
        if device_name not in self._pinned:
            last = self._view.devices.get(device_name) or self._restored.get(device_name)
            self._pinned[device_name] = last
            self._save_pins()

    def unpin(self, device_name: str) -> None:
        """Stop keeping ``device_name``; it is published only if its backend reports it."""
        self._pinned.pop(device_name, None)
        self._restored.pop(device_name, None)
        self._save_pins()
        self.request_rescan()

    def hold_only(self, names: Set[str]) -> None:
        """Pin exactly ``names`` (the devices away from the host); unpin the others (DevicePins)."""
        for name in names - self._pinned.keys():
            self.pin(name)
        for name in self._pinned.keys() - names:
            self.unpin(name)

    async def refresh(self, *, publish: bool = True) -> InventoryView:
        """Scan now (no rate limit) and publish if the published set changed.

        With ``publish=False`` only the view is updated (``dranet inventory``).
        """
        view = await self._scan()
        if publish:
            await self._publish_if_changed(view)
        return view

    def jobs(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """The inventory's long-lived loops, named, for the driver's supervisor: one watch
        per discovery backend (``inventory watch <backend>``) and the scan/publish loop
        (``inventory loop``). None retries internally; a failure ends the job, the
        supervisor restarts it after a backoff and shows the cause in its health part."""
        out: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (f"inventory watch {_name_of(d)}", functools.partial(self._watch, d)) for d in self._discoverers
        ]
        out.append(("inventory loop", self._loop))
        return out

    async def run(self) -> None:
        """Run :meth:`jobs` until cancelled under a supervisor of its own (library use; the
        driver supervises each job itself, by name)."""
        from dranet_core.supervisor import Job, Supervisor, always_recoverable

        async with Supervisor() as sup:
            for name, loop in self.jobs():
                sup.start(Job(name=name, run=loop, recoverable=always_recoverable))

    # -- internals ---------------------------------------------------------------------------

    def _notify(self) -> None:
        self._wake.set()

    async def _watch(self, discoverer: Discovery) -> None:
        self._wake.set()  # a (re)started watch may have missed events: scan once
        await discoverer.watch(self._notify)
        raise TemporaryError(f"the watch of {_name_of(discoverer)} returned")

    async def _loop(self) -> None:
        while True:
            await self._bucket.acquire()
            self._wake.clear()
            view = await self._scan()
            await self._publish_if_changed(view)
            await self._wait_for_wake()

    async def _wait_for_wake(self) -> None:
        if not self._wake.is_set():
            timed_out = False

            async def resync_timer() -> None:
                nonlocal timed_out
                await self._clock.sleep(self._resync)
                timed_out = True
                self._wake.set()

            async with asyncio.TaskGroup() as tg:  # the timer runs on the injected clock
                timer = tg.create_task(resync_timer(), name="inventory resync timer")
                await self._wake.wait()
                timer.cancel()
            if timed_out:
                return  # periodic resync: scan right away
        if self._coalesce > 0:
            await self._clock.sleep(self._coalesce)

    async def _scan(self) -> InventoryView:
        merged: dict[str, Device] = {}
        for d in self._discoverers:
            for dev in await d.scan():
                prev = merged.get(dev.name)
                merged[dev.name] = dev if prev is None else prev.merged(dev)
        merged = self._standard.apply(merged)
        if self.enrich is not None:
            merged = await self.enrich(merged)
        self._overlay_pinned(merged)
        merged = self._forms.apply(merged)
        published = {name: dev for name, dev in merged.items() if self._matches(dev)}
        for gone in self._filter_cache.keys() - merged.keys():
            del self._filter_cache[gone]
        self._scans += 1
        self._view = InventoryView(devices=merged, published=published)
        return self._view

    def _overlay_pinned(self, merged: dict[str, Device]) -> None:
        for name, last in self._pinned.items():
            live = merged.get(name)
            if live is None:
                if last is not None:
                    merged[name] = last
                continue
            if last is not None and live is not last and _lacks_some(live, last):
                live = Device(
                    name=name,
                    attributes={**last.attributes, **live.attributes},
                    capacity={**last.capacity, **live.capacity},
                    facets={**last.facets, **live.facets},
                    allow_multiple_allocations=live.allow_multiple_allocations,
                )
                merged[name] = live
            self._pinned[name] = live
        self._save_pins()

    def _save_pins(self) -> None:
        self._pin_store.save({name: dev for name, dev in self._pinned.items() if dev is not None})

    def _matches(self, dev: Device) -> bool:
        cached = self._filter_cache.get(dev.name)
        if cached is not None and (cached[0] is dev or cached[0] == dev):
            return cached[1]
        ok = self._filter.matches(dev)
        self._filter_cache[dev.name] = (dev, ok)
        return ok

    async def _publish_if_changed(self, view: InventoryView) -> None:
        if self._published is not None and _same(self._published, view.published):
            return
        devices = [view.published[k] for k in sorted(view.published)]
        await self._publisher.publish_devices(devices)
        self._published = dict(view.published)
        self._publishes += 1
        log.info("inventory: published %d device(s)", len(devices))

    def __repr__(self) -> str:
        return (
            f"Inventory(backends={len(self._discoverers)}, devices={len(self._view.devices)}, "
            f"published={len(self._view.published)}, pinned={len(self._pinned)}, scans={self._scans}, "
            f"publishes={self._publishes})"
        )
