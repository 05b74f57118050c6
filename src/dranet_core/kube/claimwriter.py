"""The claim-status writer of :class:`~.publisher.KubeStatusPublisher`.

Claim device status (KEP-4817) by server-side apply on ``resourceclaims/<name>/status``
with field manager = driver name and ``force``; one apply per claim for all its devices. The
latest call for a claim wins; temporary failures and conflicts (409) are retried with the one
backoff; a claim that is gone (404), was replaced (422: our body's ``metadata.uid`` is the
old one) or refuses the body (422 Invalid) is dropped and reported. A clear is an apply with no entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import attrs

from dranet_core.errors import KubeApiError
from dranet_core.kube.apicontext import ApiContext
from dranet_core.kube.claimstatus import TransitionTimes, claim_status_body
from dranet_core.kube.client import call_raw
from dranet_core.types import ClaimRef, DeviceStatus

__all__ = ["APPLY_PATCH", "ClaimStatusWriter"]

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"


@attrs.define
class _ClaimJob:
    ref: ClaimRef
    devices: tuple[DeviceStatus, ...]
    clear: bool
    attempts: int = 0
    not_before: float = 0.0


class ClaimStatusWriter:
    """Queues claim status applies and writes them (module doc); :meth:`run` is its loop."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.times = TransitionTimes(now=ctx.now)
        self.pending: dict[str, _ClaimJob] = {}
        self.changed = asyncio.Event()
        self.writes = 0

    def __repr__(self) -> str:
        return f"ClaimStatusWriter(pending={len(self.pending)}, writes={self.writes})"

    def set(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        """Queue an apply making ``devices`` this driver's ``status.devices`` of ``claim``."""
        self.pending[claim.uid] = _ClaimJob(ref=claim, devices=tuple(devices), clear=False)
        self.changed.set()

    def clear(self, claim: ClaimRef) -> None:
        """Queue an apply removing this driver's ``status.devices`` entries of ``claim``."""
        self.pending[claim.uid] = _ClaimJob(ref=claim, devices=(), clear=True)
        self.changed.set()

    def _next_claim_job(self) -> _ClaimJob | None:
        return min(self.pending.values(), key=lambda j: j.not_before, default=None)

    async def run(self) -> None:
        """Apply queued statuses, each when its retry time has come, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            job = self._next_claim_job()
            if job is None:
                self.changed.clear()
                self.ctx.signal_progress()
                await self.changed.wait()
                continue
            wait = job.not_before - loop.time()
            if wait > 0:
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self.changed.wait()
                continue
            await self._apply_claim(job, loop.time())

    async def _apply_claim(self, job: _ClaimJob, now: float) -> None:
        ref = job.ref
        try:
            version = await self.ctx.ensure_api_version()
            body, notes = claim_status_body(ref, job.devices, times=self.times, api_version=version)
            for note in notes:
                log.warning("claim %s status: %s", ref, note)
            await call_raw(
                f"apply status of ResourceClaim {ref.namespace}/{ref.name}",
                self.ctx.resource_api().patch_namespaced_resource_claim_status,
                ref.name,
                ref.namespace,
                body,
                field_manager=self.ctx.driver_name,
                force=True,
                _content_type=APPLY_PATCH,
                request_timeout=self.ctx.settings.request_timeout,
            )
        except KubeApiError as exc:
            self.ctx.failed(f"claim {ref} status", exc)
            if self.pending.get(ref.uid) is not job:
                return  # superseded meanwhile
            # 409: another writer changed the claim meanwhile; the apply carries no
            # resourceVersion, so applying again is the answer
            if exc.temporary or exc.status == 409:
                job.attempts += 1
                retry = self.ctx.retry()
                retry.failures = job.attempts - 1
                job.not_before = now + retry.next()
            else:
                log.error("claim %s status dropped: %s", ref, exc)
                del self.pending[ref.uid]
            return
        self.ctx.ok()
        self.writes += 1
        if job.clear:
            self.times.forget(ref.uid)
        if self.pending.get(ref.uid) is job:
            del self.pending[ref.uid]
