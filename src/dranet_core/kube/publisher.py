"""``KubeStatusPublisher``: the StatusPublisher that writes to the API server.

A small facade over three writers that share one API request path (:class:`.ApiContext`:
the ApiClient, the shared resource.k8s.io version probe, the outcome of the last call):

* :class:`.SliceSync` and :class:`.SliceWatch` (:mod:`.slicesync`): the ResourceSlices;
* :class:`.ClaimStatusWriter` (:mod:`.claimwriter`): claim device status by server-side apply;
* :class:`.EventWriter` (:mod:`.eventwriter`): Events.

The public methods only record what should be and wake a writer. The I/O is done by four
loops, named by :meth:`KubeStatusPublisher.jobs` so the driver runs each as its own
supervised job (``publisher slices``, ``publisher slice watch``, ``publisher claim status``,
``publisher events``); :meth:`KubeStatusPublisher.run` runs them under a supervisor of its
own for library users. A loop retries a failed request with the one backoff and never ends
on an API error; the supervisor restarts it only after a bug.

Nothing here ever blocks a caller on the API server: while it is down, calls return at once
and the loops keep retrying; listeners (:meth:`KubeStatusPublisher.add_listener`) and
:attr:`KubeStatusPublisher.health` tell /healthz and metrics how it goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from dranet_core.kube.apicontext import ApiContext
from dranet_core.kube.apiversion import ResourceApiVersion
from dranet_core.kube.claimwriter import ClaimStatusWriter
from dranet_core.kube.client import node_provider_id
from dranet_core.kube.eventwriter import EventWriter
from dranet_core.kube.slices import MAX_DEVICES_PER_SLICE, SkippedDevice
from dranet_core.kube.slicesync import SliceSync, SliceWatch
from dranet_core.status import EventRecord, PublishListener
from dranet_core.types import ClaimRef, Device, DeviceStatus, is_dns_subdomain

__all__ = ["KubeStatusPublisher", "PublisherHealth", "PublisherSettings"]


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


@attrs.frozen(kw_only=True)
class PublisherSettings:
    """Tuning of :class:`KubeStatusPublisher` (seconds unless said otherwise)."""

    max_devices_per_slice: int = attrs.field(default=MAX_DEVICES_PER_SLICE)
    """Devices per ResourceSlice; the API allows 128."""
    request_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Total time for one API request; a hung request must not stall the queues forever."""
    backoff_initial: float = attrs.field(default=0.5, validator=_positive)
    """First retry delay after a failure; doubled per consecutive failure (with 20 % jitter)."""
    backoff_max: float = attrs.field(default=30.0, validator=_positive)
    """Longest retry delay."""
    watch_timeout: int = attrs.field(default=300)
    """``timeoutSeconds`` of the slice watch; the stream then resumes from its last event."""
    concurrent_writes: int = attrs.field(default=3, validator=_positive)
    """Slice writes (creates and replaces) of one plan in flight at once. Each holds its
    request body (about 1 MiB of Python objects at 128 devices) while in flight: a few
    overlap the round trips without raising the resident memory the peak leaves behind."""
    owner_reference: bool = True
    """Make the Node the owner of the slices (needs one GET of the Node)."""
    event_burst: int = 5
    """Events per involved object sent at once before rate limiting starts."""
    event_refill_seconds: float = attrs.field(default=60.0, validator=_positive)
    """One more event per involved object allowed every this many seconds."""
    event_dedupe_seconds: float = 300.0
    """An identical event (object, reason, message) within this window is dropped."""
    event_queue_max: int = 1000
    """Queued events beyond this are dropped (oldest first)."""
    event_attempts: int = 5
    """Tries per event before it is dropped."""

    def __attrs_post_init__(self) -> None:
        if self.backoff_max < self.backoff_initial:
            raise ValueError(f"backoff_max ({self.backoff_max}) < backoff_initial ({self.backoff_initial})")
        if self.watch_timeout < 1:
            raise ValueError(f"watch_timeout must be >= 1, got {self.watch_timeout}")

    @max_devices_per_slice.validator
    def _check_max(self, _: attrs.Attribute[int], value: int) -> None:
        if not 1 <= value <= MAX_DEVICES_PER_SLICE:
            raise ValueError(f"max_devices_per_slice must be 1..{MAX_DEVICES_PER_SLICE}, got {value}")


@attrs.frozen(kw_only=True)
class PublisherHealth:
    """What the publisher has achieved, for /healthz and metrics. Times are Unix seconds."""

    api_version: str | None
    node_uid: str | None
    slices_in_sync: bool
    published_devices: int
    published_slices: int
    last_published_time: float | None
    """When the slices last matched the device set after a write (or adoption)."""
    last_success_time: float | None
    """When any API request last succeeded."""
    last_error: str | None
    last_error_time: float | None
    skipped_devices: tuple[SkippedDevice, ...]
    pending_claim_statuses: int
    pending_events: int
    dropped_events: int
    slice_writes: int
    claim_status_writes: int


class KubeStatusPublisher:
    """Publishes ResourceSlices, claim device status and events to the API server.

    ``api_client`` is owned by the caller (closed by it). ``api_versions`` is the version
    probe shared with the claim source (``api_version`` instead skips probing); ``node_uid``
    skips the Node lookup. ``sleep`` is the seam tests use to observe backoff delays.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        driver_name: str,
        node_name: str,
        settings: PublisherSettings | None = None,
        api_version: str | None = None,
        api_versions: ResourceApiVersion | None = None,
        node_uid: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not is_dns_subdomain(driver_name) or len(driver_name) > 63 or driver_name != driver_name.lower():
            raise ValueError(f"driver name {driver_name!r}: must be a lower-case DNS subdomain of <= 63")
        if not is_dns_subdomain(node_name):
            raise ValueError(f"node name {node_name!r}: must be a DNS subdomain")
        self.settings = settings or PublisherSettings()
        versions = api_versions or ResourceApiVersion(
            api_client, request_timeout=self.settings.request_timeout, known=api_version
        )
        self.ctx = ApiContext(
            api_client,
            settings=self.settings,
            driver_name=driver_name,
            node_name=node_name,
            versions=versions,
            sleep=sleep,
            now=now,
        )
        self.slices = SliceSync(self.ctx, node_uid=node_uid)
        self.watch = SliceWatch(self.ctx, self.slices)
        self.claims = ClaimStatusWriter(self.ctx)
        self.events = EventWriter(self.ctx)

    def __repr__(self) -> str:
        return f"KubeStatusPublisher({self.ctx!r}, {self.slices!r}, {self.claims!r}, {self.events!r})"

    @property
    def driver_name(self) -> str:
        """The driver name (field manager, slice driver)."""
        return self.ctx.driver_name

    @property
    def node_name(self) -> str:
        """This node's name (slice pool and nodeName)."""
        return self.ctx.node_name

    async def node_provider_id(self) -> str:
        """This Node's ``spec.providerID`` (:class:`~dranet_core.status.DescribesNode`)."""
        return await node_provider_id(self.ctx.api_client, self.ctx.node_name)

    # ------------------------------------------------------------------ StatusPublisher API

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        """Make ``devices`` the published device set (returns at once; a writer writes)."""
        self.slices.publish(devices)
        self.watch.enabled.set()

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        """Queue an apply making ``devices`` this driver's ``status.devices`` of ``claim``."""
        self.claims.set(claim, devices)

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        """Queue an apply removing this driver's ``status.devices`` entries of ``claim``."""
        self.claims.clear(claim)

    async def record_event(self, event: EventRecord) -> None:
        """Queue an Event unless rate limiting drops it."""
        self.events.record(event)

    def add_listener(self, listener: PublishListener) -> None:
        """Tell ``listener`` what the API server accepted, and each API call's outcome."""
        self.ctx.listeners.append(listener)

    def jobs(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """The four writer loops, named, for the driver's supervisor."""
        return [
            ("publisher slices", self.slices.run),
            ("publisher slice watch", self.watch.run),
            ("publisher claim status", self.claims.run),
            ("publisher events", self.events.run),
        ]

    async def run(self) -> None:
        """Run :meth:`jobs` until cancelled, under a supervisor of its own (library use)."""
        from dranet_core.supervisor import Job, Supervisor, always_recoverable

        async with Supervisor() as sup:
            for name, run in self.jobs():
                sup.start(Job(name=name, run=run, recoverable=always_recoverable))

    # ------------------------------------------------------------------ observation

    @property
    def health(self) -> PublisherHealth:
        """What has been achieved so far."""
        s, c, e = self.slices, self.claims, self.events
        return PublisherHealth(
            api_version=self.ctx.api_version,
            node_uid=s.node_uid,
            slices_in_sync=s.done.in_sync,
            published_devices=s.done.devices,
            published_slices=s.done.slices,
            last_published_time=s.done.last_published,
            last_success_time=self.ctx.last_success,
            last_error=self.ctx.last_error,
            last_error_time=self.ctx.last_error_time,
            skipped_devices=s.skipped,
            pending_claim_statuses=len(c.pending),
            pending_events=len(e.queue),
            dropped_events=e.dropped + e.limiter.dropped,
            slice_writes=s.done.writes,
            claim_status_writes=c.writes,
        )

    @property
    def is_idle(self) -> bool:
        """Slices match the latest device set and no claim status or event is pending."""
        return self.slices.idle and not self.claims.pending and not self.events.queue

    async def wait_idle(self) -> None:
        """Wait until :attr:`is_idle` (use with a timeout: it never returns while the API is down)."""
        while not self.is_idle:
            progress = self.ctx.progress
            await progress.wait()
