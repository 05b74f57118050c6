"""Kubernetes Events on Pods and ResourceClaims, and the rate limiter in front of them.

:func:`event_object` builds a core/v1 ``Event`` (the kind ``kubectl describe`` shows) from
an :class:`~dranet_core.status.EventRecord`: ``involvedObject`` (kind, namespace, name, uid,
apiVersion ``v1`` for pods, ``resource.k8s.io/<served version>`` for claims), reason, message (at most 1 KiB,
as client-go's recorder truncates), type, ``source`` and ``reportingComponent`` = driver name,
``reportingInstance``/``source.host`` = node, first/last timestamps, count 1. The name is
``<object>.<hex nanoseconds>`` like client-go's.

:class:`EventLimiter` is the spam filter: a token bucket per involved object (``burst``
events, one more every ``refill_seconds``) and suppression of an identical event (same object,
reason and message) within ``dedupe_seconds``. It counts what it drops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import attrs
from kubernetes_asyncio.client import ApiClient, CoreV1Event, V1EventSource, V1ObjectMeta, V1ObjectReference

from dranet_core.status import EventRecord
from dranet_core.types import JSON

__all__ = ["MAX_EVENT_MESSAGE", "EventLimiter", "event_object"]

MAX_EVENT_MESSAGE: Final = 1024
_SERIALIZER: Final = ApiClient.__new__(ApiClient)  # stateless use: sanitize_for_serialization only


def event_object(
    event: EventRecord, *, driver: str, node: str, now: datetime | None = None, resource_version: str = "v1"
) -> dict[str, JSON]:
    """The core/v1 Event (JSON) for ``event``, reported by ``driver`` on ``node``.

    ``resource_version`` is the resource.k8s.io version the server serves (for a claim's
    ``involvedObject.apiVersion``).
    """
    when = now or datetime.now(UTC)
    message = event.message
    if len(message) > MAX_EVENT_MESSAGE:
        message = message[: MAX_EVENT_MESSAGE - 3] + "..."
    stamp = when.astimezone(UTC).replace(microsecond=0)
    model = CoreV1Event(
        api_version="v1",
        kind="Event",
        metadata=V1ObjectMeta(name=f"{event.name}.{time.time_ns():x}", namespace=event.namespace),
        involved_object=V1ObjectReference(
            api_version=f"resource.k8s.io/{resource_version}" if event.kind == "ResourceClaim" else "v1",
            kind=event.kind,
            name=event.name,
            namespace=event.namespace,
            uid=event.uid,
        ),
        reason=event.reason,
        message=message,
        type=event.type,
        source=V1EventSource(component=driver, host=node),
        reporting_component=driver,
        reporting_instance=node,
        first_timestamp=stamp,
        last_timestamp=stamp,
        count=1,
    )
    obj: dict[str, JSON] = _SERIALIZER.sanitize_for_serialization(model)
    return obj


@attrs.define
class EventLimiter:
    """Token bucket per involved object plus de-duplication of identical events."""

    burst: int = 5
    refill_seconds: float = 60.0
    dedupe_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    dropped: int = 0
    _buckets: dict[tuple[str, str], tuple[float, float]] = attrs.field(factory=dict)
    _recent: dict[tuple[str, str, str, str], float] = attrs.field(factory=dict)

    def allow(self, event: EventRecord) -> bool:
        """Whether to send ``event`` now (counts it as sent if so, as dropped if not)."""
        now = self.clock()
        self._prune(now)
        ident = (event.kind, event.uid or f"{event.namespace}/{event.name}", event.reason, event.message)
        last = self._recent.get(ident)
        if last is not None and now - last < self.dedupe_seconds:
            self.dropped += 1
            return False
        obj = ident[:2]
        tokens, stamp = self._buckets.get(obj, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) / self.refill_seconds)
        if tokens < 1.0:
            self._buckets[obj] = (tokens, now)
            self.dropped += 1
            return False
        self._buckets[obj] = (tokens - 1.0, now)
        self._recent[ident] = now
        return True

    def _prune(self, now: float) -> None:
        if len(self._recent) > 4096:
            self._recent = {k: t for k, t in self._recent.items() if now - t < self.dedupe_seconds}
        if len(self._buckets) > 4096:
            full = self.burst * self.refill_seconds
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
