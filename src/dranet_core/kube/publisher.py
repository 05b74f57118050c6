"""``KubeStatusPublisher``: the StatusPublisher that writes to the API server.

The public methods only record what should be and wake the worker; :meth:`run` is the one
supervised coroutine that does the I/O, in four loops under one ``TaskGroup``:

``slices``
    Makes the server hold exactly the latest device set (see :mod:`.slices` for the layout
    and generation rules). At the first sync it probes the resource.k8s.io version (v1,
    else v1beta2, else v1beta1), GETs the Node once for the owner reference, lists this
    driver's slices for this node (``fieldSelector=spec.nodeName=<node>,spec.driver=<driver>``)
    and adopts or deletes them. Afterwards it writes only the slices whose content changed
    (PUT with the last seen resourceVersion, POST for new ones, DELETE with uid and
    resourceVersion preconditions for obsolete ones). A 409 or 404 means our view is stale:
    re-list and re-plan at once (a few times, then with backoff); other failures back off
    exponentially (``backoff_initial`` .. ``backoff_max``) and retry, forever.
``watch``
    Watches the same slices. A slice of ours deleted or changed by someone else (the kubelet
    wipes a driver's slices at its start and 30 s after losing the plugin) or a stranger
    slice makes the slice loop re-list and repair. Events are judged by the slice loop, after
    its own writes are recorded, so our own writes never cause extra writes. The watch starts
    at the resourceVersion of a list and resumes from the last event it saw (after a timeout
    or a broken connection), so nothing can slip between; after a 410 (history gone) it
    starts over from a fresh list.
``claims``
    Claim device status (KEP-4817) by server-side apply on ``resourceclaims/<name>/status``
    with field manager = driver name and ``force``; one apply per claim for all its devices.
    The latest call for a claim wins; temporary failures are retried with backoff; a claim
    that is gone (404), was replaced (422: our body's ``metadata.uid`` is the old one) or
    refuses the body (422 Invalid) is dropped and reported. A clear is an apply with no entries.
``events``
    Events (rate-limited by :class:`~.events.EventLimiter` when recorded), POSTed in order,
    retried a few times on temporary failures.

Nothing here ever blocks a caller on the API server: while it is down, calls return at once
and the loops keep retrying; :attr:`health` tells /healthz and metrics how it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import attrs
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from dranet_core.errors import KubeApiError
from dranet_core.kube.apiversion import ResourceApiVersion
from dranet_core.kube.claimstatus import TransitionTimes, claim_status_body
from dranet_core.kube.client import api_error, call_raw, resource_api
from dranet_core.kube.events import EventLimiter, event_object
from dranet_core.kube.slices import (
    MAX_DEVICES_PER_SLICE,
    BodyCache,
    ExistingSlice,
    SkippedDevice,
    SlicePlan,
    existing_from_object,
    plan_slices,
    prepare_devices,
    slice_object,
)
from dranet_core.status import EventRecord, PublishListener
from dranet_core.types import ClaimRef, Device, DeviceStatus, is_dns_subdomain

__all__ = ["Backoff", "KubeStatusPublisher", "PublisherHealth", "PublisherSettings"]

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
_DEVICE_INDEX = re.compile(r"spec\.devices\[(\d+)\]")
_IMMEDIATE_RELISTS = 3


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


class Backoff:
    """Exponential backoff with jitter: ``initial``, doubling, capped at ``maximum``."""

    def __init__(self, initial: float, maximum: float, *, jitter: float = 0.2) -> None:
        self.initial, self.maximum, self.jitter = initial, maximum, jitter
        self.failures = 0

    def __repr__(self) -> str:
        return f"Backoff(initial={self.initial}, maximum={self.maximum}, failures={self.failures})"

    def next(self) -> float:
        delay = min(self.maximum, self.initial * (2 ** min(self.failures, 30)))
        self.failures += 1
        return float(delay * (1 - self.jitter * random.random()))

    def reset(self) -> None:
        self.failures = 0


@attrs.define
class _ClaimJob:
    ref: ClaimRef
    devices: tuple[DeviceStatus, ...]
    clear: bool
    attempts: int = 0
    not_before: float = 0.0


@attrs.define
class _EventJob:
    event: EventRecord
    attempts: int = 0


@attrs.frozen
class _SliceEvent:
    type: str
    name: str
    uid: str
    resource_version: str


def _newer(event_rv: str, known_rv: str) -> bool:
    """Whether an event's resourceVersion differs from ours and is not an older one.

    resourceVersions are opaque; when both are integers (they are etcd revisions in practice)
    an older event is one we have already seen the outcome of.
    """
    if event_rv == known_rv:
        return False
    if event_rv.isdigit() and known_rv.isdigit():
        return int(event_rv) > int(known_rv)
    return True


class KubeStatusPublisher:
    """Publishes ResourceSlices, claim device status and events to the API server.

    ``api_client`` is owned by the caller (closed by it). ``api_version`` skips the
    resource.k8s.io probe; ``node_uid`` skips the Node lookup. ``sleep`` is the seam tests
    use to observe backoff delays.
    """

    def __init__(
        self,
        api_client: ApiClient,
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
        self.driver_name = driver_name
        self.node_name = node_name
        self.settings = settings or PublisherSettings()
        self._api_client = api_client
        self._versions = api_versions or ResourceApiVersion(
            api_client, request_timeout=self.settings.request_timeout, known=api_version
        )
        self._node_uid = node_uid
        self._node_uid_given = node_uid is not None
        self._refresh_node = False
        self._sleep = sleep
        self._times = TransitionTimes(now=now)
        self._now = now
        # slices
        self._desired: tuple[Device, ...] | None = None
        self._existing: dict[str, ExistingSlice] | None = None
        self._slice_events: list[_SliceEvent] = []
        self._slices_wanted = asyncio.Event()
        self._dirty_seq = 0
        self._watch_enabled = asyncio.Event()
        self._watch_rv: str | None = None
        self._list_rv: str | None = None
        self._lists = 0
        self._skipped: tuple[SkippedDevice, ...] = ()
        self._layout: dict[str, int] = {}
        self._bodies: BodyCache = {}
        self._rejected: dict[str, tuple[dict[str, Any], str]] = {}
        self._synced: tuple[Device, ...] | None = None
        self._synced_owner: str | None = None
        self._published_devices = 0
        self._published_slices = 0
        self._in_sync = False
        # claims and events
        self._claims: dict[str, _ClaimJob] = {}
        self._claims_changed = asyncio.Event()
        self._events: deque[_EventJob] = deque()
        self._events_changed = asyncio.Event()
        self._limiter = EventLimiter(
            burst=self.settings.event_burst,
            refill_seconds=self.settings.event_refill_seconds,
            dedupe_seconds=self.settings.event_dedupe_seconds,
        )
        self._dropped_events = 0
        # health
        self._last_published: float | None = None
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._last_error_time: float | None = None
        self._slice_writes = 0
        self._status_writes = 0
        self._progress = asyncio.Event()
        self._listeners: list[PublishListener] = []

    def __repr__(self) -> str:
        return (
            f"KubeStatusPublisher(driver={self.driver_name!r}, node={self.node_name!r}, "
            f"api={self._api_version}, devices={self._published_devices}, "
            f"slices={self._published_slices}, in_sync={self._in_sync}, "
            f"pending_claims={len(self._claims)}, pending_events={len(self._events)})"
        )

    # ------------------------------------------------------------------ StatusPublisher API

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        """Make ``devices`` the published device set (returns at once; :meth:`run` writes)."""
        self._desired = tuple(devices)
        self._in_sync = False
        self._mark_slices_dirty()
        self._watch_enabled.set()

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        """Queue an apply making ``devices`` this driver's ``status.devices`` of ``claim``."""
        self._claims[claim.uid] = _ClaimJob(ref=claim, devices=tuple(devices), clear=False)
        self._claims_changed.set()

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        """Queue an apply removing this driver's ``status.devices`` entries of ``claim``."""
        self._claims[claim.uid] = _ClaimJob(ref=claim, devices=(), clear=True)
        self._claims_changed.set()

    async def record_event(self, event: EventRecord) -> None:
        """Queue an Event unless rate limiting drops it."""
        if not self._limiter.allow(event):
            log.debug(
                "event dropped by rate limiting: %s %s/%s %s",
                event.kind,
                event.namespace,
                event.name,
                event.reason,
            )
            return
        if len(self._events) >= self.settings.event_queue_max:
            self._events.popleft()
            self._dropped_events += 1
        self._events.append(_EventJob(event=event))
        self._events_changed.set()

    def add_listener(self, listener: PublishListener) -> None:
        """Tell ``listener`` what the API server accepted, and each API call's outcome."""
        self._listeners.append(listener)

    async def run(self) -> None:
        """Do the queued work until cancelled (the driver's supervisor runs this)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._guard("slices", self._slice_loop), name="dranet publisher: slices")
            tg.create_task(self._guard("watch", self._watch_loop), name="dranet publisher: slice watch")
            tg.create_task(self._guard("claims", self._claim_loop), name="dranet publisher: claim status")
            tg.create_task(self._guard("events", self._event_loop), name="dranet publisher: events")

    # ------------------------------------------------------------------ observation

    @property
    def health(self) -> PublisherHealth:
        return PublisherHealth(
            api_version=self._api_version,
            node_uid=self._node_uid,
            slices_in_sync=self._in_sync,
            published_devices=self._published_devices,
            published_slices=self._published_slices,
            last_published_time=self._last_published,
            last_success_time=self._last_success,
            last_error=self._last_error,
            last_error_time=self._last_error_time,
            skipped_devices=self._skipped,
            pending_claim_statuses=len(self._claims),
            pending_events=len(self._events),
            dropped_events=self._dropped_events + self._limiter.dropped,
            slice_writes=self._slice_writes,
            claim_status_writes=self._status_writes,
        )

    @property
    def is_idle(self) -> bool:
        """Slices match the latest device set and no claim status or event is pending."""
        slices_done = self._desired is None or (self._in_sync and not self._slices_wanted.is_set())
        return slices_done and not self._claims and not self._events

    async def wait_idle(self) -> None:
        """Wait until :attr:`is_idle` (use with a timeout: it never returns while the API is down)."""
        while not self.is_idle:
            progress = self._progress
            await progress.wait()

    # ------------------------------------------------------------------ internals: common

    def _signal_progress(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    def _ok(self) -> None:
        self._last_success = time.time()
        for listener in self._listeners:
            listener.api_state(None)

    def _failed(self, what: str, exc: BaseException) -> None:
        self._last_error = f"{what}: {exc}"
        self._last_error_time = time.time()
        log.warning("%s failed: %s", what, exc)
        for listener in self._listeners:
            listener.api_state(self._last_error)

    async def _guard(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop`` forever: a bug in one iteration is logged and retried, not fatal."""
        backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
        while True:
            try:
                await loop()
            except Exception as exc:  # the loops handle API errors; this is the bug net
                log.exception("publisher %s loop failed unexpectedly", name)
                self._failed(f"{name} loop", exc)
                await self._sleep(backoff.next())

    @property
    def _api_version(self) -> str | None:
        return self._versions.version

    async def _ensure_api_version(self) -> str:
        known = self._versions.version
        version = await self._versions.get()
        if known is None:
            self._ok()
        return version

    def _resource_api(self) -> Any:
        assert self._api_version is not None
        return resource_api(self._api_client, self._api_version)

    async def _ensure_node_uid(self) -> None:
        """GET the Node once for its uid; again after our slices were deleted behind our back
        (the Node may have been re-created: slices owned by the old one are garbage)."""
        if not self.settings.owner_reference or self._node_uid_given:
            return
        if self._node_uid is not None and not self._refresh_node:
            return
        node = await call_raw(
            f"get node {self.node_name}",
            client.CoreV1Api(self._api_client).read_node,
            self.node_name,
            request_timeout=self.settings.request_timeout,
        )
        uid = str(node["metadata"]["uid"])
        if self._node_uid is not None and uid != self._node_uid:
            log.info("node %s was re-created (uid %s -> %s)", self.node_name, self._node_uid, uid)
        self._node_uid = uid
        self._refresh_node = False
        self._ok()

    # ------------------------------------------------------------------ slices

    @property
    def _selector(self) -> str:
        return f"spec.nodeName={self.node_name},spec.driver={self.driver_name}"

    def _mark_slices_dirty(self) -> None:
        self._dirty_seq += 1
        self._slices_wanted.set()

    async def _slice_loop(self) -> None:
        backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
        relists = 0
        while True:
            await self._slices_wanted.wait()
            if self._desired is None:
                self._slices_wanted.clear()
                continue
            seq = self._dirty_seq
            try:
                await self._ensure_api_version()
                self._judge_slice_events()
                await self._ensure_node_uid()
                done = await self._sync_slices()
            except KubeApiError as exc:
                self._failed("publishing ResourceSlices", exc)
                await self._sleep(backoff.next())
                continue
            if not done:  # our view was stale (409/404): re-list and re-plan
                relists += 1
                if relists > _IMMEDIATE_RELISTS:
                    await self._sleep(backoff.next())
                continue
            relists = 0
            backoff.reset()
            if seq == self._dirty_seq:
                self._slices_wanted.clear()
                self._in_sync = True
            self._signal_progress()

    def _judge_slice_events(self) -> None:
        """Does any watch event show the server differs from what we think? Then re-list."""
        events, self._slice_events = self._slice_events, []
        if self._existing is None:
            return
        for ev in events:
            known = self._existing.get(ev.name)
            if ev.type == "DELETED":
                stale = known is not None and known.uid == ev.uid
                self._refresh_node = self._refresh_node or stale
            elif ev.type == "RESYNC":
                stale = True
            else:
                stale = known is None or _newer(ev.resource_version, known.resource_version)
            if stale:
                log.info("ResourceSlice %s: %s by someone else; re-listing", ev.name, ev.type.lower())
                self._existing = None
                return

    async def _list_slices(self) -> dict[str, ExistingSlice]:
        got = await call_raw(
            "list ResourceSlices",
            self._resource_api().list_resource_slice,
            field_selector=self._selector,
            request_timeout=self.settings.request_timeout,
        )
        self._ok()
        self._lists += 1
        self._signal_progress()
        self._list_rv = str((got.get("metadata") or {}).get("resourceVersion") or "") or None
        out: dict[str, ExistingSlice] = {}
        for obj in got.get("items") or []:
            s = existing_from_object(obj, node=self.node_name, driver=self.driver_name)
            out[s.name] = s
        return out

    async def _sync_slices(self) -> bool:
        """One reconciliation. False: our view was stale (it is dropped, call again)."""
        assert self._desired is not None
        if self._existing is None:
            self._existing = await self._list_slices()
        elif self._desired is self._synced and self._node_uid == self._synced_owner:
            return True  # neither the device set nor the server (as far as the watch tells) changed
        bodies, skipped = prepare_devices(self._desired, cache=self._bodies)
        for name, (body, reason) in list(self._rejected.items()):
            if bodies.get(name) == body:
                del bodies[name]
                skipped.append(SkippedDevice(name=name, reason=f"rejected by the API server: {reason}"))
            else:
                del self._rejected[name]  # changed or gone: it gets another chance
        if tuple(skipped) != self._skipped:
            for s in skipped:
                log.warning("device %s left out of the ResourceSlices: %s", s.name, s.reason)
            self._skipped = tuple(skipped)
        plan = plan_slices(
            bodies,
            self._existing.values(),
            node=self.node_name,
            driver=self.driver_name,
            max_per_slice=self.settings.max_devices_per_slice,
            preferred=self._layout,
            owner_uid=self._node_uid if self.settings.owner_reference else None,
        )
        if not await self._write_slices(plan):
            return False
        if not await self._delete_slices(plan):
            return False
        self._published_devices = plan.device_count
        self._published_slices = plan.slice_count
        self._layout = {
            str(d.get("name")): s.index
            for s in self._existing.values()
            if s.index is not None
            for d in s.devices
        }
        self._synced = self._desired
        self._synced_owner = self._node_uid
        if not plan.is_noop or self._last_published is None:
            self._last_published = time.time()
            left_out = {s.name for s in self._skipped}
            accepted = [d for d in self._desired if d.name not in left_out]
            for listener in self._listeners:
                listener.published(accepted)
            writes = len(plan.writes) + len(plan.deletes)
            log.info(
                "published %d devices in %d ResourceSlices (generation %d, %d writes)",
                plan.device_count,
                plan.slice_count,
                plan.generation,
                writes,
            )
        return True

    async def _write_slices(self, plan: SlicePlan) -> bool:
        assert self._existing is not None
        api = self._resource_api()
        timeout = self.settings.request_timeout
        for w in plan.writes:
            obj = slice_object(
                name=w.name,
                driver=self.driver_name,
                node=self.node_name,
                generation=plan.generation,
                slice_count=plan.slice_count,
                devices=w.devices,
                api_version=self._api_version or "v1",
                owner_uid=self._node_uid,
                resource_version=w.existing.resource_version if w.existing else None,
            )
            try:
                if w.existing is None:
                    got = await call_raw(
                        f"create ResourceSlice {w.name}",
                        api.create_resource_slice,
                        obj,
                        request_timeout=timeout,
                    )
                else:
                    got = await call_raw(
                        f"replace ResourceSlice {w.name}",
                        api.replace_resource_slice,
                        w.name,
                        obj,
                        request_timeout=timeout,
                    )
            except KubeApiError as exc:
                if exc.status in (404, 409):
                    log.info("%s; re-listing", exc)
                    self._existing = None
                    return False
                if exc.status == 422 and self._reject_devices(exc, w.devices):
                    return False  # re-plan without them
                raise
            self._slice_writes += 1
            self._ok()
            written = existing_from_object(got, node=self.node_name, driver=self.driver_name)
            self._existing[w.name] = attrs.evolve(written, devices=w.devices)
        return True

    def _reject_devices(self, exc: KubeApiError, devices: Sequence[dict[str, Any]]) -> bool:
        """The server refused a slice (422) naming ``spec.devices[i]``: leave those devices out
        (until they change) instead of letting them block the slice. False: none named."""
        indices = {int(m) for m in _DEVICE_INDEX.findall(exc.reason)}
        bad = [devices[i] for i in sorted(indices) if i < len(devices)]
        for body in bad:
            name = str(body.get("name"))
            log.error("device %s left out of the slices: rejected by the API server: %s", name, exc.reason)
            self._rejected[name] = (body, exc.reason[:500])
        return bool(bad)

    async def _delete_slices(self, plan: SlicePlan) -> bool:
        assert self._existing is not None
        api = self._resource_api()
        for d in plan.deletes:
            pre = {"preconditions": {"uid": d.uid, "resourceVersion": d.resource_version}}
            try:
                await call_raw(
                    f"delete ResourceSlice {d.name}",
                    api.delete_resource_slice,
                    d.name,
                    body=pre,
                    request_timeout=self.settings.request_timeout,
                )
                self._slice_writes += 1
            except KubeApiError as exc:
                if exc.status == 409:
                    self._existing = None
                    return False
                if exc.status != 404:
                    raise
            self._ok()
            self._existing.pop(d.name, None)
        return True

    async def _watch_loop(self) -> None:
        """Watch our slices from the resourceVersion of a list, so no change can slip between.

        A stream that ends (``watch_timeout``) or breaks is resumed from the last event seen;
        a 410 (that history is gone) makes it start over from a fresh list.
        """
        backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
        loop = asyncio.get_running_loop()
        while True:
            await self._watch_enabled.wait()
            if self._watch_rv is None:
                if self._list_rv is None:
                    await self._wait_for_fresh_list()
                self._watch_rv = self._list_rv
            started = loop.time()
            try:
                await self._watch_once()
            except (KubeApiError, ApiException, aiohttp.ClientError, TimeoutError, OSError) as exc:
                err = api_error("watch ResourceSlices", exc)
                if err.status == 410:
                    self._watch_rv = self._list_rv = None
                    continue
                self._failed("watching ResourceSlices", err)
                await self._sleep(backoff.next())
                continue
            if loop.time() - started < 1.0:  # a server closing streams at once must not make us spin
                await self._sleep(backoff.next())
            else:
                backoff.reset()

    async def _wait_for_fresh_list(self) -> None:
        """Have the slice loop (re-)list, and wait until it has."""
        before = self._lists
        self._slice_events.append(_SliceEvent("RESYNC", "", "", ""))
        self._mark_slices_dirty()
        while self._lists == before:
            progress = self._progress
            await progress.wait()

    async def _watch_once(self) -> None:
        w = watch.Watch(return_type="object")  # raw dicts: no model building per event
        async with w.stream(
            self._resource_api().list_resource_slice,
            field_selector=self._selector,
            resource_version=self._watch_rv,
            timeout_seconds=self.settings.watch_timeout,
            # aiohttp's default total timeout (300 s) would cut the stream; bound the silence instead
            _request_timeout=aiohttp.ClientTimeout(
                total=None, connect=self.settings.request_timeout, sock_read=self.settings.watch_timeout + 30
            ),
        ) as stream:
            async for ev in stream:
                raw = ev.get("raw_object") or {}
                meta = raw.get("metadata") or {}
                rv = str(meta.get("resourceVersion", ""))
                if rv:
                    self._watch_rv = rv
                if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
                    self._slice_events.append(_SliceEvent(ev["type"], name, uid, rv))
                    self._mark_slices_dirty()

    # ------------------------------------------------------------------ claim status

    def _next_claim_job(self) -> _ClaimJob | None:
        return min(self._claims.values(), key=lambda j: j.not_before, default=None)

    async def _claim_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = self._next_claim_job()
            if job is None:
                self._claims_changed.clear()
                self._signal_progress()
                await self._claims_changed.wait()
                continue
            wait = job.not_before - loop.time()
            if wait > 0:
                self._claims_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._claims_changed.wait(), wait)
                continue
            await self._apply_claim(job, loop.time())

    async def _apply_claim(self, job: _ClaimJob, now: float) -> None:
        ref = job.ref
        try:
            version = await self._ensure_api_version()
            body, notes = claim_status_body(ref, job.devices, times=self._times, api_version=version)
            for note in notes:
                log.warning("claim %s status: %s", ref, note)
            await call_raw(
                f"apply status of ResourceClaim {ref.namespace}/{ref.name}",
                self._resource_api().patch_namespaced_resource_claim_status,
                ref.name,
                ref.namespace,
                body,
                field_manager=self.driver_name,
                force=True,
                _content_type=APPLY_PATCH,
                request_timeout=self.settings.request_timeout,
            )
        except KubeApiError as exc:
            self._failed(f"claim {ref} status", exc)
            if self._claims.get(ref.uid) is not job:
                return  # superseded meanwhile
            if exc.temporary:
                job.attempts += 1
                backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
                backoff.failures = job.attempts - 1
                job.not_before = now + backoff.next()
            else:
                log.error("claim %s status dropped: %s", ref, exc)
                del self._claims[ref.uid]
            return
        self._ok()
        self._status_writes += 1
        if job.clear:
            self._times.forget(ref.uid)
        if self._claims.get(ref.uid) is job:
            del self._claims[ref.uid]

    # ------------------------------------------------------------------ events

    async def _event_loop(self) -> None:
        backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
        core = client.CoreV1Api(self._api_client)
        while True:
            if not self._events:
                self._events_changed.clear()
                self._signal_progress()
                await self._events_changed.wait()
                continue
            job = self._events[0]
            ev = job.event
            body = event_object(
                ev,
                driver=self.driver_name,
                node=self.node_name,
                now=self._now(),
                resource_version=self._api_version or "v1",
            )
            try:
                await call_raw(
                    f"create Event for {ev.kind} {ev.namespace}/{ev.name}",
                    core.create_namespaced_event,
                    ev.namespace,
                    body,
                    request_timeout=self.settings.request_timeout,
                )
            except KubeApiError as exc:
                self._failed("recording an event", exc)
                job.attempts += 1
                if not exc.temporary or job.attempts >= self.settings.event_attempts:
                    self._drop_event(job)
                else:
                    await self._sleep(backoff.next())
                continue
            self._ok()
            backoff.reset()
            self._drop_event(job)

    def _drop_event(self, job: _EventJob) -> None:
        if self._events and self._events[0] is job:
            self._events.popleft()
