"""The Event writer of :class:`~.publisher.KubeStatusPublisher`.

Events, rate-limited by :class:`~.events.EventLimiter` when recorded, are POSTed in order and
retried a few times (with the one backoff) on temporary failures; the oldest are dropped when
the queue is full.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import attrs
from kubernetes_asyncio import client

from dranet_core.errors import KubeApiError
from dranet_core.kube.apicontext import ApiContext
from dranet_core.kube.client import call_raw
from dranet_core.kube.events import EventLimiter, event_object
from dranet_core.status import EventRecord

__all__ = ["EventWriter"]

log = logging.getLogger(__name__)


@attrs.define
class _EventJob:
    event: EventRecord
    attempts: int = 0


class EventWriter:
    """Queues Events and posts them (module doc); :meth:`run` is its loop."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.limiter = EventLimiter(
            burst=s.event_burst, refill_seconds=s.event_refill_seconds, dedupe_seconds=s.event_dedupe_seconds
        )
        self.queue: deque[_EventJob] = deque()
        self.changed = asyncio.Event()
        self.dropped = 0

    def __repr__(self) -> str:
        return f"EventWriter(pending={len(self.queue)}, dropped={self.dropped + self.limiter.dropped})"

    def record(self, event: EventRecord) -> None:
        """Queue ``event`` unless rate limiting drops it."""
        if not self.limiter.allow(event):
            log.debug(
                "event dropped by rate limiting: %s %s/%s %s",
                event.kind,
                event.namespace,
                event.name,
                event.reason,
            )
            return
        if len(self.queue) >= self.ctx.settings.event_queue_max:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(_EventJob(event=event))
        self.changed.set()

    async def run(self) -> None:
        """Post queued Events in order until cancelled."""
        backoff = self.ctx.retry()
        core = client.CoreV1Api(self.ctx.api_client)
        while True:
            if not self.queue:
                self.changed.clear()
                self.ctx.signal_progress()
                await self.changed.wait()
                continue
            job = self.queue[0]
            ev = job.event
            body = event_object(
                ev,
                driver=self.ctx.driver_name,
                node=self.ctx.node_name,
                now=self.ctx.now(),
                resource_version=self.ctx.api_version or "v1",
            )
            try:
                await call_raw(
                    f"create Event for {ev.kind} {ev.namespace}/{ev.name}",
                    core.create_namespaced_event,
                    ev.namespace,
                    body,
                    request_timeout=self.ctx.settings.request_timeout,
                )
            except KubeApiError as exc:
                self.ctx.failed("recording an event", exc)
                job.attempts += 1
                if not exc.temporary or job.attempts >= self.ctx.settings.event_attempts:
                    self._drop_event(job)
                else:
                    await self.ctx.sleep(backoff.next())
                continue
            self.ctx.ok()
            backoff.reset()
            self._drop_event(job)

    def _drop_event(self, job: _EventJob) -> None:
        if self.queue and self.queue[0] is job:
            self.queue.popleft()
