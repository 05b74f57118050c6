"""A watch-backed cache of the ResourceClaims allocated to this node: prepare with no API call.

:class:`ClaimCache` is a :class:`~dranet_core.dra.preparer.ClaimSource` in front of an
:class:`~dranet_core.kube.claims.ApiClaimSource`. Its :meth:`ClaimCache.run` lists the
cluster's ResourceClaims once and then watches them from the list's resourceVersion, keeping
only the claims that have an allocation result of this driver in this node's pool (the API
server cannot select claims by allocation, so the filter runs here). Of each it keeps only
what preparing needs, already converted (when the watch event arrives, off the prepare path)
to the :class:`~dranet_core.types.Claim` that :meth:`ClaimCache.get` returns: its UID, this
driver's allocation results and configs, ``status.reservedFor`` and the pod claim name.

:meth:`ClaimCache.get` answers from the cache when it holds the claim under the UID the kubelet
sent, allocated and reserved for a consumer; anything else (not seen yet, another UID, the
watch not running) is a GET through the API source, so the answer is never older than what a
GET would have returned when the cache cannot vouch for it. When the watch fails the cache is
emptied (every prepare then does a GET) and :meth:`ClaimCache.run` raises, for its supervisor
to restart it after a backoff; a stream the server ends (``timeoutSeconds``) is resumed from
the last resourceVersion seen, and a 410 (that history is gone) starts over from a new list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import aiohttp

from dranet_core.config.codec import loads_strict
from dranet_core.errors import ClaimError, KubeApiError
from dranet_core.kube.claims import ApiClaimSource, claim_from_json
from dranet_core.types import Claim, ClaimRef

__all__ = ["ClaimCache"]

log = logging.getLogger(__name__)

_MAX_EVENT_BYTES = 8 * 1024 * 1024
"""A watch event (one JSON line) larger than this ends the stream (the cache re-lists)."""


def _error(reason: str, status: int) -> KubeApiError:
    """A failure of the list/watch: always temporary (the supervisor retries the loop)."""
    return KubeApiError("list/watch ResourceClaims", status, reason, temporary=True)


class _Entry(NamedTuple):
    """A cached claim: its UID, whether ``reservedFor`` is non-empty, the Claim to answer."""

    uid: str
    reserved: bool
    claim: Claim


class _Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


class ClaimCache:
    """ResourceClaims allocated to this node, kept current by a watch; a GET on a miss.

    ``hits`` and ``misses`` count the answers from the cache and from the API source.
    """

    def __init__(self, source: ApiClaimSource, *, watch_timeout: int = 300) -> None:
        if watch_timeout < 1:
            raise ValueError(f"watch_timeout must be >= 1, got {watch_timeout}")
        self.source = source
        self.watch_timeout = watch_timeout
        self._claims: dict[tuple[str, str], _Entry] = {}
        self._rv: str | None = None
        self._synced = asyncio.Event()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        state = "synced" if self._synced.is_set() else "not synced"
        return f"ClaimCache({len(self._claims)} claims, {state}, hits={self.hits}, misses={self.misses})"

    def __len__(self) -> int:
        return len(self._claims)

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, ClaimRef):
            return False
        entry = self._claims.get((ref.namespace, ref.name))
        return entry is not None and entry.uid == ref.uid

    @property
    def synced(self) -> bool:
        """Whether the watch is running (the cache reflects the API server)."""
        return self._synced.is_set()

    # --- ClaimSource ---

    def peek(self, ref: ClaimRef) -> Claim | None:
        """The claim ``ref`` names when the cache can vouch for it (the watch is running, the
        UID matches, it is allocated and reserved), counted as a hit; else None, not counted
        (:meth:`get` would GET it). Synchronous: a prepare answered from the cache waits on
        nothing."""
        entry = self._claims.get((ref.namespace, ref.name)) if self._synced.is_set() else None
        if entry is not None and entry.uid == ref.uid and entry.reserved:
            self.hits += 1
            return entry.claim
        return None

    async def get(self, ref: ClaimRef) -> Claim:
        """The claim ``ref`` names: from the cache when it can vouch for it, else a GET."""
        claim = self.peek(ref)
        if claim is not None:
            return claim
        self.misses += 1
        return await self.source.get(ref)

    # --- the loop ---

    async def run(self) -> None:
        """List, then watch, forever. Raises (after emptying the cache) when the API fails."""
        try:
            while True:
                if self._rv is None:
                    await self._list()
                started = asyncio.get_running_loop().time()
                try:
                    await self._watch()
                except _Gone:
                    log.info("claim watch: resourceVersion %s is gone; listing again", self._rv)
                    self._rv = None
                if asyncio.get_running_loop().time() - started < 1.0:
                    await asyncio.sleep(1.0)  # a server ending streams at once must not make us spin
        except KubeApiError:
            self._forget()
            raise
        except Exception as exc:  # a cache never stops the driver: every failure is retried
            self._forget()
            raise _error(f"{type(exc).__name__}: {exc}".rstrip(": "), 0) from exc
        except BaseException:
            self._forget()
            raise

    def _forget(self) -> None:
        self._synced.clear()
        self._claims.clear()
        self._rv = None

    def _keep(self, obj: Any) -> None:
        """Store ``obj`` if it is allocated to this node by this driver, else drop it."""
        if not isinstance(obj, dict):
            return
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        status = obj.get("status")
        if not isinstance(status, dict) or not self._mine(status):
            self._claims.pop(key, None)
            return
        uid = meta.get("uid")
        if not isinstance(uid, str) or not uid:
            self._claims.pop(key, None)  # no kubelet reference can name it
            return
        ref = ClaimRef(namespace=key[0], name=key[1], uid=uid)
        try:
            claim = claim_from_json(ref, obj, driver=self.source.driver_name, pool=self.source.pool)
        except ClaimError:  # not allocated after all: a prepare reads it (and reports why)
            self._claims.pop(key, None)
            return
        self._claims[key] = _Entry(uid=uid, reserved=bool(status.get("reservedFor")), claim=claim)

    def _mine(self, status: dict[str, Any]) -> bool:
        allocation = status.get("allocation")
        devices = allocation.get("devices") if isinstance(allocation, dict) else None
        results = devices.get("results") if isinstance(devices, dict) else None
        if not isinstance(results, list):
            return False
        driver, pool = self.source.driver_name, self.source.pool
        return any(
            isinstance(r, dict) and r.get("driver") == driver and (pool is None or r.get("pool") == pool)
            for r in results
        )

    async def _path(self) -> str:
        return f"/apis/resource.k8s.io/{await self.source.served_version()}/resourceclaims"

    async def _list(self) -> None:
        resp = await self._request(await self._path(), [], limits=self.source.request_timeout)
        try:
            body = await resp.read()
        finally:
            resp.release()
        doc = loads_strict(body)
        items = doc.get("items") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise _error("the list answer has no items", 0)
        self._claims.clear()
        for obj in items:
            self._keep(obj)
        self._rv = str((doc.get("metadata") or {}).get("resourceVersion", "")) or None
        self._synced.set()
        log.info("claim cache: %d claim(s) allocated to this node", len(self._claims))

    async def _watch(self) -> None:
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(self.watch_timeout)),
        ]
        if self._rv:
            query.append(("resourceVersion", self._rv))
        limits = aiohttp.ClientTimeout(
            total=None, connect=self.source.request_timeout, sock_read=self.watch_timeout + 30
        )
        resp = await self._request(await self._path(), query, limits=limits)
        try:
            async for line in _lines(resp.content):
                self._event(loads_strict(line))
        finally:
            resp.release()

    def _event(self, ev: Any) -> None:
        if not isinstance(ev, dict):
            return
        kind, obj = ev.get("type"), ev.get("object")
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == 410:
                raise _Gone
            message = obj.get("message") if isinstance(obj, dict) else obj
            raise _error(str(message), code if isinstance(code, int) else 0)
        if isinstance(obj, dict):
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self._rv = str(rv)
        if kind in ("ADDED", "MODIFIED"):
            self._keep(obj)
        elif kind == "DELETED" and isinstance(obj, dict):
            meta = obj.get("metadata") or {}
            self._claims.pop((str(meta.get("namespace", "")), str(meta.get("name", ""))), None)

    async def _request(self, path: str, query: list[tuple[str, str]], *, limits: Any) -> Any:
        resp = await self.source.api_client.call_api(
            path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=limits,
        )
        status = int(getattr(resp, "status", 200))
        if status == 410:
            resp.release()
            raise _Gone
        if status >= 400:
            resp.release()
            raise _error(f"GET {path}: HTTP {status} {getattr(resp, 'reason', '') or ''}".rstrip(), status)
        return resp


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-delimited records of ``stream`` (no per-line length limit below the cap)."""
    buf = bytearray()
    async for chunk in stream.iter_any():
        buf += chunk
        while (i := buf.find(b"\n")) >= 0:
            line = bytes(buf[:i])
            del buf[: i + 1]
            if line.strip():
                yield line
        if len(buf) > _MAX_EVENT_BYTES:
            raise _error(f"an event is larger than {_MAX_EVENT_BYTES} bytes", 0)
    if buf.strip():
        yield bytes(buf)
