"""The ResourceSlice writer and the slice watch of :class:`~.publisher.KubeStatusPublisher`.

:class:`SliceSync` makes the server hold exactly the latest device set (see :mod:`.slices`
for the layout and generation rules). At the first sync it asks the shared resource.k8s.io
version probe, GETs the Node once for the owner reference, lists this driver's slices for
this node (``fieldSelector=spec.nodeName=<node>,spec.driver=<driver>``) and adopts or deletes
them. Afterwards it writes only the slices whose content changed (PUT with the last seen
resourceVersion, POST for new ones, DELETE with uid and resourceVersion preconditions for
obsolete ones); the POSTs and PUTs of one plan go out concurrently (``concurrent_writes`` at
most), and their failures are judged once all have answered. A 409 or 404 means our view is
stale: re-list and re-plan at once (a few times, then with backoff); other failures back off
(``backoff_initial`` .. ``backoff_max``) and retry, forever. A 422 naming devices leaves
those devices out until they change, except when it names a list-typed attribute (an API
server without the ``DRAListTypeAttributes`` feature gate drops list values and then refuses
the attribute): then list attributes are published in their scalar form (their first item)
from then on, with one error line naming the flag, and no device is left out. Once the
server holds the device set, every :class:`~dranet_core.status.PublishListener` is told
which devices it accepted.

:class:`SliceWatch` watches the same slices. A slice of ours deleted or changed by someone
else (the kubelet wipes a driver's slices at its start and 30 s after losing the plugin) or a
stranger slice makes the slice loop re-list and repair. Events are judged by the slice loop,
after its own writes are recorded, so our own writes never cause extra writes. The watch
starts at the resourceVersion of a list and resumes from the last event it saw (after a
timeout or a broken connection), so nothing can slip between; after a 410 (history gone) it
starts over from a fresh list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import attrs
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from dranet_core.errors import KubeApiError
from dranet_core.kube.apicontext import ApiContext
from dranet_core.kube.client import api_error, call_raw, is_temporary_status
from dranet_core.kube.slices import (
    BodyCache,
    ExistingSlice,
    SkippedDevice,
    SlicePlan,
    SliceWrite,
    existing_from_object,
    has_list_attributes,
    max_devices_per_slice,
    plan_slices,
    prepare_devices,
    share_bodies,
    slice_object,
)
from dranet_core.types import Device

__all__ = ["SliceProgress", "SliceSync", "SliceWatch"]

log = logging.getLogger(__name__)

_DEVICE_INDEX = re.compile(r"spec\.devices\[(\d+)\]")
_IMMEDIATE_RELISTS = 3
_WATCH = "watch ResourceSlices"


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


@attrs.define
class SliceProgress:
    """What the slice writer has achieved (read by the publisher's health)."""

    devices: int = 0
    """Devices in the slices the server holds."""
    slices: int = 0
    in_sync: bool = False
    """The server holds the latest device set."""
    last_published: float | None = None
    """Unix time the slices last matched the device set after a write (or adoption)."""
    writes: int = 0


class SliceSync:
    """Keeps this node's ResourceSlices equal to the latest device set (module doc).

    Its state is the server's slices as last seen and what was achieved (read by the
    publisher's health); ``node_uid`` given skips the Node lookup.
    """

    def __init__(self, ctx: ApiContext, *, node_uid: str | None = None) -> None:
        self.ctx = ctx
        self.node_uid = node_uid
        self.node_uid_given = node_uid is not None
        self._refresh_node = False
        self.desired: tuple[Device, ...] | None = None
        self._existing: dict[str, ExistingSlice] | None = None
        self.slice_events: list[_SliceEvent] = []
        self.slices_wanted = asyncio.Event()
        self._dirty_seq = 0
        self.list_rv: str | None = None
        self.lists = 0
        self.skipped: tuple[SkippedDevice, ...] = ()
        self._layout: dict[str, int] = {}
        self._bodies: BodyCache = {}
        self._rejected: dict[str, tuple[dict[str, Any], str]] = {}
        self._synced: tuple[Device, ...] | None = None
        self._synced_owner: str | None = None
        self.list_attributes = True
        """List-typed attributes are published as lists (False after the server refused one)."""
        self.done = SliceProgress()

    def __repr__(self) -> str:
        return (
            f"SliceSync(devices={self.done.devices}, slices={self.done.slices}, in_sync={self.done.in_sync})"
        )

    def publish(self, devices: Sequence[Device]) -> None:
        """Make ``devices`` the device set to hold (the slice loop writes it)."""
        self.desired = tuple(devices)
        self.done.in_sync = False
        self.mark_dirty()

    @property
    def idle(self) -> bool:
        """The slices hold the latest device set."""
        return self.desired is None or (self.done.in_sync and not self.slices_wanted.is_set())

    async def _ensure_node_uid(self) -> None:
        """GET the Node once for its uid; again after our slices were deleted behind our back
        (the Node may have been re-created: slices owned by the old one are garbage)."""
        if not self.ctx.settings.owner_reference or self.node_uid_given:
            return
        if self.node_uid is not None and not self._refresh_node:
            return
        node = await call_raw(
            f"get node {self.ctx.node_name}",
            client.CoreV1Api(self.ctx.api_client).read_node,
            self.ctx.node_name,
            request_timeout=self.ctx.settings.request_timeout,
        )
        uid = str(node["metadata"]["uid"])
        if self.node_uid is not None and uid != self.node_uid:
            log.info("node %s was re-created (uid %s -> %s)", self.ctx.node_name, self.node_uid, uid)
        self.node_uid = uid
        self._refresh_node = False
        self.ctx.ok()

    @property
    def selector(self) -> str:
        return f"spec.nodeName={self.ctx.node_name},spec.driver={self.ctx.driver_name}"

    def mark_dirty(self) -> None:
        self._dirty_seq += 1
        self.slices_wanted.set()

    async def run(self) -> None:
        backoff = self.ctx.retry()
        relists = 0
        while True:
            await self.slices_wanted.wait()
            if self.desired is None:
                self.slices_wanted.clear()
                continue
            seq = self._dirty_seq
            try:
                await self.ctx.ensure_api_version()
                self._judge_slice_events()
                await self._ensure_node_uid()
                done = await self._sync_slices()
            except KubeApiError as exc:
                self.ctx.failed("publishing ResourceSlices", exc)
                await self.ctx.sleep(backoff.next())
                continue
            if not done:  # our view was stale (409/404): re-list and re-plan
                relists += 1
                if relists > _IMMEDIATE_RELISTS:
                    await self.ctx.sleep(backoff.next())
                continue
            relists = 0
            backoff.reset()
            if seq == self._dirty_seq:
                self.slices_wanted.clear()
                self.done.in_sync = True
            self.ctx.signal_progress()

    def _judge_slice_events(self) -> None:
        """Does any watch event show the server differs from what we think? Then re-list."""
        events, self.slice_events = self.slice_events, []
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
            self.ctx.resource_api().list_resource_slice,
            field_selector=self.selector,
            request_timeout=self.ctx.settings.request_timeout,
        )
        self.ctx.ok()
        self.lists += 1
        self.ctx.signal_progress()
        self.list_rv = str((got.get("metadata") or {}).get("resourceVersion") or "") or None
        out: dict[str, ExistingSlice] = {}
        for obj in got.get("items") or []:
            s = existing_from_object(obj, node=self.ctx.node_name, driver=self.ctx.driver_name)
            out[s.name] = s
        return out

    async def _sync_slices(self) -> bool:
        """One reconciliation. False: our view was stale (it is dropped, call again)."""
        assert self.desired is not None
        listed = self._existing is None
        if self._existing is None:
            self._existing = await self._list_slices()
        elif self.desired is self._synced and self.node_uid == self._synced_owner:
            return True  # neither the device set nor the server (as far as the watch tells) changed
        # the set this pass writes: publish() may replace self.desired while a write is awaited,
        # and the newer set must not be taken as written
        desired = self.desired
        bodies, skipped = prepare_devices(desired, cache=self._bodies, lists=self.list_attributes)
        if listed:
            self._existing = share_bodies(self._existing, bodies)
        for name, (body, reason) in list(self._rejected.items()):
            if bodies.get(name) == body:
                del bodies[name]
                skipped.append(SkippedDevice(name=name, reason=f"rejected by the API server: {reason}"))
            else:
                del self._rejected[name]  # changed or gone: it gets another chance
        if tuple(skipped) != self.skipped:
            for s in skipped:
                log.warning("device %s left out of the ResourceSlices: %s", s.name, s.reason)
            self.skipped = tuple(skipped)
        plan = plan_slices(
            bodies,
            self._existing.values(),
            node=self.ctx.node_name,
            driver=self.ctx.driver_name,
            max_per_slice=max_devices_per_slice(bodies.values(), self.ctx.settings.max_devices_per_slice),
            preferred=self._layout,
            owner_uid=self.node_uid if self.ctx.settings.owner_reference else None,
        )
        if not await self._write_slices(plan):
            return False
        if not await self._delete_slices(plan):
            return False
        self.done.devices = plan.device_count
        self.done.slices = plan.slice_count
        self._layout = {
            str(d.get("name")): s.index
            for s in self._existing.values()
            if s.index is not None
            for d in s.devices
        }
        self._synced = desired
        self._synced_owner = self.node_uid
        if not plan.is_noop or self.done.last_published is None:
            self.done.last_published = time.time()
            left_out = {s.name for s in self.skipped}
            accepted = [d for d in desired if d.name not in left_out]
            for listener in self.ctx.listeners:
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
        """Create and replace the plan's slices, up to ``concurrent_writes`` at once.

        Every write of the plan is attempted; each one that succeeds is recorded as it answers
        (a body is built only when its turn comes, and the answer is not kept). Then the
        failures are judged: a 404 or 409 drops our view (re-list), a 422 refusing list
        attributes or naming devices re-plans; False for those. Any other failure is raised.
        """
        existing = self._existing
        assert existing is not None
        api = self.ctx.resource_api()
        timeout = self.ctx.settings.request_timeout
        gate = asyncio.Semaphore(self.ctx.settings.concurrent_writes)

        async def write(w: SliceWrite) -> None:
            async with gate:
                obj = slice_object(
                    name=w.name,
                    driver=self.ctx.driver_name,
                    node=self.ctx.node_name,
                    generation=plan.generation,
                    slice_count=plan.slice_count,
                    devices=w.devices,
                    api_version=self.ctx.api_version or "v1",
                    owner_uid=self.node_uid,
                    resource_version=w.existing.resource_version if w.existing else None,
                )
                args: tuple[Any, ...]
                if w.existing is None:
                    op, call, args = f"create ResourceSlice {w.name}", api.create_resource_slice, (obj,)
                else:
                    op, call, args = (
                        f"replace ResourceSlice {w.name}",
                        api.replace_resource_slice,
                        (w.name, obj),
                    )
                del obj
                got = await call_raw(op, call, *args, request_timeout=timeout)
            self.done.writes += 1
            self.ctx.ok()
            written = existing_from_object(got, node=self.ctx.node_name, driver=self.ctx.driver_name)
            existing[w.name] = attrs.evolve(written, devices=w.devices)

        results = await asyncio.gather(*(write(w) for w in plan.writes), return_exceptions=True)
        failed: list[tuple[SliceWrite, KubeApiError]] = []
        for w, outcome in zip(plan.writes, results, strict=True):
            if isinstance(outcome, KubeApiError):
                failed.append((w, outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
        if not failed:
            return True
        stale = next((exc for _, exc in failed if exc.status in (404, 409)), None)
        if stale is not None:
            log.info("%s; re-listing", stale)
            self._existing = None
            return False
        if any(exc.status == 422 and self._refuses_lists(exc, w.devices) for w, exc in failed):
            return False  # re-plan with scalars (the other refusals are sent again as scalars)
        unexplained = [
            exc for w, exc in failed if exc.status != 422 or not self._reject_devices(exc, w.devices)
        ]
        if unexplained:
            raise unexplained[0]
        return False  # re-plan without the rejected devices

    def _refuses_lists(self, exc: KubeApiError, devices: Sequence[dict[str, Any]]) -> bool:
        """The 422 names a list-typed attribute of a device: publish lists as scalars from now
        on (one error line naming the flag). False: it is about something else."""
        if not self.list_attributes:
            return False
        named = [devices[int(i)] for i in _DEVICE_INDEX.findall(exc.reason) if int(i) < len(devices)]
        refused = sorted(
            {
                name
                for body in named
                if has_list_attributes(body)
                for name, value in (body.get("attributes") or {}).items()
                if f"attributes[{name}]" in exc.reason
                and not {"int", "bool", "string", "version"} & set(value)
            }
        )
        if not refused:
            return False
        log.error(
            "the API server refuses list-typed attribute %s (--feature-gates=DRAListTypeAttributes=true): "
            "list attributes need Kubernetes 1.36+ with the DRAListTypeAttributes feature gate on the "
            "kube-apiserver and kube-scheduler; publishing them in their scalar form until the driver "
            "restarts (server said: %s)",
            ", ".join(refused),
            exc.reason[:300],
        )
        self.list_attributes = False
        self._bodies.clear()
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
        api = self.ctx.resource_api()
        for d in plan.deletes:
            pre = {"preconditions": {"uid": d.uid, "resourceVersion": d.resource_version}}
            try:
                await call_raw(
                    f"delete ResourceSlice {d.name}",
                    api.delete_resource_slice,
                    d.name,
                    body=pre,
                    request_timeout=self.ctx.settings.request_timeout,
                )
                self.done.writes += 1
            except KubeApiError as exc:
                if exc.status == 409:
                    self._existing = None
                    return False
                if exc.status != 404:
                    raise
            self.ctx.ok()
            self._existing.pop(d.name, None)
        return True


class SliceWatch:
    """Watches this node's slices and tells :class:`SliceSync` what changed (module doc)."""

    def __init__(self, ctx: ApiContext, sync: SliceSync) -> None:
        self.ctx = ctx
        self.sync = sync
        self.enabled = asyncio.Event()
        self.rv: str | None = None

    def __repr__(self) -> str:
        return f"SliceWatch(rv={self.rv})"

    async def run(self) -> None:
        """Watch our slices from the resourceVersion of a list, so no change can slip between.

        A stream that ends (``watch_timeout``) or breaks is resumed from the last event seen;
        a 410 (that history is gone) makes it start over from a fresh list.
        """
        backoff = self.ctx.retry()
        loop = asyncio.get_running_loop()
        while True:
            await self.enabled.wait()
            if self.rv is None:
                if self.sync.list_rv is None:
                    await self._wait_for_fresh_list()
                self.rv = self.sync.list_rv
            started = loop.time()
            try:
                await self._watch_once()
            except (KubeApiError, ApiException, aiohttp.ClientError, TimeoutError, OSError) as exc:
                err = api_error(_WATCH, exc)
                if err.status == 410:
                    self.rv = self.sync.list_rv = None
                    continue
                self.ctx.failed("watching ResourceSlices", err)
                await self.ctx.sleep(backoff.next())
                continue
            if loop.time() - started < 1.0:  # a server closing streams at once must not make us spin
                await self.ctx.sleep(backoff.next())
            else:
                backoff.reset()

    async def _wait_for_fresh_list(self) -> None:
        """Have the slice loop (re-)list, and wait until it has. Before its first list there
        is nothing to re-list: the loop lists anyway (a second list of a large node would
        cost a decoded copy of every slice)."""
        before = self.sync.lists
        if before:
            self.sync.slice_events.append(_SliceEvent("RESYNC", "", "", ""))
            self.sync.mark_dirty()
        while self.sync.lists == before:
            progress = self.ctx.progress
            await progress.wait()

    async def _watch_once(self) -> None:
        """One watch request, read line by line; each event is decoded once, as plain JSON
        (kubernetes-asyncio's ``Watch`` decodes every event twice and encodes it once, and
        opens an HTTP client of its own per stream)."""
        resp = await self.ctx.resource_api().list_resource_slice(
            field_selector=self.sync.selector,
            resource_version=self.rv,
            timeout_seconds=self.ctx.settings.watch_timeout,
            watch=True,
            _preload_content=False,
            # aiohttp's default total timeout (300 s) would cut the stream; bound the silence instead
            _request_timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self.ctx.settings.request_timeout,
                sock_read=self.ctx.settings.watch_timeout + 30,
            ),
        )
        try:
            if resp.status >= 400:
                text = (await resp.read()).decode("utf-8", errors="replace")
                raise KubeApiError(
                    _WATCH, resp.status, text[:500], temporary=is_temporary_status(resp.status)
                )
            while line := await resp.content.readline():
                if not line.strip():
                    continue
                try:
                    ev = json.loads(line)
                except ValueError as exc:
                    raise KubeApiError(_WATCH, 0, f"undecodable event: {exc}", temporary=True) from exc
                if isinstance(ev, dict):
                    self._on_event(ev)
                del ev  # a whole slice: not kept while the stream waits for the next event
        finally:
            resp.release()

    def _on_event(self, ev: Mapping[str, Any]) -> None:
        """Note one watch event: its resource version, and what it says about a slice. An
        ERROR event raises it as :class:`KubeApiError` (410: the history is gone)."""
        raw = ev.get("object")
        raw = raw if isinstance(raw, dict) else {}
        if ev.get("type") == "ERROR":
            code = raw.get("code")
            status = code if isinstance(code, int) else 0
            reason = f"{raw.get('reason')}: {raw.get('message')}"
            raise KubeApiError(_WATCH, status, reason, temporary=is_temporary_status(status))
        meta = raw.get("metadata") or {}
        rv = str(meta.get("resourceVersion", ""))
        if rv:
            self.rv = rv
        if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
            name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
            self.sync.slice_events.append(_SliceEvent(ev["type"], name, uid, rv))
            self.sync.mark_dirty()
